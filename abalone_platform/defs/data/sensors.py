"""new_input_data_sensor: new or changed data in a folder or an S3 prefix starts a pipeline run.

Settings (read when the code location loads; see the README's "S3 and sensors" section):
  ABALONE_INPUT_WATCH            folder or s3://bucket/prefix/ (default ABALONE_HOME/incoming/input)
  ABALONE_INPUT_WATCH_INTERVAL   minimum seconds between ticks (default 30)
  ABALONE_SENSORS_RUNNING        1: the sensors start RUNNING instead of STOPPED
The pickup rules (which names, when an object counts as completely written, once per version)
are in abalone_platform.storage.watch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from abalone_platform.defs.jobs import abalone_pipeline
from abalone_platform.defs.shared.resources import ArtifactStore
from abalone_platform.settings import abalone_home
from abalone_platform.storage.watch import (
    ListingError,
    TickPlan,
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
    return {"resources": {"parameters": {"config": values}}}


def plan_watch_tick(
    context: dg.SensorEvaluationContext,
    settings: WatchSettings,
    artifacts: ArtifactStore,
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


def waiting_reason(plan: TickPlan, location: str) -> str:
    if plan.waiting:
        names = ", ".join(obj.name for obj in plan.waiting[:5])
        return (
            f"{len(plan.waiting)} file(s) in {location} seen for the first time or still "
            f"changing ({names}); they are picked up once unchanged for one more tick"
        )
    return f"No new or changed data files in {location}"


def build_input_sensor(settings: WatchSettings | None = None) -> dg.SensorDefinition:
    settings = settings or watch_settings("ABALONE_INPUT_WATCH", "input")

    @dg.sensor(
        name="new_input_data_sensor",
        job=abalone_pipeline,
        minimum_interval_seconds=settings.interval_s,
        default_status=settings.default_status,
        description=f"Watches {settings.location} (ABALONE_INPUT_WATCH) for new or changed "
        "*.csv / *.data files; each new version, once its size is stable across two ticks, "
        "starts one full abalone_pipeline run with input_data set to it.",
    )
    def new_input_data_sensor(
        context: dg.SensorEvaluationContext, artifacts: ArtifactStore
    ) -> dg.SensorResult | dg.SkipReason:
        plan = plan_watch_tick(context, settings, artifacts)
        if isinstance(plan, dg.SkipReason):
            return plan
        requests = [
            dg.RunRequest(
                run_key=obj.run_key,
                run_config=parameters_config(input_data=obj.uri),
                tags={SOURCE_TAG: obj.uri},
            )
            for obj in plan.ready
        ]
        cursor = plan.mark_done(plan.ready).to_cursor()
        if not requests:
            return dg.SensorResult(
                skip_reason=waiting_reason(plan, settings.location), cursor=cursor
            )
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return new_input_data_sensor
