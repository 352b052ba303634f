"""Progress lines in the run log: throttled on an injected clock, a final line, totals (exact,
estimated, unknown), bytes; no final line for a failure or, when asked, for quick work."""

from __future__ import annotations

import pytest

from abalone_platform.defs.shared.progress import ProgressReporter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Lines:
    """A logger-like sink: what the reporter would have written to context.log."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log() -> Lines:
    return Lines()


def test_lines_are_throttled_to_one_per_interval_and_end_with_a_final_line(
    clock: Clock, log: Lines
) -> None:
    report = ProgressReporter(log, "batch_predictions", total=10_000_000, every_s=10, clock=clock)
    # Chunks every second: only the calls 10 s after the previous line write one.
    for second in range(1, 26):
        clock.now += 1
        report(second * 100_000)
    assert log.lines == [
        "batch_predictions: 1,000,000 of 10,000,000 rows (10%), 100,000 rows/s, ~1 min 30 s left",
        "batch_predictions: 2,000,000 of 10,000,000 rows (20%), 100,000 rows/s, ~1 min 20 s left",
    ]
    clock.now += 0.5
    report.finish()
    assert log.lines[-1] == "batch_predictions: done, 2,500,000 rows in 26 s (98,039 rows/s)"
    report(2_600_000)  # a late call after the end writes nothing more
    report.finish()
    assert len(log.lines) == 3


def test_a_quiet_gap_is_reported_at_the_next_call_not_later(clock: Clock, log: Lines) -> None:
    report = ProgressReporter(log, "batch_predictions", every_s=10, clock=clock)
    clock.now += 9.9
    report(5)
    assert log.lines == []
    clock.now += 35  # no call for 35 s: one line at the next call, the interval restarts there
    report(3_000_000)
    clock.now += 9
    report(3_100_000)
    assert log.lines == ["batch_predictions: 3,000,000 rows, 66,815 rows/s"]


def test_an_estimated_total_is_marked_and_never_passed(clock: Clock, log: Lines) -> None:
    report = ProgressReporter(log, "batch_predictions", total=1000, approximate=True, clock=clock)
    clock.now += 10
    report(300)
    clock.now += 10
    report(1200)  # more rows than the estimate: no percentage beyond 100
    report.finish()
    assert log.lines == [
        "batch_predictions: 300 of ~1,000 rows (30%), 30 rows/s, ~23 s left",
        "batch_predictions: 1,200 rows, 60 rows/s",
        "batch_predictions: done, 1,200 rows in 20 s (60 rows/s)",
    ]


def test_bytes_and_a_note(clock: Clock, log: Lines) -> None:
    report = ProgressReporter(
        log, "upload s3://b/k.out", unit="bytes", total=3 << 30, every_s=5, clock=clock
    )
    clock.now += 8
    report(1 << 30, note="multipart")
    assert log.lines == [
        "upload s3://b/k.out: 1.0 GiB of 3.0 GiB (33%), 128.0 MiB/s, ~16 s left; multipart"
    ]
    trials = ProgressReporter(log, "tuned_hyperparameters", unit="trials", total=50, clock=clock)
    clock.now += 12
    trials(3, note="best cv rmse 2.1000 (trial 1)")
    assert log.lines[-1] == (
        "tuned_hyperparameters: 3 of 50 trials (6%), 0.25 trials/s, ~3 min 08 s left; "
        "best cv rmse 2.1000 (trial 1)"
    )


def test_the_context_finishes_on_success_only(clock: Clock, log: Lines) -> None:
    with ProgressReporter(log, "batch_predictions", clock=clock) as report:
        report(4177)
    assert log.lines == ["batch_predictions: done, 4,177 rows in 0.0 s"]
    with pytest.raises(RuntimeError), ProgressReporter(log, "x", clock=clock) as report:
        report(1)
        raise RuntimeError("the step reports its failure itself")
    assert len(log.lines) == 1


def test_quick_work_says_nothing_when_asked(clock: Clock, log: Lines) -> None:
    def upload(seconds: float) -> None:
        with ProgressReporter(
            log, "upload s3://b/model.ubj", unit="bytes", quiet_when_fast=True, clock=clock
        ) as report:
            clock.now += seconds
            report(2048)

    upload(9.9)
    assert log.lines == []
    upload(20)
    assert log.lines == [
        "upload s3://b/model.ubj: 2.0 KiB, 102 B/s",
        "upload s3://b/model.ubj: done, 2.0 KiB in 20 s (102 B/s)",
    ]
