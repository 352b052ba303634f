"""Loading the code location stays light: what a code server, a sensor tick process or
`dg check defs` imports. Checked in a fresh interpreter (this one has imported everything)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from abalone_platform_tests.support.project import REPO_ROOT

HEAVY = (
    "xgboost",
    "sklearn",
    "scipy",
    "pandas",
    "pyarrow",
    "mlflow",
    "matplotlib",
    "optuna",
    "dask",
    # dagster-aws' package imports every component it ships (boto3 with them): the s3 resource
    # imports it only when a client is wanted.
    "dagster_aws",
    "boto3",
)


def imported_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    report = f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    probe = f"{code}\nimport sys, json\n{report}"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_validating_the_instance_type_imports_no_ml_library() -> None:
    # The parameters resource validates TrainingInstanceType at load; the table is stdlib-only,
    # and the k8s preset sizes the training pod from the same table.
    assert (
        imported_after(
            "from abalone_platform.defs.shared.resources import PipelineParameters\n"
            "from abalone_platform.k8s_resources import training_pod_resources\n"
            "PipelineParameters(training_instance_type='ml.c5.2xlarge')\n"
            "training_pod_resources('ml.p3.2xlarge')"
        )
        == set()
    )


def test_loading_the_definitions_imports_neither_mlflow_nor_figures_nor_tuning() -> None:
    loaded = imported_after("import abalone_platform.definitions as d\nd.defs()")
    assert loaded.isdisjoint({"mlflow", "matplotlib", "optuna", "dask"}), loaded


def location_env(tmp_path: Path) -> dict[str, str]:
    watched = tmp_path / "incoming"
    watched.mkdir()
    (watched / "abalone.data").write_text("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15\n")
    return {
        "ABALONE_HOME": str(tmp_path / "home"),
        "ABALONE_INPUT_WATCH": str(watched),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }


def test_loading_the_code_location_imports_no_ml_library(tmp_path: Path) -> None:
    # What every code server, sensor tick process and `dg check defs` does: the Definitions
    # and their repository (every asset, check, job, sensor and resource resolved).
    loaded = imported_after(
        "import abalone_platform.definitions as d\n"
        "repository = d.defs().get_repository_def()\n"
        "assert repository.get_all_jobs()",
        location_env(tmp_path),
    )
    assert loaded == set(), loaded


def test_a_sensor_tick_imports_no_ml_library(tmp_path: Path) -> None:
    # Two ticks of new_input_data_sensor on a fresh code location, as a code server evaluates
    # them (with the resources the sensor needs, as dagster's sensor execution picks them): the
    # file is seen, then requested as a run.
    loaded = imported_after(
        "import dagster as dg\n"
        "from dagster._core.execution.resources_init import "
        "get_transitive_required_resource_keys\n"
        "import abalone_platform.definitions as d\n"
        "repository = d.defs().get_repository_def()\n"
        "sensor = repository.get_sensor_def('new_input_data_sensor')\n"
        "top = repository.get_top_level_resources()\n"
        "needed = get_transitive_required_resource_keys(sensor.required_resource_keys, top)\n"
        "resources = {key: top[key] for key in needed}\n"
        "cursor, requests = None, []\n"
        "with dg.DagsterInstance.ephemeral() as instance:\n"
        "    for _ in range(2):\n"
        "        with dg.build_sensor_context(instance=instance, cursor=cursor,\n"
        "                                     resources=resources) as context:\n"
        "            result = sensor.evaluate_tick(context)\n"
        "        cursor = result.cursor or cursor\n"
        "        requests += result.run_requests\n"
        "assert len(requests) == 1, requests",
        location_env(tmp_path),
    )
    assert loaded == set(), loaded
