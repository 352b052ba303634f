"""`abalone-platform serve` (and `mlflow models serve`) on a free loopback port, started and
stopped by the test or fixture that uses it, and a small keep-alive HTTP client."""

from __future__ import annotations

import http.client
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from abalone_platform_tests.support.project import (
    BIN,
    REPO_ROOT,
    Env,
    free_port,
    stop_process_group,
)

# Importing MLflow and opening the registry takes seconds; more on a loaded 2-core machine.
STARTUP_TIMEOUT_S = 120.0


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    log: Path

    def client(self) -> Client:
        return Client(self.port)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Client:
    """One keep-alive connection (as a load balancer or SDK client keeps one)."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        self.connection.request(method, path, body=body, headers=headers or {})
        response = self.connection.getresponse()
        content = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, content

    def close(self) -> None:
        self.connection.close()


def _answers(port: int, path: str) -> bool:
    try:
        client = Client(port, timeout=5)
        try:
            client.request("GET", path)
        finally:
            client.close()
        return True
    except (ConnectionError, OSError, http.client.HTTPException):
        return False


@contextmanager
def _started(
    command: list[str], env: dict[str, str], port: int, log: Path, ready_path: str
) -> Iterator[Server]:
    with open(log, "w") as out:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(port, process, log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers(port, ready_path):
            if process.poll() is not None:
                raise AssertionError(
                    f"server exited with {process.returncode}:\n{server.log_text()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not answer in time:\n{server.log_text()}")
            time.sleep(0.2)  # polling for readiness, not timing a result
        yield server
    finally:
        stop_process_group(process)


@contextmanager
def abalone_serve(env: Env, *args: str, extra: dict[str, str] | None = None) -> Iterator[Server]:
    """`abalone-platform serve --port <free> ARGS` in ``env``, answering when yielded."""
    port = free_port()
    log = env.abalone_home.parent / f"serve-{port}.log"
    command = [str(BIN / "abalone-platform"), "serve", "--port", str(port), *args]
    with _started(command, {**env.vars, **(extra or {})}, port, log, "/ping") as server:
        yield server


@contextmanager
def mlflow_models_serve(env: Env, model_uri: str) -> Iterator[Server]:
    """`mlflow models serve -m MODEL_URI --env-manager local` on a free loopback port."""
    port = free_port()
    log = env.abalone_home.parent / f"mlflow-serve-{port}.log"
    command = [
        str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    variables = {
        **env.vars,
        "MLFLOW_TRACKING_URI": env.tracking_uri(),
        # It starts `uvicorn` by name: the project's own.
        "PATH": f"{BIN}:{env.vars.get('PATH', '')}",
    }
    with _started(command, variables, port, log, "/ping") as server:
        yield server
