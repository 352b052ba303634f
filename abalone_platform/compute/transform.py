"""AbaloneTransform as Dask tasks: each predicts one line-aligned byte range of BatchData and
sends back its output bytes, which this process writes in file order: the same bytes as the
in-process transform, whatever the number of workers."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from abalone_platform.compute.cluster import StepCluster
from abalone_platform.compute.pieces import PIECE_BYTES, BadRange, piece_ranges, worker_address
from abalone_platform.compute.ranges import RangeSource
from abalone_platform.faults import fault_point
from abalone_platform.ml.bundle import (
    MODEL_FILE,
    PREPROCESSOR_FILE,
    ModelBundle,
    inference_spec,
    load_booster,
    read_bundle,
)
from abalone_platform.ml.data import (
    InvalidBlock,
    check_has_rows,
    check_not_empty,
    file_columns,
    locate_error,
)
from abalone_platform.ml.predict import BATCH_PARAMETER, TRANSFORM_BLOCK_SIZE, predictions_csv
from abalone_platform.ml.preprocess import Preprocessor
from abalone_platform.storage.integrity import MANIFEST_FILE


@dataclass(frozen=True)
class BundlePayload:
    """A verified bundle's model and preprocessor as bytes, with the model's sha256 from the
    bundle's manifest: sent to each worker once, checked again there before loading."""

    sha256: str
    model: bytes
    model_sha256: str
    preprocessor: bytes

    @classmethod
    def read(cls, directory: Path, sha256: str) -> BundlePayload:
        read_bundle(directory, sha256)  # the manifest and every file checked first
        manifest = json.loads((directory / MANIFEST_FILE).read_bytes())
        return cls(
            sha256=sha256,
            model=(directory / MODEL_FILE).read_bytes(),
            model_sha256=manifest["files"][MODEL_FILE],
            preprocessor=(directory / PREPROCESSOR_FILE).read_bytes(),
        )


# Per worker process: the bundle a payload became, built once however many pieces it runs.
_LOADED: dict[str, ModelBundle] = {}


def _bundle(payload: BundlePayload, nthread: int) -> ModelBundle:
    bundle = _LOADED.get(payload.sha256)
    if bundle is None:
        bundle = ModelBundle(
            booster=load_booster(
                payload.model, payload.model_sha256, f"bundle {payload.sha256[:12]}"
            ),
            preprocessor=Preprocessor.from_json(payload.preprocessor),
            spec=inference_spec(),
        )
        _LOADED.clear()  # one model at a time: a long-lived worker does not collect them
        _LOADED[payload.sha256] = bundle
    bundle.booster.set_param({"nthread": nthread})
    return bundle


@dataclass(frozen=True)
class PredictedPiece:
    output: bytes | BadRange
    rows: int
    worker: str


def predict_piece(
    payload: BundlePayload,
    source: RangeSource,
    columns: int,
    start: int,
    end: int,
    nthread: int,
    block_size: int,
) -> PredictedPiece:
    """A Dask task: the batch transform's output for bytes [start, end) of ``source``."""
    fault_point("compute.predict_piece")
    bundle = _bundle(payload, nthread)
    try:
        with source.open(start, end) as stream:
            output, rows = predictions_csv(
                bundle, stream, columns, location=source.location, block_size=block_size
            )
    except InvalidBlock as exc:
        return PredictedPiece(BadRange(exc.detail), 0, worker_address())
    return PredictedPiece(output, rows, worker_address())


@dataclass(frozen=True)
class DaskTransform:
    rows: int
    tasks_per_worker: dict[str, int]


def batch_transform_on(
    cluster: StepCluster,
    bundle_dir: Path,
    bundle_sha256: str,
    path: Path,
    source: RangeSource,
    output_path: Path,
    *,
    block_size: int = TRANSFORM_BLOCK_SIZE,
    piece_bytes: int = PIECE_BYTES,
    progress: Callable[[int], None] | None = None,
) -> DaskTransform:
    """``ml.predict.batch_transform`` as tasks on ``cluster``, with byte-identical output.

    Pieces are written to ``output_path`` in file order as they arrive (each released once
    written, so this process holds about one piece's output); on any failure the output is
    removed. ``path`` is this process's copy of the input, for the cuts and to locate a bad
    line; the workers read ``source`` themselves. ``progress``, if given, is called with the
    rows written so far after each piece is written (in file order, so a piece that finishes
    early is counted when the pieces before it are in).
    """
    check_not_empty(path, BATCH_PARAMETER)
    columns = file_columns(path, BATCH_PARAMETER, require_label=False)
    client = cluster.client
    # The model and the preprocessor's JSON travel with each task (tens of kilobytes; each
    # worker loads the model once). Held by a shared task instead, they would draw every piece
    # to the worker that ran it (Dask places a task where its inputs are).
    payload = BundlePayload.read(bundle_dir, bundle_sha256)
    futures = [
        client.submit(
            predict_piece,
            payload,
            source,
            columns,
            start,
            end,
            cluster.nthread,
            block_size,
            pure=False,
        )
        for start, end in piece_ranges(path, len(cluster.workers), piece_bytes)
    ]
    rows = 0
    workers: Counter[str] = Counter()
    try:
        with open(output_path, "wb") as out:
            for index, future in enumerate(futures):
                piece: PredictedPiece = future.result()
                futures[index] = None  # released: the worker drops the piece's output
                if isinstance(piece.output, BadRange):
                    raise locate_error(path, BATCH_PARAMETER, False, detail=piece.output.detail)
                out.write(piece.output)
                rows += piece.rows
                workers[piece.worker] += 1
                if progress is not None:
                    progress(rows)
        check_has_rows(rows, path, BATCH_PARAMETER)
    except BaseException:
        for future in futures:
            if future is not None:
                future.cancel()
        output_path.unlink(missing_ok=True)  # never leave a partial output behind
        raise
    return DaskTransform(rows=rows, tasks_per_worker=dict(workers))
