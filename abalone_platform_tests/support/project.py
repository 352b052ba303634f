"""Where the tests find things (the repository, the UCI file, the installed commands), the
project's asset keys, and one isolated installation (`Env`) to run commands in."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
UCI_FILE_IN_SHARED = Path("shared") / "data" / "abalone.data"


def _uci_file_candidates() -> list[Path]:
    """Where the tests look for the UCI file, in order: $ABALONE_TEST_DATA; shared/ beside this
    checkout (CI); shared/ beside the checkout this one was cloned from (a local `git clone`).
    The file is never copied into the repository."""
    candidates = []
    if os.environ.get("ABALONE_TEST_DATA"):
        candidates.append(Path(os.environ["ABALONE_TEST_DATA"]))
    candidates.append(REPO_ROOT.parent / UCI_FILE_IN_SHARED)
    origin = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / UCI_FILE_IN_SHARED)
    return candidates


UCI_FILE_CANDIDATES = _uci_file_candidates()
SHARED_ABALONE = next((c for c in UCI_FILE_CANDIDATES if c.exists()), UCI_FILE_CANDIDATES[0])
BIN = Path(sys.executable).parent
TEST_ARTIFACTS = REPO_ROOT / "test-artifacts"
# The public contract: asset keys in pipeline order; the first seven are built before the gate.
ASSETS = (
    "train_split",
    "validation_split",
    "test_split",
    "preprocessor",
    "tuned_hyperparameters",
    "trained_model",
    "evaluation_report",
    "deployable_model",
    "batch_predictions",
    "model_package",
)
UNGATED_ASSETS = ASSETS[:7]
# The SageMaker step each asset stands for (its `sagemaker/step` tag).
SAGEMAKER_STEP_OF_ASSET = {
    "train_split": "AbaloneProcess",
    "validation_split": "AbaloneProcess",
    "test_split": "AbaloneProcess",
    "preprocessor": "AbaloneProcess",
    "tuned_hyperparameters": "AbaloneTuning",
    "trained_model": "AbaloneTrain",
    "evaluation_report": "AbaloneEval",
    "deployable_model": "AbaloneCreateModel",
    "batch_predictions": "AbaloneTransform",
    "model_package": "AbaloneRegisterModel",
}
# The job's steps (Dagster ops), in pipeline order: processing is one multi-asset step, the gate
# its own step.
PIPELINE_STEPS = (
    "abalone_process",
    "tuned_hyperparameters",
    "trained_model",
    "evaluation_report",
    "mse_within_threshold",
    "deployable_model",
    "batch_predictions",
    "model_package",
)
GATED_ASSETS = ASSETS[7:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a server started with start_new_session=True, and whatever it started."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class Env:
    """One isolated installation: DAGSTER_HOME, ABALONE_HOME and the environment to use."""

    dagster_home: Path
    abalone_home: Path
    vars: dict[str, str]

    def run(
        self, *args: str, timeout: float = 300, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (e.g. `dagster job execute ...`) from the repo root in this environment
        (plus ``extra`` variables, e.g. ABALONE_FAULT for one command)."""
        return subprocess.run(
            list(args),
            cwd=REPO_ROOT,
            env={**self.vars, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def dagster(
        self, *args: str, timeout: float = 300, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "dagster"), *args, timeout=timeout, extra=extra)

    def cli(
        self, *args: str, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "abalone-platform"), *args, extra=extra)

    def execute(
        self, config: Path | None = None, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        args = ["job", "execute", "-m", "abalone_platform", "-j", "abalone_pipeline"]
        if config is not None:
            args += ["-c", str(config)]
        return self.dagster(*args, extra=extra)

    def tracking_uri(self) -> str:
        return f"sqlite:///{self.abalone_home / 'mlflow.db'}"


def make_env(root: Path, input_data: Path, *, project_instance: bool = False, **extra: str) -> Env:
    """``project_instance``: the instance is the project's own dagster.yaml (its storage
    classes, run monitoring), copied into the new DAGSTER_HOME; else Dagster's defaults."""
    dagster_home = root / "dagster_home"
    abalone_home = root / "abalone_home"
    dagster_home.mkdir(parents=True)
    if project_instance:
        shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    else:
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ABALONE_", "MLFLOW_"))}
    env.update(
        DAGSTER_HOME=str(dagster_home),
        ABALONE_HOME=str(abalone_home),
        ABALONE_INPUT_DATA=str(input_data),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return Env(dagster_home=dagster_home, abalone_home=abalone_home, vars=env)
