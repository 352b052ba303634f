"""Split and preprocessing: the reference's layout without its leakage."""

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from abalone_platform.ml.data import MISSING_SEX, NUMERIC_COLUMNS, RAW_COLUMNS
from abalone_platform.ml.preprocess import (
    MODEL_FEATURES,
    SPLIT_COLUMNS,
    Preprocessor,
    process,
    split_indices,
)


def test_split_sizes_and_column_order(rows) -> None:
    processed = process(rows, seed=42)
    assert (len(processed.train), len(processed.validation), len(processed.test)) == (
        2923,
        627,
        627,
    )
    assert SPLIT_COLUMNS[0] == "rings"
    assert list(processed.train.columns) == [
        "rings",
        *NUMERIC_COLUMNS,
        "sex_F",
        "sex_I",
        "sex_M",
    ]


def test_split_is_a_seeded_partition() -> None:
    a = split_indices(4177, seed=7)
    b = split_indices(4177, seed=7)
    c = split_indices(4177, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    assert sorted(np.concatenate(a).tolist()) == list(range(4177))


def test_scaler_statistics_are_the_training_rows_only(rows) -> None:
    processed = process(rows, seed=42)
    train_idx, _, _ = split_indices(len(rows), seed=42)
    train_numerics = rows.numerics[train_idx]
    pre = processed.preprocessor
    assert pre.fitted_rows == 2923
    np.testing.assert_allclose(pre.means, train_numerics.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(pre.scales, train_numerics.std(axis=0), rtol=1e-12)
    # Fitting on every row (the reference's leakage) would give other statistics.
    assert not np.allclose(pre.means, rows.numerics.mean(axis=0), rtol=1e-6)
    # The scaled training numerics are standardized; the other splits are not exactly.
    scaled = processed.train[list(NUMERIC_COLUMNS)].to_numpy()
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-5)
    assert (processed.train[["sex_F", "sex_I", "sex_M"]].sum(axis=1) == 1).all()


def test_transform_matches_the_reference_sklearn_pipeline(rows) -> None:
    """The data-only preprocessor computes what the reference's ColumnTransformer computes."""
    train_idx, _, test_idx = split_indices(len(rows), seed=42)
    frame = pd.DataFrame(rows.numerics, columns=list(NUMERIC_COLUMNS))
    frame.insert(0, "sex", rows.sex)
    reference = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                list(NUMERIC_COLUMNS),
            ),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                ["sex"],
            ),
        ]
    )
    reference.fit(frame.iloc[train_idx])
    expected = reference.transform(frame.iloc[test_idx])
    processed = process(rows, seed=42)
    actual = processed.preprocessor.transform(rows.take(test_idx))
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)
    assert list(processed.preprocessor.output_columns) == list(MODEL_FEATURES)
    assert len(RAW_COLUMNS) == 9


def test_missing_values_are_imputed_with_training_medians(rows) -> None:
    pre = process(rows, seed=42).preprocessor
    gap = rows.take(np.arange(2))
    gap.numerics[0, 2] = np.nan
    gap.sex_codes[1] = MISSING_SEX
    out = pre.transform(gap)
    assert out[0, 2] == pytest.approx((pre.medians[2] - pre.means[2]) / pre.scales[2], rel=1e-6)
    assert out[1, 7:].tolist() == [0.0, 0.0, 0.0]


def test_preprocessor_round_trips_as_json_data(rows) -> None:
    pre = process(rows, seed=42).preprocessor
    data = pre.to_json()
    assert data.lstrip().startswith(b"{")
    assert Preprocessor.from_json(data) == pre
    with pytest.raises(ValueError, match="not a abalone_platform.preprocessor/v1"):
        Preprocessor.from_json(b'{"format": "pickle"}')
