"""Reading and validating abalone CSVs: row counts, missing values and every kind of bad row."""

import re
from pathlib import Path

import numpy as np
import pytest

from abalone_platform.errors import InputDataError
from abalone_platform.ml.data import AbaloneColumns, iter_parsed_batches, read_abalone_csv
from abalone_platform_tests.support.inputs import write

PARAMETER = "input_data (InputData)"
GOOD_ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15"


def test_reads_the_uci_file(abalone_file: Path) -> None:
    rows = read_abalone_csv(abalone_file, PARAMETER, require_label=True)
    assert len(rows) == 4177
    assert rows.numerics.shape == (4177, 7)
    sexes, counts = np.unique(rows.sex, return_counts=True)
    assert dict(zip(sexes.tolist(), counts.tolist(), strict=True)) == {
        "F": 1307,
        "I": 1342,
        "M": 1528,
    }
    assert rows.rings.min() == 1 and rows.rings.max() == 29
    assert rows.numerics[0].tolist() == [0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15]


def test_empty_measurements_and_sex_are_missing_values_not_errors(tmp_path: Path) -> None:
    gaps = ["F,0.5,,0.1,0.5,0.2,0.1,0.1,9", ",0.4,0.3,0.1,0.4,0.2,0.1,0.1,7"]
    path = write(tmp_path, [GOOD_ROW, *gaps])
    rows = read_abalone_csv(path, PARAMETER, require_label=True)
    assert np.isnan(rows.numerics[1, 1])
    assert rows.sex.tolist() == ["M", "F", ""]


@pytest.mark.parametrize(
    ("lines", "line", "fragment"),
    [
        ([GOOD_ROW, GOOD_ROW, "M,0.4,0.3,0.1,0.4,0.2,0.1,9"], 3, "expected 9 columns"),
        ([GOOD_ROW, "M,0.4,0.3,0.1,0.4,0.2,0.1,0.1,9,1"], 2, "found 10"),
        (
            [GOOD_ROW, GOOD_ROW, GOOD_ROW, "F,0.4,abc,0.1,0.4,0.2,0.1,0.1,9"],
            4,
            "column 'diameter' value 'abc' is not a number",
        ),
        ([GOOD_ROW, "X,0.4,0.3,0.1,0.4,0.2,0.1,0.1,9"], 2, "unknown code 'X'"),
        ([GOOD_ROW, "F,0.4,0.3,0.1,0.4,0.2,0.1,0.1,"], 2, "column 'rings' is empty"),
        (["F,0.4,0.3,0.1,0.4,0.2,0.1,0.1"], 1, "expected 9 columns"),
    ],
    ids=["short-row", "long-row", "non-numeric", "unknown-sex", "missing-label", "no-label"],
)
def test_bad_rows_name_parameter_file_and_line(
    tmp_path: Path, lines: list[str], line: int, fragment: str
) -> None:
    path = write(tmp_path, lines)
    with pytest.raises(InputDataError) as caught:
        read_abalone_csv(path, PARAMETER, require_label=True)
    message = str(caught.value)
    assert message.startswith(f"{PARAMETER}: {path} line {line}: "), message
    assert fragment in message
    assert caught.value.line == line


def test_bad_row_deep_in_a_large_file_is_located(tmp_path: Path, abalone_file: Path) -> None:
    lines = abalone_file.read_text().splitlines() * 3
    lines[10_000] = lines[10_000].replace("0.", "zero.", 1)
    path = write(tmp_path, lines)
    with pytest.raises(InputDataError, match=re.escape(f"{path} line 10001: column ")):
        read_abalone_csv(path, PARAMETER, require_label=True)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="does not exist"):
        read_abalone_csv(tmp_path / "nope.csv", PARAMETER, require_label=True)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputDataError, match=re.escape(f"{PARAMETER}: {empty}: file is empty")):
        read_abalone_csv(empty, PARAMETER, require_label=True)


def test_batch_files_may_omit_rings(tmp_path: Path) -> None:
    path = write(tmp_path, ["M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"] * 3)
    rows = read_abalone_csv(path, "batch_data (BatchData)", require_label=False)
    assert len(rows) == 3 and rows.rings is None


def test_streamed_blocks_joined_are_the_whole_file(tmp_path: Path, abalone_file: Path) -> None:
    """One container for blocks and files: the blocks, concatenated, are what the reader gives."""
    path = write(tmp_path, abalone_file.read_text().splitlines() * 2)
    blocks = list(iter_parsed_batches(path, PARAMETER, require_label=True, block_size=64 << 10))
    assert len(blocks) > 1 and all(b.numerics.flags.f_contiguous for b in blocks)
    whole = AbaloneColumns.concat(blocks)
    single = read_abalone_csv(path, PARAMETER, require_label=True)
    assert whole.source == single.source == str(path)
    assert whole.numerics.flags.c_contiguous and single.numerics.flags.c_contiguous
    np.testing.assert_array_equal(whole.numerics, single.numerics)
    np.testing.assert_array_equal(whole.sex_codes, single.sex_codes)
    np.testing.assert_array_equal(whole.rings, single.rings)
    assert single.sex[:3].tolist() == [line.split(",")[0] for line in abalone_file.open()][:3]
    # A part without rows (a byte range of empty lines) does not drop the others' rings.
    empty = AbaloneColumns(np.empty(0, np.int8), np.empty((0, 7)), None, str(path))
    assert AbaloneColumns.concat([empty, *blocks]).rings is not None
    assert len(single.take(np.arange(5))) == 5
