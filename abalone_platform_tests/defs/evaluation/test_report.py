"""evaluation_report in a run: the reference layout the gate reads, and beside it how sure the
figure is (CV, a constant baseline, a bootstrap interval, residuals by group), in the UI too."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from abalone_platform.sagemaker import MSE_JSON_PATH, report_mse
from abalone_platform_tests.support.pipeline import run_pipeline
from abalone_platform_tests.support.project import UNGATED_ASSETS, Env


def test_the_report_says_how_sure_it_is_and_the_gate_still_reads_its_mse(
    in_process: Env,
) -> None:
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance, selection=list(UNGATED_ASSETS))
        assert result.success
    [mat] = [
        m.materialization
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("evaluation_report")
    ]
    metadata = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    report = json.loads(Path(metadata["uri"].removeprefix("file://")).read_bytes())

    # The reference's layout, unchanged, where the gate reads it.
    metrics = report["regression_metrics"]
    assert set(metrics) == {"mse", "rmse", "mae", "r2"}
    assert set(metrics["mse"]) == {"value", "standard_deviation"}
    assert MSE_JSON_PATH == "regression_metrics.mse.value"
    mse = report_mse(report)
    assert mse == metrics["mse"]["value"] == metadata["mse"]
    [check] = result.get_asset_check_evaluations()
    assert check.metadata["mse"].value == mse

    # Beside it: CV of the same recipe on train + validation (rows of both splits)...
    cv = report["cross_validation"]["mse"]
    rows = {
        name: m.materialization.metadata["dagster/row_count"].value
        for m in result.get_asset_materialization_events()
        for name in ("train_split", "validation_split", "test_split")
        if m.asset_key == dg.AssetKey(name)
    }
    assert cv["rows"] == rows["train_split"] + rows["validation_split"]
    assert cv["folds"] == len(cv["per_fold"]) == 5 and cv["std"] > 0
    assert metadata["cv_mse_mean"] == cv["mean"] and metadata["cv_mse_std"] == cv["std"]
    # ...a constant predictor's MSE, worse than the model's...
    baseline = report["baseline"]["constant_training_mean"]
    assert baseline["mse"] > mse and metadata["baseline_mse"] == baseline["mse"]
    # ...a 95% bootstrap interval around the test MSE...
    interval = report["bootstrap"]["mse"]
    assert interval["low"] < mse < interval["high"] and interval["confidence"] == 0.95
    assert (metadata["mse_ci95_low"], metadata["mse_ci95_high"]) == (
        interval["low"],
        interval["high"],
    )
    # ...and the residuals by sex and by rings band, as a table in the UI.
    for kind in ("by_sex", "by_rings_band"):
        assert sum(g["rows"] for g in report["residuals"][kind]) == rows["test_split"]
    table = metadata["residuals_by_group"]
    assert len(table.records) == len(report["residuals"]["by_sex"]) + len(
        report["residuals"]["by_rings_band"]
    )
    assert "bootstrap interval" in metadata["how_sure"] and "5-fold CV" in metadata["how_sure"]
    # The recipe's CV is the evaluation's, chained to the splits the model was trained on.
    chain = metadata["upstream"]
    assert {"trained_model", "test_split", "train_split", "validation_split"} == set(chain)
    assert {link["run_id"] for link in chain.values()} == {result.run_id}
    assert cv["mean"] == pytest.approx(sum(cv["per_fold"]) / 5)
