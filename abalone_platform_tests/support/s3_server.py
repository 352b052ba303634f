"""A real S3 API for tests: moto's server mode as a separate process on 127.0.0.1.

Started once per session with IAM authentication on (so wrong credentials really fail); the
first three requests (creating a user, its key and an allow-S3 policy) are the only
unauthenticated ones. Nothing patches boto3: the code under test talks HTTP to this server,
found through AWS_ENDPOINT_URL like any S3-compatible store.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from abalone_platform.storage.artifacts import S3ArtifactStore
from abalone_platform_tests.support.project import free_port, stop_process_group

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
REGION = "us-east-1"
START_TIMEOUT_S = 30


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key_id: str
    secret_access_key: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self, secret: str | None = None):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=secret or self.secret_access_key,
        )

    def new_bucket(self) -> str:
        name = f"abalone-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def _wait_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not listen on 127.0.0.1:{port} in {START_TIMEOUT_S}s")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_listening(port, process)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="abalone")
        key = iam.create_access_key(UserName="abalone")["AccessKey"]
        iam.put_user_policy(
            UserName="abalone",
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        stop_process_group(process, timeout=10)


@pytest.fixture
def aws_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """This process's AWS settings pointed at the server (and nothing from ~/.aws)."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return s3_server


@pytest.fixture
def bucket(aws_env: S3Server) -> str:
    return aws_env.new_bucket()


def s3_store(tmp_path: Path, bucket: str) -> S3ArtifactStore:
    """The pipeline's artifact store under ``s3://<bucket>/art``, as the resource builds it."""
    from dagster_aws.s3 import S3Resource

    from abalone_platform.defs.shared.resources import ArtifactStore

    store = ArtifactStore(
        root=str(tmp_path / "home"), artifact_root=f"s3://{bucket}/art", s3=S3Resource()
    ).store
    assert isinstance(store, S3ArtifactStore)
    return store
