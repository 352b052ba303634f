"""Request bodies to rows, and predictions to response bodies, for /invocations.

CSV: headerless rows of the 8 raw columns, or 9 with rings (parsed, not used), by the batch
file's rules (ml/data.py). JSON: the forms `mlflow models serve` accepts, so its clients can
switch: {"dataframe_split": {"columns": [...], "data": [[...], ...]}}, {"dataframe_records":
[{...}, ...]}, {"instances": [...]} and {"inputs": [...]} (rows as lists in column order or as
{column: value} objects; `inputs` may also be {column: [values]}). Every error names the row
(CSV: the line) and the column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from abalone_platform.errors import InputDataError
from abalone_platform.ml.data import (
    FEATURE_COLUMNS,
    RAW_COLUMNS,
    AbaloneColumns,
    columns_from_values,
    parse_csv_bytes,
)
from abalone_platform.ml.predict import format_predictions

CSV = "text/csv"
JSON = "application/json"
CONTENT_TYPES = (CSV, JSON)
BODY = "request body"
JSON_FORMS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse_csv(body: bytes) -> AbaloneColumns:
    return parse_csv_bytes(body, CSV, BODY)


def _bad(problem: str) -> InputDataError:
    return InputDataError(JSON, BODY, problem)


def _from_row_lists(rows: Sequence[Any], form: str) -> dict[str, list[Any]]:
    values: dict[str, list[Any]] = {name: [] for name in FEATURE_COLUMNS}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, list) or len(row) not in (len(FEATURE_COLUMNS), len(RAW_COLUMNS)):
            count = len(row) if isinstance(row, list) else f"a {type(row).__name__}, not a list of"
            raise _bad(
                f"{form} row {number} has {count} values; expected {len(FEATURE_COLUMNS)} "
                f"({', '.join(FEATURE_COLUMNS)}) or {len(RAW_COLUMNS)} with rings"
            )
        for name, value in zip(FEATURE_COLUMNS, row, strict=False):
            values[name].append(value)
    return values


def _from_records(rows: Sequence[Any], form: str) -> dict[str, list[Any]]:
    values: dict[str, list[Any]] = {name: [] for name in FEATURE_COLUMNS}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise _bad(f"{form} row {number} is not an object of column: value")
        missing = [name for name in FEATURE_COLUMNS if name not in row]
        if missing:
            raise _bad(f"{form} row {number} has no column(s) {', '.join(missing)}")
        for name in FEATURE_COLUMNS:
            values[name].append(row[name])
    return values


def _rows(rows: Any, form: str) -> dict[str, list[Any]]:
    if not isinstance(rows, list):
        raise _bad(f"{form} must be a list of rows")
    if rows and isinstance(rows[0], Mapping):
        return _from_records(rows, form)
    return _from_row_lists(rows, form)


def parse_json(body: bytes) -> AbaloneColumns:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(f"is not valid JSON ({exc})") from exc
    forms = [form for form in JSON_FORMS if isinstance(payload, dict) and form in payload]
    if len(forms) != 1:
        raise _bad(f"must be an object with exactly one of {', '.join(JSON_FORMS)}")
    form = forms[0]
    data = payload[form]
    if form == "dataframe_split":
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise _bad('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
        rows = data["data"]
        width = len(rows[0]) if rows and isinstance(rows[0], list) else len(FEATURE_COLUMNS)
        columns = data.get("columns") or list(RAW_COLUMNS[:width])
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise _bad("dataframe_split columns must be a list of column names")
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, list) or len(row) != len(columns):
                raise _bad(
                    f"dataframe_split row {number} has "
                    f"{len(row) if isinstance(row, list) else 'no list of'} values for "
                    f"{len(columns)} columns"
                )
        values = {name: [row[j] for row in rows] for j, name in enumerate(columns)}
    elif form == "inputs" and isinstance(data, Mapping):
        # {column: [values]}, or one row as {column: value}
        scalar = all(not isinstance(v, list) for v in data.values())
        values = {name: [v] for name, v in data.items()} if scalar else dict(data)
    else:
        values = _rows(data, form)
    columns = columns_from_values(values, JSON, f"{BODY} ({form})")
    if not len(columns):
        raise _bad(f"{form} holds no rows")
    return columns


def parse(content_type: str, body: bytes) -> AbaloneColumns:
    return parse_csv(body) if content_type == CSV else parse_json(body)


def render(predictions: np.ndarray, media_type: str) -> bytes:
    """One value per line (CSV), or MLflow's {"predictions": [...]}: the batch transform's
    figures and text in both."""
    text = format_predictions(predictions)
    if media_type == CSV:
        return text
    return b'{"predictions": [' + text.rstrip(b"\n").replace(b"\n", b", ") + b"]}"
