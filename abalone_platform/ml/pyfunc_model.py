"""The MLflow model of every registered version, as MLflow's models-from-code: this file is
logged with each version (see ml/mlflow_format.py) and run by `mlflow.pyfunc.load_model` and
`mlflow models serve`; nothing is pickled.

The version's artifact `bundle` holds the booster in XGBoost's own format and the preprocessor
as JSON; both are checked against the sha256 the version recorded (its model_config) before they
are loaded. Input: a DataFrame of raw rows (the 8 feature columns of the UCI file; others, such
as rings, ignored). Output: one predicted rings value per row, the batch transform's figures.
"""

import warnings
from pathlib import Path

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel
from pandas.api.types import is_float_dtype

from abalone_platform.ml.bundle import predict_columns, read_bundle
from abalone_platform.ml.data import FEATURE_COLUMNS, columns_from_values
from abalone_platform.ml.pyfunc_model_names import BUNDLE_ARTIFACT, BUNDLE_SHA256_CONFIG

# MLflow suggests type hints on predict when the class is defined; the logged signature is the
# contract here (type hints would derive a second one), so the suggestion is noise for users.
# Recorded rather than filtered: MLflow's lazy imports at that moment install filters of their
# own ahead of any set here. Other warnings are passed on.
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter("always")

    class AbaloneRingsModel(PythonModel):
        def load_context(self, context) -> None:
            self._bundle = read_bundle(
                Path(context.artifacts[BUNDLE_ARTIFACT]), context.model_config[BUNDLE_SHA256_CONFIG]
            )

        def predict(self, context, model_input, params=None) -> np.ndarray:
            values = {}
            for name in FEATURE_COLUMNS:
                if name in model_input:
                    column = model_input[name]
                    # Missing values as None whatever the dtype (pandas' NA cannot be compared);
                    # double columns stay arrays, NaN meaning missing.
                    values[name] = (
                        column.to_numpy(dtype="float64", na_value=np.nan)
                        if is_float_dtype(column.dtype)
                        else column.astype(object).where(column.notna(), None).to_numpy()
                    )
            columns = columns_from_values(values, "model_input", "the DataFrame given to predict")
            return predict_columns(self._bundle, columns).astype(np.float64)

    set_model(AbaloneRingsModel())
for _warning in _caught:
    if "Add type hints to the `predict` method" not in str(_warning.message):
        warnings.warn_explicit(
            _warning.message, _warning.category, _warning.filename, _warning.lineno
        )
