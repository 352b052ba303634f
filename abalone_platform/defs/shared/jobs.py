"""The pipeline as one asset job (SageMaker's AbalonePipeline).

Its executor is the code location's (definitions.py sets it once, for this job and for the UI's
Materialize button alike).
"""

import dagster as dg

from abalone_platform.sagemaker import PIPELINE_JOB_NAME

abalone_pipeline = dg.define_asset_job(
    PIPELINE_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description="SageMaker's AbalonePipeline: process -> train -> evaluate -> gate "
    "(MSE <= MseThreshold) -> create model, batch transform, register model package.",
)
