"""Lineage of a model package version, from the Dagster event log and the MLflow registry.

Every materialization records the exact upstream versions its step consumed (the `upstream`
metadata entry: asset -> run id and sha256, see defs/shared/upstream.py). Following those from
the version's model_package materialization gives the exact artifacts behind it, even when steps
ran in different runs; each artifact's uri and sha256 come from its own materialization metadata.
Materializations made before that entry existed fall back to Dagster's own record of what the
step read (`dagster/input_event_pointer/<asset>` tags), which names the latest materialization
at the time rather than the one the step chose.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from abalone_platform.errors import LineageError
from abalone_platform.records.steps import Step, artifact_type, pipeline_steps
from abalone_platform.registry import Registry, approval_history, get_version, is_complete

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

POINTER_TAG = "dagster/input_event_pointer/"
CHAIN_METADATA_KEY = "upstream"  # written by defs/shared/upstream.chain_metadata
MODEL_PACKAGE = dg.AssetKey("model_package")
DEPLOYABLE_MODEL = dg.AssetKey("deployable_model")
BATCH_PREDICTIONS = dg.AssetKey("batch_predictions")
NOT_RECORDED = "not recorded"
# (asset whose metadata names an outside file, row name, uri key, sha256 key)
_EXTERNAL_INPUTS = (
    ("train_split", "InputData", "input_data", "input_sha256"),
    ("batch_predictions", "BatchData", "batch_data", "batch_sha256"),
)


@dataclass(frozen=True)
class Materialization:
    key: dg.AssetKey
    storage_id: int
    run_id: str
    timestamp: float
    metadata: dict[str, Any]
    tags: dict[str, str]

    @property
    def pointers(self) -> dict[dg.AssetKey, int]:
        return {
            dg.AssetKey.from_user_string(name.removeprefix(POINTER_TAG)): int(value)
            for name, value in self.tags.items()
            if name.startswith(POINTER_TAG)
        }


@dataclass
class LineageRow:
    step: str
    sagemaker_type: str
    name: str
    source: str
    direction: str
    type: str
    association_type: str
    lineage_type: str
    sha256: str
    dagster_run_id: str
    code_version: str
    dagster_step: str
    step_run_id: str  # the run the step ran in (an input's dagster_run_id is its producer's)
    storage_id: int | None = None


@dataclass
class _StepRun:
    step: Step
    run_id: str
    outputs: list[Materialization] = field(default_factory=list)


def _from_record(record: dg.EventLogRecord) -> Materialization:
    event = record.asset_materialization
    return Materialization(
        key=event.asset_key,
        storage_id=record.storage_id,
        run_id=record.run_id,
        timestamp=record.timestamp,
        metadata={k: getattr(v, "value", v) for k, v in event.metadata.items()},
        tags=dict(event.tags or {}),
    )


class _EventLog:
    """Materializations read from the instance's asset index, each asset's queried once.

    Only the asset index is used: with the default SQLite storage a run's own event log numbers
    its events separately, and the input pointers hold the index's storage ids.
    """

    def __init__(self, instance: dg.DagsterInstance, keys: list[dg.AssetKey]):
        self.instance = instance
        self._keys = keys
        self._by_key: dict[dg.AssetKey, list[Materialization]] = {}

    def all_of(self, key: dg.AssetKey) -> list[Materialization]:
        if key not in self._by_key:
            found: list[Materialization] = []
            cursor = None
            while True:
                result = self.instance.fetch_materializations(key, limit=500, cursor=cursor)
                found.extend(_from_record(r) for r in result.records)
                if not result.has_more:
                    break
                cursor = result.cursor
            self._by_key[key] = found
        return self._by_key[key]

    def by_storage_id(self, key: dg.AssetKey, storage_id: int) -> Materialization:
        for mat in self.all_of(key):
            if mat.storage_id == storage_id:
                return mat
        raise LineageError(
            f"{key.to_user_string()} materialization {storage_id} is recorded as an input "
            "but is not in this Dagster instance (was its event log wiped?)"
        )

    def in_run(
        self, run_id: str, keys: tuple[dg.AssetKey, ...] | None = None
    ) -> list[Materialization]:
        return [m for key in keys or self._keys for m in self.all_of(key) if m.run_id == run_id]

    def inputs_of(self, mat: Materialization) -> dict[int, Materialization]:
        """The materializations ``mat``'s step consumed, by storage id."""
        chain = mat.metadata.get(CHAIN_METADATA_KEY)
        if not isinstance(chain, dict):
            return {
                storage_id: self.by_storage_id(key, storage_id)
                for key, storage_id in mat.pointers.items()
            }
        found: dict[int, Materialization] = {}
        for name, link in chain.items():
            key = dg.AssetKey.from_user_string(name)
            match = [
                m
                for m in self.in_run(link["run_id"], (key,))
                if m.metadata.get("sha256") == link.get("sha256")
            ]
            if not match:
                raise LineageError(
                    f"{mat.key.to_user_string()} (run {mat.run_id}) was made from the {name} of "
                    f"run {link['run_id']}, which is not in this Dagster instance (was its event "
                    "log wiped?)"
                )
            found[match[0].storage_id] = match[0]
        return found

    def code_version(self, run_id: str, outputs: list[Materialization]) -> str:
        # Steps of one run run the same code; not every asset records it, so take the run's.
        for mat in [*outputs, *self.in_run(run_id)]:
            if mat.metadata.get("code_version"):
                return str(mat.metadata["code_version"])
        return NOT_RECORDED


def _model_package_materialization(log: _EventLog, run_id: str, version: int) -> Materialization:
    for mat in log.in_run(run_id, (MODEL_PACKAGE,)):
        if int(mat.metadata.get("model_package_version", -1)) == (version):
            return mat
    raise LineageError(
        f"version {version} was registered by Dagster run {run_id}, but this Dagster instance "
        f"({log.instance.root_directory}) has no model_package materialization of it in that "
        "run; point DAGSTER_HOME at the instance the pipeline ran in"
    )


def _ancestors(log: _EventLog, start: Materialization) -> dict[int, Materialization]:
    seen: dict[int, Materialization] = {start.storage_id: start}
    todo = [start]
    while todo:
        for storage_id, mat in log.inputs_of(todo.pop()).items():
            if storage_id not in seen:
                seen[storage_id] = mat
                todo.append(mat)
    return seen


def _registered_bundle(log: _EventLog, mv: ModelVersion) -> Materialization | None:
    """The deployable_model materialization a version's tags name (its bundle sha256)."""
    sha = mv.tags.get("bundle_sha256")
    return next((m for m in log.all_of(DEPLOYABLE_MODEL) if m.metadata.get("sha256") == sha), None)


def _row(
    step_run: _StepRun,
    code: str,
    *,
    direction: str,
    name: str,
    source: str,
    type_: str,
    sha256: str,
    run_id: str,
    association: str | None = None,
    lineage_type: str = "artifact",
    storage_id: int | None = None,
) -> LineageRow:
    return LineageRow(
        step=step_run.step.sagemaker_name,
        sagemaker_type=step_run.step.sagemaker_type,
        name=name,
        source=source,
        direction=direction,
        type=type_,
        association_type=association or ("ContributedTo" if direction == "Input" else "Produced"),
        lineage_type=lineage_type,
        sha256=sha256,
        dagster_run_id=run_id,
        code_version=code,
        dagster_step=step_run.step.name,
        step_run_id=step_run.run_id,
        storage_id=storage_id,
    )


def _artifact_row(
    step_run: _StepRun, code: str, defs: Any, direction: str, mat: Materialization
) -> LineageRow:
    """A row for an artifact a step read or wrote, identified by its materialization."""
    return _row(
        step_run,
        code,
        direction=direction,
        name=mat.key.to_user_string(),
        source=str(mat.metadata.get("uri", "")),
        type_=artifact_type(defs, mat.key),
        sha256=str(mat.metadata.get("sha256", "")),
        run_id=mat.run_id,
        storage_id=mat.storage_id,
    )


def model_package_lineage(
    instance: dg.DagsterInstance, defs: dg.Definitions, registry: Registry, version: str | int
) -> dict[str, Any]:
    """The lineage table of one model package version: a row per input and output of each step
    (process, train, evaluate, create model, transform, register), oldest step first."""
    mv = get_version(registry, version)
    number = int(mv.version)
    run_id = mv.tags.get("dagster_run_id")
    if not run_id:
        raise LineageError(
            f"version {number} has no dagster_run_id tag; it was not registered by the pipeline"
        )
    steps = pipeline_steps(defs)
    by_key = {key: step for step in steps for key in step.outputs}
    log = _EventLog(instance, list(by_key))
    missing: list[str] = []
    if not is_complete(mv):
        missing.append(
            f"the registration did not complete: Dagster run {run_id} was stopped while "
            "registering this version"
        )
    try:
        package = _model_package_materialization(log, run_id, number)
        found = _ancestors(log, package)
    except LineageError as exc:
        # The run was stopped after MLflow registered the version and before Dagster recorded
        # the materialization: show what is there (the bundle's ancestry), say what is not.
        bundle = _registered_bundle(log, mv)
        if bundle is None:
            raise
        missing.append(str(exc))
        found = _ancestors(log, bundle)

    bundle = next((m for m in found.values() if m.key == DEPLOYABLE_MODEL), None)
    if bundle is not None:
        # Transform is not upstream of the model package: find every batch that used its bundle.
        for mat in log.all_of(BATCH_PREDICTIONS):
            if bundle.storage_id in log.inputs_of(mat):
                found.setdefault(mat.storage_id, mat)
                found.update(_ancestors(log, mat))

    step_runs: dict[tuple[str, str], _StepRun] = {}
    for mat in found.values():
        step = by_key[mat.key]
        step_runs.setdefault((step.name, mat.run_id), _StepRun(step, mat.run_id))
    for step_run in step_runs.values():
        # A multi-asset step's other outputs of the same run belong to its record too.
        step_run.outputs = log.in_run(step_run.run_id, step_run.step.outputs)
        if step_run.step.name == "batch_predictions":
            step_run.outputs = [m for m in step_run.outputs if m.storage_id in found]

    order = {step.name: i for i, step in enumerate(steps)}
    ordered = sorted(
        step_runs.values(),
        key=lambda s: (order[s.step.name], min(m.timestamp for m in s.outputs)),
    )
    status = mv.tags.get("ModelApprovalStatus", "")
    rows: list[LineageRow] = []
    input_file: dict[str, str] = {}
    for step_run in ordered:
        code = log.code_version(step_run.run_id, step_run.outputs)
        inputs: dict[int, Materialization] = {}
        for out in step_run.outputs:
            inputs.update(log.inputs_of(out))
        for asset_name, row_name, uri_key, sha_key in _EXTERNAL_INPUTS:
            source = next(
                (m for m in step_run.outputs if m.key.to_user_string() == asset_name), None
            )
            if source is not None and source.metadata.get(sha_key):
                rows.append(
                    _row(
                        step_run,
                        code,
                        direction="Input",
                        name=row_name,
                        source=str(source.metadata.get(uri_key, "")),
                        type_="DataSet",
                        sha256=str(source.metadata[sha_key]),
                        run_id=step_run.run_id,
                    )
                )
                if row_name == "InputData":
                    input_file = {"uri": rows[-1].source, "sha256": rows[-1].sha256}
        for mat in sorted(inputs.values(), key=lambda m: m.key.to_user_string()):
            rows.append(_artifact_row(step_run, code, defs, "Input", mat))
        if step_run.step.name == package_step_name(steps):
            last = approval_history(mv)[-1]
            rows.append(
                _row(
                    step_run,
                    code,
                    direction="Input",
                    name=f"{registry.name}-{number}-{status}",
                    source=f"{last['to']} by {last['by']} at {last['at']}",
                    type_="Approval",
                    sha256="",
                    run_id=step_run.run_id,
                    lineage_type="action",
                )
            )
        for mat in step_run.outputs:
            rows.append(_artifact_row(step_run, code, defs, "Output", mat))
        if step_run.step.name == package_step_name(steps):
            rows.append(
                _row(
                    step_run,
                    code,
                    direction="Output",
                    name=registry.name,
                    source=f"models:/{registry.name}/{number} ({registry.tracking_uri})",
                    type_="ModelGroup",
                    sha256="",
                    run_id=step_run.run_id,
                    association="AssociatedWith",
                    lineage_type="context",
                )
            )

    return {
        "model_package": {
            "name": registry.name,
            "version": number,
            "approval_status": status,
            "dagster_run_id": run_id,
            "model_uri": f"models:/{registry.name}/{number}",
            "bundle_sha256": mv.tags.get("bundle_sha256"),
        },
        "input_data": input_file,
        "missing": missing,
        "steps": [
            {
                "step": s.step.sagemaker_name,
                "sagemaker_type": s.step.sagemaker_type,
                "dagster_step": s.step.name,
                "dagster_run_id": s.run_id,
                "code_version": log.code_version(s.run_id, s.outputs),
            }
            for s in ordered
        ],
        "rows": [asdict(r) for r in rows],
    }


def package_step_name(steps: list[Step]) -> str:
    return next(s.name for s in steps if MODEL_PACKAGE in s.outputs)
