"""A real Dask cluster started by hand: `dask scheduler` and two `dask worker` processes on free
loopback ports, stopped by the test that started them."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from abalone_platform_tests.support.project import BIN, free_port, stop_process_group

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class DaskScheduler:
    address: str
    workers: tuple[str, ...]


@contextmanager
def dask_scheduler(
    logs: Path, workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[DaskScheduler]:
    """``dask scheduler`` plus ``workers`` ``dask worker`` processes (one thread each), all on
    127.0.0.1; ``env`` is the workers' environment (e.g. AWS settings for S3 inputs)."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    environment = {**os.environ, **(env or {})}
    with ExitStack() as stack:

        def start(name: str, *args: str) -> subprocess.Popen:
            out = stack.enter_context(open(logs / f"{name}.log", "wb"))
            process = subprocess.Popen(
                [str(BIN / "dask"), *args],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            stack.callback(stop_process_group, process, 30)
            return process

        start(
            "scheduler",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            f"127.0.0.1:{free_port()}",
        )
        for i in range(workers):
            start(
                f"worker{i}",
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--name",
                f"worker{i}",
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        with Client(address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(workers, timeout=max(1.0, deadline - time.monotonic()))
            found = tuple(client.scheduler_info()["workers"])
        yield DaskScheduler(address, found)
