"""The model registry on MLflow, in one Dagster-free module: statuses, the client, version
lookup, "require Approved", the `approved` alias rule, registration and status transitions.

The approval status lives in the version's ModelApprovalStatus tag (where model_package puts it)
and its history in a JSON tag beside it, so MLflow alone holds the whole record. The `approved`
alias is derived from the statuses (`sync_approved_alias`): model_package calls it when it
registers a version, and every command here calls it too.

Writes that must not interleave (registration, a status change and the alias that follows it)
run under `registry_lock`: a file lock beside an embedded SQLite registry, a lock entry in the
registry itself on a tracking server. A status change is a compare-and-set: what it read is
checked again under the lock, so of two conflicting changes exactly one is made.

The embedded SQLite registry is created (or upgraded) all-or-nothing: built under the lock in a
temporary file beside the target and renamed into place. A database left half-made by an older
version, or damaged since, is detected and reported with what to do, never silently reused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import getpass
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abalone_platform.errors import (
    ConcurrentChangeError,
    DamagedRegistryError,
    RegistryError,
    TransitionError,
    UnknownVersionError,
)
from abalone_platform.faults import fault_point
from abalone_platform.settings import tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

# The registry's names, for the pipeline (defs.registry, defs.deployment) and the CLI alike.
MODEL_PACKAGE_GROUP = "AbaloneModelPackageGroupName"
APPROVAL_TAG = "ModelApprovalStatus"
APPROVED_ALIAS = "approved"
HISTORY_TAG = "approval_history"
# Set to "incomplete" when a version is created and to "complete" once everything it needs is
# written; a version whose registering run was killed in between stays visibly incomplete.
# Versions registered before this tag existed have none and count as complete.
REGISTRATION_TAG = "registration"
INCOMPLETE = "incomplete"
COMPLETE = "complete"
# Tags model_package writes on a version and the readers here (and lineage) rely on.
RUN_ID_TAG = "dagster_run_id"
BUNDLE_URI_TAG = "bundle_uri"
BUNDLE_SHA256_TAG = "bundle_sha256"
MSE_TAG = "mse"
# What a version's files are: an MLflow pyfunc model (models-from-code), or, for versions
# registered before that format (no tag), the bare bundle only this project's loader reads.
MODEL_FORMAT_TAG = "model_format"
PYFUNC_FORMAT = "mlflow_pyfunc"
LEGACY_FORMAT = "bundle (legacy)"
# The MLflow experiment whose runs hold the registered versions' files, metrics and parameters.
EXPERIMENT_NAME = "abalone_platform"


class ModelApprovalStatus(str, Enum):
    """SageMaker's ModelApprovalStatus: the parameter's values and a version's status tag.

    A str Enum (not StrEnum): Dagster renders it as a config enum of these names.
    """

    PendingManualApproval = "PendingManualApproval"
    Approved = "Approved"
    Rejected = "Rejected"


PENDING = ModelApprovalStatus.PendingManualApproval.value
APPROVED = ModelApprovalStatus.Approved.value
REJECTED = ModelApprovalStatus.Rejected.value

# The one place that says which status changes a person may make.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({APPROVED, REJECTED}),
    APPROVED: frozenset({REJECTED}),
    REJECTED: frozenset(),
}


@dataclass(frozen=True)
class Registry:
    client: MlflowClient
    name: str
    tracking_uri: str


def sqlite_path(uri: str) -> Path | None:
    """The database file of an embedded ``sqlite:///`` registry; None for any other backend."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///"))


@contextlib.contextmanager
def _file_lock(database: Path) -> Iterator[None]:
    """An exclusive lock on ``<database>.lock``; the kernel drops it if the holder dies."""
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# A registered model whose existence is the lock on a shared (server) registry: creating a
# registered model is atomic on every MLflow backend (a unique name), so exactly one of two
# writers gets it. A holder killed before releasing it leaves it behind: a lock this process has
# watched unchanged (same creation time) for SERVER_LOCK_STALE_S is taken over. The age is
# measured on this process's own monotonic clock, never by comparing with the server's, and
# the take-over itself is serialized by a second lock, so two waiters never both break it.
LOCK_MODEL_SUFFIX = ".registry-lock"
SERVER_LOCK_TIMEOUT_S = 180.0
SERVER_LOCK_STALE_S = 120.0


def _error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", ""))


def _try_create(client: MlflowClient, name: str, holder: str, what: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            name, tags={"holder": holder}, description=f"Held while {holder} {what}; not a model."
        )
        return True
    except MlflowException as exc:
        # ALREADY_EXISTS: someone holds it. DOES_NOT_EXIST: a server's create lost a race with
        # the holder's release (it saw the name taken, then found it gone). Neither created it;
        # both mean "try again".
        code = _error_code(exc)
        if "RESOURCE_ALREADY_EXISTS" not in code and "RESOURCE_DOES_NOT_EXIST" not in code:
            raise
        return False


def _break_stale(client: MlflowClient, lock_name: str, created: int, holder: str) -> None:
    """Delete ``lock_name`` if it is still the lock created at ``created`` (under a breaker
    lock, so that a fresh lock taken meanwhile by another process is never deleted)."""
    from mlflow.exceptions import MlflowException

    breaker = lock_name + ".breaker"
    if not _try_create(client, breaker, holder, f"takes over the stale {lock_name}"):
        return
    try:
        with contextlib.suppress(MlflowException):
            if client.get_registered_model(lock_name).creation_timestamp == created:
                client.delete_registered_model(lock_name)
    finally:
        with contextlib.suppress(MlflowException):
            client.delete_registered_model(breaker)


@contextlib.contextmanager
def _server_lock(client: MlflowClient, name: str) -> Iterator[None]:
    from mlflow.exceptions import MlflowException

    lock_name = name + LOCK_MODEL_SUFFIX
    holder = f"{socket.gethostname()} pid {os.getpid()}"
    start = time.monotonic()
    # creation timestamp of a lock (or breaker) -> when this process first saw it
    first_seen: dict[tuple[str, int], float] = {}
    while not _try_create(client, lock_name, holder, f"changes {name}"):
        now = time.monotonic()
        for watched in (lock_name, lock_name + ".breaker"):
            try:
                held = client.get_registered_model(watched)
            except MlflowException:
                continue  # released meanwhile
            seen = first_seen.setdefault((watched, held.creation_timestamp), now)
            if now - seen > SERVER_LOCK_STALE_S:
                if watched == lock_name:
                    _break_stale(client, lock_name, held.creation_timestamp, holder)
                else:  # a breaker whose holder died while breaking
                    with contextlib.suppress(MlflowException):
                        client.delete_registered_model(watched)
        if now - start > SERVER_LOCK_TIMEOUT_S:
            raise RegistryError(
                f"the registry at {client.tracking_uri} stayed locked ({lock_name}) for "
                f"{SERVER_LOCK_TIMEOUT_S:.0f} s; try again"
            )
        time.sleep(0.05)  # polling a lock, not timing a result
    try:
        yield
    finally:
        with contextlib.suppress(MlflowException):
            client.delete_registered_model(lock_name)


@contextlib.contextmanager
def registry_lock(registry: Registry) -> Iterator[None]:
    """Serialize writers of the registry across processes (and machines, on a server)."""
    database = sqlite_path(registry.tracking_uri)
    if database is not None:
        with _file_lock(database):
            yield
    else:
        with _server_lock(registry.client, registry.name):
            yield


@functools.cache
def _head_revision() -> str:
    # Read from MLflow's migration scripts once per process (it parses them all).
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def _inspect_sqlite(database: Path) -> tuple[str | None, str | None]:
    """(schema revision, what is wrong or None) of an existing registry database."""
    try:
        # Read-only: looking must never change (or create) anything.
        with contextlib.closing(
            sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                return None, f"SQLite reports it corrupt ({check})"
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
            if leftovers:
                return None, f"a schema migration was interrupted (table {leftovers[0]} exists)"
            if "alembic_version" not in tables or "registered_models" not in tables:
                return None, "it is not a complete MLflow database (schema tables missing)"
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        return None, f"SQLite cannot read it ({exc})"
    if row is None:
        return None, "it records no schema revision (its creation was interrupted)"
    return row[0], None


def _damaged(database: Path, problem: str) -> DamagedRegistryError:
    return DamagedRegistryError(
        f"the MLflow registry database {database} is damaged: {problem}. It was not used. "
        "A registry whose first creation was interrupted holds no versions: move it aside "
        f"(mv {database} {database}.damaged) and run again to create a new one; otherwise "
        "restore it from a backup"
    )


def _build_beside(database: Path, source: Path | None) -> None:
    """Create (``source`` None) or upgrade a copy of ``source`` in a temporary file beside
    ``database``, then rename it into place. Called under the registry's lock."""
    from mlflow.store.db.utils import _upgrade_db, create_sqlalchemy_engine
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    # Leftovers of a creator that was killed: no process holds the lock, so none is in use.
    for stale in database.parent.glob(f".{database.name}.*.building*"):
        stale.unlink(missing_ok=True)
    tmp = database.with_name(f".{database.name}.{os.getpid()}.building")
    try:
        if source is not None:
            with (
                contextlib.closing(sqlite3.connect(source)) as src,
                contextlib.closing(sqlite3.connect(tmp)) as dst,
            ):
                src.backup(dst)
        engine = create_sqlalchemy_engine(f"sqlite:///{tmp}")
        try:
            if source is None:
                # mlflow.store.db.utils._initialize_tables, with a fault point between its two
                # halves (where a killed first run used to leave a half-migrated registry).
                InitialBase.metadata.create_all(engine)
            fault_point("registry.migrate")
            _upgrade_db(engine)
        finally:
            engine.dispose()
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        fault_point("registry.publish")
        os.replace(tmp, database)
        directory = os.open(database.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except Exception as exc:
        what = "create" if source is None else "upgrade"
        raise RegistryError(
            f"could not {what} the MLflow registry database {database}: {exc}. Nothing was "
            f"changed{'' if source is None else ' (the existing database is as it was)'}; "
            "fix the cause (e.g. free disk space) and run again"
        ) from exc
    finally:
        for leftover in database.parent.glob(f"{tmp.name}*"):
            leftover.unlink(missing_ok=True)


def prepare_sqlite_registry(database: Path) -> None:
    """Make ``database`` a complete MLflow registry at the installed schema, or refuse.

    A missing database is created, an older schema upgraded, both all-or-nothing; a damaged one
    raises DamagedRegistryError. Cheap when the database is already right (one read-only look).
    """
    with _file_lock(database):
        if not database.exists():
            _build_beside(database, source=None)
            return
        revision, problem = _inspect_sqlite(database)
        if problem is not None:
            raise _damaged(database, problem)
        if revision != _head_revision():
            _build_beside(database, source=database)


# pg_advisory_lock key held while MLflow checks (and on a new database creates) its schema.
_POSTGRES_SCHEMA_LOCK = 0x4162616C6F6E65  # "Abalone"


@contextlib.contextmanager
def _postgres_schema_lock(uri: str) -> Iterator[None]:
    """On a PostgreSQL registry, a session advisory lock around MLflow's store start-up: its
    schema creation on a new database is not safe against itself, and several runs reaching
    registration at once (four queued runs, three of them cache hits) failed with a duplicate
    key on `CREATE TABLE alembic_version`. The server drops the lock if the holder dies."""
    if not uri.startswith(("postgresql:", "postgresql+")):
        yield
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(uri, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(
                text("SELECT pg_advisory_lock(:key)"), {"key": _POSTGRES_SCHEMA_LOCK}
            )
            try:
                yield
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _POSTGRES_SCHEMA_LOCK}
                )
    finally:
        engine.dispose()


def open_registry(uri: str | None = None, name: str = MODEL_PACKAGE_GROUP) -> Registry:
    """The model package group ``name`` in the registry at ``uri`` (default:
    MLFLOW_TRACKING_URI, else SQLite in ABALONE_HOME), with an embedded SQLite database created
    or checked first. The one place an MlflowClient is built."""
    import logging

    # Alembic's migration chatter on a new database is noise on a terminal and in a run's log.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow import MlflowClient

    uri = uri or tracking_uri()
    database = sqlite_path(uri)
    if database is not None:
        prepare_sqlite_registry(database)
    with _postgres_schema_lock(uri):
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return Registry(client, name, uri)


def _iso(millis: int | None) -> str | None:
    if millis is None:
        return None
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC).isoformat(timespec="seconds")


def now_iso() -> str:
    return dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds")


def _versions(registry: Registry) -> list[ModelVersion]:
    versions = registry.client.search_model_versions(
        f"name = '{registry.name}'", max_results=10_000
    )
    return sorted(versions, key=lambda v: int(v.version))


def _status(version: ModelVersion) -> str:
    return version.tags.get(APPROVAL_TAG, "")


def is_complete(version: ModelVersion) -> bool:
    """Whether the run that registered ``version`` finished registering it."""
    return version.tags.get(REGISTRATION_TAG, COMPLETE) == COMPLETE


def _mse(version: ModelVersion) -> float | None:
    try:
        return float(version.tags[MSE_TAG])
    except (KeyError, ValueError):
        return None


def validate_transition(current: str, target: str, version: str) -> None:
    """Raise TransitionError unless a person may move a version from `current` to `target`."""
    if target not in ALLOWED_TRANSITIONS:
        raise TransitionError(
            f"{target!r} is not an approval status (one of {', '.join(ALLOWED_TRANSITIONS)})"
        )
    allowed = ALLOWED_TRANSITIONS.get(current)
    if allowed is None:
        raise TransitionError(
            f"version {version} has approval status {current!r}, which is not one of "
            f"{', '.join(ALLOWED_TRANSITIONS)}; fix its {APPROVAL_TAG} tag in MLflow first"
        )
    if target not in allowed:
        possible = " or ".join(sorted(allowed)) if allowed else "nothing (it is final)"
        raise TransitionError(
            f"version {version} is {current}; it cannot become {target} "
            f"(from {current} it can become {possible})"
        )


def approval_history(version: ModelVersion) -> list[dict[str, Any]]:
    """The version's status changes, oldest first, starting with its registration."""
    raw = version.tags.get(HISTORY_TAG)
    if raw:
        return json.loads(raw)
    # Until a person changes it, the status is the one the pipeline registered it with.
    run = version.tags.get("dagster_run_id", "unknown")
    return [
        {
            "from": None,
            "to": _status(version),
            "by": f"abalone_platform pipeline (Dagster run {run})",
            "at": _iso(version.creation_timestamp),
            "reason": f"registered with ModelApprovalStatus={_status(version)}",
        }
    ]


def _alias_target(registry: Registry) -> str | None:
    approved = [v for v in _versions(registry) if _status(v) == APPROVED and is_complete(v)]
    return str(int(approved[-1].version)) if approved else None


def _current_alias(registry: Registry) -> str | None:
    aliases = registry.client.get_registered_model(registry.name).aliases
    current = aliases.get(APPROVED_ALIAS)
    return None if current is None else str(current)


def approved_version(registry: Registry) -> int | None:
    """The current Approved model package version: the `approved` alias where it names an
    Approved, completely registered version, else the newest such version; None when there is
    none (or no registered model yet)."""
    try:
        alias = _current_alias(registry)
        if alias is not None:
            mv = registry.client.get_model_version(registry.name, alias)
            if _status(mv) == APPROVED and is_complete(mv):
                return int(alias)
        target = _alias_target(registry)
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise
    return None if target is None else int(target)


def sync_approved_alias(registry: Registry, *, locked: bool = False) -> str | None:
    """Point the `approved` alias at the newest completely registered Approved version (remove
    it when there is none); returns the version it points at.

    Reading is free; a change is made under the registry's lock (``locked``: the caller holds
    it), from statuses read under it, so two writers never leave the alias behind a status.
    """
    try:
        target = _alias_target(registry)
        if _current_alias(registry) == target:
            return target
    except Exception as exc:  # no registered model yet: nothing to point at
        if _is_missing(exc):
            return None
        raise
    with contextlib.nullcontext() if locked else registry_lock(registry):
        target = _alias_target(registry)
        if _current_alias(registry) == target:
            return target
        if target is None:
            registry.client.delete_registered_model_alias(registry.name, APPROVED_ALIAS)
        else:
            registry.client.set_registered_model_alias(registry.name, APPROVED_ALIAS, target)
    return target


def _is_missing(exc: Exception) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or (
        "not found" in str(exc).lower()
    )


def _parse_version(version: str | int) -> str:
    text = str(version).strip()
    if not text.isdigit() or int(text) < 1:
        raise UnknownVersionError(f"{version!r} is not a version number (1, 2, ...)")
    return str(int(text))


def get_version(registry: Registry, version: str | int) -> ModelVersion:
    number = _parse_version(version)
    try:
        return registry.client.get_model_version(registry.name, number)
    except Exception as exc:
        if not _is_missing(exc):
            raise
    known = [v.version for v in _versions(registry)]
    held = f"versions {', '.join(map(str, known))}" if known else "no versions yet"
    raise UnknownVersionError(
        f"{registry.name} has no version {number} (the registry at {registry.tracking_uri} "
        f"holds {held})"
    )


def require_approved(registry: Registry, version: str | int, *, purpose: str) -> ModelVersion:
    """Version ``version`` when it is Approved and completely registered; RegistryError else."""
    mv = get_version(registry, version)
    status = _status(mv)
    if status != APPROVED:
        raise RegistryError(
            f"refusing to {purpose} with {registry.name} version {mv.version}: its "
            f"{APPROVAL_TAG} is {status!r}, not {APPROVED!r}"
        )
    if not is_complete(mv):
        raise RegistryError(
            f"refusing to {purpose} with {registry.name} version {mv.version}: its registration "
            "did not complete (the registering run was stopped)"
        )
    return mv


@dataclass(frozen=True)
class RegisteredBundle:
    """The deployable bundle an Approved version records, and what it records about it."""

    version: int
    uri: str
    sha256: str
    mse: float
    approval_status: str
    dagster_run_id: str


def approved_bundle(registry: Registry, version: str | int, *, purpose: str) -> RegisteredBundle:
    """The bundle of ``version``, which must be Approved and completely registered and record
    its bundle (uri, sha256) and MSE; RegistryError (UnknownVersionError) naming what is wrong.

    Only versions whose evaluation passed the gate are ever registered, so a version (with the
    bundle sha256 it recorded) is the proof of a passed gate at its registering run's threshold;
    a caller holds the recorded MSE to its own threshold on top.
    """
    mv = require_approved(registry, version, purpose=purpose)
    tags = mv.tags or {}
    number = int(mv.version)
    if not tags.get(BUNDLE_URI_TAG) or not tags.get(BUNDLE_SHA256_TAG):
        raise RegistryError(
            f"{registry.name} version {number} records no {BUNDLE_URI_TAG} / "
            f"{BUNDLE_SHA256_TAG} tags"
        )
    mse = _mse(mv)
    if mse is None:
        raise RegistryError(
            f"{registry.name} version {number} records no {MSE_TAG} tag to hold to this run's "
            "MseThreshold"
        )
    return RegisteredBundle(
        version=number,
        uri=tags[BUNDLE_URI_TAG],
        sha256=tags[BUNDLE_SHA256_TAG],
        mse=mse,
        approval_status=_status(mv),
        dagster_run_id=tags.get(RUN_ID_TAG, ""),
    )


def _experiment_id(client: MlflowClient, artifact_root: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is not None:
        return experiment.experiment_id
    try:
        # An empty root lets a tracking server choose (its proxied artifacts destination).
        return client.create_experiment(EXPERIMENT_NAME, artifact_location=artifact_root or None)
    except MlflowException:
        # Another run created it between our lookup and our create.
        return client.get_experiment_by_name(EXPERIMENT_NAME).experiment_id


@dataclass(frozen=True)
class DatasetRecord:
    """The data a version was trained on, as an MLflow dataset input: described by its URI,
    sha256 and row count rather than loaded (MLflow's own dataset classes would read it)."""

    name: str
    uri: str
    sha256: str
    rows: int | None
    context: str = "training"


def _log_dataset(client: MlflowClient, run_id: str, dataset: DatasetRecord) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag

    source_type = dataset.uri.split("://", 1)[0] if "://" in dataset.uri else "local"
    entity = Dataset(
        name=dataset.name,
        # MLflow's digests are short; the full sha256 is in the source and the run's params.
        digest=dataset.sha256[:32],
        source_type=source_type,
        source=json.dumps({"uri": dataset.uri, "sha256": dataset.sha256}),
        profile=json.dumps({"num_rows": dataset.rows}) if dataset.rows is not None else None,
    )
    client.log_inputs(
        run_id, [DatasetInput(entity, [InputTag("mlflow.data.context", dataset.context)])]
    )


def _log_values(
    client: MlflowClient,
    run_id: str,
    params: dict[str, object],
    metrics: dict[str, float],
    history: dict[str, list[float]],
) -> None:
    """Parameters, metrics and metric histories in batches (one request each on a server, not
    one per value; MLflow caps a batch at 1,000 metrics)."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    values = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
    values += [
        Metric(key, float(value), now, step)
        for key, series in history.items()
        for step, value in enumerate(series)
    ]
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    for start in range(0, len(values), 1000):
        client.log_batch(run_id, metrics=values[start : start + 1000])


def register_version(
    registry: Registry,
    *,
    artifact_root: str,
    model_dir: Path,
    approval_status: str,
    metrics: dict[str, float],
    params: dict[str, object],
    tags: dict[str, str],
    run_name: str | None = None,
    metric_history: dict[str, list[float]] | None = None,
    dataset: DatasetRecord | None = None,
) -> tuple[str, str]:
    """Log ``model_dir`` (the version's MLflow Model) under a new MLflow run named ``run_name``
    (in experiment EXPERIMENT_NAME, whose artifacts go to ``artifact_root`` when this creates
    it) with ``metrics``, each ``metric_history`` series as one metric by step, ``params`` and
    the ``dataset`` input, and register it as a new version.

    Returns (version, source URI). The version's tags carry the approval status and ``tags``.
    It is created tagged registration=incomplete and marked complete only once its run is
    finished, so a run stopped in between leaves a version that says so (and that nothing
    approves, aliases or serves) instead of one that looks whole.
    """
    from mlflow.exceptions import MlflowException

    client = registry.client
    with registry_lock(registry):
        run = client.create_run(_experiment_id(client, artifact_root), tags=tags, run_name=run_name)
        run_id = run.info.run_id
        version = None
        try:
            _log_values(client, run_id, params, metrics, metric_history or {})
            if dataset is not None:
                _log_dataset(client, run_id, dataset)
            fault_point("registry.log_artifacts")
            client.log_artifacts(run_id, str(model_dir), "model")
            try:
                client.create_registered_model(
                    registry.name,
                    description="Abalone rings regressor (SageMaker model package group).",
                )
            except MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" not in _error_code(exc):
                    raise
            source = f"{run.info.artifact_uri}/model"
            version = client.create_model_version(
                registry.name,
                source=source,
                run_id=run_id,
                tags={APPROVAL_TAG: approval_status, REGISTRATION_TAG: INCOMPLETE, **tags},
                description=f"Registered by abalone_platform with status {approval_status}.",
            )
            fault_point("registry.version_created")
            client.set_terminated(run_id)
            client.set_model_version_tag(
                registry.name, str(version.version), REGISTRATION_TAG, COMPLETE
            )
        except BaseException:
            # Stopped (SIGTERM, SIGINT) or failed part-way: take back what was registered, so
            # nothing half-registered stays. Best effort: the failure being raised is what
            # matters (on a full disk these writes may fail too); a version that cannot be
            # removed stays tagged registration=incomplete.
            if version is not None:
                with contextlib.suppress(Exception):
                    client.delete_model_version(registry.name, str(version.version))
            with contextlib.suppress(Exception):
                client.set_terminated(run_id, status="FAILED")
            raise
        # A version registered as Approved is the newest Approved one: the `approved` alias
        # that batch inference follows moves to it now, not at the next CLI call.
        sync_approved_alias(registry, locked=True)
        return str(version.version), source


def list_versions(registry: Registry) -> list[dict[str, Any]]:
    """Every version, oldest first: version, status, registration, mse, created, Dagster run id,
    aliases."""
    alias = sync_approved_alias(registry)
    return [
        {
            "version": int(v.version),
            "approval_status": _status(v),
            "registration": v.tags.get(REGISTRATION_TAG, COMPLETE),
            "format": v.tags.get(MODEL_FORMAT_TAG, LEGACY_FORMAT),
            "mse": _mse(v),
            "created": _iso(v.creation_timestamp),
            "dagster_run_id": v.tags.get(RUN_ID_TAG),
            "aliases": [APPROVED_ALIAS] if str(int(v.version)) == alias else [],
        }
        for v in _versions(registry)
    ]


def describe_version(registry: Registry, version: str | int) -> dict[str, Any]:
    """Everything about one version: metrics, inference spec, artifacts, run parameters, history."""
    alias = sync_approved_alias(registry)
    mv = get_version(registry, version)
    run = registry.client.get_run(mv.run_id) if mv.run_id else None
    tags = dict(mv.tags)
    spec_text = tags.get("inference_spec")
    shown = {
        APPROVAL_TAG,
        HISTORY_TAG,
        REGISTRATION_TAG,
        "inference_spec",
        MSE_TAG,
        MODEL_FORMAT_TAG,
    }
    return {
        "name": registry.name,
        "version": int(mv.version),
        "approval_status": _status(mv),
        "registration": mv.tags.get(REGISTRATION_TAG, COMPLETE),
        "format": mv.tags.get(MODEL_FORMAT_TAG, LEGACY_FORMAT),
        "aliases": [APPROVED_ALIAS] if str(int(mv.version)) == alias else [],
        "created": _iso(mv.creation_timestamp),
        "last_updated": _iso(mv.last_updated_timestamp),
        "description": mv.description,
        "dagster_run_id": tags.get(RUN_ID_TAG),
        "mlflow_run_id": mv.run_id,
        "model_uri": f"models:/{registry.name}/{int(mv.version)}",
        "tracking_uri": registry.tracking_uri,
        "metrics": dict(sorted(run.data.metrics.items())) if run else {},
        "parameters": dict(run.data.params) if run else {},
        "inference_spec": json.loads(spec_text) if spec_text else None,
        "artifacts": [
            {
                "name": "model package (MLflow model: pyfunc + the bundle)"
                if mv.tags.get(MODEL_FORMAT_TAG) == PYFUNC_FORMAT
                else "model package (MLflow copy of the bundle)",
                "uri": mv.source,
                "sha256": tags.get(BUNDLE_SHA256_TAG),
            },
            {
                "name": "deployable_model bundle",
                "uri": tags.get(BUNDLE_URI_TAG),
                "sha256": tags.get(BUNDLE_SHA256_TAG),
            },
            {
                "name": "evaluation_report (evaluation.json)",
                "uri": tags.get("evaluation_uri"),
                "sha256": tags.get("evaluation_sha256"),
            },
        ],
        "approval_history": approval_history(mv),
        "tags": {k: v for k, v in sorted(tags.items()) if k not in shown},
    }


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER, as in some containers
        return f"uid {os.getuid()}"


def set_approval(
    registry: Registry,
    version: str | int,
    target: str,
    *,
    reason: str,
    by: str | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """Move a version to `target` (Approved or Rejected), recording who, when and why.

    Everything is checked before anything is written, so a refused request changes nothing.
    The write is a compare-and-set: under the registry's lock the version is read again, and if
    its status or history changed since this request read it, nothing is written and
    ConcurrentChangeError says so. Returns the history entry that was added and where the
    `approved` alias now points.
    """
    if not reason or not reason.strip():
        raise TransitionError("a reason is required (--reason TEXT): say why, for the record")
    mv = get_version(registry, version)
    number = str(int(mv.version))
    current = _status(mv)
    validate_transition(current, target, number)
    if not is_complete(mv):
        raise TransitionError(
            f"version {number}'s registration did not complete (the registering run was "
            "stopped); it cannot be approved or rejected"
        )
    entry = {
        "from": current,
        "to": target,
        "by": (by or "").strip() or current_user(),
        "at": at or now_iso(),
        "reason": reason.strip(),
    }
    history = [*approval_history(mv), entry]
    client = registry.client
    fault_point("registry.transition")
    with registry_lock(registry):
        now = get_version(registry, number)
        if _status(now) != current or now.tags.get(HISTORY_TAG) != mv.tags.get(HISTORY_TAG):
            last = approval_history(now)[-1]
            raise ConcurrentChangeError(
                f"version {number} changed under this request: it was {current} when read and "
                f"is now {_status(now)} ({last['by']} at {last['at']}: {last['reason']!r}); "
                f"nothing was written. Look at it again (abalone-platform registry describe "
                f"{number}) and repeat the request if it still applies"
            )
        # History first: should the status write fail, the record over-reports an attempt
        # rather than hiding a change.
        client.set_model_version_tag(registry.name, number, HISTORY_TAG, json.dumps(history))
        client.set_model_version_tag(registry.name, number, APPROVAL_TAG, target)
        alias = sync_approved_alias(registry, locked=True)
    return {"version": int(number), **entry, "approved_alias": alias}


__all__ = [
    "ALLOWED_TRANSITIONS",
    "ModelApprovalStatus",
    "DatasetRecord",
    "RegisteredBundle",
    "approved_bundle",
    "register_version",
    "get_version",
    "is_complete",
    "APPROVED_ALIAS",
    "ConcurrentChangeError",
    "DamagedRegistryError",
    "REGISTRATION_TAG",
    "HISTORY_TAG",
    "MODEL_PACKAGE_GROUP",
    "Registry",
    "RegistryError",
    "TransitionError",
    "UnknownVersionError",
    "approved_version",
    "describe_version",
    "list_versions",
    "open_registry",
    "prepare_sqlite_registry",
    "registry_lock",
    "require_approved",
    "set_approval",
    "sync_approved_alias",
    "validate_transition",
]
