"""AbaloneEval: the test split's metrics in the reference's evaluation.json layout."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xgboost as xgb

from abalone_platform.ml.bundle import predict_features
from abalone_platform.ml.data import LABEL_COLUMN
from abalone_platform.ml.preprocess import MODEL_FEATURES

MSE_JSON_PATH = "regression_metrics.mse.value"


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


def report_mse(report: dict) -> float:
    return float(report["regression_metrics"]["mse"]["value"])


def report_to_json(report: dict) -> bytes:
    return json.dumps(report, indent=2).encode()


def gate_failure_message(threshold: float) -> str:
    """The reference FailStep's text: Join(" ", ["Execution failed due to MSE >", threshold])."""
    return f"Execution failed due to MSE > {threshold}"


def mse_within(report: dict, threshold: float) -> bool:
    """The reference's ConditionLessThanOrEqualTo on regression_metrics.mse.value."""
    return report_mse(report) <= threshold
