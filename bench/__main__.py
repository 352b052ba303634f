"""`make bench`: every figure beside its baseline, as a ratio; results into BENCHMARKS.md.

    python -m bench [--reps N] [--sizes 1000000,10000000,30000000] [--no-write]
                    [--skip execution,throughput,scaling,serving]

Whole-process figures are medians over ``--reps`` fresh processes; throughputs are the
phase's own seconds (after imports) from the same kind of runs. Synthetic data is generated
once into abalone_home/bench/ (git-ignored) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.blocks import BENCHMARKS_MD, write_block
from bench.make_data import cached

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CACHE = REPO / "abalone_home" / "bench"
SHARED_ABALONE = REPO.parent / "shared" / "data" / "abalone.data"
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20


@dataclass
class Run:
    wall: float
    max_rss: int  # bytes: the largest single process (the child or a reaped descendant)
    tree_rss: int  # bytes: the largest sampled sum over the child and its descendants
    cpu: float = 0.0  # user + system seconds of the child and its reaped descendants
    result: dict = field(default_factory=dict)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name may hold spaces or parentheses; the fields after its last ')' do not.
        ppid = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _tree_rss(root: int) -> int:
    tree, total, stack = _children(), 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(tree.get(pid, ()))
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * PAGE
        except OSError:
            pass
    return total


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` to completion; its wall time, peak RSS and last JSON line of stdout."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    readers = [
        threading.Thread(target=lambda: out_chunks.append(proc.stdout.read())),
        threading.Thread(target=lambda: err_chunks.append(proc.stderr.read())),
    ]
    for reader in readers:
        reader.start()
    # wait4, not wait: its rusage is this child's own (ru_maxrss covers its reaped children).
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    for reader in readers:
        reader.join()
    stdout, stderr = "".join(out_chunks), "".join(err_chunks)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{stdout[-2000:]}\n{stderr[-4000:]}"
        )
    result = {}
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if lines:
        result = json.loads(lines[-1])
    rss = usage.ru_maxrss * 1024
    return Run(wall, rss, max(peak[0], rss), usage.ru_utime + usage.ru_stime, result)


def median(runs: list[Run], key: Callable[[Run], float]) -> float:
    return statistics.median(key(r) for r in runs)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            match = re.search(r"model name\s*:\s*(.+)", handle.read())
        cpu = match[1].strip() if match else cpu
    except OSError:
        pass
    memory = os.sysconf("SC_PHYS_PAGES") * PAGE / (1 << 30)
    versions = []
    for name in ("dagster", "xgboost", "mlflow", "pyarrow", "pandas", "numpy"):
        try:
            from importlib.metadata import version

            versions.append(f"{name} {version(name)}")
        except Exception:  # a missing package is a fact to print, not an error
            versions.append(f"{name} ?")
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM; {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}; {', '.join(versions)}"
    )


def phase(name: str, out: Path, *extra: str) -> Run:
    return measure([sys.executable, "-m", "bench.phases", name, "--out", str(out), *extra])


def pipeline_env(home: Path, input_data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABALONE_", "MLFLOW_"))}
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env.update(
        DAGSTER_HOME=str(home / "dagster"),
        ABALONE_HOME=str(home / "abalone"),
        ABALONE_INPUT_DATA=str(input_data),
    )
    return env


def bench_default_execution(input_data: Path, reps: int, log: Callable[[str], None]) -> dict:
    """`dagster job execute` against the plain script, each a whole process, on new homes
    (first run: databases created) and again on the same homes (every later run)."""
    dagster_cmd = [str(BIN / "dagster"), "job", "execute", "-m", "abalone_platform"]
    dagster_cmd += ["-j", "abalone_pipeline"]
    figures: dict[str, list[Run]] = {k: [] for k in ("dg1", "dg2", "pl1", "pl2", "plnr")}
    for rep in range(reps):
        with tempfile.TemporaryDirectory(prefix="bench-exec-") as tmp:
            root = Path(tmp)
            env = pipeline_env(root / "dg", input_data)
            plain = [sys.executable, str(REPO / "bench" / "plain_pipeline.py")]
            plain += ["--input", str(input_data), "--home", str(root / "plain")]
            figures["dg1"].append(measure(dagster_cmd, env))
            figures["pl1"].append(measure(plain))
            figures["dg2"].append(measure(dagster_cmd, env))
            figures["pl2"].append(measure(plain))
            nr = [*plain[:-1], str(root / "plain-nr"), "--no-registry"]
            figures["plnr"].append(measure(nr))
        log(
            f"  rep {rep + 1}/{reps}: dagster {figures['dg1'][-1].wall:.2f}/"
            f"{figures['dg2'][-1].wall:.2f} s, plain {figures['pl1'][-1].wall:.2f}/"
            f"{figures['pl2'][-1].wall:.2f} s, plain without registry "
            f"{figures['plnr'][-1].wall:.2f} s"
        )
    return {k: [r.wall for r in v] for k, v in figures.items()} | {
        "rss": {k: median(v, lambda r: r.tree_rss) for k, v in figures.items()}
    }


def bench_throughput(
    source: Path, rows: int, reps: int, work: Path, log: Callable[[str], None]
) -> dict:
    """The project's transform (parse + preprocess + predict + write) against bare predict,
    alternated in one process (in-process seconds, medians)."""
    data = cached(source, CACHE, rows)
    out = work / f"n{rows}"
    if not (out / "bundle.sha256").exists():
        phase("process", out, "--input", str(data))
        phase("train", out)
    run = phase("throughput", out, "--input", str(data), "--repeat", str(max(reps, 7)))
    result = {
        "rows": rows,
        "transform_seconds": run.result["transform_seconds"],
        "bare_seconds": run.result["bare_seconds"],
    }
    log(
        f"  {rows:,} rows: transform {rows / result['transform_seconds']:,.0f} rows/s, bare "
        f"inplace_predict {rows / result['bare_seconds']:,.0f} rows/s"
    )
    return result


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}×"


def report(results: dict) -> str:
    ex = results["execution"]
    md = [f"Machine: {results['machine']}", ""]
    md.append(
        f"Measured {results['date']}; medians of {results['reps']} runs unless noted. Load "
        f"average (1/5/15 min) {results['load']['start']} at the start, {results['load']['end']}"
        " at the end: other jobs shared the machine, so figures are noisy."
    )
    md += ["", "### Default execution (whole processes)", ""]
    md.append("| figure | `dagster job execute` | plain script | ratio (target ≤ 2×) |")
    md.append("|---|---:|---:|---:|")
    dg1, dg2 = statistics.median(ex["dg1"]), statistics.median(ex["dg2"])
    pl1, pl2 = statistics.median(ex["pl1"]), statistics.median(ex["pl2"])
    md.append(
        f"| first run (new homes: databases created) | {dg1:.2f} s | {pl1:.2f} s | "
        f"{ratio(dg1, pl1)} |"
    )
    md.append(f"| next run (same homes) | {dg2:.2f} s | {pl2:.2f} s | {ratio(dg2, pl2)} |")
    plnr = statistics.median(ex["plnr"])
    md.append(f"| plain script without MLflow registration | | {plnr:.2f} s | |")
    md.append(
        f"| peak RSS (process tree), next run | {ex['rss']['dg2'] / MIB:.0f} MiB | "
        f"{ex['rss']['pl2'] / MIB:.0f} MiB | {ratio(ex['rss']['dg2'], ex['rss']['pl2'])} |"
    )
    tp = results["throughput"]
    t_rate, b_rate = tp["rows"] / tp["transform_seconds"], tp["rows"] / tp["bare_seconds"]
    md += [
        "",
        f"### Batch transform throughput ({tp['rows']:,} rows; in-process seconds, the two "
        "alternated in one process)",
        "",
    ]
    md.append(
        "| project transform (parse + preprocess + predict + write) | bare `inplace_predict` "
        "on a parsed float32 array | ratio (target ≥ 0.5×) |"
    )
    md.append("|---:|---:|---:|")
    md.append(f"| {t_rate:,.0f} rows/s | {b_rate:,.0f} rows/s | {ratio(t_rate, b_rate)} |")
    return "\n".join(md)


def write_benchmarks(text: str) -> None:
    write_block("results", text, "Benchmarks")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", default="1000000,10000000,30000000")
    parser.add_argument("--dask-rows", type=int, default=10_000_000)
    parser.add_argument("--input", type=Path, default=None, help="the UCI abalone.data file")
    parser.add_argument(
        "--skip", default="", help="comma list: execution,throughput,scaling,serving"
    )
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md as it is")
    args = parser.parse_args(argv)
    source = args.input or Path(os.environ.get("ABALONE_INPUT_DATA") or SHARED_ABALONE)
    if not source.exists():
        # A fresh clone without the file: the pipeline's own download (checksum verified).
        from abalone_platform.storage.inputs import UCI_ABALONE_URL, resolve_input

        source = resolve_input(
            UCI_ABALONE_URL, "bench input", CACHE / "download", env_hint="ABALONE_INPUT_DATA"
        ).path
    sizes = [int(s) for s in args.sizes.split(",") if s]
    skip = set(args.skip.split(","))

    def log(line: str) -> None:
        print(line, flush=True)

    def load() -> str:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())

    results: dict = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "reps": args.reps,
    }
    log(f"machine: {results['machine']}")
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=CACHE))
    started = time.perf_counter()
    try:
        results["load"] = {"start": load()}
        if "execution" not in skip:
            log("default execution: dagster job execute vs bench/plain_pipeline.py")
            results["execution"] = bench_default_execution(source, args.reps, log)
        if "throughput" not in skip:
            log("transform throughput vs bare inplace_predict")
            results["throughput"] = bench_throughput(source, 1_000_000, args.reps, work, log)
        if "scaling" not in skip:
            # Its own block of BENCHMARKS.md (bench/scaling.py): each step to 30M rows, Dask.
            from bench import scaling

            scaled = scaling.run(sizes, args.dask_rows, args.reps, source, log)
            text = scaling.report(scaled)
            print(text)
            if not args.no_write:
                scaling.write(text)
        if "serving" not in skip:
            # Its own block of BENCHMARKS.md (bench/serving.py), written as soon as measured.
            from bench import serving

            log("real-time serving: abalone-platform serve vs mlflow models serve")
            served = serving.bench_serving(source, 1000, 10.0, log)
            text = serving.report(served, results["date"], load() + " at its end")
            print(text)
            if not args.no_write:
                serving.write(text)
        results["load"]["end"] = load()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (CACHE / "results.json").write_text(json.dumps(results, indent=2))
    log(
        f"\n(total {time.perf_counter() - started:.0f} s; "
        f"raw figures in {CACHE / 'results.json'})\n"
    )
    if {"execution", "throughput"} & skip:
        log(json.dumps(results, indent=2))
        return
    text = report(results)
    print(text)
    if not args.no_write:
        write_benchmarks(text)
        log(f"\nwritten to {BENCHMARKS_MD}")


if __name__ == "__main__":
    main()
