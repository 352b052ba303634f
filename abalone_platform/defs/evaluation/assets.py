"""AbaloneEval: the test split's metrics, as the reference's evaluation.json."""

import dagster as dg

from abalone_platform.code_version import code_version
from abalone_platform.defs.shared.resources import ArtifactStore
from abalone_platform.defs.shared.upstream import (
    chain_metadata,
    processing_run_of,
    upstream,
    upstream_in_run,
)
from abalone_platform.faults import fault_point
from abalone_platform.ml.bundle import load_booster
from abalone_platform.ml.evaluate import (
    report_from_predictions,
    report_to_json,
    split_predictions,
)
from abalone_platform.ml.plots import evaluation_figures, markdown_image
from abalone_platform.sagemaker import OUTPUT_TAG, STEP_TAG


def report_markdown(report: dict) -> str:
    rows = [
        f"| {name} | {values['value']:.4f} | "
        + (f"{values['standard_deviation']:.4f}" if "standard_deviation" in values else "")
        + " |"
        for name, values in report["regression_metrics"].items()
    ]
    return "\n".join(["| metric | value | standard deviation |", "|---|---|---|", *rows])


@dg.asset(
    group_name="evaluation",
    deps=["trained_model", "test_split"],
    kinds={"json"},
    tags={STEP_TAG: "AbaloneEval", OUTPUT_TAG: "evaluation"},
    description="SageMaker step AbaloneEval (property file EvaluationReport): evaluation.json "
    '{"regression_metrics": {"mse": {"value", "standard_deviation"}, "rmse", "mae", "r2"}} '
    "on the test split. Metadata: the report as a table, mse (plotted across runs), a "
    "predicted-vs-actual scatter and a residual histogram.",
)
def evaluation_report(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    fault_point("step.evaluation_report")
    model = upstream(context, "trained_model")
    booster = load_booster(artifacts.store.read_bytes(model.ref), model.ref.sha256, model.ref.uri)
    # The test split of the processing run the model was trained on, whatever ran since.
    test_up = upstream_in_run(
        context,
        "test_split",
        processing_run_of(model, needed_by="evaluation_report"),
        needed_by="evaluation_report",
    )
    test = artifacts.read_parquet(test_up.ref)
    actual, predicted = split_predictions(booster, test)
    report = report_from_predictions(actual, predicted)
    ref = artifacts.store.write_bytes(
        "evaluation_report", context.run.run_id, "evaluation.json", report_to_json(report)
    )
    metrics = report["regression_metrics"]
    return dg.MaterializeResult(
        metadata={
            **ref.as_metadata(),
            "mse": dg.MetadataValue.float(metrics["mse"]["value"]),
            "mse_standard_deviation": dg.MetadataValue.float(metrics["mse"]["standard_deviation"]),
            "rmse": dg.MetadataValue.float(metrics["rmse"]["value"]),
            "mae": dg.MetadataValue.float(metrics["mae"]["value"]),
            "r2": dg.MetadataValue.float(metrics["r2"]["value"]),
            "test_rows": len(test),
            "model_uri": model.ref.uri,
            "model_sha256": model.ref.sha256,
            "input_data": str(test_up.metadata.get("input_data", "")),
            "input_sha256": str(test_up.metadata.get("input_sha256", "")),
            "report": dg.MetadataValue.md(report_markdown(report)),
            **{
                name: dg.MetadataValue.md(markdown_image(png, name.replace("_", " ")))
                for name, png in evaluation_figures(actual, predicted).items()
            },
            "code_version": code_version(),
            **chain_metadata(model, test_up),
        }
    )
