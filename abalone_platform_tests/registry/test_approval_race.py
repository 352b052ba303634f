"""Concurrent approvals through the real `abalone-platform` command, on both registry backends:
the embedded SQLite registry (a file lock) and a real `mlflow server` (a lock registered model).

The race is made deterministic with the ``registry.transition`` fault barrier: each racing
process waits, after reading the version and before taking the registry's lock, until both have
read it. So both always act on the same stale read, and the compare-and-set under the lock must
refuse exactly one of them. Which one wins is up to the lock; every assertion holds either way.

The versions are registered directly with MLflow, tagged the way model_package tags them, so no
pipeline run is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from abalone_platform.registry import (
    APPROVAL_TAG,
    APPROVED,
    APPROVED_ALIAS,
    COMPLETE,
    HISTORY_TAG,
    LOCK_MODEL_SUFFIX,
    MODEL_PACKAGE_GROUP,
    PENDING,
    REGISTRATION_TAG,
    REJECTED,
    open_registry,
)
from abalone_platform_tests.support.mlflow_server import MlflowServer, mlflow_server
from abalone_platform_tests.support.project import BIN

# Runs the pipeline in subprocesses or several times over: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

CLI = str(BIN / "abalone-platform")
LOCK_MODEL = MODEL_PACKAGE_GROUP + LOCK_MODEL_SUFFIX
EXPERIMENT = "abalone_platform"
CLI_TIMEOUT_S = 120
RACE_LOST = "changed under this request"


@dataclass(frozen=True)
class Backend:
    """One registry as the CLI sees it: the tracking URI and the environment to run it in."""

    kind: str  # "sqlite" or "server"
    tracking_uri: str
    env: dict[str, str]  # the CLI's environment (no ABALONE_FAULT)
    workdir: Path
    artifact_location: str | None  # for the experiment; None: the server's default root

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def popen(self, *args: str, fault: str | None = None) -> subprocess.Popen[str]:
        env = dict(self.env)
        if fault is not None:
            env["ABALONE_FAULT"] = fault
        return subprocess.Popen(
            [CLI, *args],
            cwd=self.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
        )

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real tracking server for the module; each test resets the model package group."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as running:
        yield running


@pytest.fixture(params=["sqlite", "server"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    home = tmp_path / "abalone_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABALONE_", "MLFLOW_"))}
    env.update(ABALONE_HOME=str(home), PYTHONUNBUFFERED="1")
    if request.param == "sqlite":
        # MLFLOW_TRACKING_URI unset: the CLI falls back to SQLite in ABALONE_HOME.
        uri = f"sqlite:///{home / 'mlflow.db'}"
        artifact_location = (home / "mlartifacts").as_uri()
    else:
        uri = request.getfixturevalue("server").url
        env["MLFLOW_TRACKING_URI"] = uri
        artifact_location = None
    return Backend(request.param, uri, env, tmp_path, artifact_location)


def _delete_if_present(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" not in str(exc.error_code):
            raise


def register_pending_versions(backend: Backend, count: int) -> None:
    """A fresh model package group holding versions 1..count, each PendingManualApproval and
    completely registered, created and tagged the way model_package registers them."""
    # open_registry creates the embedded SQLite registry the way the pipeline does (a no-op
    # for a server); its client is a plain MlflowClient.
    client = open_registry(backend.tracking_uri).client
    # The server outlives a test: start each from an empty group (and no lock entry).
    _delete_if_present(client, MODEL_PACKAGE_GROUP)
    _delete_if_present(client, LOCK_MODEL)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(EXPERIMENT, artifact_location=backend.artifact_location)
    )
    client.create_registered_model(MODEL_PACKAGE_GROUP, description="approval race test")
    for number in range(1, count + 1):
        dagster_run_id = f"race-run-{number}"
        run = client.create_run(experiment_id, tags={"dagster_run_id": dagster_run_id})
        version = client.create_model_version(
            MODEL_PACKAGE_GROUP,
            # No artifacts are logged: nothing here reads the model, only its registry entry.
            source=f"{run.info.artifact_uri}/model",
            run_id=run.info.run_id,
            tags={
                APPROVAL_TAG: PENDING,
                REGISTRATION_TAG: COMPLETE,
                "dagster_run_id": dagster_run_id,
                "mse": "5.35",
            },
        )
        client.set_terminated(run.info.run_id)
        assert str(version.version) == str(number)


@dataclass(frozen=True)
class Attempt:
    """One racing request and how it ended."""

    action: str  # "approve" or "reject"
    version: int
    by: str
    result: subprocess.CompletedProcess[str]

    @property
    def target(self) -> str:
        return APPROVED if self.action == "approve" else REJECTED

    def __str__(self) -> str:
        r = self.result
        return f"{self.action} {self.version} by {self.by}: rc {r.returncode}\n{r.stdout}{r.stderr}"


def race(backend: Backend, barrier: Path, *requests: tuple[str, int, str]) -> list[Attempt]:
    """Start one CLI process per (action, version, by) at once, every one held at the
    registry.transition barrier until all have read their version; wait for all."""
    assert ":" not in str(barrier), "the fault spec separates fields with ':'"
    fault = f"registry.transition=barrier:{barrier}:{len(requests)}"
    processes = [
        backend.popen(
            "registry",
            action,
            str(version),
            "--reason",
            f"{by} reviewed it",
            "--by",
            by,
            fault=fault,
        )
        for action, version, by in requests
    ]
    try:
        outputs = [process.communicate(timeout=CLI_TIMEOUT_S) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    attempts = [
        Attempt(action, version, by, subprocess.CompletedProcess(p.args, p.returncode, out, err))
        for (action, version, by), p, (out, err) in zip(requests, processes, outputs, strict=True)
    ]
    # Every process read its version before any of them could take the lock and write.
    arrived = sorted(barrier.glob("*.arrived"))
    assert len(arrived) == len(requests), "\n".join(map(str, attempts))
    return attempts


def one_winner(attempts: list[Attempt]) -> tuple[Attempt, Attempt]:
    """(winner, loser) of two conflicting requests: one made, one refused as a race."""
    report = "\n".join(map(str, attempts))
    assert sorted(a.result.returncode for a in attempts) == [0, 1], report
    winner = next(a for a in attempts if a.result.returncode == 0)
    loser = next(a for a in attempts if a.result.returncode == 1)
    assert f"version 1: {PENDING} -> {winner.target} by {winner.by}" in winner.result.stdout
    assert RACE_LOST in loser.result.stderr, report
    assert f"is now {winner.target} ({winner.by} at" in loser.result.stderr, report
    assert "nothing was written" in loser.result.stderr, report
    assert "Traceback" not in loser.result.stderr, report
    return winner, loser


def raw_registry(backend: Backend) -> dict[str, Any]:
    """What MLflow itself holds, read before any CLI command could correct it (list and
    describe re-derive the `approved` alias)."""
    client = backend.client()
    versions = client.search_model_versions(f"name = '{MODEL_PACKAGE_GROUP}'")
    group = client.get_registered_model(MODEL_PACKAGE_GROUP)
    alias = group.aliases.get(APPROVED_ALIAS)
    return {
        "versions": {
            int(v.version): {
                "status": v.tags.get(APPROVAL_TAG),
                "history": json.loads(v.tags[HISTORY_TAG]) if HISTORY_TAG in v.tags else None,
            }
            for v in versions
        },
        "alias": None if alias is None else str(alias),
        "registered_models": sorted(m.name for m in client.search_registered_models()),
    }


def assert_no_lock_left(backend: Backend) -> None:
    """Every command released the registry's lock: on a server the lock is a registered model
    that must be gone again; on SQLite it is a file lock and no such model ever exists."""
    names = raw_registry(backend)["registered_models"]
    assert LOCK_MODEL not in names
    assert names == [MODEL_PACKAGE_GROUP]


def assert_history(history: list[dict[str, Any]], winner: Attempt) -> None:
    """Registration, then the winner's change, and nothing of the loser's."""
    assert [(h["from"], h["to"]) for h in history] == [
        (None, PENDING),
        (PENDING, winner.target),
    ], history
    assert history[1]["by"] == winner.by
    assert history[1]["reason"] == f"{winner.by} reviewed it"


def test_two_approvals_of_one_version_exactly_one_is_made(backend: Backend, tmp_path: Path):
    register_pending_versions(backend, 1)

    attempts = race(backend, tmp_path / "barrier", ("approve", 1, "alice"), ("approve", 1, "bob"))
    winner, _ = one_winner(attempts)

    raw = raw_registry(backend)
    assert raw["versions"][1]["status"] == APPROVED
    assert_history(raw["versions"][1]["history"], winner)
    assert raw["alias"] == "1"
    described = backend.json("registry", "describe", "1")
    assert described["approval_status"] == APPROVED
    assert described["aliases"] == [APPROVED_ALIAS]
    assert len(described["approval_history"]) == 2
    assert_history(described["approval_history"], winner)
    assert_no_lock_left(backend)

    # Sequential sanity: approving it again is refused as a transition, not as a race.
    again = backend.cli("registry", "approve", "1", "--reason", "once more", "--by", "carol")
    assert again.returncode == 1, again.stdout + again.stderr
    assert "cannot become Approved" in again.stderr
    assert RACE_LOST not in again.stderr
    assert "Traceback" not in again.stderr
    raw = raw_registry(backend)
    assert_history(raw["versions"][1]["history"], winner)
    assert raw["alias"] == "1"
    assert_no_lock_left(backend)


def test_approve_racing_reject_of_one_version(backend: Backend, tmp_path: Path):
    register_pending_versions(backend, 1)

    attempts = race(backend, tmp_path / "barrier", ("approve", 1, "alice"), ("reject", 1, "bob"))
    winner, _ = one_winner(attempts)

    raw = raw_registry(backend)
    assert raw["versions"][1]["status"] == winner.target
    assert_history(raw["versions"][1]["history"], winner)
    assert raw["alias"] == ("1" if winner.target == APPROVED else None)
    described = backend.json("registry", "describe", "1")
    assert described["approval_status"] == winner.target
    assert len(described["approval_history"]) == 2
    assert described["approval_history"][-1]["to"] == winner.target
    assert described["aliases"] == ([APPROVED_ALIAS] if winner.target == APPROVED else [])
    assert_no_lock_left(backend)


def test_approvals_of_two_versions_race_without_conflict(backend: Backend, tmp_path: Path):
    register_pending_versions(backend, 2)

    attempts = race(backend, tmp_path / "barrier", ("approve", 1, "alice"), ("approve", 2, "bob"))
    assert [a.result.returncode for a in attempts] == [0, 0], "\n".join(map(str, attempts))

    raw = raw_registry(backend)
    for attempt in attempts:
        version = raw["versions"][attempt.version]
        assert version["status"] == APPROVED
        assert [(h["from"], h["to"], h["by"]) for h in version["history"]] == [
            (None, PENDING, f"abalone_platform pipeline (Dagster run race-run-{attempt.version})"),
            (PENDING, APPROVED, attempt.by),
        ]
    # Whichever wrote last, the alias names the newest Approved version.
    assert raw["alias"] == "2"
    listed = backend.json("registry", "list")
    assert [(v["version"], v["approval_status"], v["aliases"]) for v in listed] == [
        (1, APPROVED, []),
        (2, APPROVED, [APPROVED_ALIAS]),
    ]
    assert_no_lock_left(backend)
