"""The Dagster instance's storage, as dagster.yaml names it (`storage: custom`), and the run
launcher of the shared (Postgres) instance, deploy/postgres/dagster.yaml (`MonitoredRunLauncher`).

Three changes to `storage: sqlite` / `local_artifact_storage`, nothing else:
- A relative ``base_dir`` resolves against DAGSTER_HOME (the folder holding dagster.yaml), not
  against the working directory: a DAGSTER_HOME elsewhere with a copy of the file keeps its
  storage to itself instead of writing into whatever folder a command ran from.
- Creating the SQLite databases is serialized across processes by a file lock in ``base_dir``:
  two processes that open a brand-new instance at once (two first runs, `dagster dev` and a CLI
  run) otherwise both run the schema creation and one fails.
- The event log builds one SQLAlchemy engine per database file and keeps it, where Dagster's
  builds and disposes one for every statement (a run writes ~64 events, each one or two
  statements): ``EngineReusingSqliteEventLogStorage``.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster._core.events import DagsterEventType
from dagster._core.launcher import DefaultRunLauncher, LaunchRunContext
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.root import LocalArtifactStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from abalone_platform.faults import fault_point


def home_relative(base_dir: str) -> str:
    """``base_dir`` as an absolute path; a relative one is taken from DAGSTER_HOME."""
    path = Path(os.path.expandvars(base_dir)).expanduser()
    if not path.is_absolute():
        home = os.environ.get("DAGSTER_HOME")
        if not home:
            raise ValueError(
                f"dagster.yaml gives the relative base_dir {base_dir!r}, which is taken from "
                "DAGSTER_HOME, but DAGSTER_HOME is not set"
            )
        path = Path(home).expanduser() / path
    return str(path.resolve())


class EngineReusingSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, keeping one SQLAlchemy engine per database file (the run's
    shard, the index) instead of creating and disposing one for every statement.

    Nothing else differs from ``SqliteEventLogStorage._connect``: the engines use NullPool, so
    every use still opens its own SQLite connection and closes it afterwards (locking, WAL
    checkpoints and what other processes see are Dagster's), under the same lock, in one
    transaction; a database not yet initialized in this process (a new run's shard, or after
    ``wipe``) is initialized first, as Dagster does. Creating an engine costs a few milliseconds of
    Python per statement, about 0.15 s of a default execution. At most ``MAX_ENGINES`` are kept
    (the least recently used is dropped): a webserver reads the shards of many runs.
    """

    MAX_ENGINES = 16

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=NullPool,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
        self._engines[shard] = engine
        while len(self._engines) > self.MAX_ENGINES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()


class HomeSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage, under DAGSTER_HOME, created under a file lock, with the event
    log reusing its engines."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(base_dir, inst_data=inst_data)
        # The same folder Dagster's storage chose for its event log (it has created it).
        self._event_log_storage = EngineReusingSqliteEventLogStorage(
            self._event_log_storage._base_dir
        )

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData, config_value: dict[str, Any]
    ) -> HomeSqliteStorage:
        base_dir = home_relative(config_value["base_dir"])
        os.makedirs(base_dir, exist_ok=True)
        fault_point("dagster.storage.open")
        with open(os.path.join(base_dir, ".storage.lock"), "w") as lock:
            # Held while the databases are created or migrated; the kernel drops it if this
            # process dies, so a killed creator never blocks the next one.
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return cls(base_dir, inst_data=inst_data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class HomeArtifactStorage(LocalArtifactStorage):
    """Dagster's local artifact storage (compute logs, file manager), under DAGSTER_HOME."""

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> HomeArtifactStorage:
        return cls(home_relative(config_value["base_dir"]), inst_data=inst_data)


# The run tag MonitoredRunLauncher sets at launch: the machine whose code server runs the run.
RUN_HOST_TAG = "abalone/run_host"
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}


class MonitoredRunLauncher(DefaultRunLauncher):
    """Dagster's DefaultRunLauncher (a run is a subprocess of its code server), plus the worker
    health check that run monitoring needs and DefaultRunLauncher lacks.

    Run monitoring (`run_monitoring: enabled` in the daemon) asks the launcher whether a STARTED
    run's worker is alive; DefaultRunLauncher cannot say, so a run whose process died stays
    STARTED unless its code server happened to see it die (not when the code server died too,
    or was restarted). This launcher records the launching machine on each run it starts from a
    code server on that machine, and answers with the run worker's pid (from its RUN_START
    event) on that machine. Runs it cannot judge (started by `dagster job execute`, by another
    machine, or from a remote code server) are reported RUNNING, left to `max_runtime_seconds`.
    """

    def launch_run(self, context: LaunchRunContext) -> None:
        from dagster._core.remote_representation.code_location import GrpcServerCodeLocation

        run = context.dagster_run
        origin = run.remote_job_origin
        if context.workspace is not None and origin is not None:
            location = context.workspace.get_code_location(
                origin.repository_origin.code_location_origin.location_name
            )
            if (
                isinstance(location, GrpcServerCodeLocation)
                and (location.client.host or "") in _LOCAL_HOSTS
            ):
                self._instance.add_run_tags(run.run_id, {RUN_HOST_TAG: socket.gethostname()})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if run.tags.get(RUN_HOST_TAG) != socket.gethostname():
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not launched from this machine")
        records = self._instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.RUN_START, limit=1
        ).records
        event = records[0].event_log_entry.dagster_event if records else None
        pid = event.pid if event is not None else None
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no RUN_START pid yet")
        if process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"pid {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run worker process (pid {pid} on {socket.gethostname()}) is gone: it was "
            "killed (e.g. kill -9) or crashed",
        )


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live Dagster/Python process (not a reused pid of something else)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc to look in: trust kill(0)
    if b"dagster" not in cmdline and b"python" not in cmdline:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"  # a zombie has finished; its parent just has not reaped it
