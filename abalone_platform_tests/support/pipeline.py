"""Helpers for running the pipeline in-process against a real instance, or as several
`dagster job execute` processes at once."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import dagster as dg

from abalone_platform.definitions import build_defs
from abalone_platform_tests.support.project import BIN, REPO_ROOT, Env


def run_pipeline(
    instance: dg.DagsterInstance,
    parameters: dict[str, Any] | None = None,
    selection: list[str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Run abalone_pipeline (or a selection of it) in-process, not raising on failure."""
    defs = build_defs()
    job = defs.resolve_job_def("abalone_pipeline")
    run_config = {"resources": {"parameters": {"config": parameters or {}}}}
    return job.execute_in_process(
        run_config=run_config,
        instance=instance,
        raise_on_error=False,
        asset_selection=[dg.AssetKey(k) for k in selection] if selection else None,
    )


def meta(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The plain metadata of the run's one materialization of ``asset``."""
    [mat] = [
        m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(asset)
    ]
    return {k: getattr(v, "value", v) for k, v in mat.materialization.metadata.items()}


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every step failure's error of the run, one per line."""
    return "\n".join(str(e.step_failure_data.error) for e in result.all_events if e.is_step_failure)


def execute_at_once(env: Env, count: int, config: Path | None = None) -> list[str]:
    """``count`` `dagster job execute` runs of the pipeline started together in ``env``; asserts
    that each exits 0 and returns their outputs."""
    # Dagster's own SQLite storage is created on first use; two processes creating it at the
    # same moment race in its migrations (Dagster's, not the pipeline's; a team instance is
    # Postgres). A real instance exists before runs overlap.
    dg.DagsterInstance.from_config(str(env.dagster_home)).dispose()
    command = [str(BIN / "dagster"), "job", "execute", "-m", "abalone_platform"]
    command += ["-j", "abalone_pipeline", *(["-c", str(config)] if config else [])]
    runs = [
        subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env.vars,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(count)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * count, "\n".join(o[-2000:] for o in outputs)
    return outputs
