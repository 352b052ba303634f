"""A real `dagster dev` on a free loopback port, started and stopped by the test that uses it."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from abalone_platform_tests.support.project import (
    BIN,
    REPO_ROOT,
    Env,
    free_port,
    stop_process_group,
)

LOCATION = "abalone_platform"


class DagsterDev:
    def __init__(self, env: Env, url: str, log: Path, process: subprocess.Popen):
        self.env = env
        self.url = url
        self.log = log
        self.process = process

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.loads(response.read())
        assert "errors" not in payload, payload
        return payload["data"]

    def wait_for_location(self, timeout: float = 120) -> None:
        query = "{ workspaceOrError { ... on Workspace { locationEntries { name "
        query += "locationOrLoadError { __typename } } } } }"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dagster dev exited: {self.log.read_text()[-4000:]}")
            try:
                entries = self.graphql(query)["workspaceOrError"]["locationEntries"]
                loaded = {
                    e["name"]: e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"]
                    for e in entries
                }
                if loaded.get(LOCATION) == "RepositoryLocation":
                    return
                assert loaded.get(LOCATION) != "PythonError", self.log.read_text()[-4000:]
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"dagster dev did not load {LOCATION}: {self.log.read_text()[-4000:]}")

    def wait_for_run(self, run_id: str, timeout: float = 300) -> str:
        query = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.graphql(query, {"id": run_id})["runOrError"].get("status")
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(0.5)
        raise TimeoutError(f"run {run_id} did not finish: {self.log.read_text()[-4000:]}")


# The two ways to start it from the repository root: Dagster's own CLI with the workspace file,
# and dg with the project's [tool.dg] settings.
DAGSTER_DEV = (str(BIN / "dagster"), "dev", "-w", "workspace.yaml")
DG_DEV = (str(BIN / "dg"), "dev")


@contextmanager
def dagster_dev(
    env: Env, *extra_args: str, command: tuple[str, ...] = DAGSTER_DEV
) -> Iterator[DagsterDev]:
    """``command`` (`dagster dev -w workspace.yaml` by default) bound to 127.0.0.1; always
    stopped on exit."""
    port = free_port()
    log = env.dagster_home / "dagster_dev.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port), *extra_args],
            cwd=REPO_ROOT,
            env=env.vars,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        server = DagsterDev(env, f"http://127.0.0.1:{port}", log, process)
        server.wait_for_location()
        yield server
    finally:
        # dagster dev runs a webserver, a daemon and code servers: stop the whole group.
        stop_process_group(process)
