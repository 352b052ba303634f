"""The team set-up on real servers: Dagster on PostgreSQL (deploy/postgres/dagster.yaml copied
into an empty DAGSTER_HOME), the registry on PostgreSQL directly and behind an `mlflow server`
whose artifacts go to S3, `dagster-daemon run` and `dagster-webserver` on the shared instance."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml

from abalone_platform.definitions import build_defs
from abalone_platform.registry import approved_version, open_registry
from abalone_platform_tests.support.dagster_dev import dagster_dev
from abalone_platform_tests.support.pipeline import run_pipeline
from abalone_platform_tests.support.postgres import Postgres
from abalone_platform_tests.support.project import BIN, REPO_ROOT, SHARED_ABALONE, Env
from abalone_platform_tests.support.registry import registered_versions
from abalone_platform_tests.support.s3_server import S3Server
from abalone_platform_tests.support.serve import abalone_serve
from abalone_platform_tests.support.ticks import run_request, tick
from abalone_platform_tests.team.conftest import (
    TeamMlflow,
    dagster_daemon,
    sqlite_files,
    team_env,
)

pytestmark = pytest.mark.slow

CONFIGS = REPO_ROOT / "configs"
WEBSERVER = (str(BIN / "dagster-webserver"), "-w", "workspace.yaml")
RUN_TIMEOUT_S = 600


@contextlib.contextmanager
def open_instance(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    with monkeypatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(env.dagster_home))
        patch.setenv("DAGSTER_PG_URL", env.vars["DAGSTER_PG_URL"])
        with dg.DagsterInstance.get() as instance:
            yield instance


def wait_for_finished_runs(
    instance: dg.DagsterInstance, count: int, timeout: float = RUN_TIMEOUT_S, **filters
) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + timeout
    while True:
        runs = instance.get_runs(filters=dg.RunsFilter(**filters) if filters else None)
        if len(runs) >= count and all(r.is_finished for r in runs):
            return runs
        assert time.monotonic() < deadline, [(r.run_id, r.status) for r in runs]
        time.sleep(1)  # polling for completion, not timing a result


def launch(env: Env) -> subprocess.Popen:
    """`dagster job launch`: the run goes to the queue, the daemon starts it."""
    return subprocess.Popen(
        [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "abalone_pipeline"],
        cwd=REPO_ROOT,
        env=env.vars,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def tick_count(dagster_db: str) -> int:
    with contextlib.closing(psycopg2.connect(dagster_db.replace("+psycopg2", ""))) as conn:
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM job_ticks")
            return cursor.fetchone()[0]


def test_four_concurrent_runs_a_sensor_tick_the_ui_and_approvals_on_postgres(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = postgres.create_database()  # the registry on Postgres directly
    env = team_env(
        tmp_path,
        postgres,
        registry,
        ABALONE_SENSORS_RUNNING="1",
        ABALONE_BATCH_WATCH_INTERVAL="1",
    )
    with dagster_daemon(env) as daemon, dagster_dev(env, command=WEBSERVER) as ui:
        started = time.monotonic()
        launches = [launch(env) for _ in range(4)]
        for process in launches:
            output = process.communicate(timeout=300)[0]
            assert process.returncode == 0, output[-3000:]
        with open_instance(env, monkeypatch) as instance:
            runs = wait_for_finished_runs(instance, 4)
            records = instance.get_run_records()
        wall = time.monotonic() - started
        print(f"four concurrent runs through the queue: {wall:.1f} s")
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 4, (
            daemon.poll(),
            (env.dagster_home / "daemon.log").read_text()[-4000:],
        )
        # They ran at once (max_concurrent_runs: 4): every run started before any ended.
        assert max(r.start_time for r in records) < min(r.end_time for r in records)
        versions = registered_versions(registry)
        assert [v["version"] for v in versions] == ["1", "2", "3", "4"]
        assert {v["registration"] for v in versions} == {"complete"}
        assert {v["dagster_run_id"] for v in versions} == {r.run_id for r in runs}

        # The UI shows the runs made from the CLI.
        shown = ui.graphql("{ runsOrError { ... on Runs { results { runId status } } } }")
        assert {(r["runId"], r["status"]) for r in shown["runsOrError"]["results"]} == {
            (r.run_id, "SUCCESS") for r in runs
        }

        # A sensor tick through the daemon: one batch file, one Approved version -> one run.
        approve = env.cli("registry", "approve", "3", "--reason", "team test")
        assert approve.returncode == 0, approve.stderr
        incoming = env.abalone_home / "incoming" / "batch"
        incoming.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED_ABALONE, incoming / "batch-1.csv")
        with open_instance(env, monkeypatch) as instance:
            [scored] = wait_for_finished_runs(
                instance, 1, tags={"abalone/model_package_version": "3"}
            )
            assert scored.status == dg.DagsterRunStatus.SUCCESS
            # Later ticks see the same file and start nothing more.
            ticks = tick_count(env.vars["DAGSTER_PG_URL"])
            deadline = time.monotonic() + 60
            while tick_count(env.vars["DAGSTER_PG_URL"]) < ticks + 2:
                assert time.monotonic() < deadline, "the sensor stopped ticking"
                time.sleep(0.5)  # waiting for ticks, not timing a result
            assert len(instance.get_runs()) == 5

    # The registry on Postgres directly: racing approvals, lineage, `serve` following.
    with abalone_serve(env, "--poll-interval", "0.2") as server:
        assert server.client().request("GET", "/ping")[1]["x-model-version"] == "3"
        race_reject_and_follow(env, registry, tmp_path, server, pending=1, approved=3)

    # The whole instance is in Postgres: no SQLite file, no registry lock file anywhere.
    tree = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    print("\n".join(t for t in tree if "/artifacts/" not in t))
    assert sqlite_files(tmp_path) == []
    assert [t for t in tree if t.endswith(".lock") or t.endswith(".db")] == []


def test_a_run_killed_with_sigkill_is_marked_failed_by_run_monitoring(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run is stopped in its training step (a fault barrier nobody else reaches), then its
    process and its code server are killed with SIGKILL, so only the daemon's run monitoring
    can notice; it marks the run failed within its poll interval."""
    barrier = tmp_path / "barrier"
    env = team_env(
        tmp_path,
        postgres,
        postgres.create_database(),
        ABALONE_FAULT=f"step.trained_model=barrier:{barrier}:2",
    )
    with dagster_daemon(env):
        process = launch(env)
        output = process.communicate(timeout=300)[0]
        assert process.returncode == 0, output[-3000:]
        deadline = time.monotonic() + 300
        while not list(barrier.glob("*.arrived")):
            assert time.monotonic() < deadline, (env.dagster_home / "daemon.log").read_text()
            time.sleep(0.2)  # waiting for the run to reach its step
        [arrived] = barrier.glob("*.arrived")
        worker = int(arrived.name.split(".")[0])
        code_server = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert b"grpc" in Path(f"/proc/{code_server}/cmdline").read_bytes()
        os.kill(code_server, signal.SIGKILL)
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        with open_instance(env, monkeypatch) as instance:
            [run] = wait_for_finished_runs(instance, 1, timeout=120)
            noticed = time.monotonic() - killed
            messages = [e.message for e in instance.all_logs(run.run_id)]
    print(f"marked failed {noticed:.1f} s after kill -9")
    assert run.status == dg.DagsterRunStatus.FAILURE
    [failure] = [m for m in messages if "Detected run worker status" in m]
    assert f"pid {worker}" in failure and "is gone" in failure


def parameters(config: str) -> dict:
    text = (CONFIGS / config).read_text()
    return (yaml.safe_load(text) or {}).get("resources", {}).get("parameters", {}).get("config", {})


def test_the_three_executions_and_approvals_through_the_mlflow_server(
    postgres: Postgres,
    mlflow_on_postgres: TeamMlflow,
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = mlflow_on_postgres.server.url
    # MLflow 3 clients download a version's files from S3 directly with presigned URLs the
    # server hands out; moto's server with IAM on refuses presigned URLs (a moto limit, S3 and
    # MinIO accept them), so here downloads go through the server as well.
    env = team_env(tmp_path, postgres, url, MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD="false")
    for key in [k for k in os.environ if k.startswith(("ABALONE_", "MLFLOW_", "AWS_"))]:
        monkeypatch.delenv(key)  # the client has no S3 credentials: the server proxies
    for key in ("ABALONE_HOME", "ABALONE_INPUT_DATA", "MLFLOW_TRACKING_URI"):  # in-process
        monkeypatch.setenv(key, env.vars[key])
    results = []
    with open_instance(env, monkeypatch) as instance:
        for config in ("execution_default.yaml", "execution_approved.yaml", "execution_mse_3.yaml"):
            started = time.monotonic()
            results.append(run_pipeline(instance, parameters(config)).success)
            print(f"{config}: {time.monotonic() - started:.1f} s")
    assert results == [True, True, False]
    versions = registered_versions(url)
    assert [(v["version"], v["status"]) for v in versions] == [
        ("1", "PendingManualApproval"),
        ("2", "Approved"),
    ]
    assert approved_version(open_registry(url)) == 2
    # The versions' files are in S3, written by the server.
    keys = [
        o["Key"]
        for o in s3_server.client().list_objects_v2(
            Bucket=mlflow_on_postgres.bucket, Prefix="mlflow/"
        )["Contents"]
    ]
    assert sum(key.endswith("/MLmodel") for key in keys) == 2, keys
    assert not (env.abalone_home / "mlartifacts").exists()

    # The batch sensor against the server: a file in the watched folder, two ticks (seen, then
    # unchanged), one run scoring it with the Approved version 2, in this process.
    incoming = env.abalone_home / "incoming" / "batch"
    incoming.mkdir(parents=True)
    rows = SHARED_ABALONE.read_bytes().splitlines(keepends=True)[:250]
    (incoming / "day1.csv").write_bytes(b"".join(rows))
    with open_instance(env, monkeypatch) as instance:
        defs = build_defs()
        sensor = defs.resolve_sensor_def("new_batch_data_sensor")
        resources = {name: defs.resources[name] for name in ("artifacts", "registry")}
        first = tick(sensor, instance, None, resources)
        [request] = tick(sensor, instance, first.cursor, resources).run_requests
        config = request.run_config["resources"]["parameters"]["config"]
        assert config["model_package_version"] == 2
        batch = run_request(defs, instance, request)
        assert batch.success
        latest = instance.get_latest_materialization_event(dg.AssetKey("batch_predictions"))
        assert latest.asset_materialization.metadata["model_package_version"].value == 2

    # `serve` follows the approvals through the server (the model's files come through it).
    row = SHARED_ABALONE.read_text().splitlines()[0].rsplit(",", 1)[0] + "\n"
    with abalone_serve(env, "--poll-interval", "0.2") as server:
        client = server.client()
        status, headers, _ = client.request("POST", "/invocations", row.encode(), CSV)
        assert (status, headers["x-model-version"]) == (200, "2"), server.log_text()[-3000:]
        served_before = status
        race_reject_and_follow(env, url, tmp_path, server, pending=1, approved=2)
    assert served_before == 200
    assert sqlite_files(tmp_path) == []


CSV = {"Content-Type": "text/csv"}


def race_reject_and_follow(
    env: Env, url: str, tmp_path: Path, server, *, pending: int, approved: int
) -> None:
    """Two people change the Pending version ``pending`` at once: exactly one change is made
    (atomic on a shared registry). Then the Approved version ``approved`` (the only other
    Approved one) is rejected: the alias and the endpoint move to ``pending`` if the race
    approved it, else to nothing."""
    barrier = tmp_path / f"race-{pending}"
    race = {"ABALONE_FAULT": f"registry.transition=barrier:{barrier}:2"}
    racing = [
        subprocess.Popen(
            [str(BIN / "abalone-platform"), "registry", verb, str(pending), "--reason", "race"],
            cwd=REPO_ROOT,
            env={**env.vars, **race},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for verb in ("approve", "reject")
    ]
    outcomes = [(p.wait(timeout=120), p.communicate()[1]) for p in racing]
    assert sorted(code for code, _ in outcomes) == [0, 1], outcomes
    [(_, refused)] = [o for o in outcomes if o[0] == 1]
    assert "changed under this request" in refused
    status = registered_versions(url)[pending - 1]["status"]
    assert status == ("Approved" if outcomes[0][0] == 0 else "Rejected")

    reject = env.cli("registry", "reject", str(approved), "--reason", "team test")
    assert reject.returncode == 0, reject.stderr
    assert approved_version(open_registry(url)) == (pending if status == "Approved" else None)
    lineage = env.cli("lineage", str(approved))
    assert lineage.returncode == 0, lineage.stderr
    assert "AbaloneTrain" in lineage.stdout
    # The endpoint follows: `pending` if the race approved it, else nothing Approved (503).
    expected = str(pending) if status == "Approved" else "none"
    client = server.client()
    deadline = time.monotonic() + 10
    while client.request("GET", "/ping")[1]["x-model-version"] != expected:
        assert time.monotonic() < deadline, server.log_text()[-3000:]
        time.sleep(0.1)  # polling for the switch, bounded
    client.close()
