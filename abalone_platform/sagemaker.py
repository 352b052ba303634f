"""SageMaker's vocabulary for the abalone pipeline, as data (no Dagster, no MLflow).

The Definitions carry the correspondence with SageMaker as structure, never as prose:

- every asset has the tag ``STEP_TAG`` (``sagemaker/step``) naming the SageMaker step it stands
  for, and optionally ``OUTPUT_TAG`` (``sagemaker/output``) naming its ProcessingOutput;
- the gate's AssetCheckSpec has the metadata entry ``CHECK_STEPS_METADATA`` (``sagemaker/steps``),
  the list of SageMaker steps it stands for (the condition and its fail step);
- each field of the parameters resource with a SageMaker counterpart has
  ``json_schema_extra=sagemaker_parameter(name, type)``.

What is kept here is only what SageMaker itself defines (reference notes 1.1, 1.2, 1.6, 1.7,
1.11): each step's type, the name list_steps() shows, the property file, the gate's condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# SageMaker's pipeline name, and the Dagster job that stands for it.
PIPELINE_NAME = "AbalonePipeline"
PIPELINE_JOB_NAME = "abalone_pipeline"

# pipeline.definition()'s schema version.
DEFINITION_VERSION = "2020-12-01"

# Asset tag: the SageMaker step an asset stands for (a reference step name, a valid strict tag
# value: letters and digits only).
STEP_TAG = "sagemaker/step"
# Asset tag (optional): the OutputName of the ProcessingOutput an asset stands for; without it,
# the asset key is the output's name.
OUTPUT_TAG = "sagemaker/output"
# AssetCheckSpec metadata: the list of SageMaker steps a check stands for.
CHECK_STEPS_METADATA = "sagemaker/steps"

# Keys of a pydantic Field's json_schema_extra, for a parameter with a SageMaker counterpart.
PARAMETER_NAME_KEY = "sagemaker_name"
PARAMETER_TYPE_KEY = "sagemaker_type"
# ParameterInteger, ParameterString, ParameterFloat, ParameterBoolean.
PARAMETER_TYPES = ("Integer", "String", "Float", "Boolean")

# Reference step name -> (SageMaker step type, the name list_steps() and the definition show),
# in the order of the reference's definition (steps, then the condition's if / else steps).
SAGEMAKER_STEPS: dict[str, tuple[str, str]] = {
    "AbaloneProcess": ("Processing", "AbaloneProcess"),
    # An extension: the reference has no tuning step (see EXTENSION_STEPS).
    "AbaloneTuning": ("Tuning", "AbaloneTuning"),
    "AbaloneTrain": ("Training", "AbaloneTrain"),
    "AbaloneEval": ("Processing", "AbaloneEval"),
    "AbaloneMSECond": ("Condition", "AbaloneMSECond"),
    "AbaloneRegisterModel": ("RegisterModel", "AbaloneRegisterModel-RegisterModel"),
    "AbaloneCreateModel": ("Model", "AbaloneCreateModel-CreateModel"),
    "AbaloneTransform": ("Transform", "AbaloneTransform"),
    "AbaloneMSEFail": ("Fail", "AbaloneMSEFail"),
}

# The steps this project adds to the reference's pipeline, in the reference's vocabulary:
# AbaloneTuning is SageMaker's TuningStep (type "Tuning"), choosing AbaloneTrain's
# hyperparameters. Anything compared with the reference's definition leaves these out first.
EXTENSION_STEPS: frozenset[str] = frozenset({"AbaloneTuning"})

# Step -> its PropertyFiles (reference note 1.6).
PROPERTY_FILES: dict[str, list[dict[str, str]]] = {
    "AbaloneEval": [
        {
            "PropertyFileName": "EvaluationReport",
            "OutputName": "evaluation",
            "FilePath": "evaluation.json",
        }
    ],
}

# The condition step's test (reference note 1.7): LeftValue (a JsonGet on its upstream step's
# property file) <= the parameter named here.
CONDITION_TYPE = "LessThanOrEqualTo"
CONDITION_PARAMETER = "MseThreshold"


def sagemaker_parameter(name: str, type_name: str) -> dict[str, str]:
    """The json_schema_extra of a Field standing for SageMaker parameter ``name``."""
    if type_name not in PARAMETER_TYPES:
        raise ValueError(
            f"SageMaker parameter {name}: type {type_name!r} is not one of {PARAMETER_TYPES}"
        )
    return {PARAMETER_NAME_KEY: name, PARAMETER_TYPE_KEY: type_name}


def parameter_extra(extra: Any) -> tuple[str, str] | None:
    """(SageMaker name, SageMaker type) from a Field's json_schema_extra; None without one."""
    if not isinstance(extra, Mapping) or PARAMETER_NAME_KEY not in extra:
        return None
    return str(extra[PARAMETER_NAME_KEY]), str(extra.get(PARAMETER_TYPE_KEY, "String"))


def parameter_name(field_name: str, extra: Any) -> str:
    """The name a parameter is known by: SageMaker's, else the field name in CamelCase
    (``seed`` -> ``Seed``)."""
    found = parameter_extra(extra)
    return found[0] if found else field_name.title().replace("_", "")


def step_type(step: str) -> str:
    return SAGEMAKER_STEPS[step][0]


def definition_name(step: str) -> str:
    """The name a step has in the definition and in list_steps() (ModelStep adds a suffix)."""
    return SAGEMAKER_STEPS[step][1]


def get(path: str) -> dict[str, str]:
    """A SageMaker property reference: ``{"Get": "Parameters.X"}``, ``{"Get": "Steps...."}``."""
    return {"Get": path}


# The gate (AbaloneMSECond, AbaloneMSEFail): the property the condition reads from the
# evaluation report, the condition, and the FailStep's message.
MSE_JSON_PATH = "regression_metrics.mse.value"


def report_mse(report: dict) -> float:
    """The value at MSE_JSON_PATH of an evaluation report."""
    return float(report["regression_metrics"]["mse"]["value"])


def mse_within(report: dict, threshold: float) -> bool:
    """The reference's ConditionLessThanOrEqualTo on regression_metrics.mse.value."""
    return report_mse(report) <= threshold


def gate_failure_message(threshold: float) -> str:
    """The reference FailStep's text: Join(" ", ["Execution failed due to MSE >", threshold])."""
    return f"Execution failed due to MSE > {threshold}"
