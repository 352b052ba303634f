"""AbaloneProcess's parse/validate as Dask tasks: one line-aligned byte range each, joined in
file order, so the rows (and everything processing makes of them) are the in-process ones."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from abalone_platform.compute.cluster import StepCluster
from abalone_platform.compute.pieces import PIECE_BYTES, BadRange, piece_ranges, worker_address
from abalone_platform.compute.ranges import RangeSource
from abalone_platform.faults import fault_point
from abalone_platform.ml.data import (
    RAW_COLUMNS,
    AbaloneColumns,
    InvalidBlock,
    RowsBuilder,
    check_has_rows,
    check_not_empty,
    file_columns,
    locate_error,
    max_rows,
    parse_stream,
)


@dataclass(frozen=True)
class ParsedPiece:
    rows: AbaloneColumns | BadRange
    worker: str


def parse_piece(
    source: RangeSource, columns: int, require_label: bool, start: int, end: int
) -> ParsedPiece:
    """A Dask task: the validated rows of bytes [start, end) of ``source``."""
    fault_point("compute.parse_piece")
    try:
        with source.open(start, end) as stream:
            rows = AbaloneColumns.concat(
                list(
                    parse_stream(
                        stream, columns, require_label=require_label, location=source.location
                    )
                ),
                source=source.location,
            )
    except InvalidBlock as exc:
        return ParsedPiece(BadRange(exc.detail), worker_address())
    return ParsedPiece(rows, worker_address())


@dataclass(frozen=True)
class DaskRead:
    rows: AbaloneColumns
    tasks_per_worker: dict[str, int]


def read_abalone_csv_on(
    cluster: StepCluster,
    path: Path,
    source: RangeSource,
    parameter: str,
    *,
    require_label: bool,
    piece_bytes: int = PIECE_BYTES,
) -> DaskRead:
    """``ml.data.read_abalone_csv`` as tasks on ``cluster``: the same rows, the same errors.

    ``path`` is this process's copy of the input (for the cuts, and to locate a bad line with
    its global line number); the workers read ``source`` themselves.
    """
    check_not_empty(path, parameter)
    columns = file_columns(path, parameter, require_label=require_label)
    futures = [
        cluster.client.submit(parse_piece, source, columns, require_label, start, end, pure=False)
        for start, end in piece_ranges(path, len(cluster.workers), piece_bytes)
    ]
    builder = RowsBuilder(max_rows(path), with_label=columns == len(RAW_COLUMNS))
    workers: Counter[str] = Counter()
    try:
        # In file order, each piece copied into the rows and released as it arrives.
        for index, future in enumerate(futures):
            piece: ParsedPiece = future.result()
            futures[index] = None
            if isinstance(piece.rows, BadRange):
                # The file's first bad line, whichever range held it: what one process reports.
                raise locate_error(path, parameter, require_label, detail=piece.rows.detail)
            builder.add(piece.rows)
            workers[piece.worker] += 1
    finally:
        for future in futures:
            if future is not None:
                future.cancel()
    check_has_rows(builder.rows, path, parameter)
    return DaskRead(rows=builder.build(str(path)), tasks_per_worker=dict(workers))
