"""The batch transform: same predictions, in input order, whatever the worker count and chunking;
bad rows anywhere are reported with the file and the line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from abalone_platform.errors import InputDataError
from abalone_platform.ml.bundle import predict_features, read_bundle
from abalone_platform.ml.data import line_aligned_ranges, read_abalone_csv
from abalone_platform.ml.predict import BATCH_PARAMETER, batch_transform

# Small enough that the UCI file (192 kB) and its copies split into several ranges and blocks.
SMALL_WORKER_BYTES = 16 << 10
SMALL_BLOCK = 8 << 10


@pytest.fixture(scope="module")
def big_file(abalone_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The UCI rows three times over, features only (8 columns), some values missing."""
    lines = abalone_file.read_text().splitlines()
    features = [line.rsplit(",", 1)[0] for line in lines]
    features[5] = "," + features[5].split(",", 1)[1]  # missing sex: all one-hot zero
    cells = features[100].split(",")
    cells[3] = ""  # missing height: imputed with the training median
    features[100] = ",".join(cells)
    path = tmp_path_factory.mktemp("batch") / "batch.csv"
    path.write_text("\n".join(features * 3) + "\n")
    return path


def expected_predictions(bundle: tuple[Path, str], path: Path) -> np.ndarray:
    """The reference: the whole file read at once and predicted in one call."""
    loaded = read_bundle(*bundle)
    rows = read_abalone_csv(path, BATCH_PARAMETER, require_label=False)
    return predict_features(loaded.booster, loaded.preprocessor.transform(rows))


def read_output(path: Path) -> np.ndarray:
    return np.array([np.float32(line) for line in path.read_text().splitlines()])


def test_ranges_are_line_aligned_and_cover_the_file(big_file: Path) -> None:
    data = big_file.read_bytes()
    ranges = line_aligned_ranges(big_file, 4)
    assert len(ranges) == 4
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert end == start and data[end - 1 : end] == b"\n"


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_output_is_the_same_for_any_worker_count_and_in_input_order(
    bundle: tuple[Path, str], big_file: Path, tmp_path: Path, workers: int
) -> None:
    out = tmp_path / "out.csv"
    count = batch_transform(
        *bundle,
        big_file,
        out,
        workers=workers,
        block_size=SMALL_BLOCK,
        min_bytes_per_worker=SMALL_WORKER_BYTES,
    )
    expected = expected_predictions(bundle, big_file)
    assert count == len(expected) == 3 * 4177
    # Byte-exact against one worker with the default block size (one chunk), and in order:
    # the same row predicts the same value, so the file's three copies repeat exactly.
    reference = tmp_path / "reference.csv"
    batch_transform(*bundle, big_file, reference, workers=1)
    assert out.read_bytes() == reference.read_bytes()
    predictions = read_output(out)
    np.testing.assert_array_equal(predictions, expected.astype(np.float32))
    np.testing.assert_array_equal(predictions[:4177], predictions[4177 * 2 :])
    assert not list(tmp_path.glob("*.part*")), "worker parts must be removed"


def test_a_nine_column_file_without_a_trailing_newline_splits_cleanly(
    bundle: tuple[Path, str], abalone_file: Path, tmp_path: Path
) -> None:
    source = tmp_path / "labelled.csv"
    source.write_bytes(abalone_file.read_bytes().rstrip(b"\n"))
    out = tmp_path / "out.csv"
    count = batch_transform(
        *bundle, source, out, workers=2, min_bytes_per_worker=SMALL_WORKER_BYTES
    )
    assert count == 4177
    np.testing.assert_array_equal(
        read_output(out), expected_predictions(bundle, source).astype(np.float32)
    )


def test_crlf_line_endings_give_the_same_predictions(
    bundle: tuple[Path, str], big_file: Path, tmp_path: Path
) -> None:
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(big_file.read_bytes().replace(b"\n", b"\r\n"))
    out, reference = tmp_path / "out.csv", tmp_path / "reference.csv"
    batch_transform(*bundle, crlf, out, workers=2, min_bytes_per_worker=SMALL_WORKER_BYTES)
    batch_transform(*bundle, big_file, reference, workers=1)
    assert out.read_bytes() == reference.read_bytes()


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("M,0.5,0.4,0.1,0.5,0.2,0.1", "expected 8 columns"),
        ("X,0.5,0.4,0.1,0.5,0.2,0.1,0.1", "unknown code 'X'"),
        ("M,0.5,0.4,abc,0.5,0.2,0.1,0.1", "'height' value 'abc' is not a number"),
    ],
    ids=["short-row", "unknown-sex", "non-numeric"],
)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_row_in_the_second_half_names_the_file_and_line(
    bundle: tuple[Path, str],
    big_file: Path,
    tmp_path: Path,
    workers: int,
    bad_line: str,
    problem: str,
) -> None:
    lines = big_file.read_text().splitlines()
    line_number = len(lines) - 100  # 1-based, well inside the last range
    lines[line_number - 1] = bad_line
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    with pytest.raises(InputDataError) as caught:
        batch_transform(
            *bundle,
            path,
            out,
            workers=workers,
            block_size=SMALL_BLOCK,
            min_bytes_per_worker=SMALL_WORKER_BYTES,
        )
    error = caught.value
    assert error.location == str(path)
    assert error.line == line_number
    assert problem in str(error)
    assert str(error).startswith(f"{BATCH_PARAMETER}: {path} line {line_number}: ")
    assert not out.exists() and not list(tmp_path.glob("*.part*"))


@pytest.mark.parametrize("content", [b"", b"\n\n"], ids=["empty", "blank-lines"])
def test_a_file_without_rows_is_an_error(
    bundle: tuple[Path, str], tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(InputDataError, match="empty|no data rows"):
        batch_transform(*bundle, path, tmp_path / "out.csv", workers=2)


def test_the_fitted_statistics_are_sklearns_bit_for_bit(abalone_file: Path) -> None:
    """fit_preprocessor computes the medians without SimpleImputer (for speed); they and the
    scaler fitted on the imputed rows must stay exactly what the sklearn pipeline gives."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from abalone_platform.ml.preprocess import fit_preprocessor

    rows = read_abalone_csv(abalone_file, "input_data (InputData)", require_label=True)
    rows.numerics[np.random.default_rng(0).random(rows.numerics.shape) < 0.05] = np.nan
    reference = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    reference.fit(rows.numerics)
    fitted = fit_preprocessor(rows)
    assert fitted.medians == reference.named_steps["simpleimputer"].statistics_.tolist()
    assert fitted.means == reference.named_steps["standardscaler"].mean_.tolist()
    assert fitted.scales == reference.named_steps["standardscaler"].scale_.tolist()
