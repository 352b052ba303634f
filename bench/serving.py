"""Real-time serving: `abalone-platform serve` beside `mlflow models serve` on the same
registered version, and Starlette beside FastAPI for the framework's own cost.

    python -m bench.serving [--requests N] [--seconds S] [--no-write]

One pipeline run registers an Approved version in temporary homes; each server then runs on a
free loopback port, and one keep-alive client sends the same bodies to each in turn (closed
loop, one request at a time): latency percentiles, and throughput as requests over the loop's
wall time. Every load is bounded in count and in time. The figures go into BENCHMARKS.md
between the `bench:serving` markers.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.blocks import write_block

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARED_ABALONE = REPO.parent / "shared" / "data" / "abalone.data"
GROUP = "AbaloneModelPackageGroupName"
ROUNDS = 3
HEADER = "sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 180
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/ping")
            connection.getresponse().read()
            connection.close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                raise RuntimeError(
                    f"{command[0]} did not start:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def load(port: int, body: bytes, requests: int, seconds: float) -> dict:
    """``requests`` POSTs of ``body`` over one keep-alive connection, or fewer if ``seconds``
    run out first; every answer must be 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "text/csv"}
    for _ in range(20):  # warm-up: the connection, the first predictions
        connection.request("POST", "/invocations", body, headers)
        connection.getresponse().read()
    latencies = []
    started = time.perf_counter()
    deadline = started + seconds
    while len(latencies) < requests and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        connection.request("POST", "/invocations", body, headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - t0)
        if response.status != 200:
            raise RuntimeError(f"answer {response.status} from port {port}")
    wall = time.perf_counter() - started
    connection.close()
    latencies.sort()
    return {
        "n": len(latencies),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "rps": len(latencies) / wall,
    }


def register(home: Path, input_data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABALONE_", "MLFLOW_"))}
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env.update(
        DAGSTER_HOME=str(home / "dagster"),
        ABALONE_HOME=str(home / "abalone"),
        ABALONE_INPUT_DATA=str(input_data),
        MLFLOW_TRACKING_URI=f"sqlite:///{home / 'abalone' / 'mlflow.db'}",
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",  # `mlflow models serve` runs `uvicorn`
    )
    config = home / "approved.yaml"
    config.write_text(
        "resources:\n  parameters:\n    config:\n      model_approval_status: Approved\n"
    )
    subprocess.run(
        [str(BIN / "dagster"), "job", "execute", "-m", "abalone_platform", "-j",
         "abalone_pipeline", "-c", str(config)],
        env=env, cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    return env


def _median_load(loads: list[dict]) -> dict:
    """Per figure, the median over the rounds (the machine is shared: single loads jitter)."""
    return {
        "n": sum(x["n"] for x in loads),
        **{key: statistics.median(x[key] for x in loads) for key in ("p50_ms", "p99_ms", "rps")},
    }


def bench_serving(
    input_data: Path, requests: int, seconds: float, log, rounds: int = ROUNDS
) -> dict:
    """Every server started once and left running; ``rounds`` rounds of loads, the servers
    alternated within each, so slow spells of the machine fall on both alike."""
    lines = input_data.read_text().splitlines()
    rows = [line.rsplit(",", 1)[0] for line in lines]
    bodies = {n: ("\n".join(rows[:n]) + "\n").encode() for n in (1, 100, 1000)}
    results: dict = {"servers": {}, "frameworks": {}, "rounds": rounds}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        home = Path(tmp)
        log("  registering a version (one pipeline run)")
        env = register(home, input_data)
        commands = {
            "abalone-platform serve": [str(BIN / "abalone-platform"), "serve", "--port", "{port}"],
            "mlflow models serve": [
                str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{GROUP}/1",
                "--env-manager", "local", "-h", "127.0.0.1", "-p", "{port}",
            ],
            "starlette_app": [str(BIN / "uvicorn"), "--factory", "bench.asgi_apps:starlette_app",
                              "--log-level", "warning", "--port", "{port}"],
            "fastapi_app": [str(BIN / "uvicorn"), "--factory", "bench.asgi_apps:fastapi_app",
                            "--log-level", "warning", "--port", "{port}"],
        }  # fmt: skip
        running: dict[str, tuple[int, subprocess.Popen]] = {}
        try:
            for name, command in commands.items():
                port = free_port()
                process = start(
                    [part.replace("{port}", str(port)) for part in command],
                    env,
                    port,
                    home / f"{name.split()[0]}.log",
                )
                running[name] = (port, process)
            loads: dict[tuple[str, int], list[dict]] = {}
            for round_number in range(rounds):
                for n, body in bodies.items():
                    count = requests if n < 1000 else max(50, requests // 10)
                    for name in commands:
                        if name.endswith("_app") and n != 1:
                            continue  # the frameworks alone: the 1-row body only
                        # MLflow's CSV has a header row; SageMaker's (ours) has none.
                        sent = (
                            (HEADER + "\n").encode() + body if name.startswith("mlflow") else body
                        )
                        figures = load(running[name][0], sent, count, seconds)
                        loads.setdefault((name, n), []).append(figures)
                        log(f"  round {round_number + 1}, {name}, {n}-row body: {figures}")
        finally:
            for _, process in running.values():
                stop(process)
    for (name, n), runs in loads.items():
        target = results["frameworks" if name.endswith("_app") else "servers"]
        if name.endswith("_app"):
            target[name] = _median_load(runs)
        else:
            target.setdefault(name, {})[n] = _median_load(runs)
    return results


def report(results: dict, when: str, load_avg: str) -> str:
    ours = results["servers"]["abalone-platform serve"]
    theirs = results["servers"]["mlflow models serve"]
    md = [
        f"Measured {when} by `python -m bench.serving` (part of `make bench`); load average "
        f"{load_avg}. One keep-alive client, one request at a time, on loopback; the same "
        f"registered version behind both servers; medians of {results['rounds']} rounds, the "
        "servers alternated within each round.",
        "",
        "| body | figure | `abalone-platform serve` | `mlflow models serve` | ratio | target |",
        "|---|---|---:|---:|---:|---|",
    ]
    targets = {1: ("p50 ≤ 1 ms", "≥ 5× MLflow's"), 100: ("", "≥ 5× MLflow's"), 1000: ("≤ 5 ms", "")}
    for n in (1, 100, 1000):
        a, b = ours[n] if n in ours else ours[str(n)], theirs[n] if n in theirs else theirs[str(n)]
        md.append(
            f"| {n} row{'s' if n > 1 else ''} | p50 / p99 | {a['p50_ms']:.2f} / {a['p99_ms']:.2f}"
            f" ms | {b['p50_ms']:.2f} / {b['p99_ms']:.2f} ms | {b['p50_ms'] / a['p50_ms']:.1f}× "
            f"faster | {targets[n][0]} |"
        )
        md.append(
            f"| | throughput | {a['rps']:,.0f} req/s ({a['n']:,} requests) | {b['rps']:,.0f} "
            f"req/s ({b['n']:,}) | {a['rps'] / b['rps']:.1f}× | {targets[n][1]} |"
        )
    fw = results["frameworks"]
    s, f = fw["starlette_app"], fw["fastapi_app"]
    md += [
        "",
        "Framework cost alone (a handler that reads the body and answers 8 bytes, 1-row body): "
        f"Starlette p50 {s['p50_ms']:.3f} ms, {s['rps']:,.0f} req/s; FastAPI p50 "
        f"{f['p50_ms']:.3f} ms, {f['rps']:,.0f} req/s ({f['p50_ms'] / s['p50_ms']:.2f}× "
        "Starlette's latency).",
    ]
    return "\n".join(md)


def write(text: str) -> None:
    write_block("serving", text, "Real-time serving")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="per load (1,000 rows: /10)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time bound per load")
    parser.add_argument("--input", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    source = args.input or Path(os.environ.get("ABALONE_INPUT_DATA") or SHARED_ABALONE)

    def log(line: str) -> None:
        print(line, flush=True)

    start_load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    results = bench_serving(source, args.requests, args.seconds, log)
    load_avg = f"{start_load} at the start, " + "/".join(f"{x:.1f}" for x in os.getloadavg())
    text = report(results, time.strftime("%Y-%m-%d"), load_avg + " at the end")
    print(text)
    if not args.no_write:
        write(text)


if __name__ == "__main__":
    main()
