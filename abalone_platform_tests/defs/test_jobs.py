"""The notebook's three executions through `dagster job execute`, as a user runs them."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from abalone_platform_tests.support.project import REPO_ROOT, Env
from abalone_platform_tests.support.registry import registered_versions

# Runs the pipeline in subprocesses or several times over: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

CONFIGS = REPO_ROOT / "configs"


def latest_metadata(env: Env, asset: str) -> dict:
    instance = dg.DagsterInstance.from_config(str(env.dagster_home))
    with instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_three_executions(env: Env, abalone_file: Path) -> None:
    first = env.execute(CONFIGS / "execution_default.yaml")
    assert first.returncode == 0, first.stderr[-3000:]
    # The console shows INFO and above (no DEBUG event lines) and ends with the run's summary.
    assert "gate: passed" in first.stderr and "registered: version 1" in first.stderr
    assert " - DEBUG - " not in first.stderr

    splits = {
        name: pd.read_parquet(Path(latest_metadata(env, name)["uri"].removeprefix("file://")))
        for name in ("train_split", "validation_split", "test_split")
    }
    assert [len(f) for f in splits.values()] == [2923, 627, 627]
    assert list(splits["train_split"].columns)[:2] == ["rings", "length"]

    report_meta = latest_metadata(env, "evaluation_report")
    report = json.loads(Path(report_meta["uri"].removeprefix("file://")).read_text())
    assert report["regression_metrics"]["mse"]["value"] == report_meta["mse"]
    assert report_meta["input_sha256"] == (
        "de37cdcdcaaa50c309d514f248f7c2302a5f1f88c168905eba23fe2fbc78449f"
    )

    predictions_meta = latest_metadata(env, "batch_predictions")
    lines = Path(predictions_meta["uri"].removeprefix("file://")).read_text().splitlines()
    assert len(lines) == 4177 == predictions_meta["dagster/row_count"]
    assert all(0 < float(v) < 30 for v in lines)

    second = env.execute(CONFIGS / "execution_approved.yaml")
    assert second.returncode == 0, second.stderr[-3000:]
    assert latest_metadata(env, "trained_model")["training_instance_type"] == "ml.c5.xlarge"

    third = env.execute(CONFIGS / "execution_mse_3.yaml")
    output = third.stdout + third.stderr
    assert third.returncode != 0
    assert "Execution failed due to MSE > 3.0" in output
    assert "RUN_FAILURE" in output

    versions = registered_versions(env.tracking_uri())
    assert [(v["version"], v["status"]) for v in versions] == [
        ("1", "PendingManualApproval"),
        ("2", "Approved"),
    ]
    # Seeded: the same data and parameters give the same model and the same MSE each time.
    assert versions[0]["mse"] == versions[1]["mse"]
    assert versions[0]["bundle_sha256"] == versions[1]["bundle_sha256"]


def test_the_tuned_execution(env: Env) -> None:
    """configs/execution_tuned.yaml, as a user runs it: the study runs on its budget, training
    uses its best, and the evaluation says how sure it is, beside the default run's figures."""
    default = env.execute(CONFIGS / "execution_default.yaml")
    assert default.returncode == 0, default.stderr[-3000:]
    reference = latest_metadata(env, "evaluation_report")

    tuned_run = env.execute(CONFIGS / "execution_tuned.yaml")
    assert tuned_run.returncode == 0, tuned_run.stderr[-3000:]
    tuned = latest_metadata(env, "tuned_hyperparameters")
    assert tuned["source"] == "tuned" and tuned["tuning_trials"] == 40
    assert tuned["trials_run"] == 40 or tuned["stopped_by_timeout"]
    model = latest_metadata(env, "trained_model")
    assert model["hyperparameters_source"] == "tuned"
    assert model["hyperparameters"]["num_boost_round"] == tuned["num_boost_round"]
    assert model["fit_on"] == tuned["fit_on"] == "train+validation"
    evaluation = latest_metadata(env, "evaluation_report")
    # The tuned recipe is better where it can be measured without the test split: by CV on
    # train + validation, the same folds as the reference recipe's.
    assert evaluation["cv_mse_mean"] < reference["cv_mse_mean"]
    assert evaluation["mse_ci95_low"] < evaluation["mse"] < evaluation["mse_ci95_high"]
    assert evaluation["baseline_mse"] == reference["baseline_mse"]
