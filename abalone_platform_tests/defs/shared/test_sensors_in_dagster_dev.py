"""Once through a running `dagster dev` (webserver + daemon): a CSV dropped into the watched
folder produces exactly one successful run."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType

from abalone_platform.defs.shared.watch import SOURCE_TAG
from abalone_platform_tests.support.dagster_dev import dagster_dev
from abalone_platform_tests.support.project import Env, make_env

# Starts a real `dagster dev`: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

T = TypeVar("T")
SENSOR = "new_input_data_sensor"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, log: Path) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}\n--- dagster dev ---\n{tail}"
    )


@pytest.fixture
def dev_server(tmp_path: Path, abalone_file: Path) -> Iterator[tuple[Env, Path, Path]]:
    watch = tmp_path / "watch"
    watch.mkdir()
    env = make_env(
        tmp_path,
        abalone_file,
        ABALONE_INPUT_WATCH=str(watch),
        ABALONE_INPUT_WATCH_INTERVAL="1",
        ABALONE_BATCH_WATCH=str(tmp_path / "batch"),
        ABALONE_SENSORS_RUNNING="1",
    )
    (tmp_path / "batch").mkdir()
    with dagster_dev(env) as server:
        yield env, watch, server.log


def test_dropped_file_gives_exactly_one_successful_run(dev_server, abalone_file):
    env, watch, log = dev_server
    with dg.DagsterInstance.from_config(str(env.dagster_home)) as instance:

        def sensor_state():
            states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            return next((s for s in states if s.name == SENSOR), None)

        def ticks():
            state = sensor_state()
            if state is None:
                return []
            return instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000)

        # The sensor runs by default here (ABALONE_SENSORS_RUNNING=1): wait for its first tick
        # so the drop happens while it is watching.
        wait_for("the sensor's first tick", lambda: len(ticks()) >= 1, 120, log)
        dropped = watch / "new_data.csv"
        shutil.copyfile(abalone_file, dropped)
        by_source = dg.RunsFilter(tags={SOURCE_TAG: str(dropped.resolve())})

        def finished():
            runs = instance.get_runs(filters=by_source)
            done = [r for r in runs if r.is_finished]
            return done if done else None

        [run] = wait_for("the sensor's run to finish", finished, 240, log)
        assert run.status == dg.DagsterRunStatus.SUCCESS, run.status
        assert run.tags["dagster/sensor_name"] == SENSOR
        assert run.run_config["resources"]["parameters"]["config"]["input_data"] == str(
            dropped.resolve()
        )

        # Later ticks must not start the same file again.
        seen = len(ticks())
        wait_for("three more sensor ticks", lambda: len(ticks()) >= seen + 3, 120, log)
        sensor_runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": SENSOR}))
        assert [r.run_id for r in sensor_runs] == [run.run_id]
