"""Evaluating a sensor tick the way the daemon would, with its resources and cursor."""

from __future__ import annotations

from typing import Any

import dagster as dg


def tick(
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    cursor: str | None,
    resources: dict[str, Any],
) -> dg.SensorResult:
    """One tick; a bare SkipReason is returned as a SensorResult that keeps the cursor."""
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        result = sensor(ctx)
    if isinstance(result, dg.SkipReason):
        return dg.SensorResult(skip_reason=result, cursor=cursor)
    assert isinstance(result, dg.SensorResult), result
    return result


def run_request(
    defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    """The run a tick requested, executed in this process (config, selection and tags as the
    daemon would launch it), not raising on failure."""
    return defs.resolve_job_def("abalone_pipeline").execute_in_process(
        run_config=request.run_config,
        instance=instance,
        asset_selection=request.asset_selection,
        tags=request.tags,
        raise_on_error=False,
    )
