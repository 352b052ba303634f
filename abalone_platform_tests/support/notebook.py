"""The notebook's three executions, run once against a fresh instance and registry."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from abalone_platform_tests.support.pipeline import run_pipeline
from abalone_platform_tests.support.project import REPO_ROOT, SHARED_ABALONE, Env, make_env

# configs/execution_*.yaml, as the notebook starts them.
NOTEBOOK_PARAMETERS = (
    {},
    {"training_instance_type": "ml.c5.xlarge", "model_approval_status": "Approved"},
    {"mse_threshold": 3.0},
)


@dataclass
class Notebook:
    env: Env
    run_ids: list[str]  # in execution order


@contextmanager
def applied(env: Env) -> Iterator[None]:
    """The environment in this process too (the pipeline and the registry read it)."""
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith(("ABALONE_", "MLFLOW_"))]:
            patch.delenv(key)
        for key in ("DAGSTER_HOME", "ABALONE_HOME", "ABALONE_INPUT_DATA"):
            patch.setenv(key, env.vars[key])
        yield


def run_notebook(root: Path) -> Notebook:
    env = make_env(root, SHARED_ABALONE)
    run_ids = []
    with applied(env), dg.DagsterInstance.get() as instance:
        for parameters in NOTEBOOK_PARAMETERS:
            result = run_pipeline(instance, parameters)
            run_ids.append(result.run_id)
    return Notebook(env=env, run_ids=run_ids)


def instance_of(env: Env) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(env.dagster_home))


def cli(env: Env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`abalone-platform ARGS` in this environment; works whether or not the script is installed."""
    return subprocess.run(
        [sys.executable, "-m", "abalone_platform.cli", *args],
        cwd=REPO_ROOT,
        env=env.vars,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


_SHARED: dict[str, Notebook] = {}


def shared_notebook(tmp_path_factory: pytest.TempPathFactory) -> Notebook:
    """One notebook per test session, for tests under cli/ and platform/ alike (the runs take
    half a minute). Tests may approve and reject, but must not assume the other tests' order."""
    if "notebook" not in _SHARED:
        _SHARED["notebook"] = run_notebook(tmp_path_factory.mktemp("notebook"))
    return _SHARED["notebook"]
