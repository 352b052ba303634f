"""How a file is cut into tasks, and what a task sends back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from abalone_platform.ml.data import line_aligned_ranges

# A task's share of the file: small enough that pieces balance across workers that start late
# or run on a busy machine, large enough that a task's fixed cost (scheduling, a worker's
# first import) vanishes.
PIECE_BYTES = 16 << 20


def piece_ranges(path: Path, workers: int, piece_bytes: int = PIECE_BYTES) -> list[tuple[int, int]]:
    """Line-aligned byte ranges of ``path``: at least one per worker, at most ``piece_bytes``
    each (a file with fewer lines than workers gets fewer)."""
    size = path.stat().st_size
    return line_aligned_ranges(path, max(workers, -(-size // piece_bytes)))


@dataclass(frozen=True)
class BadRange:
    """A task's range broke a rule; the step locates the line in the whole file."""

    detail: str | None


def worker_address() -> str:
    """The Dask worker running this task ("" outside one)."""
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:
        return ""
