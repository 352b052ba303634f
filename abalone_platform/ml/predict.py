"""AbaloneTransform: batch predictions from raw feature rows, streamed in chunks.

The reference fed pre-scaled libsvm rows whose features landed one column to the right. Here the
input is the raw CSV a user has, and the bundle's own preprocessor is applied to it.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from abalone_platform.errors import InputDataError
from abalone_platform.ml.bundle import ModelBundle, predict_features, read_bundle
from abalone_platform.ml.data import (
    MIN_BYTES_PER_WORKER,
    AbaloneColumns,
    iter_parsed_batches,
    line_aligned_ranges,
)
from abalone_platform.storage.files import check_input_file

BATCH_PARAMETER = "batch_data (BatchData)"
# Parsing reads ahead up to 32 blocks (Arrow's CSV reader), so the block size bounds memory:
# 1 MiB blocks cap the read-ahead at 32 MiB where 16 MiB blocks let it reach half a gigabyte.
TRANSFORM_BLOCK_SIZE = 1 << 20
# Rows per XGBoost call: each call has a fixed cost (its thread pool wakes up), so small parsed
# blocks are predicted together.
PREDICT_ROWS = 1 << 17
# Multi-worker runs hand out line-aligned pieces of about this size, one at a time.
PIECE_BYTES = 16 << 20


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
    bundle: ModelBundle, batches: Iterator[AbaloneColumns], write: Callable[[np.ndarray], None]
) -> int:
    """Predict every parsed block of ``batches``, handing predictions to ``write`` in order.

    Three threads: parsing runs ahead of prediction, writing behind it. Returns the row count.
    """

    def parse(stage: _Stage) -> None:
        for group in _groups(batches, PREDICT_ROWS):
            if not stage.put(group):
                return

    results: queue.Queue = queue.Queue(2)
    writer_error: list[BaseException] = []

    def drain() -> None:
        while (item := results.get()) is not _DONE:
            if not writer_error:
                try:
                    write(item)
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


def transform_range(
    bundle: ModelBundle, path: Path, start: int, end: int, out_path: Path, block_size: int
) -> int:
    """Predictions for the lines in bytes [start, end) of ``path`` into ``out_path``."""
    # A native stream over the byte range: Arrow's read-ahead thread then never needs the GIL.
    with pa.OSFile(str(path)) as handle, pa.OSFile(str(out_path), "wb") as out:
        source = handle.get_stream(start, end - start)
        batches = iter_parsed_batches(
            path, BATCH_PARAMETER, require_label=False, block_size=block_size, source=source
        )
        return transform_stream(bundle, batches, lambda p: _write_predictions(p, out))


# A worker process: a fresh interpreter (not multiprocessing's spawn, which would re-run the
# parent's main module, e.g. the whole Dagster CLI). scikit-learn is kept out of it: XGBoost
# imports it at import time only for its sklearn-style estimators, which prediction never uses,
# and it is most of a worker's start-up time.
_WORKER_CODE = (
    "import sys; sys.modules.setdefault('sklearn', None); "
    "from abalone_platform.ml.predict import _worker_main; _worker_main()"
)


def _worker_main() -> None:
    """Serve pieces read as JSON lines on stdin; answer each with one JSON line on stdout."""
    setup = json.loads(sys.stdin.readline())
    bundle = read_bundle(Path(setup["bundle_dir"]), setup["bundle_sha256"])
    bundle.booster.set_param({"nthread": setup["nthread"]})
    for line in sys.stdin:
        piece = json.loads(line)
        try:
            rows = transform_range(
                bundle,
                Path(setup["path"]),
                piece["start"],
                piece["end"],
                Path(piece["out"]),
                setup["block_size"],
            )
            answer = {"rows": rows}
        except InputDataError as exc:  # raised again in the parent, naming file and line
            answer = {
                "input_error": {
                    "parameter": exc.parameter,
                    "location": exc.location,
                    "problem": exc.problem,
                    "line": exc.line,
                }
            }
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


class _Worker:
    def __init__(self, setup: dict):
        # Processes share the cores: XGBoost's OpenMP threads should sleep, not spin, when idle.
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self._send(setup)

    def _send(self, message: dict) -> None:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def run(self, start: int, end: int, out: Path) -> int:
        self._send({"start": start, "end": end, "out": str(out)})
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise RuntimeError(f"batch transform worker exited with status {code}")
        answer = json.loads(line)
        # Plain data over the pipe, never pickles: the parent only needs to say what went wrong.
        if "input_error" in answer:
            raise InputDataError(**answer["input_error"])
        if "error" in answer:
            raise RuntimeError(f"batch transform worker failed: {answer['error']}")
        return answer["rows"]

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def _run_pieces(
    bundle_dir: Path,
    bundle_sha256: str,
    input_path: Path,
    pieces: list[tuple[int, int]],
    parts: list[Path],
    workers: int,
    block_size: int,
) -> list[int]:
    """Pieces handed out one at a time to this process and ``workers - 1`` worker processes.

    Handing out small pieces on demand, rather than one range per worker, balances the load
    although the workers start late (they import XGBoost) and the machine may be busy.
    """
    nthread = max(1, (os.cpu_count() or 1) // workers)
    counts = [0] * len(pieces)
    claimed = iter(range(len(pieces)))
    lock = threading.Lock()
    failed = threading.Event()
    errors: list[BaseException] = []

    def serve(run: Callable[[int, int, Path], int]) -> None:
        while not failed.is_set():
            with lock:
                index = next(claimed, None)
            if index is None:
                return
            try:
                counts[index] = run(*pieces[index], parts[index])
            except BaseException as exc:  # collected, re-raised below
                errors.append(exc)
                failed.set()

    def local() -> None:
        bundle = read_bundle(bundle_dir, bundle_sha256)
        bundle.booster.set_param({"nthread": nthread})
        serve(lambda a, b, out: transform_range(bundle, input_path, a, b, out, block_size))

    def remote() -> None:
        try:
            worker = _Worker(
                {
                    "bundle_dir": str(bundle_dir),
                    "bundle_sha256": bundle_sha256,
                    "path": str(input_path),
                    "block_size": block_size,
                    "nthread": nthread,
                }
            )
        except BaseException as exc:
            errors.append(exc)
            failed.set()
            return
        try:
            serve(worker.run)
        finally:
            worker.close()

    threads = [threading.Thread(target=local)]
    threads += [threading.Thread(target=remote) for _ in range(workers - 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        # Every InputDataError names the file's first bad line (found by a scan from its start),
        # so whichever piece reported it, it is the same error.
        raise next((e for e in errors if isinstance(e, InputDataError)), errors[0])
    return counts


def batch_transform(
    bundle_dir: Path,
    bundle_sha256: str,
    input_path: Path,
    output_path: Path,
    *,
    workers: int = 1,
    block_size: int = TRANSFORM_BLOCK_SIZE,
    min_bytes_per_worker: int = MIN_BYTES_PER_WORKER,
) -> int:
    """Predict one rings value per row of ``input_path`` into ``output_path`` (headerless CSV,
    input order). Streams in blocks of ``block_size`` bytes; with ``workers`` > 1 and at least
    ``min_bytes_per_worker`` bytes per worker, the file's line-aligned pieces are shared between
    this process and ``workers - 1`` worker processes, and their outputs joined in order.
    Returns the row count."""
    # Missing, a FIFO or device, unreadable: refused by name before anything is opened to read.
    size = check_input_file(input_path, BATCH_PARAMETER).st_size
    if size == 0:
        raise InputDataError(BATCH_PARAMETER, str(input_path), "file is empty")
    workers = max(1, min(workers, size // min_bytes_per_worker or 1))
    if workers == 1:
        # One worker streams the file straight into the output, with every core for XGBoost.
        try:
            total = transform_range(
                read_bundle(bundle_dir, bundle_sha256), input_path, 0, size, output_path, block_size
            )
        except BaseException:
            output_path.unlink(missing_ok=True)  # never leave a partial output behind
            raise
    else:
        piece_bytes = max(min_bytes_per_worker // 2, min(PIECE_BYTES, size // (4 * workers)))
        pieces = line_aligned_ranges(input_path, max(workers, -(-size // piece_bytes)))
        parts = [output_path.with_name(f"{output_path.name}.part{i}") for i in range(len(pieces))]
        try:
            counts = _run_pieces(
                bundle_dir, bundle_sha256, input_path, pieces, parts, workers, block_size
            )
            with open(output_path, "wb") as out:
                for part in parts:
                    with open(part, "rb") as handle:
                        shutil.copyfileobj(handle, out, 8 << 20)
        finally:
            for part in parts:
                if part.exists():
                    os.unlink(part)
        total = sum(counts)
    if total == 0:
        output_path.unlink(missing_ok=True)
        raise InputDataError(BATCH_PARAMETER, str(input_path), "file has no data rows")
    return total
