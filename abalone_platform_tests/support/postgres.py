"""A real PostgreSQL server for tests: `initdb` + `pg_ctl` into a temporary directory, listening
on a free 127.0.0.1 port, stopped (and its directory removed) by whoever started it.

Debian's `postgresql` package is installed with apt when the binaries are missing (as the UI
tests install chromium). PostgreSQL refuses to run as root: as root the server runs as the
`postgres` user the package creates (or `nobody`), in a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from abalone_platform_tests.support.apt import apt_install
from abalone_platform_tests.support.project import free_port

START_TIMEOUT_S = 60
PASSWORD = "abalone"


def _bin_dir() -> Path | None:
    for candidate in [
        *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True),
        os.path.dirname(shutil.which("pg_ctl") or ""),
    ]:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def install_postgresql() -> Path:
    """The directory holding initdb / pg_ctl / postgres; Debian's package installed if missing."""
    found = _bin_dir()
    if found is not None:
        return found
    apt_install("postgresql")
    found = _bin_dir()
    assert found is not None, "the postgresql package installed no initdb"
    return found


@dataclass(frozen=True)
class Postgres:
    port: int
    root: Path
    user: str

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL with the driver named: SQLAlchemy 2.1 takes a bare postgresql://
        to mean psycopg 3, and the pinned set installs psycopg2 (psycopg2-binary)."""
        return f"postgresql+psycopg2://{self.user}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; returns its URL."""
        import psycopg2

        name = name or f"db_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(self.dsn())
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)


def _as_server_user() -> tuple[list[str], int, int]:
    """The command prefix to run PostgreSQL's programs as a non-root user, and its uid/gid."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        prefix = [
            "setpriv",
            f"--reuid={entry.pw_uid}",
            f"--regid={entry.pw_gid}",
            "--clear-groups",
            "--",
        ]
        return prefix, entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root with neither a postgres nor a nobody user")


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A fresh cluster (superuser `abalone`, password auth on 127.0.0.1), always stopped and
    removed on exit."""
    bindir = install_postgresql()
    prefix, uid, gid = _as_server_user()
    # Not under pytest's tmp_path: that is private to root, and the server runs as another user.
    root = Path(tempfile.mkdtemp(prefix="abalone-pg-"))
    data = root / "data"
    os.chown(root, uid, gid)
    password_file = root / "pwfile"
    password_file.write_text(PASSWORD + "\n")
    os.chown(password_file, uid, gid)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    port = free_port()
    log = root / "server.log"
    started = False
    try:
        subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "abalone",
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
            # A test server: durability is not what is measured, start-up and speed are.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options]
            + ["-w", "-t", str(START_TIMEOUT_S), "start"],
            env=env,
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_S + 30,
        )
        started = True
        server = Postgres(port=port, root=root, user="abalone")
        deadline = time.monotonic() + START_TIMEOUT_S
        import psycopg2

        while True:
            try:
                psycopg2.connect(server.dsn()).close()
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # polling for readiness, not timing a result
        yield server
    except subprocess.CalledProcessError as exc:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"{exc.cmd[len(prefix)]} failed: {exc.stderr!r}\n{tail}") from exc
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                env=env,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
