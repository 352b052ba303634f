"""The quality gate: pass and fail paths in a run, and no way around it in a later run."""

from pathlib import Path

import dagster as dg
import pytest

from abalone_platform_tests.support.pipeline import run_pipeline
from abalone_platform_tests.support.project import GATED_ASSETS, UNGATED_ASSETS, Env
from abalone_platform_tests.support.registry import registered_versions

GATED = GATED_ASSETS
GATE = dg.AssetCheckKey(dg.AssetKey("evaluation_report"), "mse_within_threshold")


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        event.asset_key.to_user_string()
        for event in result.get_asset_materialization_events()
        if event.asset_key is not None
    }


def test_gate_passes_and_everything_is_built(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance)
        assert result.success
        assert materialized(result) >= {"evaluation_report", *GATED}
        [evaluation] = result.get_asset_check_evaluations()
        assert evaluation.passed
        assert evaluation.metadata["mse_threshold"].value == 6.0
        assert evaluation.metadata["mse"].value <= 6.0
    [version] = registered_versions(in_process.tracking_uri())
    assert version["version"] == "1" and version["status"] == "PendingManualApproval"
    assert version["dagster_run_id"] == result.run_id


def test_gate_fails_skips_gated_assets_and_registers_nothing(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance, {"mse_threshold": 3.0})
        assert not result.success
        assert materialized(result) == set(UNGATED_ASSETS)
        [evaluation] = result.get_asset_check_evaluations()
        assert not evaluation.passed
        assert evaluation.description == "Execution failed due to MSE > 3.0"
        [failure] = [e for e in result.all_events if e.is_step_failure]
        assert failure.step_key == "mse_within_threshold"
        assert failure.step_failure_data.error.message.strip().endswith(
            "Execution failed due to MSE > 3.0"
        )
        record = instance.get_latest_asset_check_evaluation_record(GATE)
        assert record.status.value == "FAILED"
    assert registered_versions(in_process.tracking_uri()) == []
    assert not (in_process.abalone_home / "artifacts" / "deployable_model").exists()


@pytest.mark.slow
def test_a_later_run_cannot_build_on_a_failed_evaluation(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        assert run_pipeline(instance).success
        assert not run_pipeline(instance, {"mse_threshold": 3.0}).success
    assert len(registered_versions(in_process.tracking_uri())) == 1

    for asset in GATED:
        proc = in_process.dagster(
            "asset", "materialize", "-m", "abalone_platform", "--select", asset
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, output
        assert f"Refusing to build {asset}" in output
        assert "Execution failed due to MSE > 3.0" in output
    assert len(registered_versions(in_process.tracking_uri())) == 1


@pytest.mark.slow
def test_a_later_run_may_build_on_a_passed_evaluation(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        first = run_pipeline(instance)
        assert first.success
        again = run_pipeline(instance, selection=["model_package"])
        assert again.success, again.all_events
        meta = again.asset_materializations_for_node("model_package")[0].metadata
        assert meta["model_package_version"].value == 2
        assert meta["evaluation_run_id"].value == first.run_id


@pytest.mark.slow
def test_parameters_are_validated_before_any_step_runs(in_process: Env, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "resources:\n  parameters:\n    config:\n"
        "      mse_threshold: lots\n      model_approval_status: Maybe\n"
    )
    proc = in_process.execute(bad)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "resources:parameters:config:mse_threshold" in output
    assert "resources:parameters:config:model_approval_status" in output and "Maybe" in output
    assert "STEP_START" not in output
    assert not (in_process.abalone_home / "artifacts").exists()
