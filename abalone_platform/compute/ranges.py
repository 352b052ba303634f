"""Where a task reads its byte range from: the input file itself (a path the workers see) or
the S3 object (a ranged GET through boto3's standard credentials chain, pinned to the ETag the
step hashed), never bytes sent by the step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from abalone_platform.storage.s3 import parse_s3_uri


class RangeSourceError(RuntimeError):
    """A worker could not read its range (a path it does not see, an S3 error)."""


@dataclass(frozen=True)
class RangeSource:
    """An input as workers read it: ``path``, or the S3 object ``s3_uri`` at ``etag``."""

    path: str
    s3_uri: str = ""
    etag: str = ""

    @property
    def location(self) -> str:
        return self.s3_uri or self.path

    @contextmanager
    def open(self, start: int, end: int) -> Iterator[pa.NativeFile]:
        """A stream over bytes [start, end), closed afterwards."""
        if self.s3_uri:
            with pa.BufferReader(self._s3_range(start, end)) as stream:
                yield stream
            return
        if not Path(self.path).is_file():
            raise RangeSourceError(
                f"this Dask worker cannot see {self.path}; give the workers a shared file "
                "system, or the input as s3://"
            )
        # A native stream over the range: Arrow's read-ahead thread never needs the GIL.
        with pa.OSFile(self.path) as handle:
            yield handle.get_stream(start, end - start)

    def _s3_range(self, start: int, end: int) -> bytes:
        import boto3

        location = parse_s3_uri(self.s3_uri)
        try:
            response = boto3.client("s3").get_object(
                Bucket=location.bucket,
                Key=location.key,
                Range=f"bytes={start}-{end - 1}",
                # The object the step hashed, or an error: never a newer one half-way through.
                **({"IfMatch": self.etag} if self.etag else {}),
            )
            data = response["Body"].read()
        except Exception as exc:
            raise RangeSourceError(f"{self.s3_uri} bytes {start}-{end - 1}: {exc}") from exc
        if len(data) != end - start:
            raise RangeSourceError(f"{self.s3_uri} bytes {start}-{end - 1}: got {len(data)} bytes")
        return data
