import json
import re
from pathlib import Path

import dagster as dg
import pytest

from abalone_platform.definitions import build_defs
from abalone_platform.errors import DefinitionError
from abalone_platform.ml.tune import SEARCH_SPACE
from abalone_platform.records.definition import pipeline_definition, sagemaker_definition
from abalone_platform.sagemaker import CHECK_STEPS_METADATA, EXTENSION_STEPS, STEP_TAG
from abalone_platform_tests.support.project import SHARED_ABALONE, Env

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
    assert len(assets) == 10
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
        "AbaloneTuning": "Tuning",
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
    @dg.asset(deps=["evaluation_report"], tags={STEP_TAG: "AbaloneTransform"})
    def extra_report() -> None: ...

    base = build_defs()
    defs = dg.Definitions.merge(base, dg.Definitions(assets=[extra_report]))
    steps = {s["Name"]: s for s in pipeline_definition(defs)["Steps"]}
    assert steps["extra_report"]["DependsOn"] == ["evaluation_report"]
    assert "extra_report" in pipeline_definition(defs)["Gate"]["IfSteps"]


def test_the_sagemaker_step_comes_from_the_tag_not_the_description():
    @dg.asset(deps=["evaluation_report"], description="SageMaker step AbaloneTransform: extra")
    def untagged() -> None: ...

    @dg.asset(deps=["evaluation_report"], tags={STEP_TAG: "AbaloneNope"})
    def unknown() -> None: ...

    for asset, message in ((untagged, "has no sagemaker/step tag"), (unknown, "AbaloneNope")):
        defs = dg.Definitions.merge(build_defs(), dg.Definitions(assets=[asset]))
        with pytest.raises(DefinitionError, match=message):
            pipeline_definition(defs)


# --- SageMaker's own form, field by field against the reference notes -------------------------

REFERENCE = SHARED_ABALONE.parents[1] / "reference" / "sagemaker_abalone.md"


def _section(text: str, number: str) -> str:
    start = text.index(f"### {number} ")
    end = text.find("\n#", start + 1)
    return text[start : end if end > 0 else len(text)]


@pytest.fixture(scope="module")
def reference() -> str:
    assert REFERENCE.exists(), f"the SageMaker reference notes are not at {REFERENCE}"
    return REFERENCE.read_text()


@pytest.fixture(scope="module")
def sagemaker() -> dict:
    definition = sagemaker_definition(build_defs())
    json.dumps(definition)
    return definition


def _reference_parameters(reference: str) -> list[tuple[str, str, str]]:
    rows = re.findall(r"^\| (\w+) \| (\w+) \| (.+?) \|$", _section(reference, "1.2"), re.M)
    return [row for row in rows if row[0] != "Name"]


def _reference_steps(reference: str) -> list[str]:
    """§1.1's step names as the definition shows them (ModelStep's renames in bold)."""
    names = []
    for line in re.findall(r"^- (Abalone.*)$", _section(reference, "1.1"), re.M):
        renamed = re.search(r"\*\*(Abalone[\w-]+)\*\*", line)
        names.append(renamed[1] if renamed else re.match(r"Abalone\w+", line)[0])
    return names


def _snippets(reference: str, head: str) -> list[dict]:
    """The JSON snippets of the reference notes that start with ``{"<head>"``."""
    return [
        json.loads(m)
        for m in re.findall(r"`[^`{]*(\{\"" + re.escape(head) + r"\".*?\})`", reference)
    ]


def _flatten(steps: list[dict]) -> list[dict]:
    found = []
    for step in steps:
        found.append(step)
        if step["Type"] == "Condition":
            found += _flatten(step["Arguments"]["IfSteps"]) + _flatten(
                step["Arguments"]["ElseSteps"]
            )
    return found


def test_sagemaker_top_level(sagemaker: dict, reference: str):
    notes = _section(reference, "1.11")
    assert sagemaker["Version"] == re.search(r"Version: '([\d-]+)'", notes)[1] == "2020-12-01"
    assert re.search(r"`Metadata: \{\}`", notes) and sagemaker["Metadata"] == {}
    config = re.search(
        r"PipelineExperimentConfig: \{ExperimentName: \{Get: ([\w.]+)\}, "
        r"TrialName: \{Get: ([\w.]+)\}\}",
        notes,
    )
    assert sagemaker["PipelineExperimentConfig"] == {
        "ExperimentName": {"Get": config[1]},
        "TrialName": {"Get": config[2]},
    }
    assert list(sagemaker)[:5] == [
        "Version",
        "Metadata",
        "Parameters",
        "PipelineExperimentConfig",
        "Steps",
    ]


def test_sagemaker_parameters(sagemaker: dict, reference: str):
    expected = _reference_parameters(reference)
    assert len(expected) == 6
    params = sagemaker["Parameters"]
    assert [(p["Name"], p["Type"]) for p in params] == [(n, t) for n, t, _ in expected]
    for param, (name, type_name, default) in zip(params, expected, strict=True):
        if default.startswith("`s3://"):
            # The reference's defaults are S3 paths in its bucket; here, the file a run started
            # now would read (ABALONE_INPUT_DATA, else the UCI file; BatchData: else InputData).
            assert isinstance(param["DefaultValue"], str) and param["DefaultValue"], name
        else:
            cast = {"Integer": int, "Float": float, "String": str}[type_name]
            assert param["DefaultValue"] == cast(default), name


def _reference_only(steps: list[dict]) -> list[dict]:
    """The steps without this project's documented extensions (sagemaker.EXTENSION_STEPS), each
    reference step's DependsOn without them too: what the reference notes can be held to."""
    return [
        {**s, "DependsOn": [d for d in s["DependsOn"] if d not in EXTENSION_STEPS]}
        for s in steps
        if s["Name"] not in EXTENSION_STEPS
    ]


def test_the_tuning_step_is_the_one_extension_and_feeds_training(sagemaker: dict):
    names = [s["Name"] for s in _flatten(sagemaker["Steps"])]
    assert (
        [n for n in names if n in EXTENSION_STEPS] == ["AbaloneTuning"] == sorted(EXTENSION_STEPS)
    )
    # A top-level step between processing and training, as SageMaker would order a TuningStep.
    assert (
        names.index("AbaloneProcess") < names.index("AbaloneTuning") < names.index("AbaloneTrain")
    )
    steps = {s["Name"]: s for s in _flatten(sagemaker["Steps"])}
    tuning = steps["AbaloneTuning"]
    assert tuning["Type"] == "Tuning" and tuning["DependsOn"] == ["AbaloneProcess"]
    assert "AbaloneTuning" in steps["AbaloneTrain"]["DependsOn"]
    config = tuning["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"]["Type"] == "Minimize"
    ranges = config["ParameterRanges"]
    searched = {r["Name"] for kind in ranges.values() for r in kind}
    assert searched == set(SEARCH_SPACE)
    # Tuning reads the train split only: never validation or test.
    channels = tuning["Arguments"]["TrainingJobDefinition"]["InputDataConfig"]
    assert [c["ChannelName"] for c in channels] == ["train"]
    assert tuning["Dagster"]["Assets"] == ["tuned_hyperparameters"]


def test_sagemaker_steps_names_types_and_order(sagemaker: dict, reference: str):
    notes = _section(reference, "1.11")
    steps = _reference_only(sagemaker["Steps"])
    # §1.1: steps=[process, train, eval, cond]; the condition's if_steps and else_steps.
    assert [s["Name"] for s in _reference_only(_flatten(steps))] == _reference_steps(reference)
    top = dict(re.findall(r"^  - (Abalone\w+): `(?:Type )?(\w+)`", notes, re.M))
    assert {s["Name"]: s["Type"] for s in steps} == top
    branches = re.search(r"`IfSteps` \[([\w, ]+)\] and `ElseSteps` \[(\w+)\]", notes)
    cond = steps[-1]["Arguments"]
    assert [s["Type"] for s in cond["IfSteps"]] == branches[1].split(", ")
    assert [s["Type"] for s in cond["ElseSteps"]] == [branches[2]]
    for step in _flatten(steps):
        assert {"Name", "Type", "DependsOn", "Arguments"} <= step.keys(), step["Name"]
        assert step["Dagster"]["Steps"], step["Name"]
    by_name = {s["Name"]: s for s in _reference_only(_flatten(steps))}
    assert by_name["AbaloneProcess"]["DependsOn"] == []
    assert by_name["AbaloneTrain"]["DependsOn"] == ["AbaloneProcess"]
    assert by_name["AbaloneEval"]["DependsOn"] == ["AbaloneProcess", "AbaloneTrain"]
    assert by_name["AbaloneMSECond"]["DependsOn"] == ["AbaloneEval"]
    assert by_name["AbaloneTransform"]["DependsOn"] == [
        "AbaloneEval",
        "AbaloneCreateModel-CreateModel",
    ]


def test_sagemaker_property_file_condition_and_fail(sagemaker: dict, reference: str):
    steps = {s["Name"]: s for s in _flatten(sagemaker["Steps"])}
    listed = re.search(r"PropertyFiles \[\{(.+?)\}\]", _section(reference, "1.11"))[1]
    expected = dict(pair.split(" ", 1) for pair in listed.split(", "))
    assert steps["AbaloneEval"]["PropertyFiles"] == [expected]
    outputs = steps["AbaloneEval"]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert [o["OutputName"] for o in outputs] == [expected["OutputName"]]

    (condition,) = steps["AbaloneMSECond"]["Arguments"]["Conditions"]
    notes = _section(reference, "1.7")
    assert condition["Type"] == re.search(r"`Type: (\w+)`", notes)[1]
    assert {"Std:JsonGet": condition["LeftValue"]["Std:JsonGet"]} in _snippets(
        reference, "Std:JsonGet"
    )
    assert condition["RightValue"] == {"Get": "Parameters.MseThreshold"}
    assert re.search(r'`RightValue: \{"Get": "Parameters.MseThreshold"\}`', notes)
    message = steps["AbaloneMSEFail"]["Arguments"]["ErrorMessage"]
    assert message in _snippets(reference, "Std:Join")


def test_sagemaker_step_arguments(sagemaker: dict):
    steps = {s["Name"]: s for s in _flatten(sagemaker["Steps"])}
    process = steps["AbaloneProcess"]["Arguments"]
    cluster = process["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceCount"] == {"Get": "Parameters.ProcessingInstanceCount"}
    assert [i["S3Input"]["S3Uri"] for i in process["ProcessingInputs"]] == [
        {"Get": "Parameters.InputData"}
    ]
    outputs = [o["OutputName"] for o in process["ProcessingOutputConfig"]["Outputs"]]
    assert outputs[:3] == ["train", "validation", "test"]

    train = steps["AbaloneTrain"]["Arguments"]
    assert train["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    assert train["HyperParameters"]["num_round"] == "50"
    for key, value in {"max_depth": "5", "eta": "0.2", "gamma": "4", "subsample": "0.7"}.items():
        assert train["HyperParameters"][key] == value
    assert all(isinstance(v, str) for v in train["HyperParameters"].values())
    assert {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in train["InputDataConfig"]
    } == {
        name: {
            "Get": f"Steps.AbaloneProcess.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri"
        }
        for name in ("train", "validation")
    }

    model = steps["AbaloneCreateModel-CreateModel"]["Arguments"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == {
        "Get": "Steps.AbaloneTrain.ModelArtifacts.S3ModelArtifacts"
    }
    transform = steps["AbaloneTransform"]["Arguments"]
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == {
        "Get": "Parameters.BatchData"
    }
    register = steps["AbaloneRegisterModel-RegisterModel"]["Arguments"]
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    assert register["ModelPackageGroupName"] == "AbaloneModelPackageGroupName"
    spec = register["InferenceSpecification"]
    assert spec["SupportedContentTypes"] == spec["SupportedResponseMIMETypes"] == ["text/csv"]
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"


def test_the_check_names_its_steps_in_metadata():
    graph = build_defs().resolve_asset_graph()
    (key,) = graph.asset_check_keys
    steps = graph.get_check_spec(key).metadata[CHECK_STEPS_METADATA]
    assert list(getattr(steps, "value", steps)) == ["AbaloneMSECond", "AbaloneMSEFail"]


@pytest.mark.slow
def test_definition_format_sagemaker_through_the_console_script(env: Env, sagemaker: dict):
    result = env.cli("definition", "--format", "sagemaker")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    inputs = {p["Name"]: p["DefaultValue"] for p in printed["Parameters"]}
    assert inputs["InputData"] == inputs["BatchData"] == env.vars["ABALONE_INPUT_DATA"]
    # The same definition as in-process, but for the data defaults (this process's environment).
    assert printed["Steps"] == sagemaker["Steps"]
    assert [p["Name"] for p in printed["Parameters"]] == [
        p["Name"] for p in sagemaker["Parameters"]
    ]
    default = env.cli("definition")
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["Version"] == "abalone_platform/1"
    assert Path(env.vars["ABALONE_INPUT_DATA"]).exists()
