"""AbaloneTuning: Optuna's seeded TPE search of XGBoost's hyperparameters.

The objective is a k-fold cross-validated RMSE on the training split only: the validation split
stays out of the search and the test split is the evaluation's, so neither can leak into the
choice. The number of boosting rounds is tuned by early stopping on the held-out folds. With the
choice made, the final model is refit on train + validation for those rounds (``fit_on``): 21%
more rows for the same recipe, measured better than fitting on train alone (README); the test
split is never fit on.

No Dagster and no MLflow import: the MLflow logging takes a client (``log_study``), so the asset
decides whether MLflow is paid for at all.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from abalone_platform.ml.evaluate import kfold_indices, threads_for
from abalone_platform.ml.train import HYPERPARAMETERS, NUM_BOOST_ROUND, split_dmatrix

TUNED_FORMAT = "abalone_platform.tuned_hyperparameters/v1"
# Where the hyperparameters came from: the reference's (no trials) or the study's best trial.
SOURCE_REFERENCE = "reference"
SOURCE_TUNED = "tuned"
# What the final model is fit on: the reference's train split, or (a tuned recipe) train +
# validation, for the rounds the train split's cross-validation chose.
FIT_TRAIN = "train"
FIT_TRAIN_AND_VALIDATION = "train+validation"

CV_FOLDS = 5
# A ceiling, never reached in practice: early stopping ends a trial first. It bounds a trial's
# cost should the sampler pick a learning rate at the bottom of its range.
MAX_ROUNDS = 1000
EARLY_STOPPING_ROUNDS = 25
# What every trial shares with the reference (the rest is searched).
FIXED_PARAMETERS: dict[str, object] = {
    "objective": "reg:squarederror",
    "tree_method": "hist",
    "eval_metric": "rmse",
}
TUNING_TRIALS_PARAMETER = "tuning_trials"
TUNING_TIMEOUT_PARAMETER = "tuning_timeout_s"


@dataclass(frozen=True)
class Trial:
    """One trial of the study: what was tried and its cross-validated score."""

    number: int
    params: dict[str, float | int]
    num_boost_round: int
    cv_rmse: float
    cv_rmse_std: float
    duration_s: float


@dataclass(frozen=True)
class TuningProgress:
    """Where a study stands after a trial: what a progress line says (``tune``'s ``on_progress``).

    Kept apart from ``Trial`` so the result's JSON (which holds the trials) does not change.
    """

    trial: Trial  # the one just finished
    trials_done: int
    trials_total: int  # the budget; a timeout may end the study before it
    best: Trial  # the best so far, ties to the earliest, as the final choice
    elapsed_s: float  # since the search began (the training matrix built before it)


@dataclass(frozen=True)
class TuningResult:
    """The hyperparameters training should use, and how they were found.

    ``hyperparameters`` is XGBoost's parameter dict without the run's seed, threads and device
    (training adds those), ``num_boost_round`` the rounds to train for, ``fit_on`` the rows to
    fit them on. With no trials all three are the reference's, unchanged, so training makes the
    reference model bit for bit.
    """

    source: str
    hyperparameters: dict[str, object]
    num_boost_round: int
    fit_on: str = FIT_TRAIN
    cv_rmse: float | None = None
    cv_rmse_std: float | None = None
    best_trial: int | None = None
    trials: list[Trial] = field(default_factory=list)
    requested_trials: int = 0
    timeout_s: float | None = None
    stopped_by_timeout: bool = False
    folds: int = CV_FOLDS
    seed: int | None = None
    train_rows: int = 0
    elapsed_s: float = 0.0

    def to_json(self) -> bytes:
        return json.dumps({"format": TUNED_FORMAT, **asdict(self)}, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TuningResult:
        raw = json.loads(data)
        if raw.pop("format", None) != TUNED_FORMAT:
            raise ValueError(f"not a {TUNED_FORMAT} document")
        raw["trials"] = [Trial(**t) for t in raw.get("trials", [])]
        if raw.get("fit_on", FIT_TRAIN) not in (FIT_TRAIN, FIT_TRAIN_AND_VALIDATION):
            raise ValueError(f"unknown fit_on {raw['fit_on']!r}")
        return cls(**raw)

    @property
    def tuned(self) -> bool:
        return self.source == SOURCE_TUNED

    @property
    def fits_on_validation(self) -> bool:
        return self.fit_on == FIT_TRAIN_AND_VALIDATION


def reference_hyperparameters() -> TuningResult:
    """tuning_trials 0: the reference's hyperparameters and rounds, as training always used."""
    return TuningResult(
        source=SOURCE_REFERENCE,
        hyperparameters=dict(HYPERPARAMETERS),
        num_boost_round=NUM_BOOST_ROUND,
    )


def check_budget(n_trials: int, timeout_s: float) -> None:
    """Refuse a budget that means nothing, naming the parameter."""
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 0:
        raise ValueError(
            f"{TUNING_TRIALS_PARAMETER} must be a whole number >= 0 (0: the reference's "
            f"hyperparameters), got {n_trials!r}"
        )
    if not isinstance(timeout_s, int | float) or not math.isfinite(timeout_s) or timeout_s <= 0:
        raise ValueError(
            f"{TUNING_TIMEOUT_PARAMETER} must be a number of seconds > 0, got {timeout_s!r}"
        )


# The search space: name -> (kind, low, high, log scale). The reference's knobs, plus column
# sampling and the L1/L2 penalties; log scales where a value's order of magnitude is what
# matters. The rounds are not sampled: early stopping on the held-out folds picks them.
SEARCH_SPACE: dict[str, tuple[str, float, float, bool]] = {
    "eta": ("float", 0.02, 0.3, True),
    "max_depth": ("int", 2, 8, False),
    "min_child_weight": ("float", 1.0, 64.0, True),
    "gamma": ("float", 0.0, 8.0, False),
    "subsample": ("float", 0.5, 1.0, False),
    "colsample_bytree": ("float", 0.4, 1.0, False),
    "lambda": ("float", 1e-3, 100.0, True),
    "alpha": ("float", 1e-3, 10.0, True),
}


def suggest(trial: Any) -> dict[str, float | int]:
    """One point of SEARCH_SPACE, drawn by the study's sampler."""
    drawn: dict[str, float | int] = {}
    for name, (kind, low, high, log) in SEARCH_SPACE.items():
        if kind == "int":
            drawn[name] = trial.suggest_int(name, int(low), int(high), log=log)
        else:
            drawn[name] = trial.suggest_float(name, low, high, log=log)
    return drawn


def cross_validated_rmse(
    dtrain: xgb.DMatrix,
    params: Mapping[str, object],
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    deadline: float | None = None,
) -> tuple[float, float, int]:
    """(mean, std) over the folds of the held-out RMSE at the best round, and that round count.

    Early stopping watches the folds' mean held-out RMSE; ``deadline`` (time.monotonic()) stops
    the boosting there too, so one slow trial cannot carry a study far past its timeout.
    """
    # Early stopping first: XGBoost stops calling callbacks at the first that says stop, and
    # early stopping must see every round (given as early_stopping_rounds, XGBoost would put it
    # after ours, and a deadline in the first round would leave it with no best round at all).
    callbacks: list[xgb.callback.TrainingCallback] = [
        xgb.callback.EarlyStopping(rounds=EARLY_STOPPING_ROUNDS)
    ]
    if deadline is not None:
        callbacks.append(_Deadline(deadline))
    history = xgb.cv(
        dict(params),
        dtrain,
        num_boost_round=MAX_ROUNDS,
        folds=list(folds),
        metrics=("rmse",),
        callbacks=callbacks,
        verbose_eval=False,
    )
    # The best round explicitly: the history runs past it when MAX_ROUNDS (or the deadline)
    # ended the boosting rather than early stopping.
    best = int(np.argmin(history["test-rmse-mean"].to_numpy()))
    row = history.iloc[best]
    return float(row["test-rmse-mean"]), float(row["test-rmse-std"]), best + 1


class _Deadline(xgb.callback.TrainingCallback):
    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        return time.monotonic() >= self.deadline


def tune(
    train: pd.DataFrame,
    *,
    n_trials: int,
    timeout_s: float,
    seed: int,
    nthread: int,
    device: str = "cpu",
    folds: int = CV_FOLDS,
    on_trial: Callable[[Trial], None] | None = None,
    on_progress: Callable[[TuningProgress], None] | None = None,
) -> TuningResult:
    """Search ``n_trials`` hyperparameter sets (no new trial starts after ``timeout_s``) by
    ``folds``-fold cross-validated RMSE on ``train``; the best set and every trial.

    Seeded twice over: TPE's sampler and the folds by ``seed``, XGBoost's subsampling by the
    same seed, so the same rows and budget give the same trials (unless the timeout cut the
    study short: then how many ran depends on the machine, which the result records).
    ``n_trials`` 0 returns the reference's hyperparameters without looking at the data.
    ``on_trial`` is called with each finished trial, ``on_progress`` with the study's standing
    after it (trials done of the budget, the best so far, the time elapsed).
    """
    check_budget(n_trials, timeout_s)
    if n_trials == 0:
        return reference_hyperparameters()
    import optuna

    # Optuna logs every trial at INFO; the asset reports the study as a table instead.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    nthread = threads_for(len(train), nthread)
    dtrain = split_dmatrix(train, nthread)
    fold_indices = kfold_indices(len(train), folds, seed)
    base = {**FIXED_PARAMETERS, "seed": seed, "nthread": nthread, "device": device}
    trials: list[Trial] = []
    started = time.monotonic()
    deadline = started + timeout_s

    def objective(trial: optuna.Trial) -> float:
        began = time.monotonic()
        params = suggest(trial)
        rmse, std, rounds = cross_validated_rmse(dtrain, {**base, **params}, fold_indices, deadline)
        trial.set_user_attr("num_boost_round", rounds)
        trial.set_user_attr("cv_rmse_std", std)
        done = Trial(
            number=trial.number,
            params=params,
            num_boost_round=rounds,
            cv_rmse=rmse,
            cv_rmse_std=std,
            duration_s=round(time.monotonic() - began, 4),
        )
        trials.append(done)
        if on_trial is not None:
            on_trial(done)
        if on_progress is not None:
            on_progress(
                TuningProgress(
                    trial=done,
                    trials_done=len(trials),
                    trials_total=n_trials,
                    best=_best(trials),
                    elapsed_s=round(time.monotonic() - started, 3),
                )
            )
        return rmse

    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        study_name=f"abalone_tuning_seed{seed}",
    )
    study.optimize(objective, n_trials=n_trials, timeout=timeout_s, gc_after_trial=False)
    best = _best(trials)
    return TuningResult(
        source=SOURCE_TUNED,
        hyperparameters={**FIXED_PARAMETERS, **best.params},
        num_boost_round=best.num_boost_round,
        fit_on=FIT_TRAIN_AND_VALIDATION,
        cv_rmse=best.cv_rmse,
        cv_rmse_std=best.cv_rmse_std,
        best_trial=best.number,
        trials=trials,
        requested_trials=n_trials,
        timeout_s=float(timeout_s),
        stopped_by_timeout=len(trials) < n_trials,
        folds=folds,
        seed=seed,
        train_rows=len(train),
        elapsed_s=round(time.monotonic() - started, 3),
    )


def _best(trials: Sequence[Trial]) -> Trial:
    """The lowest CV RMSE; a tie goes to the earlier trial."""
    return min(trials, key=lambda t: (t.cv_rmse, t.number))


def trials_table(result: TuningResult) -> pd.DataFrame:
    """One row per trial: its number, CV RMSE (mean, std), rounds, seconds and parameters."""
    return pd.DataFrame(
        [
            {
                "trial": t.number,
                "cv_rmse": t.cv_rmse,
                "cv_rmse_std": t.cv_rmse_std,
                "num_boost_round": t.num_boost_round,
                "duration_s": t.duration_s,
                **t.params,
            }
            for t in result.trials
        ]
    )


def log_study(
    client: Any,
    experiment_name: str,
    artifact_location: str,
    run_name: str,
    result: TuningResult,
    tags: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """Record the study in MLflow through ``client`` (an MlflowClient): a parent run named
    ``run_name`` with the best parameters and score, and one nested child run per trial
    (tag ``mlflow.parentRunId``), as MLflow's UI groups a search. Returns (experiment id,
    parent run id)."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        experiment_id = experiment.experiment_id
    else:
        try:
            experiment_id = client.create_experiment(
                experiment_name, artifact_location=artifact_location
            )
        except MlflowException:
            # Another run created it between the lookup and the create.
            experiment_id = client.get_experiment_by_name(experiment_name).experiment_id
    now = int(time.time() * 1000)
    parent = client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
    parent_id = parent.info.run_id
    try:
        for t in result.trials:
            child = client.create_run(
                experiment_id,
                run_name=f"{run_name}-trial-{t.number}",
                tags={"mlflow.parentRunId": parent_id, "trial": str(t.number), **(tags or {})},
            )
            client.log_batch(
                child.info.run_id,
                metrics=[
                    Metric("cv_rmse", t.cv_rmse, now, 0),
                    Metric("cv_rmse_std", t.cv_rmse_std, now, 0),
                    Metric("duration_s", t.duration_s, now, 0),
                ],
                params=[
                    *(Param(k, str(v)) for k, v in t.params.items()),
                    Param("num_boost_round", str(t.num_boost_round)),
                ],
                tags=[],
            )
            client.set_terminated(child.info.run_id)
        client.log_batch(
            parent_id,
            metrics=[
                Metric("best_cv_rmse", float(result.cv_rmse or 0.0), now, 0),
                Metric("best_cv_rmse_std", float(result.cv_rmse_std or 0.0), now, 0),
                Metric("elapsed_s", result.elapsed_s, now, 0),
                Metric("trials", float(len(result.trials)), now, 0),
            ],
            params=[
                *(Param(f"best_{k}", str(v)) for k, v in result.hyperparameters.items()),
                Param("best_num_boost_round", str(result.num_boost_round)),
                Param("fit_on", result.fit_on),
                Param("best_trial", str(result.best_trial)),
                Param("requested_trials", str(result.requested_trials)),
                Param("timeout_s", str(result.timeout_s)),
                Param("folds", str(result.folds)),
                Param("seed", str(result.seed)),
                Param("sampler", "TPESampler"),
            ],
            tags=[RunTag("stopped_by_timeout", str(result.stopped_by_timeout))],
        )
        client.set_terminated(parent_id)
    except BaseException:
        client.set_terminated(parent_id, status="FAILED")
        raise
    return experiment_id, parent_id
