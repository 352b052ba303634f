"""AbaloneTrain: XGBoost with the reference's hyperparameters, seeded."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

from abalone_platform.ml.data import LABEL_COLUMN
from abalone_platform.ml.devices import cuda_device_count
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

_INSTANCE_TYPE = re.compile(r"^ml\.(?P<family>[a-z]+)(?P<generation>\d+)[a-z0-9-]*\.(?P<size>\w+)$")
_SIZE_VCPUS = {"nano": 2, "micro": 2, "small": 2, "medium": 2, "large": 2, "xlarge": 4}
_GPU_FAMILIES = ("p", "g")


class InstanceTypeError(ValueError):
    pass


@dataclass(frozen=True)
class Compute:
    """Local resources that stand in for a SageMaker training instance."""

    instance_type: str
    vcpus: int
    nthread: int
    device: str  # "cpu" or "cuda"


def instance_vcpus(instance_type: str) -> int:
    match = _INSTANCE_TYPE.match(instance_type)
    if not match:
        raise InstanceTypeError(
            f"training_instance_type (TrainingInstanceType): {instance_type!r} is not a SageMaker "
            "instance type such as ml.m5.xlarge"
        )
    size = match["size"]
    if size in _SIZE_VCPUS:
        return _SIZE_VCPUS[size]
    sized = re.fullmatch(r"(\d+)xlarge", size)
    if sized:
        return 4 * int(sized[1])
    if size == "metal":
        return 96
    raise InstanceTypeError(
        f"training_instance_type (TrainingInstanceType): {instance_type!r} has an unknown size "
        f"{size!r}"
    )


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
    family = _INSTANCE_TYPE.match(instance_type)["family"]
    device = "cpu"
    if family.startswith(_GPU_FAMILIES) and not family.startswith("gr"):
        if not cuda_available():
            raise InstanceTypeError(
                f"training_instance_type (TrainingInstanceType): {instance_type} is a GPU "
                "instance type but XGBoost finds no CUDA device here; choose a CPU type such as "
                "ml.m5.xlarge"
            )
        device = "cuda"
    nthread = max(1, min(vcpus, os.cpu_count() or 1))
    return Compute(instance_type=instance_type, vcpus=vcpus, nthread=nthread, device=device)


def _dmatrix(frame: pd.DataFrame, nthread: int) -> xgb.DMatrix:
    return xgb.DMatrix(
        frame[list(MODEL_FEATURES)].to_numpy(dtype=np.float32),
        label=frame[LABEL_COLUMN].to_numpy(),
        feature_names=list(MODEL_FEATURES),
        nthread=nthread,
    )


@dataclass(frozen=True)
class TrainedModel:
    booster: xgb.Booster
    validation_rmse: list[float]
    params: dict[str, object]


def train_model(
    train: pd.DataFrame, validation: pd.DataFrame, *, seed: int, compute: Compute
) -> TrainedModel:
    params = {**HYPERPARAMETERS, "seed": seed, "nthread": compute.nthread, "device": compute.device}
    history: dict[str, dict[str, list[float]]] = {}
    booster = xgb.train(
        params,
        _dmatrix(train, compute.nthread),
        num_boost_round=NUM_BOOST_ROUND,
        evals=[(_dmatrix(validation, compute.nthread), "validation")],
        evals_result=history,
        verbose_eval=False,
    )
    # Inference runs wherever the bundle lands; a CUDA-trained booster predicts on CPU there.
    booster.set_param({"device": "cpu"})
    return TrainedModel(
        booster=booster,
        validation_rmse=[float(v) for v in history["validation"]["rmse"]],
        params={**params, "num_boost_round": NUM_BOOST_ROUND},
    )
