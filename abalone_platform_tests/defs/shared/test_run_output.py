"""What a person reads of a run: INFO and above on the console, the gate's outcome, and a
summary at the end (or, when the gate fails, the reason in one line)."""

from __future__ import annotations

import logging

import dagster as dg
import pytest

from abalone_platform.definitions import build_defs
from abalone_platform.registry import MODEL_PACKAGE_GROUP
from abalone_platform_tests.support.pipeline import run_pipeline
from abalone_platform_tests.support.project import ASSETS, REPO_ROOT, Env


def user_lines(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(level, message) of what the steps logged themselves (not Dagster's events)."""
    return [
        (logging.getLevelName(entry.level), entry.user_message)
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is None
    ]


def test_the_job_shows_info_and_above_unless_a_run_config_says_otherwise() -> None:
    job = build_defs().resolve_job_def("abalone_pipeline")
    assert job.run_config == {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def test_a_passing_run_ends_with_its_summary(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance)
        assert result.success
        run_id = result.run_id
        [evaluation] = result.get_asset_check_evaluations()
        mse = evaluation.metadata["mse"].value
        [predictions] = [
            e.materialization
            for e in result.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey("batch_predictions")
        ]
        lines = user_lines(instance, run_id)
    uri = predictions.metadata["uri"].value
    rows = predictions.metadata["dagster/row_count"].value
    assert ("INFO", f"Gate passed: MSE {mse:.4f} <= MseThreshold 6.0") in lines
    assert lines[-1] == (
        "INFO",
        f"Run {run_id} summary:\n"
        f"  gate: passed, MSE {mse:.4f} <= MseThreshold 6.0\n"
        f"  registered: version 1 (PendingManualApproval), models:/{MODEL_PACKAGE_GROUP}/1\n"
        f"  predictions: {uri} ({rows:,} rows)",
    )


def test_a_run_without_batch_predictions_says_so(in_process: Env) -> None:
    selection = [name for name in ASSETS if name != "batch_predictions"]
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance, selection=selection)
        assert result.success
        level, summary = user_lines(instance, result.run_id)[-1]
    assert level == "INFO"
    assert summary.endswith(
        "  predictions: none in this run (batch_predictions was not selected or did not run)"
    )


def test_a_failing_run_says_why_in_one_line(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance, {"mse_threshold": 3.0})
        assert not result.success
        [evaluation] = result.get_asset_check_evaluations()
        mse = evaluation.metadata["mse"].value
        lines = user_lines(instance, result.run_id)
    # Dagster's own lines (the failure event with its stack, the skipped steps) follow it.
    [line] = [x for x in lines if x[1].startswith(f"Run {result.run_id} failed:")]
    assert line == (
        "ERROR",
        f"Run {result.run_id} failed: Execution failed due to MSE > 3.0 (MSE {mse:.4f}); "
        "nothing registered, no batch predictions (deployable_model, batch_predictions and "
        "model_package are skipped)",
    )
    assert "\n" not in line[1]


@pytest.mark.slow
def test_the_cli_prints_no_debug_events_with_a_shipped_config(env: Env) -> None:
    done = env.execute(REPO_ROOT / "configs" / "execution_mse_3.yaml")
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert " - DEBUG - " not in output
    assert "RUN_START" not in output and "STEP_START" not in output
    [line] = [x for x in output.splitlines() if " - mse_within_threshold - Run " in x]
    assert " - ERROR - " in line
    assert line.endswith(
        "failed: Execution failed due to MSE > 3.0 (MSE 5.3505); nothing registered, no batch "
        "predictions (deployable_model, batch_predictions and model_package are skipped)"
    )
    assert output.rstrip().endswith("resulted in failure.")
