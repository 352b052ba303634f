"""tuned_hyperparameters (AbaloneTuning) in a run: a no-op by default, a recorded study (table,
plot, MLflow parent and child runs) when it searches, and trained_model consuming exactly it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from pydantic import ValidationError

from abalone_platform.defs.shared.resources import PipelineParameters
from abalone_platform.defs.training.tuning import TUNING_EXPERIMENT
from abalone_platform.ml.train import HYPERPARAMETERS, NUM_BOOST_ROUND, resolve_compute, train_model
from abalone_platform.ml.tune import SEARCH_SPACE, TuningResult
from abalone_platform.registry import open_registry
from abalone_platform_tests.support.pipeline import meta, run_pipeline
from abalone_platform_tests.support.project import UNGATED_ASSETS, Env

# Up to the evaluation: registration (and its MLflow database) is not what these look at.
UP_TO_EVALUATION = list(UNGATED_ASSETS)


def artifact(metadata: dict[str, Any]) -> bytes:
    return Path(str(metadata["uri"]).removeprefix("file://")).read_bytes()


def test_by_default_no_search_and_todays_model_bit_for_bit(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance, selection=UP_TO_EVALUATION)
        assert result.success
    tuned = meta(result, "tuned_hyperparameters")
    assert tuned["source"] == "reference" and tuned["tuning_trials"] == 0
    assert tuned["hyperparameters"] == HYPERPARAMETERS
    assert "mlflow_parent_run_id" not in tuned and "trials" not in tuned
    # The default run pays nothing for MLflow in this step: no registry database appears.
    assert not (in_process.abalone_home / "mlflow.db").exists()

    model = meta(result, "trained_model")
    assert model["hyperparameters_source"] == "reference"
    assert tuned["fit_on"] == model["fit_on"] == "train"
    assert model["upstream"]["tuned_hyperparameters"]["sha256"] == tuned["sha256"]
    assert model["hyperparameters"]["num_boost_round"] == NUM_BOOST_ROUND
    # The very booster training made before the tuning step existed.
    train = pd.read_parquet(io.BytesIO(artifact(meta(result, "train_split"))))
    validation = pd.read_parquet(io.BytesIO(artifact(meta(result, "validation_split"))))
    today = train_model(train, validation, seed=42, compute=resolve_compute("ml.m5.xlarge"))
    assert artifact(model) == bytes(today.booster.save_raw("ubj"))


@pytest.mark.slow
def test_a_tuned_run_records_the_study_and_trains_with_its_best(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance, {"tuning_trials": 3}, UP_TO_EVALUATION)
        assert result.success
    tuned = meta(result, "tuned_hyperparameters")
    study = TuningResult.from_json(artifact(tuned))
    assert tuned["source"] == study.source == "tuned"
    assert tuned["trials_run"] == len(study.trials) == 3 and not tuned["stopped_by_timeout"]
    assert tuned["cv_rmse"] == study.cv_rmse
    assert len(tuned["trials"].records) == 3
    assert set(SEARCH_SPACE) <= {c.name for c in tuned["trials"].schema.columns}
    assert tuned["tuning_history"].startswith("![tuning history](data:image/png;base64,")
    assert tuned["upstream"]["train_split"]["run_id"] == result.run_id

    # trained_model used exactly the study's best, and says so.
    model = meta(result, "trained_model")
    assert model["hyperparameters_source"] == "tuned"
    # Refit on train + validation (never test), for the rounds the train split's CV chose.
    assert tuned["fit_on"] == model["fit_on"] == study.fit_on == "train+validation"
    assert model["train_rows"] == study.train_rows + model["validation_rows"]
    assert model["upstream"]["tuned_hyperparameters"]["sha256"] == tuned["sha256"]
    assert model["hyperparameters"]["num_boost_round"] == study.num_boost_round
    for name, value in study.hyperparameters.items():
        assert model["hyperparameters"][name] == value, name

    # MLflow: a parent run named after the Dagster run, one nested child run per trial.
    client = open_registry(in_process.tracking_uri()).client
    experiment = client.get_experiment_by_name(TUNING_EXPERIMENT)
    assert experiment.experiment_id == tuned["mlflow_experiment_id"]
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if r.info.run_id == tuned["mlflow_parent_run_id"]]
    assert parent.info.run_name == f"dagster-{result.run_id}"
    assert parent.data.metrics["best_cv_rmse"] == pytest.approx(study.cv_rmse)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(int(c.data.tags["trial"]) for c in children) == [0, 1, 2]
    assert {c.info.status for c in children} == {"FINISHED"}
    by_trial = {int(c.data.tags["trial"]): c for c in children}
    for trial in study.trials:
        assert by_trial[trial.number].data.metrics["cv_rmse"] == pytest.approx(trial.cv_rmse)


@pytest.mark.slow
def test_training_refuses_hyperparameters_chosen_on_another_split(
    in_process: Env, tmp_path: Path, abalone_file: Path
) -> None:
    smaller = tmp_path / "smaller.data"
    smaller.write_text("".join(abalone_file.read_text().splitlines(keepends=True)[:3000]))
    with dg.DagsterInstance.get() as instance:
        assert run_pipeline(instance, selection=UP_TO_EVALUATION).success
        processing = ["train_split", "validation_split", "test_split", "preprocessor"]
        assert run_pipeline(instance, {"input_data": str(smaller)}, processing).success
        refused = run_pipeline(instance, selection=["trained_model"])
    assert not refused.success
    text = "\n".join(
        str(e.step_failure_data.error) for e in refused.all_events if e.is_step_failure
    )
    assert "Refusing to build trained_model" in text
    assert "materialize tuned_hyperparameters first" in text


@pytest.mark.parametrize(
    ("field", "value"),
    [("tuning_trials", -1), ("tuning_timeout_s", 0.0), ("tuning_timeout_s", -3.0)],
)
def test_bad_tuning_parameters_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        PipelineParameters(**{field: value})


def test_the_tuning_parameters_reach_the_run_config_and_not_sagemaker() -> None:
    parameters = PipelineParameters(tuning_trials=25, tuning_timeout_s=90.0)
    assert parameters.tuning_trials == 25 and parameters.tuning_timeout_s == 90.0
    sagemaker = parameters.as_sagemaker_parameters()
    assert not {"TuningTrials", "TuningTimeoutS"} & set(sagemaker)
    assert json.dumps(sagemaker)
