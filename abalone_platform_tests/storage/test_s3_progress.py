"""S3 transfers report their bytes done (a multipart upload, both downloads), as a running total
whatever the threads boto3 uses; a failed transfer leaves its progress context by the error."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from boto3.exceptions import S3UploadFailedError

from abalone_platform.errors import InputDataError
from abalone_platform.storage.s3 import S3Error, S3Files, S3Location, _BytesDone
from abalone_platform_tests.support.s3_server import S3Server

# Over boto3's 8 MiB multipart threshold: two parts, sent by two of its threads.
LARGE = 9 << 20


@dataclass
class Transfer:
    what: str
    total: int | None
    counts: list[int] = field(default_factory=list)
    failed: BaseException | None = None


class Watcher:
    """A ``transfer_progress`` that records every transfer and its reports."""

    def __init__(self) -> None:
        self.transfers: list[Transfer] = []

    @contextmanager
    def __call__(self, what: str, total: int | None) -> Iterator[Callable[[int], None]]:
        transfer = Transfer(what, total)
        self.transfers.append(transfer)
        try:
            yield transfer.counts.append
        except BaseException as exc:
            transfer.failed = exc
            raise


def check_running_total(counts: list[int], size: int) -> None:
    assert len(counts) >= 2 and counts[-1] == size
    assert all(a < b for a, b in zip(counts, counts[1:], strict=False))


def test_transfers_report_bytes_done_up_to_their_size(
    bucket: str, aws_env: S3Server, tmp_path: Path
) -> None:
    watch = Watcher()
    files = S3Files(aws_env.client(), transfer_progress=watch)
    path = tmp_path / "batch.csv.out"
    path.write_bytes(b"10.5\n" * (LARGE // 5))
    size = path.stat().st_size
    location = S3Location(bucket, "art/batch_predictions/run-1/batch.csv.out")

    files.upload_file(path, location)
    files.download(location, tmp_path / "back" / "batch.csv.out")
    local = files.download_input(location.uri, tmp_path / "cache", "batch_data (BatchData)")

    up, down, down_input = watch.transfers
    assert (up.what, up.total) == (f"upload {location.uri}", size)
    assert (down.what, down.total) == (f"download {location.uri}", None)
    assert (down_input.what, down_input.total) == (f"download {location.uri}", size)
    for transfer in watch.transfers:
        check_running_total(transfer.counts, size)
        assert transfer.failed is None
    assert (tmp_path / "back" / "batch.csv.out").read_bytes() == path.read_bytes()
    assert local.read_bytes() == path.read_bytes()


def test_a_failed_transfer_leaves_its_progress_by_the_error(
    bucket: str, aws_env: S3Server, tmp_path: Path
) -> None:
    watch = Watcher()
    files = S3Files(aws_env.client(), transfer_progress=watch)
    path = tmp_path / "model.ubj"
    path.write_bytes(b"m" * 1000)
    # boto3 wraps a failed upload's ClientError in its own S3UploadFailedError.
    with pytest.raises((S3Error, S3UploadFailedError)):
        files.upload_file(path, S3Location("no-such-bucket-abalone", "model.ubj"))
    with pytest.raises(S3Error):
        files.download(S3Location(bucket, "missing.ubj"), tmp_path / "missing.ubj")
    assert [t.failed is not None for t in watch.transfers] == [True, True]
    # A missing input fails at its HEAD request, before any transfer starts.
    with pytest.raises(InputDataError):
        files.download_input(f"s3://{bucket}/missing.csv", tmp_path / "cache", "batch_data")
    assert len(watch.transfers) == 2


def test_bytes_from_many_threads_are_reported_as_a_rising_total() -> None:
    reported: list[int] = []
    callback = _BytesDone(reported.append)
    threads = [
        threading.Thread(target=lambda: [callback(3) for _ in range(2000)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reported == list(range(3, 3 * 8000 + 1, 3))
    callback(-6)  # a retried part is handed back before it is sent again
    assert reported[-1] == 3 * 8000 - 6


def test_the_artifact_store_reports_its_s3_transfers(tmp_path) -> None:
    """The pipeline's S3 files report progress through the step's log (a ProgressReporter in
    bytes, with the transfer's total)."""
    from abalone_platform.defs.shared.progress import BYTES, ProgressReporter
    from abalone_platform.defs.shared.resources import ArtifactStore

    files = ArtifactStore(root=str(tmp_path)).s3_files()
    reporter = files.transfer_progress("upload s3://bucket/key", 10 << 20)
    assert isinstance(reporter, ProgressReporter)
    assert reporter.unit == BYTES and reporter.total == 10 << 20
