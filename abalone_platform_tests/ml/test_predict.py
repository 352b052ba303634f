"""The batch transform in one process: same predictions, in input order, whatever the chunking;
bad rows anywhere are reported with the file and the line. (ProcessingInstanceCount > 1, on
Dask: abalone_platform_tests/compute.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from abalone_platform.errors import InputDataError
from abalone_platform.ml.bundle import predict_features, read_bundle
from abalone_platform.ml.data import line_aligned_ranges, read_abalone_csv
from abalone_platform.ml.predict import BATCH_PARAMETER, batch_transform

# Small enough that the UCI file (192 kB) and its copies split into several blocks.
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
    """The cuts ProcessingInstanceCount's Dask tasks get."""
    data = big_file.read_bytes()
    ranges = line_aligned_ranges(big_file, 4)
    assert len(ranges) == 4
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert end == start and data[end - 1 : end] == b"\n"


def test_output_is_the_same_for_any_block_size_and_in_input_order(
    bundle: tuple[Path, str], big_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    count = batch_transform(*bundle, big_file, out, block_size=SMALL_BLOCK)
    expected = expected_predictions(bundle, big_file)
    assert count == len(expected) == 3 * 4177
    # Byte-exact against the default block size (one chunk), and in order: the same row
    # predicts the same value, so the file's three copies repeat exactly.
    reference = tmp_path / "reference.csv"
    batch_transform(*bundle, big_file, reference)
    assert out.read_bytes() == reference.read_bytes()
    predictions = read_output(out)
    np.testing.assert_array_equal(predictions, expected.astype(np.float32))
    np.testing.assert_array_equal(predictions[:4177], predictions[4177 * 2 :])


def test_crlf_line_endings_give_the_same_predictions(
    bundle: tuple[Path, str], big_file: Path, tmp_path: Path
) -> None:
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(big_file.read_bytes().replace(b"\n", b"\r\n"))
    out, reference = tmp_path / "out.csv", tmp_path / "reference.csv"
    batch_transform(*bundle, crlf, out, block_size=SMALL_BLOCK)
    batch_transform(*bundle, big_file, reference)
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
def test_a_bad_row_in_the_second_half_names_the_file_and_line(
    bundle: tuple[Path, str],
    big_file: Path,
    tmp_path: Path,
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
        batch_transform(*bundle, path, out, block_size=SMALL_BLOCK)
    error = caught.value
    assert error.location == str(path)
    assert error.line == line_number
    assert problem in str(error)
    assert str(error).startswith(f"{BATCH_PARAMETER}: {path} line {line_number}: ")
    assert not out.exists()


@pytest.mark.parametrize("content", [b"", b"\n\n"], ids=["empty", "blank-lines"])
def test_a_file_without_rows_is_an_error(
    bundle: tuple[Path, str], tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(InputDataError, match="empty|no data rows"):
        batch_transform(*bundle, path, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("chunk_rows", [1 << 20, 1000, 777])
def test_the_fitted_statistics_are_sklearns_bit_for_bit(
    abalone_file: Path, chunk_rows: int
) -> None:
    """fit_preprocessor computes the medians without SimpleImputer (for speed) and the scaler
    in chunks (for memory); they must stay exactly what the sklearn pipeline gives."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from abalone_platform.ml.preprocess import fit_preprocessor

    rows = read_abalone_csv(abalone_file, "input_data (InputData)", require_label=True)
    rows.numerics[np.random.default_rng(0).random(rows.numerics.shape) < 0.05] = np.nan
    reference = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    reference.fit(rows.numerics)
    fitted = fit_preprocessor(rows, chunk_rows=chunk_rows)
    assert fitted.medians == reference.named_steps["simpleimputer"].statistics_.tolist()
    assert fitted.means == reference.named_steps["standardscaler"].mean_.tolist()
    assert fitted.scales == reference.named_steps["standardscaler"].scale_.tolist()


@pytest.mark.parametrize("chunk_rows", [None, 1000])
def test_splits_written_chunk_by_chunk_are_the_bytes_of_the_whole_frame(
    rows, tmp_path: Path, chunk_rows: int | None
) -> None:
    """SplitPlan.write streams row groups; the file is what to_parquet writes for the frame
    (with the same row group size: pyarrow's default, 1,048,576 rows, unless given)."""
    from abalone_platform.ml.preprocess import SPLIT_NAMES, plan_splits

    plan = plan_splits(rows, seed=7)
    for name in SPLIT_NAMES:
        streamed = tmp_path / f"{name}.parquet"
        if chunk_rows is None:
            assert plan.write(name, streamed) == len(plan.indices[name])
            whole = plan.frame(name).to_parquet(index=False)
        else:
            plan.write(name, streamed, chunk_rows=chunk_rows)
            whole = plan.frame(name).to_parquet(index=False, row_group_size=chunk_rows)
        assert streamed.read_bytes() == whole, name
