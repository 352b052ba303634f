"""AbaloneRegisterModel: a new version in the model package group, with its approval status.

Each version is an MLflow Model (pyfunc, models-from-code; see ml/mlflow_format.py), logged
under an MLflow run named after the Dagster run that holds the evaluation metrics, the
per-round validation RMSE as a metric history and the input data as a dataset input.
"""

import json
import tempfile
from pathlib import Path

import dagster as dg

from abalone_platform.code_version import code_version
from abalone_platform.defs.shared.resources import ArtifactStore, ModelRegistry, PipelineParameters
from abalone_platform.defs.shared.summary import predictions_line, run_summary
from abalone_platform.defs.shared.upstream import (
    bundle_of,
    chain_metadata,
    linked_upstream,
    require_passed_gate,
)
from abalone_platform.faults import fault_point
from abalone_platform.registry import (
    MODEL_FORMAT_TAG,
    MODEL_PACKAGE_GROUP,
    PYFUNC_FORMAT,
    DatasetRecord,
    register_version,
)
from abalone_platform.sagemaker import STEP_TAG
from abalone_platform.storage.artifacts import INPUT_EXAMPLE_KEY, ArtifactRef

# pandas, XGBoost and MLflow are imported by the step when it runs: loading the code location
# never needs them.


@dg.asset(
    group_name="registry",
    deps=["deployable_model", "evaluation_report"],
    kinds={"mlflow"},
    tags={STEP_TAG: "AbaloneRegisterModel"},
    description="SageMaker step AbaloneRegisterModel: a new version of registered model "
    f"{MODEL_PACKAGE_GROUP} in MLflow, an MLflow pyfunc model (signature: the 8 raw columns in, "
    "one double out) tagged ModelApprovalStatus, with the evaluation metrics, the validation "
    "RMSE per round, the input dataset and the Dagster run id. Gated by mse_within_threshold. "
    "Metadata: the version, its approval status and its models:/ URI.",
)
def model_package(
    context: dg.AssetExecutionContext,
    parameters: PipelineParameters,
    artifacts: ArtifactStore,
    registry: ModelRegistry,
) -> dg.MaterializeResult:
    fault_point("step.model_package")
    import pandas as pd

    from abalone_platform.ml.bundle import inference_spec, read_bundle
    from abalone_platform.ml.mlflow_format import save_model_dir

    threshold = parameters.mse_threshold
    evaluation = require_passed_gate(context, "model_package", threshold)
    bundle = bundle_of(context, evaluation, "model_package")
    # The model and test split the evaluation was made from: the validation curve and the
    # input's description (and a few of its rows) go with the version.
    model = linked_upstream(context, evaluation, "trained_model", needed_by="model_package")
    test_split = linked_upstream(context, evaluation, "test_split", needed_by="model_package")
    bundle_dir = artifacts.store.local_copy(bundle.ref)
    read_bundle(bundle_dir, bundle.ref.sha256)
    report = json.loads(artifacts.store.read_bytes(evaluation.ref))
    metrics = {
        name: float(values["value"]) for name, values in report["regression_metrics"].items()
    }
    metrics["mse_standard_deviation"] = float(
        report["regression_metrics"]["mse"]["standard_deviation"]
    )
    example = test_split.metadata.get(INPUT_EXAMPLE_KEY)
    status = parameters.model_approval_status.value
    run_id = context.run.run_id
    with tempfile.TemporaryDirectory(prefix="abalone-model-") as staging:
        model_dir = Path(staging) / "model"
        save_model_dir(
            model_dir, bundle_dir, bundle.ref.sha256, pd.DataFrame(example) if example else None
        )
        version, source = register_version(
            registry.open(),
            artifact_root=registry.artifact_root,
            model_dir=model_dir,
            approval_status=status,
            metrics=metrics,
            params={
                **{k: str(v) for k, v in parameters.as_sagemaker_parameters().items()},
                "input_sha256": str(evaluation.metadata.get("input_sha256", "")),
                # The threshold this registration was held to (this run's), not a copy of another.
                "mse_threshold_applied": str(threshold),
            },
            tags={
                "dagster_run_id": run_id,
                "evaluation_uri": evaluation.ref.uri,
                "evaluation_sha256": evaluation.ref.sha256,
                "bundle_uri": bundle.ref.uri,
                "bundle_sha256": bundle.ref.sha256,
                "inference_spec": json.dumps(inference_spec()),
                "mse": repr(metrics["mse"]),
                "mse_threshold": repr(threshold),
                MODEL_FORMAT_TAG: PYFUNC_FORMAT,
            },
            run_name=f"{context.run.job_name}-{run_id[:8]}",
            metric_history={"validation_rmse": list(model.metadata.get("validation_rmse", []))},
            dataset=DatasetRecord(
                name="abalone_input_data",
                uri=str(test_split.metadata.get("input_data", "")),
                sha256=str(test_split.metadata.get("input_sha256", "")),
                rows=test_split.metadata.get("input_rows"),
            ),
        )
    model_uri = f"models:/{MODEL_PACKAGE_GROUP}/{version}"
    context.log.info(
        run_summary(
            run_id,
            mse=metrics["mse"],
            threshold=threshold,
            version=version,
            status=status,
            model_uri=model_uri,
            predictions=predictions_line(context.instance, run_id),
        )
    )
    return dg.MaterializeResult(
        metadata={
            # The version is found by its MLflow source; its bundle's bytes are the bundle's.
            **ArtifactRef(source, bundle.ref.sha256).as_metadata(),
            "model_package_group": MODEL_PACKAGE_GROUP,
            "model_package_version": int(version),
            "approval_status": status,
            "mse": dg.MetadataValue.float(metrics["mse"]),
            "tracking_uri": registry.tracking_uri,
            "evaluation_run_id": evaluation.run_id,
            "mse_threshold": dg.MetadataValue.float(threshold),
            **chain_metadata(bundle, evaluation),
            # An MLflow model: mlflow.pyfunc.load_model(model_uri), `mlflow models serve -m`.
            "model_uri": model_uri,
            "where_in_mlflow": dg.MetadataValue.md(
                f"`mlflow ui --backend-store-uri {registry.tracking_uri}`, then "
                f"Models > {MODEL_PACKAGE_GROUP} > Version {version} "
                f"(`#/models/{MODEL_PACKAGE_GROUP}/versions/{version}`). Load it with "
                f"`mlflow.pyfunc.load_model('{model_uri}')`; serve it with "
                f"`abalone-platform serve` once Approved. Approve or reject it "
                f"with `abalone-platform registry approve {version} --reason ...`; "
                f"`abalone-platform lineage {version}` shows where it came from."
            ),
            "code_version": code_version(),
        }
    )
