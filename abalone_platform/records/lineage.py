"""Lineage of a model package version, from the Dagster event log and the MLflow registry.

Every materialization records the exact upstream versions its step consumed (the `upstream`
metadata entry: asset -> run id and sha256, see defs/shared/upstream.py). Following those from
the version's model_package materialization gives the exact artifacts behind it, even when steps
ran in different runs; each artifact's uri and sha256 come from its own materialization metadata.
Materializations made before that entry existed fall back to Dagster's own record of what the
step read (`dagster/input_event_pointer/<asset>` tags), which names the latest materialization
at the time rather than the one the step chose.

Only what the table needs is read: the runs it names and the materializations its links name,
never an asset's whole history (see `_EventLog`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from abalone_platform.errors import LineageError
from abalone_platform.records.steps import Step, artifact_type, pipeline_steps
from abalone_platform.registry import (
    APPROVAL_TAG,
    BUNDLE_SHA256_TAG,
    RUN_ID_TAG,
    Registry,
    approval_history,
    get_version,
    is_complete,
)
from abalone_platform.storage.artifacts import (
    SHA256_KEY,
    UPSTREAM_KEY,
    URI_KEY,
    ArtifactRef,
    plain_metadata,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

POINTER_TAG = "dagster/input_event_pointer/"
LINK_RUN_ID = "run_id"  # an UPSTREAM_KEY link: {run_id, URI_KEY, SHA256_KEY}
MODEL_PACKAGE = dg.AssetKey("model_package")
DEPLOYABLE_MODEL = dg.AssetKey("deployable_model")
BATCH_PREDICTIONS = dg.AssetKey("batch_predictions")
NOT_RECORDED = "not recorded"
# (asset whose metadata names an outside file, row name, uri key, sha256 key)
_EXTERNAL_INPUTS = (
    ("train_split", "InputData", "input_data", "input_sha256"),
    ("batch_predictions", "BatchData", "batch_data", "batch_sha256"),
)
_PAGE = 100
# A run's own event log and the asset index hold the same event with the same timestamp (one
# insert statement writes both); the window only has to absorb how a storage rounds it.
_SAME_EVENT_WINDOW_S = 1.0


@dataclass(frozen=True)
class Materialization:
    """One materialization as the asset index records it (``storage_id`` is the index's)."""

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

    @property
    def chain(self) -> dict[str, dict[str, str]] | None:
        """What it was made from (UPSTREAM_KEY), or None when it predates that entry."""
        chain = self.metadata.get(UPSTREAM_KEY)
        return chain if isinstance(chain, dict) else None

    @property
    def sha256(self) -> Any:
        return self.metadata.get(SHA256_KEY)


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


@dataclass(frozen=True)
class _Registered:
    """The version as MLflow records it, and the Dagster run that registered it."""

    mv: ModelVersion
    number: int
    run_id: str

    @property
    def status(self) -> str:
        return self.mv.tags.get(APPROVAL_TAG, "")

    @property
    def bundle_sha256(self) -> str | None:
        return self.mv.tags.get(BUNDLE_SHA256_TAG)


def _metadata(event: dg.AssetMaterialization) -> dict[str, Any]:
    return plain_metadata(event.metadata)


def _from_record(record: dg.EventLogRecord) -> Materialization:
    event = record.asset_materialization
    return Materialization(
        key=event.asset_key,
        storage_id=record.storage_id,
        run_id=record.run_id,
        timestamp=record.timestamp,
        metadata=_metadata(event),
        tags=dict(event.tags or {}),
    )


class _EventLog:
    """The materializations lineage reads, each read once (the cache lives for one call).

    Rows carry the asset index's storage ids (Dagster's input pointers hold those, and rows are
    de-duplicated by them), so every Materialization here comes from the index, read through
    AssetRecordsFilter: by storage id for a pointer, by time for a run's own materializations.
    A run's materializations are found with ``get_records_for_run``, but those records cannot be
    used as they are: with the default run-sharded SQLite storage a run's event log numbers its
    events separately from the index (the same event is e.g. 14 in its run and 17 in the
    index). The index has no run filter, so each is looked up there by its timestamp (both
    copies are written by one insert statement) and run id: that reads the asset's
    materializations of those few moments, not its history.
    """

    def __init__(self, instance: dg.DagsterInstance, keys: list[dg.AssetKey]):
        self.instance = instance
        self._keys = keys
        self._run_records: dict[str, list[dg.EventLogRecord]] = {}
        self._in_run: dict[tuple[str, dg.AssetKey], list[Materialization]] = {}
        self._by_storage_id: dict[int, Materialization] = {}

    def fetch(
        self, records_filter: dg.AssetRecordsFilter, *, ascending: bool = False
    ) -> Iterator[Materialization]:
        """The index's materializations ``records_filter`` selects, a page at a time (a caller
        that stops early reads no further page)."""
        cursor = None
        while True:
            result = self.instance.fetch_materializations(
                records_filter, limit=_PAGE, cursor=cursor, ascending=ascending
            )
            for record in result.records:
                mat = _from_record(record)
                yield self._by_storage_id.setdefault(mat.storage_id, mat)
            if not result.has_more:
                return
            cursor = result.cursor

    def _records_of_run(self, run_id: str) -> list[dg.EventLogRecord]:
        """The run's own materialization records (its event log's numbering, not the index's)."""
        if run_id not in self._run_records:
            self._run_records[run_id] = list(
                self.instance.get_records_for_run(
                    run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                ).records
            )
        return self._run_records[run_id]

    def _run_records_of(self, run_id: str, key: dg.AssetKey) -> list[dg.EventLogRecord]:
        return [r for r in self._records_of_run(run_id) if r.asset_key == key]

    def _in_run_of(self, run_id: str, key: dg.AssetKey) -> list[Materialization]:
        if (run_id, key) not in self._in_run:
            times = {r.timestamp for r in self._run_records_of(run_id, key)}
            found = sorted(
                (
                    m
                    for m in self._by_storage_id.values()
                    if m.key == key and m.run_id == run_id and m.timestamp in times
                ),
                key=lambda m: -m.storage_id,
            )
            if {m.timestamp for m in found} != times:  # not all read yet (the batch scan may)
                window = dg.AssetRecordsFilter(
                    asset_key=key,
                    after_timestamp=min(times) - _SAME_EVENT_WINDOW_S,
                    before_timestamp=max(times) + _SAME_EVENT_WINDOW_S,
                )
                found = [
                    m for m in self.fetch(window) if m.run_id == run_id and m.timestamp in times
                ]
            self._in_run[(run_id, key)] = found  # newest first, as the index returns them
        return self._in_run[(run_id, key)]

    def in_run(
        self, run_id: str, keys: tuple[dg.AssetKey, ...] | None = None
    ) -> list[Materialization]:
        return [m for key in keys or self._keys for m in self._in_run_of(run_id, key)]

    def by_storage_id(self, key: dg.AssetKey, storage_id: int) -> Materialization:
        if storage_id not in self._by_storage_id:
            list(self.fetch(dg.AssetRecordsFilter(asset_key=key, storage_ids=[storage_id])))
        mat = self._by_storage_id.get(storage_id)
        if mat is None or mat.key != key:
            raise LineageError(
                f"{key.to_user_string()} materialization {storage_id} is recorded as an input "
                "but is not in this Dagster instance (was its event log wiped?)"
            )
        return mat

    def linked(self, mat: Materialization, name: str, link: dict[str, str]) -> Materialization:
        """The materialization an UPSTREAM_KEY link of ``mat`` names: ``name`` of its run."""
        key = dg.AssetKey.from_user_string(name)
        match = [
            m for m in self.in_run(link[LINK_RUN_ID], (key,)) if m.sha256 == link.get(SHA256_KEY)
        ]
        if not match:
            raise LineageError(
                f"{mat.key.to_user_string()} (run {mat.run_id}) was made from the {name} of "
                f"run {link[LINK_RUN_ID]}, which is not in this Dagster instance (was its event "
                "log wiped?)"
            )
        return match[0]

    def inputs_of(self, mat: Materialization) -> dict[int, Materialization]:
        """The materializations ``mat``'s step consumed, by storage id."""
        chain = mat.chain
        if chain is None:
            return {
                storage_id: self.by_storage_id(key, storage_id)
                for key, storage_id in mat.pointers.items()
            }
        found: dict[int, Materialization] = {}
        for name, link in chain.items():
            upstream = self.linked(mat, name, link)
            found[upstream.storage_id] = upstream
        return found

    def code_version(self, run_id: str, outputs: list[Materialization]) -> str:
        # Steps of one run run the same code; not every asset records it, so take the run's.
        # Only metadata is wanted here, so the run's own records do (no index lookup).
        run_metadata = (
            _metadata(r.asset_materialization)
            for key in self._keys
            for r in reversed(self._run_records_of(run_id, key))
        )
        for metadata in (*(m.metadata for m in outputs), *run_metadata):
            if metadata.get("code_version"):
                return str(metadata["code_version"])
        return NOT_RECORDED


# --- the steps of model_package_lineage --------------------------------------------------------


def _registered_version(registry: Registry, version: str | int) -> _Registered:
    """The version and the Dagster run that registered it (its RUN_ID_TAG)."""
    mv = get_version(registry, version)
    number = int(mv.version)
    run_id = mv.tags.get(RUN_ID_TAG)
    if not run_id:
        raise LineageError(
            f"version {number} has no {RUN_ID_TAG} tag; it was not registered by the pipeline"
        )
    return _Registered(mv=mv, number=number, run_id=run_id)


def _model_package_materialization(log: _EventLog, version: _Registered) -> Materialization:
    """The model_package materialization of the version, in the run that registered it."""
    for mat in log.in_run(version.run_id, (MODEL_PACKAGE,)):
        if int(mat.metadata.get("model_package_version", -1)) == version.number:
            return mat
    raise LineageError(
        f"version {version.number} was registered by Dagster run {version.run_id}, but this "
        f"Dagster instance ({log.instance.root_directory}) has no model_package materialization "
        "of it in that run; point DAGSTER_HOME at the instance the pipeline ran in"
    )


def _registered_bundle(log: _EventLog, version: _Registered) -> Materialization | None:
    """The deployable_model materialization the version's BUNDLE_SHA256_TAG names.

    Its registering run's own bundle when it has that sha256 (a full run registers the bundle it
    built); else the newest one with that sha256 made before the version was registered (its
    step read an existing one), read newest first and no further than the match.
    """
    sha = version.bundle_sha256
    own = [m for m in log.in_run(version.run_id, (DEPLOYABLE_MODEL,)) if m.sha256 == sha]
    if own:
        return own[0]
    registered_at = version.mv.creation_timestamp / 1000 + _SAME_EVENT_WINDOW_S
    earlier = dg.AssetRecordsFilter(asset_key=DEPLOYABLE_MODEL, before_timestamp=registered_at)
    return next((m for m in log.fetch(earlier) if m.sha256 == sha), None)


def _ancestors(log: _EventLog, start: Materialization) -> dict[int, Materialization]:
    seen: dict[int, Materialization] = {start.storage_id: start}
    todo = [start]
    while todo:
        for storage_id, mat in log.inputs_of(todo.pop()).items():
            if storage_id not in seen:
                seen[storage_id] = mat
                todo.append(mat)
    return seen


def _materializations_behind(
    log: _EventLog, version: _Registered, missing: list[str]
) -> dict[int, Materialization]:
    """The version's model_package materialization and everything it was made from.

    When the run was stopped after MLflow registered the version and before Dagster recorded the
    materialization, show what is there (the registered bundle's ancestry) and say what is not.
    """
    try:
        return _ancestors(log, _model_package_materialization(log, version))
    except LineageError as exc:
        bundle = _registered_bundle(log, version)
        if bundle is None:
            raise
        missing.append(str(exc))
        return _ancestors(log, bundle)


def _used_bundle(log: _EventLog, mat: Materialization, bundle: Materialization) -> bool:
    """Whether batch ``mat``'s step read ``bundle``; only a batch whose own record names the
    bundle (its link's run and sha256, or its input pointer) has its inputs resolved."""
    chain = mat.chain
    if chain is None:
        named = bundle.storage_id in mat.pointers.values()
    else:
        link = chain.get(DEPLOYABLE_MODEL.to_user_string()) or {}
        named = link.get(LINK_RUN_ID) == bundle.run_id and link.get(SHA256_KEY) == bundle.sha256
    return named and bundle.storage_id in log.inputs_of(mat)


def _add_batch_transforms(log: _EventLog, found: dict[int, Materialization]) -> None:
    """Add every batch transform that used the version's bundle, with its ancestry.

    Transform is not upstream of the model package, so nothing behind the version names its
    batches; they are found from the bundle's side. A transform can only read a bundle that was
    already recorded, so its batch comes after the bundle in the index (``after_storage_id``);
    earlier batches are never read. Later ones all are: a transform-only run may use any
    recorded bundle, so no later point rules further batches out, and the index can only select
    by the batch's input pointer tag, which names the newest bundle at the time, not
    necessarily the one the step read (its UPSTREAM_KEY link does).
    """
    bundle = next((m for m in found.values() if m.key == DEPLOYABLE_MODEL), None)
    if bundle is None:
        return
    later = dg.AssetRecordsFilter(asset_key=BATCH_PREDICTIONS, after_storage_id=bundle.storage_id)
    for mat in log.fetch(later):
        if _used_bundle(log, mat, bundle):
            found.setdefault(mat.storage_id, mat)
            found.update(_ancestors(log, mat))


def _step_runs(
    log: _EventLog, found: dict[int, Materialization], steps: list[Step]
) -> list[_StepRun]:
    """The found materializations grouped by the step run that made them, oldest step first."""
    by_key = {key: step for step in steps for key in step.outputs}
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
    return sorted(
        step_runs.values(),
        key=lambda s: (order[s.step.name], min(m.timestamp for m in s.outputs)),
    )


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
    step_run: _StepRun, code: str, defs: dg.Definitions, direction: str, mat: Materialization
) -> LineageRow:
    """A row for an artifact a step read or wrote, identified by its materialization."""
    ref = ArtifactRef.from_metadata(mat.metadata)
    if ref is None:  # records one of uri and sha256 at most: show what it records
        ref = ArtifactRef(
            uri=str(mat.metadata.get(URI_KEY, "")), sha256=str(mat.metadata.get(SHA256_KEY, ""))
        )
    return _row(
        step_run,
        code,
        direction=direction,
        name=mat.key.to_user_string(),
        source=ref.uri,
        type_=artifact_type(defs, mat.key),
        sha256=ref.sha256,
        run_id=mat.run_id,
        storage_id=mat.storage_id,
    )


def _external_input_rows(step_run: _StepRun, code: str) -> list[LineageRow]:
    """Rows for the outside files a step read (the input data, a batch), from its outputs'
    metadata."""
    rows: list[LineageRow] = []
    for asset_name, row_name, uri_key, sha_key in _EXTERNAL_INPUTS:
        source = next((m for m in step_run.outputs if m.key.to_user_string() == asset_name), None)
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
    return rows


def _approval_row(
    step_run: _StepRun, code: str, registry: Registry, version: _Registered
) -> LineageRow:
    last = approval_history(version.mv)[-1]
    return _row(
        step_run,
        code,
        direction="Input",
        name=f"{registry.name}-{version.number}-{version.status}",
        source=f"{last['to']} by {last['by']} at {last['at']}",
        type_="Approval",
        sha256="",
        run_id=step_run.run_id,
        lineage_type="action",
    )


def _model_group_row(
    step_run: _StepRun, code: str, registry: Registry, version: _Registered
) -> LineageRow:
    return _row(
        step_run,
        code,
        direction="Output",
        name=registry.name,
        source=f"models:/{registry.name}/{version.number} ({registry.tracking_uri})",
        type_="ModelGroup",
        sha256="",
        run_id=step_run.run_id,
        association="AssociatedWith",
        lineage_type="context",
    )


def _step_rows(
    log: _EventLog,
    defs: dg.Definitions,
    registry: Registry,
    version: _Registered,
    step_run: _StepRun,
    *,
    registers: bool,
) -> list[LineageRow]:
    """One step run's rows: outside files read, artifacts read, the approval (the registering
    step), artifacts written, the model group (the registering step)."""
    code = log.code_version(step_run.run_id, step_run.outputs)
    inputs: dict[int, Materialization] = {}
    for out in step_run.outputs:
        inputs.update(log.inputs_of(out))
    rows = _external_input_rows(step_run, code)
    rows += [
        _artifact_row(step_run, code, defs, "Input", mat)
        for mat in sorted(inputs.values(), key=lambda m: m.key.to_user_string())
    ]
    if registers:
        rows.append(_approval_row(step_run, code, registry, version))
    rows += [_artifact_row(step_run, code, defs, "Output", mat) for mat in step_run.outputs]
    if registers:
        rows.append(_model_group_row(step_run, code, registry, version))
    return rows


def _input_file(rows: list[LineageRow]) -> dict[str, str]:
    """The input data file of the newest processing step in the table (InputData row)."""
    input_file: dict[str, str] = {}
    for row in rows:
        if row.name == "InputData":
            input_file = {"uri": row.source, "sha256": row.sha256}
    return input_file


def model_package_lineage(
    instance: dg.DagsterInstance, defs: dg.Definitions, registry: Registry, version: str | int
) -> dict[str, Any]:
    """The lineage table of one model package version: a row per input and output of each step
    (process, train, evaluate, create model, transform, register), oldest step first."""
    registered = _registered_version(registry, version)
    steps = pipeline_steps(defs)
    log = _EventLog(instance, [key for step in steps for key in step.outputs])
    missing: list[str] = []
    if not is_complete(registered.mv):
        missing.append(
            f"the registration did not complete: Dagster run {registered.run_id} was stopped "
            "while registering this version"
        )
    found = _materializations_behind(log, registered, missing)
    _add_batch_transforms(log, found)
    ordered = _step_runs(log, found, steps)
    package_step = package_step_name(steps)
    rows = [
        row
        for step_run in ordered
        for row in _step_rows(
            log, defs, registry, registered, step_run, registers=step_run.step.name == package_step
        )
    ]
    return {
        "model_package": {
            "name": registry.name,
            "version": registered.number,
            "approval_status": registered.status,
            "dagster_run_id": registered.run_id,
            "model_uri": f"models:/{registry.name}/{registered.number}",
            "bundle_sha256": registered.bundle_sha256,
        },
        "input_data": _input_file(rows),
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
