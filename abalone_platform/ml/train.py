"""AbaloneTrain: XGBoost with the reference's hyperparameters, seeded."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from abalone_platform.ml.data import LABEL_COLUMN
from abalone_platform.ml.devices import cuda_device_count
from abalone_platform.ml.instance_types import (  # the table, re-exported for callers here
    _GPU_FAMILIES,
    _PARAMETER,
    InstanceTypeError,
    _family,
    instance_vcpus,
)
from abalone_platform.ml.instance_types import (
    SAGEMAKER_INSTANCE_SIZES as SAGEMAKER_INSTANCE_SIZES,
)
from abalone_platform.ml.preprocess import MODEL_FEATURES

NUM_BOOST_ROUND = 50
# The reference's values; `reg:linear` there is the deprecated alias of reg:squarederror.
HYPERPARAMETERS: dict[str, object] = {
    "objective": "reg:squarederror",
    "max_depth": 5,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 6,
    "subsample": 0.7,
    "tree_method": "hist",
    "eval_metric": "rmse",
}


@dataclass(frozen=True)
class Compute:
    """Local resources that stand in for a SageMaker training instance."""

    instance_type: str
    vcpus: int
    nthread: int
    device: str  # "cpu" or "cuda"


def cuda_available() -> bool:
    """Whether XGBoost was built with CUDA and the driver reports a device.

    Training a probe model would not tell: XGBoost falls back to the CPU with only a warning.
    """
    return bool(xgb.build_info().get("USE_CUDA")) and cuda_device_count() > 0


def resolve_compute(instance_type: str) -> Compute:
    """Map a SageMaker instance type to local compute.

    Its vCPU count caps XGBoost's threads (at most the cores this machine has); GPU families
    (ml.p*, ml.g*) ask for XGBoost's CUDA device and fail clearly where there is none.
    """
    vcpus = instance_vcpus(instance_type)
    family = _family(instance_type)
    device = "cpu"
    if family.startswith(_GPU_FAMILIES):
        if not cuda_available():
            raise InstanceTypeError(
                f"{_PARAMETER}: {instance_type} is a GPU instance type but XGBoost finds no "
                "CUDA device here; choose a CPU type such as ml.m5.xlarge"
            )
        device = "cuda"
    nthread = max(1, min(vcpus, os.cpu_count() or 1))
    return Compute(instance_type=instance_type, vcpus=vcpus, nthread=nthread, device=device)


def split_dmatrix(frame: pd.DataFrame, nthread: int) -> xgb.DMatrix:
    """A split's features (MODEL_FEATURES, float32) and rings label, as XGBoost reads them."""
    return xgb.DMatrix(
        frame[list(MODEL_FEATURES)].to_numpy(dtype=np.float32),
        label=frame[LABEL_COLUMN].to_numpy(),
        feature_names=list(MODEL_FEATURES),
        nthread=nthread,
    )


# A split as training reads it: its Parquet file (read one row group at a time) or a frame.
Split = pd.DataFrame | Path


def split_rows(split: Split) -> int:
    """Rows of a split: a frame's length, or the row count in a Parquet file's footer."""
    if isinstance(split, pd.DataFrame):
        return len(split)
    import pyarrow.parquet as pq

    return pq.ParquetFile(split).metadata.num_rows


class SplitBatches(xgb.DataIter):
    """The splits' (features, rings) batches for XGBoost, one at a time and in order: each
    Parquet file's row groups read in turn, or in-memory frames whole. A QuantileDMatrix built
    from it holds the quantized matrix, never the splits as float64 frames."""

    def __init__(self, splits: list[Split]):
        self._splits = splits
        self._batches: Iterator[tuple[np.ndarray, np.ndarray]] = iter(())
        super().__init__(release_data=True)
        self.reset()

    def _read(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        import pyarrow.parquet as pq

        for split in self._splits:
            if isinstance(split, pd.DataFrame):
                yield _features_and_label(
                    {name: split[name].to_numpy() for name in (LABEL_COLUMN, *MODEL_FEATURES)}
                )
                continue
            parquet = pq.ParquetFile(split)
            for group in range(parquet.num_row_groups):
                table = parquet.read_row_group(group, columns=[LABEL_COLUMN, *MODEL_FEATURES])
                yield _features_and_label(
                    {name: table.column(name).to_numpy() for name in table.column_names}
                )

    def next(self, input_data) -> bool:
        batch = next(self._batches, None)
        if batch is None:
            return False
        features, label = batch
        input_data(data=features, label=label, feature_names=list(MODEL_FEATURES))
        return True

    def reset(self) -> None:
        self._batches = self._read()


def _features_and_label(columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    # MODEL_FEATURES as float32 (one rounding of each stored float64, as to_numpy(float32)
    # does) and the rings label as stored.
    first = columns[MODEL_FEATURES[0]]
    features = np.empty((len(first), len(MODEL_FEATURES)), np.float32)
    for j, name in enumerate(MODEL_FEATURES):
        features[:, j] = columns[name]
    return features, np.asarray(columns[LABEL_COLUMN])


def split_matrix(
    splits: list[Split], nthread: int, ref: xgb.QuantileDMatrix | None = None
) -> xgb.QuantileDMatrix:
    """The splits, one after another, as XGBoost's QuantileDMatrix (``ref``: the training
    matrix whose bins an evaluation matrix shares). At 4,177 rows the model trained on it is
    the one a DMatrix gave, bit for bit (tested); at 1.6M rows the test MSE is the same."""
    return xgb.QuantileDMatrix(SplitBatches(splits), ref=ref, nthread=nthread)


@dataclass(frozen=True)
class TrainedModel:
    booster: xgb.Booster
    validation_rmse: list[float]
    params: dict[str, object]


def train_model(
    train: Split,
    validation: Split,
    *,
    seed: int,
    compute: Compute,
    hyperparameters: Mapping[str, object] | None = None,
    num_boost_round: int | None = None,
    fit_on_validation: bool = False,
) -> TrainedModel:
    """Train on ``train``, recording the validation RMSE per round (validation only watches).

    The splits stream (``SplitBatches``): from Parquet files, training memory is XGBoost's
    quantized matrix, not the splits as frames.
    ``hyperparameters`` / ``num_boost_round``: the tuning step's choice; None, the reference's
    (HYPERPARAMETERS, NUM_BOOST_ROUND), which is also what tuning with no trials hands over.
    ``fit_on_validation``: fit on train + validation instead (the tuned recipe's refit, with the
    rounds the train split's cross-validation chose); the per-round validation RMSE is then
    recorded on rows the model was fit on, no longer a held-out figure. The test split is never
    an argument here.
    """
    chosen = HYPERPARAMETERS if hyperparameters is None else hyperparameters
    rounds = NUM_BOOST_ROUND if num_boost_round is None else num_boost_round
    if rounds < 1:
        raise ValueError(f"num_boost_round must be at least 1, got {rounds}")
    params = {**chosen, "seed": seed, "nthread": compute.nthread, "device": compute.device}
    fit_on = [train, validation] if fit_on_validation else [train]
    dtrain = split_matrix(fit_on, compute.nthread)
    history: dict[str, dict[str, list[float]]] = {}
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=rounds,
        evals=[(split_matrix([validation], compute.nthread, ref=dtrain), "validation")],
        evals_result=history,
        verbose_eval=False,
    )
    # Inference runs wherever the bundle lands; a CUDA-trained booster predicts on CPU there.
    booster.set_param({"device": "cpu"})
    return TrainedModel(
        booster=booster,
        validation_rmse=[float(v) for v in history["validation"]["rmse"]],
        params={**params, "num_boost_round": rounds},
    )
