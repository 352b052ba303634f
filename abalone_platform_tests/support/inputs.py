"""Small input files for the parser tests."""

from __future__ import annotations

from pathlib import Path


def write(tmp_path: Path, lines: list[str], name: str = "abalone.csv") -> Path:
    """``lines`` as a file (one per line, newline-terminated) in ``tmp_path``."""
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path
