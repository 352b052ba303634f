"""Runs stopped at chosen moments (ABALONE_FAULT): kill -9, SIGTERM, SIGINT.

Each test asserts that the stopped run is recorded as failed, that nothing it half-made is
registered or read, and (for kill -9) that the next run succeeds on the same homes.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import dagster as dg
import pytest

from abalone_platform.records.executions import mark_dead_runs
from abalone_platform_tests.support.faults import chain_runs, instance_of, materializations
from abalone_platform_tests.support.project import ASSETS, PIPELINE_STEPS, Env, make_env
from abalone_platform_tests.support.registry import registered_versions

# Runs the pipeline in subprocesses or several times over: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

# (moment, what the registry holds after the stopped run)
KILL_MOMENTS = [
    ("step.abalone_process", "no registry"),
    ("artifact.publish.trained_model", "no registry"),  # the booster written, not yet renamed
    ("registry.migrate", "no registry"),  # MLflow's schema half-created
    ("registry.log_artifacts", "no version"),
    ("registry.version_created", "incomplete version"),
]


def assert_incomplete_version_is_shown_as_such(env: Env) -> None:
    """A version whose registering run was killed: listed as incomplete, its lineage says what
    is missing, it cannot be approved, and `executions` marks the dead run failed."""
    listing = env.cli("registry", "list")
    assert listing.returncode == 0, listing.stderr
    assert "PendingManualApproval (registration incomplete)" in listing.stdout
    executions = env.cli("executions", "list", "--json")
    [run] = json.loads(executions.stdout)
    assert run["status"] == "FAILURE"
    assert "is gone" in run["failure_reason"]
    lineage = env.cli("lineage", "1")
    assert lineage.returncode == 0, lineage.stderr
    assert "MISSING: the registration did not complete" in lineage.stdout
    assert "no model_package materialization" in lineage.stdout
    assert "AbaloneTrain" in lineage.stdout  # what is there is still shown
    approve = env.cli("registry", "approve", "1", "--reason", "looks fine")
    assert approve.returncode == 1
    assert "registration did not complete" in approve.stderr
    assert registered_versions(env.tracking_uri())[0]["status"] == "PendingManualApproval"


@pytest.mark.parametrize(("moment", "left"), KILL_MOMENTS, ids=[m for m, _ in KILL_MOMENTS])
def test_kill_9_then_the_next_run_succeeds(
    tmp_path: Path, abalone_file: Path, monkeypatch: pytest.MonkeyPatch, moment: str, left: str
) -> None:
    env = make_env(tmp_path, abalone_file, project_instance=True)
    killed = env.execute(extra={"ABALONE_FAULT": f"{moment}=kill"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]

    database = env.abalone_home / "mlflow.db"
    if left == "no registry":
        assert not database.exists()
    else:
        versions = registered_versions(env.tracking_uri())
        expected = ["incomplete"] if left == "incomplete version" else []
        assert [v["registration"] for v in versions] == expected

    with instance_of(env, monkeypatch) as instance:
        [stopped] = instance.get_runs()
        assert stopped.status == dg.DagsterRunStatus.STARTED  # what Dagster alone would show
        if left == "incomplete version":
            assert_incomplete_version_is_shown_as_such(env)  # through the CLI, as a user would
        else:
            assert mark_dead_runs(instance) == [stopped.run_id]
        assert instance.get_run_by_id(stopped.run_id).status == dg.DagsterRunStatus.FAILURE

    again = env.execute()
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    with instance_of(env, monkeypatch) as instance:
        runs = instance.get_runs()
        assert [r.status for r in runs] == [
            dg.DagsterRunStatus.SUCCESS,
            dg.DagsterRunStatus.FAILURE,
        ]
        made = materializations(instance, runs[0].run_id)
    assert set(made) == set(ASSETS)
    # Nothing of the stopped run was read: every recorded input is the new run's own.
    assert chain_runs(made) == {runs[0].run_id}
    versions = registered_versions(env.tracking_uri())
    assert versions[-1]["registration"] == "complete"
    assert versions[-1]["dagster_run_id"] == runs[0].run_id
    assert len(versions) == (2 if left == "incomplete version" else 1)


@pytest.mark.parametrize("step", PIPELINE_STEPS)
def test_sigterm_during_a_step_fails_the_run_and_registers_nothing(
    tmp_path: Path, abalone_file: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    env = make_env(tmp_path, abalone_file, project_instance=True)
    proc = env.execute(extra={"ABALONE_FAULT": f"step.{step}=term"})
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "DagsterExecutionInterruptedError" in output
    with instance_of(env, monkeypatch) as instance:
        [run] = instance.get_runs()
        assert run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
        made = materializations(instance, run.run_id)
    # The step that was stopped recorded nothing; the ones after it never ran.
    order = ["abalone_process", "tuned_hyperparameters", "trained_model", "evaluation_report"]
    assert step not in made
    assert "model_package" not in made
    if step in order:
        assert not set(made) & set(order[order.index(step) :])
    assert registered_versions(env.tracking_uri()) == []


@pytest.mark.parametrize("signal_action", ["term", "int"])
def test_a_signal_while_registering_takes_the_version_back(
    tmp_path: Path, abalone_file: Path, signal_action: str
) -> None:
    env = make_env(tmp_path, abalone_file, project_instance=True)
    proc = env.execute(extra={"ABALONE_FAULT": f"registry.version_created={signal_action}"})
    assert proc.returncode != 0
    # MLflow had created version 1; the stopped step deleted it again.
    assert registered_versions(env.tracking_uri()) == []
    again = env.execute()
    assert again.returncode == 0, again.stderr[-3000:]
    [version] = registered_versions(env.tracking_uri())
    assert version["registration"] == "complete"
