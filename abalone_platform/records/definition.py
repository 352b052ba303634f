"""The pipeline's definition as data: SageMaker's pipeline.definition(), derived from the
Definitions each time (parameters resource, asset graph, the gate's check)."""

from __future__ import annotations

import enum
import re
import typing
from typing import Any

import dagster as dg

from abalone_platform.defs.jobs import PIPELINE_JOB_NAME
from abalone_platform.ml.evaluate import MSE_JSON_PATH, gate_failure_message
from abalone_platform.records.steps import pipeline_steps

DEFINITION_VERSION = "abalone_platform/1"
_SAGEMAKER_PARAMETER = re.compile(r"^(?P<name>[A-Z]\w+) \((?P<type>Integer|String|Float|Boolean)")
_TYPES = {int: "Integer", float: "Float", str: "String", bool: "Boolean"}


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "String"
    for python_type, name in _TYPES.items():
        if annotation is python_type:
            return name
    origin_args = typing.get_args(annotation)
    return _type_name(origin_args[0]) if origin_args else str(annotation)


def parameter_definitions(defs: dg.Definitions) -> list[dict[str, Any]]:
    """Each parameter of the parameters resource: name, type, default, SageMaker name."""
    resource = defs.resources["parameters"]
    result = []
    for field_name, info in type(resource).model_fields.items():
        description = info.description or ""
        match = _SAGEMAKER_PARAMETER.match(description)
        default = info.default
        if isinstance(default, enum.Enum):
            default = default.value
        sagemaker = match["name"] if match else None
        result.append(
            {
                # The name the run's parameters are known by: SageMaker's where it has one.
                "name": sagemaker or field_name.title().replace("_", ""),
                "field": field_name,
                "type": _type_name(info.annotation),
                "default": default,
                "sagemaker_name": sagemaker,
                "description": description,
            }
        )
    return result


def pipeline_definition(defs: dg.Definitions) -> dict[str, Any]:
    """The pipeline definition: parameters, steps with their SageMaker step types, dependencies,
    inputs and outputs, and the gate's condition and failure message."""
    steps = pipeline_steps(defs)
    producer = {key: step.name for step in steps for key in step.outputs}
    job = defs.resolve_job_def(PIPELINE_JOB_NAME)
    gate_step = next(s for s in steps if s.checks)
    gated_asset = gate_step.checks[0].asset_key
    graph = defs.resolve_asset_graph()
    gated = sorted({producer[k] for k in graph.get(gated_asset).child_keys if k in producer})
    threshold = next(p for p in parameter_definitions(defs) if p["field"] == "mse_threshold")
    return {
        "Version": DEFINITION_VERSION,
        "PipelineName": job.name,
        "Description": job.description,
        "Parameters": parameter_definitions(defs),
        "Steps": [
            {
                "Name": step.name,
                "Kind": step.kind,
                "SageMakerStep": step.sagemaker_name,
                "SageMakerType": step.sagemaker_type,
                "DependsOn": sorted({producer[k] for k in step.inputs if k in producer}),
                "Inputs": [k.to_user_string() for k in step.inputs],
                "Outputs": [k.to_user_string() for k in step.outputs]
                + [f"{c.asset_key.to_user_string()}:{c.name}" for c in step.checks],
                "Description": step.descriptions,
            }
            for step in steps
        ],
        "Gate": {
            "Step": gate_step.name,
            "Check": f"{gated_asset.to_user_string()}:{gate_step.checks[0].name}",
            "Blocking": True,
            "Condition": {
                "Type": "LessThanOrEqualTo",
                "LeftValue": {
                    "Std:JsonGet": {
                        "PropertyFile": f"{gated_asset.to_user_string()} (evaluation.json)",
                        "Path": MSE_JSON_PATH,
                    }
                },
                "RightValue": {"Get": f"Parameters.{threshold['name']}"},
            },
            "IfSteps": gated,
            "ElseSteps": [f"fail the run: {gate_failure_message('{' + threshold['name'] + '}')}"],
            "FailureMessage": {
                "Std:Join": {
                    "On": " ",
                    "Values": [
                        gate_failure_message("").rstrip(),
                        {"Get": f"Parameters.{threshold['name']}"},
                    ],
                }
            },
        },
    }
