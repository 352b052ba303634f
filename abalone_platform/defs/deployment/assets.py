"""AbaloneCreateModel and AbaloneTransform: the deployable bundle and batch predictions."""

import json
from pathlib import Path

import dagster as dg

from abalone_platform.defs.shared.resources import ArtifactStore, PipelineParameters
from abalone_platform.defs.shared.upstream import require_passed_gate, upstream
from abalone_platform.ml.bundle import MANIFEST_FILE, load_booster, read_bundle, write_bundle
from abalone_platform.ml.data import InputDataError
from abalone_platform.ml.predict import BATCH_PARAMETER, batch_transform
from abalone_platform.ml.preprocess import Preprocessor
from abalone_platform.storage.artifacts import ArtifactRef


def bundle_dir(ref: ArtifactRef) -> Path:
    return ref.path


@dg.asset(
    group_name="deployment",
    deps=["trained_model", "preprocessor", "evaluation_report"],
    kinds={"xgboost"},
    description="SageMaker step AbaloneCreateModel: a bundle of the fitted preprocessor, the "
    "booster and the inference spec (input columns, content type text/csv). Gated by "
    "mse_within_threshold.",
)
def deployable_model(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    evaluation = require_passed_gate(context, "deployable_model")
    model = upstream(context, "trained_model")
    if model.ref.sha256 != evaluation.metadata.get("model_sha256"):
        raise dg.Failure(
            description="Refusing to build deployable_model: the latest trained_model "
            f"(run {model.run_id}) is not the model that evaluation_report evaluated "
            f"(run {evaluation.run_id}); run the abalone_pipeline job"
        )
    store = artifacts.store
    booster_bytes = store.read_bytes(model.ref)
    load_booster(booster_bytes, model.ref.sha256, model.ref.uri)
    preprocessor_up = upstream(context, "preprocessor")
    preprocessor = Preprocessor.from_json(store.read_bytes(preprocessor_up.ref))
    ref = store.write_directory(
        "deployable_model",
        context.run_id,
        "bundle",
        lambda directory: write_bundle(directory, booster_bytes, preprocessor),
    )
    manifest = json.loads((ref.path / MANIFEST_FILE).read_text())
    return dg.MaterializeResult(
        metadata={
            "uri": ref.uri,
            "sha256": ref.sha256,
            "files": dg.MetadataValue.json(manifest["files"]),
            "model_uri": model.ref.uri,
            "model_sha256": model.ref.sha256,
            "preprocessor_sha256": preprocessor_up.ref.sha256,
            "content_type": "text/csv",
            "evaluation_run_id": evaluation.run_id,
        }
    )


@dg.asset(
    group_name="deployment",
    deps=["deployable_model", "evaluation_report"],
    kinds={"csv"},
    description="SageMaker step AbaloneTransform: one predicted rings value per row of "
    "BatchData (headerless CSV, input order), from raw feature rows through the bundle's own "
    "preprocessor, streamed in chunks. Gated by mse_within_threshold.",
)
def batch_predictions(
    context: dg.AssetExecutionContext, parameters: PipelineParameters, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    require_passed_gate(context, "batch_predictions")
    bundle = upstream(context, "deployable_model")
    read_bundle(bundle_dir(bundle.ref), bundle.ref.sha256)
    batch_uri = parameters.effective_batch_data
    try:
        source = artifacts.resolve_input(batch_uri, BATCH_PARAMETER, env_hint="ABALONE_BATCH_DATA")
        rows: list[int] = []
        ref = artifacts.store.write_with(
            "batch_predictions",
            context.run_id,
            f"{source.path.name}.out",
            lambda out: rows.append(
                batch_transform(
                    bundle_dir(bundle.ref),
                    bundle.ref.sha256,
                    source.path,
                    out,
                    workers=parameters.processing_instance_count,
                )
            ),
        )
    except InputDataError as exc:
        raise dg.Failure(description=str(exc)) from exc
    return dg.MaterializeResult(
        metadata={
            "uri": ref.uri,
            "sha256": ref.sha256,
            "dagster/row_count": rows[0],
            "batch_data": batch_uri,
            "batch_sha256": source.sha256,
            "model_bundle_uri": bundle.ref.uri,
            "model_bundle_sha256": bundle.ref.sha256,
            "workers": parameters.processing_instance_count,
        }
    )
