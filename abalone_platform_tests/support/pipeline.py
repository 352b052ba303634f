"""Helpers for running the pipeline in-process against a real instance."""

from __future__ import annotations

from typing import Any

import dagster as dg

from abalone_platform.definitions import build_defs


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
