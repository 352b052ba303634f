"""The pipeline as one asset job (SageMaker's AbalonePipeline)."""

import dagster as dg

PIPELINE_JOB_NAME = "abalone_pipeline"

# In-process: the multiprocess executor starts a process per step (about 5 s each here), which
# for this DAG is several times the work itself.
abalone_pipeline = dg.define_asset_job(
    PIPELINE_JOB_NAME,
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="SageMaker's AbalonePipeline: process -> train -> evaluate -> gate "
    "(MSE <= MseThreshold) -> create model, batch transform, register model package.",
)
