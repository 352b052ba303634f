"""AbaloneTransform: batch predictions from raw feature rows, streamed in chunks.

The reference fed pre-scaled libsvm rows whose features landed one column to the right. Here the
input is the raw CSV a user has, and the bundle's own preprocessor is applied to it.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from abalone_platform.ml.bundle import ModelBundle, read_bundle
from abalone_platform.ml.data import (
    DEFAULT_BLOCK_SIZE,
    InputDataError,
    RawColumns,
    iter_abalone_chunks,
)
from abalone_platform.ml.train import predict_features

BATCH_PARAMETER = "batch_data (BatchData)"
# Below this a second process costs more than it saves (interpreter start + imports).
MIN_BYTES_PER_WORKER = 32 << 20


def predict_rows(bundle: ModelBundle, rows: RawColumns) -> np.ndarray:
    return predict_features(bundle.booster, bundle.preprocessor.transform(rows))


def _format(predictions: np.ndarray) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(
        pa.table({"p": pa.array(predictions, type=pa.float32())}),
        sink,
        pacsv.WriteOptions(include_header=False),
    )
    return sink.getvalue()


class _ByteRange(io.RawIOBase):
    """A read-only view of bytes [start, end) of a file."""

    def __init__(self, path: Path, start: int, end: int):
        self._handle = open(path, "rb")
        self._handle.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: self._left]
        read = self._handle.readinto(view)
        self._left -= read
        return read

    def close(self) -> None:
        self._handle.close()
        super().close()


def line_aligned_ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """Split a file into ``parts`` byte ranges that start and end on line boundaries."""
    size = path.stat().st_size
    cuts = [0]
    with open(path, "rb") as handle:
        for k in range(1, parts):
            handle.seek(max(cuts[-1], size * k // parts))
            handle.readline()
            cuts.append(min(handle.tell(), size))
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def _transform_range(
    bundle_dir: str,
    bundle_sha256: str,
    path: str,
    start: int,
    end: int,
    out_path: str,
    block_size: int,
) -> int:
    bundle = read_bundle(Path(bundle_dir), bundle_sha256)
    rows = 0
    with _ByteRange(Path(path), start, end) as source, open(out_path, "wb") as out:
        for chunk in iter_abalone_chunks(
            Path(path),
            BATCH_PARAMETER,
            require_label=False,
            block_size=block_size,
            source=source,
        ):
            out.write(_format(predict_rows(bundle, chunk)))
            rows += len(chunk)
    return rows


def batch_transform(
    bundle_dir: Path,
    bundle_sha256: str,
    input_path: Path,
    output_path: Path,
    *,
    workers: int = 1,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> int:
    """Predict one rings value per row of ``input_path`` into ``output_path`` (headerless CSV,
    input order). Streams in blocks of ``block_size`` bytes; with ``workers`` > 1 and a large
    enough file, byte ranges go to that many processes and their outputs are joined in order.
    Returns the row count."""
    if not input_path.exists():
        raise InputDataError(BATCH_PARAMETER, str(input_path), "file does not exist")
    if input_path.stat().st_size == 0:
        raise InputDataError(BATCH_PARAMETER, str(input_path), "file is empty")
    size = input_path.stat().st_size
    workers = max(1, min(workers, size // MIN_BYTES_PER_WORKER or 1))
    ranges = line_aligned_ranges(input_path, workers)
    parts = [output_path.with_name(f"{output_path.name}.part{i}") for i in range(len(ranges))]
    args = [
        (str(bundle_dir), bundle_sha256, str(input_path), a, b, str(part), block_size)
        for (a, b), part in zip(ranges, parts, strict=True)
    ]
    try:
        if len(args) == 1:
            counts = [_transform_range(*args[0])]
        else:
            import multiprocessing

            # spawn, not fork: the caller may hold threads (Dagster's, XGBoost's OpenMP pool).
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(len(args), mp_context=context) as pool:
                counts = list(pool.map(_transform_range, *zip(*args, strict=True)))
        with open(output_path, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    while block := handle.read(8 << 20):
                        out.write(block)
    finally:
        for part in parts:
            if part.exists():
                os.unlink(part)
    total = sum(counts)
    if total == 0:
        raise InputDataError(BATCH_PARAMETER, str(input_path), "file has no data rows")
    return total
