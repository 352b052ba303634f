"""Reading and validating abalone CSV files (the UCI layout, headerless)."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from abalone_platform.errors import InputDataError
from abalone_platform.storage.files import check_input_file, open_input_file, stat_input_file

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

# Large enough that pyarrow's per-block overhead vanishes, small enough to bound memory: Arrow's
# streaming CSV reader reads up to 32 blocks ahead, so 4 MiB blocks cap that at 128 MiB beside
# the parsed rows (16 MiB blocks let it reach half a gigabyte at 30M rows).
DEFAULT_BLOCK_SIZE = 4 << 20
# Longest line read as text (the first line, and every line while locating an error). A UCI row
# is under 50 characters and one with full-precision floats under 200; a longer line is not an
# abalone row, and a bound keeps a multi-gigabyte "line" out of memory (and under csv's own
# 131,072-character field limit, which would otherwise raise a bare csv.Error).
MAX_LINE_CHARS = 65_536
# Padding around a value that is ignored: what Arrow's number parser skips, so the text scan
# (locate_error) and the fast parser agree on every field.
PADDING = " \t"


@dataclass(frozen=True)
class AbaloneColumns:
    """Validated columns of an abalone file, or of a block or byte range of one.

    Arrays only, no per-row Python objects: sex as int8 codes, the seven measurements as one
    (n, 7) float64 array, rings as float64. Blocks streamed by ``iter_parsed_batches`` hold
    their numerics column-major, each column contiguous as the preprocessor reads it; whole
    files (``concat``, ``read_abalone_csv``) row-major. Either layout holds the same values.
    """

    sex_codes: np.ndarray  # (n,) int8: the index in SEX_CODES, MISSING_SEX for an empty field
    numerics: np.ndarray  # (n, 7) float64 in NUMERIC_COLUMNS order, NaN = missing
    rings: np.ndarray | None  # (n,) float64; None for a batch file without the column
    # The file the rows came from, so that an error about the rows as a whole (too few to
    # split) can name it; empty for rows built in memory.
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.sex_codes)
        if self.sex_codes.dtype != np.int8 or self.sex_codes.ndim != 1:
            raise ValueError(f"sex_codes must be a 1-d int8 array, not {self.sex_codes.dtype}")
        if self.numerics.dtype != np.float64 or self.numerics.shape != (n, len(NUMERIC_COLUMNS)):
            raise ValueError(
                f"numerics must be a ({n}, {len(NUMERIC_COLUMNS)}) float64 array, not "
                f"{self.numerics.shape} {self.numerics.dtype}"
            )
        if self.rings is not None and self.rings.shape != (n,):
            raise ValueError(f"rings must have shape ({n},), not {self.rings.shape}")

    def __len__(self) -> int:
        return len(self.sex_codes)

    @property
    def sex(self) -> np.ndarray:
        """Sex as strings ("F", "I", "M", "" for missing): a new array, for display and tests."""
        return SEX_BY_CODE[self.sex_codes]

    def take(self, index: np.ndarray) -> AbaloneColumns:
        """The rows at ``index`` (an integer or boolean array), copied; same source."""
        return AbaloneColumns(
            sex_codes=self.sex_codes[index],
            numerics=self.numerics[index],
            rings=None if self.rings is None else self.rings[index],
            source=self.source,
        )

    def head_records(self, n: int) -> list[dict[str, object]]:
        """The first ``n`` rows as {column: value} records of the raw feature columns (missing
        values as None): an input example of real rows, for a model's signature."""
        sex = self.sex[:n]
        return [
            {
                SEX_COLUMN: str(sex[i]) or None,
                **{
                    name: None if math.isnan(v) else float(v)
                    for name, v in zip(NUMERIC_COLUMNS, self.numerics[i], strict=True)
                },
            }
            for i in range(len(sex))
        ]

    @classmethod
    def concat(cls, parts: Sequence[AbaloneColumns], source: str | None = None) -> AbaloneColumns:
        """``parts`` joined in order, numerics row-major; one part already so is not copied.

        Rings are kept when every part with rows has them (a part without rows, e.g. a byte
        range of only empty lines, says nothing). ``source`` defaults to the parts' own when
        they all agree, else "".
        """
        parts = list(parts)
        if source is None:
            sources = {p.source for p in parts}
            source = sources.pop() if len(sources) == 1 else ""
        full = [p for p in parts if len(p)]
        with_label = bool(full) and all(p.rings is not None for p in full)
        if len(full) == 1 and full[0].numerics.flags.c_contiguous:
            only = full[0]
            return cls(only.sex_codes, only.numerics, only.rings if with_label else None, source)
        total = sum(len(p) for p in full)
        # One pass per part into the row-major whole, whatever the part's layout (numpy copies a
        # column-major block across faster than column by column into strided rows).
        numerics = np.empty((total, len(NUMERIC_COLUMNS)), dtype=np.float64)
        if full:
            np.concatenate([p.numerics for p in full], out=numerics)
        return cls(
            sex_codes=np.concatenate([p.sex_codes for p in full] or [np.empty(0, np.int8)]),
            numerics=numerics,
            rings=np.concatenate([p.rings for p in full]) if with_label else None,
            source=source,
        )


_UNDECODABLE = re.compile("[\udc80-\udcff]")
_LINE_ENDS = "\r\n"


def _text_lines(handle: IO, path: Path | str, parameter: str) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) of each line, in bounded memory.

    A line longer than MAX_LINE_CHARS is refused, measured in chunks rather than read whole; a
    line that is not UTF-8 is refused too (Arrow refuses it, and its message has no line).
    """
    line_number = 0
    while line := handle.readline(MAX_LINE_CHARS + 2):  # + 2: room for a \r\n line end
        line_number += 1
        body = line.rstrip(_LINE_ENDS)
        if len(body) > MAX_LINE_CHARS:
            length = len(body)
            while not line.endswith(tuple(_LINE_ENDS)):
                line = handle.readline(1 << 20)
                if not line:
                    break
                length += len(line.rstrip(_LINE_ENDS))
            raise InputDataError(
                parameter,
                str(path),
                f"the line is {length:,} characters long; an abalone row is under 200 "
                f"characters, and lines over {MAX_LINE_CHARS:,} are refused",
                line_number,
            )
        if _UNDECODABLE.search(body):
            raise InputDataError(parameter, str(path), "is not UTF-8 text", line_number)
        yield line_number, body


def _csv_fields(line: str, path: Path | str, parameter: str, line_number: int) -> list[str]:
    try:
        return next(csv.reader([line]))
    except csv.Error as exc:
        raise InputDataError(
            parameter, str(path), f"could not be read as CSV ({exc})", line_number
        ) from exc


def count_columns(path: Path, parameter: str) -> int:
    """Column count of the first non-empty line; 8 (features) or 9 (features + rings).

    Empty lines are skipped, as Arrow skips them; a line of spaces is not empty (for Arrow it
    is a row of one column), so it is counted and refused here.
    """
    stat_input_file(path, parameter)
    with open_input_file(path, parameter, text=True) as handle:
        for line_number, line in _text_lines(handle, path, parameter):
            if line:
                columns = len(_csv_fields(line, path, parameter, line_number))
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
    # Only an empty field is a missing value. Arrow's default null spellings ("NA", "nan",
    # "NULL", ...) would silently turn text into missing values; "nan" now parses as a NaN that
    # the finiteness check refuses, and the others are not numbers (nor sex codes).
    return pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True)


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


def _padded_sex_codes(sex: pa.Array) -> tuple[np.ndarray, bool]:
    """``sex_codes`` with PADDING trimmed first; Arrow trims numbers itself, never strings.

    Only called for a block that has unknown codes, so an unpadded file never pays for it. A
    field of spaces trims to "", which is not null, so it stays unknown (and is refused).
    """
    return sex_codes(pc.utf8_trim(sex, PADDING))


def _valid_measurements(column: pa.Array, values: np.ndarray) -> bool:
    """Whether every value present is finite and not negative (NaN from an empty field is fine)."""
    if len(values) == 0:
        return True
    if column.null_count == 0:
        # min and max propagate NaN, so a parsed "nan" fails too; no temporary arrays.
        return bool(values.min() >= 0) and bool(values.max() < np.inf)
    # NaN fails both comparisons, so the valid values are exactly the non-missing ones.
    good = np.count_nonzero((values >= 0) & (values < np.inf))
    return good == len(values) - column.null_count


def _valid_rings(column: pa.Array, rings: np.ndarray) -> bool:
    """Whether every rings value is present, finite, not negative and whole."""
    if len(rings) == 0:
        return True
    if column.null_count or not (rings.min() >= 0 and rings.max() < np.inf):
        return False
    return bool(np.array_equal(np.trunc(rings), rings))


def _float_column(batch: pa.RecordBatch, name: str) -> np.ndarray:
    # Zero-copy when the column has no nulls; nulls become NaN otherwise.
    return batch.column(name).to_numpy(zero_copy_only=False)


def _validated_block(
    batch: pa.RecordBatch | pa.Table, with_label: bool, require_label: bool, source: str
) -> AbaloneColumns | None:
    """A parsed block as columns (numerics column-major), or None when a value breaks a rule
    (the caller then locates the first bad line for the error)."""
    codes, known = sex_codes(batch.column(SEX_COLUMN))
    if not known:
        codes, known = _padded_sex_codes(batch.column(SEX_COLUMN))
    # One copy per column into the block's (n, 7) array, column-major so that each column stays
    # contiguous (Arrow's columns are separate buffers either way).
    numerics = np.empty((batch.num_rows, len(NUMERIC_COLUMNS)), np.float64, order="F")
    for j, name in enumerate(NUMERIC_COLUMNS):
        numerics[:, j] = _float_column(batch, name)
    rings = _float_column(batch, LABEL_COLUMN) if with_label else None
    # Checks on the parsed arrays, a few vectorised passes per block: Arrow accepts "inf" and
    # negative numbers, which are no measurement. A batch file's rings column is read but not
    # used, so it only has to parse.
    valid = (
        known
        and all(
            _valid_measurements(batch.column(name), numerics[:, j])
            for j, name in enumerate(NUMERIC_COLUMNS)
        )
        and (not require_label or _valid_rings(batch.column(LABEL_COLUMN), rings))
    )
    return AbaloneColumns(codes, numerics, rings, source=source) if valid else None


class InvalidBlock(Exception):
    """A parsed block breaks a rule (or Arrow refused it); where is for ``locate_error``."""

    def __init__(self, detail: str | None = None):
        super().__init__(detail or "a value breaks the abalone file rules")
        self.detail = detail


def parse_stream(
    source: object,
    columns: int,
    *,
    require_label: bool,
    location: str,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> Iterator[AbaloneColumns]:
    """Validated blocks (numerics column-major) of a headerless abalone CSV stream of
    ``columns`` columns (8 or 9): a whole file, or one line-aligned byte range of it.

    A block that breaks a rule raises InvalidBlock without saying where: the line is found by
    ``locate_error`` on the whole file, whose line numbers a byte range does not know.
    """
    with_label = columns == len(RAW_COLUMNS)
    try:
        reader = pacsv.open_csv(
            source,
            read_options=_read_options(columns, block_size),
            convert_options=_convert_options(columns),
        )
        for batch in reader:
            block = _validated_block(batch, with_label, require_label, location)
            if block is None:
                raise InvalidBlock()
            yield block
    except pa.ArrowInvalid as exc:
        raise InvalidBlock(str(exc)) from exc


def file_columns(path: Path, parameter: str, *, require_label: bool) -> int:
    """``count_columns``, and with ``require_label`` the 9 columns input data needs."""
    columns = count_columns(path, parameter)
    if require_label and columns != len(RAW_COLUMNS):
        raise InputDataError(
            parameter,
            str(path),
            f"expected {len(RAW_COLUMNS)} columns ({', '.join(RAW_COLUMNS)}), found {columns}",
            1,
        )
    return columns


def iter_parsed_batches(
    path: Path,
    parameter: str,
    *,
    require_label: bool,
    block_size: int = DEFAULT_BLOCK_SIZE,
    source: object | None = None,
) -> Iterator[AbaloneColumns]:
    """Stream a headerless abalone CSV as validated blocks (numerics column-major).

    With ``require_label`` the file must have 9 columns (rings last); otherwise 8 or 9, and a
    rings column is read but may be ignored by the caller. ``source`` is an optional stream over
    (part of) ``path``; errors are always reported against ``path`` and its line numbers.
    """
    columns = file_columns(path, parameter, require_label=require_label)
    try:
        yield from parse_stream(
            source if source is not None else str(path),
            columns,
            require_label=require_label,
            location=str(path),
            block_size=block_size,
        )
    except InvalidBlock as exc:
        # Locating the line needs the raw text; only pay for it when something is wrong.
        raise locate_error(path, parameter, require_label, detail=exc.detail) from None


def line_aligned_ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """Split a file into at most ``parts`` non-empty byte ranges that start and end on line
    boundaries (a range may hold only empty lines)."""
    size = path.stat().st_size
    cuts = [0]
    with open(path, "rb") as handle:
        for k in range(1, parts):
            handle.seek(max(cuts[-1], size * k // parts))
            handle.readline()
            cuts.append(min(handle.tell(), size))
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def check_not_empty(path: Path, parameter: str) -> None:
    """A readable regular file with at least one byte (missing, a FIFO or device, unreadable:
    refused by name before anything is opened to read)."""
    if check_input_file(path, parameter).st_size == 0:
        raise InputDataError(parameter, str(path), "file is empty")


def check_has_rows(rows: int, path: Path | str, parameter: str) -> None:
    if rows == 0:
        raise InputDataError(parameter, str(path), "file has no data rows")


def max_rows(path: Path) -> int:
    """An upper bound on the rows of ``path``: its line ends (\\n and \\r) plus one, counted in
    one pass of 16 MiB reads."""
    ends = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(16 << 20):
            ends += chunk.count(b"\n") + chunk.count(b"\r")
    return ends + 1


class RowsBuilder:
    """Blocks of a file copied, in order, into arrays allocated once for ``capacity`` rows:
    the file's rows held once, never a list of blocks and their joined copy side by side (at
    30M rows that would be 4 GB instead of 2). Pages past the rows actually filled are never
    touched, so an upper bound for ``capacity`` costs address space, not memory."""

    def __init__(self, capacity: int, with_label: bool):
        self.sex_codes = np.empty(capacity, np.int8)
        self.numerics = np.empty((capacity, len(NUMERIC_COLUMNS)), np.float64)
        self.rings = np.empty(capacity, np.float64) if with_label else None
        self.rows = 0

    def add(self, block: AbaloneColumns) -> None:
        end = self.rows + len(block)
        self.sex_codes[self.rows : end] = block.sex_codes
        self.numerics[self.rows : end] = block.numerics
        if self.rings is not None:
            self.rings[self.rows : end] = block.rings
        self.rows = end

    def build(self, source: str) -> AbaloneColumns:
        n = self.rows
        return AbaloneColumns(
            self.sex_codes[:n],
            self.numerics[:n],
            None if self.rings is None else self.rings[:n],
            source=source,
        )


def read_abalone_csv(path: Path, parameter: str, *, require_label: bool) -> AbaloneColumns:
    """Read a whole abalone CSV (validated) in this process; see ``iter_parsed_batches``.
    Numerics row-major; peak memory about the rows themselves plus one block.

    (ProcessingInstanceCount > 1 reads line-aligned byte ranges as Dask tasks instead:
    abalone_platform.compute, with the same result and the same errors.)
    """
    check_not_empty(path, parameter)
    columns = file_columns(path, parameter, require_label=require_label)
    builder = RowsBuilder(max_rows(path), with_label=columns == len(RAW_COLUMNS))
    for block in iter_parsed_batches(path, parameter, require_label=require_label):
        builder.add(block)
    check_has_rows(builder.rows, path, parameter)
    return builder.build(str(path))


# The numbers Arrow's float parser accepts (checked against it): decimal and exponent forms,
# inf / infinity / nan in any case, nan with a payload; surrounding PADDING is trimmed first.
# Python's float() accepts more ("1_000", Unicode digits), which Arrow refuses.
_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?|inf(?:inity)?|nan(?:\([0-9a-z_]*\))?)",
    re.IGNORECASE | re.ASCII,
)


def _number(text: str) -> float | None:
    """The value Arrow parses from ``text`` (already trimmed), or None if it refuses it."""
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return float(text)
    except ValueError:  # "nan(payload)": Arrow reads a NaN, Python's float() refuses it
        return math.nan


def locate_error(
    path: Path, parameter: str, require_label: bool, detail: str | None = None
) -> InputDataError:
    """Scan ``path`` line by line and describe its first bad line.

    The fast parser tells that something is wrong but not reliably where; this slow pass runs
    only after it failed, so a good file never pays for it. It applies the same rules as the
    fast path, field by field: a value may be padded with spaces or tabs; an empty field is a
    missing value (not allowed for rings in input data), a field of only spaces is refused;
    measurements are finite numbers >= 0; rings (input data only) a whole number >= 0.
    ``detail`` is the fast parser's own message, kept for a failure this scan cannot place.
    """
    with open_input_file(path, parameter, text=True) as handle:
        return _first_bad_line(
            _text_lines(handle, path, parameter), path, parameter, require_label, detail
        )


def _first_bad_line(
    lines: Iterable[tuple[int, str]],
    path: Path | str,
    parameter: str,
    require_label: bool,
    detail: str | None,
) -> InputDataError:
    """The error for the first bad line of ``lines``, by the rules of ``locate_error``."""
    expected: int | None = None
    location = str(path)
    for line_number, line in lines:
        if not line:
            continue
        fields = _csv_fields(line, path, parameter, line_number)
        if expected is None:
            expected = len(fields)
            if require_label and expected != len(RAW_COLUMNS):
                expected = len(RAW_COLUMNS)
        if len(fields) != expected:
            return InputDataError(
                parameter,
                location,
                f"expected {expected} columns ({', '.join(RAW_COLUMNS[:expected])}), "
                f"found {len(fields)}",
                line_number,
            )
        problem = _field_problem(SEX_COLUMN, fields[0], require_label)
        for name, text in zip(RAW_COLUMNS[1:expected], fields[1:], strict=False):
            if problem is not None:
                break
            problem = _field_problem(name, text, require_label)
        if problem is not None:
            return InputDataError(parameter, location, problem, line_number)
    suffix = f" ({detail})" if detail else ""
    return InputDataError(parameter, location, f"file could not be parsed as abalone CSV{suffix}")


def _field_problem(name: str, text: str, require_label: bool) -> str | None:
    """What is wrong with one field's text, or None; the rules of ``locate_error``."""
    if text == "":
        if name == LABEL_COLUMN and require_label:
            return "column 'rings' is empty"
        return None
    value = text.strip(PADDING)
    if value == "":
        return f"column {name!r} holds only spaces; leave the field empty for a missing value"
    if name == SEX_COLUMN:
        if value in SEX_CODES:
            return None
        return f"column 'sex' has unknown code {value!r} (expected one of {', '.join(SEX_CODES)})"
    number = _number(value)
    if number is None:
        return f"column {name!r} value {value!r} is not a number"
    if name == LABEL_COLUMN and not require_label:
        return None  # a batch file's rings column is read but not used: it only has to parse
    if not math.isfinite(number):
        return f"column {name!r} value {value!r} is not a finite number"
    if number < 0:
        return f"column {name!r} value {value!r} is negative; it must be 0 or more"
    if name == LABEL_COLUMN and number != math.floor(number):
        return f"column 'rings' value {value!r} is not a whole number"
    return None


# Bodies up to this size are parsed in Python: Arrow's CSV reader costs ~0.4 ms to start and
# its checks as much again, more than about 150 rows take this way (one regular expression
# per line). Larger bodies, and any the quick path does not accept (quotes, an error to
# locate), go through Arrow and the file rules.
QUICK_PARSE_BYTES = 8 << 10
_LINE_END_BYTES = re.compile(rb"\r\n|\r|\n")
# A valid row, field by field: empty (missing), or padded. Sex one of SEX_CODES; a measurement
# a finite decimal number >= 0 (no sign but +, no inf or nan: those are errors, found by the
# file rules); rings, when present, anything Arrow parses as a number (it is not used).
_PAD = f"[{PADDING}]*"
_MEASUREMENT = rf"(?:{_PAD}\+?((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?){_PAD})?"
_ROW = re.compile(
    rf"(?:{_PAD}([{''.join(SEX_CODES)}]){_PAD})?"
    + rf",{_MEASUREMENT}" * len(NUMERIC_COLUMNS)
    + rf"(,(?:{_PAD}(?i:{_NUMBER.pattern}){_PAD})?)?"
)


def _quick_parse(data: bytes, location: str) -> AbaloneColumns | None:
    """Small bodies of valid, unquoted rows; None for anything else (the caller then applies
    the file rules, which also name the line of an error)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    codes: list[int] = []
    values: list[float] = []
    with_rings = None
    # Arrow's line ends only (str.splitlines would also split at form feeds and the like).
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            continue
        row = _ROW.fullmatch(line)
        # Every row as wide as the first (8 or 9 columns); the sex code in upper case only.
        if row is None or with_rings not in (None, row[9] is not None):
            return None
        with_rings = row[9] is not None
        sex = row[1]
        if sex is None:
            codes.append(MISSING_SEX)
        elif sex in SEX_CODES:
            codes.append(SEX_CODES.index(sex))
        else:
            return None
        values.extend(float(v) if v is not None else math.nan for v in row.groups()[1:8])
    if not codes:
        return None
    numerics = np.array(values, np.float64).reshape(len(codes), len(NUMERIC_COLUMNS))
    if np.isinf(numerics).any():  # 1e999: not a finite number, refused by the file rules
        return None
    return AbaloneColumns(np.array(codes, np.int8), numerics, None, source=location)


def parse_csv_bytes(data: bytes, parameter: str, location: str) -> AbaloneColumns:
    """Rows of an in-memory headerless abalone CSV (a request body): the 8 feature columns, or
    9 with rings, which only has to parse. The rules and messages of a batch file's, with the
    line named; a body that breaks them raises InputDataError."""
    if len(data) <= QUICK_PARSE_BYTES and (quick := _quick_parse(data, location)) is not None:
        return quick

    def lines() -> Iterator[tuple[int, str]]:
        # The body as text lines: only to place an error, so a good body never pays for it.
        text = data.decode("utf-8", "surrogateescape")
        # newline=None: a lone \r ends a line, as for Arrow, so line numbers agree.
        return _text_lines(io.StringIO(text, newline=None), location, parameter)

    def first_row() -> tuple[int, str]:
        return next((number, line) for number, line in lines() if line)

    rest = data.lstrip(b"\r\n")
    if not rest:
        raise InputDataError(parameter, location, "holds no rows")
    head = _LINE_END_BYTES.split(rest, maxsplit=1)[0]
    try:
        head_text = head.decode("utf-8") if len(head) <= MAX_LINE_CHARS else None
    except UnicodeDecodeError:
        head_text = None
    if head_text is None:
        first_row()  # raises the line's error (too long, not UTF-8)
    try:
        columns = len(next(csv.reader([head_text])))
    except csv.Error:
        number, line = first_row()
        columns = len(_csv_fields(line, location, parameter, number))  # raises, naming the line
    if columns not in (len(FEATURE_COLUMNS), len(RAW_COLUMNS)):
        raise InputDataError(
            parameter,
            location,
            f"expected {len(FEATURE_COLUMNS)} or {len(RAW_COLUMNS)} comma-separated columns "
            f"({', '.join(RAW_COLUMNS)}), found {columns}",
            first_row()[0],
        )
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=_read_options(columns, max(len(data), 1 << 16)),
            convert_options=_convert_options(columns),
        )
        block = _validated_block(table, columns == len(RAW_COLUMNS), False, location)
        detail = None
    except pa.ArrowInvalid as exc:
        block, detail = None, str(exc)
    if block is None:
        raise _first_bad_line(lines(), location, parameter, False, detail)
    return block


def columns_from_values(
    values: Mapping[str, Sequence[object] | np.ndarray], parameter: str, location: str
) -> AbaloneColumns:
    """Rows given column by column (a DataFrame's columns, a JSON request's), checked by the
    rules of a batch file: sex one of SEX_CODES or missing (None, NaN, ""), measurements finite
    numbers >= 0 or missing (None, NaN from a DataFrame, ""); text must be a number as a CSV
    field would be. Errors name the row (1-based) and the column; extra columns (such as rings)
    are ignored."""
    missing = [name for name in FEATURE_COLUMNS if name not in values]
    if missing:
        raise InputDataError(
            parameter,
            location,
            f"missing column(s) {', '.join(missing)}; expected {', '.join(FEATURE_COLUMNS)}",
        )

    def column_of(name: str) -> Sequence[object] | np.ndarray:
        column = values[name]
        if isinstance(column, np.ndarray) and column.ndim == 1:
            return column
        if not isinstance(column, list | tuple):
            raise InputDataError(
                parameter, location, f"column {name!r} must be a list of values, one per row"
            )
        return column

    sex = column_of(SEX_COLUMN)
    n = len(sex)
    codes = np.empty(n, np.int8)
    for row, value in enumerate(sex):
        text = value.strip(PADDING) if isinstance(value, str) else None
        if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
            codes[row] = MISSING_SEX
        elif text in SEX_CODES:
            codes[row] = SEX_CODES.index(text)
        else:
            raise InputDataError(
                parameter,
                location,
                f"row {row + 1}: column 'sex' has unknown code {value!r} "
                f"(expected one of {', '.join(SEX_CODES)})",
            )
    numerics = np.empty((n, len(NUMERIC_COLUMNS)), np.float64, order="F")
    for j, name in enumerate(NUMERIC_COLUMNS):
        column = column_of(name)
        if len(column) != n:
            raise InputDataError(
                parameter, location, f"column {name!r} has {len(column)} rows, 'sex' has {n}"
            )
        if isinstance(column, np.ndarray) and column.dtype.kind == "f":
            numerics[:, j] = column  # a DataFrame's double column: NaN is a missing value
        else:
            for row, value in enumerate(column):
                number, problem = _measurement(name, value)
                if problem is not None:
                    raise InputDataError(parameter, location, f"row {row + 1}: {problem}")
                numerics[row, j] = number
        bad = np.flatnonzero(~((numerics[:, j] >= 0) & (numerics[:, j] < np.inf)))
        bad = bad[~np.isnan(numerics[bad, j])]
        if len(bad):
            value = column[int(bad[0])]
            raise InputDataError(
                parameter,
                location,
                f"row {int(bad[0]) + 1}: column {name!r} value {value!r} is not a finite "
                "number >= 0",
            )
    return AbaloneColumns(codes, numerics, None, source=location)


def _measurement(name: str, value: object) -> tuple[float, str | None]:
    """(value, None), or (NaN, what is wrong) for one measurement given as a JSON value: a
    number, None or "" (missing), or text that would parse in a CSV field."""
    if value is None or value == "":
        return math.nan, None
    if isinstance(value, bool) or not isinstance(value, int | float | str | np.number):
        return math.nan, f"column {name!r} value {value!r} is not a number"
    if isinstance(value, str):
        problem = _field_problem(name, value, False)
        if problem is not None:
            return math.nan, problem
        return float(_number(value.strip(PADDING))), None
    try:
        return float(value), None
    except OverflowError:
        return math.nan, f"column {name!r} value {value!r} is not a finite number"
