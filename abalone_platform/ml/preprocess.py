"""The fitted preprocessor, split and feature layout.

The reference fits its ColumnTransformer on every row before splitting (leakage) and never saves
it. Here it is fit on the training rows only, with the same sklearn steps, and kept as plain data
(JSON) so that the batch transform applies exactly what training saw, without unpickling.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from abalone_platform.errors import INPUT_PARAMETER, InputDataError
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


# Rows per chunk when a split is fit on, transformed and written: pyarrow's default maximum
# row group (1,048,576 rows), so that a split written chunk by chunk has the row groups, and
# the bytes, of the whole frame written at once; and memory stays a few chunks, not a split.
CHUNK_ROWS = 1 << 20
# Below this many rows NumPy's nanmedian over a 2-d array takes another path (masked arrays);
# such small fits are done in one piece, exactly as SimpleImputer's statistics were matched.
_SMALL_FIT_ROWS = 600


def _chunks(index: np.ndarray, chunk_rows: int) -> list[np.ndarray]:
    return [index[at : at + chunk_rows] for at in range(0, len(index), chunk_rows)]


class _SequentialSum:
    """Column sums of row chunks, bit for bit what NumPy's ``sum(axis=0)`` gives for the whole
    C-ordered matrix at once (a sequential accumulation down each column): each chunk's first
    row starts from the running total, then the chunk is summed the same way."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None

    def add(self, chunk: np.ndarray) -> None:
        """``chunk``: an (m, k) C-ordered float64 array this sum may modify."""
        if self.total is not None:
            chunk[0] += self.total
        self.total = chunk.sum(axis=0)


def fit_preprocessor(
    rows: AbaloneColumns, index: np.ndarray | None = None, *, chunk_rows: int = CHUNK_ROWS
) -> Preprocessor:
    """Fit the reference's sklearn steps on ``rows`` (those at ``index``: the training rows)
    and keep their fitted values: SimpleImputer(strategy="median") then StandardScaler, bit
    for bit, in chunks of ``chunk_rows`` rows (one column at a time for the medians), so a
    30M-row input is never copied whole."""
    index = np.arange(len(rows)) if index is None else index
    n = len(index)
    if n < _SMALL_FIT_ROWS:
        return _fit_in_one_piece(rows.take(index))
    # SimpleImputer's medians: NumPy's nanmedian of each column, the function it applies per
    # column of a 2-d array (without its masked-array median, a second per million rows). A
    # median does not depend on the rows' order, so each column is gathered through a mask, a
    # sequential pass, rather than in the shuffled order of ``index``.
    chosen = np.zeros(len(rows), bool)
    chosen[index] = True
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": handled below
        medians = np.array(
            [
                np.nanmedian(rows.numerics[chosen, j], overwrite_input=True)
                for j in range(len(NUMERIC_COLUMNS))
            ]
        )
    del chosen
    if np.isnan(medians).any():
        # A column with no value at all: SimpleImputer's own handling (it drops the column).
        return _fit_in_one_piece(rows.take(index))

    def imputed(part: np.ndarray) -> np.ndarray:
        chunk = rows.numerics[part]
        missing = np.isnan(chunk)
        if missing.any():
            chunk[missing] = np.broadcast_to(medians, chunk.shape)[missing]
        return chunk

    # StandardScaler.fit on the imputed rows (sklearn's _incremental_mean_and_var from zero
    # samples): the mean, then the corrected two-pass variance around it.
    total = _SequentialSum()
    for part in _chunks(index, chunk_rows):
        total.add(imputed(part))
    count = np.full(len(NUMERIC_COLUMNS), float(n))
    mean = total.total / count
    correction, squares = _SequentialSum(), _SequentialSum()
    for part in _chunks(index, chunk_rows):
        centred = imputed(part) - mean
        squared = centred**2
        correction.add(centred)
        squares.add(squared)
    variance = (squares.total - correction.total**2 / count) / count
    return _preprocessor(medians, mean, _scale(variance, mean, count[0]), n)


def _scale(variance: np.ndarray, mean: np.ndarray, n: float) -> np.ndarray:
    """StandardScaler's scale_ from its var_ and mean_: near-constant features scale by 1."""
    from sklearn.preprocessing._data import _handle_zeros_in_scale, _is_constant_feature

    constant = _is_constant_feature(variance, mean, n)
    return _handle_zeros_in_scale(np.sqrt(variance), copy=False, constant_mask=constant)


def _fit_in_one_piece(train_rows: AbaloneColumns) -> Preprocessor:
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
        medians = np.nanmedian(numerics, axis=0)
        imputed = np.where(missing, medians, numerics) if missing.any() else numerics
        scaler = StandardScaler().fit(imputed)
    return _preprocessor(medians, scaler.mean_, scaler.scale_, len(train_rows))


def _preprocessor(
    medians: np.ndarray, means: np.ndarray, scales: np.ndarray, fitted_rows: int
) -> Preprocessor:
    # The one-hot categories are fixed rather than learnt: a training sample that happened to
    # lack one sex would otherwise change the feature layout the model is trained on. The
    # reference's OneHotEncoder(categories=[SEX_CODES], handle_unknown="ignore") so fitted
    # learns nothing from the rows; ``transform`` encodes the codes, a missing sex as all zeros.
    return Preprocessor(
        numeric_columns=list(NUMERIC_COLUMNS),
        medians=[float(v) for v in medians],
        means=[float(v) for v in means],
        scales=[float(v) for v in scales],
        sex_categories=list(SEX_CODES),
        output_columns=list(MODEL_FEATURES),
        fitted_rows=fitted_rows,
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


SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitPlan:
    """AbaloneProcess decided: which rows go to which split, and the preprocessor fit on the
    training rows. Splits are made from it one chunk at a time (``write``) or whole
    (``frame``), with the same values either way."""

    rows: AbaloneColumns
    indices: dict[str, np.ndarray]
    preprocessor: Preprocessor

    def frame(self, name: str) -> pd.DataFrame:
        return split_frame(self.rows.take(self.indices[name]), self.preprocessor)

    def write(self, name: str, path: Path, *, chunk_rows: int = CHUNK_ROWS) -> int:
        """Split ``name`` as Parquet at ``path``, one row group per ``chunk_rows`` rows: the
        bytes ``frame(name).to_parquet(path, index=False)`` writes, in bounded memory.
        Returns its row count."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        # The schema pandas' to_parquet(index=False) gives a split (its pandas metadata names
        # the columns and dtypes only, not the row count), then each chunk's columns straight
        # from the arrays, without a DataFrame and its copy in between.
        empty = split_frame(self.rows.take([]), self.preprocessor)
        schema = pa.Table.from_pandas(empty, preserve_index=False).schema
        with pq.ParquetWriter(path, schema, compression="snappy") as writer:
            for part in _chunks(self.indices[name], chunk_rows):
                rows = self.rows.take(part)
                features = self.preprocessor.transform(rows)
                columns = [pa.array(rows.rings)] + [
                    pa.array(features[:, j].astype(np.float64)) for j in range(features.shape[1])
                ]
                table = pa.Table.from_arrays(columns, schema=schema)
                writer.write_table(table, row_group_size=chunk_rows)
        return len(self.indices[name])


def plan_splits(
    rows: AbaloneColumns,
    seed: int,
    *,
    parameter: str = INPUT_PARAMETER,
    location: str | None = None,
) -> SplitPlan:
    """AbaloneProcess: shuffle, split, fit on the training rows (in chunks).

    Raises InputDataError (naming ``parameter`` and ``location``, by default the file the rows
    were read from) when there are fewer than MIN_INPUT_ROWS rows.
    """
    check_enough_rows(len(rows), parameter, location or rows.source or "input rows")
    indices = dict(zip(SPLIT_NAMES, split_indices(len(rows), seed), strict=True))
    return SplitPlan(rows, indices, fit_preprocessor(rows, indices["train"]))


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
    """``plan_splits`` with the three splits made whole, in memory (tests, tuning, notebooks;
    the pipeline writes them chunk by chunk with ``SplitPlan.write``)."""
    plan = plan_splits(rows, seed, parameter=parameter, location=location)
    return ProcessedData(
        *(plan.frame(name) for name in SPLIT_NAMES), preprocessor=plan.preprocessor
    )
