"""The tuning search: seeded, blind to validation and test rows, bounded by its timeout, and a
no-op (the reference's model, bit for bit) with no trials."""

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abalone_platform.ml.data import read_abalone_csv
from abalone_platform.ml.preprocess import ProcessedData, process, split_indices
from abalone_platform.ml.train import (
    HYPERPARAMETERS,
    NUM_BOOST_ROUND,
    TrainedModel,
    resolve_compute,
    train_model,
)
from abalone_platform.ml.tune import (
    FIT_TRAIN,
    FIT_TRAIN_AND_VALIDATION,
    SEARCH_SPACE,
    SOURCE_REFERENCE,
    SOURCE_TUNED,
    TuningResult,
    check_budget,
    trials_table,
    tune,
)

COMPUTE = resolve_compute("ml.m5.xlarge")
# Few rows and trials keep each search to a second or two; the behaviour does not need more.
ROWS = 600
TRIALS = 4


def _search(processed: ProcessedData, seed: int = 7, trials: int = TRIALS) -> TuningResult:
    return tune(
        processed.train.iloc[:ROWS],
        n_trials=trials,
        timeout_s=300,
        seed=seed,
        nthread=COMPUTE.nthread,
        folds=3,
    )


def _booster_bytes(processed: ProcessedData, result: TuningResult, seed: int = 7) -> bytes:
    model = train_model(
        processed.train.iloc[:ROWS],
        processed.validation,
        seed=seed,
        compute=COMPUTE,
        hyperparameters=result.hyperparameters,
        num_boost_round=result.num_boost_round,
        fit_on_validation=result.fits_on_validation,
    )
    return bytes(model.booster.save_raw("ubj"))


def test_tuning_is_seeded_same_trials_same_model(processed: ProcessedData) -> None:
    first, second = _search(processed), _search(processed)
    assert first.source == SOURCE_TUNED and len(first.trials) == TRIALS
    assert [(t.params, t.cv_rmse, t.num_boost_round) for t in first.trials] == [
        (t.params, t.cv_rmse, t.num_boost_round) for t in second.trials
    ]
    assert first.hyperparameters == second.hyperparameters
    assert _booster_bytes(processed, first) == _booster_bytes(processed, second)
    # The trials are a search, not one point tried four times, and stay inside the space.
    assert len({tuple(t.params.values()) for t in first.trials}) == TRIALS
    for trial in first.trials:
        for name, (_, low, high, _) in SEARCH_SPACE.items():
            assert low <= trial.params[name] <= high, name
    # Another seed searches elsewhere.
    other = _search(processed, seed=8)
    assert [t.params for t in other.trials] != [t.params for t in first.trials]


def test_the_best_trial_is_the_lowest_cv_score_and_round_trips(processed: ProcessedData) -> None:
    result = _search(processed)
    best = min(result.trials, key=lambda t: t.cv_rmse)
    assert result.best_trial == best.number and result.cv_rmse == best.cv_rmse
    assert result.num_boost_round == best.num_boost_round >= 1
    assert {k: result.hyperparameters[k] for k in best.params} == best.params
    assert TuningResult.from_json(result.to_json()) == result
    # The choice is refit on train + validation (the rows the search never saw are still only
    # validation's: the test split is no argument of training).
    assert result.fit_on == FIT_TRAIN_AND_VALIDATION and result.fits_on_validation
    table = trials_table(result)
    assert list(table["trial"]) == [t.number for t in result.trials]
    assert set(SEARCH_SPACE) <= set(table.columns)


def test_validation_and_test_rows_never_reach_the_objective(
    abalone_file: Path, tmp_path: Path, processed: ProcessedData
) -> None:
    """Poison every row that lands in the validation or test split (absurd measurements and
    rings) and tune again: the same trials and the same choice."""
    lines = [line for line in abalone_file.read_text().splitlines() if line.strip()]
    _, validation_idx, test_idx = split_indices(len(lines), 42)
    for i in (*validation_idx, *test_idx):
        sex = lines[i].split(",")[0]
        lines[i] = ",".join([sex, *["9.5"] * 7, "29"])
    poisoned_file = tmp_path / "poisoned.data"
    poisoned_file.write_text("\n".join(lines) + "\n")
    poisoned = process(read_abalone_csv(poisoned_file, "input_data", require_label=True), 42)
    # The poison is really there: the splits the objective must not see differ...
    assert not poisoned.test.equals(processed.test)
    assert not poisoned.validation.equals(processed.validation)
    assert poisoned.test["rings"].eq(29).all()
    # ...and the choice does not move.
    clean, dirty = _search(processed), _search(poisoned)
    assert [(t.params, t.cv_rmse) for t in dirty.trials] == [
        (t.params, t.cv_rmse) for t in clean.trials
    ]
    assert dirty.hyperparameters == clean.hyperparameters
    assert dirty.num_boost_round == clean.num_boost_round


def test_no_trials_is_the_reference_model_bit_for_bit(processed: ProcessedData) -> None:
    result = tune(processed.train, n_trials=0, timeout_s=600, seed=42, nthread=COMPUTE.nthread)
    assert result.source == SOURCE_REFERENCE and result.trials == []
    assert result.fit_on == FIT_TRAIN and not result.fits_on_validation
    assert result.hyperparameters == HYPERPARAMETERS
    assert result.num_boost_round == NUM_BOOST_ROUND
    # Through the JSON artifact, as trained_model reads it.
    stored = TuningResult.from_json(result.to_json())
    today = train_model(processed.train, processed.validation, seed=42, compute=COMPUTE)
    via_step = train_model(
        processed.train,
        processed.validation,
        seed=42,
        compute=COMPUTE,
        hyperparameters=stored.hyperparameters,
        num_boost_round=stored.num_boost_round,
        fit_on_validation=stored.fits_on_validation,
    )
    assert bytes(via_step.booster.save_raw("ubj")) == bytes(today.booster.save_raw("ubj"))
    assert via_step.params == today.params


def test_a_document_without_fit_on_is_fit_on_train_and_an_unknown_one_is_refused() -> None:
    """Documents written before the refit existed keep meaning what they meant."""
    document = TuningResult(
        source=SOURCE_TUNED, hyperparameters=dict(HYPERPARAMETERS), num_boost_round=7
    ).to_json()
    assert TuningResult.from_json(document).fit_on == FIT_TRAIN
    raw = json.loads(document)
    del raw["fit_on"]
    assert TuningResult.from_json(json.dumps(raw).encode()).fit_on == FIT_TRAIN
    raw["fit_on"] = "train+test"
    with pytest.raises(ValueError, match="fit_on"):
        TuningResult.from_json(json.dumps(raw).encode())


def test_the_refit_is_train_plus_validation_and_nothing_else(processed: ProcessedData) -> None:
    """fit_on_validation fits the same recipe on the train rows followed by the validation rows;
    the per-round RMSE is still recorded on validation (then not held out)."""
    result = _search(processed)
    train = processed.train.iloc[:ROWS]

    def fit(rows: pd.DataFrame, **options: bool) -> TrainedModel:
        return train_model(
            rows,
            processed.validation,
            seed=7,
            compute=COMPUTE,
            hyperparameters=result.hyperparameters,
            num_boost_round=result.num_boost_round,
            **options,
        )

    refit = fit(train, fit_on_validation=True)
    by_hand = fit(pd.concat([train, processed.validation], ignore_index=True))
    on_train = fit(train)
    assert bytes(refit.booster.save_raw("ubj")) == bytes(by_hand.booster.save_raw("ubj"))
    assert bytes(refit.booster.save_raw("ubj")) != bytes(on_train.booster.save_raw("ubj"))
    assert len(refit.validation_rmse) == result.num_boost_round


def test_the_timeout_is_honoured(processed: ProcessedData) -> None:
    import optuna  # noqa: F401  (its one-time import is not the study's time)

    timeout = 1.5
    started = time.monotonic()
    result = tune(
        processed.train, n_trials=10_000, timeout_s=timeout, seed=3, nthread=COMPUTE.nthread
    )
    elapsed = time.monotonic() - started
    assert result.stopped_by_timeout
    assert 1 <= len(result.trials) < 10_000
    # No trial starts after the timeout, and the running one stops boosting at it: what is left
    # past it is one boosting round, the folds' bookkeeping and Optuna's.
    assert elapsed < timeout + 1.5, elapsed
    assert result.elapsed_s <= elapsed
    assert np.isfinite(result.cv_rmse)


@pytest.mark.parametrize(
    ("trials", "timeout", "named"),
    [
        (-1, 60, "tuning_trials"),
        (1.5, 60, "tuning_trials"),
        (3, 0, "tuning_timeout_s"),
        (3, -5, "tuning_timeout_s"),
        (3, float("inf"), "tuning_timeout_s"),
    ],
)
def test_a_meaningless_budget_is_refused_naming_the_parameter(
    trials: object, timeout: object, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        check_budget(trials, timeout)  # type: ignore[arg-type]
