"""The project instance's event log (dagster.yaml -> HomeSqliteStorage) keeps one engine per
database file and otherwise behaves as Dagster's SQLite event log: events written and read back
per run and across runs (the index), a wipe, and a bounded number of engines."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry

from abalone_platform.instance import EngineReusingSqliteEventLogStorage
from abalone_platform_tests.support.project import REPO_ROOT


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as project_instance:
        yield project_instance


def materialization(run_id: str, asset: str) -> EventLogEntry:
    event = DagsterEvent(
        DagsterEventType.ASSET_MATERIALIZATION.value,
        "job",
        event_specific_data=StepMaterializationData(dg.AssetMaterialization(asset_key=asset)),
    )
    return EventLogEntry(
        error_info=None,
        level=20,
        user_message="",
        run_id=run_id,
        timestamp=time.time(),
        dagster_event=event,
        job_name="job",
    )


def log_line(run_id: str, text: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level=20,
        user_message=text,
        run_id=run_id,
        timestamp=time.time(),
        job_name="job",
    )


def test_events_are_stored_and_read_as_by_dagster(instance: dg.DagsterInstance) -> None:
    storage = instance.event_log_storage
    assert isinstance(storage, EngineReusingSqliteEventLogStorage)
    runs = [str(uuid.uuid4()) for _ in range(3)]
    for number, run_id in enumerate(runs):
        storage.store_event(log_line(run_id, f"hello {number}"))
        storage.store_event(materialization(run_id, "thing"))
    for number, run_id in enumerate(runs):
        logs = storage.get_logs_for_run(run_id)
        assert [e.user_message for e in logs if not e.is_dagster_event] == [f"hello {number}"]
    # The index shard: the latest materialization across runs.
    latest = instance.get_latest_materialization_event(dg.AssetKey("thing"))
    assert latest is not None and latest.run_id == runs[-1]
    # One engine per file: the three run shards and the index.
    assert len(storage._engines) == 4

    storage.wipe()
    assert instance.get_latest_materialization_event(dg.AssetKey("thing")) is None
    again = str(uuid.uuid4())
    storage.store_event(materialization(again, "thing"))  # databases initialized anew
    assert instance.get_latest_materialization_event(dg.AssetKey("thing")).run_id == again


def test_engines_are_bounded(instance: dg.DagsterInstance, monkeypatch) -> None:
    storage = instance.event_log_storage
    monkeypatch.setattr(storage, "MAX_ENGINES", 3)
    run_ids = [str(uuid.uuid4()) for _ in range(6)]
    for run_id in run_ids:
        storage.store_event(log_line(run_id, "x"))
    assert len(storage._engines) == 3
    # An engine dropped is simply built again.
    assert [e.user_message for e in storage.get_logs_for_run(run_ids[0])] == ["x"]
