"""The fitted preprocessor, split and feature layout.

The reference fits its ColumnTransformer on every row before splitting (leakage) and never saves
it. Here it is fit on the training rows only, with the same sklearn steps, and kept as plain data
(JSON) so that the batch transform applies exactly what training saw, without unpickling.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from abalone_platform.errors import InputDataError
from abalone_platform.ml.data import LABEL_COLUMN, NUMERIC_COLUMNS, SEX_CODES, AbaloneColumns

if TYPE_CHECKING:
    import pandas as pd

ENCODED_SEX_COLUMNS: tuple[str, ...] = tuple(f"sex_{code}" for code in SEX_CODES)
# The reference's order: 7 scaled numerics, then one-hot sex F, I, M.
MODEL_FEATURES: tuple[str, ...] = (*NUMERIC_COLUMNS, *ENCODED_SEX_COLUMNS)
SPLIT_COLUMNS: tuple[str, ...] = (LABEL_COLUMN, *MODEL_FEATURES)
PREPROCESSOR_FORMAT = "abalone_platform.preprocessor/v1"


@dataclass(frozen=True)
class Preprocessor:
    """Median imputer + standard scaler for numerics; constant imputer + one-hot for sex."""

    numeric_columns: list[str]
    medians: list[float]
    means: list[float]
    scales: list[float]
    sex_categories: list[str]
    output_columns: list[str]
    fitted_rows: int

    def transform(self, columns: AbaloneColumns, out: np.ndarray | None = None) -> np.ndarray:
        """Feature matrix (n, 10) as float32, in MODEL_FEATURES order, straight from the
        columns' arrays (sex from its codes): no per-row objects. ``out``, when given, is the
        (n, 10) float32 array to fill (a slice of a larger one, as the batch transform does).
        Column-major numerics (streamed blocks) are read fastest, but any layout gives the same
        figures."""
        sex_codes = columns.sex_codes
        n = len(sex_codes)
        if out is None:
            out = np.empty((n, len(self.output_columns)), dtype=np.float32)
        scratch = np.empty(n, dtype=np.float64)
        for j in range(len(self.numeric_columns)):
            # (value - mean) / scale in float64, then one rounding to float32: the same figures
            # as the whole-matrix expression, one column at a time to stay in cache.
            np.subtract(columns.numerics[:, j], self.means[j], out=scratch)
            # Values are finite (validated), so a NaN in scratch is a missing value; min finds
            # one in a pass that allocates nothing, and most blocks have none.
            if n and np.isnan(scratch.min()):
                scratch[np.isnan(scratch)] = self.medians[j] - self.means[j]
            np.divide(scratch, self.scales[j], out=scratch)
            out[:, j] = scratch
        offset = len(self.numeric_columns)
        for j, category in enumerate(self.sex_categories):
            code = SEX_CODES.index(category) if category in SEX_CODES else -1
            np.equal(sex_codes, code, out=out[:, offset + j], casting="unsafe")
        return out

    def to_json(self) -> bytes:
        return json.dumps({"format": PREPROCESSOR_FORMAT, **asdict(self)}, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Preprocessor:
        payload = json.loads(data)
        if payload.pop("format", None) != PREPROCESSOR_FORMAT:
            raise ValueError(f"not a {PREPROCESSOR_FORMAT} document")
        return cls(**payload)


def fit_preprocessor(train_rows: AbaloneColumns) -> Preprocessor:
    """Fit the reference's sklearn steps on the training rows and keep their fitted values."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    numerics = train_rows.numerics
    missing = np.isnan(numerics)
    if missing.all(axis=0).any():
        # A column with no value at all: SimpleImputer's own handling (it drops the column).
        numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        numeric.fit(numerics)
        medians = numeric.named_steps["simpleimputer"].statistics_
        scaler = numeric.named_steps["standardscaler"]
    else:
        # SimpleImputer(strategy="median")'s statistics, bit for bit, without its masked-array
        # median (a second per million rows); the scaler is sklearn's, fit on the imputed rows.
        medians = np.nanmedian(numerics, axis=0)
        imputed = np.where(missing, medians, numerics) if missing.any() else numerics
        scaler = StandardScaler().fit(imputed)
    # The one-hot categories are fixed rather than learnt: a training sample that happened to
    # lack one sex would otherwise change the feature layout the model is trained on. The
    # reference's OneHotEncoder(categories=[SEX_CODES], handle_unknown="ignore") so fitted
    # learns nothing from the rows; ``transform`` encodes the codes, a missing sex as all zeros.
    return Preprocessor(
        numeric_columns=list(NUMERIC_COLUMNS),
        medians=[float(v) for v in medians],
        means=[float(v) for v in scaler.mean_],
        scales=[float(v) for v in scaler.scale_],
        sex_categories=list(SEX_CODES),
        output_columns=list(MODEL_FEATURES),
        fitted_rows=len(train_rows),
    )


def _split_points(n_rows: int) -> tuple[int, int]:
    # The reference's cuts, float expression and all, so that every split stays bit-identical.
    return int(0.7 * n_rows), int(0.85 * n_rows)


def split_sizes(n_rows: int) -> tuple[int, int, int]:
    """Rows in train, validation and test for ``n_rows`` input rows."""
    first, second = _split_points(n_rows)
    return first, second - first, n_rows - second


def split_indices(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """70/15/15 after a seeded shuffle, cut where the reference cuts (int(0.7n), int(0.85n))."""
    order = np.random.default_rng(seed).permutation(n_rows)
    first, second = _split_points(n_rows)
    return order[:first], order[first:second], order[second:]


# Fewest rows any split may get: below that, the model, its validation RMSE or the evaluation
# gate's test MSE would rest on a handful of rows and mean nothing; and with 1 row the training
# split is empty, which the preprocessor cannot even be fit on.
MIN_ROWS_PER_SPLIT = 10


def _min_input_rows(per_split: int) -> int:
    """Fewest input rows from which on every split gets at least ``per_split`` rows.

    The floors make a split's size step unevenly (validation can shrink by one as the input
    grows), so this is the first count after the last one that falls short, not the first that
    happens to suffice. From ``(per_split + 2) / 0.15`` rows on none can: the smallest split is
    at least 15% of the rows less one.
    """
    last_short = 0
    for n in range(int((per_split + 2) / 0.15) + 1):
        if min(split_sizes(n)) < per_split:
            last_short = n
    return last_short + 1


# Fewest input data rows process() accepts: 64 (with 10 per split, 70/15/15 gives 44/10/10).
MIN_INPUT_ROWS = _min_input_rows(MIN_ROWS_PER_SPLIT)
INPUT_PARAMETER = "input_data (InputData)"


def check_enough_rows(n_rows: int, parameter: str, location: str) -> None:
    """Refuse an input too small for every split to get MIN_ROWS_PER_SPLIT rows."""
    if n_rows < MIN_INPUT_ROWS:
        rows = "data row" if n_rows == 1 else "data rows"
        raise InputDataError(
            parameter,
            location,
            f"has {n_rows:,} {rows}; at least {MIN_INPUT_ROWS} are needed so that train, "
            f"validation and test each get {MIN_ROWS_PER_SPLIT} (a 70/15/15 split)",
        )


def split_frame(rows: AbaloneColumns, preprocessor: Preprocessor) -> pd.DataFrame:
    """A split as stored: rings first, then the 10 model features."""
    # Imported here: the batch transform's workers use this module but never pandas.
    import pandas as pd

    features = preprocessor.transform(rows)
    frame = pd.DataFrame(features.astype(np.float64), columns=list(MODEL_FEATURES))
    frame.insert(0, LABEL_COLUMN, rows.rings)
    return frame


@dataclass(frozen=True)
class ProcessedData:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    preprocessor: Preprocessor


def process(
    rows: AbaloneColumns,
    seed: int,
    *,
    parameter: str = INPUT_PARAMETER,
    location: str | None = None,
) -> ProcessedData:
    """AbaloneProcess: shuffle, split, fit on the training rows, transform all three splits.

    Raises InputDataError (naming ``parameter`` and ``location``, by default the file the rows
    were read from) when there are fewer than MIN_INPUT_ROWS rows.
    """
    check_enough_rows(len(rows), parameter, location or rows.source or "input rows")
    train_idx, validation_idx, test_idx = split_indices(len(rows), seed)
    train_rows = rows.take(train_idx)
    preprocessor = fit_preprocessor(train_rows)
    return ProcessedData(
        train=split_frame(train_rows, preprocessor),
        validation=split_frame(rows.take(validation_idx), preprocessor),
        test=split_frame(rows.take(test_idx), preprocessor),
        preprocessor=preprocessor,
    )
