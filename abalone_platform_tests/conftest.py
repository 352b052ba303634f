"""Shared fixtures: a real Dagster instance (SQLite under a temp DAGSTER_HOME), a temp
ABALONE_HOME (artifacts + MLflow SQLite registry), the UCI file from shared/data, the notebook's
three executions and a real S3 API (support.s3_server)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from abalone_platform_tests.support.notebook import Notebook, shared_notebook
from abalone_platform_tests.support.project import (
    SHARED_ABALONE,
    UCI_FILE_CANDIDATES,
    Env,
    make_env,
)

pytest_plugins = ["abalone_platform_tests.support.s3_server"]


@pytest.fixture(scope="session")
def abalone_file() -> Path:
    assert SHARED_ABALONE.exists(), (
        "tests read the UCI abalone file; none at "
        + ", ".join(str(c) for c in UCI_FILE_CANDIDATES)
        + " (set ABALONE_TEST_DATA to a copy)"
    )
    return SHARED_ABALONE


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
