"""A registered version's files as an MLflow Model: the signature, predictions equal to the
batch transform's, sha256 checks on load, legacy bundles, and a model that loads where this
project is not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from abalone_platform.ml.data import FEATURE_COLUMNS, RAW_COLUMNS
from abalone_platform.ml.mlflow_format import (
    MODEL_CODE_FILES,
    pip_requirements,
    read_model_dir,
    save_model_dir,
)
from abalone_platform.ml.predict import batch_transform
from abalone_platform.storage.integrity import ArtifactIntegrityError
from abalone_platform_tests.support.project import REPO_ROOT


@pytest.fixture(scope="module")
def raw(abalone_file: Path) -> pd.DataFrame:
    return pd.read_csv(abalone_file, header=None, names=list(RAW_COLUMNS))


@pytest.fixture(scope="module")
def model_dir(bundle, raw, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("mlflow") / "model"
    save_model_dir(target, bundle[0], bundle[1], raw.head(3)[list(FEATURE_COLUMNS)])
    return target


@pytest.fixture(scope="module")
def batch_output(bundle, abalone_file: Path, tmp_path_factory) -> np.ndarray:
    out = tmp_path_factory.mktemp("out") / "batch.out"
    batch_transform(bundle[0], bundle[1], abalone_file, out)
    return np.array([np.float32(v) for v in out.read_text().split()])


def test_signature_is_the_eight_raw_columns_and_one_double(model_dir: Path) -> None:
    signature = mlflow.pyfunc.load_model(str(model_dir)).metadata.signature
    inputs = signature.inputs.to_dict()
    assert [(c["name"], c["type"]) for c in inputs] == [
        ("sex", "string"),
        *[(name, "double") for name in FEATURE_COLUMNS[1:]],
    ]
    assert [c["type"] for c in signature.outputs.to_dict()] == ["double"]
    example = json.loads((model_dir / "input_example.json").read_text())
    assert example["columns"] == list(FEATURE_COLUMNS) and len(example["data"]) == 3


def test_requirements_are_pinned_explicitly(model_dir: Path) -> None:
    listed = (model_dir / "requirements.txt").read_text().split()
    for requirement in pip_requirements():
        assert requirement in listed
        assert "==" in requirement
    # MLflow's uv detection would copy the lock of whatever project the cwd is in.
    assert not (model_dir / "uv.lock").exists()


def test_pyfunc_predicts_what_the_batch_transform_wrote(
    model_dir: Path, raw: pd.DataFrame, batch_output: np.ndarray
) -> None:
    model = mlflow.pyfunc.load_model(str(model_dir))
    predicted = model.predict(raw)  # rings is an extra column, ignored
    assert predicted.dtype == np.float64
    np.testing.assert_array_equal(predicted.astype(np.float32), batch_output)
    # Any subset, any order: rows never interact.
    picked = raw.iloc[[4000, 3, 1500]]
    np.testing.assert_array_equal(
        model.predict(picked).astype(np.float32), batch_output[[4000, 3, 1500]]
    )


def test_pyfunc_refuses_bad_rows_naming_row_and_column(model_dir: Path, raw) -> None:
    frame = raw.head(3).copy()
    frame.loc[1, "length"] = -1.0
    with pytest.raises(Exception, match=r"row 2: column 'length'"):
        mlflow.pyfunc.load_model(str(model_dir)).predict(frame)


def test_loader_checks_sha256_of_the_booster(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    assert read_model_dir(copy).booster is not None
    (booster,) = copy.glob("artifacts/*/model.ubj")  # the folder keeps the source's name
    booster.write_bytes(booster.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        read_model_dir(copy)
    with pytest.raises(Exception, match="sha256"):
        mlflow.pyfunc.load_model(str(copy))


def test_missing_values_in_a_dataframe_as_pandas_na(model_dir: Path, raw: pd.DataFrame) -> None:
    """A missing sex as pandas' NA (a "string" column) and a missing length as NaN predict as
    the empty CSV fields do."""
    from abalone_platform.ml.bundle import predict_columns
    from abalone_platform.serving.payloads import parse_csv

    frame = raw.head(2)[list(FEATURE_COLUMNS)].copy()
    frame["sex"] = frame["sex"].astype("string")
    frame.loc[0, "sex"] = pd.NA
    frame.loc[1, "length"] = np.nan
    predicted = mlflow.pyfunc.load_model(str(model_dir)).predict(frame).astype(np.float32)
    csv_rows = [",".join(["" if pd.isna(v) else str(v) for v in row]) for row in frame.values]
    expected = predict_columns(read_model_dir(model_dir), parse_csv("\n".join(csv_rows).encode()))
    np.testing.assert_array_equal(predicted, expected)


def test_registry_record_must_match_mlmodel(model_dir: Path, bundle) -> None:
    assert read_model_dir(model_dir, bundle[1]) is not None
    with pytest.raises(ArtifactIntegrityError, match="bundle sha256 in MLmodel"):
        read_model_dir(model_dir, "0" * 64)


def test_legacy_bundle_loads_with_the_recorded_sha256(bundle) -> None:
    directory, sha = bundle
    assert read_model_dir(directory, sha).preprocessor is not None
    with pytest.raises(FileNotFoundError):
        read_model_dir(directory)  # no MLmodel and no recorded sha256


@pytest.mark.slow
def test_model_loads_where_the_project_is_not_installed(
    model_dir: Path, raw: pd.DataFrame, batch_output: np.ndarray, tmp_path: Path
) -> None:
    """The model ships the modules it imports (MODEL_CODE_FILES): loaded with this checkout
    hidden from sys.path, abalone_platform comes from the model's own code/ folder."""
    rows = tmp_path / "rows.csv"
    raw.head(20).to_csv(rows, index=False)
    script = f"""
import sys
sys.path = [p for p in sys.path if p and p.rstrip("/") != {str(REPO_ROOT)!r}]
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model({str(model_dir)!r})
import abalone_platform
assert abalone_platform.__file__.startswith({str(model_dir)!r}), abalone_platform.__file__
print(",".join(str(v) for v in model.predict(pd.read_csv({str(rows)!r}))))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    values = np.array([float(v) for v in done.stdout.strip().split(",")], np.float32)
    np.testing.assert_array_equal(values, batch_output[:20])
    assert len(MODEL_CODE_FILES) == len(set(MODEL_CODE_FILES))
