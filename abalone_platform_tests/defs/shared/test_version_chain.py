"""Each step consumes exactly the upstream versions its inputs were made from, and every gated
asset holds its evaluation to its own run's MseThreshold."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from abalone_platform.definitions import build_defs
from abalone_platform.records.lineage import model_package_lineage
from abalone_platform.registry import open_registry
from abalone_platform_tests.support.pipeline import failure_text, meta, run_pipeline
from abalone_platform_tests.support.project import GATED_ASSETS, Env
from abalone_platform_tests.support.registry import registered_versions

# Runs the pipeline in subprocesses or several times over: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

PROCESSING = ["train_split", "validation_split", "test_split", "preprocessor"]


@pytest.fixture
def other_data(tmp_path: Path, abalone_file: Path) -> Path:
    """The UCI rows with every measurement 10% larger: another preprocessor when fitted."""
    lines = []
    for line in abalone_file.read_text().splitlines():
        if line.strip():
            sex, *numbers, rings = line.split(",")
            lines.append(",".join([sex, *(f"{float(x) * 1.1:.4f}" for x in numbers), rings]))
    path = tmp_path / "other.data"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reprocessing_alone_never_mixes_a_new_preprocessor_into_the_bundle(
    in_process: Env, other_data: Path
) -> None:
    with dg.DagsterInstance.get() as instance:
        first = run_pipeline(instance)
        assert first.success
        reprocessed = run_pipeline(instance, {"input_data": str(other_data)}, PROCESSING)
        assert reprocessed.success
        new_preprocessor = meta(reprocessed, "preprocessor")["sha256"]
        assert new_preprocessor != meta(first, "preprocessor")["sha256"]

        bundle_run = run_pipeline(instance, selection=["deployable_model"])
        assert bundle_run.success, failure_text(bundle_run)
        bundle = meta(bundle_run, "deployable_model")
        # The preprocessor of the processing run the model was trained on, not the newest one.
        assert bundle["preprocessor_sha256"] == meta(first, "preprocessor")["sha256"]
        assert bundle["upstream"]["preprocessor"]["run_id"] == first.run_id
        assert bundle["upstream"]["trained_model"]["run_id"] == first.run_id
        # Same booster, same preprocessor: the very bundle the first run built.
        assert bundle["files"] == meta(first, "deployable_model")["files"]

        scored = run_pipeline(instance, selection=["batch_predictions"])
        assert scored.success, failure_text(scored)
        predictions = Path(meta(scored, "batch_predictions")["uri"].removeprefix("file://"))
        original = Path(meta(first, "batch_predictions")["uri"].removeprefix("file://"))
        assert predictions.read_bytes() == original.read_bytes()

        registered = run_pipeline(instance, selection=["model_package"])
        assert registered.success, failure_text(registered)
        # Lineage follows the recorded chain: the new version's bundle step read run 1's
        # preprocessor (Dagster's own input pointers would name the newest one).
        lineage = model_package_lineage(instance, build_defs(), open_registry(), 2)
        inputs = {
            (row["dagster_step"], row["name"].split(":")[0]): row
            for row in lineage["rows"]
            if row["direction"] == "Input"
        }
        preprocessor_row = inputs[("deployable_model", "preprocessor")]
        assert preprocessor_row["dagster_run_id"] == first.run_id
        assert preprocessor_row["sha256"] == meta(first, "preprocessor")["sha256"]

        evaluation_run = run_pipeline(instance, selection=["evaluation_report"])
        assert evaluation_run.success, failure_text(evaluation_run)
        evaluation = meta(evaluation_run, "evaluation_report")
        # The test split of the model's own processing run, so the same MSE as before.
        assert evaluation["upstream"]["test_split"]["run_id"] == first.run_id
        assert evaluation["mse"] == meta(first, "evaluation_report")["mse"]


def test_a_model_that_was_never_evaluated_is_not_bundled(in_process: Env, other_data: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        first = run_pipeline(instance)
        assert first.success
        assert run_pipeline(instance, {"input_data": str(other_data)}, PROCESSING).success
        # Training alone would refuse: the tuned_hyperparameters were chosen on the old split.
        alone = run_pipeline(instance, selection=["trained_model"])
        assert not alone.success
        assert "Refusing to build trained_model" in failure_text(alone)
        assert "materialize tuned_hyperparameters first" in failure_text(alone)
        retrained = run_pipeline(instance, selection=["tuned_hyperparameters", "trained_model"])
        assert retrained.success
        model = meta(retrained, "trained_model")
        # Both splits come from the one (newest) processing run, and so do the hyperparameters.
        assert model["upstream"]["train_split"]["run_id"] == model["processing_run_id"]
        assert model["upstream"]["validation_split"]["run_id"] == model["processing_run_id"]
        tuned = meta(retrained, "tuned_hyperparameters")
        assert tuned["upstream"]["train_split"]["run_id"] == model["processing_run_id"]
        assert model["upstream"]["tuned_hyperparameters"]["sha256"] == tuned["sha256"]

        refused = run_pipeline(instance, selection=["deployable_model"])
        assert not refused.success
        text = failure_text(refused)
        assert "Refusing to build deployable_model" in text
        assert f"evaluation_report of run {first.run_id}" in text
        assert f"not from trained_model of run {retrained.run_id}" in text
    assert len(registered_versions(in_process.tracking_uri())) == 1


@pytest.mark.parametrize("asset", GATED_ASSETS)
def test_a_gated_asset_holds_the_evaluation_to_its_own_runs_threshold(
    in_process: Env, asset: str
) -> None:
    with dg.DagsterInstance.get() as instance:
        first = run_pipeline(instance)  # passes at the default 6.0 (MSE 5.35)
        assert first.success
        stricter = run_pipeline(instance, {"mse_threshold": 3.0}, [asset])
        assert not stricter.success
        text = failure_text(stricter)
        assert f"Refusing to build {asset}" in text
        assert "Execution failed due to MSE > 3.0" in text
        assert "this run's MseThreshold is 3.0" in text
        assert not stricter.get_asset_materialization_events()
    [version] = registered_versions(in_process.tracking_uri())
    # The registered version records the threshold it was actually held to.
    assert version["mse_threshold"] == "6.0"


def test_a_registered_version_is_held_to_the_batch_runs_threshold(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        assert run_pipeline(instance, {"model_approval_status": "Approved"}).success
        strict = {"model_package_version": 1, "mse_threshold": 3.0}
        refused = run_pipeline(instance, strict, ["batch_predictions"])
        assert not refused.success
        assert "Execution failed due to MSE > 3.0" in failure_text(refused)
        loose = run_pipeline(instance, {"model_package_version": 1}, ["batch_predictions"])
        assert loose.success, failure_text(loose)
        recorded = meta(loose, "batch_predictions")
        assert recorded["mse_threshold"] == 6.0 and recorded["model_package_version"] == 1


def test_every_materialization_records_its_upstream_versions(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance)
        assert result.success
    expected = {
        "tuned_hyperparameters": {"train_split"},
        "trained_model": {"train_split", "validation_split", "tuned_hyperparameters"},
        "evaluation_report": {"trained_model", "test_split", "train_split", "validation_split"},
        "deployable_model": {"evaluation_report", "trained_model", "preprocessor"},
        "batch_predictions": {"deployable_model", "evaluation_report"},
        "model_package": {"deployable_model", "evaluation_report"},
    }
    for asset, inputs in expected.items():
        chain = meta(result, asset)["upstream"]
        assert set(chain) == inputs, asset
        for name, link in chain.items():
            assert link["run_id"] == result.run_id
            assert link["sha256"] == meta(result, name)["sha256"]
