"""The team set-up's servers, started once per module on free 127.0.0.1 ports and stopped by
the fixture that started them: PostgreSQL (initdb + pg_ctl, support/postgres.py) and an
`mlflow server` with that Postgres as backend store and the S3 test server (moto) as artifacts
destination; `dagster-daemon run` per test that needs one."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from abalone_platform_tests.support.mlflow_server import MlflowServer, mlflow_server
from abalone_platform_tests.support.postgres import Postgres, postgres_server
from abalone_platform_tests.support.project import (
    BIN,
    REPO_ROOT,
    SHARED_ABALONE,
    Env,
    make_env,
    stop_process_group,
)
from abalone_platform_tests.support.s3_server import S3Server

TEAM_INSTANCE = REPO_ROOT / "deploy" / "postgres" / "dagster.yaml"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    started = time.monotonic()
    with postgres_server() as server:
        print(f"postgres ready in {time.monotonic() - started:.1f} s")
        yield server


@dataclass(frozen=True)
class TeamMlflow:
    server: MlflowServer
    bucket: str  # its artifacts destination: s3://<bucket>/mlflow


@pytest.fixture(scope="module")
def mlflow_on_postgres(
    postgres: Postgres, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TeamMlflow]:
    """`mlflow server --backend-store-uri postgresql://… --artifacts-destination s3://…`."""
    bucket = s3_server.new_bucket()
    started = time.monotonic()
    with mlflow_server(
        tmp_path_factory.mktemp("mlflow-team"),
        backend_store_uri=postgres.create_database(),
        artifacts_destination=f"s3://{bucket}/mlflow",
        extra_env=s3_server.env(),
    ) as server:
        print(f"mlflow server ready in {time.monotonic() - started:.1f} s")
        yield TeamMlflow(server, bucket)


def team_env(root: Path, postgres: Postgres, tracking_uri: str, **extra: str) -> Env:
    """An empty DAGSTER_HOME holding only a copy of deploy/postgres/dagster.yaml, a fresh
    Dagster database, and MLFLOW_TRACKING_URI."""
    env = make_env(
        root,
        SHARED_ABALONE,
        DAGSTER_PG_URL=postgres.create_database(),
        MLFLOW_TRACKING_URI=tracking_uri,
        **extra,
    )
    shutil.copy(TEAM_INSTANCE, env.dagster_home / "dagster.yaml")
    return env


@contextmanager
def dagster_daemon(env: Env) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` on the env's instance, in its own process group (with the code
    server it starts), always stopped on exit."""
    log = env.dagster_home / "daemon.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=REPO_ROOT,
            env=env.vars,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_process_group(process)


def sqlite_files(*roots: Path) -> list[Path]:
    """Every SQLite database file under ``roots`` (by its header, whatever its name)."""
    found = []
    for root in roots:
        for path in root.rglob("*") if root.exists() else []:
            if path.is_file():
                with open(path, "rb") as handle:
                    if handle.read(16) == b"SQLite format 3\x00":
                        found.append(path)
    return found
