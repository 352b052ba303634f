"""AbaloneTransform: batch predictions from raw feature rows, streamed in chunks.

The reference fed pre-scaled libsvm rows whose features landed one column to the right. Here the
input is the raw CSV a user has, and the bundle's own preprocessor is applied to it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from abalone_platform.errors import BATCH_PARAMETER
from abalone_platform.ml.bundle import ModelBundle, predict_features, read_bundle
from abalone_platform.ml.data import (
    AbaloneColumns,
    check_has_rows,
    check_not_empty,
    iter_parsed_batches,
    parse_stream,
)

# Parsing reads ahead up to 32 blocks (Arrow's CSV reader), so the block size bounds memory:
# 1 MiB blocks cap the read-ahead at 32 MiB where 16 MiB blocks let it reach half a gigabyte.
TRANSFORM_BLOCK_SIZE = 1 << 20
# Rows per XGBoost call: each call has a fixed cost (its thread pool wakes up), so small parsed
# blocks are predicted together.
PREDICT_ROWS = 1 << 17


def _write_predictions(predictions: np.ndarray, sink: pa.NativeFile) -> None:
    pacsv.write_csv(pa.table({"p": pa.array(predictions, type=pa.float32())}), sink, _WRITE_OPTIONS)


def format_predictions(predictions: np.ndarray) -> bytes:
    """Predictions as the batch transform writes them: one float32 value per line."""
    sink = pa.BufferOutputStream()
    _write_predictions(predictions, sink)
    return sink.getvalue().to_pybytes()


_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False)


def _groups(batches: Iterator[AbaloneColumns], rows: int) -> Iterator[list[AbaloneColumns]]:
    """Parsed blocks gathered until they hold at least ``rows`` rows (not joined: each is
    transformed straight into its slice of the group's feature matrix)."""
    group: list[AbaloneColumns] = []
    size = 0
    for batch in batches:
        group.append(batch)
        size += len(batch)
        if size >= rows:
            yield group
            group, size = [], 0
    if group:
        yield group


_DONE = object()


class _Stage:
    """A background thread fed through a bounded queue (the bound is what caps memory).

    Parsing (Arrow), prediction (XGBoost) and formatting (Arrow) all release the GIL, so one
    thread per stage lets the next block parse and the last one be written while XGBoost works.
    """

    def __init__(self, target: Callable[[_Stage], None], depth: int = 2):
        self.queue: queue.Queue = queue.Queue(depth)
        self.stop = threading.Event()
        self.error: BaseException | None = None

        def run() -> None:
            try:
                target(self)
            except BaseException as exc:  # handed to the consumer, re-raised there
                self.error = exc
            finally:
                self.put(_DONE)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def put(self, item: object) -> bool:
        """Queue ``item``; False once the consumer has stopped listening."""
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> object:
        item = self.queue.get()
        if item is _DONE and self.error is not None:
            raise self.error
        return item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def transform_stream(
    bundle: ModelBundle,
    batches: Iterator[AbaloneColumns],
    write: Callable[[np.ndarray], None],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Predict every parsed block of ``batches``, handing predictions to ``write`` in order.

    Three threads: parsing runs ahead of prediction, writing behind it. Returns the row count.
    ``progress`` is called from the writing thread with the rows written so far, after each
    group is written (counted there, not at prediction, so it never runs ahead of the output).
    """

    def parse(stage: _Stage) -> None:
        for group in _groups(batches, PREDICT_ROWS):
            if not stage.put(group):
                return

    results: queue.Queue = queue.Queue(2)
    writer_error: list[BaseException] = []

    def drain() -> None:
        written = 0
        while (item := results.get()) is not _DONE:
            if not writer_error:
                try:
                    write(item)
                    if progress is not None:
                        written += len(item)
                        progress(written)
                except BaseException as exc:  # re-raised by the producer
                    writer_error.append(exc)

    writer = threading.Thread(target=drain, daemon=True)
    writer.start()
    parser = _Stage(parse)
    rows = 0
    width = len(bundle.preprocessor.output_columns)
    try:
        while (group := parser.get()) is not _DONE:
            size = sum(len(batch) for batch in group)
            features = np.empty((size, width), np.float32)
            at = 0
            for batch in group:
                bundle.preprocessor.transform(batch, out=features[at : at + len(batch)])
                at += len(batch)
            results.put(predict_features(bundle.booster, features))
            rows += size
            if writer_error:
                break
    finally:
        parser.close()
        results.put(_DONE)
        writer.join()
    if writer_error:
        raise writer_error[0]
    return rows


def predictions_csv(
    bundle: ModelBundle,
    source: object,
    columns: int,
    *,
    location: str,
    block_size: int = TRANSFORM_BLOCK_SIZE,
) -> tuple[bytes, int]:
    """The batch transform's output bytes for one stream (a line-aligned byte range of a batch
    file of ``columns`` columns), and its row count. A bad value raises
    ``ml.data.InvalidBlock``; the caller locates its line in the whole file."""
    sink = pa.BufferOutputStream()
    batches = parse_stream(
        source, columns, require_label=False, location=location, block_size=block_size
    )
    rows = transform_stream(bundle, batches, lambda p: _write_predictions(p, sink))
    return sink.getvalue().to_pybytes(), rows


def batch_transform(
    bundle_dir: Path,
    bundle_sha256: str,
    input_path: Path,
    output_path: Path,
    *,
    block_size: int = TRANSFORM_BLOCK_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Predict one rings value per row of ``input_path`` into ``output_path`` (headerless CSV,
    input order), in this process: streamed in blocks of ``block_size`` bytes, with every core
    for XGBoost. Returns the row count. ``progress``, if given, is called with the rows written
    so far as each group of about PREDICT_ROWS rows is written (from the writing thread).
    (ProcessingInstanceCount > 1 runs line-aligned pieces as Dask tasks instead:
    abalone_platform.compute, with byte-identical output.)"""
    check_not_empty(input_path, BATCH_PARAMETER)
    try:
        bundle = read_bundle(bundle_dir, bundle_sha256)
        # A native stream: Arrow's read-ahead thread then never needs the GIL.
        with pa.OSFile(str(input_path)) as handle, pa.OSFile(str(output_path), "wb") as out:
            batches = iter_parsed_batches(
                input_path,
                BATCH_PARAMETER,
                require_label=False,
                block_size=block_size,
                source=handle,
            )
            total = transform_stream(
                bundle, batches, lambda p: _write_predictions(p, out), progress
            )
        check_has_rows(total, input_path, BATCH_PARAMETER)
    except BaseException:
        output_path.unlink(missing_ok=True)  # never leave a partial output behind
        raise
    return total


# Enough lines for a steady mean line length (about 25,000 rows of the UCI file), one read.
ESTIMATE_SAMPLE_BYTES = 1 << 20


def estimated_rows(path: Path, sample_bytes: int = ESTIMATE_SAMPLE_BYTES) -> int:
    """About how many rows ``path`` holds, from the line length of its first ``sample_bytes``
    and its size: a total for progress lines at the cost of one small read (counting every
    line would be a pass over the whole file before the transform's own). The line count
    itself when the file fits in the sample."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        sample = handle.read(sample_bytes)
    lines = sample.count(b"\n")
    if len(sample) == size:
        return lines + (1 if sample and not sample.endswith(b"\n") else 0)
    if lines == 0:
        return 1  # one line longer than the sample: nothing to estimate from
    return round(size * lines / len(sample))
