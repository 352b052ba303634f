"""A real `mlflow server` on a free loopback port (SQLite backend store and local artifact root
by default; a Postgres backend store and an S3 artifacts destination for the team set-up),
started and stopped by the test or fixture that uses it."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from abalone_platform_tests.support.project import BIN, free_port, stop_process_group

# Starting MLflow 3.x's server imports a great deal; on a loaded 2-core machine it takes ~15 s.
STARTUP_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class MlflowServer:
    url: str  # the tracking URI, e.g. http://127.0.0.1:PORT
    root: Path  # holds server.db, artifacts/ and server.log
    log: Path
    process: subprocess.Popen

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextmanager
def mlflow_server(
    root: Path,
    timeout: float = STARTUP_TIMEOUT_S,
    *,
    backend_store_uri: str | None = None,
    artifacts_destination: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[MlflowServer]:
    """`mlflow server` with its own process group, ready (GET /health answers 200) when yielded
    and always stopped, with whatever it started, on exit.

    ``backend_store_uri`` (default SQLite in ``root``) and ``artifacts_destination`` (the server
    proxies artifacts there, ``--artifacts-destination``; default: a local
    ``--default-artifact-root`` the clients write to directly); ``extra_env`` for the server
    process (e.g. AWS_ENDPOINT_URL and credentials for an s3:// destination)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABALONE_", "MLFLOW_"))}
    # The server's background job runners (several huey consumer processes) serve features the
    # registry does not use; they would only compete for the CPUs.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env.update(extra_env or {})
    artifacts = (
        ["--artifacts-destination", artifacts_destination]
        if artifacts_destination
        else ["--default-artifact-root", str(root / "artifacts")]
    )
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                backend_store_uri or f"sqlite:///{root / 'server.db'}",
                *artifacts,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = MlflowServer(url=url, root=root, log=log, process=process)
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(url):
            if process.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {process.returncode}:\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"mlflow server did not answer {url}/health within {timeout:.0f} s:\n"
                    f"{server.log_tail()}"
                )
            time.sleep(0.25)  # polling for readiness, not timing a result
        yield server
    finally:
        stop_process_group(process)
