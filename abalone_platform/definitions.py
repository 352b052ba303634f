"""Assembles the areas under defs/ into the code location's Definitions."""

import dagster as dg

from abalone_platform.defs.data.assets import abalone_process
from abalone_platform.defs.deployment.assets import batch_predictions, deployable_model
from abalone_platform.defs.evaluation.assets import evaluation_report
from abalone_platform.defs.evaluation.checks import mse_within_threshold
from abalone_platform.defs.jobs import abalone_pipeline
from abalone_platform.defs.registry.assets import model_package
from abalone_platform.defs.registry.resources import default_registry
from abalone_platform.defs.shared.resources import ArtifactStore, PipelineParameters, abalone_home
from abalone_platform.defs.training.assets import trained_model


def build_defs() -> dg.Definitions:
    """The Definitions; ABALONE_HOME and MLFLOW_TRACKING_URI are read at the time of the call
    (ABALONE_INPUT_DATA / ABALONE_BATCH_DATA when a run starts)."""
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
        resources={
            "parameters": PipelineParameters(),
            "artifacts": ArtifactStore(root=str(abalone_home())),
            "registry": default_registry(),
        },
    )


defs = build_defs()
