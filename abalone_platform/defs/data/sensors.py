"""new_input_data_sensor: new or changed data in a folder or an S3 prefix starts a pipeline run.

Settings: ABALONE_INPUT_WATCH (default ABALONE_HOME/incoming/input), ABALONE_INPUT_WATCH_INTERVAL
and ABALONE_SENSORS_RUNNING, read when the code location loads (see defs/shared/watch.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from abalone_platform.defs.shared.watch import (
    SOURCE_TAG,
    WatchSettings,
    build_watch_sensor,
    parameters_config,
    watch_settings,
)
from abalone_platform.storage.watch import WatchedObject


def _training_runs(
    files: Sequence[WatchedObject], resources: Any, location: str
) -> list[dg.RunRequest]:
    return [
        dg.RunRequest(
            run_key=obj.run_key,
            run_config=parameters_config(input_data=obj.uri),
            tags={SOURCE_TAG: obj.uri},
        )
        for obj in files
    ]


def build_input_sensor(settings: WatchSettings | None = None) -> dg.SensorDefinition:
    settings = settings or watch_settings("ABALONE_INPUT_WATCH", "input")
    return build_watch_sensor(
        name="new_input_data_sensor",
        settings=settings,
        description=f"Watches {settings.location} (ABALONE_INPUT_WATCH) for new or changed "
        "*.csv / *.data files; each new version, once its size is stable across two ticks, "
        "starts one full abalone_pipeline run with input_data set to it.",
        runs_for=_training_runs,
    )


@dg.definitions
def defs() -> dg.Definitions:
    # A function, so that each load of the code location reads the settings afresh.
    return dg.Definitions(sensors=[build_input_sensor()])
