"""Reading back what a fault left: the runs, their chains, the registry."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from abalone_platform_tests.support.project import Env


@contextlib.contextmanager
def instance_of(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """The env's Dagster instance, opened in this process (its dagster.yaml resolves relative
    paths against DAGSTER_HOME, so that is set for the duration)."""
    with monkeypatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(env.dagster_home))
        with dg.DagsterInstance.get() as instance:
            yield instance


def materializations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    """asset name -> metadata (plain values) of each materialization the run made."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return {
        r.asset_key.to_user_string(): {
            k: getattr(v, "value", v) for k, v in r.asset_materialization.metadata.items()
        }
        for r in records
    }


def chain_runs(metadata_by_asset: dict[str, dict[str, Any]]) -> set[str]:
    """Every run id that the recorded upstream chains of these materializations name."""
    return {
        link["run_id"]
        for metadata in metadata_by_asset.values()
        for link in (metadata.get("upstream") or {}).values()
    }
