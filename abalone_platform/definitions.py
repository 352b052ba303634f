"""Assembles the areas under defs/ into the code location's Definitions."""

import dagster as dg
from dagster_aws.s3 import S3Resource

from abalone_platform.defs.data.assets import abalone_process
from abalone_platform.defs.data.sensors import build_input_sensor
from abalone_platform.defs.deployment.assets import batch_predictions, deployable_model
from abalone_platform.defs.deployment.sensors import build_batch_sensor
from abalone_platform.defs.evaluation.assets import evaluation_report
from abalone_platform.defs.evaluation.checks import mse_within_threshold
from abalone_platform.defs.jobs import abalone_pipeline
from abalone_platform.defs.registry.assets import model_package
from abalone_platform.defs.registry.resources import default_registry
from abalone_platform.defs.shared.resources import ArtifactStore, PipelineParameters
from abalone_platform.defs.training.assets import trained_model
from abalone_platform.settings import abalone_home, artifact_root_setting


def build_defs() -> dg.Definitions:
    """The Definitions; ABALONE_HOME, ABALONE_ARTIFACT_ROOT, MLFLOW_TRACKING_URI and the sensor
    settings are read at the time of the call (ABALONE_INPUT_DATA / ABALONE_BATCH_DATA when a
    run starts)."""
    # Endpoint, region and credentials stay with boto3's standard chain (AWS_ENDPOINT_URL,
    # AWS_PROFILE, ...): nothing secret in Dagster config, and AWS / MinIO / moto alike.
    s3 = S3Resource()
    return dg.Definitions(
        assets=[
            abalone_process,
            trained_model,
            evaluation_report,
            deployable_model,
            batch_predictions,
            model_package,
        ],
        asset_checks=[mse_within_threshold],
        jobs=[abalone_pipeline],
        # Also for the UI's Materialize button (the implicit asset job): one process per step
        # costs about 5 s each here, several times the work itself.
        executor=dg.in_process_executor,
        sensors=[build_input_sensor(), build_batch_sensor()],
        resources={
            "parameters": PipelineParameters(),
            "s3": s3,
            "artifacts": ArtifactStore(
                root=str(abalone_home()), artifact_root=artifact_root_setting(), s3=s3
            ),
            "registry": default_registry(),
        },
    )


defs = build_defs()
