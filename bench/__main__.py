"""`make bench`: every figure beside its baseline, as a ratio, and every target beside its
measured figure; results into BENCHMARKS.md.

    python -m bench [--only SECTIONS | --skip SECTIONS] [--reps N] [--no-write]
                    [--cache-rows 10000000] [--cache-reps 1]
                    [--sizes 1000000,10000000,30000000] [--dask-rows 10000000]

Sections (comma lists; default: all of them, in this order):

    default     `dagster job execute` of the default execution against bench/plain_pipeline.py
                with and without MLflow registration (alias: execution)
    throughput  the batch transform against bare `inplace_predict` (1M rows, in one process)
    load        loading the code location (`dg check defs`, `dagster definitions validate`,
                build_defs in one process) and a sensor tick (`dagster sensor preview`, and
                one evaluation in one process)
    cache       step caching: an identical second `dagster job execute` on --cache-rows rows
                against the first, and which steps it reused
    scaling     each step from 1M to 30M rows, the transform on Dask (bench/scaling.py)
    serving     `abalone-platform serve` against `mlflow models serve` (bench/serving.py)

Whole-process figures are medians over ``--reps`` fresh processes, the figure and its baseline
alternated within each rep; throughputs are the phase's own seconds (after imports) from the
same kind of runs. Synthetic data is generated once into abalone_home/bench/ (git-ignored) and
reused. The first four sections each rewrite their own part of BENCHMARKS.md's `bench:results`
block (the parts of sections not run are kept); scaling and serving have blocks of their own.
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

from bench.blocks import BENCHMARKS_MD, write_parts
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
    output: str = ""  # the end of its stdout and stderr


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
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, rss, max(peak[0], rss), cpu, result, (stdout + stderr)[-4000:])


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


SECTIONS = ("default", "throughput", "load", "cache", "scaling", "serving")
ALIASES = {"execution": "default"}
# The sections whose figures are parts of the `bench:results` block, in this order.
RESULT_PARTS = ("default", "throughput", "load", "cache")
# Before the block had parts: its `### ` headings, and the part each belongs to.
LEGACY_HEADINGS = {"Default execution": "default", "Batch transform throughput": "throughput"}
DAGSTER_EXECUTE = ["job", "execute", "-m", "abalone_platform", "-j", "abalone_pipeline"]
WATCHED_SENSOR = "new_input_data_sensor"


@dataclass
class Target:
    """One target of the issue beside its measured figure."""

    target: str
    measured: str
    met: bool | None  # None: no verdict (nothing measured)

    def row(self) -> str:
        verdict = {True: "met", False: "**not met**", None: "not measured"}[self.met]
        return f"| {self.target} | {self.measured} | {verdict} |"


def target_table(targets: list[Target]) -> list[str]:
    return ["| target | measured | |", "|---|---|---|", *(t.row() for t in targets)]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the project's and MLflow's settings (a shell's ABALONE_HOME or
    MLFLOW_TRACKING_URI must not point a measured process elsewhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABALONE_", "MLFLOW_"))}
    return env | extra


def write_config(path: Path, parameters: dict) -> Path:
    """A run config file setting the parameters resource (JSON is YAML)."""
    path.write_text(json.dumps({"resources": {"parameters": {"config": parameters}}}))
    return path


def caching_supported() -> bool:
    """Whether this checkout's PipelineParameters has enable_caching (and cache_expire_after)."""
    found = measure([sys.executable, "-m", "bench.caching", "supports"], clean_env()).result
    return bool(found.get("enable_caching") and found.get("cache_expire_after"))


def dagster_runs(env: dict[str, str]) -> list[dict]:
    """The runs of ``env``'s DAGSTER_HOME, oldest first (bench/caching.py)."""
    return measure([sys.executable, "-m", "bench.caching", "runs"], env).result["runs"]


def cache_hits(run: dict) -> tuple[list[str], list[str]]:
    """The steps of ``run`` whose every materialization was a cache hit, and the others."""
    steps: dict[str, bool] = {}
    for info in run["materializations"].values():
        hit = info["cache_hit_of"] is not None
        steps[info["step"]] = steps.get(info["step"], True) and hit
    return [s for s, hit in steps.items() if hit], [s for s, hit in steps.items() if not hit]


def bench_default_execution(
    input_data: Path, reps: int, log: Callable[[str], None], caching: bool
) -> dict:
    """`dagster job execute` of the default execution against the plain script with and
    without registration, each a whole process, alternated within each rep: on new homes
    (first run: databases created) and again on the same homes (every later run). With step
    caching in the project, the comparable next run is one with `enable_caching: false` (the
    plain script computes everything again); the default config's next run, which reuses the
    first run's steps, is measured beside it."""
    dagster_cmd = [str(BIN / "dagster"), *DAGSTER_EXECUTE]
    keys = ("dg1", "pl1", "dg2", "pl2", "plnr", "dg3")
    figures: dict[str, list[Run]] = {k: [] for k in keys}
    hits: dict = {}
    for rep in range(reps):
        with tempfile.TemporaryDirectory(prefix="bench-exec-") as tmp:
            root = Path(tmp)
            env = pipeline_env(root / "dg", input_data)
            no_cache = dagster_cmd
            if caching:
                config = write_config(root / "no-cache.json", {"enable_caching": False})
                no_cache = [*dagster_cmd, "-c", str(config)]
            plain = [sys.executable, str(REPO / "bench" / "plain_pipeline.py")]
            plain += ["--input", str(input_data), "--home", str(root / "plain")]
            bare = [*plain[:-1], str(root / "plain-nr"), "--no-registry"]
            figures["dg1"].append(measure(dagster_cmd, env))
            figures["pl1"].append(measure(plain, clean_env()))
            figures["dg2"].append(measure(no_cache, env))
            figures["pl2"].append(measure(plain, clean_env()))
            figures["plnr"].append(measure(bare, clean_env()))
            if caching:
                figures["dg3"].append(measure(dagster_cmd, env))
                if rep == reps - 1:
                    done, computed = cache_hits(dagster_runs(env)[-1])
                    hits = {"reused": done, "computed": computed}
        cached_run = f", cached {figures['dg3'][-1].wall:.2f} s" if caching else ""
        log(
            f"  rep {rep + 1}/{reps}: dagster {figures['dg1'][-1].wall:.2f}/"
            f"{figures['dg2'][-1].wall:.2f} s{cached_run}, plain {figures['pl1'][-1].wall:.2f}/"
            f"{figures['pl2'][-1].wall:.2f} s, plain without registry "
            f"{figures['plnr'][-1].wall:.2f} s"
        )
    return {
        "walls": {k: [r.wall for r in v] for k, v in figures.items() if v},
        "rss": {k: median(v, lambda r: r.tree_rss) for k, v in figures.items() if v},
        "caching": caching,
        "hits": hits,
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


def bench_load(source: Path, reps: int, work: Path, log: Callable[[str], None]) -> dict:
    """Loading the code location and a sensor tick, each a whole process, alternated within
    each rep, on one pair of homes whose instance already exists (as a daemon's does: a
    discarded first tick creates its databases). The watched folder holds one data file, so a
    tick lists it (seen for the first time: the tick skips and keeps it in its cursor)."""
    env = pipeline_env(work / "load", source)
    watched = Path(env["ABALONE_HOME"]) / "incoming" / "input"
    watched.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, watched / source.name)
    commands = {
        "python": [sys.executable, "-c", "pass"],
        "defs": [sys.executable, "-m", "bench.load", "defs"],
        "validate": [str(BIN / "dagster"), "definitions", "validate", "-m", "abalone_platform"],
        "dg_check": [str(BIN / "dg"), "check", "defs"],
        "preview": [
            str(BIN / "dagster"),
            "sensor",
            "preview",
            "-m",
            "abalone_platform",
            WATCHED_SENSOR,
        ],  # fmt: skip
        "tick": [sys.executable, "-m", "bench.load", "tick", "--sensor", WATCHED_SENSOR],
    }
    measure(commands["tick"], env)  # the instance's databases, created once
    figures: dict[str, list[Run]] = {k: [] for k in commands}
    for rep in range(reps):
        for key, cmd in commands.items():
            figures[key].append(measure(cmd, env))
        log(
            f"  rep {rep + 1}/{reps}: "
            + ", ".join(f"{key} {runs[-1].wall:.2f} s" for key, runs in figures.items())
        )
    inner = {
        key: {
            name: statistics.median(r.result[name] for r in figures[key])
            for name, value in figures[key][0].result.items()
            if isinstance(value, float)
        }
        for key in ("defs", "tick")
    }
    last_tick = figures["tick"][-1].result
    return {
        "walls": {k: [r.wall for r in v] for k, v in figures.items()},
        "inner": inner,
        "modules": last_tick["modules"],
        "heavy": last_tick["heavy"],
        "outcomes": last_tick["outcomes"],
        "preview_says": next(
            (
                line.strip()
                for line in figures["preview"][-1].output.splitlines()
                if WATCHED_SENSOR in line and "code_server" not in line
            ),
            "",
        ),
    }


def bench_cache(
    source: Path,
    rows: int,
    reps: int,
    work: Path,
    log: Callable[[str], None],
    caching: bool,
    mse_threshold: float | None,
) -> dict:
    """Step caching: `dagster job execute` twice on new homes with the same input and batch
    file (``rows`` synthetic rows) and the same parameters; the second run's wall time against
    the first's, and which steps the second reused (their materializations' cache_hit_of)."""
    data = cached(source, CACHE, rows) if rows else source
    parameters: dict = {"input_data": str(data), "batch_data": str(data)}
    if caching:
        parameters |= {"enable_caching": True, "cache_expire_after": ""}
    if mse_threshold is not None:
        parameters["mse_threshold"] = mse_threshold
    dagster_cmd = [str(BIN / "dagster"), *DAGSTER_EXECUTE]
    pairs = []
    for rep in range(reps):
        root = work / f"pair-{rep}"
        env = pipeline_env(root, data)
        cmd = [*dagster_cmd, "-c", str(write_config(root / "run.json", parameters))]
        first = measure(cmd, env)
        second = measure(cmd, env)
        runs = dagster_runs(env)
        reused, computed = cache_hits(runs[-1])
        pairs.append(
            {
                "first": first.wall,
                "second": second.wall,
                "first_rss": first.tree_rss,
                "second_rss": second.tree_rss,
                "runs": runs[-2:],
                "reused": reused,
                "computed": computed,
                "hit_of_first": sorted(
                    {
                        info["cache_hit_of"]
                        for info in runs[-1]["materializations"].values()
                        if info["cache_hit_of"]
                    }
                )
                == [runs[-2]["run_id"]],
            }
        )
        shutil.rmtree(root, ignore_errors=True)
        log(
            f"  rep {rep + 1}/{reps}: first {first.wall:.2f} s, second {second.wall:.2f} s "
            f"({second.wall / first.wall:.2f}×); reused {', '.join(reused) or 'nothing'}"
        )
    return {
        "rows": rows or None,
        "input": str(data),
        "caching": caching,
        "mse_threshold": mse_threshold,
        "pairs": pairs,
    }


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}×"


def seconds(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s"


def both_runs(first: float, next_: float, limit: float) -> tuple[str, bool | None]:
    """A target held by the first run (new homes) and the next (same homes): met when both
    meet it."""
    text = f"{first:.2f}× on the first run, {next_:.2f}× on the next"
    return text, max(first, next_) <= limit


def reps(n: int) -> str:
    return f"{n} rep" if n == 1 else f"{n} reps"


def dated(section: dict, what: str) -> str:
    return (
        f"Measured {section['date']}; {what}. Load average (1/5/15 min) {section['load']['start']}"
        f" at the start, {section['load']['end']} at the end (other jobs share this machine)."
    )


def report_default(ex: dict) -> tuple[str, list[Target]]:
    w = {k: statistics.median(v) for k, v in ex["walls"].items()}
    md = [
        dated(ex, f"medians of {reps(ex['reps'])}, the processes alternated within each rep"),
        "",
        "### Default execution (whole processes)",
        "",
        "| run | `dagster job execute` | plain script, registering in MLflow | ratio | "
        "bare script, no registration | ratio |",
        "|---|---:|---:|---:|---:|---:|",
        f"| first run (new homes: databases created) | {w['dg1']:.2f} s | {w['pl1']:.2f} s | "
        f"{ratio(w['dg1'], w['pl1'])} | {w['plnr']:.2f} s | {ratio(w['dg1'], w['plnr'])} |",
    ]
    recompute = "; `enable_caching: false`, every step computed" if ex["caching"] else ""
    md.append(
        f"| next run (same homes{recompute}) | {w['dg2']:.2f} s | {w['pl2']:.2f} s | "
        f"{ratio(w['dg2'], w['pl2'])} | {w['plnr']:.2f} s | {ratio(w['dg2'], w['plnr'])} |"
    )
    if "dg3" in w:
        reused = ", ".join(ex["hits"].get("reused", [])) or "none"
        md.append(
            f"| next run, default config (same homes; cached steps reused: {reused}) | "
            f"{w['dg3']:.2f} s | {w['pl2']:.2f} s | {ratio(w['dg3'], w['pl2'])} | | |"
        )
    md.append(
        f"| peak RSS (process tree), next run | {ex['rss']['dg2'] / MIB:.0f} MiB | "
        f"{ex['rss']['pl2'] / MIB:.0f} MiB | {ratio(ex['rss']['dg2'], ex['rss']['pl2'])} | "
        f"{ex['rss']['plnr'] / MIB:.0f} MiB | {ratio(ex['rss']['dg2'], ex['rss']['plnr'])} |"
    )
    md += [
        "",
        "The plain script (`bench/plain_pipeline.py`) does the same work in one script without "
        "Dagster and registers as a plain MLflow user does (`mlflow.xgboost.log_model` with "
        "explicit `pip_requirements`, a signature, an input example and "
        "`registered_model_name`, its run's parameters and metrics); the bare script is the "
        "same without registration (no mlflow import).",
        "",
    ]
    targets = []
    for limit, base, what in (
        (1.3, ("pl1", "pl2"), "the plain script with MLflow registration"),
        (2.0, ("plnr", "plnr"), "the bare script without registration"),
    ):
        measured, met = both_runs(w["dg1"] / w[base[0]], w["dg2"] / w[base[1]], limit)
        targets.append(Target(f"default execution ≤ {limit}× {what}", measured, met))
    md += target_table(targets)
    return "\n".join(md), targets


def report_throughput(tp: dict) -> tuple[str, list[Target]]:
    t_rate, b_rate = tp["rows"] / tp["transform_seconds"], tp["rows"] / tp["bare_seconds"]
    md = [
        dated(tp, "medians of the alternated repetitions in one process"),
        "",
        f"### Batch transform throughput ({tp['rows']:,} rows; in-process seconds, the two "
        "alternated in one process)",
        "",
        "| project transform (parse + preprocess + predict + write) | bare `inplace_predict` "
        "on a parsed float32 array | ratio (target ≥ 0.5×) |",
        "|---:|---:|---:|",
        f"| {t_rate:,.0f} rows/s | {b_rate:,.0f} rows/s | {ratio(t_rate, b_rate)} |",
    ]
    target = Target(
        "batch transform ≥ 0.5× bare `inplace_predict` throughput (issue 5)",
        ratio(t_rate, b_rate),
        t_rate / b_rate >= 0.5,
    )
    return "\n".join(md), [target]


def report_load(ld: dict) -> tuple[str, list[Target]]:
    w = {k: statistics.median(v) for k, v in ld["walls"].items()}
    d, t = ld["inner"]["defs"], ld["inner"]["tick"]
    md = [
        dated(ld, f"medians of {reps(ld['reps'])}, the processes alternated within each rep"),
        "",
        "### Loading the code location and a sensor tick",
        "",
        "| figure | seconds |",
        "|---|---:|",
        f"| interpreter start and exit alone (`python -c pass`) | {w['python']:.2f} |",
        f"| `dg check defs` (the project's documented check: dg loads the project and runs "
        f"Dagster's validation on a workspace of it), whole process | {w['dg_check']:.2f} |",
        f"| `dagster definitions validate -m abalone_platform`, whole process | "
        f"{w['validate']:.2f} |",
        f"| in one process (`python -m bench.load defs`): `import dagster` | "
        f"{d['import_dagster']:.2f} |",
        f"| in one process: importing the project and `build_defs()` | "
        f"{d['import_and_build']:.2f} |",
        f"| in one process: `Definitions.validate_loadable` | {d['validate']:.2f} |",
        f"| that process, whole | {w['defs']:.2f} |",
        f"| `dagster sensor preview -m abalone_platform {WATCHED_SENSOR}`: the CLI starts a "
        f"code server for the module (which loads the location), which evaluates the sensor "
        f"once; whole process | {w['preview']:.2f} |",
        f"| in one process (`python -m bench.load tick`), as a code server does it: loading "
        f"the location (import, `build_defs()`, its repository) | {t['load']:.2f} |",
        f"| in that process: opening the instance (`DagsterInstance.get()`) | "
        f"{t['instance']:.2f} |",
        f"| in that process: one evaluation ({ld['outcomes'][0].split(':')[0]}: the file seen "
        f"for the first time) | {t['first_tick']:.3f} |",
        f"| in that process: the next evaluation with its cursor "
        f"({ld['outcomes'][1].split(':')[0]}) | {t['second_tick']:.3f} |",
        f"| that process, whole | {w['tick']:.2f} |",
        "",
        f"Loading the location imports {ld['modules']:,} modules, among them "
        f"{', '.join(ld['heavy']) or 'none of the ML libraries'}"
        f"{' (of xgboost, sklearn, scipy, pandas, pyarrow, mlflow, matplotlib, dask)'}. "
        "A sensor tick is measured as the daemon meets it on a code server it has just "
        "started (the daemon's own process already running): a fresh process that loads the "
        "code location, opens the instance and evaluates the sensor; `dagster sensor preview` "
        "adds the CLI's own start to that. On a code server that stays up, a tick is the "
        "evaluation alone (the rows above).",
        "",
    ]
    targets = [
        Target("loading the code location ≤ 1.5 s (`dg check defs`)", f"{w['dg_check']:.2f} s",
               w["dg_check"] <= 1.5),
        Target("loading the code location ≤ 1.5 s (`dagster definitions validate`)",
               f"{w['validate']:.2f} s", w["validate"] <= 1.5),
        Target("a sensor tick ≤ 1.5 s: a fresh process that loads the location, opens the "
               f"instance and evaluates {WATCHED_SENSOR} (`python -m bench.load tick`)",
               f"{w['tick']:.2f} s", w["tick"] <= 1.5),
        Target("a sensor tick ≤ 1.5 s through Dagster's CLI (`dagster sensor preview`: the CLI, "
               "and a code server it starts that loads the location and evaluates once)",
               f"{w['preview']:.2f} s", w["preview"] <= 1.5),
    ]  # fmt: skip
    md += target_table(targets)
    return "\n".join(md), targets


def report_cache(cc: dict) -> tuple[str, list[Target]]:
    pairs = cc["pairs"]
    first = [p["first"] for p in pairs]
    second = [p["second"] for p in pairs]
    ratios = [p["second"] / p["first"] for p in pairs]
    rows = f"{cc['rows']:,} rows" if cc["rows"] else "the UCI file"
    threshold = (
        f", `mse_threshold: {cc['mse_threshold']}`" if cc["mse_threshold"] is not None else ""
    )
    md = [
        dated(cc, f"{len(pairs)} pair(s) of runs on new homes" + (
            ", the median of the pairs' ratios" if len(pairs) > 1 else "")),
        "",
        f"### Step caching: an identical second run ({rows}; whole processes)",
        "",
        "Two `dagster job execute` runs of the default execution on the same new homes with "
        f"the same input and batch file and parameters (`enable_caching: true`, "
        f"`cache_expire_after: \"\"`{threshold}).",
        "",
    ]  # fmt: skip
    if not cc["caching"]:
        md += [
            "This checkout's parameters have no `enable_caching`: no step can be reused (no hits).",
            "",
        ]
    last = pairs[-1]
    run1, run2 = last["runs"]
    steps = list(dict.fromkeys([*run1["steps"], *run2["steps"]]))
    md += [
        "| | first run | second run |",
        "|---|---:|---:|",
        f"| whole process (median) | {seconds(first)} | {seconds(second)} |",
        f"| the run itself (Dagster's start to end; last pair) | {run1['seconds']:.2f} s | "
        f"{run2['seconds']:.2f} s |",
        f"| peak RSS (process tree; last pair) | {last['first_rss'] / MIB:,.0f} MiB | "
        f"{last['second_rss'] / MIB:,.0f} MiB |",
    ]
    for step in steps:
        mark = " (reused)" if step in last["reused"] else ""
        md.append(
            f"| step `{step}`{mark} | {run1['steps'].get(step, 0):.2f} s | "
            f"{run2['steps'].get(step, 0):.2f} s |"
        )
    hits = len(last["reused"])
    total = hits + len(last["computed"])
    md += [
        "",
        f"Second run: {hits} of {total} materializing steps reused "
        f"({', '.join(last['reused']) or 'none'}; every one of their materializations carries "
        f"`cache_hit_of`"
        + (": the first run's id" if last["hit_of_first"] else "")
        + f"), computed: {', '.join(last['computed']) or 'none'}.",
    ]
    notes = run2.get("cache_notes", {})
    said = [f"- `{step}`: {notes[step]}" for step in last["computed"] if step in notes]
    if said:
        md += ["", "What the computed steps logged about their cache entry (second run):", ""]
        md += said
    md.append("")
    ratio_text = f"{statistics.median(ratios):.2f}× ({seconds(second)} against {seconds(first)}"
    ratio_text += f"; {hits} of {total} steps reused)"
    targets = [
        Target(
            f"an identical second run on {rows} ≤ 0.5× the first run's wall time",
            ratio_text,
            statistics.median(ratios) <= 0.5,
        )
    ]
    md += target_table(targets)
    return "\n".join(md), targets


REPORTS = {
    "default": report_default,
    "throughput": report_throughput,
    "load": report_load,
    "cache": report_cache,
}


def write_benchmarks(machine_line: str, parts: dict[str, str]) -> None:
    write_parts(
        "results", f"Machine: {machine_line}", parts, RESULT_PARTS, "Benchmarks", LEGACY_HEADINGS
    )


def parse_sections(only: str, skip: str) -> list[str]:
    def names(text: str) -> list[str]:
        found = [ALIASES.get(n.strip(), n.strip()) for n in text.split(",") if n.strip()]
        unknown = sorted(set(found) - set(SECTIONS))
        if unknown:
            raise SystemExit(f"unknown section(s) {', '.join(unknown)}; known: {SECTIONS}")
        return found

    chosen = set(names(only)) if only else set(SECTIONS)
    return [s for s in SECTIONS if s in chosen and s not in set(names(skip))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help=f"comma list of sections: {SECTIONS}")
    parser.add_argument("--skip", default="", help="comma list of sections to leave out")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", default="1000000,10000000,30000000")
    parser.add_argument("--dask-rows", type=int, default=10_000_000)
    parser.add_argument("--cache-rows", type=int, default=10_000_000, help="0: the UCI file itself")
    parser.add_argument("--cache-reps", type=int, default=1, help="pairs of runs")
    parser.add_argument(
        "--cache-mse-threshold",
        type=float,
        default=None,
        help="MseThreshold for the cache section's runs (default: the pipeline's)",
    )
    parser.add_argument("--input", type=Path, default=None, help="the UCI abalone.data file")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md as it is")
    args = parser.parse_args(argv)
    sections = parse_sections(args.only, args.skip)
    source = args.input or Path(os.environ.get("ABALONE_INPUT_DATA") or SHARED_ABALONE)
    if not source.exists():
        # A fresh clone without the file: the pipeline's own download (checksum verified).
        from abalone_platform.storage.inputs import UCI_ABALONE_URL, resolve_input

        source = resolve_input(
            UCI_ABALONE_URL, "bench input", CACHE / "download", env_hint="ABALONE_INPUT_DATA"
        ).path
    sizes = [int(s) for s in args.sizes.split(",") if s]

    def log(line: str) -> None:
        print(line, flush=True)

    def load() -> str:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())

    date = time.strftime("%Y-%m-%d")
    results: dict = {"machine": machine(), "date": date, "reps": args.reps, "sections": {}}
    log(f"machine: {results['machine']}")
    log(f"sections: {', '.join(sections)}")
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=CACHE))
    started = time.perf_counter()
    parts: dict[str, str] = {}
    targets: list[Target] = []
    caching: bool | None = None

    def section(name: str, title: str, run: Callable[[], dict]) -> None:
        log(f"\n{title}")
        figures = {"date": date, "reps": args.reps, "load": {"start": load()}}
        figures |= run()
        figures["load"]["end"] = load()
        results["sections"][name] = figures
        text, found = REPORTS[name](figures)
        targets.extend(found)
        parts[name] = text
        print(f"\n{text}\n", flush=True)
        if not args.no_write:
            # Each section's part as soon as it is measured; the other parts are kept.
            write_benchmarks(results["machine"], {name: text})

    def has_caching() -> bool:
        nonlocal caching
        if caching is None:
            caching = caching_supported()
            log(f"step caching in this checkout: {'yes' if caching else 'no'}")
        return caching

    try:
        if "default" in sections:
            section(
                "default",
                "default execution: dagster job execute vs bench/plain_pipeline.py",
                lambda: bench_default_execution(source, args.reps, log, has_caching()),
            )
        if "throughput" in sections:
            section(
                "throughput",
                "transform throughput vs bare inplace_predict",
                lambda: bench_throughput(source, 1_000_000, args.reps, work, log),
            )
        if "load" in sections:
            section(
                "load",
                "loading the code location and a sensor tick",
                lambda: bench_load(source, args.reps, work, log),
            )
        if "cache" in sections:
            section(
                "cache",
                f"step caching: an identical second run ({args.cache_rows:,} rows)",
                lambda: bench_cache(
                    source,
                    args.cache_rows,
                    args.cache_reps,
                    work,
                    log,
                    has_caching(),
                    args.cache_mse_threshold,
                ),
            )
        if "scaling" in sections:
            # Its own block of BENCHMARKS.md (bench/scaling.py): each step to 30M rows, Dask.
            from bench import scaling

            scaled = scaling.run(sizes, args.dask_rows, args.reps, source, log)
            text = scaling.report(scaled)
            print(text)
            if not args.no_write:
                scaling.write(text)
        if "serving" in sections:
            # Its own block of BENCHMARKS.md (bench/serving.py), written as soon as measured.
            from bench import serving

            log("real-time serving: abalone-platform serve vs mlflow models serve")
            served = serving.bench_serving(source, 1000, 10.0, log)
            text = serving.report(served, results["date"], load() + " at its end")
            print(text)
            if not args.no_write:
                serving.write(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (CACHE / "results.json").write_text(json.dumps(results, indent=2))
    log(
        f"\n(total {time.perf_counter() - started:.0f} s; "
        f"raw figures in {CACHE / 'results.json'})\n"
    )
    if targets:
        print("\n".join(["Targets measured in this run:", "", *target_table(targets)]))
    if parts and not args.no_write:
        log(f"\nwritten to {BENCHMARKS_MD}")


if __name__ == "__main__":
    main()
