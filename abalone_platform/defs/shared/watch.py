"""The watch sensors' one factory: a folder or an S3 prefix watched for new data files.

Both sensors (new_input_data_sensor in defs/data, new_batch_data_sensor in defs/deployment) are
this sensor with a different location and a different run for each file that is ready. The
pickup rules (which names, when an object counts as completely written, once per version) are
in abalone_platform.storage.watch; this module is the Dagster side: settings from the
environment, the tick, the cursor.

Settings (read when the code location loads; see the README's "S3 and sensors" section):
  <PREFIX>               folder or s3://bucket/prefix/ (default ABALONE_HOME/incoming/<folder>)
  <PREFIX>_INTERVAL      minimum seconds between ticks (default 30)
  ABALONE_SENSORS_RUNNING  1: the sensors start RUNNING instead of STOPPED
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from abalone_platform.defs.shared.jobs import abalone_pipeline
from abalone_platform.defs.shared.resources import ArtifactStore
from abalone_platform.settings import abalone_home
from abalone_platform.storage.watch import (
    ListingError,
    TickPlan,
    WatchedObject,
    WatchState,
    list_location,
    plan_tick,
)

DEFAULT_INTERVAL_S = 30
SOURCE_TAG = "abalone/source_uri"


@dataclass(frozen=True)
class WatchSettings:
    location: str
    interval_s: int
    default_status: dg.DefaultSensorStatus
    is_default_location: bool


def watch_settings(prefix: str, default_folder: str) -> WatchSettings:
    """``<prefix>`` (location) and ``<prefix>_INTERVAL`` from the environment."""
    configured = os.environ.get(prefix, "").strip()
    location = configured or str(abalone_home() / "incoming" / default_folder)
    raw_interval = os.environ.get(f"{prefix}_INTERVAL", "").strip()
    try:
        interval = int(raw_interval) if raw_interval else DEFAULT_INTERVAL_S
    except ValueError as exc:
        raise ValueError(f"{prefix}_INTERVAL must be a whole number of seconds") from exc
    # Off by default: a sensor that launches training runs on whatever lands in a folder is
    # something to switch on knowingly (UI toggle, or ABALONE_SENSORS_RUNNING=1 for deployments).
    running = os.environ.get("ABALONE_SENSORS_RUNNING", "").strip().lower() in ("1", "true", "yes")
    return WatchSettings(
        location=location,
        interval_s=max(1, interval),
        default_status=(
            dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
        ),
        is_default_location=not configured,
    )


def parameters_config(**values: object) -> dict:
    """Run config setting the pipeline's parameters resource."""
    return {"resources": {"parameters": {"config": values}}}


def _plan(
    context: dg.SensorEvaluationContext, settings: WatchSettings, artifacts: ArtifactStore
) -> TickPlan | dg.SkipReason:
    """List the watched location and plan the tick; a listing error is logged and skipped (the
    cursor is kept, so the next tick simply tries again)."""
    if settings.is_default_location and not settings.location.startswith("s3://"):
        Path(settings.location).mkdir(parents=True, exist_ok=True)
    try:
        listing = list_location(settings.location, artifacts.s3.get_client)
    except ListingError as exc:
        message = f"Could not list the watched location: {exc}"
        context.log.warning(message)
        return dg.SkipReason(message)
    return plan_tick(WatchState.from_cursor(context.cursor), listing)


def _waiting_reason(plan: TickPlan, location: str) -> str:
    if plan.waiting:
        names = ", ".join(obj.name for obj in plan.waiting[:5])
        return (
            f"{len(plan.waiting)} file(s) in {location} seen for the first time or still "
            f"changing ({names}); they are picked up once unchanged for one more tick"
        )
    return f"No new or changed data files in {location}"


# What to do with the files that are ready (given the sensor's resources and the watched
# location): their run requests, or a reason to skip this tick that keeps them pending (they are
# offered again on the next tick).
RunsForFiles = Callable[[Sequence[WatchedObject], Any, str], list[dg.RunRequest] | str]


def build_watch_sensor(
    *,
    name: str,
    settings: WatchSettings,
    description: str,
    runs_for: RunsForFiles,
    resource_keys: frozenset[str] = frozenset(),
) -> dg.SensorDefinition:
    """A sensor on ``settings.location`` that asks ``runs_for`` what to run for each new or
    changed file once it is stable across two ticks, and remembers what it ran in its cursor.
    It uses the artifact store (S3 access) and ``resource_keys``, which ``runs_for`` reads."""

    @dg.sensor(
        name=name,
        job=abalone_pipeline,
        minimum_interval_seconds=settings.interval_s,
        default_status=settings.default_status,
        description=description,
        required_resource_keys={"artifacts", *resource_keys},
    )
    def watch(
        context: dg.SensorEvaluationContext, **_resources: object
    ) -> dg.SensorResult | dg.SkipReason:
        # Resources are read from the context: the daemon provides them there; a direct call
        # (build_sensor_context in tests) passes them as keyword arguments too.
        plan = _plan(context, settings, context.resources.artifacts)
        if isinstance(plan, dg.SkipReason):
            return plan
        if not plan.ready:
            return dg.SensorResult(
                skip_reason=_waiting_reason(plan, settings.location),
                cursor=plan.state.to_cursor(),
            )
        runs = runs_for(plan.ready, context.resources, settings.location)
        if isinstance(runs, str):
            return dg.SensorResult(skip_reason=runs, cursor=plan.state.to_cursor())
        return dg.SensorResult(run_requests=runs, cursor=plan.mark_done(plan.ready).to_cursor())

    return watch
