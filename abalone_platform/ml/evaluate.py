"""AbaloneEval: the test split's metrics in the reference's evaluation.json layout, and how sure
they are: a cross-validated MSE of the same recipe, a constant predictor's MSE, a bootstrap
interval of the test MSE and the residuals by sex and by rings band."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xgboost as xgb

from abalone_platform.ml.bundle import predict_features
from abalone_platform.ml.data import LABEL_COLUMN
from abalone_platform.ml.preprocess import ENCODED_SEX_COLUMNS, MODEL_FEATURES

CV_FOLDS = 5
# Cross-validation on more rows than this uses a seeded sample of this many: five more models on
# 25M rows would cost more than the pipeline, and a mean over a million held-out rows per fold
# already moves in the third decimal (the report says how many rows it used, of how many).
CV_MAX_ROWS = 1_000_000
BOOTSTRAP_RESAMPLES = 2000
# Above this many resampled values (resamples x test rows) the interval is the normal
# approximation of the bootstrap's distribution of the mean: at millions of test rows the two
# agree to the digits shown, and drawing 2000 x 4.5M indices would take minutes and gigabytes.
BOOTSTRAP_MAX_DRAWS = 50_000_000
CONFIDENCE = 0.95
# Rings bands for the residual table: (label, lowest, highest), inclusive. Young, the bulk around
# the median (9-10 rings), and the long old tail where a regressor shrinks toward the mean.
RINGS_BANDS: tuple[tuple[str, int, int], ...] = (
    ("1-6", 1, 6),
    ("7-8", 7, 8),
    ("9-10", 9, 10),
    ("11-13", 11, 13),
    ("14+", 14, 10**6),
)


def split_predictions(booster: xgb.Booster, split: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(actual, predicted) rings of a stored split, both float64."""
    actual = split[LABEL_COLUMN].to_numpy(dtype=np.float64)
    predicted = predict_features(booster, split[list(MODEL_FEATURES)].to_numpy(np.float32))
    return actual, predicted.astype(np.float64)


def report_from_predictions(y: np.ndarray, predictions: np.ndarray) -> dict:
    """The evaluation report for actual rings ``y`` and their ``predictions``:
    ``{"regression_metrics": {"mse": {"value", "standard_deviation"}, "rmse", "mae", "r2"}}``.

    standard_deviation is the population std of the residuals, as the reference computes it.
    """
    residuals = y - predictions
    mse = float(np.mean(residuals**2))
    total = float(np.sum((y - y.mean()) ** 2))
    return {
        "regression_metrics": {
            "mse": {"value": mse, "standard_deviation": float(np.std(residuals))},
            "rmse": {"value": float(np.sqrt(mse))},
            "mae": {"value": float(np.mean(np.abs(residuals)))},
            "r2": {"value": float(1.0 - np.sum(residuals**2) / total) if total else float("nan")},
        }
    }


def report_to_json(report: dict) -> bytes:
    return json.dumps(report, indent=2).encode()


# Below this many rows XGBoost trains faster on one thread: per tree, OpenMP's synchronisation
# costs more than the work, and on a busy 2-core machine two threads were measured 3 to 60 times
# slower than one (a 5-fold CV of 283 rounds on the train split: 1.1 s on one thread).
SMALL_DATA_ROWS = 50_000


def threads_for(rows: int, nthread: int) -> int:
    """XGBoost threads for a model trained on ``rows`` rows, at most ``nthread``."""
    return 1 if rows < SMALL_DATA_ROWS else max(1, nthread)


def kfold_indices(n_rows: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (train, held-out) index pairs over ``n_rows`` rows, shuffled by ``seed``; the
    held-out parts partition the rows."""
    if folds < 2 or folds > n_rows:
        raise ValueError(f"cross-validation needs 2 <= folds <= rows, got {folds} for {n_rows}")
    order = np.random.default_rng(seed).permutation(n_rows)
    parts = np.array_split(order, folds)
    return [
        (np.sort(np.concatenate(parts[:i] + parts[i + 1 :])), np.sort(part))
        for i, part in enumerate(parts)
    ]


def cross_validated_mse(
    frame: pd.DataFrame,
    params: Mapping[str, object],
    num_boost_round: int,
    *,
    folds: int = CV_FOLDS,
    seed: int,
    max_rows: int = CV_MAX_ROWS,
) -> dict:
    """The held-out MSE of each of ``folds`` folds of ``frame`` for a model trained with
    ``params`` for ``num_boost_round`` rounds on the other folds: {"mean", "std", "per_fold",
    "folds", "rows", "of_rows"}. The same recipe as the model, scored on more rows than one test
    split; on a seeded sample of ``max_rows`` rows when ``frame`` has more."""
    of_rows = len(frame)
    if of_rows > max_rows:
        chosen = np.sort(np.random.default_rng(seed).choice(of_rows, max_rows, replace=False))
        frame = frame.iloc[chosen]
    features = frame[list(MODEL_FEATURES)].to_numpy(dtype=np.float32)
    label = frame[LABEL_COLUMN].to_numpy(dtype=np.float64)
    nthread = threads_for(len(frame), int(params.get("nthread", 1) or 1))
    params = {**params, "nthread": nthread}
    per_fold = []
    for train_idx, held_idx in kfold_indices(len(frame), folds, seed):
        dtrain = xgb.DMatrix(features[train_idx], label=label[train_idx], nthread=nthread)
        booster = xgb.train(dict(params), dtrain, num_boost_round=num_boost_round)
        predicted = booster.inplace_predict(features[held_idx]).astype(np.float64)
        per_fold.append(float(np.mean((label[held_idx] - predicted) ** 2)))
    return {
        "mean": float(np.mean(per_fold)),
        "std": float(np.std(per_fold, ddof=1)),
        "per_fold": per_fold,
        "folds": folds,
        "rows": len(frame),
        "of_rows": of_rows,
    }


def constant_baseline(train_rings: np.ndarray, y: np.ndarray) -> dict:
    """The MSE on ``y`` of always predicting the training rows' mean rings: what a model that
    learned nothing scores, so the test MSE has a scale."""
    mean = float(np.mean(train_rings))
    return {"prediction": mean, "mse": float(np.mean((y - mean) ** 2))}


def bootstrap_mse_interval(
    y: np.ndarray,
    predictions: np.ndarray,
    *,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    max_draws: int = BOOTSTRAP_MAX_DRAWS,
) -> dict:
    """A percentile bootstrap interval of the MSE: the test rows resampled with replacement
    ``resamples`` times (seeded). It says how much the one test split's figure could move.
    Beyond ``max_draws`` resampled values, the normal approximation of that distribution
    (the mean's standard error); ``method`` says which."""
    squared = (np.asarray(y, np.float64) - np.asarray(predictions, np.float64)) ** 2
    tail = (1.0 - confidence) / 2.0
    if resamples * len(squared) <= max_draws:
        rng = np.random.default_rng(seed)
        draws = squared[rng.integers(0, len(squared), size=(resamples, len(squared)))]
        low, high = np.quantile(draws.mean(axis=1), [tail, 1.0 - tail])
        method = "percentile bootstrap"
    else:
        from statistics import NormalDist

        z = NormalDist().inv_cdf(1.0 - tail)
        half = z * float(np.std(squared)) / np.sqrt(len(squared))
        low, high = float(np.mean(squared)) - half, float(np.mean(squared)) + half
        method = "normal approximation of the bootstrap (many test rows)"
    return {
        "low": float(low),
        "high": float(high),
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
        "method": method,
    }


def _group_row(group: str, residuals: np.ndarray) -> dict:
    if len(residuals) == 0:
        return {"group": group, "rows": 0, "mean_residual": None, "mse": None, "mae": None}
    return {
        "group": group,
        "rows": int(len(residuals)),
        "mean_residual": float(np.mean(residuals)),
        "mse": float(np.mean(residuals**2)),
        "mae": float(np.mean(np.abs(residuals))),
    }


def residuals_by_group(split: pd.DataFrame, predictions: np.ndarray) -> dict[str, list[dict]]:
    """Residuals (actual - predicted) of a stored split by sex and by rings band: rows, mean
    residual (the bias: positive means under-predicted), MSE and MAE of each group."""
    actual = split[LABEL_COLUMN].to_numpy(dtype=np.float64)
    residuals = actual - np.asarray(predictions, np.float64)
    # The one-hot columns are 0/1 (an unknown sex has none set after encoding).
    by_sex = [
        _group_row(column.removeprefix("sex_"), residuals[split[column].to_numpy() > 0.5])
        for column in ENCODED_SEX_COLUMNS
    ]
    by_band = [
        _group_row(label, residuals[(actual >= low) & (actual <= high)])
        for label, low, high in RINGS_BANDS
    ]
    return {"by_sex": by_sex, "by_rings_band": by_band}


def how_sure(
    *,
    y: np.ndarray,
    predictions: np.ndarray,
    test: pd.DataFrame,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    params: Mapping[str, object],
    num_boost_round: int,
    seed: int,
) -> dict:
    """The report's entries beside ``regression_metrics``: cross_validation, baseline,
    bootstrap and residuals."""
    return {
        "cross_validation": {
            "mse": cross_validated_mse(
                pd.concat([train, validation], ignore_index=True),
                params,
                num_boost_round,
                seed=seed,
            ),
            "data": "train + validation",
        },
        "baseline": {
            "constant_training_mean": constant_baseline(
                train[LABEL_COLUMN].to_numpy(dtype=np.float64), y
            )
        },
        "bootstrap": {"mse": bootstrap_mse_interval(y, predictions, seed=seed)},
        "residuals": residuals_by_group(test, predictions),
    }
