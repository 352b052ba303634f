"""The evaluation's measures of how sure it is: CV folds, the constant baseline, the bootstrap
interval and the residual groups."""

import numpy as np
import pandas as pd
import pytest

from abalone_platform.ml.evaluate import (
    RINGS_BANDS,
    bootstrap_mse_interval,
    constant_baseline,
    cross_validated_mse,
    how_sure,
    kfold_indices,
    report_from_predictions,
    residuals_by_group,
    split_predictions,
)
from abalone_platform.ml.preprocess import ProcessedData
from abalone_platform.ml.train import TrainedModel


def test_kfold_held_out_parts_partition_the_rows_and_are_seeded() -> None:
    folds = kfold_indices(103, 5, seed=1)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held) == list(range(103))
    for train_idx, held_idx in folds:
        assert not set(train_idx) & set(held_idx)
        assert len(train_idx) + len(held_idx) == 103
    again = kfold_indices(103, 5, seed=1)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again, strict=True))
    other = kfold_indices(103, 5, seed=2)
    assert not all((a[1] == b[1]).all() for a, b in zip(folds, other, strict=True))
    with pytest.raises(ValueError, match="folds"):
        kfold_indices(3, 5, seed=1)


def test_cross_validated_mse_of_the_recipe(processed: ProcessedData, trained: TrainedModel):
    params = {k: v for k, v in trained.params.items() if k != "num_boost_round"}
    both = pd.concat([processed.train, processed.validation], ignore_index=True)
    cv = cross_validated_mse(both, params, trained.params["num_boost_round"], seed=42)
    assert cv["folds"] == len(cv["per_fold"]) == 5 and cv["rows"] == len(both)
    assert cv["mean"] == pytest.approx(np.mean(cv["per_fold"]))
    assert cv["std"] == pytest.approx(np.std(cv["per_fold"], ddof=1))
    # Folds differ, and a recipe that learned something beats the spread of the rings.
    assert cv["std"] > 0 and cv["mean"] < both["rings"].var()
    assert cross_validated_mse(both, params, 50, seed=42) == cv  # seeded
    # Above max_rows: a seeded sample of that many rows, and the report says so.
    sampled = cross_validated_mse(both, params, 50, seed=42, max_rows=1000)
    assert (sampled["rows"], sampled["of_rows"]) == (1000, len(both))
    assert sampled == cross_validated_mse(both, params, 50, seed=42, max_rows=1000)
    assert sampled["mean"] != cv["mean"]


def test_constant_baseline_and_bootstrap(processed: ProcessedData, trained: TrainedModel):
    actual, predicted = split_predictions(trained.booster, processed.test)
    mse = report_from_predictions(actual, predicted)["regression_metrics"]["mse"]["value"]
    baseline = constant_baseline(processed.train["rings"].to_numpy(), actual)
    assert baseline["prediction"] == pytest.approx(processed.train["rings"].mean())
    assert baseline["mse"] == pytest.approx(np.mean((actual - baseline["prediction"]) ** 2))
    assert baseline["mse"] > 1.5 * mse  # the model is worth something
    interval = bootstrap_mse_interval(actual, predicted, seed=42)
    assert interval["low"] < mse < interval["high"]
    assert interval == bootstrap_mse_interval(actual, predicted, seed=42)
    assert interval["confidence"] == 0.95
    # A perfect predictor has no spread to resample.
    exact = bootstrap_mse_interval(actual, actual, seed=42)
    assert exact["low"] == exact["high"] == 0.0
    # Past the draw budget, the normal approximation: close to the bootstrap's own interval.
    normal = bootstrap_mse_interval(actual, predicted, seed=42, max_draws=1000)
    assert normal["method"].startswith("normal") and interval["method"] == "percentile bootstrap"
    assert normal["low"] < mse < normal["high"]
    width = interval["high"] - interval["low"]
    assert abs(normal["low"] - interval["low"]) < 0.15 * width
    assert abs(normal["high"] - interval["high"]) < 0.15 * width


def test_residuals_by_sex_and_rings_band(processed: ProcessedData, trained: TrainedModel):
    actual, predicted = split_predictions(trained.booster, processed.test)
    groups = residuals_by_group(processed.test, predicted)
    assert [g["group"] for g in groups["by_sex"]] == ["F", "I", "M"]
    assert [g["group"] for g in groups["by_rings_band"]] == [b[0] for b in RINGS_BANDS]
    for kind in ("by_sex", "by_rings_band"):
        assert sum(g["rows"] for g in groups[kind]) == len(processed.test), kind
        # The groups' squared errors add up to the whole test MSE.
        total = sum(g["mse"] * g["rows"] for g in groups[kind] if g["rows"])
        assert total / len(actual) == pytest.approx(np.mean((actual - predicted) ** 2))
    old = groups["by_rings_band"][-1]
    # Regression toward the mean: the oldest abalone are under-predicted on average.
    assert old["mean_residual"] > 0


def test_how_sure_keeps_regression_metrics_apart(processed: ProcessedData, trained: TrainedModel):
    actual, predicted = split_predictions(trained.booster, processed.test)
    params = {k: v for k, v in trained.params.items() if k != "num_boost_round"}
    extra = how_sure(
        y=actual,
        predictions=predicted,
        test=processed.test,
        train=processed.train,
        validation=processed.validation,
        params=params,
        num_boost_round=50,
        seed=42,
    )
    assert set(extra) == {"cross_validation", "baseline", "bootstrap", "residuals"}
    assert "regression_metrics" not in extra
