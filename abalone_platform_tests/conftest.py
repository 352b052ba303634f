"""Shared fixtures: a real Dagster instance (SQLite under a temp DAGSTER_HOME), a temp
ABALONE_HOME (artifacts + MLflow SQLite registry), the UCI file from shared/data, the notebook's
three executions and a real S3 API (support.s3_server)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from abalone_platform.compute.cluster import StepCluster
from abalone_platform.ml.bundle import write_bundle
from abalone_platform.ml.data import AbaloneColumns, read_abalone_csv
from abalone_platform.ml.preprocess import ProcessedData, process
from abalone_platform.ml.train import TrainedModel, resolve_compute, train_model
from abalone_platform_tests.support.notebook import Notebook, shared_notebook
from abalone_platform_tests.support.project import (
    SHARED_ABALONE,
    UCI_FILE_CANDIDATES,
    Env,
    make_env,
)

pytest_plugins = ["abalone_platform_tests.support.s3_server"]

# Fixtures that make a test slow wherever it is: each starts servers or runs the pipeline several
# times. A test using one is marked `slow` (`make test-fast` leaves those out; CI runs all).
SLOW_FIXTURES = {
    "notebook": "the notebook's three executions",
    "s3_server": "a real S3 API server (moto)",
    "dagster_dev": "a real `dagster dev`",
    "browser": "chromium driven by selenium",
    "mlflow_server": "a real `mlflow server`",
}
# (A test module may also mark itself slow, as the Dask scheduler tests do.)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: starts servers (dagster dev, a browser, S3, mlflow server), builds the "
        "three-execution fixture or runs the pipeline in subprocesses; `make test-fast` skips it",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def abalone_file() -> Path:
    assert SHARED_ABALONE.exists(), (
        "tests read the UCI abalone file; none at "
        + ", ".join(str(c) for c in UCI_FILE_CANDIDATES)
        + " (set ABALONE_TEST_DATA to a copy)"
    )
    return SHARED_ABALONE


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[StepCluster]:
    """A Dask LocalCluster of 2 worker processes (ProcessingInstanceCount 2), started once
    (about 1.5 s here) for the tests that run parse/transform tasks on it."""
    from abalone_platform.compute.cluster import open_cluster

    with open_cluster(2) as cluster:
        yield cluster


# The UCI file read, processed and trained on once, for the ML and serving unit tests.
@pytest.fixture(scope="session")
def rows(abalone_file: Path) -> AbaloneColumns:
    return read_abalone_csv(abalone_file, "input_data (InputData)", require_label=True)


@pytest.fixture(scope="session")
def processed(rows: AbaloneColumns) -> ProcessedData:
    return process(rows, seed=42)


@pytest.fixture(scope="session")
def trained(processed: ProcessedData) -> TrainedModel:
    return train_model(
        processed.train, processed.validation, seed=42, compute=resolve_compute("ml.m5.xlarge")
    )


@pytest.fixture(scope="session")
def bundle(processed, trained, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """That model as a deployable bundle directory, and the bundle's sha256."""
    directory = tmp_path_factory.mktemp("bundle")
    sha = write_bundle(directory, bytes(trained.booster.save_raw("ubj")), processed.preprocessor)
    return directory, sha


@pytest.fixture
def env(tmp_path: Path, abalone_file: Path) -> Env:
    return make_env(tmp_path, abalone_file)


@pytest.fixture
def in_process(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """The same environment applied to this process, for execute_in_process tests."""
    for key in [k for k in os.environ if k.startswith(("ABALONE_", "MLFLOW_"))]:
        monkeypatch.delenv(key)
    for key in ("DAGSTER_HOME", "ABALONE_HOME", "ABALONE_INPUT_DATA"):
        monkeypatch.setenv(key, env.vars[key])
    yield env


@pytest.fixture(scope="session")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> Notebook:
    """Three executions: v1 PendingManualApproval, v2 Approved, a run failing the gate."""
    return shared_notebook(tmp_path_factory)
