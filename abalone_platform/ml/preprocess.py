"""The fitted preprocessor, split and feature layout.

The reference fits its ColumnTransformer on every row before splitting (leakage) and never saves
it. Here it is fit on the training rows only, with the same sklearn steps, and kept as plain data
(JSON) so that the batch transform applies exactly what training saw, without unpickling.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from abalone_platform.ml.data import LABEL_COLUMN, NUMERIC_COLUMNS, SEX_CODES, RawColumns

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

    def transform(self, columns: RawColumns) -> np.ndarray:
        """Feature matrix (n, 10) as float32, in MODEL_FEATURES order."""
        numerics = columns.numerics
        out = np.empty((len(columns), len(self.output_columns)), dtype=np.float32)
        medians = np.asarray(self.medians)
        filled = np.where(np.isnan(numerics), medians, numerics)
        out[:, : len(self.numeric_columns)] = (filled - np.asarray(self.means)) / np.asarray(
            self.scales
        )
        offset = len(self.numeric_columns)
        for j, code in enumerate(self.sex_categories):
            out[:, offset + j] = columns.sex == code
        return out

    def to_json(self) -> bytes:
        return json.dumps({"format": PREPROCESSOR_FORMAT, **asdict(self)}, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Preprocessor:
        payload = json.loads(data)
        if payload.pop("format", None) != PREPROCESSOR_FORMAT:
            raise ValueError(f"not a {PREPROCESSOR_FORMAT} document")
        return cls(**payload)


def fit_preprocessor(train_rows: RawColumns) -> Preprocessor:
    """Fit the reference's sklearn steps on the training rows and keep their fitted values."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    numeric.fit(train_rows.numerics)
    imputer, scaler = numeric.named_steps["simpleimputer"], numeric.named_steps["standardscaler"]
    # The categories are fixed rather than learnt: a training sample that happened to lack one
    # sex would otherwise change the feature layout the model is trained on.
    encoder = OneHotEncoder(categories=[list(SEX_CODES)], handle_unknown="ignore")
    encoder.fit(np.where(train_rows.sex == "", "missing", train_rows.sex).reshape(-1, 1))
    return Preprocessor(
        numeric_columns=list(NUMERIC_COLUMNS),
        medians=[float(v) for v in imputer.statistics_],
        means=[float(v) for v in scaler.mean_],
        scales=[float(v) for v in scaler.scale_],
        sex_categories=[str(c) for c in encoder.categories_[0]],
        output_columns=list(MODEL_FEATURES),
        fitted_rows=len(train_rows),
    )


def split_indices(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """70/15/15 after a seeded shuffle, cut where the reference cuts (int(0.7n), int(0.85n))."""
    order = np.random.default_rng(seed).permutation(n_rows)
    first, second = int(0.7 * n_rows), int(0.85 * n_rows)
    return order[:first], order[first:second], order[second:]


def split_frame(rows: RawColumns, preprocessor: Preprocessor) -> pd.DataFrame:
    """A split as stored: rings first, then the 10 model features."""
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


def process(rows: RawColumns, seed: int) -> ProcessedData:
    """AbaloneProcess: shuffle, split, fit on the training rows, transform all three splits."""
    train_idx, validation_idx, test_idx = split_indices(len(rows), seed)
    train_rows = rows.take(train_idx)
    preprocessor = fit_preprocessor(train_rows)
    return ProcessedData(
        train=split_frame(train_rows, preprocessor),
        validation=split_frame(rows.take(validation_idx), preprocessor),
        test=split_frame(rows.take(test_idx), preprocessor),
        preprocessor=preprocessor,
    )
