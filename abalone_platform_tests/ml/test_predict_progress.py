"""Progress of the batch transform: the rows written so far, rising to the file's row count,
in one process and on Dask, with the same output bytes as without it; and the row estimate
that gives the progress lines a total without a pass over the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from abalone_platform.compute.cluster import StepCluster
from abalone_platform.compute.ranges import RangeSource
from abalone_platform.compute.transform import batch_transform_on
from abalone_platform.ml import predict
from abalone_platform.ml.predict import batch_transform, estimated_rows

COPIES = 3
UCI_ROWS = 4177
# Small groups and blocks, so the UCI rows three times over make a dozen writes.
SMALL_GROUP = 1000
SMALL_BLOCK = 8 << 10


@pytest.fixture(scope="module")
def batch_file(abalone_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The UCI rows three times over, features only (a batch file has no label)."""
    features = [line.rsplit(",", 1)[0] for line in abalone_file.read_text().splitlines()]
    assert len(features) == UCI_ROWS
    path = tmp_path_factory.mktemp("progress") / "batch.csv"
    path.write_text("\n".join(features * COPIES) + "\n")
    return path


@pytest.fixture(scope="module")
def reference_output(bundle: tuple[Path, str], batch_file: Path, tmp_path_factory) -> bytes:
    """The transform's output with no progress callback and the default chunking."""
    out = tmp_path_factory.mktemp("reference") / "out.csv"
    batch_transform(*bundle, batch_file, out)
    return out.read_bytes()


def check_rising_to(counts: list[int], rows: int, at_least: int) -> None:
    assert len(counts) >= at_least
    assert all(a < b for a, b in zip(counts, counts[1:], strict=False))
    assert counts[0] > 0 and counts[-1] == rows


def test_in_process_progress_counts_rows_written_up_to_the_total(
    bundle: tuple[Path, str],
    batch_file: Path,
    reference_output: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(predict, "PREDICT_ROWS", SMALL_GROUP)
    out = tmp_path / "out.csv"
    counts: list[int] = []
    rows = batch_transform(*bundle, batch_file, out, block_size=SMALL_BLOCK, progress=counts.append)
    assert rows == COPIES * UCI_ROWS
    check_rising_to(counts, rows, at_least=COPIES * UCI_ROWS // SMALL_GROUP)
    assert out.read_bytes() == reference_output


def test_a_failing_progress_callback_fails_the_transform_and_leaves_no_output(
    bundle: tuple[Path, str], batch_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"

    def progress(rows: int) -> None:
        raise OSError("the log is gone")

    with pytest.raises(OSError, match="the log is gone"):
        batch_transform(*bundle, batch_file, out, progress=progress)
    assert not out.exists()


def test_dask_progress_counts_pieces_in_file_order_up_to_the_total(
    dask_cluster: StepCluster,
    bundle: tuple[Path, str],
    batch_file: Path,
    reference_output: bytes,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.csv"
    counts: list[int] = []
    piece_bytes = batch_file.stat().st_size // 6 + 1
    done = batch_transform_on(
        dask_cluster,
        *bundle,
        batch_file,
        RangeSource(str(batch_file)),
        out,
        piece_bytes=piece_bytes,
        progress=counts.append,
    )
    assert done.rows == COPIES * UCI_ROWS
    check_rising_to(counts, done.rows, at_least=6)
    assert out.read_bytes() == reference_output


def test_estimated_rows_is_exact_for_a_small_file_and_close_for_a_large_one(
    batch_file: Path, tmp_path: Path
) -> None:
    assert estimated_rows(batch_file) == COPIES * UCI_ROWS
    unterminated = tmp_path / "unterminated.csv"
    unterminated.write_bytes(b"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15\nF,0.53")
    assert estimated_rows(unterminated) == 2
    # Sampling a tenth of the file: within 2% of the true count (line lengths vary a little).
    estimate = estimated_rows(batch_file, sample_bytes=batch_file.stat().st_size // 10)
    assert abs(estimate - COPIES * UCI_ROWS) <= 0.02 * COPIES * UCI_ROWS
