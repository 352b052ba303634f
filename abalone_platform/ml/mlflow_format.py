"""A registered version's files as an MLflow Model (pyfunc, models-from-code), and reading them
back without MLflow.

`save_model_dir` writes what `model_package` logs for a version: the model file
(ml/pyfunc_model.py), the bundle (booster UBJSON + preprocessor JSON + manifest) as the
artifact `bundle`, the bundle's sha256 as model_config, the signature (8 raw columns in, one
double out), an input example, pip requirements pinned to the installed (locked) versions, and
the few modules of this package the model imports, so the model loads where this project is not
installed. `read_model_dir` is the endpoint's loader: it reads MLmodel as YAML and the bundle
through `read_bundle` (sha256-checked), which costs milliseconds where importing MLflow's pyfunc
costs seconds; versions registered before MLflow models (a bare bundle) load the same way.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from abalone_platform.ml.bundle import ModelBundle, read_bundle
from abalone_platform.ml.data import FEATURE_COLUMNS, SEX_COLUMN
from abalone_platform.ml.pyfunc_model_names import BUNDLE_ARTIFACT, BUNDLE_SHA256_CONFIG
from abalone_platform.storage.integrity import MANIFEST_FILE, require_sha256

if TYPE_CHECKING:
    import pandas as pd

MLMODEL_FILE = "MLmodel"

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
# The modules the model file imports, transitively (a test loads the model with this project
# hidden from sys.path, so a missing one fails there, not at a user's).
MODEL_CODE_FILES: tuple[str, ...] = (
    "__init__.py",
    "errors.py",
    "faults.py",
    "ml/__init__.py",
    "ml/bundle.py",
    "ml/data.py",
    "ml/preprocess.py",
    "ml/pyfunc_model.py",
    "ml/pyfunc_model_names.py",
    "storage/__init__.py",
    "storage/files.py",
    "storage/integrity.py",
)
# What the model needs at inference, pinned to the versions installed here, which `make` syncs
# from uv.lock. Given explicitly: MLflow's own inference imports the model and costs seconds.
MODEL_REQUIREMENTS: tuple[str, ...] = ("mlflow", "xgboost", "numpy", "pandas", "pyarrow")


def pip_requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in MODEL_REQUIREMENTS]


def model_signature():  # -> mlflow.models.ModelSignature
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = [ColSpec("string" if c == SEX_COLUMN else "double", c) for c in FEATURE_COLUMNS]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double")]))


@contextlib.contextmanager
def _mlflow_quiet() -> Iterator[None]:
    from mlflow.environment_variables import MLFLOW_LOG_UV_FILES

    """MLflow's notes while saving (validating the example, no pip in a uv venv, "add type
    hints": the signature is given explicitly) are not the run log's business; its errors are."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    # MLflow would also copy the uv.lock of whatever project the working directory is in; the
    # pinned requirements are the model's environment, wherever the run started.
    uv_files = os.environ.get(MLFLOW_LOG_UV_FILES.name)
    MLFLOW_LOG_UV_FILES.set(False)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
            yield
    finally:
        logger.setLevel(level)
        if uv_files is None:
            os.environ.pop(MLFLOW_LOG_UV_FILES.name, None)
        else:
            os.environ[MLFLOW_LOG_UV_FILES.name] = uv_files


def save_model_dir(
    target: Path, bundle_dir: Path, bundle_sha256: str, input_example: pd.DataFrame | None
) -> None:
    """Write the MLflow Model of a bundle into ``target`` (which must not exist yet)."""
    import mlflow.pyfunc

    with (
        tempfile.TemporaryDirectory(prefix="abalone-model-code-") as stage,
        _mlflow_quiet(),
    ):
        package = Path(stage) / "abalone_platform"
        for name in MODEL_CODE_FILES:
            (package / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_PACKAGE_ROOT / name, package / name)
        mlflow.pyfunc.save_model(
            path=str(target),
            python_model=str(_PACKAGE_ROOT / "ml" / "pyfunc_model.py"),
            artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
            model_config={BUNDLE_SHA256_CONFIG: bundle_sha256},
            code_paths=[str(package)],
            signature=model_signature(),
            input_example=input_example,
            pip_requirements=pip_requirements(),
        )


def read_model_dir(directory: Path, recorded_bundle_sha256: str | None = None) -> ModelBundle:
    """The bundle of a version's downloaded files: an MLflow Model's `bundle` artifact, or (a
    version registered before MLflow models) the bare bundle; checked against the sha256 the
    registry recorded (``recorded_bundle_sha256``), which must also be MLmodel's when given."""
    mlmodel = directory / MLMODEL_FILE
    if mlmodel.is_file():
        flavor = yaml.safe_load(mlmodel.read_text())["flavors"]["python_function"]
        bundle = directory / flavor["artifacts"][BUNDLE_ARTIFACT]["path"]
        configured = flavor["config"][BUNDLE_SHA256_CONFIG]
        # The registry's record wins: files rewritten in the artifact store, MLmodel included,
        # must not pass as the registered version.
        require_sha256(
            configured,
            recorded_bundle_sha256 or configured,
            str(mlmodel),
            what="bundle sha256 in MLmodel",
            against="registry's",
        )
        return read_bundle(bundle, configured)
    if (directory / MANIFEST_FILE).is_file() and recorded_bundle_sha256:
        return read_bundle(directory, recorded_bundle_sha256)
    raise FileNotFoundError(
        f"{directory} holds neither an MLflow model ({MLMODEL_FILE}) nor a bundle "
        f"({MANIFEST_FILE}) with a recorded sha256"
    )
