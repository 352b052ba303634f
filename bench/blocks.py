"""BENCHMARKS.md's machine-written blocks: each benchmark rewrites the text between its own
markers and leaves the hand-written rest of the file as it is."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_block(name: str, text: str, heading: str) -> None:
    """Replace the block between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; a file
    without it gets it appended under ``heading``."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{text}\n{end}"
    current = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    if begin in current and end in current:
        head, _, rest = current.partition(begin)
        _, _, tail = rest.partition(end)
        BENCHMARKS_MD.write_text(head + block + tail)
    else:
        BENCHMARKS_MD.write_text(current.rstrip("\n") + f"\n\n## {heading}\n\n{block}\n")
