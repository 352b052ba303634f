"""AbaloneEval: the test split's metrics, as the reference's evaluation.json, and how sure they
are (cross-validated MSE, a constant predictor's MSE, a bootstrap interval, residuals by group)."""

import dagster as dg

from abalone_platform.code_version import code_version
from abalone_platform.defs.shared.caching import StepCache
from abalone_platform.defs.shared.resources import ArtifactStore, PipelineParameters
from abalone_platform.defs.shared.upstream import (
    chain_metadata,
    processing_run_of,
    upstream,
    upstream_in_run,
)
from abalone_platform.faults import fault_point
from abalone_platform.sagemaker import OUTPUT_TAG, STEP_TAG

# XGBoost, pandas and the plots are imported by the step when it runs: loading the code location
# never needs them.


def report_markdown(report: dict) -> str:
    rows = [
        f"| {name} | {values['value']:.4f} | "
        + (f"{values['standard_deviation']:.4f}" if "standard_deviation" in values else "")
        + " |"
        for name, values in report["regression_metrics"].items()
    ]
    return "\n".join(["| metric | value | standard deviation |", "|---|---|---|", *rows])


def _figure(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def how_sure_markdown(report: dict, test_rows: int) -> str:
    """The test MSE beside what says how far to trust it, then the residuals by group."""
    mse = report["regression_metrics"]["mse"]["value"]
    cv = report["cross_validation"]["mse"]
    boot = report["bootstrap"]["mse"]
    baseline = report["baseline"]["constant_training_mean"]
    # Large inputs: CV on a seeded sample, the interval by the normal approximation.
    cv_rows = f"{cv['rows']:,} rows" + (
        f", a sample of {cv['of_rows']:,}" if cv.get("of_rows", cv["rows"]) > cv["rows"] else ""
    )
    how = (
        f"{boot['resamples']} resamples"
        if boot.get("method", "percentile bootstrap") == "percentile bootstrap"
        else boot["method"]
    )
    lines = [
        "| figure | MSE |",
        "|---|---|",
        f"| test split ({test_rows} rows) | {mse:.4f} |",
        f"| {boot['confidence']:.0%} bootstrap interval of the test MSE "
        f"({how}) | {boot['low']:.4f} to {boot['high']:.4f} |",
        f"| {cv['folds']}-fold CV on train + validation ({cv_rows}), mean +- std "
        f"| {cv['mean']:.4f} +- {cv['std']:.4f} |",
        f"| constant predictor (training mean, {baseline['prediction']:.2f} rings) "
        f"| {baseline['mse']:.4f} |",
        "",
        "| residuals (actual - predicted) | group | rows | mean residual | MSE | MAE |",
        "|---|---|---|---|---|---|",
    ]
    for kind, label in (("by_sex", "sex"), ("by_rings_band", "rings band")):
        lines += [
            f"| {label} | {row['group']} | {row['rows']} | {_figure(row['mean_residual'])} "
            f"| {_figure(row['mse'])} | {_figure(row['mae'])} |"
            for row in report["residuals"][kind]
        ]
    return "\n".join(lines)


def residual_table(report: dict) -> dg.TableMetadataValue:
    """The residuals by sex and by rings band as a Dagster table (sortable in the UI)."""
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("by", "string"),
            dg.TableColumn("group", "string"),
            dg.TableColumn("rows", "int"),
            dg.TableColumn("mean_residual", "float"),
            dg.TableColumn("mse", "float"),
            dg.TableColumn("mae", "float"),
        ]
    )
    records = [
        dg.TableRecord(
            {
                "by": by,
                "group": row["group"],
                "rows": row["rows"],
                **{
                    k: float("nan") if row[k] is None else float(row[k])
                    for k in ("mean_residual", "mse", "mae")
                },
            }
        )
        for by, kind in (("sex", "by_sex"), ("rings band", "by_rings_band"))
        for row in report["residuals"][kind]
    ]
    return dg.MetadataValue.table(records, schema=schema)


@dg.asset(
    group_name="evaluation",
    deps=["trained_model", "test_split", "train_split", "validation_split"],
    kinds={"json"},
    tags={STEP_TAG: "AbaloneEval", OUTPUT_TAG: "evaluation"},
    description="SageMaker step AbaloneEval (property file EvaluationReport): evaluation.json "
    '{"regression_metrics": {"mse": {"value", "standard_deviation"}, "rmse", "mae", "r2"}} '
    "on the test split (what the gate reads), and beside it how sure that figure is: "
    "cross_validation (5-fold MSE of the same recipe on train + validation, mean and std), "
    "baseline (the MSE of predicting the training mean), bootstrap (a 95% interval of the test "
    "MSE) and residuals (by sex and by rings band). Metadata: the report as tables, mse "
    "(plotted across runs), the CV and interval figures, a predicted-vs-actual scatter and a "
    "residual histogram.",
)
def evaluation_report(
    context: dg.AssetExecutionContext, parameters: PipelineParameters, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    fault_point("step.evaluation_report")
    from abalone_platform.ml.bundle import load_booster
    from abalone_platform.ml.evaluate import (
        how_sure,
        report_from_predictions,
        report_to_json,
        split_predictions,
    )
    from abalone_platform.ml.plots import evaluation_figures, markdown_image

    model = upstream(context, "trained_model")
    # The test split of the processing run the model was trained on, whatever ran since.
    test_up = upstream_in_run(
        context,
        "test_split",
        processing_run_of(model, needed_by="evaluation_report"),
        needed_by="evaluation_report",
    )
    processing_run = test_up.run_id
    # The splits the model was trained on (its recorded chain), for the recipe's CV and the
    # baseline; validation of the same processing run.
    train_up = upstream_in_run(
        context,
        "train_split",
        processing_run,
        needed_by="evaluation_report",
        sha256=model.chain["train_split"].get("sha256"),
    )
    validation_up = upstream_in_run(
        context, "validation_split", processing_run, needed_by="evaluation_report"
    )
    recipe = dict(model.metadata.get("hyperparameters") or {})
    rounds = int(recipe.pop("num_boost_round", 0) or 0)
    if not recipe or rounds < 1:
        raise dg.Failure(
            description=f"Refusing to build evaluation_report: {model.describe()} records no "
            "hyperparameters to cross-validate; run the abalone_pipeline job to rebuild it"
        )
    # The report depends on the model and the three splits, and on the recipe the CV refits
    # (which the model's bytes alone do not name).
    cache = StepCache(
        context,
        step="evaluation_report",
        assets=["evaluation_report"],
        inputs={
            "trained_model": model.ref.sha256,
            "test_split": test_up.ref.sha256,
            "train_split": train_up.ref.sha256,
            "validation_split": validation_up.ref.sha256,
        },
        affecting={"recipe": recipe, "num_boost_round": rounds},
        parameters=parameters,
        step_module=__file__,
    )
    # This run's own entries: the inputs it was given (their sha256 are the key's).
    run_metadata = {
        "model_uri": model.ref.uri,
        "model_sha256": model.ref.sha256,
        "input_data": str(test_up.metadata.get("input_data", "")),
        "input_sha256": str(test_up.metadata.get("input_sha256", "")),
        **chain_metadata(model, test_up, train_up, validation_up),
    }
    hit = cache.lookup(artifacts.store)
    if hit is not None:
        return dg.MaterializeResult(
            metadata=hit.reused("evaluation_report", {**run_metadata, **cache.metadata(hit)})
        )
    booster = load_booster(artifacts.store.read_bytes(model.ref), model.ref.sha256, model.ref.uri)
    test = artifacts.read_parquet(test_up.ref)
    train = artifacts.read_parquet(train_up.ref)
    validation = artifacts.read_parquet(validation_up.ref)
    actual, predicted = split_predictions(booster, test)
    report = report_from_predictions(actual, predicted)
    seed = int(recipe.get("seed", 0))
    report |= how_sure(
        y=actual,
        predictions=predicted,
        test=test,
        train=train,
        validation=validation,
        params=recipe,
        num_boost_round=rounds,
        seed=seed,
    )
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
            "report": dg.MetadataValue.md(report_markdown(report)),
            "cv_mse_mean": dg.MetadataValue.float(report["cross_validation"]["mse"]["mean"]),
            "cv_mse_std": dg.MetadataValue.float(report["cross_validation"]["mse"]["std"]),
            "mse_ci95_low": dg.MetadataValue.float(report["bootstrap"]["mse"]["low"]),
            "mse_ci95_high": dg.MetadataValue.float(report["bootstrap"]["mse"]["high"]),
            "baseline_mse": dg.MetadataValue.float(
                report["baseline"]["constant_training_mean"]["mse"]
            ),
            "how_sure": dg.MetadataValue.md(how_sure_markdown(report, len(test))),
            "residuals_by_group": residual_table(report),
            **{
                name: dg.MetadataValue.md(markdown_image(png, name.replace("_", " ")))
                for name, png in evaluation_figures(actual, predicted).items()
            },
            "code_version": code_version(),
            **run_metadata,
            **cache.metadata(None),
        }
    )
