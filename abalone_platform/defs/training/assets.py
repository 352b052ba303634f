"""AbaloneTrain: XGBoost on the train split, validated per round on the validation split, with
the hyperparameters AbaloneTuning chose from that same train split."""

import dagster as dg

from abalone_platform.code_version import code_version
from abalone_platform.defs.shared.caching import StepCache
from abalone_platform.defs.shared.resources import ArtifactStore, PipelineParameters
from abalone_platform.defs.shared.upstream import (
    chain_metadata,
    require_made_from,
    upstream,
    upstream_in_run,
)
from abalone_platform.faults import fault_point
from abalone_platform.ml.instance_types import InstanceTypeError
from abalone_platform.sagemaker import STEP_TAG

# XGBoost, the plots and the tuning result are imported by the step when it runs: loading the
# code location never needs them.


@dg.asset(
    group_name="training",
    deps=["train_split", "validation_split", "tuned_hyperparameters"],
    kinds={"xgboost"},
    tags={STEP_TAG: "AbaloneTrain"},
    description="SageMaker step AbaloneTrain: XGBoost reg:squarederror with tuned_hyperparameters' "
    "choice; by default (tuning_trials 0) the reference's: 50 rounds, max_depth 5, eta 0.2, "
    "gamma 4, min_child_weight 6, subsample 0.7, fit on the train split. A tuned recipe is refit "
    "on train + validation for the rounds the train split's cross-validation chose. Seeded; "
    "saved in XGBoost's own UBJSON format. Metadata: which hyperparameters it used, the rows it "
    "was fit on, the per-round validation RMSE (held out only when fit on train), as numbers "
    "and as a curve.",
)
def trained_model(
    context: dg.AssetExecutionContext, parameters: PipelineParameters, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    fault_point("step.trained_model")
    from abalone_platform.ml.plots import markdown_image, validation_curve_png
    from abalone_platform.ml.train import resolve_compute, split_rows, train_model
    from abalone_platform.ml.tune import TuningResult

    try:
        compute = resolve_compute(parameters.training_instance_type)
    except InstanceTypeError as exc:
        raise dg.Failure(description=str(exc)) from exc
    train_up = upstream(context, "train_split")
    # Both splits of one processing run: a re-run of processing in between never mixes them.
    validation_up = upstream_in_run(
        context, "validation_split", train_up.run_id, needed_by="trained_model"
    )
    # The hyperparameters chosen on exactly this train split (this run's, else the latest).
    tuned_up = upstream(context, "tuned_hyperparameters")
    require_made_from(
        tuned_up,
        train_up,
        needed_by="trained_model",
        hint="materialize tuned_hyperparameters first (or run the abalone_pipeline job)",
    )
    # The instance type decides the threads and the device, which XGBoost's histogram sums
    # may depend on: part of the key.
    cache = StepCache(
        context,
        step="trained_model",
        assets=["trained_model"],
        inputs={
            "train_split": train_up.ref.sha256,
            "validation_split": validation_up.ref.sha256,
            "tuned_hyperparameters": tuned_up.ref.sha256,
        },
        affecting={
            "seed": parameters.seed,
            "training_instance_type": parameters.training_instance_type,
        },
        parameters=parameters,
        step_module=__file__,
    )
    # This run's own entries: the inputs it was given (their sha256 are the key's).
    run_metadata = {
        "tuned_hyperparameters_run_id": tuned_up.run_id,
        "processing_run_id": train_up.run_id,
        **chain_metadata(train_up, validation_up, tuned_up),
    }
    hit = cache.lookup(artifacts.store)
    if hit is not None:
        return dg.MaterializeResult(
            metadata=hit.reused("trained_model", {**run_metadata, **cache.metadata(hit)})
        )
    try:
        tuned = TuningResult.from_json(artifacts.store.read_bytes(tuned_up.ref))
    except (ValueError, TypeError) as exc:
        raise dg.Failure(
            description=f"{tuned_up.describe()} is not a tuned_hyperparameters document: {exc}"
        ) from exc
    # Verified local files (downloaded once from S3), streamed into XGBoost row group by row
    # group: training memory is the quantized matrix, not the splits as frames.
    train = artifacts.store.local_copy(train_up.ref)
    validation = artifacts.store.local_copy(validation_up.ref)
    result = train_model(
        train,
        validation,
        seed=parameters.seed,
        compute=compute,
        hyperparameters=tuned.hyperparameters,
        num_boost_round=tuned.num_boost_round,
        fit_on_validation=tuned.fits_on_validation,
    )
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
            # Which hyperparameters: "reference" (tuning_trials 0) or "tuned" (the study's best).
            "hyperparameters_source": tuned.source,
            # The rows the booster was fit on: "train" (the reference's), or "train+validation"
            # (a tuned recipe's refit); then the validation RMSE below is not held out.
            "fit_on": tuned.fit_on,
            "validation_rmse": dg.MetadataValue.json(result.validation_rmse),
            "final_validation_rmse": result.validation_rmse[-1],
            "validation_curve": dg.MetadataValue.md(
                markdown_image(validation_curve_png(result.validation_rmse), "validation RMSE")
            ),
            "code_version": code_version(),
            "train_rows": split_rows(train)
            + (split_rows(validation) if tuned.fits_on_validation else 0),
            "validation_rows": split_rows(validation),
            **run_metadata,
            **cache.metadata(None),
        }
    )
