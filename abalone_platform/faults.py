"""Fault injection at named moments, for the fault tests.

A test sets ``ABALONE_FAULT=<point>=<action>[;<point>=<action>...]`` and the process hits the
fault exactly when its code reaches ``fault_point(<point>)``: no sleeps, no races against a
timer. Unset (always, outside tests) a point costs one dictionary lookup.

Actions:
- ``kill``: SIGKILL this process (as ``kill -9`` from outside would);
- ``term`` / ``int``: send this process SIGTERM / SIGINT and carry on, as a signal arriving
  at that moment would;
- ``kill_once:<file>``: SIGKILL only the first process to get here (it creates ``<file>``
  first, atomically); later ones, and retries of the same work, carry on;
- ``enospc``: raise ``OSError(ENOSPC)``, as a full disk would at a write;
- ``barrier:<dir>:<n>``: register in ``<dir>`` and wait until ``n`` processes have, so that
  racing processes (two approvals) are all past the same point before any goes on.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

FAULT_ENV = "ABALONE_FAULT"
# A barrier that never fills is a broken test, not a reason to hang CI.
BARRIER_TIMEOUT_S = 60.0


def _actions(point: str) -> list[str]:
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return []
    found = []
    for entry in spec.split(";"):
        name, _, action = entry.strip().partition("=")
        if name == point:
            found.append(action)
    return found


def _barrier(directory: Path, parties: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{os.getpid()}.arrived").touch()
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while len(list(directory.glob("*.arrived"))) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fault barrier {directory}: fewer than {parties} arrived")
        time.sleep(0.01)


def fault_point(point: str) -> None:
    """Inject the fault that ``ABALONE_FAULT`` names for ``point``, if any."""
    for action in _actions(point):
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action.startswith("kill_once:"):
            try:
                os.close(os.open(action.split(":", 1)[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "term":
            os.kill(os.getpid(), signal.SIGTERM)
        elif action == "int":
            os.kill(os.getpid(), signal.SIGINT)
        elif action == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"(injected at {point})")
        elif action.startswith("barrier:"):
            _, directory, parties = action.split(":", 2)
            _barrier(Path(directory), int(parties))
        else:
            raise ValueError(f"{FAULT_ENV}: unknown action {action!r} for point {point!r}")
