"""AbaloneTrain: XGBoost on the train split, validated per round on the validation split."""

import dagster as dg

from abalone_platform.code_version import code_version
from abalone_platform.defs.shared.resources import ArtifactStore, PipelineParameters
from abalone_platform.defs.shared.upstream import (
    chain_metadata,
    upstream,
    upstream_in_run,
)
from abalone_platform.faults import fault_point
from abalone_platform.ml.plots import markdown_image, validation_curve_png
from abalone_platform.ml.train import InstanceTypeError, resolve_compute, train_model
from abalone_platform.sagemaker import STEP_TAG


@dg.asset(
    group_name="training",
    deps=["train_split", "validation_split"],
    kinds={"xgboost"},
    tags={STEP_TAG: "AbaloneTrain"},
    description="SageMaker step AbaloneTrain: XGBoost reg:squarederror, 50 rounds, max_depth 5, "
    "eta 0.2, gamma 4, min_child_weight 6, subsample 0.7, seeded; saved in XGBoost's own UBJSON "
    "format. Metadata: the per-round validation RMSE, as numbers and as a curve.",
)
def trained_model(
    context: dg.AssetExecutionContext, parameters: PipelineParameters, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    fault_point("step.trained_model")
    try:
        compute = resolve_compute(parameters.training_instance_type)
    except InstanceTypeError as exc:
        raise dg.Failure(description=str(exc)) from exc
    train_up = upstream(context, "train_split")
    # Both splits of one processing run: a re-run of processing in between never mixes them.
    validation_up = upstream_in_run(
        context, "validation_split", train_up.run_id, needed_by="trained_model"
    )
    train = artifacts.read_parquet(train_up.ref)
    validation = artifacts.read_parquet(validation_up.ref)
    result = train_model(train, validation, seed=parameters.seed, compute=compute)
    ref = artifacts.store.write_bytes(
        "trained_model", context.run.run_id, "model.ubj", bytes(result.booster.save_raw("ubj"))
    )
    return dg.MaterializeResult(
        metadata={
            **ref.as_metadata(),
            "training_instance_type": compute.instance_type,
            "nthread": compute.nthread,
            "device": compute.device,
            "hyperparameters": dg.MetadataValue.json(result.params),
            "validation_rmse": dg.MetadataValue.json(result.validation_rmse),
            "final_validation_rmse": result.validation_rmse[-1],
            "validation_curve": dg.MetadataValue.md(
                markdown_image(validation_curve_png(result.validation_rmse), "validation RMSE")
            ),
            "code_version": code_version(),
            "train_rows": len(train),
            "validation_rows": len(validation),
            "processing_run_id": train_up.run_id,
            **chain_metadata(train_up, validation_up),
        }
    )
