"""The Dagster instance's storage, as dagster.yaml names it (`storage: custom`).

Two fixes over `storage: sqlite` / `local_artifact_storage`, nothing else changed:
- A relative ``base_dir`` resolves against DAGSTER_HOME (the folder holding dagster.yaml), not
  against the working directory: a DAGSTER_HOME elsewhere with a copy of the file keeps its
  storage to itself instead of writing into whatever folder a command ran from.
- Creating the SQLite databases is serialized across processes by a file lock in ``base_dir``:
  two processes that open a brand-new instance at once (two first runs, `dagster dev` and a CLI
  run) otherwise both run the schema creation and one fails.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from dagster._core.storage.root import LocalArtifactStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData

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


class HomeSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage, under DAGSTER_HOME, created under a file lock."""

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
