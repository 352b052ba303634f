"""Edge cases of input files: each refused with the parameter, the file and (for a row) the line
named, or accepted by a documented rule; the UCI file still reads exactly as before.

Input data (read_abalone_csv, rings required) and batch data (iter_parsed_batches over a byte
stream, as the batch transform reads it, rings optional and ignored) go through the same rules.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import tempfile
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from abalone_platform.compute.cluster import StepCluster
from abalone_platform.compute.processing import read_abalone_csv_on
from abalone_platform.compute.ranges import RangeSource
from abalone_platform.errors import InputDataError
from abalone_platform.ml.data import (
    MAX_LINE_CHARS,
    NUMERIC_COLUMNS,
    AbaloneColumns,
    count_columns,
    iter_parsed_batches,
    read_abalone_csv,
)
from abalone_platform.ml.preprocess import (
    MIN_INPUT_ROWS,
    MIN_ROWS_PER_SPLIT,
    process,
    split_indices,
    split_sizes,
)
from abalone_platform.storage.inputs import resolve_input
from abalone_platform_tests.support.inputs import write

PARAMETER = "input_data (InputData)"
BATCH = "batch_data (BatchData)"
GOOD_ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15"
GOOD_FEATURES = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
# sha256 of the UCI file's parsed numerics, sex codes and rings, as read before these rules.
UCI_FINGERPRINT = "50cb2cc4ae33bfe658cfe8ea755d1233febb43c92999ac93b7073fd00c3e90f0"


def read_input(path: Path) -> AbaloneColumns:
    return read_abalone_csv(path, PARAMETER, require_label=True)


def read_batch(path: Path) -> int:
    """Rows of a batch file read as the batch transform reads it: a native byte stream."""
    with pa.OSFile(str(path)) as handle:
        source = handle.get_stream(0, path.stat().st_size)
        batches = iter_parsed_batches(path, BATCH, require_label=False, source=source)
        return sum(len(batch) for batch in batches)


def input_error(path: Path) -> InputDataError:
    with pytest.raises(InputDataError) as caught:
        read_abalone_csv(path, PARAMETER, require_label=True)
    return caught.value


def dask_read(cluster: StepCluster, path: Path) -> AbaloneColumns:
    """ProcessingInstanceCount 2: byte ranges of about 16 KiB parsed as Dask tasks."""
    return read_abalone_csv_on(
        cluster, path, RangeSource(str(path)), PARAMETER, require_label=True, piece_bytes=16 << 10
    ).rows


def batch_error(path: Path) -> InputDataError:
    with pytest.raises(InputDataError) as caught:
        read_batch(path)
    return caught.value


def assert_names_line(error: InputDataError, parameter: str, path: Path, line: int, problem: str):
    assert str(error) == f"{parameter}: {path} line {line}: {problem}"
    assert (error.parameter, error.location, error.line) == (parameter, str(path), line)


def fingerprint(rows: AbaloneColumns) -> str:
    digest = hashlib.sha256()
    digest.update(rows.numerics.tobytes())
    digest.update(rows.sex.astype("U1").tobytes())
    if rows.rings is not None:
        digest.update(rows.rings.tobytes())
    return digest.hexdigest()


def with_field(row: str, column: int, text: str) -> str:
    cells = row.split(",")
    cells[column] = text
    return ",".join(cells)


# --- the UCI file -------------------------------------------------------------------------------


def test_the_uci_file_reads_unchanged(abalone_file: Path) -> None:
    rows = read_input(abalone_file)
    assert len(rows) == 4177
    assert fingerprint(rows) == UCI_FINGERPRINT
    # Zero is a measurement: the UCI file has two rows of height 0, and they stay.
    assert int((rows.numerics[:, NUMERIC_COLUMNS.index("height")] == 0).sum()) == 2
    assert rows.source == str(abalone_file)
    assert read_batch(abalone_file) == 4177


def test_zero_measurements_and_zero_rings_are_accepted(tmp_path: Path) -> None:
    zeros = "F,0,0.0,0,0,0,0,0,0"
    rows = read_input(write(tmp_path, [GOOD_ROW, zeros, "I,-0,0.3,0.1,0.4,0.2,0.1,0.1,15.0"]))
    assert rows.numerics[1].tolist() == [0.0] * 7
    assert rows.rings.tolist() == [15.0, 0.0, 15.0]


# --- 1. inf / nan spelled out -------------------------------------------------------------------


@pytest.mark.parametrize("text", ["inf", "-inf", "Infinity", "-Infinity", "INF", "NaN", "nan"])
@pytest.mark.parametrize("column", ["height", "shell_weight", "rings"])
def test_non_finite_values_are_refused_in_input_data(tmp_path: Path, text: str, column: str):
    index = ("sex", *NUMERIC_COLUMNS, "rings").index(column)
    path = write(tmp_path, [GOOD_ROW, GOOD_ROW, with_field(GOOD_ROW, index, text)])
    problem = f"column {column!r} value {text!r} is not a finite number"
    assert_names_line(input_error(path), PARAMETER, path, 3, problem)


@pytest.mark.parametrize("text", ["inf", "-inf", "Infinity", "NaN"])
def test_non_finite_values_are_refused_in_batch_data(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, [GOOD_FEATURES, GOOD_FEATURES, with_field(GOOD_FEATURES, 3, text)])
    problem = f"column 'height' value {text!r} is not a finite number"
    assert_names_line(batch_error(path), BATCH, path, 3, problem)


def test_a_nan_next_to_a_missing_value_is_still_refused(tmp_path: Path) -> None:
    """An empty field is a missing value (NaN once parsed); a spelt-out nan is not one."""
    path = write(tmp_path, [GOOD_ROW, "F,,nan,0.1,0.4,0.2,0.1,0.1,9"])
    problem = "column 'diameter' value 'nan' is not a finite number"
    assert_names_line(input_error(path), PARAMETER, path, 2, problem)


@pytest.mark.parametrize("text", ["NA", "NULL", "N/A", "null"])
def test_null_spellings_are_not_missing_values(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, [GOOD_ROW, with_field(GOOD_ROW, 2, text)])
    problem = f"column 'diameter' value {text!r} is not a number"
    assert_names_line(input_error(path), PARAMETER, path, 2, problem)


def test_non_finite_value_deep_in_a_large_file_is_located(
    tmp_path: Path, abalone_file: Path, dask_cluster: StepCluster
):
    """Found by the check on the parsed arrays of a later block, then placed by the text scan."""
    lines = abalone_file.read_text().splitlines() * 3
    lines[10_000] = with_field(lines[10_000], 4, "inf")
    path = write(tmp_path, lines)
    problem = "column 'whole_weight' value 'inf' is not a finite number"
    assert_names_line(input_error(path), PARAMETER, path, 10_001, problem)
    with pytest.raises(InputDataError) as caught:
        dask_read(dask_cluster, path)
    assert_names_line(caught.value, PARAMETER, path, 10_001, problem)


def test_a_batch_files_rings_column_is_ignored(tmp_path: Path) -> None:
    """Batch data may carry a rings column; it is read but not used, so it only has to parse."""
    rows = [with_field(GOOD_ROW, 8, text) for text in ("inf", "nan", "-1", "7.5", "")]
    path = write(tmp_path, rows)
    assert read_batch(path) == 5
    bad = write(tmp_path, [GOOD_ROW, with_field(GOOD_ROW, 8, "many")], "bad.csv")
    assert_names_line(
        batch_error(bad), BATCH, bad, 2, "column 'rings' value 'many' is not a number"
    )


# --- 2. padding ----------------------------------------------------------------------------------


def pad(line: str, padding: str) -> str:
    return ",".join(f"{padding}{cell}{padding}" for cell in line.split(","))


@pytest.mark.parametrize("padding", [" ", "  ", "\t", " \t"], ids=["1", "2", "tab", "mixed"])
def test_padded_values_read_as_the_unpadded_file(
    tmp_path: Path, abalone_file: Path, padding: str, dask_cluster: StepCluster
) -> None:
    """Rule: spaces and tabs around a value are ignored (` M , 0.455 ` reads as `M,0.455`)."""
    lines = abalone_file.read_text().splitlines()
    path = write(tmp_path, [pad(line, padding) for line in lines])
    rows = read_input(path)
    assert fingerprint(rows) == UCI_FINGERPRINT
    assert fingerprint(dask_read(dask_cluster, path)) == UCI_FINGERPRINT
    features = write(tmp_path, [pad(line.rsplit(",", 1)[0], padding) for line in lines], "b.csv")
    assert read_batch(features) == 4177


def test_padding_on_one_line_of_a_large_file_is_accepted(tmp_path: Path, abalone_file: Path):
    lines = abalone_file.read_text().splitlines() * 3
    lines[9_000] = pad(lines[9_000], " ")
    rows = read_input(write(tmp_path, lines))
    assert len(rows) == 3 * 4177
    assert rows.sex[9_000] == lines[9_000].split(",")[0].strip()


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            "   ,0.4,0.3,0.1,0.4,0.2,0.1,0.1,9",
            "column 'sex' holds only spaces; leave the field empty for a missing value",
        ),
        (
            "F,0.4, ,0.1,0.4,0.2,0.1,0.1,9",
            "column 'diameter' holds only spaces; leave the field empty for a missing value",
        ),
        (" Q ,0.4,0.3,0.1,0.4,0.2,0.1,0.1,9", "column 'sex' has unknown code 'Q' (expected one"),
        ("F, 0.4x ,0.3,0.1,0.4,0.2,0.1,0.1,9", "column 'length' value '0.4x' is not a number"),
        ("F,1_0,0.3,0.1,0.4,0.2,0.1,0.1,9", "column 'length' value '1_0' is not a number"),
    ],
    ids=["sex-spaces", "number-spaces", "padded-unknown-sex", "padded-non-number", "underscore"],
)
def test_padding_does_not_hide_a_bad_value(tmp_path: Path, row: str, problem: str) -> None:
    path = write(tmp_path, [pad(GOOD_ROW, " "), row])
    error = input_error(path)
    assert str(error).startswith(f"{PARAMETER}: {path} line 2: {problem}"), str(error)
    assert error.line == 2
    features = write(tmp_path, [GOOD_FEATURES, row.rsplit(",", 1)[0]], "batch.csv")
    assert str(batch_error(features)).startswith(f"{BATCH}: {features} line 2: {problem}")


def test_a_line_of_spaces_is_a_row_of_one_column(tmp_path: Path) -> None:
    """Only an empty line is skipped (as Arrow skips it); a line of spaces is a short row."""
    path = write(tmp_path, [GOOD_ROW, "   ", GOOD_ROW])
    error = input_error(path)
    assert error.line == 2 and str(error).startswith(f"{PARAMETER}: {path} line 2: expected 9")
    assert str(error).endswith("found 1")


# --- 3. very long lines --------------------------------------------------------------------------


def long_line_problem(length: int) -> str:
    return (
        f"the line is {length:,} characters long; an abalone row is under 200 characters, and "
        f"lines over {MAX_LINE_CHARS:,} are refused"
    )


@pytest.mark.parametrize("where", [1, 2], ids=["first-line", "later-line"])
def test_a_line_of_a_megabyte_is_refused_naming_it(tmp_path: Path, where: int) -> None:
    long_row = with_field(GOOD_ROW, 1, "7" * 1_000_000)
    lines = [long_row, GOOD_ROW] if where == 1 else [GOOD_ROW, long_row, GOOD_ROW]
    path = write(tmp_path, lines)
    problem = long_line_problem(len(long_row))
    assert_names_line(input_error(path), PARAMETER, path, where, problem)
    batch = write(tmp_path, [line.rsplit(",", 1)[0] for line in lines], "batch.csv")
    problem = long_line_problem(len(long_row.rsplit(",", 1)[0]))
    assert_names_line(batch_error(batch), BATCH, batch, where, problem)


def test_a_field_of_a_megabyte_of_text_is_refused(tmp_path: Path) -> None:
    long_row = with_field(GOOD_ROW, 0, "x" * 1_000_000)
    path = write(tmp_path, [GOOD_ROW, long_row])
    assert_names_line(input_error(path), PARAMETER, path, 2, long_line_problem(len(long_row)))


def test_a_huge_single_line_is_measured_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "one-line.csv"
    length = 16 << 20
    with open(path, "w") as out:
        for _ in range(length >> 20):
            out.write("9" * (1 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(InputDataError) as caught:
            count_columns(path, PARAMETER)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_names_line(caught.value, PARAMETER, path, 1, long_line_problem(length))
    assert peak < 8 << 20  # chunks of at most a MiB at a time, never the 16 MiB line


def test_a_line_at_the_limit_is_read(tmp_path: Path) -> None:
    """The limit counts characters without the line end, and a \\r\\n end fits with it."""
    cells = GOOD_ROW.split(",")
    cells[1] = " " * (MAX_LINE_CHARS - len(GOOD_ROW)) + cells[1]
    path = tmp_path / "limit.csv"
    path.write_bytes(f"{','.join(cells)}\r\n{GOOD_ROW}\r\n".encode())
    assert len(",".join(cells)) == MAX_LINE_CHARS
    assert count_columns(path, PARAMETER) == 9
    assert len(read_input(path)) == 2


def test_a_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        f"{GOOD_ROW}\n{GOOD_ROW}\n".encode()
        + "\xe9,0.4,0.3,0.1,0.4,0.2,0.1,0.1,9\n".encode("latin-1")
    )
    assert_names_line(input_error(path), PARAMETER, path, 3, "is not UTF-8 text")


# --- 4. rings and negative measurements ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("7.5", "column 'rings' value '7.5' is not a whole number"),
        ("-1", "column 'rings' value '-1' is negative; it must be 0 or more"),
        ("-0.5", "column 'rings' value '-0.5' is negative; it must be 0 or more"),
        ("1e-3", "column 'rings' value '1e-3' is not a whole number"),
    ],
)
def test_rings_must_be_a_whole_number_not_below_zero(tmp_path: Path, text: str, problem: str):
    path = write(tmp_path, [GOOD_ROW, GOOD_ROW, GOOD_ROW, with_field(GOOD_ROW, 8, text)])
    assert_names_line(input_error(path), PARAMETER, path, 4, problem)


@pytest.mark.parametrize("column", NUMERIC_COLUMNS)
def test_negative_measurements_are_refused(tmp_path: Path, column: str) -> None:
    index = 1 + NUMERIC_COLUMNS.index(column)
    path = write(tmp_path, [GOOD_ROW, with_field(GOOD_ROW, index, "-0.25")])
    problem = f"column {column!r} value '-0.25' is negative; it must be 0 or more"
    assert_names_line(input_error(path), PARAMETER, path, 2, problem)
    batch = write(tmp_path, [GOOD_FEATURES, with_field(GOOD_FEATURES, index, "-0.25")], "b.csv")
    assert_names_line(batch_error(batch), BATCH, batch, 2, problem)


def test_the_first_bad_value_of_a_line_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, [GOOD_ROW, "F,0.4,-1,inf,0.4,0.2,0.1,0.1,7.5"])
    problem = "column 'diameter' value '-1' is negative; it must be 0 or more"
    assert_names_line(input_error(path), PARAMETER, path, 2, problem)


# --- 5. unreadable files -------------------------------------------------------------------------

UNREADABLE = "is not readable (permission denied)"


def resolve(path: Path, tmp_path: Path) -> object:
    return resolve_input(str(path), PARAMETER, tmp_path / "cache", env_hint="ABALONE_INPUT_DATA")


def refused_by_every_reader(path: Path, tmp_path: Path) -> list[str]:
    """The messages of resolve_input, read_abalone_csv and the batch reader for ``path``."""
    messages = []
    for read in (
        lambda: resolve(path, tmp_path),
        lambda: read_abalone_csv(path, PARAMETER, require_label=True),
        lambda: list(iter_parsed_batches(path, BATCH, require_label=False)),
    ):
        try:
            read()
        except InputDataError as exc:
            messages.append(str(exc))
        else:
            messages.append("(accepted)")
    return messages


def expected_refusals(path: Path, problem: str) -> list[str]:
    return [f"{PARAMETER}: {path}: {problem}"] * 2 + [f"{BATCH}: {path}: {problem}"]


def test_a_file_that_cannot_be_opened_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The open path made to fail deterministically (permission bits do not stop root)."""
    path = write(tmp_path, [GOOD_ROW] * 3)
    real_open = open

    def denying_open(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", denying_open)
    assert refused_by_every_reader(path, tmp_path) == expected_refusals(path, UNREADABLE)


def test_a_file_that_cannot_be_stat_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parent directory without search permission fails os.stat itself; as root it cannot
    happen for real, so stat is made to fail for this one path."""
    path = write(tmp_path, [GOOD_ROW] * 3)
    real_stat = os.stat

    def denying_stat(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(file, *args, **kwargs)

    # Every reader stats through storage.files, which calls os.stat.
    monkeypatch.setattr(os, "stat", denying_stat)
    assert refused_by_every_reader(path, tmp_path) == expected_refusals(path, UNREADABLE)


def _unprivileged(call: Callable[[], list[str]]) -> list[str]:
    """``call()`` in this process when not root; as root, in a forked child running as nobody
    (root reads any file whatever its mode, so chmod alone would test nothing)."""
    if os.geteuid() != 0:
        return call()
    if not hasattr(os, "fork"):
        pytest.skip("running as root and cannot fork a child to drop privileges in")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root, and there is no 'nobody' user to drop privileges to")
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and never returns
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            os.write(write_end, "\n".join(call()).encode())
        except BaseException as exc:
            os.write(write_end, f"child failed: {exc!r}".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode()
    os.waitpid(child, 0)
    return output.split("\n")


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory anyone may enter (pytest's tmp_path is private to its owner)."""
    directory = Path(tempfile.mkdtemp(prefix="abalone-perm-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        for path in (directory, *directory.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(directory)


def test_a_chmod_000_file_is_refused_by_name(world_dir: Path) -> None:
    path = write(world_dir, [GOOD_ROW] * 3)
    path.chmod(0o000)
    messages = _unprivileged(lambda: refused_by_every_reader(path, world_dir))
    assert messages == expected_refusals(path, UNREADABLE)


def test_a_file_in_a_closed_directory_is_refused_by_name(world_dir: Path) -> None:
    closed = world_dir / "closed"
    closed.mkdir()
    path = write(closed, [GOOD_ROW] * 3)
    closed.chmod(0o000)
    messages = _unprivileged(lambda: refused_by_every_reader(path, world_dir))
    assert messages == expected_refusals(path, UNREADABLE)


# --- 6. FIFOs and devices ------------------------------------------------------------------------


def within(seconds: float, call: Callable[[], list[str]], fifo: Path) -> list[str]:
    """``call()``, failing (not hanging) if it blocks, as opening a FIFO for reading does."""
    result: list[list[str]] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        # Opening the write end releases a reader blocked on open.
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail(f"reading {fifo} blocked: a FIFO was opened")
    return result[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_refused_without_being_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    messages = within(10, lambda: refused_by_every_reader(fifo, tmp_path), fifo)
    assert messages == expected_refusals(fifo, "is not a regular file (a FIFO)")
    link = tmp_path / "link.csv"
    link.symlink_to(fifo)
    messages = within(10, lambda: refused_by_every_reader(link, tmp_path), fifo)
    assert messages == expected_refusals(link, "is not a regular file (a FIFO)")


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="no /dev/null on this platform")
def test_a_character_device_is_refused(tmp_path: Path) -> None:
    device = Path("/dev/null")
    problem = "is not a regular file (a character device)"
    assert refused_by_every_reader(device, tmp_path) == expected_refusals(device, problem)


def test_a_directory_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    directory = tmp_path / "dir.csv"
    directory.mkdir()
    problem = "is a directory, not a file"
    assert refused_by_every_reader(directory, tmp_path) == expected_refusals(directory, problem)
    missing = tmp_path / "missing.csv"
    problem = "file does not exist"
    assert refused_by_every_reader(missing, tmp_path) == expected_refusals(missing, problem)


# --- 7. too few rows to split --------------------------------------------------------------------


def test_the_minimum_row_count_follows_from_the_split() -> None:
    assert MIN_ROWS_PER_SPLIT == 10 and MIN_INPUT_ROWS == 64
    assert split_sizes(MIN_INPUT_ROWS) == (44, 10, 10)
    assert min(split_sizes(MIN_INPUT_ROWS - 1)) < MIN_ROWS_PER_SPLIT
    assert all(min(split_sizes(n)) >= MIN_ROWS_PER_SPLIT for n in range(MIN_INPUT_ROWS, 20_000))
    for n in (1, 63, 64, 65, 4177):
        assert tuple(len(part) for part in split_indices(n, seed=1)) == split_sizes(n)


@pytest.mark.parametrize("n_rows", [1, 2, 5, MIN_INPUT_ROWS - 1])
def test_too_few_rows_to_split_are_refused(tmp_path: Path, n_rows: int) -> None:
    path = write(tmp_path, [GOOD_ROW] * n_rows)
    rows = read_input(path)
    with pytest.raises(InputDataError) as caught:
        process(rows, seed=42)
    noun = "data row" if n_rows == 1 else "data rows"
    assert str(caught.value) == (
        f"{PARAMETER}: {path}: has {n_rows} {noun}; at least {MIN_INPUT_ROWS} are needed so that "
        f"train, validation and test each get {MIN_ROWS_PER_SPLIT} (a 70/15/15 split)"
    )
    assert caught.value.line is None


def test_the_minimum_is_enough(tmp_path: Path, abalone_file: Path) -> None:
    lines = abalone_file.read_text().splitlines()[:MIN_INPUT_ROWS]
    processed = process(read_input(write(tmp_path, lines)), seed=42)
    sizes = (len(processed.train), len(processed.validation), len(processed.test))
    assert sizes == (44, 10, 10)


def test_rows_built_in_memory_name_the_given_location(rows: AbaloneColumns) -> None:
    few = rows.take(np.arange(5))
    assert few.source == rows.source  # taken rows still name their file
    in_memory = AbaloneColumns(few.sex_codes, few.numerics, few.rings)
    with pytest.raises(InputDataError, match=re.escape(f"{PARAMETER}: input rows: has 5 data")):
        process(in_memory, seed=42)
    with pytest.raises(InputDataError, match=re.escape(f"{BATCH}: s3://b/k.csv: has 5 data")):
        process(in_memory, seed=42, parameter=BATCH, location="s3://b/k.csv")
