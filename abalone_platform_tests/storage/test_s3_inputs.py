"""s3:// inputs through dagster-aws' S3Resource against a real S3 API (moto server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster_aws.s3 import S3Resource

from abalone_platform.defs.shared.resources import ArtifactStore
from abalone_platform.errors import InputDataError
from abalone_platform_tests.support.s3_server import S3Server

PARAMETER = "input_data (InputData)"


def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(root=str(tmp_path / "home"), s3=S3Resource())


def test_download_is_cached_per_etag(bucket: str, aws_env: S3Server, tmp_path: Path, abalone_file):
    client = aws_env.client()
    client.upload_file(str(abalone_file), bucket, "in/abalone.data")
    uri = f"s3://{bucket}/in/abalone.data"
    artifacts = store(tmp_path)

    first = artifacts.resolve_input(uri, PARAMETER, env_hint="ABALONE_INPUT_DATA")
    assert first.path.read_bytes() == abalone_file.read_bytes()
    assert first.uri == uri and first.path.name == "abalone.data"
    again = artifacts.resolve_input(uri, PARAMETER, env_hint="ABALONE_INPUT_DATA")
    assert again.path == first.path and again.sha256 == first.sha256

    # A changed object gets a new cache entry: never the stale bytes under the same URI.
    changed = abalone_file.read_bytes().splitlines(keepends=True)[:100]
    client.put_object(Bucket=bucket, Key="in/abalone.data", Body=b"".join(changed))
    fresh = artifacts.resolve_input(uri, PARAMETER, env_hint="ABALONE_INPUT_DATA")
    assert fresh.path != first.path
    assert fresh.size == len(b"".join(changed)) and fresh.sha256 != first.sha256


@pytest.mark.parametrize(
    ("make_uri", "expected"),
    [
        (lambda b: "s3://no-such-bucket-abalone/x.csv", "bucket 'no-such-bucket-abalone' does not"),
        (lambda b: f"s3://{b}/missing/abalone.csv", "no such key 'missing/abalone.csv'"),
        (lambda b: f"s3://{b}/data/", "names a prefix, not an object"),
    ],
)
def test_missing_bucket_or_key_names_the_uri(bucket, tmp_path, make_uri, expected):
    uri = make_uri(bucket)
    with pytest.raises(InputDataError) as raised:
        store(tmp_path).resolve_input(uri, PARAMETER, env_hint="ABALONE_INPUT_DATA")
    message = str(raised.value)
    assert uri in message and expected in message and PARAMETER in message


def test_wrong_credentials_are_refused_without_leaking_them(
    bucket, aws_env: S3Server, tmp_path, abalone_file, monkeypatch
):
    aws_env.client().upload_file(str(abalone_file), bucket, "abalone.data")
    wrong_secret = "wrong-secret-" + aws_env.secret_access_key[::-1]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
    uri = f"s3://{bucket}/abalone.data"
    with pytest.raises(InputDataError) as raised:
        store(tmp_path).resolve_input(uri, PARAMETER, env_hint="ABALONE_INPUT_DATA")
    message = str(raised.value)
    assert uri in message and "access denied" in message
    assert wrong_secret not in message and aws_env.secret_access_key not in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"PAR1\x00\x00\x15\x04binary", "is not a CSV text file (binary content)"),
        (b"\xff\xfe\xfa not utf-8 at all " * 10, "is not a CSV text file (not UTF-8 text)"),
        (b"<html><body>hello</body></html>\n", "is not a comma-separated file"),
    ],
)
def test_an_object_that_is_not_csv_is_refused_naming_the_uri(
    bucket, aws_env: S3Server, tmp_path, body, expected
):
    aws_env.client().put_object(Bucket=bucket, Key="in/model.parquet", Body=body)
    uri = f"s3://{bucket}/in/model.parquet"
    with pytest.raises(InputDataError) as raised:
        store(tmp_path).resolve_input(uri, PARAMETER, env_hint="ABALONE_INPUT_DATA")
    assert f"{PARAMETER}: {uri}: {expected}" in str(raised.value)


def test_an_empty_object_is_refused_naming_the_uri(bucket, aws_env: S3Server, tmp_path):
    aws_env.client().put_object(Bucket=bucket, Key="empty.csv", Body=b"")
    uri = f"s3://{bucket}/empty.csv"
    with pytest.raises(InputDataError, match=f"{uri}: file is empty"):
        store(tmp_path).resolve_input(uri, PARAMETER, env_hint="ABALONE_INPUT_DATA")
