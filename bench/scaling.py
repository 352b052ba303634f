"""Scale and ProcessingInstanceCount: each step's wall time and peak RSS from 1M to 30M rows,
and the batch transform in one process against Dask (a LocalCluster of N workers, and a
`dask scheduler` + `dask worker` processes started by hand).

    python -m bench.scaling [--sizes 1000000,10000000,30000000] [--dask-rows 10000000]
                            [--reps 3] [--no-write]

Every phase is a whole process (bench.phases), so its wall time and peak RSS are its own; the
rows are generated (bench.make_data) into abalone_home/bench/, never committed. Figures go into
BENCHMARKS.md between the `bench:scaling` markers, each target beside its measured figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.__main__ import CACHE, MIB, SHARED_ABALONE, Run, median, phase
from bench.blocks import write_block
from bench.make_data import cached
from bench.serving import free_port

BIN = Path(sys.executable).parent
STEPS = ("process", "train", "evaluate", "transform")
GIB = 1 << 30


def bench_scale(source: Path, sizes: list[int], reps: int, work: Path, log) -> dict:
    """Each step at each size, a whole process: wall, phase seconds, peak RSS (tree)."""
    series = {}
    for rows in sizes:
        data = cached(source, CACHE, rows)
        out = work / f"n{rows}"
        entry = {}
        for name in STEPS:
            extra = ["--input", str(data)] if name in ("process", "transform") else []
            # Minutes each from 10M rows on: one run there; the smaller sizes `reps` runs.
            n = reps if rows < 10_000_000 else 1
            runs = [phase(name, out, *extra) for _ in range(n)]
            entry[name] = {
                "wall": median(runs, lambda r: r.wall),
                "seconds": median(runs, lambda r: r.result["seconds"]),
                "tree_rss": max(r.tree_rss for r in runs),
                "runs": n,
            }
            log(
                f"  {rows:>11,} rows {name:<9} {entry[name]['wall']:7.2f} s wall "
                f"({entry[name]['seconds']:.2f} s work), peak RSS "
                f"{entry[name]['tree_rss'] / MIB:6.0f} MiB  [{n} run(s)]"
            )
        series[rows] = entry
    return series


def _hand_cluster(workers: int, logs: Path) -> tuple[str, list[subprocess.Popen]]:
    """`dask scheduler` and ``workers`` `dask worker` processes on loopback, as a person
    starts them; the caller stops them."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    started = []

    def start(name: str, *args: str) -> None:
        with open(logs / f"{name}.log", "wb") as out:
            started.append(
                subprocess.Popen(
                    [str(BIN / "dask"), *args],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            )

    start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port),
          "--dashboard-address", f"127.0.0.1:{free_port()}")  # fmt: skip
    for i in range(workers):
        # As a LocalCluster's: one thread per worker, idle OpenMP threads asleep.
        start(f"worker{i}", "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
              "--no-dashboard")  # fmt: skip
    with Client(address, timeout=60) as client:
        client.wait_for_workers(workers, timeout=120)
    return address, started


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            os.killpg(process.pid, 15)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def bench_dask(source: Path, rows: int, reps: int, work: Path, log) -> dict:
    """The transform in one process, on LocalClusters of 2 and 4 workers, and on 2 and 4
    workers started by hand; alternated rep by rep so that drifting load hits all alike."""
    data = cached(source, CACHE, rows)
    out = work / f"n{rows}"
    if not (out / "bundle.sha256").exists():
        phase("process", out, "--input", str(data))
        phase("train", out)
    variants = {"in-process": (1, False), "local2": (2, False), "local4": (4, False),
                "hand2": (2, True), "hand4": (4, True)}  # fmt: skip
    runs: dict[str, list[Run]] = {k: [] for k in variants}
    hand = {}
    try:
        for workers in (2, 4):
            logs = Path(tempfile.mkdtemp(prefix=f"hand{workers}-", dir=work))
            hand[workers] = _hand_cluster(workers, logs)
        for _ in range(reps):
            for name, (workers, by_hand) in variants.items():
                extra = ["--input", str(data), "--workers", str(workers)]
                if by_hand:
                    extra += ["--scheduler", hand[workers][0]]
                runs[name].append(phase("transform", out, *extra))
    finally:
        for _, processes in hand.values():
            _stop(processes)
    reference = Path(runs["in-process"][-1].result["output"]).read_bytes()
    result = {}
    for name, rs in runs.items():
        workers = variants[name][0]
        seconds = median(rs, lambda r: r.result["seconds"])
        result[name] = {
            "workers": workers,
            "seconds": seconds,
            "step_seconds": median(rs, lambda r: r.result.get("step_seconds", r.result["seconds"])),
            "wall": median(rs, lambda r: r.wall),
            "tree_rss": max(r.tree_rss for r in rs),
            "rows_per_s_per_worker": rows / seconds / workers,
            "identical": Path(rs[-1].result["output"]).read_bytes() == reference,
            "tasks_per_worker": rs[-1].result.get("tasks_per_worker", {}),
        }
        log(
            f"  {name:<10} {seconds:6.2f} s transform, {result[name]['step_seconds']:6.2f} s "
            f"step, {result[name]['rows_per_s_per_worker']:,.0f} rows/s per worker, "
            f"identical: {result[name]['identical']}"
        )
    return {"rows": rows, "variants": result}


def _ok(met: bool) -> str:
    return "met" if met else "**not met**"


def report(results: dict) -> str:
    md = [f"Machine: {results['machine']}", ""]
    md.append(
        f"Measured {results['date']}; load average {results['load']['start']} at the start, "
        f"{results['load']['end']} at the end (other jobs shared this 2-core machine)."
    )
    scale = results["scale"]
    sizes = sorted(scale, key=int)
    md += ["", "### Each step at scale (a whole process each; from 10M rows one run)", ""]
    md.append("| rows | " + " | ".join(f"{s} | RSS" for s in STEPS) + " |")
    md.append("|---:|" + "---:|---:|" * len(STEPS))
    for rows in sizes:
        e = scale[rows]
        cells = [f"{int(rows):,}"]
        for name in STEPS:
            cells += [f"{e[name]['wall']:.1f} s", f"{e[name]['tree_rss'] / MIB:,.0f} MiB"]
        md.append("| " + " | ".join(cells) + " |")
    targets = []
    big, small = sizes[-1], sizes[0]
    if int(big) >= 30_000_000:
        for name, limit in (("process", 3 * GIB), ("train", 3 * GIB), ("transform", GIB)):
            rss = scale[big][name]["tree_rss"]
            targets.append(
                (
                    f"{name} peak RSS at {int(big):,} rows ≤ {limit / GIB:.0f} GiB",
                    f"{rss / MIB:,.0f} MiB",
                    _ok(rss <= limit),
                )  # fmt: skip
            )
    if len(sizes) >= 2:
        growth = int(big) / int(small)
        for name in STEPS:
            per_row = scale[big][name]["seconds"] / scale[small][name]["seconds"] / growth
            limit = 1.2 if name != "evaluate" else None
            targets.append(
                (
                    f"{name}: time per row, {int(small):,} → {int(big):,} rows"
                    + (" (within 1.2× of linear)" if limit else " (no target)"),
                    f"{per_row:.2f}× linear",
                    _ok(per_row <= 1.2) if limit else "",
                )  # fmt: skip
            )
    dask = results.get("dask")
    if dask:
        v = dask["variants"]
        md += ["", f"### The batch transform on Dask ({dask['rows']:,} rows)", ""]
        md.append(
            "| where | workers | transform | step (with cluster start/stop) | rows/s per worker "
            "| peak RSS (tree) | output identical to one process | tasks per worker |"
        )
        md.append("|---|---:|---:|---:|---:|---:|---|---|")
        names = {"in-process": "one process (N = 1)", "local2": "LocalCluster",
                 "local4": "LocalCluster", "hand2": "scheduler + workers by hand",
                 "hand4": "scheduler + workers by hand"}  # fmt: skip
        for key, e in v.items():
            tasks = ", ".join(str(n) for n in e["tasks_per_worker"].values()) or "-"
            md.append(
                f"| {names[key]} | {e['workers']} | {e['seconds']:.2f} s | "
                f"{e['step_seconds']:.2f} s | {e['rows_per_s_per_worker']:,.0f} | "
                f"{e['tree_rss'] / MIB:,.0f} MiB | {e['identical']} | {tasks} |"
            )
        one = v["in-process"]
        for key in ("local2", "hand2"):
            work_ratio = one["seconds"] / v[key]["seconds"]
            step_ratio = one["step_seconds"] / v[key]["step_seconds"]
            targets.append(
                (
                    f"Dask N = 2 ({names[key]}) transform ≥ 0.9× the in-process one",
                    f"{work_ratio:.2f}× on a running cluster; {step_ratio:.2f}× with its start",
                    _ok(work_ratio >= 0.9),
                )  # fmt: skip
            )
    md += ["", "| target | measured | |", "|---|---|---|"]
    md += [f"| {a} | {b} | {c} |" for a, b, c in targets]
    return "\n".join(md)


def write(text: str) -> None:
    write_block("scaling", text, "Scale and Dask")


def run(sizes: list[int], dask_rows: int, reps: int, source: Path, log) -> dict:
    from bench.__main__ import machine

    def load() -> str:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())

    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "load": {"start": load()}}
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-scaling-", dir=CACHE) as tmp:
        work = Path(tmp)
        log("scale series: process / train / evaluate / transform, each its own process")
        series = bench_scale(source, sizes, reps, work, log)
        results["scale"] = {str(k): v for k, v in series.items()}
        if dask_rows:
            log("batch transform: one process vs Dask (LocalCluster, scheduler + workers by hand)")
            results["dask"] = bench_dask(source, dask_rows, reps, work, log)
    results["load"]["end"] = load()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000,30000000")
    parser.add_argument("--dask-rows", type=int, default=10_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--input", type=Path, default=SHARED_ABALONE)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    results = run(
        [int(s) for s in args.sizes.split(",") if s], args.dask_rows, args.reps, args.input,
        lambda line: print(line, flush=True),
    )  # fmt: skip
    import json

    (CACHE / "scaling.json").write_text(json.dumps(results, indent=2))
    text = report(results)
    print(text)
    if not args.no_write:
        write(text)


if __name__ == "__main__":
    main()
