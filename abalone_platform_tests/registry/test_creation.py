"""The embedded registry (SQLite) and the Dagster instance are created all-or-nothing, and a
damaged registry is reported, never reused."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from abalone_platform_tests.support.project import BIN, REPO_ROOT, make_env
from abalone_platform_tests.support.registry import registered_versions

# Kills and fills the disk under real pipeline runs: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_killed_while_creating_the_registry_leaves_nothing_half_made(
    tmp_path: Path, abalone_file: Path
) -> None:

    env = make_env(tmp_path, abalone_file)
    killed = env.cli("registry", "list", extra={"ABALONE_FAULT": "registry.migrate=kill"})
    assert killed.returncode == -signal.SIGKILL
    database = env.abalone_home / "mlflow.db"
    assert not database.exists()
    # The half-built copy is beside it under a temporary name; the next opener removes it.
    assert list(env.abalone_home.glob(".mlflow.db.*.building"))
    listing = env.cli("registry", "list")
    assert listing.returncode == 0, listing.stderr
    assert "has no versions yet" in listing.stdout
    assert database.exists()
    assert not list(env.abalone_home.glob(".mlflow.db.*"))


def _damage(database: Path, sql: str) -> None:
    with sqlite3.connect(database) as conn:
        conn.execute(sql)


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        # What a first run killed mid-migration left behind before creation was atomic.
        (
            "CREATE TABLE _alembic_tmp_experiments (x INTEGER)",
            "a schema migration was interrupted (table _alembic_tmp_experiments exists)",
        ),
        ("DELETE FROM alembic_version", "it records no schema revision"),
    ],
    ids=["alembic-tmp-table", "no-revision"],
)
def test_a_damaged_registry_is_reported_with_what_to_do(
    tmp_path: Path, abalone_file: Path, sql: str, problem: str
) -> None:
    env = make_env(tmp_path, abalone_file)
    assert env.cli("registry", "list").returncode == 0
    database = env.abalone_home / "mlflow.db"
    _damage(database, sql)
    before = _sha(database)

    listing = env.cli("registry", "list")
    assert listing.returncode == 1
    assert f"the MLflow registry database {database} is damaged: {problem}" in listing.stderr
    assert f"mv {database} {database}.damaged" in listing.stderr
    assert "Traceback" not in listing.stderr
    assert _sha(database) == before  # looked at, never changed


def test_a_run_on_a_damaged_registry_stops_and_the_advice_works(
    tmp_path: Path, abalone_file: Path
) -> None:
    env = make_env(tmp_path, abalone_file)
    assert env.cli("registry", "list").returncode == 0
    database = env.abalone_home / "mlflow.db"
    _damage(database, "CREATE TABLE _alembic_tmp_experiments (x INTEGER)")
    before = _sha(database)
    run = env.execute()
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "is damaged" in output and "model_package" in output
    assert _sha(database) == before  # looked at, never changed

    # Doing what the message says gets a working registry.
    database.rename(database.with_name("mlflow.db.damaged"))
    again = env.execute()
    assert again.returncode == 0, again.stderr[-3000:]
    assert [v["version"] for v in registered_versions(env.tracking_uri())] == ["1"]


def test_a_failed_upgrade_leaves_the_database_as_it_was(tmp_path: Path, abalone_file: Path) -> None:
    env = make_env(tmp_path, abalone_file)
    assert env.cli("registry", "list").returncode == 0
    database = env.abalone_home / "mlflow.db"
    # An older schema revision: opening it upgrades it, on a copy.
    _damage(database, "UPDATE alembic_version SET version_num = 'an-older-revision'")
    before = _sha(database)
    failed = env.cli("registry", "list", extra={"ABALONE_FAULT": "registry.migrate=enospc"})
    assert failed.returncode == 1
    assert f"could not upgrade the MLflow registry database {database}" in failed.stderr
    assert "No space left on device" in failed.stderr
    assert "the existing database is as it was" in failed.stderr
    assert _sha(database) == before
    assert not list(env.abalone_home.glob(".mlflow.db.*"))


def test_a_full_disk_while_registering_leaves_no_version(
    tmp_path: Path, abalone_file: Path
) -> None:
    env = make_env(tmp_path, abalone_file)
    proc = env.execute(extra={"ABALONE_FAULT": "registry.log_artifacts=enospc"})
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "No space left on device" in output
    assert registered_versions(env.tracking_uri()) == []
    again = env.execute()
    assert again.returncode == 0, again.stderr[-3000:]
    assert [v["registration"] for v in registered_versions(env.tracking_uri())] == ["complete"]


def _mount_tmpfs(target: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
        capture_output=True,
    )
    return done.returncode == 0


def test_a_really_full_disk_while_creating_the_registry(tmp_path: Path, abalone_file: Path) -> None:
    """The registry's file system really fills up (a 256 KiB tmpfs; a new registry is ~1 MB)."""
    small = tmp_path / "small"
    if not _mount_tmpfs(small, "256k"):
        pytest.skip("mounting a tmpfs needs root and mount permission, which this machine lacks")
    try:
        database = small / "mlflow.db"
        env = make_env(tmp_path / "env", abalone_file, MLFLOW_TRACKING_URI=f"sqlite:///{database}")
        proc = env.execute()
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert f"could not create the MLflow registry database {database}" in output
        assert "Nothing was changed" in output
        assert not database.exists()
        assert [p.name for p in small.iterdir()] == ["mlflow.db.lock"]  # no half-made copy

        # Space freed: the next run creates the registry and registers.
        subprocess.run(["mount", "-o", "remount,size=16m", str(small)], check=True)
        again = env.execute()
        assert again.returncode == 0, again.stderr[-3000:]
        assert [v["version"] for v in registered_versions(env.vars["MLFLOW_TRACKING_URI"])] == ["1"]
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_dagster_storage_follows_dagster_home_not_the_working_directory(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    (home / "dagster.yaml").write_bytes((REPO_ROOT / "dagster.yaml").read_bytes())
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    code = "import dagster as dg; i = dg.DagsterInstance.get(); print(i.get_runs())"
    subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, check=True)
    assert (home / "abalone_home" / "dagster" / "history" / "runs.db").exists()
    assert list(elsewhere.iterdir()) == []


def test_two_first_runs_at_once_on_brand_new_homes(tmp_path: Path, abalone_file: Path) -> None:
    """Both processes reach the creation of the Dagster instance together (a barrier), then
    both create the MLflow registry: each creation happens once, and both runs succeed."""
    env = make_env(tmp_path, abalone_file, project_instance=True)
    barrier = tmp_path / "barrier"
    fault = {"ABALONE_FAULT": f"dagster.storage.open=barrier:{barrier}:2"}
    command = [str(BIN / "dagster"), "job", "execute", "-m", "abalone_platform"]
    command += ["-j", "abalone_pipeline"]
    procs = [
        subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**env.vars, **fault},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert len(list(barrier.glob("*.arrived"))) >= 2
    versions = registered_versions(env.tracking_uri())
    assert [v["version"] for v in versions] == ["1", "2"]
    assert {v["registration"] for v in versions} == {"complete"}
