"""The study's standing after each trial, for progress lines: trials done of the budget, the
best so far (the one the study ends up choosing, at the end), the time elapsed."""

from __future__ import annotations

from abalone_platform.ml.preprocess import ProcessedData
from abalone_platform.ml.train import resolve_compute
from abalone_platform.ml.tune import Trial, TuningProgress, tune

COMPUTE = resolve_compute("ml.m5.xlarge")
# Few rows and trials keep the search to a second or two, as in test_tune.
ROWS = 600
TRIALS = 4


def test_progress_follows_every_trial_and_ends_on_the_chosen_one(
    processed: ProcessedData,
) -> None:
    seen: list[Trial] = []
    standings: list[TuningProgress] = []
    result = tune(
        processed.train.iloc[:ROWS],
        n_trials=TRIALS,
        timeout_s=300,
        seed=7,
        nthread=COMPUTE.nthread,
        folds=3,
        on_trial=seen.append,
        on_progress=standings.append,
    )
    assert [s.trial for s in standings] == seen == result.trials
    assert [s.trials_done for s in standings] == list(range(1, TRIALS + 1))
    assert all(s.trials_total == TRIALS for s in standings)
    for k, standing in enumerate(standings):
        so_far = result.trials[: k + 1]
        assert standing.best.cv_rmse == min(t.cv_rmse for t in so_far)
    assert standings[-1].best.number == result.best_trial
    elapsed = [s.elapsed_s for s in standings]
    assert elapsed == sorted(elapsed) and 0 < elapsed[-1] <= result.elapsed_s
