"""Progress of long work (a 10M-row transform, a study's trials, a large upload) in the run log.

The work itself (ml/, compute/, storage/) knows no Dagster: it calls back with how much is done.
A ``ProgressReporter`` is such a callback that turns those counts into INFO lines on a logger:
at most one every ``every_s`` seconds whatever the callback rate (a transform calls back per
chunk, boto3 per part read), and a final line when the work ends. Lines read:

    batch_predictions: 3,000,000 of ~10,000,000 rows (30%), 1,050,000 rows/s, ~7 s left
    batch_predictions: done, 10,000,000 rows in 9.5 s (1,050,000 rows/s)

Light on purpose (no Dagster import here either): asset modules import it when the code
location loads, and the logger is anything with ``.info(str)``, so it is tested without a run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

# Often enough that a person watching the log sees the work move, seldom enough that a
# 10-minute transform writes a screenful rather than thousands of event-log rows.
PROGRESS_INTERVAL_S = 10.0
BYTES = "bytes"


class InfoLog(Protocol):
    """Where lines go: a Dagster ``context.log``, ``dg.get_dagster_logger()``, a logging.Logger."""

    def info(self, msg: str, /) -> object: ...


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _bytes(amount: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(amount) < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


class ProgressReporter:
    """A progress callback (``reporter(done)``, ``done`` the cumulative count) that logs at most
    every ``every_s`` seconds, measured on ``clock``, and a final line on ``finish()``.

    ``what`` starts each line (the asset, or "upload s3://..."); ``unit`` names what is
    counted ("bytes" is shown in KiB/MiB/GiB); ``total``, when known, adds the percentage and
    the time left, and ``approximate`` marks it as an estimate (shown as ~N; a count past it
    drops the percentage rather than show more than 100%). ``quiet_when_fast``: work that ends
    within one interval writes no line at all (for uploads: most artifacts are small).

    As a context manager it finishes on a clean exit only (a failure is the step's to report).
    Thread-safe: the transform calls it from its writer thread, boto3 from its transfer threads.
    """

    def __init__(
        self,
        log: InfoLog,
        what: str,
        *,
        unit: str = "rows",
        total: int | None = None,
        approximate: bool = False,
        every_s: float = PROGRESS_INTERVAL_S,
        quiet_when_fast: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.log = log
        self.what = what
        self.unit = unit
        self.total = total
        self.approximate = approximate
        self.every_s = every_s
        self.quiet_when_fast = quiet_when_fast
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.note = ""
        self._last_line = self.started
        self._finished = False
        self._lock = threading.Lock()

    def __call__(self, done: int, note: str = "") -> None:
        """``done`` so far (cumulative), and an optional ``note`` to end the line with (e.g. a
        study's best score so far); logs a line if ``every_s`` has passed since the last."""
        with self._lock:
            self.done = done
            self.note = note
            now = self.clock()
            if self._finished or now - self._last_line < self.every_s:
                return
            self._last_line = now
            self.log.info(self._progress_line(now - self.started))

    def finish(self, done: int | None = None) -> None:
        """The final line (once): the count (``done``, else the last reported), time and rate."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            if done is not None:
                self.done = done
            elapsed = self.clock() - self.started
            if self.quiet_when_fast and elapsed < self.every_s:
                return
            line = f"{self.what}: done, {self._amount(self.done)} in {_duration(elapsed)}"
            if elapsed > 0:
                line += f" ({self._rate(self.done / elapsed)})"
            self.log.info(line + (f"; {self.note}" if self.note else ""))

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()

    def _amount(self, amount: float) -> str:
        return _bytes(amount) if self.unit == BYTES else f"{amount:,.0f} {self.unit}"

    def _rate(self, per_second: float) -> str:
        if self.unit == BYTES:
            return f"{_bytes(per_second)}/s"
        # A transform runs at a million rows a second, a study at a trial every few seconds.
        shown = f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.3g}"
        return f"{shown} {self.unit}/s"

    def _progress_line(self, elapsed: float) -> str:
        done = self.done
        # No percentage once an estimated total is passed: never more than 100%.
        total = self.total if self.total and not (self.approximate and done > self.total) else None
        if total is not None:
            # The count alone, its unit once after the total: "3,000,000 of 10,000,000 rows".
            shown = _bytes(done) if self.unit == BYTES else f"{done:,}"
            approx = "~" if self.approximate else ""
            line = f"{self.what}: {shown} of {approx}{self._amount(total)} ({100 * done // total}%)"
        else:
            line = f"{self.what}: {self._amount(done)}"
        if elapsed > 0 and done > 0:
            rate = done / elapsed
            line += f", {self._rate(rate)}"
            if total is not None and done < total:
                line += f", ~{_duration((total - done) / rate)} left"
        return line + (f"; {self.note}" if self.note else "")
