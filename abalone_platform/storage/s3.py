"""S3 (and S3-compatible stores) through a boto3 client from dagster-aws' ``S3Resource``.

The endpoint and credentials come from boto3's standard chain (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles...), never from Dagster
config, so the same code talks to AWS, MinIO or moto. Error messages name the URI and the S3
error code; botocore never puts secrets in them and neither do we.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from abalone_platform.errors import InputDataError
from abalone_platform.storage.integrity import atomic_path, sha256_file


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Location:
        prefix = self.key.rstrip("/")
        return S3Location(self.bucket, f"{prefix}/{name}" if prefix else name)


# Content-Type by file suffix. Without one, S3 stores every object as binary/octet-stream, so
# the console, presigned-URL downloads and other AWS tools see only opaque bytes; these are the
# standard types they expect. ``.out`` is Batch Transform's output naming (``<input>.out``) and
# ``.data`` the UCI abalone file: both are CSV. ``application/vnd.apache.parquet`` is Parquet's
# IANA-registered type. Anything else (the XGBoost booster ``model.ubj``...) is opaque bytes.
_CONTENT_TYPES = {
    ".json": "application/json",
    ".csv": "text/csv",
    ".out": "text/csv",
    ".data": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
}


def content_type_for(name: str) -> str:
    """The Content-Type to store an artifact named ``name`` (a file name or key) under."""
    return _CONTENT_TYPES.get(PurePosixPath(name).suffix.lower(), "application/octet-stream")


def parse_s3_uri(uri: str) -> S3Location:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return S3Location(parsed.netloc, urllib.parse.unquote(parsed.path.lstrip("/")))


def is_s3_uri(uri: str) -> bool:
    return uri.startswith("s3://")


def describe_s3_error(exc: BaseException, uri: str) -> str:
    """A short, secret-free reason for a failed S3 call on ``uri``."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        location = parse_s3_uri(uri)
        if code == "NoSuchBucket":
            return f"bucket {location.bucket!r} does not exist"
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return "no such object (missing bucket or key)"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403") or (
            status == 403
        ):
            return (
                f"access denied ({code or status}): check the AWS credentials (AWS_ACCESS_KEY_ID "
                "/ AWS_SECRET_ACCESS_KEY / AWS_PROFILE) and the endpoint (AWS_ENDPOINT_URL)"
            )
        return f"S3 error {code or status}: {error.get('Message', '')}".rstrip(": ")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            "no AWS credentials found (set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or "
            "AWS_PROFILE)"
        )
    if isinstance(exc, EndpointConnectionError):
        return f"could not reach the S3 endpoint ({exc}); check AWS_ENDPOINT_URL"
    if isinstance(exc, BotoCoreError):
        return f"S3 client error: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _s3_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


class S3Error(RuntimeError):
    """An S3 call failed; the message names the URI, never credentials."""

    def __init__(self, uri: str, reason: str):
        self.uri = uri
        super().__init__(f"{uri}: {reason}")


# How S3Files reports a transfer: called as ``transfer_progress(what, total_bytes)`` when one
# starts (what: "upload s3://..." or "download s3://...", total_bytes None where unknown), it
# returns a context manager whose value takes the bytes done so far; the transfer runs inside
# it, so a clean exit means the transfer completed.
TransferProgress = Callable[[str, int | None], AbstractContextManager[Callable[[int], None]]]


class _BytesDone:
    """boto3's ``Callback``: it hands over each part's bytes as they go, from its transfer
    threads (a multipart transfer runs several parts at once, and a retried part is handed back
    as a negative amount); a progress callback wants the running total."""

    def __init__(self, progress: Callable[[int], None]):
        self.progress = progress
        self.done = 0
        self._lock = threading.Lock()

    def __call__(self, amount: int) -> None:
        with self._lock:  # held while reporting too, so totals are reported in order
            self.done += amount
            self.progress(self.done)


def _atomic_download(
    client: Any,
    location: S3Location,
    target: Path,
    etag: str,
    progress: Callable[[int], None] | None = None,
) -> None:
    # IfMatch: if the object is overwritten meanwhile, fail instead of caching new bytes under
    # the old ETag. The body is streamed in chunks, never held whole in memory.
    done = 0
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        response = client.get_object(Bucket=location.bucket, Key=location.key, IfMatch=etag)
        for chunk in response["Body"].iter_chunks(1 << 20):
            out.write(chunk)
            if progress is not None:
                done += len(chunk)
                progress(done)


class S3Files:
    """The project's S3 operations on one boto3 client. With ``transfer_progress``, uploads and
    downloads of whole files report their bytes done (see ``TransferProgress``)."""

    def __init__(self, client: Any, *, transfer_progress: TransferProgress | None = None):
        self.client = client
        self.transfer_progress = transfer_progress

    def _watch(
        self, what: str, total_bytes: int | None
    ) -> AbstractContextManager[Callable[[int], None] | None]:
        if self.transfer_progress is None:
            return nullcontext(None)
        return self.transfer_progress(what, total_bytes)

    def download_input(self, uri: str, cache_dir: Path, parameter: str) -> Path:
        """Stream ``uri`` into ``cache_dir`` (keyed by ETag, so a changed object is fetched
        again and an unchanged one is not) and return the local file."""
        try:
            location = parse_s3_uri(uri)
        except ValueError as exc:
            raise InputDataError(parameter, uri, str(exc)) from exc
        if not location.key or location.key.endswith("/"):
            raise InputDataError(parameter, uri, "names a prefix, not an object")
        try:
            head = self.client.head_object(Bucket=location.bucket, Key=location.key)
        except _s3_errors() as exc:
            raise InputDataError(parameter, uri, self._explain(exc, location)) from exc
        etag = str(head["ETag"])
        name = Path(location.key).name
        target = cache_dir / etag.strip('"').replace("/", "_") / name
        size = head["ContentLength"]
        if not target.exists() or target.stat().st_size != size:
            try:
                with self._watch(f"download {uri}", size) as progress:
                    _atomic_download(self.client, location, target, etag, progress)
            except _s3_errors() as exc:
                raise InputDataError(parameter, uri, self._explain(exc, location)) from exc
        return target

    def _explain(self, exc: BaseException, location: S3Location) -> str:
        reason = describe_s3_error(exc, location.uri)
        if reason.startswith("no such object"):
            # HEAD answers a bare 404 for a missing bucket too; ask which one it is.
            try:
                self.client.head_bucket(Bucket=location.bucket)
                return f"no such key {location.key!r} in bucket {location.bucket!r}"
            except _s3_errors():
                return f"bucket {location.bucket!r} does not exist (or is not accessible)"
        return reason

    def upload_file(self, path: Path, location: S3Location, *, sha256: str | None = None) -> None:
        """Upload ``path`` as ``location`` with its Content-Type (from the key's name) and its
        sha256 as user metadata (``x-amz-meta-sha256``); ``sha256`` is computed if not given."""
        if sha256 is None:
            sha256 = sha256_file(path)
        extra_args: dict[str, Any] = {
            "ContentType": content_type_for(location.key),
            "Metadata": {"sha256": sha256},
        }
        try:
            # upload_file switches to multipart for large files (ExtraArgs go to the create-
            # multipart call then); either way the object appears only once complete, so readers
            # never see a partial artifact.
            with self._watch(f"upload {location.uri}", path.stat().st_size) as progress:
                self.client.upload_file(
                    str(path),
                    location.bucket,
                    location.key,
                    ExtraArgs=extra_args,
                    Callback=None if progress is None else _BytesDone(progress),
                )
        except _s3_errors() as exc:
            raise S3Error(location.uri, describe_s3_error(exc, location.uri)) from exc

    def get_bytes(self, location: S3Location) -> bytes:
        try:
            return self.client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
        except _s3_errors() as exc:
            raise S3Error(location.uri, describe_s3_error(exc, location.uri)) from exc

    def download(self, location: S3Location, target: Path) -> None:
        try:
            # The size is not asked for (one more request per file): the progress has no total.
            with (
                atomic_path(target) as tmp,
                self._watch(f"download {location.uri}", None) as progress,
            ):
                self.client.download_file(
                    location.bucket,
                    location.key,
                    str(tmp),
                    Callback=None if progress is None else _BytesDone(progress),
                )
        except _s3_errors() as exc:
            raise S3Error(location.uri, describe_s3_error(exc, location.uri)) from exc

    def list_keys(self, prefix: S3Location) -> list[str]:
        """Every key under ``prefix`` (a "directory"), recursively."""
        base = prefix.key.rstrip("/") + "/" if prefix.key else ""
        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=prefix.bucket, Prefix=base):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except _s3_errors() as exc:
            raise S3Error(prefix.uri, describe_s3_error(exc, prefix.uri)) from exc
        return keys
