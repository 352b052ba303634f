"""Request bodies to rows and predictions to bodies: CSV by the batch file's rules (the quick
path for small bodies gives exactly what Arrow gives), MLflow's JSON forms, and errors that name
the line or row and the column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import abalone_platform.ml.data as data
from abalone_platform.errors import InputDataError
from abalone_platform.ml.data import FEATURE_COLUMNS, RAW_COLUMNS
from abalone_platform.serving import payloads

ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"


@pytest.fixture(scope="module")
def uci_lines(abalone_file: Path) -> list[str]:
    return abalone_file.read_text().splitlines()


def arrow_only(body: bytes):
    """The same body through Arrow and the file rules only (the quick path turned off)."""
    saved = data.QUICK_PARSE_BYTES
    data.QUICK_PARSE_BYTES = -1
    try:
        return payloads.parse_csv(body)
    finally:
        data.QUICK_PARSE_BYTES = saved


@pytest.mark.parametrize("rows", [1, 7, 60])
def test_quick_csv_path_equals_arrow(uci_lines: list[str], rows: int) -> None:
    lines = uci_lines[100 : 100 + rows]
    lines[0] = "," + lines[0].split(",", 1)[1]  # missing sex
    cells = lines[-1].split(",")
    cells[2] = ""  # missing diameter
    lines[-1] = ",".join(cells)
    body = ("\r\n".join(lines) + "\n").encode()
    assert len(body) <= data.QUICK_PARSE_BYTES
    quick, arrow = payloads.parse_csv(body), arrow_only(body)
    np.testing.assert_array_equal(quick.sex_codes, arrow.sex_codes)
    np.testing.assert_array_equal(quick.numerics, arrow.numerics)
    assert len(quick) == rows


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"{ROW}\nF,0.53,abc,0.135,0.677,0.2565,0.1415,0.21\n", "line 2: column 'diameter'"),
        (f"{ROW}\n{ROW},9\n", "line 2: expected 8 columns"),
        ("M,0.4,0.3\n", "line 1: expected 8 or 9 comma-separated columns"),
        (f"{ROW}\nQ{ROW[1:]}\n", "line 2: column 'sex' has unknown code 'Q'"),
        (f"\n\n{ROW[:-4]}-0.15\n", "line 3: column 'shell_weight' value '-0.15' is negative"),
        (f"{ROW[:-4]}nan\n", "line 1: column 'shell_weight' value 'nan' is not a finite"),
        (f"{ROW},x\n", "line 1: column 'rings' value 'x' is not a number"),
        ("\n\n", "holds no rows"),
    ],
)
def test_csv_errors_name_line_and_column(body: str, message: str) -> None:
    with pytest.raises(InputDataError, match=message) as caught:
        payloads.parse_csv(body.encode())
    assert caught.value.parameter == "text/csv"
    # Large bodies take the Arrow path: the same message.
    with pytest.raises(InputDataError, match=message):
        arrow_only(body.encode())


def test_csv_rings_column_is_read_and_ignored() -> None:
    with_rings = payloads.parse_csv(f"{ROW},15\n".encode())
    without = payloads.parse_csv(f"{ROW}\n".encode())
    np.testing.assert_array_equal(with_rings.numerics, without.numerics)
    assert with_rings.rings is None


def _rows(n: int = 2) -> list[list[object]]:
    return [["M", 0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15], ["F", *[0.5] * 7]][:n]


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": list(FEATURE_COLUMNS), "data": _rows()}},
        {"dataframe_split": {"columns": list(RAW_COLUMNS), "data": [r + [9] for r in _rows()]}},
        {"dataframe_records": [dict(zip(FEATURE_COLUMNS, r, strict=True)) for r in _rows()]},
        {"instances": _rows()},
        {"instances": [dict(zip(FEATURE_COLUMNS, r, strict=True)) for r in _rows()]},
        {"inputs": _rows()},
        {"inputs": {name: [r[j] for r in _rows()] for j, name in enumerate(FEATURE_COLUMNS)}},
    ],
)
def test_json_forms_give_the_csv_rows(payload: dict) -> None:
    from_json = payloads.parse_json(json.dumps(payload).encode())
    csv_body = "\n".join(",".join(str(v) for v in row) for row in _rows()).encode()
    from_csv = payloads.parse_csv(csv_body)
    np.testing.assert_array_equal(from_json.sex_codes, from_csv.sex_codes)
    np.testing.assert_array_equal(from_json.numerics, from_csv.numerics)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not json", "is not valid JSON"),
        ({"rows": []}, "exactly one of dataframe_split"),
        ({"instances": [_rows(1)[0][:5]]}, "instances row 1 has 5 values; expected 8"),
        ({"dataframe_records": [{"sex": "M"}]}, "row 1 has no column\\(s\\) length"),
        (
            {"instances": [_rows(1)[0], ["M", "big", *[0.5] * 6]]},
            "row 2: column 'length' value 'big' is not a number",
        ),
        ({"inputs": [["X", *[0.5] * 7]]}, "row 1: column 'sex' has unknown code 'X'"),
        # JSON values follow a CSV field's rules: no NaN from text, no booleans, no 1_0.
        ({"instances": [["M", "nan", *[0.5] * 6]]}, "'length' value 'nan' is not a finite"),
        ({"instances": [["M", True, *[0.5] * 6]]}, "'length' value True is not a number"),
        ({"instances": [["M", "1_0", *[0.5] * 6]]}, "'length' value '1_0' is not a number"),
        ({"instances": [["M", 10**400, *[0.5] * 6]]}, "is not a finite number"),
        ({"dataframe_split": {"columns": [["a"]], "data": [[1]]}}, "list of column names"),
        (
            {"inputs": {"sex": "M", **{name: [0.5] for name in FEATURE_COLUMNS[1:]}}},
            "column 'sex' must be a list of values",
        ),
        ({"instances": []}, "holds no rows"),
    ],
)
def test_json_errors_name_row_and_column(payload: object, message: str) -> None:
    body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    with pytest.raises(InputDataError, match=message):
        payloads.parse_json(body)


def test_json_one_row_and_split_without_columns() -> None:
    row = dict(zip(FEATURE_COLUMNS, _rows(1)[0], strict=True))
    one = payloads.parse_json(json.dumps({"inputs": row}).encode())
    split = payloads.parse_json(json.dumps({"dataframe_split": {"data": _rows(1)}}).encode())
    np.testing.assert_array_equal(one.numerics, split.numerics)
    assert len(one) == 1


def test_csv_with_lone_cr_line_ends_names_the_line() -> None:
    with pytest.raises(InputDataError, match="line 3: column 'height'"):
        payloads.parse_csv(f"{ROW}\r{ROW}\rM,0.4,0.3,x,0.5,0.2,0.1,0.15\r".encode())


@pytest.mark.parametrize(
    ("accept", "request_type", "answer"),
    [
        (None, "text/csv", "text/csv"),
        ("application/json", "text/csv", "application/json"),
        ("application/json;q=0, text/csv", "application/json", "text/csv"),
        ("*/*;q=0.5, application/json;q=0.9", "text/csv", "application/json"),
        ("*/*", "application/json", "application/json"),
        ("text/*", "application/json", "text/csv"),
        ("application/xml", "text/csv", None),
    ],
)
def test_accept_picks_the_preferred_type(accept, request_type, answer) -> None:
    from abalone_platform.serving.app import _response_type

    assert _response_type(accept, request_type) == answer


def test_render_is_the_batch_text_in_both_types() -> None:
    predictions = np.array([9.239673, 10.5, 7.0], np.float32)
    csv_text = payloads.render(predictions, payloads.CSV)
    assert csv_text == b"9.239673\n10.5\n7\n"
    assert json.loads(payloads.render(predictions, payloads.JSON)) == {
        "predictions": [9.239673, 10.5, 7.0]
    }
