import json

import pytest

from abalone_platform.definitions import build_defs
from abalone_platform.records.executions import ExecutionError, describe_execution, list_executions
from abalone_platform_tests.support.notebook import instance_of
from abalone_platform_tests.support.project import PIPELINE_STEPS

DOWNSTREAM = {"deployable_model", "batch_predictions", "model_package"}


def test_list_is_newest_first_with_parameters_and_failure(notebook):
    with instance_of(notebook.env) as instance:
        runs = list_executions(instance, build_defs())
    assert [r["run_id"] for r in runs] == notebook.run_ids[::-1]
    assert [r["status"] for r in runs] == ["FAILURE", "SUCCESS", "SUCCESS"]
    assert runs[0]["failure_reason"] == "Execution failed due to MSE > 3.0"
    assert runs[0]["parameters"]["MseThreshold"] == 3.0
    assert runs[1]["parameters"]["ModelApprovalStatus"] == "Approved"
    assert runs[1]["parameters"]["TrainingInstanceType"] == "ml.c5.xlarge"
    assert runs[2]["parameters"]["MseThreshold"] == 6.0
    # InputData was left empty: the file the run actually read is shown instead.
    assert runs[2]["parameters"]["InputData"] == notebook.env.vars["ABALONE_INPUT_DATA"]
    for run in runs:
        # (Whole seconds: the failing run reuses every cached step and can end within one.)
        assert run["start"] <= run["end"]
    json.dumps(runs)


def test_failed_run_shows_gate_and_reason(notebook):
    with instance_of(notebook.env) as instance:
        info = describe_execution(instance, build_defs(), notebook.run_ids[2])
    assert info["status"] == "FAILURE"
    assert info["failure_reason"] == "Execution failed due to MSE > 3.0"
    steps = {s["name"]: s for s in info["steps"]}
    gate_step = steps["mse_within_threshold"]
    assert gate_step["status"] == "FAILURE"
    assert gate_step["sagemaker_step"] == "AbaloneMSECond + AbaloneMSEFail"
    assert gate_step["failure_reason"] == "Execution failed due to MSE > 3.0"
    assert gate_step["gate"]["outcome"] == "False"
    assert gate_step["gate"]["threshold"] == 3.0
    assert gate_step["gate"]["mse"] > 3.0
    for name in DOWNSTREAM:
        assert steps[name]["status"] == "NOT_STARTED"
        assert steps[name]["attempt_count"] == 0
    for name in ("abalone_process", "tuned_hyperparameters", "trained_model", "evaluation_report"):
        assert steps[name]["status"] == "SUCCESS"
        assert steps[name]["attempt_count"] == 1
        assert steps[name]["start"] <= steps[name]["end"]


def test_passing_run_has_every_step_succeeded(notebook):
    with instance_of(notebook.env) as instance:
        # A unique prefix is enough, as with git.
        info = describe_execution(instance, build_defs(), notebook.run_ids[0][:8])
    assert info["run_id"] == notebook.run_ids[0]
    assert info["failure_reason"] is None
    assert info["gate"]["outcome"] == "True"
    assert info["gate"]["threshold"] == 6.0
    assert [s["name"] for s in info["steps"]] == list(PIPELINE_STEPS)
    assert [s["status"] for s in info["steps"]] == ["SUCCESS"] * len(PIPELINE_STEPS)
    assert info["steps"][0]["sagemaker_step"] == "AbaloneProcess"


def test_unknown_run_is_refused(notebook):
    with instance_of(notebook.env) as instance:
        with pytest.raises(ExecutionError, match="no run 'nope'"):
            describe_execution(instance, build_defs(), "nope")
