"""new_batch_data_sensor: each new batch file is scored with the current Approved model package.

Settings: ABALONE_BATCH_WATCH (default ABALONE_HOME/incoming/batch), ABALONE_BATCH_WATCH_INTERVAL
and ABALONE_SENSORS_RUNNING, read when the code location loads (see defs/shared/watch.py).
A run materializes only batch_predictions, with batch_data set to the file and
model_package_version to the Approved version: nothing is retrained.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from abalone_platform.defs.shared.resources import ModelRegistry
from abalone_platform.defs.shared.watch import (
    SOURCE_TAG,
    WatchSettings,
    build_watch_sensor,
    parameters_config,
    watch_settings,
)
from abalone_platform.registry import approved_version
from abalone_platform.storage.watch import WatchedObject

MODEL_VERSION_TAG = "abalone/model_package_version"


def _scoring_runs(
    files: Sequence[WatchedObject], resources: Any, location: str
) -> list[dg.RunRequest] | str:
    registry: ModelRegistry = resources.registry
    version = approved_version(registry.open())
    if version is None:
        # The files stay pending in the cursor: they run as soon as a version is approved.
        return (
            f"No Approved model package in {registry.model_name}: {len(files)} batch file(s) "
            f"wait in {location} until a version is approved"
        )
    return [
        dg.RunRequest(
            run_key=obj.run_key,
            run_config=parameters_config(batch_data=obj.uri, model_package_version=version),
            asset_selection=[dg.AssetKey("batch_predictions")],
            tags={SOURCE_TAG: obj.uri, MODEL_VERSION_TAG: str(version)},
        )
        for obj in files
    ]


def build_batch_sensor(settings: WatchSettings | None = None) -> dg.SensorDefinition:
    settings = settings or watch_settings("ABALONE_BATCH_WATCH", "batch")
    return build_watch_sensor(
        name="new_batch_data_sensor",
        settings=settings,
        description=f"Watches {settings.location} (ABALONE_BATCH_WATCH) for new or changed "
        "*.csv / *.data batch files; each one, once stable across two ticks, starts a run that "
        "only materializes batch_predictions for it with the current Approved model package "
        "(no retraining). Skips while no version is Approved.",
        runs_for=_scoring_runs,
        resource_keys=frozenset({"registry"}),
    )


@dg.definitions
def defs() -> dg.Definitions:
    # A function, so that each load of the code location reads the settings afresh.
    return dg.Definitions(sensors=[build_batch_sensor()])
