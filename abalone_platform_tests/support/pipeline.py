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
