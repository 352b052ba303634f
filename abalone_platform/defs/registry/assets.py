"""AbaloneRegisterModel: a new version in the model package group, with its approval status."""

import json

import dagster as dg

from abalone_platform.code_version import code_version
from abalone_platform.defs.shared.resources import ArtifactStore, ModelRegistry, PipelineParameters
from abalone_platform.defs.shared.upstream import bundle_of, chain_metadata, require_passed_gate
from abalone_platform.faults import fault_point
from abalone_platform.ml.bundle import inference_spec, read_bundle
from abalone_platform.registry import MODEL_PACKAGE_GROUP, register_version
from abalone_platform.sagemaker import STEP_TAG
from abalone_platform.storage.artifacts import ArtifactRef


@dg.asset(
    group_name="registry",
    deps=["deployable_model", "evaluation_report"],
    kinds={"mlflow"},
    tags={STEP_TAG: "AbaloneRegisterModel"},
    description="SageMaker step AbaloneRegisterModel: a new version of registered model "
    f"{MODEL_PACKAGE_GROUP} in MLflow, tagged ModelApprovalStatus, with the evaluation "
    "metrics, the inference spec and the Dagster run id. Gated by mse_within_threshold. "
    "Metadata: the version, its approval status and where to find it in MLflow.",
)
def model_package(
    context: dg.AssetExecutionContext,
    parameters: PipelineParameters,
    artifacts: ArtifactStore,
    registry: ModelRegistry,
) -> dg.MaterializeResult:
    fault_point("step.model_package")
    threshold = parameters.mse_threshold
    evaluation = require_passed_gate(context, "model_package", threshold)
    bundle = bundle_of(context, evaluation, "model_package")
    bundle_dir = artifacts.store.local_copy(bundle.ref)
    read_bundle(bundle_dir, bundle.ref.sha256)
    report = json.loads(artifacts.store.read_bytes(evaluation.ref))
    metrics = {
        name: float(values["value"]) for name, values in report["regression_metrics"].items()
    }
    metrics["mse_standard_deviation"] = float(
        report["regression_metrics"]["mse"]["standard_deviation"]
    )
    status = parameters.model_approval_status.value
    version, source = register_version(
        registry.open(),
        artifact_root=registry.artifact_root,
        bundle_dir=bundle_dir,
        approval_status=status,
        metrics=metrics,
        params={
            **{k: str(v) for k, v in parameters.as_sagemaker_parameters().items()},
            "input_sha256": str(evaluation.metadata.get("input_sha256", "")),
            # The threshold this registration was held to (this run's), not a copy of another.
            "mse_threshold_applied": str(threshold),
        },
        tags={
            "dagster_run_id": context.run.run_id,
            "evaluation_uri": evaluation.ref.uri,
            "evaluation_sha256": evaluation.ref.sha256,
            "bundle_uri": bundle.ref.uri,
            "bundle_sha256": bundle.ref.sha256,
            "inference_spec": json.dumps(inference_spec()),
            "mse": repr(metrics["mse"]),
            "mse_threshold": repr(threshold),
        },
    )
    return dg.MaterializeResult(
        metadata={
            # The version is found by its MLflow source; its bytes are the bundle's.
            **ArtifactRef(source, bundle.ref.sha256).as_metadata(),
            "model_package_group": MODEL_PACKAGE_GROUP,
            "model_package_version": int(version),
            "approval_status": status,
            "mse": dg.MetadataValue.float(metrics["mse"]),
            "tracking_uri": registry.tracking_uri,
            "evaluation_run_id": evaluation.run_id,
            "mse_threshold": dg.MetadataValue.float(threshold),
            **chain_metadata(bundle, evaluation),
            # The version's address in the registry. Not yet loadable with mlflow.pyfunc (the
            # version holds the bundle's files, not an MLflow model), hence not "model_uri".
            "registered_version_uri": f"models:/{MODEL_PACKAGE_GROUP}/{version}",
            "where_in_mlflow": dg.MetadataValue.md(
                f"`mlflow ui --backend-store-uri {registry.tracking_uri}`, then "
                f"Models > {MODEL_PACKAGE_GROUP} > Version {version} "
                f"(`#/models/{MODEL_PACKAGE_GROUP}/versions/{version}`). Approve or reject it "
                f"with `abalone-platform registry approve {version} --reason ...`; "
                f"`abalone-platform lineage {version}` shows where it came from."
            ),
            "code_version": code_version(),
        }
    )
