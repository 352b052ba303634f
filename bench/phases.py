"""One benchmark phase per process, so that its wall time and peak RSS are its own.

    python -m bench.phases process   --input FILE --out DIR
    python -m bench.phases train     --out DIR               (reads DIR's splits, writes DIR/bundle)
    python -m bench.phases evaluate  --out DIR               (DIR's evaluation report)
    python -m bench.phases transform --out DIR --input FILE --workers N [--scheduler ADDRESS]
    python -m bench.phases bare      --out DIR --input FILE  (bare inplace_predict, parsed outside)
    python -m bench.phases throughput --out DIR --input FILE (the two above, alternated)

Each prints one JSON line: ``seconds`` is the phase's own work, after the imports.
The phases call the project's own functions (abalone_platform.ml), as the assets do.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def _process(args: argparse.Namespace) -> dict:
    # Imported before the clock starts, as in the pipeline's process, which has them loaded
    # (XGBoost imports scikit-learn) before its first step runs.
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import sklearn.impute  # noqa: F401
    import sklearn.preprocessing  # noqa: F401

    from abalone_platform.ml.data import read_abalone_csv
    from abalone_platform.ml.preprocess import SPLIT_NAMES, plan_splits

    # What the abalone_process asset does: read, plan (shuffle, split, fit), write each split
    # row group by row group.
    started = time.perf_counter()
    rows = read_abalone_csv(args.input, "input_data", require_label=True)
    plan = plan_splits(rows, seed=42)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in SPLIT_NAMES:
        plan.write(name, args.out / f"{name}.parquet")
    (args.out / "preprocessor.json").write_bytes(plan.preprocessor.to_json())
    return {"seconds": time.perf_counter() - started, "rows": len(rows)}


def _train(args: argparse.Namespace) -> dict:
    from abalone_platform.ml.bundle import write_bundle
    from abalone_platform.ml.preprocess import Preprocessor
    from abalone_platform.ml.train import resolve_compute, split_rows, train_model

    # As the trained_model asset does: the splits' files, streamed row group by row group.
    started = time.perf_counter()
    train, validation = args.out / "train.parquet", args.out / "validation.parquet"
    result = train_model(train, validation, seed=42, compute=resolve_compute("ml.m5.xlarge"))
    seconds = time.perf_counter() - started
    bundle = args.out / "bundle"
    bundle.mkdir(exist_ok=True)
    sha = write_bundle(
        bundle,
        bytes(result.booster.save_raw("ubj")),
        Preprocessor.from_json((args.out / "preprocessor.json").read_bytes()),
    )
    (args.out / "bundle.sha256").write_text(sha)
    return {"seconds": seconds, "rows": split_rows(train), "rmse": result.validation_rmse[-1]}


def _evaluate(args: argparse.Namespace) -> dict:
    """What the evaluation_report asset computes: the test split's metrics and how sure."""
    import pandas as pd

    from abalone_platform.ml.bundle import read_bundle
    from abalone_platform.ml.evaluate import how_sure, report_from_predictions, split_predictions
    from abalone_platform.ml.train import HYPERPARAMETERS, NUM_BOOST_ROUND

    bundle = read_bundle(args.out / "bundle", (args.out / "bundle.sha256").read_text())
    started = time.perf_counter()
    test = pd.read_parquet(args.out / "test.parquet")
    train = pd.read_parquet(args.out / "train.parquet")
    validation = pd.read_parquet(args.out / "validation.parquet")
    actual, predicted = split_predictions(bundle.booster, test)
    report = report_from_predictions(actual, predicted)
    report |= how_sure(
        y=actual,
        predictions=predicted,
        test=test,
        train=train,
        validation=validation,
        params={**HYPERPARAMETERS, "seed": 42, "nthread": 2},
        num_boost_round=NUM_BOOST_ROUND,
        seed=42,
    )
    return {
        "seconds": time.perf_counter() - started,
        "rows": len(test),
        "mse": report["regression_metrics"]["mse"]["value"],
    }


def _transform(args: argparse.Namespace) -> dict:
    """The batch transform as the batch_predictions asset runs it: in this process for one
    worker, else Dask tasks on a LocalCluster of N workers (or the cluster at --scheduler)."""
    from abalone_platform.ml.predict import batch_transform

    bundle = args.out / "bundle"
    sha = (args.out / "bundle.sha256").read_text()
    kind = "hand" if args.scheduler else "local"
    output = args.out / f"predictions.{kind}{args.workers}.csv"
    started = time.perf_counter()
    if args.workers == 1 and not args.scheduler:
        rows = batch_transform(bundle, sha, args.input, output)
        return {"seconds": time.perf_counter() - started, "rows": rows, "output": str(output)}
    from abalone_platform.compute.cluster import open_cluster
    from abalone_platform.compute.ranges import RangeSource
    from abalone_platform.compute.transform import batch_transform_on

    with open_cluster(args.workers, args.scheduler or "") as cluster:
        ready = time.perf_counter()
        done = batch_transform_on(
            cluster, bundle, sha, args.input, RangeSource(str(args.input)), output
        )
        seconds = time.perf_counter() - ready
    return {
        "seconds": seconds,  # the transform on a running cluster
        "step_seconds": time.perf_counter() - started,  # with the cluster's start and stop
        "rows": done.rows,
        "workers": len(cluster.workers),
        "tasks_per_worker": done.tasks_per_worker,
        "output": str(output),
    }


def _bare(args: argparse.Namespace) -> dict:
    """Bare XGBoost: the whole file already parsed and preprocessed into one float32 array."""
    from abalone_platform.ml.bundle import read_bundle
    from abalone_platform.ml.data import read_abalone_csv

    bundle = read_bundle(args.out / "bundle", (args.out / "bundle.sha256").read_text())
    features = bundle.preprocessor.transform(
        read_abalone_csv(args.input, "batch_data", require_label=False)
    )
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        bundle.booster.inplace_predict(features, validate_features=False)
        times.append(time.perf_counter() - started)
    return {"seconds": statistics.median(times), "rows": len(features), "all": times}


def _throughput(args: argparse.Namespace) -> dict:
    """The project's transform and bare predict, alternated in one process so that a change in
    the machine's load hits both alike; ``seconds`` are the medians of each."""
    from abalone_platform.ml.bundle import read_bundle
    from abalone_platform.ml.data import read_abalone_csv
    from abalone_platform.ml.predict import batch_transform

    sha = (args.out / "bundle.sha256").read_text()
    bundle = read_bundle(args.out / "bundle", sha)
    features = bundle.preprocessor.transform(
        read_abalone_csv(args.input, "batch_data", require_label=False)
    )
    transform, bare = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        rows = batch_transform(args.out / "bundle", sha, args.input, args.out / "tp.csv")
        transform.append(time.perf_counter() - started)
        started = time.perf_counter()
        bundle.booster.inplace_predict(features, validate_features=False)
        bare.append(time.perf_counter() - started)
    return {
        "rows": rows,
        "transform_seconds": statistics.median(transform),
        "bare_seconds": statistics.median(bare),
        "transform_all": transform,
        "bare_all": bare,
    }


PHASES = {
    "process": _process,
    "train": _train,
    "evaluate": _evaluate,
    "transform": _transform,
    "bare": _bare,
    "throughput": _throughput,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("phase", choices=sorted(PHASES))
    parser.add_argument("--input", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scheduler", default="", help="an existing Dask scheduler's address")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    result = PHASES[args.phase](args)
    sys.stdout.write(json.dumps({"phase": args.phase, **result}) + "\n")


if __name__ == "__main__":  # the guard Dask's LocalCluster needs: its workers are spawned
    main()
