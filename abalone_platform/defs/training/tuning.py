"""AbaloneTuning: SageMaker's TuningStep, as an Optuna study on the train split only."""

from typing import TYPE_CHECKING

import dagster as dg

from abalone_platform.code_version import code_version
from abalone_platform.defs.shared.caching import StepCache
from abalone_platform.defs.shared.progress import ProgressReporter
from abalone_platform.defs.shared.resources import ArtifactStore, ModelRegistry, PipelineParameters
from abalone_platform.defs.shared.upstream import chain_metadata, upstream
from abalone_platform.faults import fault_point
from abalone_platform.ml.instance_types import InstanceTypeError
from abalone_platform.sagemaker import STEP_TAG

# Optuna, XGBoost and the plots are imported by the step when it runs: loading the code location
# never needs them.
if TYPE_CHECKING:
    from abalone_platform.ml.tune import TuningResult

TUNING_EXPERIMENT = "abalone_platform_tuning"
# Whole-number columns of the trials table; the others are floats.
_INT_COLUMNS = frozenset({"trial", "num_boost_round", "max_depth"})


def _trials_metadata(result: "TuningResult") -> dict[str, dg.MetadataValue]:
    """The study as a table (one row per trial) and its history as a plot."""
    from abalone_platform.ml.plots import markdown_image, tuning_history_png
    from abalone_platform.ml.tune import trials_table

    table = trials_table(result)
    if table.empty:
        return {}
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(name, "int" if name in _INT_COLUMNS else "float")
            for name in table.columns
        ]
    )
    records = [
        dg.TableRecord({k: int(v) if k in _INT_COLUMNS else float(v) for k, v in row.items()})
        for row in table.to_dict(orient="records")
    ]
    return {
        "trials": dg.MetadataValue.table(records, schema=schema),
        "tuning_history": dg.MetadataValue.md(
            markdown_image(
                tuning_history_png(table["trial"].tolist(), table["cv_rmse"].tolist()),
                "tuning history",
            )
        ),
    }


@dg.asset(
    group_name="training",
    deps=["train_split"],
    kinds={"optuna", "json"},
    tags={STEP_TAG: "AbaloneTuning"},
    description="SageMaker step AbaloneTuning (TuningStep, an extension of the reference): "
    "tuning_trials Optuna trials (seeded TPE) over eta, max_depth, min_child_weight, gamma, "
    "subsample, colsample_bytree, lambda, alpha and the rounds (early stopping), scored by "
    "5-fold cross-validated RMSE on the train split only; trained_model then refits the best on "
    "train + validation for the rounds chosen. tuning_trials 0 (default): the reference's "
    "hyperparameters fit on train, no search. Metadata: the best parameters and CV score, the "
    "trials as a table and a plot, and the MLflow parent run holding one child run per trial.",
)
def tuned_hyperparameters(
    context: dg.AssetExecutionContext,
    parameters: PipelineParameters,
    artifacts: ArtifactStore,
    registry: ModelRegistry,
) -> dg.MaterializeResult:
    fault_point("step.tuned_hyperparameters")
    from abalone_platform.ml.train import resolve_compute
    from abalone_platform.ml.tune import log_study, reference_hyperparameters, tune

    train_up = upstream(context, "train_split")
    trials = parameters.tuning_trials
    run_metadata = {"tuning_trials": trials, **chain_metadata(train_up)}
    if trials == 0:
        # The default run pays for no data read, no Optuna, no MLflow and no cache lookup here.
        result = reference_hyperparameters()
        cache = None
    else:
        try:
            compute = resolve_compute(parameters.training_instance_type)
        except InstanceTypeError as exc:
            raise dg.Failure(description=str(exc)) from exc
        # A study cut short by tuning_timeout_s is never recorded as an entry (below), so the
        # timeout only needs to be in the key for the studies that ran to their trial count.
        cache = StepCache(
            context,
            step="tuned_hyperparameters",
            assets=["tuned_hyperparameters"],
            inputs={"train_split": train_up.ref.sha256},
            affecting={
                "seed": parameters.seed,
                "tuning_trials": trials,
                "training_instance_type": parameters.training_instance_type,
            },
            parameters=parameters,
            step_module=__file__,
        )
        hit = cache.lookup(artifacts.store)
        if hit is not None:
            return dg.MaterializeResult(
                metadata=hit.reused(
                    "tuned_hyperparameters", {**run_metadata, **cache.metadata(hit)}
                )
            )
        train = artifacts.read_parquet(train_up.ref)
        with ProgressReporter(
            context.log, "tuned_hyperparameters", unit="trials", total=trials, quiet_when_fast=True
        ) as report:
            result = tune(
                train,
                n_trials=trials,
                timeout_s=parameters.tuning_timeout_s,
                seed=parameters.seed,
                nthread=compute.nthread,
                device=compute.device,
                on_trial=lambda t: context.log.debug(
                    f"trial {t.number}: cv rmse {t.cv_rmse:.4f} ({t.num_boost_round} rounds)"
                ),
                on_progress=lambda p: report(
                    p.trials_done,
                    note=f"best cv rmse {p.best.cv_rmse:.4f} (trial {p.best.number})",
                ),
            )
        if result.stopped_by_timeout:
            context.log.warning(
                f"tuning_timeout_s {parameters.tuning_timeout_s} reached after "
                f"{len(result.trials)} of {trials} trials; using the best of those (a run on "
                "another machine may stop elsewhere, so this study is not a cache entry)"
            )
            cache = None
    ref = artifacts.store.write_bytes(
        "tuned_hyperparameters", context.run.run_id, "tuned_hyperparameters.json", result.to_json()
    )
    metadata: dict[str, object] = {
        **ref.as_metadata(),
        "source": result.source,
        "hyperparameters": dg.MetadataValue.json(result.hyperparameters),
        "num_boost_round": result.num_boost_round,
        # The rows trained_model fits on: train (reference), train+validation (a tuned refit).
        "fit_on": result.fit_on,
        "code_version": code_version(),
        **run_metadata,
        **(cache.metadata(None) if cache is not None else {}),
    }
    if result.tuned:
        run_name = f"dagster-{context.run.run_id}"
        experiment_id, parent_run_id = log_study(
            registry.open().client,
            TUNING_EXPERIMENT,
            f"{registry.artifact_root}/{TUNING_EXPERIMENT}",
            run_name,
            result,
            tags={"dagster_run_id": context.run.run_id},
        )
        metadata |= {
            "cv_rmse": dg.MetadataValue.float(float(result.cv_rmse)),
            "cv_rmse_std": dg.MetadataValue.float(float(result.cv_rmse_std)),
            "cv_mse": dg.MetadataValue.float(float(result.cv_rmse) ** 2),
            "best_trial": result.best_trial,
            "trials_run": len(result.trials),
            "stopped_by_timeout": result.stopped_by_timeout,
            "tuning_timeout_s": parameters.tuning_timeout_s,
            "folds": result.folds,
            "elapsed_s": dg.MetadataValue.float(result.elapsed_s),
            **_trials_metadata(result),
            "mlflow_experiment": TUNING_EXPERIMENT,
            "mlflow_experiment_id": experiment_id,
            "mlflow_parent_run_id": parent_run_id,
            "where_in_mlflow": dg.MetadataValue.md(
                f"`mlflow ui --backend-store-uri {registry.tracking_uri}`, then Experiments > "
                f"{TUNING_EXPERIMENT} > run `{run_name}` (its {len(result.trials)} trials are "
                f"its child runs; `#/experiments/{experiment_id}/runs/{parent_run_id}`)."
            ),
        }
    return dg.MaterializeResult(metadata=metadata)
