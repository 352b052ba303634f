"""AbaloneCreateModel and AbaloneTransform: the deployable bundle and batch predictions."""

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from abalone_platform.defs.shared.caching import StepCache
from abalone_platform.defs.shared.progress import ProgressReporter
from abalone_platform.defs.shared.resources import (
    ArtifactStore,
    DaskCluster,
    ModelRegistry,
    PipelineParameters,
    describe_run_on,
    ran_on_metadata,
)
from abalone_platform.defs.shared.upstream import (
    bundle_of,
    chain_metadata,
    hold_to_threshold,
    processing_run_of,
    require_made_from,
    require_passed_gate,
    upstream,
    upstream_in_run,
)
from abalone_platform.errors import (
    BATCH_PARAMETER,
    InputDataError,
    RegistryError,
    UnknownVersionError,
)
from abalone_platform.faults import fault_point
from abalone_platform.registry import approved_bundle
from abalone_platform.sagemaker import STEP_TAG
from abalone_platform.storage.artifacts import ArtifactRef
from abalone_platform.storage.inputs import named_by_uri
from abalone_platform.storage.integrity import MANIFEST_FILE

# XGBoost, the preprocessor and Dask are imported by the steps when they run: loading the code
# location never needs them.


@dataclass(frozen=True)
class BundleSource:
    """The deployable bundle a batch transform uses, and where that choice came from."""

    ref: ArtifactRef
    provenance: dict[str, object]


def registered_bundle(registry: ModelRegistry, version: int, threshold: float) -> BundleSource:
    """The bundle of registered model package ``version`` (Approved, completely registered; see
    registry.approved_bundle), whose recorded MSE must also pass this run's ``threshold``."""
    try:
        found = approved_bundle(registry.open(), version, purpose="run batch_predictions")
    except UnknownVersionError as exc:
        raise dg.Failure(
            description=f"model_package_version {version}: no such version; {exc}"
        ) from exc
    except RegistryError as exc:
        raise dg.Failure(description=f"model_package_version {version}: {exc}") from exc
    hold_to_threshold(
        "batch_predictions", found.mse, threshold, f"{registry.model_name} version {version}"
    )
    return BundleSource(
        ref=ArtifactRef(uri=found.uri, sha256=found.sha256),
        provenance={
            "model_package_version": found.version,
            "model_package_approval": found.approval_status,
            "model_dagster_run_id": found.dagster_run_id,
            "mse": found.mse,
        },
    )


@dg.asset(
    group_name="deployment",
    deps=["trained_model", "preprocessor", "evaluation_report"],
    kinds={"xgboost"},
    tags={STEP_TAG: "AbaloneCreateModel"},
    description="SageMaker step AbaloneCreateModel: a bundle of the fitted preprocessor, the "
    "booster and the inference spec (input columns, content type text/csv). Gated by "
    "mse_within_threshold.",
)
def deployable_model(
    context: dg.AssetExecutionContext, parameters: PipelineParameters, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    fault_point("step.deployable_model")
    from abalone_platform.ml.bundle import load_booster, write_bundle
    from abalone_platform.ml.preprocess import Preprocessor

    evaluation = require_passed_gate(context, "deployable_model", parameters.mse_threshold)
    model = upstream(context, "trained_model")
    require_made_from(
        evaluation,
        model,
        needed_by="deployable_model",
        hint="that model has not been evaluated; run the abalone_pipeline job",
    )
    # The preprocessor of the processing run the model was trained on, not the latest one:
    # a re-run of processing alone must never pair an old booster with a new preprocessor.
    preprocessor_up = upstream_in_run(
        context,
        "preprocessor",
        processing_run_of(model, needed_by="deployable_model"),
        needed_by="deployable_model",
    )
    store = artifacts.store
    booster_bytes = store.read_bytes(model.ref)
    booster = load_booster(booster_bytes, model.ref.sha256, model.ref.uri)
    preprocessor = Preprocessor.from_json(store.read_bytes(preprocessor_up.ref))
    if booster.feature_names and list(booster.feature_names) != list(preprocessor.output_columns):
        raise dg.Failure(
            description=f"Refusing to build deployable_model: {model.describe()} expects features "
            f"{booster.feature_names}, {preprocessor_up.describe()} produces "
            f"{preprocessor.output_columns}"
        )
    ref = store.write_directory(
        "deployable_model",
        context.run.run_id,
        "bundle",
        lambda directory: write_bundle(directory, booster_bytes, preprocessor),
    )
    # A bundle's sha256 is its manifest's, so the manifest reads back verified from any store.
    manifest = json.loads(store.read_bytes(ArtifactRef(f"{ref.uri}/{MANIFEST_FILE}", ref.sha256)))
    return dg.MaterializeResult(
        metadata={
            **ref.as_metadata(),
            "files": dg.MetadataValue.json(manifest["files"]),
            "model_uri": model.ref.uri,
            "model_sha256": model.ref.sha256,
            "preprocessor_sha256": preprocessor_up.ref.sha256,
            "content_type": "text/csv",
            "evaluation_run_id": evaluation.run_id,
            "mse": dg.MetadataValue.float(float(evaluation.metadata["mse"])),
            "mse_threshold": dg.MetadataValue.float(parameters.mse_threshold),
            **chain_metadata(evaluation, model, preprocessor_up),
        }
    )


@dg.asset(
    group_name="deployment",
    deps=["deployable_model", "evaluation_report"],
    kinds={"csv"},
    tags={STEP_TAG: "AbaloneTransform"},
    description="SageMaker step AbaloneTransform: one predicted rings value per row of "
    "BatchData (headerless CSV, input order), from raw feature rows through the bundle's own "
    "preprocessor, streamed in chunks. Gated by mse_within_threshold.",
)
def batch_predictions(
    context: dg.AssetExecutionContext,
    parameters: PipelineParameters,
    artifacts: ArtifactStore,
    registry: ModelRegistry,
    dask: DaskCluster,
) -> dg.MaterializeResult:
    fault_point("step.batch_predictions")
    from abalone_platform.compute.cluster import ClusterError
    from abalone_platform.ml.predict import batch_transform, estimated_rows

    threshold = parameters.mse_threshold
    chain: dict[str, dg.MetadataValue] = {}
    if parameters.model_package_version:
        bundle = registered_bundle(registry, parameters.model_package_version, threshold)
    else:
        evaluation = require_passed_gate(context, "batch_predictions", threshold)
        latest = bundle_of(context, evaluation, "batch_predictions")
        bundle = BundleSource(
            ref=latest.ref,
            provenance={
                "model_run_id": latest.run_id,
                "evaluation_run_id": evaluation.run_id,
                "mse": float(evaluation.metadata["mse"]),
            },
        )
        chain = chain_metadata(latest, evaluation)
    store = artifacts.store
    batch_uri = parameters.effective_batch_data
    count = parameters.processing_instance_count
    ran_on: dict[str, object] = {"compute": "in-process"}
    try:
        source = artifacts.resolve_input(batch_uri, BATCH_PARAMETER, env_hint="ABALONE_BATCH_DATA")
    except InputDataError as exc:
        raise dg.Failure(description=str(named_by_uri(exc, batch_uri))) from exc
    # The predictions are the bundle's (model + preprocessor, by its manifest's sha256) applied
    # to the batch file's bytes; every ProcessingInstanceCount writes the same bytes (tested).
    # The gate above is applied whether or not this is a hit.
    cache = StepCache(
        context,
        step="batch_predictions",
        assets=["batch_predictions"],
        inputs={"model_bundle": bundle.ref.sha256, "batch_data": source.sha256},
        affecting={},
        parameters=parameters,
        step_module=__file__,
    )
    # This run's own entries: the batch file as it was named, the bundle's provenance, the gate.
    run_metadata = {
        "batch_data": batch_uri,
        "model_bundle_uri": bundle.ref.uri,
        "processing_instance_count": count,
        "mse_threshold": dg.MetadataValue.float(threshold),
        **bundle.provenance,
        **chain,
    }
    hit = cache.lookup(store)
    if hit is not None:
        return dg.MaterializeResult(
            metadata=hit.reused("batch_predictions", {**run_metadata, **cache.metadata(hit)})
        )
    directory = store.local_copy(bundle.ref)
    try:
        rows: list[int] = []

        def reporter() -> ProgressReporter:
            # The total is estimated from the file's size and its first MiB's lines: no pass
            # over a 10M-row file just to count them. Quiet when the work takes under 10 s.
            return ProgressReporter(
                context.log,
                "batch_predictions",
                total=estimated_rows(source.path),
                approximate=True,
                quiet_when_fast=True,
            )

        def transform(out: Path) -> None:
            nonlocal ran_on
            if count == 1:
                with reporter() as progress:
                    rows.append(
                        batch_transform(
                            directory, bundle.ref.sha256, source.path, out, progress=progress
                        )
                    )
                return
            from abalone_platform.compute.transform import batch_transform_on

            with dask.open(count) as cluster, reporter() as progress:
                # (Started after the cluster: its start-up is not in the rate.)
                done = batch_transform_on(
                    cluster,
                    directory,
                    bundle.ref.sha256,
                    source.path,
                    dask.range_source(cluster, source, artifacts),
                    out,
                    progress=progress,
                )
            rows.append(done.rows)
            ran_on = ran_on_metadata(cluster, done.tasks_per_worker)
            context.log.info(f"Predicted {done.rows:,} rows on {describe_run_on(ran_on)}")

        # Named after the input object (its cached copy keeps the object's base name).
        ref = store.write_with(
            "batch_predictions", context.run.run_id, f"{source.path.name}.out", transform
        )
    except InputDataError as exc:
        raise dg.Failure(description=str(named_by_uri(exc, batch_uri))) from exc
    except ClusterError as exc:
        raise dg.Failure(description=f"processing_instance_count {count}: {exc}") from exc
    return dg.MaterializeResult(
        metadata={
            **ref.as_metadata(),
            "dagster/row_count": rows[0],
            "batch_sha256": source.sha256,
            "model_bundle_sha256": bundle.ref.sha256,
            **ran_on,
            **run_metadata,
            **cache.metadata(None),
        }
    )
