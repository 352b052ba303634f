"""The Definitions load and hold the graph the README promises: keys, deps, checks, job."""

import dagster as dg
import pytest

from abalone_platform.definitions import build_defs
from abalone_platform.sagemaker import SAGEMAKER_STEPS, STEP_TAG, parameter_extra
from abalone_platform_tests.support.project import PIPELINE_STEPS, SAGEMAKER_STEP_OF_ASSET

ASSET_DEPS = {
    "train_split": set(),
    "validation_split": set(),
    "test_split": set(),
    "preprocessor": set(),
    "tuned_hyperparameters": {"train_split"},
    "trained_model": {"train_split", "validation_split", "tuned_hyperparameters"},
    "evaluation_report": {"trained_model", "test_split", "train_split", "validation_split"},
    "deployable_model": {"trained_model", "preprocessor", "evaluation_report"},
    "batch_predictions": {"deployable_model", "evaluation_report"},
    "model_package": {"deployable_model", "evaluation_report"},
}

# No SageMaker counterpart (the reference has no tuning step): named like seed, in CamelCase.
TUNING_FIELDS = ("tuning_trials", "tuning_timeout_s")


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_defs()


def test_asset_keys_and_dependencies(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == set(ASSET_DEPS)
    for name, deps in ASSET_DEPS.items():
        parents = {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}
        assert parents == deps, name


def test_the_gate_is_one_blocking_check_on_the_evaluation_report(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    checks = list(graph.asset_check_keys)
    assert checks == [dg.AssetCheckKey(dg.AssetKey("evaluation_report"), "mse_within_threshold")]
    spec = graph.get_check_spec(checks[0])
    assert spec.blocking


def test_every_asset_says_which_sagemaker_step_it_stands_for(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    steps = {}
    for key in graph.get_all_asset_keys():
        step = graph.get(key).tags.get(STEP_TAG)
        assert step in SAGEMAKER_STEPS, key
        steps[key.to_user_string()] = step
    assert steps == SAGEMAKER_STEP_OF_ASSET


def test_the_pipeline_job_selects_everything_in_process(defs: dg.Definitions) -> None:
    job = defs.resolve_job_def("abalone_pipeline")
    assert job.executor_def.name == "in_process"
    node_names = {node.name for node in job.graph.nodes}
    assert set(PIPELINE_STEPS) == node_names


def test_parameters_are_one_resource_with_sagemaker_descriptions(defs: dg.Definitions) -> None:
    job = defs.resolve_job_def("abalone_pipeline")
    fields = job.run_config_schema.config_type.fields["resources"].config_type.fields
    params = fields["parameters"].config_type.fields["config"].config_type.fields
    expected = {
        "processing_instance_count": ("ProcessingInstanceCount", 1),
        "training_instance_type": ("TrainingInstanceType", "ml.m5.xlarge"),
        "model_approval_status": ("ModelApprovalStatus", "PendingManualApproval"),
        "input_data": ("InputData", ""),
        "batch_data": ("BatchData", ""),
        "mse_threshold": ("MseThreshold", 6.0),
        "seed": ("Seed", 42),
    }
    assert expected.keys() <= params.keys()
    for name, (sagemaker_name, default) in expected.items():
        assert sagemaker_name.lower() in params[name].description.lower(), name
        assert params[name].default_value == default, name
    # The SageMaker names are data (json_schema_extra), which config schema building ignores.
    fields = type(defs.resources["parameters"]).model_fields
    extras = {n: parameter_extra(f.json_schema_extra) for n, f in fields.items()}
    assert {n: e[0] for n, e in extras.items() if e} == {
        n: s
        for n, (s, _) in expected.items()
        if n not in ("seed", "tuning_trials", "tuning_timeout_s")
    }
    assert extras["seed"] is None and extras["model_package_version"] is None
    assert all(extras[n] is None for n in TUNING_FIELDS)
    assert params["tuning_trials"].default_value == 0  # no search: the reference's model
    assert params["tuning_timeout_s"].default_value > 0


def test_code_location_is_found_by_module_name() -> None:
    import abalone_platform

    # `dagster job execute -m abalone_platform` finds the @dg.definitions function by name and
    # calls it; calling it gives the project's Definitions.
    assert "code_location" in dir(abalone_platform)
    loaded = abalone_platform.code_location()
    assert isinstance(loaded, dg.Definitions)
    assert loaded.resolve_job_def("abalone_pipeline").executor_def is dg.in_process_executor
