"""Which code produced an artifact: the git commit of this checkout, else the package version."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        # --no-optional-locks: never refresh .git/index, so this cannot collide with a git command
        # someone else runs in the same checkout.
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(_REPO_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``git:<commit>`` (``-dirty`` when tracked files differ from it), else ``abalone_platform
    <version>`` for an installed copy without its git history."""
    commit = _git("rev-parse", "HEAD")
    if commit:
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        return f"git:{commit}" + ("-dirty" if dirty else "")
    try:
        return f"abalone_platform {metadata.version('abalone_platform')}"
    except metadata.PackageNotFoundError:
        return "abalone_platform (unknown version)"
