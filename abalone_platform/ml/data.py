"""Reading and validating abalone CSV files (the UCI layout, headerless)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

NUMERIC_COLUMNS: tuple[str, ...] = (
    "length",
    "diameter",
    "height",
    "whole_weight",
    "shucked_weight",
    "viscera_weight",
    "shell_weight",
)
SEX_COLUMN = "sex"
LABEL_COLUMN = "rings"
FEATURE_COLUMNS: tuple[str, ...] = (SEX_COLUMN, *NUMERIC_COLUMNS)
RAW_COLUMNS: tuple[str, ...] = (*FEATURE_COLUMNS, LABEL_COLUMN)
SEX_CODES: tuple[str, ...] = ("F", "I", "M")
# Sex as small integers: the index in SEX_CODES, MISSING_SEX for an empty field. Comparing
# strings row by row is what made parsing slow; codes are compared and one-hot encoded at C speed.
MISSING_SEX = len(SEX_CODES)
SEX_BY_CODE = np.array([*SEX_CODES, ""])

# Large enough that pyarrow's per-block overhead vanishes, small enough to bound memory.
DEFAULT_BLOCK_SIZE = 16 << 20
# Below this a second process costs more than it saves (interpreter start + imports).
MIN_BYTES_PER_WORKER = 32 << 20


class InputDataError(ValueError):
    """Bad input data; the message names the parameter, the file and, where known, the line."""

    def __init__(self, parameter: str, location: str, problem: str, line: int | None = None):
        self.parameter = parameter
        self.location = location
        self.line = line
        self.problem = problem
        where = f"{location} line {line}" if line is not None else location
        super().__init__(f"{parameter}: {where}: {problem}")


@dataclass(frozen=True)
class RawColumns:
    """Parsed columns of an abalone file: sex as strings, numerics as float64 (NaN = missing)."""

    sex: np.ndarray
    numerics: np.ndarray  # shape (n, 7)
    rings: np.ndarray | None  # shape (n,), None for batch files without a label

    def __len__(self) -> int:
        return len(self.sex)

    def take(self, index: np.ndarray) -> RawColumns:
        return RawColumns(
            sex=self.sex[index],
            numerics=self.numerics[index],
            rings=None if self.rings is None else self.rings[index],
        )


def count_columns(path: Path, parameter: str) -> int:
    """Column count of the first non-empty line; 8 (features) or 9 (features + rings)."""
    with open(path, newline="") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                columns = len(next(csv.reader([line])))
                if columns not in (len(FEATURE_COLUMNS), len(RAW_COLUMNS)):
                    raise InputDataError(
                        parameter,
                        str(path),
                        f"expected {len(FEATURE_COLUMNS)} or {len(RAW_COLUMNS)} comma-separated "
                        f"columns ({', '.join(RAW_COLUMNS)}), found {columns}",
                        line_number,
                    )
                return columns
    raise InputDataError(parameter, str(path), "file is empty")


def _convert_options(columns: int) -> pacsv.ConvertOptions:
    names = RAW_COLUMNS[:columns]
    types = {name: pa.float64() for name in names if name != SEX_COLUMN}
    types[SEX_COLUMN] = pa.string()
    return pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)


def _read_options(columns: int, block_size: int) -> pacsv.ReadOptions:
    return pacsv.ReadOptions(
        column_names=list(RAW_COLUMNS[:columns]), block_size=block_size, use_threads=False
    )


_SEX_VALUE_SET = pa.array(SEX_CODES)


def sex_codes(sex: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, bool]:
    """Codes (int8, see MISSING_SEX) of a parsed sex column, and whether all values are known."""
    index = pc.index_in(sex, value_set=_SEX_VALUE_SET)
    # index_in gives null both for a null (empty) field and for an unknown code.
    known = index.null_count == sex.null_count
    codes = pc.fill_null(index, MISSING_SEX).cast(pa.int8()).to_numpy(zero_copy_only=False)
    return codes, known


@dataclass(frozen=True)
class ParsedBatch:
    """One validated block of a file, with columns kept as arrays (no per-row Python objects)."""

    numerics: tuple[np.ndarray, ...]  # 7 float64 columns, NaN = missing
    sex_codes: np.ndarray  # int8, see MISSING_SEX
    rings: np.ndarray | None

    def __len__(self) -> int:
        return len(self.sex_codes)


def _float_column(batch: pa.RecordBatch, name: str) -> np.ndarray:
    # Zero-copy when the column has no nulls; nulls become NaN otherwise.
    return batch.column(name).to_numpy(zero_copy_only=False)


def iter_parsed_batches(
    path: Path,
    parameter: str,
    *,
    require_label: bool,
    block_size: int = DEFAULT_BLOCK_SIZE,
    source: object | None = None,
) -> Iterator[ParsedBatch]:
    """Stream a headerless abalone CSV as validated blocks.

    With ``require_label`` the file must have 9 columns (rings last); otherwise 8 or 9, and a
    rings column is read but may be ignored by the caller. ``source`` is an optional stream over
    (part of) ``path``; errors are always reported against ``path`` and its line numbers.
    """
    columns = count_columns(path, parameter)
    if require_label and columns != len(RAW_COLUMNS):
        raise InputDataError(
            parameter,
            str(path),
            f"expected {len(RAW_COLUMNS)} columns ({', '.join(RAW_COLUMNS)}), found {columns}",
            1,
        )
    with_label = columns == len(RAW_COLUMNS)
    try:
        reader = pacsv.open_csv(
            source if source is not None else str(path),
            read_options=_read_options(columns, block_size),
            convert_options=_convert_options(columns),
        )
        for batch in reader:
            codes, known = sex_codes(batch.column(SEX_COLUMN))
            rings = _float_column(batch, LABEL_COLUMN) if with_label else None
            bad_label = require_label and bool(np.isnan(rings).any())
            if not known or bad_label:
                # Locating the line needs the raw text; only pay for it when something is wrong.
                raise locate_error(path, parameter, require_label)
            yield ParsedBatch(
                numerics=tuple(_float_column(batch, name) for name in NUMERIC_COLUMNS),
                sex_codes=codes,
                rings=rings,
            )
    except pa.ArrowInvalid as exc:
        raise locate_error(path, parameter, require_label) from exc


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


@dataclass(frozen=True)
class _Parsed:
    """A whole file's (or byte range's) validated columns, before sex codes become strings."""

    numerics: np.ndarray  # (n, 7) float64
    sex_codes: np.ndarray  # int8
    rings: np.ndarray | None


def _parse(
    path: Path, parameter: str, require_label: bool, byte_range: tuple[int, int] | None = None
) -> _Parsed:
    if byte_range is None:
        batches = list(iter_parsed_batches(path, parameter, require_label=require_label))
    else:
        start, end = byte_range
        with pa.OSFile(str(path)) as handle:
            source = handle.get_stream(start, end - start)
            batches = list(
                iter_parsed_batches(path, parameter, require_label=require_label, source=source)
            )
    total = sum(len(b) for b in batches)
    # Filled column by column: one full-size array per column, never a per-block copy too.
    numerics = np.empty((total, len(NUMERIC_COLUMNS)), dtype=np.float64)
    for j in range(len(NUMERIC_COLUMNS)):
        np.concatenate([b.numerics[j] for b in batches] or [np.empty(0)], out=numerics[:, j])
    with_label = bool(batches) and batches[0].rings is not None
    return _Parsed(
        numerics=numerics,
        sex_codes=np.concatenate([b.sex_codes for b in batches] or [np.empty(0, np.int8)]),
        rings=np.concatenate([b.rings for b in batches]) if with_label else None,
    )


# A worker is a fresh interpreter running only this module (numpy + pyarrow), not
# multiprocessing's spawn, which re-imports the parent's main module (e.g. the Dagster CLI).
_PARSE_WORKER = "from abalone_platform.ml.data import _parse_worker_main; _parse_worker_main()"


def _parse_worker_main() -> None:
    path, parameter, require_label, start, end, out = sys.argv[1:]
    try:
        parsed = _parse(Path(path), parameter, require_label == "1", (int(start), int(end)))
    except InputDataError as exc:
        error = {"parameter": exc.parameter, "location": exc.location, "problem": exc.problem}
        Path(out + ".error.json").write_text(json.dumps({**error, "line": exc.line}))
        sys.exit(3)
    # .npy is a data-only format: loaded back with allow_pickle=False.
    np.save(out + ".numerics.npy", parsed.numerics)
    np.save(out + ".sex.npy", parsed.sex_codes)
    if parsed.rings is not None:
        np.save(out + ".rings.npy", parsed.rings)


def _parse_in_processes(
    path: Path, parameter: str, require_label: bool, ranges: list[tuple[int, int]]
) -> list[_Parsed]:
    """The first range in this process, the others each in a worker interpreter."""
    with tempfile.TemporaryDirectory(prefix="abalone-parse-") as tmp:
        outs = [str(Path(tmp) / f"part{i}") for i in range(len(ranges))]
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _PARSE_WORKER,
                    str(path),
                    parameter,
                    "1" if require_label else "0",
                    str(start),
                    str(end),
                    out,
                ]
            )
            for (start, end), out in zip(ranges[1:], outs[1:], strict=True)
        ]
        try:
            parts = [_parse(path, parameter, require_label, ranges[0])]
        finally:
            codes = [worker.wait() for worker in workers]
        for out, code in zip(outs[1:], codes, strict=True):
            error = Path(out + ".error.json")
            if error.exists():
                raise InputDataError(**json.loads(error.read_text()))
            if code != 0:
                raise RuntimeError(f"parsing worker for {path} exited with status {code}")
            rings = Path(out + ".rings.npy")
            parts.append(
                _Parsed(
                    numerics=np.load(out + ".numerics.npy", allow_pickle=False),
                    sex_codes=np.load(out + ".sex.npy", allow_pickle=False),
                    rings=np.load(rings, allow_pickle=False) if rings.exists() else None,
                )
            )
    return parts


def read_abalone_csv(
    path: Path,
    parameter: str,
    *,
    require_label: bool,
    workers: int = 1,
    min_bytes_per_worker: int = MIN_BYTES_PER_WORKER,
) -> RawColumns:
    """Read a whole abalone CSV (validated); see ``iter_parsed_batches``.

    With ``workers`` > 1 (ProcessingInstanceCount) and at least ``min_bytes_per_worker`` bytes
    per worker, line-aligned byte ranges are parsed by that many processes; the result, and any
    error's file and line, are the same as with one.
    """
    if not path.exists():
        raise InputDataError(parameter, str(path), "file does not exist")
    size = path.stat().st_size
    if size == 0:
        raise InputDataError(parameter, str(path), "file is empty")
    workers = max(1, min(workers, size // min_bytes_per_worker))
    if workers == 1:
        parts = [_parse(path, parameter, require_label)]
    else:
        parts = _parse_in_processes(
            path, parameter, require_label, line_aligned_ranges(path, workers)
        )
    if sum(len(p.sex_codes) for p in parts) == 0:
        raise InputDataError(parameter, str(path), "file has no data rows")
    if len(parts) == 1:
        whole = parts[0]
    else:
        with_label = all(p.rings is not None for p in parts)
        whole = _Parsed(
            numerics=np.concatenate([p.numerics for p in parts]),
            sex_codes=np.concatenate([p.sex_codes for p in parts]),
            rings=np.concatenate([p.rings for p in parts]) if with_label else None,
        )
    return RawColumns(sex=SEX_BY_CODE[whole.sex_codes], numerics=whole.numerics, rings=whole.rings)


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)
    return value


def locate_error(path: Path, parameter: str, require_label: bool) -> InputDataError:
    """Scan ``path`` line by line and describe its first bad line.

    The fast parser tells that something is wrong but not reliably where; this slow pass runs
    only after it failed, so a good file never pays for it.
    """
    expected: int | None = None
    with open(path, newline="") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = next(csv.reader([line]))
            if expected is None:
                expected = len(fields)
                if require_label and expected != len(RAW_COLUMNS):
                    expected = len(RAW_COLUMNS)
            if len(fields) != expected:
                return InputDataError(
                    parameter,
                    str(path),
                    f"expected {expected} columns ({', '.join(RAW_COLUMNS[:expected])}), "
                    f"found {len(fields)}",
                    line_number,
                )
            sex = fields[0].strip()
            if sex not in (*SEX_CODES, ""):
                return InputDataError(
                    parameter,
                    str(path),
                    f"column 'sex' has unknown code {sex!r} (expected one of "
                    f"{', '.join(SEX_CODES)})",
                    line_number,
                )
            for name, text in zip(RAW_COLUMNS[1:expected], fields[1:], strict=False):
                if not text.strip():
                    if name == LABEL_COLUMN and require_label:
                        return InputDataError(
                            parameter, str(path), "column 'rings' is empty", line_number
                        )
                    continue
                try:
                    _parse_float(text)
                except ValueError:
                    return InputDataError(
                        parameter,
                        str(path),
                        f"column {name!r} value {text!r} is not a number",
                        line_number,
                    )
    return InputDataError(parameter, str(path), "file could not be parsed as abalone CSV")
