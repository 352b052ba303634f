import json

import dagster as dg

from abalone_platform.definitions import build_defs
from abalone_platform.records.definition import pipeline_definition

REFERENCE_PARAMETERS = {
    "ProcessingInstanceCount": ("Integer", 1),
    "TrainingInstanceType": ("String", "ml.m5.xlarge"),
    "ModelApprovalStatus": ("String", "PendingManualApproval"),
    "InputData": ("String", None),  # an S3 path in the reference; empty (from the env) here
    "BatchData": ("String", None),
    "MseThreshold": ("Float", 6.0),
}


def test_definition_matches_the_asset_graph():
    defs = build_defs()
    definition = pipeline_definition(defs)
    json.dumps(definition)
    graph = defs.resolve_asset_graph()
    steps = {s["Name"]: s for s in definition["Steps"]}
    producer = {out: s["Name"] for s in definition["Steps"] for out in s["Outputs"]}

    assets = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert len(assets) == 9
    assert {o for s in definition["Steps"] for o in s["Outputs"] if ":" not in o} == assets
    checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys}
    assert {o for s in definition["Steps"] for o in s["Outputs"] if ":" in o} == checks

    for key in graph.get_all_asset_keys():
        step = steps[producer[key.to_user_string()]]
        for parent in graph.get(key).parent_keys:
            name = parent.to_user_string()
            if producer[name] != step["Name"]:
                assert name in step["Inputs"]
                assert producer[name] in step["DependsOn"]
    # Upstream first: every step comes after the steps it depends on.
    order = [s["Name"] for s in definition["Steps"]]
    for step in definition["Steps"]:
        assert all(order.index(d) < order.index(step["Name"]) for d in step["DependsOn"])


def test_sagemaker_steps_and_types():
    definition = pipeline_definition(build_defs())
    types = {s["SageMakerStep"]: s["SageMakerType"] for s in definition["Steps"]}
    assert types == {
        "AbaloneProcess": "Processing",
        "AbaloneTrain": "Training",
        "AbaloneEval": "Processing",
        "AbaloneMSECond + AbaloneMSEFail": "Condition + Fail",
        "AbaloneCreateModel-CreateModel": "Model",
        "AbaloneTransform": "Transform",
        "AbaloneRegisterModel-RegisterModel": "RegisterModel",
    }


def test_parameters_and_gate():
    definition = pipeline_definition(build_defs())
    params = {p["sagemaker_name"]: p for p in definition["Parameters"] if p["sagemaker_name"]}
    for name, (type_name, default) in REFERENCE_PARAMETERS.items():
        assert params[name]["type"] == type_name
        if default is not None:
            assert params[name]["default"] == default
    gate = definition["Gate"]
    assert gate["Check"] == "evaluation_report:mse_within_threshold"
    assert gate["Condition"]["Type"] == "LessThanOrEqualTo"
    assert gate["Condition"]["LeftValue"]["Std:JsonGet"]["Path"] == "regression_metrics.mse.value"
    assert gate["Condition"]["RightValue"] == {"Get": "Parameters.MseThreshold"}
    assert gate["IfSteps"] == ["batch_predictions", "deployable_model", "model_package"]
    assert gate["FailureMessage"]["Std:Join"]["Values"][0] == "Execution failed due to MSE >"


def test_a_new_asset_shows_up_without_editing_anything():
    @dg.asset(deps=["evaluation_report"], description="SageMaker step AbaloneTransform: extra")
    def extra_report() -> None: ...

    base = build_defs()
    defs = dg.Definitions.merge(base, dg.Definitions(assets=[extra_report]))
    steps = {s["Name"]: s for s in pipeline_definition(defs)["Steps"]}
    assert steps["extra_report"]["DependsOn"] == ["evaluation_report"]
    assert "extra_report" in pipeline_definition(defs)["Gate"]["IfSteps"]
