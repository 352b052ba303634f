"""The pipeline's steps as read from the Definitions, with their SageMaker counterparts.

Each asset carries the SageMaker step it stands for as its ``sagemaker/step`` tag, and the gate's
check spec the steps it stands for as its ``sagemaker/steps`` metadata (abalone_platform.sagemaker);
everything here reads them from there. Descriptions are for people: nothing parses them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

from abalone_platform.errors import DefinitionError
from abalone_platform.sagemaker import CHECK_STEPS_METADATA, SAGEMAKER_STEPS, STEP_TAG

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


def _check_steps(value: object) -> list[str]:
    """A check spec's CHECK_STEPS_METADATA: a list of step names (or one name)."""
    value = getattr(value, "value", value)  # a MetadataValue, should Dagster have wrapped it
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return []


def _sagemaker_steps(
    name: str, assets_def: dg.AssetsDefinition, keys: Iterable[dg.AssetKey]
) -> tuple[str, ...]:
    """The SageMaker steps a Dagster step stands for: its assets' STEP_TAG, then its checks'
    CHECK_STEPS_METADATA, in that order, without repeats."""
    found: list[str] = []
    for key in keys:
        step = (assets_def.tags_by_key.get(key) or {}).get(STEP_TAG)
        if not step:
            raise DefinitionError(
                f"step {name}: asset {key.to_user_string()} has no {STEP_TAG} tag saying which "
                f"SageMaker step it stands for (tags={{{STEP_TAG!r}: 'AbaloneTrain'}}, ...)"
            )
        found.append(step)
    for spec in assets_def.check_specs:
        steps = _check_steps((spec.metadata or {}).get(CHECK_STEPS_METADATA))
        if not steps:
            raise DefinitionError(
                f"step {name}: check {spec.key.name} has no {CHECK_STEPS_METADATA} metadata "
                "saying which SageMaker steps it stands for "
                f"(metadata={{{CHECK_STEPS_METADATA!r}: ['AbaloneMSECond', 'AbaloneMSEFail']}})"
            )
        found += steps
    unknown = [s for s in found if s not in SAGEMAKER_STEPS]
    if unknown:
        raise DefinitionError(
            f"step {name}: {', '.join(dict.fromkeys(unknown))} is not a step of the SageMaker "
            f"abalone pipeline ({', '.join(SAGEMAKER_STEPS)})"
        )
    return tuple(dict.fromkeys(found))


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
                sagemaker_steps=_sagemaker_steps(name, assets_def, keys),
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


def artifact_type(defs: dg.Definitions, key: dg.AssetKey) -> str:
    """SageMaker lineage's entity type for an asset: Model or DataSet."""
    kinds = defs.resolve_asset_graph().get(key).kinds
    return "Model" if kinds & _MODEL_KINDS else "DataSet"
