"""ProcessingInstanceCount > 1 on a Dask LocalCluster: parse/validate and the batch transform as
tasks over line-aligned byte ranges give the in-process results byte for byte, and the same
errors with the line numbered in the whole file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from abalone_platform.compute.cluster import StepCluster, open_cluster
from abalone_platform.compute.processing import read_abalone_csv_on
from abalone_platform.compute.ranges import RangeSource
from abalone_platform.compute.transform import batch_transform_on
from abalone_platform.errors import InputDataError
from abalone_platform.faults import FAULT_ENV
from abalone_platform.ml.data import read_abalone_csv
from abalone_platform.ml.predict import BATCH_PARAMETER, batch_transform
from abalone_platform.ml.preprocess import process

INPUT = "input_data (InputData)"
# Pieces of 1 MiB: a multi-megabyte file becomes several tasks per worker.
PIECE = 1 << 20
SMALL_PIECE = 16 << 10


@pytest.fixture(scope="module")
def large_file(abalone_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The UCI rows 40 times over (7.7 MB, 167,080 rows), some values missing."""
    lines = abalone_file.read_text().splitlines()
    lines[5] = "," + lines[5].split(",", 1)[1]  # missing sex
    cells = lines[100].split(",")
    cells[3] = ""  # missing height
    lines[100] = ",".join(cells)
    path = tmp_path_factory.mktemp("dask") / "large.csv"
    path.write_text("\n".join(lines * 40) + "\n")
    return path


def features_only(path: Path, target: Path) -> Path:
    target.write_text("".join(line.rsplit(",", 1)[0] + "\n" for line in path.open()))
    return target


def parquet_bytes(frame) -> bytes:
    sink = io.BytesIO()
    frame.to_parquet(sink, index=False)
    return sink.getvalue()


def test_processing_outputs_are_byte_identical_to_one_process(
    dask_cluster: StepCluster, large_file: Path
) -> None:
    single = read_abalone_csv(large_file, INPUT, require_label=True)
    read = read_abalone_csv_on(
        dask_cluster,
        large_file,
        RangeSource(str(large_file)),
        INPUT,
        require_label=True,
        piece_bytes=PIECE,
    )
    assert len(read.rows) == len(single) == 40 * 4177
    # Both workers ran tasks: at least one per worker, the file in 8 pieces.
    assert len(read.tasks_per_worker) == 2 and sum(read.tasks_per_worker.values()) >= 7
    one, many = process(single, seed=42), process(read.rows, seed=42)
    for name in ("train", "validation", "test"):
        assert parquet_bytes(getattr(many, name)) == parquet_bytes(getattr(one, name)), name
    assert many.preprocessor.to_json() == one.preprocessor.to_json()


def test_transform_output_is_byte_identical_to_one_process(
    dask_cluster: StepCluster, bundle: tuple[Path, str], large_file: Path, tmp_path: Path
) -> None:
    source = features_only(large_file, tmp_path / "batch.csv")
    reference, out = tmp_path / "reference.csv", tmp_path / "out.csv"
    rows = batch_transform(*bundle, source, reference)
    done = batch_transform_on(
        dask_cluster, *bundle, source, RangeSource(str(source)), out, piece_bytes=PIECE
    )
    assert done.rows == rows == 40 * 4177
    assert out.read_bytes() == reference.read_bytes()
    assert len(done.tasks_per_worker) == 2


@pytest.mark.parametrize(
    "variant", ["nine-columns-no-trailing-newline", "crlf", "blank-lines-between"]
)
def test_line_ends_and_trailing_columns_split_cleanly(
    dask_cluster: StepCluster,
    bundle: tuple[Path, str],
    abalone_file: Path,
    tmp_path: Path,
    variant: str,
) -> None:
    data = abalone_file.read_bytes()
    if variant == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif variant == "blank-lines-between":
        data = data.replace(b"\n", b"\n\n")
    else:
        data = data.rstrip(b"\n")
    source = tmp_path / "batch.csv"
    source.write_bytes(data)
    reference, out = tmp_path / "reference.csv", tmp_path / "out.csv"
    batch_transform(*bundle, source, reference)
    done = batch_transform_on(
        dask_cluster, *bundle, source, RangeSource(str(source)), out, piece_bytes=SMALL_PIECE
    )
    assert done.rows == 4177 and out.read_bytes() == reference.read_bytes()
    rows = read_abalone_csv_on(
        dask_cluster,
        source,
        RangeSource(str(source)),
        INPUT,
        require_label=True,
        piece_bytes=SMALL_PIECE,
    ).rows
    np.testing.assert_array_equal(
        rows.numerics, read_abalone_csv(source, INPUT, require_label=True).numerics
    )


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("M,0.5,0.4,0.1,0.5,0.2,0.1", "expected 9 columns"),
        ("X,0.5,0.4,0.1,0.5,0.2,0.1,0.1,7", "unknown code 'X'"),
        ("M,0.5,0.4,abc,0.5,0.2,0.1,0.1,7", "'height' value 'abc' is not a number"),
    ],
    ids=["short-row", "unknown-sex", "non-numeric"],
)
def test_a_bad_line_in_the_second_workers_range_names_its_global_line(
    dask_cluster: StepCluster,
    bundle: tuple[Path, str],
    large_file: Path,
    tmp_path: Path,
    bad_line: str,
    problem: str,
) -> None:
    lines = large_file.read_text().splitlines()
    line_number = len(lines) * 3 // 4  # 1-based, inside the second of two halves
    lines[line_number - 1] = bad_line
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputDataError) as caught:
        read_abalone_csv_on(dask_cluster, path, RangeSource(str(path)), INPUT, require_label=True)
    error = caught.value
    assert (error.parameter, error.location, error.line) == (INPUT, str(path), line_number)
    assert problem in str(error)
    # The batch transform reads the same file (9 columns, rings ignored) with the same rules.
    out = tmp_path / "out.csv"
    with pytest.raises(InputDataError) as caught:
        batch_transform_on(dask_cluster, *bundle, path, RangeSource(str(path)), out)
    assert (caught.value.location, caught.value.line) == (str(path), line_number)
    assert caught.value.parameter == BATCH_PARAMETER
    assert not out.exists(), "a failed transform leaves no partial output"


@pytest.mark.parametrize("content", [b"", b"\n\n"], ids=["empty", "blank-lines"])
def test_a_file_without_rows_is_an_error(
    dask_cluster: StepCluster, bundle: tuple[Path, str], tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    out = tmp_path / "out.csv"
    with pytest.raises(InputDataError, match="empty|no data rows"):
        batch_transform_on(dask_cluster, *bundle, path, RangeSource(str(path)), out)
    assert not out.exists()
    with pytest.raises(InputDataError, match="empty|no data rows"):
        read_abalone_csv_on(dask_cluster, path, RangeSource(str(path)), INPUT, require_label=True)


def test_a_worker_killed_mid_transform_is_retried_and_the_output_is_the_same(
    bundle: tuple[Path, str], large_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of the first worker to start a piece (at a fault point, not after a sleep):
    Dask restarts it and runs the piece again; the output is still the in-process one."""
    source = features_only(large_file, tmp_path / "batch.csv")
    reference, out = tmp_path / "reference.csv", tmp_path / "out.csv"
    batch_transform(*bundle, source, reference)
    killed = tmp_path / "killed"
    monkeypatch.setenv(FAULT_ENV, f"compute.predict_piece=kill_once:{killed}")
    with open_cluster(2) as cluster:  # its workers inherit the fault
        done = batch_transform_on(
            cluster, *bundle, source, RangeSource(str(source)), out, piece_bytes=PIECE
        )
    assert killed.exists(), "the fault point was reached and a worker killed"
    assert out.read_bytes() == reference.read_bytes()
    assert done.rows == 40 * 4177


@pytest.mark.slow
def test_workers_that_keep_dying_fail_the_transform_with_no_output(
    bundle: tuple[Path, str], abalone_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import KilledWorker

    source = tmp_path / "batch.csv"
    source.write_bytes(abalone_file.read_bytes())
    out = tmp_path / "out.csv"
    monkeypatch.setenv(FAULT_ENV, "compute.predict_piece=kill")
    with open_cluster(2) as cluster, pytest.raises(KilledWorker):
        batch_transform_on(cluster, *bundle, source, RangeSource(str(source)), out)
    assert not out.exists()
