"""Training streams: XGBoost's QuantileDMatrix from the splits' Parquet row groups gives the
model a whole-frame DMatrix gave, bit for bit at 4,177 rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import xgboost as xgb

from abalone_platform.ml.preprocess import ProcessedData
from abalone_platform.ml.train import (
    HYPERPARAMETERS,
    NUM_BOOST_ROUND,
    SplitBatches,
    resolve_compute,
    split_dmatrix,
    split_rows,
    train_model,
)


def dmatrix_model(train: pd.DataFrame, validation: pd.DataFrame, nthread: int) -> bytes:
    """Today's way before streaming: whole frames as DMatrix."""
    params = {**HYPERPARAMETERS, "seed": 42, "nthread": nthread, "device": "cpu"}
    booster = xgb.train(params, split_dmatrix(train, nthread), num_boost_round=NUM_BOOST_ROUND)
    booster.set_param({"device": "cpu"})
    return bytes(booster.save_raw("ubj"))


@pytest.mark.parametrize("row_group_size", [None, 1000], ids=["one-row-group", "row-groups"])
@pytest.mark.parametrize("fit_on_validation", [False, True], ids=["train", "train+validation"])
def test_streamed_training_is_the_whole_frame_model(
    processed: ProcessedData, tmp_path: Path, row_group_size: int | None, fit_on_validation: bool
) -> None:
    compute = resolve_compute("ml.m5.xlarge")
    paths = {}
    for name in ("train", "validation"):
        paths[name] = tmp_path / f"{name}.parquet"
        getattr(processed, name).to_parquet(paths[name], index=False, row_group_size=row_group_size)
    streamed = train_model(
        paths["train"],
        paths["validation"],
        seed=42,
        compute=compute,
        fit_on_validation=fit_on_validation,
    )
    fit_rows = (
        pd.concat([processed.train, processed.validation], ignore_index=True)
        if fit_on_validation
        else processed.train
    )
    expected = dmatrix_model(fit_rows, processed.validation, compute.nthread)
    assert bytes(streamed.booster.save_raw("ubj")) == expected
    # The same from in-memory frames (tests, tuning), and the same validation curve.
    in_memory = train_model(
        processed.train,
        processed.validation,
        seed=42,
        compute=compute,
        fit_on_validation=fit_on_validation,
    )
    assert bytes(in_memory.booster.save_raw("ubj")) == expected
    assert in_memory.validation_rmse == streamed.validation_rmse


def test_batches_are_row_groups_in_order(processed: ProcessedData, tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    processed.train.to_parquet(path, index=False, row_group_size=1000)
    seen: list[int] = []

    class Recorder(SplitBatches):
        def next(self, input_data) -> bool:
            return super().next(lambda **kw: seen.append(len(kw["label"])))

    batches = Recorder([path])
    while batches.next(None):
        pass
    assert seen == [1000, 1000, len(processed.train) - 2000]
    assert split_rows(path) == split_rows(processed.train) == len(processed.train)
