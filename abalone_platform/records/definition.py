"""The pipeline's definition as data, derived from the Definitions each time (parameters
resource, asset graph and tags, the gate's check):

- ``pipeline_definition``: this project's own form ("abalone_platform/1"): Dagster steps with
  their SageMaker counterparts, inputs, outputs and the gate;
- ``sagemaker_definition``: SageMaker's own ``pipeline.definition()`` schema ("2020-12-01"), for
  tools written for SageMaker's JSON.
"""

from __future__ import annotations

import enum
import typing
from typing import Any

import dagster as dg

from abalone_platform import sagemaker as sm
from abalone_platform.errors import DefinitionError
from abalone_platform.ml.train import HYPERPARAMETERS, NUM_BOOST_ROUND
from abalone_platform.ml.tune import (
    CV_FOLDS,
    EARLY_STOPPING_ROUNDS,
    FIXED_PARAMETERS,
    MAX_ROUNDS,
    SEARCH_SPACE,
)
from abalone_platform.records.steps import Step, pipeline_steps
from abalone_platform.registry import MODEL_PACKAGE_GROUP
from abalone_platform.sagemaker import MSE_JSON_PATH, gate_failure_message

DEFINITION_VERSION = "abalone_platform/1"
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
    """Each parameter of the parameters resource: name, type, default, SageMaker name (from the
    field's json_schema_extra, see abalone_platform.sagemaker)."""
    resource = defs.resources["parameters"]
    result = []
    for field_name, info in type(resource).model_fields.items():
        extra = sm.parameter_extra(info.json_schema_extra)
        type_name = _type_name(info.annotation)
        if extra and extra[1] != type_name:
            raise DefinitionError(
                f"parameter {field_name}: its json_schema_extra says SageMaker type {extra[1]}, "
                f"its annotation is a {type_name}"
            )
        default = info.default
        if isinstance(default, enum.Enum):
            default = default.value
        result.append(
            {
                # The name the run's parameters are known by: SageMaker's where it has one.
                "name": sm.parameter_name(field_name, info.json_schema_extra),
                "field": field_name,
                "type": type_name,
                "default": default,
                "sagemaker_name": extra[0] if extra else None,
                "sagemaker_type": extra[1] if extra else None,
                "description": info.description or "",
            }
        )
    return result


def failure_message(threshold: dict[str, str]) -> dict[str, Any]:
    """The Fail step's message as SageMaker writes it: "Execution failed due to MSE >" joined
    with the threshold parameter (a ``{"Get": "Parameters.MseThreshold"}`` reference)."""
    return {"Std:Join": {"On": " ", "Values": [gate_failure_message("").rstrip(), threshold]}}


def pipeline_definition(defs: dg.Definitions) -> dict[str, Any]:
    """The pipeline definition: parameters, steps with their SageMaker step types, dependencies,
    inputs and outputs, and the gate's condition and failure message."""
    steps = pipeline_steps(defs)
    producer = {key: step.name for step in steps for key in step.outputs}
    job = defs.resolve_job_def(sm.PIPELINE_JOB_NAME)
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
                "Type": sm.CONDITION_TYPE,
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
            "FailureMessage": failure_message({"Get": f"Parameters.{threshold['name']}"}),
        },
    }


# --- SageMaker's pipeline.definition() --------------------------------------------------------

# How a step of each SageMaker type is referred to by the steps that read what it made.
_OUTPUT_PROPERTY = {
    "Training": "ModelArtifacts.S3ModelArtifacts",
    "Tuning": "BestTrainingJob.TunedHyperParameters",
    "Model": "PrimaryContainer.ModelDataUrl",
    "Transform": "TransformOutput.S3OutputPath",
    "RegisterModel": "ModelPackageArn",
}
# Content types of the asset kinds whose files a step reads.
_CONTENT_TYPES = {"parquet": "application/x-parquet", "csv": "text/csv", "json": "application/json"}
_PROCESSING_ROOT = "/opt/ml/processing"
_INSTANCE_TYPE = "ml.m5.xlarge"


class _Graph:
    """The Definitions as SageMaker steps: each SageMaker step with the Dagster steps standing
    for it, and how one step's output is referred to from another."""

    def __init__(self, defs: dg.Definitions):
        self.defs = defs
        self.graph = defs.resolve_asset_graph()
        self.steps = pipeline_steps(defs)
        self.producer: dict[dg.AssetKey, Step] = {k: s for s in self.steps for k in s.outputs}
        self.members: dict[str, list[Step]] = {}
        for step in self.steps:
            for name in step.sagemaker_steps:
                self.members.setdefault(name, []).append(step)
        order = list(sm.SAGEMAKER_STEPS)
        # A multi-asset's outputs in the order of its specs (train, validation, test, ...).
        self.spec_order = {
            spec.key: i for ad in self.graph.assets_defs for i, spec in enumerate(ad.specs)
        }
        self.names = sorted(self.members, key=order.index)
        self.parameters = {
            p["sagemaker_name"]: p for p in parameter_definitions(defs) if p["sagemaker_name"]
        }

    def parameter(self, name: str) -> dict[str, str]:
        if name not in self.parameters:
            raise DefinitionError(
                f"the parameters resource has no field standing for SageMaker parameter {name} "
                f"(json_schema_extra=sagemaker_parameter({name!r}, ...))"
            )
        return sm.get(f"Parameters.{name}")

    def outputs(self, name: str) -> list[dg.AssetKey]:
        keys = [k for step in self.members[name] for k in step.outputs]
        return sorted(keys, key=lambda k: self.spec_order.get(k, 0))

    def inputs(self, name: str) -> list[dg.AssetKey]:
        own = set(self.outputs(name))
        keys = [k for step in self.members[name] for k in step.inputs if k not in own]
        return list(dict.fromkeys(keys))

    def source(self, key: dg.AssetKey) -> str | None:
        """The SageMaker step (reference name) that makes asset ``key``."""
        step = self.producer.get(key)
        return step.sagemaker_steps[0] if step else None

    def depends_on(self, name: str) -> list[str]:
        own = {s for step in self.members[name] for s in step.sagemaker_steps}
        upstream = {self.source(k) for k in self.inputs(name)} - own - {None}
        return [sm.definition_name(s) for s in self.names if s in upstream]

    def output_name(self, key: dg.AssetKey) -> str:
        tags = self.graph.get(key).tags or {}
        return tags.get(sm.OUTPUT_TAG) or key.to_user_string()

    def reference(self, key: dg.AssetKey) -> dict[str, str]:
        """``{"Get": "Steps.X...."}`` for the output of another step that stands for ``key``."""
        source = self.source(key)
        if source is None:
            raise DefinitionError(f"asset {key.to_user_string()} is made by no step")
        kind, step_name = sm.SAGEMAKER_STEPS[source]
        if kind == "Processing":
            path = f"ProcessingOutputConfig.Outputs['{self.output_name(key)}'].S3Output.S3Uri"
        else:
            path = _OUTPUT_PROPERTY[kind]
        return sm.get(f"Steps.{step_name}.{path}")

    def content_type(self, key: dg.AssetKey) -> str | None:
        kinds = self.graph.get(key).kinds
        return next((_CONTENT_TYPES[k] for k in sorted(kinds) if k in _CONTENT_TYPES), None)

    def inputs_of_type(self, name: str, kind: str) -> list[dg.AssetKey]:
        return [k for k in self.inputs(name) if sm.step_type(self.source(k) or "") == kind]

    def model_data(self, name: str) -> dict[str, str]:
        """The model a Model / RegisterModel step uses: its upstream Model step's, else the
        upstream Training step's artifacts."""
        keys = self.inputs_of_type(name, "Model") or self.inputs_of_type(name, "Training")
        if not keys:
            raise DefinitionError(f"SageMaker step {name}: no upstream step makes a model")
        return self.reference(keys[0])


def _processing(g: _Graph, name: str) -> dict[str, Any]:
    inputs = g.inputs(name)
    processing_inputs = [
        {
            "InputName": g.output_name(key),
            "AppManaged": False,
            "S3Input": {
                "S3Uri": g.reference(key),
                "LocalPath": f"{_PROCESSING_ROOT}/{g.output_name(key)}",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
                "S3CompressionType": "None",
            },
        }
        for key in inputs
    ]
    if not inputs:
        # The step at the head of the pipeline reads InputData, with ProcessingInstanceCount
        # workers (later processing steps run on one instance, as in the reference).
        processing_inputs.append(
            {
                "InputName": "input-1",
                "AppManaged": False,
                "S3Input": {
                    "S3Uri": g.parameter("InputData"),
                    "LocalPath": f"{_PROCESSING_ROOT}/input",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                    "S3CompressionType": "None",
                },
            }
        )
    count: Any = g.parameter("ProcessingInstanceCount") if not inputs else 1
    return {
        "ProcessingResources": {
            "ClusterConfig": {"InstanceType": _INSTANCE_TYPE, "InstanceCount": count}
        },
        "ProcessingInputs": processing_inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": g.output_name(key),
                    "AppManaged": False,
                    "S3Output": {
                        "LocalPath": f"{_PROCESSING_ROOT}/{g.output_name(key)}",
                        "S3UploadMode": "EndOfJob",
                    },
                }
                for key in g.outputs(name)
            ]
        },
    }


def _channels(g: _Graph, name: str) -> list[dict[str, Any]]:
    """A training job's data channels: the inputs made by steps other than a Tuning step (what
    a tuning step hands over is hyperparameters, not data)."""
    channels = []
    for key in g.inputs(name):
        source = g.source(key)
        if source is not None and sm.step_type(source) == "Tuning":
            continue
        channel: dict[str, Any] = {
            "ChannelName": g.output_name(key),
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": g.reference(key),
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
        if g.content_type(key):
            channel["ContentType"] = g.content_type(key)
        channels.append(channel)
    return channels


def _training(g: _Graph, name: str) -> dict[str, Any]:
    # The reference's hyperparameters: what training uses unless the tuning step searched
    # (tuning_trials > 0, a run parameter with no SageMaker counterpart).
    hyperparameters = {k: str(v) for k, v in HYPERPARAMETERS.items()}
    hyperparameters["num_round"] = str(NUM_BOOST_ROUND)
    channels = _channels(g, name)
    return {
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {
            "InstanceCount": 1,
            "InstanceType": g.parameter("TrainingInstanceType"),
        },
        "HyperParameters": hyperparameters,
        "InputDataConfig": channels,
    }


def _tuning(g: _Graph, name: str) -> dict[str, Any]:
    """SageMaker's TuningStep arguments for the Optuna search (abalone_platform.ml.tune): its
    ranges, a Bayesian strategy (TPE), the CV RMSE to minimise, and the training job each trial
    is. The trial budget is the run parameter tuning_trials, which has no SageMaker
    counterpart, so ResourceLimits is left out."""
    ranges: dict[str, list[dict[str, str]]] = {
        "ContinuousParameterRanges": [],
        "IntegerParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for parameter, (kind, low, high, log) in SEARCH_SPACE.items():
        key = "IntegerParameterRanges" if kind == "int" else "ContinuousParameterRanges"
        ranges[key].append(
            {
                "Name": parameter,
                "MinValue": str(low),
                "MaxValue": str(high),
                "ScalingType": "Logarithmic" if log else "Linear",
            }
        )
    return {
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {
                "Type": "Minimize",
                "MetricName": f"train:cv{CV_FOLDS}-rmse",
            },
            "ParameterRanges": ranges,
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": {
            # The rounds are XGBoost's early stopping on the held-out folds, up to num_round.
            "StaticHyperParameters": {
                **{k: str(v) for k, v in FIXED_PARAMETERS.items()},
                "num_round": str(MAX_ROUNDS),
                "early_stopping_rounds": str(EARLY_STOPPING_ROUNDS),
            },
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "ResourceConfig": {
                "InstanceCount": 1,
                "InstanceType": g.parameter("TrainingInstanceType"),
            },
            "InputDataConfig": _channels(g, name),
        },
    }


def _model(g: _Graph, name: str) -> dict[str, Any]:
    return {"PrimaryContainer": {"Environment": {}, "ModelDataUrl": g.model_data(name)}}


def _transform(g: _Graph, name: str) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    models = g.inputs_of_type(name, "Model")
    if models:
        source = sm.definition_name(g.source(models[0]) or "")
        arguments["ModelName"] = sm.get(f"Steps.{source}.ModelName")
    content_type = next(
        (g.content_type(k) for k in g.outputs(name) if g.content_type(k)), "text/csv"
    )
    arguments |= {
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": g.parameter("BatchData")}
            },
            "ContentType": "text/csv",
        },
        "TransformOutput": {"Accept": content_type},
        # batch_predictions spreads the batch over ProcessingInstanceCount workers.
        "TransformResources": {
            "InstanceCount": g.parameter("ProcessingInstanceCount"),
            "InstanceType": _INSTANCE_TYPE,
        },
    }
    return arguments


def _register_model(g: _Graph, name: str) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for key in g.inputs_of_type(name, "Processing"):
        source = g.source(key) or ""
        for prop in sm.PROPERTY_FILES.get(source, []):
            if prop["OutputName"] == g.output_name(key):
                metrics = {
                    "ContentType": "application/json",
                    "S3Uri": {
                        "Std:Join": {"On": "/", "Values": [g.reference(key), prop["FilePath"]]}
                    },
                }
    return {
        "ModelPackageGroupName": MODEL_PACKAGE_GROUP,
        "ModelMetrics": {"ModelQuality": {"Statistics": metrics}, "Bias": {}, "Explainability": {}},
        "InferenceSpecification": {
            "Containers": [{"Environment": {}, "ModelDataUrl": g.model_data(name)}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        "ModelApprovalStatus": g.parameter("ModelApprovalStatus"),
    }


def _fail(g: _Graph, name: str) -> dict[str, Any]:
    return {"ErrorMessage": failure_message(g.parameter(sm.CONDITION_PARAMETER))}


_ARGUMENTS = {
    "Processing": _processing,
    "Training": _training,
    "Tuning": _tuning,
    "Model": _model,
    "Transform": _transform,
    "RegisterModel": _register_model,
    "Fail": _fail,
}


def _condition(g: _Graph, name: str) -> dict[str, Any]:
    """The condition's test: a JsonGet on the property file of the step that makes the checked
    asset, <= the threshold parameter."""
    checked = [c.asset_key for step in g.members[name] for c in step.checks]
    if not checked:
        raise DefinitionError(f"SageMaker step {name}: it stands for no asset check")
    source = g.source(checked[0]) or ""
    files = sm.PROPERTY_FILES.get(source)
    if not files:
        raise DefinitionError(
            f"SageMaker step {name}: the step it reads ({source}) has no property file"
        )
    return {
        "Type": sm.CONDITION_TYPE,
        "LeftValue": {
            "Std:JsonGet": {
                "PropertyFile": sm.get(
                    f"Steps.{sm.definition_name(source)}.PropertyFiles."
                    f"{files[0]['PropertyFileName']}"
                ),
                "Path": MSE_JSON_PATH,
            }
        },
        "RightValue": g.parameter(sm.CONDITION_PARAMETER),
    }


def _descendants(graph: Any, keys: list[dg.AssetKey]) -> set[dg.AssetKey]:
    found: set[dg.AssetKey] = set()
    todo = list(keys)
    while todo:
        for child in graph.get(todo.pop()).child_keys:
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def sagemaker_definition(defs: dg.Definitions) -> dict[str, Any]:
    """SageMaker's ``pipeline.definition()`` (schema 2020-12-01) of the Definitions: Version,
    Metadata, Parameters, PipelineExperimentConfig and Steps, where the condition step holds the
    steps its check gates (IfSteps) and its fail step (ElseSteps). Each step also has a
    ``Dagster`` entry: the Dagster steps, assets and checks behind it."""
    g = _Graph(defs)
    conditions = [n for n in g.names if sm.step_type(n) == "Condition"]
    if len(conditions) > 1:
        raise DefinitionError(
            f"more than one condition step ({', '.join(conditions)}); the definition holds one"
        )
    gated: set[str] = set()
    for name in conditions:
        checked = [c.asset_key for step in g.members[name] for c in step.checks]
        below = _descendants(g.graph, checked)
        gated |= {n for n in g.names if set(g.outputs(n)) & below}

    def step(name: str) -> dict[str, Any]:
        kind = sm.step_type(name)
        entry: dict[str, Any] = {
            "Name": sm.definition_name(name),
            "Type": kind,
            "DependsOn": g.depends_on(name),
        }
        if kind in _ARGUMENTS:
            entry["Arguments"] = _ARGUMENTS[kind](g, name)
        if name in sm.PROPERTY_FILES:
            entry["PropertyFiles"] = sm.PROPERTY_FILES[name]
        if kind == "Condition":
            entry["Arguments"] = {
                "Conditions": [_condition(g, name)],
                "IfSteps": [step(n) for n in g.names if n in gated],
                "ElseSteps": [step(n) for n in g.names if sm.step_type(n) == "Fail"],
            }
        entry["Dagster"] = {
            "Steps": [s.name for s in g.members[name]],
            "Assets": [k.to_user_string() for k in g.outputs(name)],
            "Checks": [
                f"{c.asset_key.to_user_string()}:{c.name}"
                for s in g.members[name]
                for c in s.checks
            ],
        }
        return entry

    nested = gated | ({n for n in g.names if sm.step_type(n) == "Fail"} if conditions else set())
    parameters = g.defs.resources["parameters"]
    return {
        "Version": sm.DEFINITION_VERSION,
        "Metadata": {},
        "Parameters": [
            {
                "Name": p["sagemaker_name"],
                "Type": p["sagemaker_type"],
                # What a run started now without this parameter uses (empty InputData /
                # BatchData resolved as the run would resolve them).
                "DefaultValue": parameters.effective_value(p["field"]),
            }
            for p in g.parameters.values()
        ],
        "PipelineExperimentConfig": {
            "ExperimentName": sm.get("Execution.PipelineName"),
            "TrialName": sm.get("Execution.PipelineExecutionId"),
        },
        "Steps": [step(n) for n in g.names if n not in nested],
    }
