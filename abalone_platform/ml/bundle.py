"""The deployable model (CreateModel): booster + preprocessor + inference spec, as files.

Layout of a bundle directory:
  model.ubj             XGBoost's own binary format
  preprocessor.json     the fitted preprocessor as data
  inference_spec.json   input columns, content types
  manifest.json         sha256 of each file above; the bundle's own sha256 is this file's
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xgboost as xgb

from abalone_platform.ml.data import FEATURE_COLUMNS, LABEL_COLUMN, AbaloneColumns
from abalone_platform.ml.preprocess import Preprocessor
from abalone_platform.storage.integrity import (
    MANIFEST_FILE,
    require_file,
    require_sha256,
    sha256_bytes,
)

MODEL_FILE = "model.ubj"
PREPROCESSOR_FILE = "preprocessor.json"
SPEC_FILE = "inference_spec.json"
CONTENT_TYPE = "text/csv"


def inference_spec() -> dict:
    return {
        "input_columns": list(FEATURE_COLUMNS),
        "optional_trailing_column": LABEL_COLUMN,
        "header": False,
        "supported_content_types": [CONTENT_TYPE],
        "supported_response_mime_types": [CONTENT_TYPE],
        "output": "one predicted rings value per input row, in input order",
    }


@dataclass(frozen=True)
class ModelBundle:
    booster: xgb.Booster
    preprocessor: Preprocessor
    spec: dict


def load_booster(data: bytes, expected_sha256: str, where: str) -> xgb.Booster:
    """Load a booster only after its bytes match the sha256 that was recorded for it."""
    require_sha256(
        sha256_bytes(data),
        expected_sha256,
        where,
        detail="refusing to load a model that changed after it was written",
    )
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    return booster


def predict_features(booster: xgb.Booster, features: np.ndarray) -> np.ndarray:
    """Predictions for a feature matrix already in MODEL_FEATURES order."""
    return booster.inplace_predict(features, validate_features=False)


def predict_columns(bundle: ModelBundle, columns: AbaloneColumns) -> np.ndarray:
    """One float32 prediction per row of ``columns``, through the bundle's own preprocessor:
    per row the same figures as the batch transform gives (rows never interact)."""
    return predict_features(bundle.booster, bundle.preprocessor.transform(columns))


def write_bundle(directory: Path, booster_bytes: bytes, preprocessor: Preprocessor) -> str:
    """Write a bundle's files into ``directory``; returns the bundle's sha256 (its manifest's)."""
    files = {
        MODEL_FILE: booster_bytes,
        PREPROCESSOR_FILE: preprocessor.to_json(),
        SPEC_FILE: json.dumps(inference_spec(), indent=2).encode(),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    manifest = json.dumps(
        {"files": {name: sha256_bytes(data) for name, data in files.items()}}, indent=2
    ).encode()
    (directory / MANIFEST_FILE).write_bytes(manifest)
    return sha256_bytes(manifest)


def read_bundle(directory: Path, expected_sha256: str) -> ModelBundle:
    """Load a bundle, checking the manifest's sha256 and every file's against the manifest."""
    manifest_bytes = require_file(directory / MANIFEST_FILE, str(directory)).read_bytes()
    require_sha256(
        sha256_bytes(manifest_bytes), expected_sha256, str(directory), what="manifest sha256"
    )
    expected = json.loads(manifest_bytes)["files"]
    contents = {}
    for name, digest in expected.items():
        data = require_file(directory / name).read_bytes()
        require_sha256(sha256_bytes(data), digest, str(directory / name), against="manifest's")
        contents[name] = data
    return ModelBundle(
        booster=load_booster(contents[MODEL_FILE], expected[MODEL_FILE], str(directory)),
        preprocessor=Preprocessor.from_json(contents[PREPROCESSOR_FILE]),
        spec=json.loads(contents[SPEC_FILE]),
    )
