"""new_batch_data_sensor: each new batch file is scored with the current Approved model package.

Settings (read when the code location loads; see the README's "S3 and sensors" section):
  ABALONE_BATCH_WATCH            folder or s3://bucket/prefix/ (default ABALONE_HOME/incoming/batch)
  ABALONE_BATCH_WATCH_INTERVAL   minimum seconds between ticks (default 30)
  ABALONE_SENSORS_RUNNING        1: the sensors start RUNNING instead of STOPPED
A run materializes only batch_predictions, with batch_data set to the file and
model_package_version to the Approved version: nothing is retrained.
"""

from __future__ import annotations

import dagster as dg

from abalone_platform.defs.data.sensors import (
    SOURCE_TAG,
    WatchSettings,
    parameters_config,
    plan_watch_tick,
    waiting_reason,
    watch_settings,
)
from abalone_platform.defs.jobs import abalone_pipeline
from abalone_platform.defs.registry.resources import ModelRegistry
from abalone_platform.defs.shared.resources import ArtifactStore
from abalone_platform.registry import approved_version

MODEL_VERSION_TAG = "abalone/model_package_version"


def approved_model_version(registry: ModelRegistry) -> int | None:
    """The current Approved model package version (see platform.registry.approved_version)."""
    return approved_version(registry.open())


def build_batch_sensor(settings: WatchSettings | None = None) -> dg.SensorDefinition:
    settings = settings or watch_settings("ABALONE_BATCH_WATCH", "batch")

    @dg.sensor(
        name="new_batch_data_sensor",
        job=abalone_pipeline,
        minimum_interval_seconds=settings.interval_s,
        default_status=settings.default_status,
        description=f"Watches {settings.location} (ABALONE_BATCH_WATCH) for new or changed "
        "*.csv / *.data batch files; each one, once stable across two ticks, starts a run that "
        "only materializes batch_predictions for it with the current Approved model package "
        "(no retraining). Skips while no version is Approved.",
    )
    def new_batch_data_sensor(
        context: dg.SensorEvaluationContext, artifacts: ArtifactStore, registry: ModelRegistry
    ) -> dg.SensorResult | dg.SkipReason:
        plan = plan_watch_tick(context, settings, artifacts)
        if isinstance(plan, dg.SkipReason):
            return plan
        if not plan.ready:
            return dg.SensorResult(
                skip_reason=waiting_reason(plan, settings.location),
                cursor=plan.state.to_cursor(),
            )
        version = approved_model_version(registry)
        if version is None:
            # The files stay pending in the cursor: they run as soon as a version is approved.
            return dg.SensorResult(
                skip_reason=f"No Approved model package in {registry.model_name}: "
                f"{len(plan.ready)} batch file(s) wait in {settings.location} until a version "
                "is approved",
                cursor=plan.state.to_cursor(),
            )
        requests = [
            dg.RunRequest(
                run_key=obj.run_key,
                run_config=parameters_config(batch_data=obj.uri, model_package_version=version),
                asset_selection=[dg.AssetKey("batch_predictions")],
                tags={SOURCE_TAG: obj.uri, MODEL_VERSION_TAG: str(version)},
            )
            for obj in plan.ready
        ]
        return dg.SensorResult(run_requests=requests, cursor=plan.mark_done(plan.ready).to_cursor())

    return new_batch_data_sensor
