"""AbaloneTrain: XGBoost on the train split, validated per round on the validation split."""

import io

import dagster as dg
import pandas as pd

from abalone_platform.defs.shared.resources import ArtifactStore, PipelineParameters
from abalone_platform.defs.shared.upstream import Upstream, upstream
from abalone_platform.ml.plots import markdown_image, validation_curve_png
from abalone_platform.ml.train import InstanceTypeError, resolve_compute, train_model
from abalone_platform.platform.code_version import code_version


def read_split(artifacts: ArtifactStore, split: Upstream) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(artifacts.store.read_bytes(split.ref)))


@dg.asset(
    group_name="training",
    deps=["train_split", "validation_split"],
    kinds={"xgboost"},
    description="SageMaker step AbaloneTrain: XGBoost reg:squarederror, 50 rounds, max_depth 5, "
    "eta 0.2, gamma 4, min_child_weight 6, subsample 0.7, seeded; saved in XGBoost's own UBJSON "
    "format. Metadata: the per-round validation RMSE, as numbers and as a curve.",
)
def trained_model(
    context: dg.AssetExecutionContext, parameters: PipelineParameters, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    try:
        compute = resolve_compute(parameters.training_instance_type)
    except InstanceTypeError as exc:
        raise dg.Failure(description=str(exc)) from exc
    train = read_split(artifacts, upstream(context, "train_split"))
    validation = read_split(artifacts, upstream(context, "validation_split"))
    result = train_model(train, validation, seed=parameters.seed, compute=compute)
    ref = artifacts.store.write_bytes(
        "trained_model", context.run.run_id, "model.ubj", bytes(result.booster.save_raw("ubj"))
    )
    return dg.MaterializeResult(
        metadata={
            "uri": ref.uri,
            "sha256": ref.sha256,
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
        }
    )
