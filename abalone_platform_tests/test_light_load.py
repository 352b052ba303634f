"""Loading the code location stays light: what a code server, a sensor tick process or
`dg check defs` imports. Checked in a fresh interpreter (this one has imported everything)."""

from __future__ import annotations

import json
import subprocess
import sys

from abalone_platform_tests.support.project import REPO_ROOT

HEAVY = ("xgboost", "sklearn", "pandas", "mlflow", "matplotlib", "optuna", "dask")


def imported_after(code: str) -> set[str]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    report = f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    probe = f"{code}\nimport sys, json\n{report}"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
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
