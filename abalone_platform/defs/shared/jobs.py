"""The pipeline as one asset job (SageMaker's AbalonePipeline).

Its executor is the code location's (definitions.py sets it once, for this job and for the UI's
Materialize button alike). Its console logger shows INFO and above by default: Dagster logs every
step event at DEBUG, a wall of lines in `make run` / `dagster job execute` that hides what the
steps themselves report (the gate's outcome, progress, the run summary). The event log keeps
every event either way; `loggers: {console: {config: {log_level: DEBUG}}}` in a run config
brings the lines back on the console.
"""

import dagster as dg

from abalone_platform.sagemaker import PIPELINE_JOB_NAME

# The job's default run config: a run config given (`-c FILE`, the launchpad, a sensor's
# RunRequest) keeps it unless it sets `loggers` itself.
CONSOLE_LOG_LEVEL = "INFO"
DEFAULT_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": CONSOLE_LOG_LEVEL}}}}

abalone_pipeline = dg.define_asset_job(
    PIPELINE_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description="SageMaker's AbalonePipeline: process -> train -> evaluate -> gate "
    "(MSE <= MseThreshold) -> create model, batch transform, register model package.",
    config=DEFAULT_RUN_CONFIG,
)
