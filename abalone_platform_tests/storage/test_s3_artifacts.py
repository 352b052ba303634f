"""The S3 artifact store: same interface as the local one, verified reads, atomic publication."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abalone_platform.defs.shared.resources import ArtifactStore
from abalone_platform.storage.artifacts import LocalArtifactStore
from abalone_platform.storage.integrity import MANIFEST_FILE, ArtifactIntegrityError, sha256_bytes
from abalone_platform_tests.support.s3_server import S3Server, s3_store


def test_root_scheme_picks_the_store(tmp_path):
    assert isinstance(ArtifactStore(root=str(tmp_path)).store, LocalArtifactStore)
    local = ArtifactStore(root=str(tmp_path), artifact_root=str(tmp_path / "elsewhere")).store
    assert isinstance(local, LocalArtifactStore) and local.root == tmp_path / "elsewhere"


def test_files_round_trip_and_tampering_is_caught(bucket, aws_env: S3Server, tmp_path):
    store = s3_store(tmp_path, bucket)
    ref = store.write_bytes("trained_model", "run-1", "model.ubj", b"booster bytes")
    assert ref.uri == f"s3://{bucket}/art/trained_model/run-1/model.ubj"
    assert ref.sha256 == sha256_bytes(b"booster bytes")
    assert store.read_bytes(ref) == b"booster bytes"
    local = store.local_copy(ref)
    assert local.read_bytes() == b"booster bytes" and local.name == "model.ubj"

    aws_env.client().put_object(Bucket=bucket, Key="art/trained_model/run-1/model.ubj", Body=b"x")
    with pytest.raises(ArtifactIntegrityError, match="does not match the recorded"):
        store.read_bytes(ref)


def test_write_with_streams_a_local_file_up(bucket, tmp_path):
    store = s3_store(tmp_path, bucket)
    payload = b"1.0\n" * 300_000  # over boto3's multipart threshold would be 8 MiB; 1.2 MB here
    ref = store.write_with(
        "batch_predictions", "run-2", "b.csv.out", lambda p: p.write_bytes(payload)
    )
    assert store.read_bytes(ref) == payload
    assert not any((tmp_path / "home" / "cache" / "s3" / "staging").iterdir())


def test_directories_upload_the_manifest_last_and_read_back_verified(
    bucket, aws_env: S3Server, tmp_path
):
    store = s3_store(tmp_path, bucket)
    order: list[str] = []
    client = store.files.client
    client.meta.events.register(
        "before-call.s3.PutObject", lambda params, **_: order.append(params["url_path"])
    )

    def writer(directory: Path) -> str:
        (directory / "model.ubj").write_bytes(b"m")
        (directory / "zz.json").write_bytes(b"z")
        manifest = json.dumps({"files": {"model.ubj": sha256_bytes(b"m")}}).encode()
        (directory / MANIFEST_FILE).write_bytes(manifest)
        return sha256_bytes(manifest)

    ref = store.write_directory("deployable_model", "run-3", "bundle", writer)
    assert order[-1].endswith(f"bundle/{MANIFEST_FILE}") and len(order) == 3
    local = store.local_copy(ref)
    assert local.is_dir() and (local / "model.ubj").read_bytes() == b"m"
    assert store.local_copy(ref) == local  # cached by sha256

    aws_env.client().put_object(
        Bucket=bucket, Key=f"art/deployable_model/run-3/bundle/{MANIFEST_FILE}", Body=b"{}"
    )
    other = s3_store(tmp_path / "fresh", bucket)
    with pytest.raises(ArtifactIntegrityError, match="manifest sha256"):
        other.local_copy(ref)
