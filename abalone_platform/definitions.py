"""The code location: every module under defs/ (one folder per area), loaded by Dagster's
defs-folder convention ([tool.dg] in pyproject.toml), plus the one executor for every job."""

from pathlib import Path

import dagster as dg


def build_defs() -> dg.Definitions:
    """The Definitions; ABALONE_HOME, ABALONE_ARTIFACT_ROOT, MLFLOW_TRACKING_URI and the sensor
    settings are read at the time of the call (ABALONE_INPUT_DATA / ABALONE_BATCH_DATA when a
    run starts)."""
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        # In-process, for the job and for the UI's Materialize button (the implicit asset job)
        # alike: one process per step costs about 5 s each here, several times the work itself.
        dg.Definitions(executor=dg.in_process_executor),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()
