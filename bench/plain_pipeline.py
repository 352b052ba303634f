"""The pipeline's work as one plain script: the baseline that `dagster job execute` is held to.

Standalone on purpose (numpy, pandas, pyarrow, scikit-learn, xgboost and mlflow, never
abalone_platform), and the same work as the default execution: read and validate the CSV, a
seeded 70/15/15 split, imputer/scaler/one-hot fit on the training rows, Parquet splits and the
preprocessor as JSON, 50 XGBoost rounds with the same parameters evaluated on the validation
split, evaluation.json, the MSE gate, a bundle with a sha256 manifest, the batch transform of
the input file, and registration as a plain-script MLflow user writes it: a run with the
parameters and test metrics, `mlflow.xgboost.log_model` with explicit `pip_requirements`, a
signature and an input example, and `registered_model_name` (a new version in an MLflow SQLite
registry under --home). ``--no-registry`` is the bare script: that last step, and the mlflow
import, left out.

    python bench/plain_pipeline.py --input abalone.data --home /tmp/plain
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import xgboost as xgb
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = [
    "length",
    "diameter",
    "height",
    "whole_weight",
    "shucked_weight",
    "viscera_weight",
    "shell_weight",
]
COLUMNS = ["sex", *NUMERIC, "rings"]
SEX_CODES = ["F", "I", "M"]
FEATURES = [*NUMERIC, *(f"sex_{c}" for c in SEX_CODES)]
PARAMS = {
    "objective": "reg:squarederror",
    "max_depth": 5,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 6,
    "subsample": 0.7,
    "tree_method": "hist",
    "eval_metric": "rmse",
}
ROUNDS = 50
MSE_THRESHOLD = 6.0
EXPERIMENT = "abalone_plain"
REGISTERED_MODEL = "AbalonePlain"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_csv(path: Path, with_label: bool, block_size: int = 16 << 20) -> pa.Table:
    names = COLUMNS if with_label else COLUMNS[:-1]
    types = {n: (pa.string() if n == "sex" else pa.float64()) for n in names}
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, block_size=block_size),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )
    sex = table.column("sex").to_numpy(zero_copy_only=False)
    if not np.isin(sex[sex != None], SEX_CODES).all():  # noqa: E711 (elementwise)
        raise ValueError(f"{path}: unknown sex code")
    if with_label and table.column("rings").null_count:
        raise ValueError(f"{path}: empty rings")
    return table


def features(table: pa.Table, stats: dict) -> np.ndarray:
    numerics = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in NUMERIC])
    numerics = np.where(np.isnan(numerics), stats["medians"], numerics)
    scaled = (numerics - stats["means"]) / stats["scales"]
    sex = table.column("sex").to_numpy(zero_copy_only=False)
    onehot = np.column_stack([sex == code for code in SEX_CODES])
    return np.hstack([scaled, onehot]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-registry", action="store_true")
    args = parser.parse_args()
    home: Path = args.home
    home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    # Processing: validate, split, fit on the training rows, write the splits.
    table = read_csv(args.input, with_label=True)
    order = np.random.default_rng(args.seed).permutation(table.num_rows)
    cut1, cut2 = int(0.7 * table.num_rows), int(0.85 * table.num_rows)
    parts = {"train": order[:cut1], "validation": order[cut1:cut2], "test": order[cut2:]}
    train = table.take(parts["train"])
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    numeric.fit(np.column_stack([train.column(n).to_numpy() for n in NUMERIC]))
    sex = train.column("sex").to_numpy(zero_copy_only=False)
    OneHotEncoder(categories=[SEX_CODES], handle_unknown="ignore").fit(
        np.where(sex == None, "missing", sex).reshape(-1, 1)  # noqa: E711
    )
    imputer, scaler = numeric.named_steps["simpleimputer"], numeric.named_steps["standardscaler"]
    stats = {
        "medians": imputer.statistics_.tolist(),
        "means": scaler.mean_.tolist(),
        "scales": scaler.scale_.tolist(),
    }
    splits = {}
    for name, index in parts.items():
        rows = table.take(index)
        frame = pd.DataFrame(features(rows, stats).astype(np.float64), columns=FEATURES)
        frame.insert(0, "rings", rows.column("rings").to_numpy())
        frame.to_parquet(home / f"{name}.parquet", index=False)
        splits[name] = frame
    preprocessor_json = json.dumps({**stats, "sex_categories": SEX_CODES}, indent=2).encode()
    (home / "preprocessor.json").write_bytes(preprocessor_json)

    # Training, read back from the files as the pipeline's step does.
    def dmatrix(name: str) -> xgb.DMatrix:
        frame = pd.read_parquet(home / f"{name}.parquet")
        return xgb.DMatrix(
            frame[FEATURES].to_numpy(np.float32), label=frame["rings"].to_numpy(), nthread=2
        )

    history: dict = {}
    booster = xgb.train(
        {**PARAMS, "seed": args.seed, "nthread": 2},
        dmatrix("train"),
        num_boost_round=ROUNDS,
        evals=[(dmatrix("validation"), "validation")],
        evals_result=history,
        verbose_eval=False,
    )
    model_bytes = bytes(booster.save_raw("ubj"))
    (home / "model.ubj").write_bytes(model_bytes)

    # Evaluation and the gate.
    test = pd.read_parquet(home / "test.parquet")
    y = test["rings"].to_numpy(np.float64)
    residuals = y - booster.inplace_predict(test[FEATURES].to_numpy(np.float32)).astype(float)
    mse = float(np.mean(residuals**2))
    report = {
        "regression_metrics": {
            "mse": {"value": mse, "standard_deviation": float(np.std(residuals))},
            "rmse": {"value": float(np.sqrt(mse))},
            "mae": {"value": float(np.mean(np.abs(residuals)))},
            "r2": {"value": float(1 - np.sum(residuals**2) / np.sum((y - y.mean()) ** 2))},
        }
    }
    (home / "evaluation.json").write_text(json.dumps(report, indent=2))
    if mse > MSE_THRESHOLD:
        raise SystemExit(f"Execution failed due to MSE > {MSE_THRESHOLD}")

    # The bundle, checked on load as the pipeline's steps check it.
    bundle = home / "bundle"
    bundle.mkdir(exist_ok=True)
    files = {"model.ubj": model_bytes, "preprocessor.json": preprocessor_json}
    for name, data in files.items():
        (bundle / name).write_bytes(data)
    manifest = {name: sha256(data) for name, data in files.items()}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    loaded = xgb.Booster()
    loaded.load_model(bytearray((bundle / "model.ubj").read_bytes()))

    # Batch transform of the input file, streamed.
    with open(home / "predictions.csv", "wb") as out:
        reader = pacsv.open_csv(
            args.input,
            read_options=pacsv.ReadOptions(column_names=COLUMNS, block_size=16 << 20),
            convert_options=pacsv.ConvertOptions(
                column_types={n: (pa.string() if n == "sex" else pa.float64()) for n in COLUMNS},
                strings_can_be_null=True,
            ),
        )
        for batch in reader:
            predictions = loaded.inplace_predict(features(pa.Table.from_batches([batch]), stats))
            pacsv.write_csv(
                pa.table({"p": pa.array(predictions)}),
                out,
                pacsv.WriteOptions(include_header=False),
            )

    # Registration, the way a plain-script MLflow user does it: a run with the parameters and
    # metrics, and the XGBoost model logged with explicit requirements, a signature and an
    # input example, registered as a new version in the SQLite registry under --home.
    registered = None
    if not args.no_registry:
        import logging

        logging.getLogger("alembic").setLevel(logging.WARNING)
        import mlflow
        import mlflow.xgboost
        from mlflow.models import infer_signature

        uri = f"sqlite:///{home / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        experiment_id = (
            experiment.experiment_id
            if experiment
            # Artifacts beside the database, not in ./mlruns of whatever the working directory is.
            else mlflow.create_experiment(
                EXPERIMENT, artifact_location=(home / "mlartifacts").as_uri()
            )
        )
        example = test[FEATURES].head(5)
        requirements = [
            f"{name}=={importlib.metadata.version(name)}"
            for name in ("mlflow", "xgboost", "numpy", "pandas", "scikit-learn")
        ]
        with mlflow.start_run(experiment_id=experiment_id):
            mlflow.log_params({**PARAMS, "seed": args.seed, "num_boost_round": ROUNDS})
            mlflow.log_metrics(
                {name: values["value"] for name, values in report["regression_metrics"].items()}
            )
            info = mlflow.xgboost.log_model(
                loaded,
                name="model",
                pip_requirements=requirements,
                signature=infer_signature(example, loaded.inplace_predict(example.to_numpy())),
                input_example=example,
                registered_model_name=REGISTERED_MODEL,
            )
        registered = info.registered_model_version

    print(f"plain pipeline: mse {mse:.4f}, {time.perf_counter() - started:.2f} s after imports")
    print(json.dumps({"mse": mse, "registered_version": registered}))


if __name__ == "__main__":
    main()
