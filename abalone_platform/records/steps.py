"""The pipeline's steps as read from the Definitions, with their SageMaker counterparts.

Each asset's (or check's) description names the SageMaker step it stands for ("SageMaker step
AbaloneTrain: ...", "SageMaker steps AbaloneMSECond + AbaloneMSEFail: ..."); that text is the one
place the correspondence is written, so everything here reads it from there. What is kept here is
only what SageMaker itself defines: each reference step's type (reference notes 1.1 and 1.11).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dagster as dg

from abalone_platform.errors import DefinitionError

# Reference step name -> (SageMaker step type, the name list_steps() shows).
SAGEMAKER_STEPS: dict[str, tuple[str, str]] = {
    "AbaloneProcess": ("Processing", "AbaloneProcess"),
    "AbaloneTrain": ("Training", "AbaloneTrain"),
    "AbaloneEval": ("Processing", "AbaloneEval"),
    "AbaloneMSECond": ("Condition", "AbaloneMSECond"),
    "AbaloneMSEFail": ("Fail", "AbaloneMSEFail"),
    "AbaloneCreateModel": ("Model", "AbaloneCreateModel-CreateModel"),
    "AbaloneTransform": ("Transform", "AbaloneTransform"),
    "AbaloneRegisterModel": ("RegisterModel", "AbaloneRegisterModel-RegisterModel"),
}

_NAMED = re.compile(r"SageMaker steps? (Abalone\w+(?:\s*\+\s*Abalone\w+)*)")
# Asset kinds that make an artifact a model rather than a data set in lineage tables.
_MODEL_KINDS = {"xgboost", "mlflow"}


@dataclass(frozen=True)
class Step:
    """One execution step: an asset, a multi-asset (several outputs) or an asset check."""

    name: str  # the Dagster step key (op name)
    kind: str  # "asset", "multi_asset" or "asset_check"
    sagemaker_steps: tuple[str, ...]
    outputs: tuple[dg.AssetKey, ...]
    checks: tuple[dg.AssetCheckKey, ...]
    inputs: tuple[dg.AssetKey, ...]  # upstream assets, outside this step
    descriptions: dict[str, str]

    @property
    def sagemaker_name(self) -> str:
        return " + ".join(SAGEMAKER_STEPS[s][1] for s in self.sagemaker_steps)

    @property
    def sagemaker_type(self) -> str:
        return " + ".join(SAGEMAKER_STEPS[s][0] for s in self.sagemaker_steps)


def _sagemaker_steps(name: str, descriptions: list[str]) -> tuple[str, ...]:
    for text in descriptions:
        match = _NAMED.search(text or "")
        if match:
            names = tuple(part.strip() for part in match.group(1).split("+"))
            unknown = [n for n in names if n not in SAGEMAKER_STEPS]
            if unknown:
                raise DefinitionError(
                    f"step {name}: its description names {', '.join(unknown)}, which is not a "
                    f"step of the SageMaker abalone pipeline ({', '.join(SAGEMAKER_STEPS)})"
                )
            return names
    raise DefinitionError(
        f"step {name}: no description says which SageMaker step it stands for "
        "(expected text such as 'SageMaker step AbaloneTrain: ...')"
    )


def pipeline_steps(defs: dg.Definitions) -> list[Step]:
    """Every step of the Definitions' asset graph, upstream first."""
    graph = defs.resolve_asset_graph()
    order = {key: i for i, key in enumerate(graph.toposorted_asset_keys)}
    steps: list[Step] = []
    for assets_def in graph.assets_defs:
        if not assets_def.is_executable:
            continue
        keys = tuple(sorted(assets_def.keys, key=lambda k: order.get(k, 0)))
        checks = tuple(sorted(assets_def.check_keys, key=str))
        descriptions = {
            k.to_user_string(): assets_def.descriptions_by_key.get(k) or "" for k in keys
        }
        for spec in assets_def.check_specs:
            descriptions[spec.key.name] = spec.description or ""
        parents: set[dg.AssetKey] = set()
        for key in keys:
            parents |= graph.get(key).parent_keys
        for check in checks:
            parents.add(check.asset_key)
        inputs = tuple(sorted(parents - set(keys), key=lambda k: order.get(k, 0)))
        kind = "asset_check" if not keys else ("multi_asset" if len(keys) > 1 else "asset")
        name = assets_def.node_def.name
        steps.append(
            Step(
                name=name,
                kind=kind,
                sagemaker_steps=_sagemaker_steps(name, list(descriptions.values())),
                outputs=keys,
                checks=checks,
                inputs=inputs,
                descriptions=descriptions,
            )
        )

    def rank(step: Step) -> tuple[int, str]:
        anchors = step.outputs or tuple(c.asset_key for c in step.checks)
        # A check runs right after the asset it checks, before that asset's children.
        return (max(order.get(k, 0) for k in anchors) * 2 + (0 if step.outputs else 1), step.name)

    return sorted(steps, key=rank)


def step_for_asset(defs: dg.Definitions) -> dict[dg.AssetKey, Step]:
    return {key: step for step in pipeline_steps(defs) for key in step.outputs}


def artifact_type(defs: dg.Definitions, key: dg.AssetKey) -> str:
    """SageMaker lineage's entity type for an asset: Model or DataSet."""
    kinds = defs.resolve_asset_graph().get(key).kinds
    return "Model" if kinds & _MODEL_KINDS else "DataSet"
