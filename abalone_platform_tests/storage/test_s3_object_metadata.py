"""Every object the S3 artifact store writes carries its Content-Type and its sha256 as user
metadata (``x-amz-meta-sha256``), checked with ``head_object`` against the real S3 API."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abalone_platform.storage.integrity import MANIFEST_FILE, sha256_bytes, sha256_file
from abalone_platform.storage.s3 import content_type_for, parse_s3_uri
from abalone_platform_tests.support.s3_server import S3Server, s3_store


def head(server: S3Server, uri: str) -> dict:
    location = parse_s3_uri(uri)
    return server.client().head_object(Bucket=location.bucket, Key=location.key)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("metrics.json", "application/json"),
        ("train.csv", "text/csv"),
        ("abalone.csv.out", "text/csv"),
        ("abalone.data", "text/csv"),
        ("train.PARQUET", "application/vnd.apache.parquet"),
        ("model.ubj", "application/octet-stream"),
        ("no-suffix", "application/octet-stream"),
        ("prefix.json/model.ubj", "application/octet-stream"),
    ],
)
def test_content_type_for(name: str, expected: str) -> None:
    assert content_type_for(name) == expected


def test_file_artifacts_carry_content_type_and_sha256(
    bucket: str, aws_env: S3Server, tmp_path: Path
) -> None:
    store = s3_store(tmp_path, bucket)
    table = pa.table({"length": [0.455, 0.35], "rings": [15, 7]})
    written = {
        "metrics.json": (
            store.write_bytes(
                "evaluation", "r1", "metrics.json", json.dumps({"rmse": 2.1}).encode()
            ),
            "application/json",
        ),
        "train.parquet": (
            store.write_with("train", "r1", "train.parquet", lambda p: pq.write_table(table, p)),
            "application/vnd.apache.parquet",
        ),
        "train.csv": (
            store.write_bytes("train_csv", "r1", "train.csv", b"0.455,15\n0.35,7\n"),
            "text/csv",
        ),
        "abalone.csv.out": (
            store.write_bytes("batch_predictions", "r1", "abalone.csv.out", b"9.5\n7.1\n"),
            "text/csv",
        ),
        "model.ubj": (
            store.write_bytes("trained_model", "r1", "model.ubj", b"\x7b\x00booster"),
            "application/octet-stream",
        ),
    }
    for name, (ref, content_type) in written.items():
        response = head(aws_env, ref.uri)
        real = sha256_bytes(store.read_bytes(ref))
        assert response["ContentType"] == content_type, name
        assert response["Metadata"] == {"sha256": real} and real == ref.sha256, name


def test_directory_artifact_files_each_carry_their_own_sha256(
    bucket: str, aws_env: S3Server, tmp_path: Path
) -> None:
    store = s3_store(tmp_path, bucket)
    contents = {
        "model.ubj": b"booster",
        "preprocessor.json": b'{"scale": 1}',
        "inference_spec.json": b'{"header": false}',
        "sample/abalone.data": b"M,0.455,15\n",
    }

    def writer(directory: Path) -> str:
        for relative, data in contents.items():
            (directory / relative).parent.mkdir(parents=True, exist_ok=True)
            (directory / relative).write_bytes(data)
        files = {name: sha256_bytes(data) for name, data in contents.items()}
        (directory / MANIFEST_FILE).write_bytes(json.dumps({"files": files}).encode())
        return sha256_file(directory / MANIFEST_FILE)

    ref = store.write_directory("deployable_model", "r1", "bundle", writer)
    local = store.local_copy(ref)
    expected = {
        "model.ubj": "application/octet-stream",
        "preprocessor.json": "application/json",
        "inference_spec.json": "application/json",
        "sample/abalone.data": "text/csv",
        MANIFEST_FILE: "application/json",
    }
    for relative, content_type in expected.items():
        response = head(aws_env, f"{ref.uri}/{relative}")
        assert response["ContentType"] == content_type, relative
        assert response["Metadata"] == {"sha256": sha256_file(local / relative)}, relative
    manifest = head(aws_env, f"{ref.uri}/{MANIFEST_FILE}")
    assert manifest["Metadata"]["sha256"] == ref.sha256


def test_multipart_upload_keeps_content_type_and_sha256(
    bucket: str, aws_env: S3Server, tmp_path: Path
) -> None:
    store = s3_store(tmp_path, bucket)
    payload = b"9.5\n" * (9 << 18)  # 9 MiB: over boto3's 8 MiB multipart threshold
    ref = store.write_with(
        "batch_predictions", "r2", "big.csv.out", lambda p: p.write_bytes(payload)
    )
    response = head(aws_env, ref.uri)
    assert response["ETag"].strip('"').endswith("-2")  # really a multipart object
    assert response["ContentType"] == "text/csv"
    assert response["Metadata"] == {"sha256": sha256_bytes(payload)}
