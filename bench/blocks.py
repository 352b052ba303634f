"""BENCHMARKS.md's machine-written blocks: each benchmark rewrites the text between its own
markers and leaves the hand-written rest of the file as it is.

A block may hold parts, each between its own markers inside it (`bench:results` holds one part
per section of `python -m bench`): a run that measured only some sections rewrites their parts
and keeps the others as they were."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def read_block(name: str) -> str | None:
    """The text between ``name``'s markers, or None when the file has no such block."""
    begin, end = _markers(name)
    current = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else ""
    if begin not in current or end not in current:
        return None
    return current.partition(begin)[2].partition(end)[0].strip("\n")


def write_block(name: str, text: str, heading: str) -> None:
    """Replace the block between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; a file
    without it gets it appended under ``heading``."""
    begin, end = _markers(name)
    block = f"{begin}\n{text}\n{end}"
    current = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    if begin in current and end in current:
        head, _, rest = current.partition(begin)
        _, _, tail = rest.partition(end)
        BENCHMARKS_MD.write_text(head + block + tail)
    else:
        BENCHMARKS_MD.write_text(current.rstrip("\n") + f"\n\n## {heading}\n\n{block}\n")


_PART = re.compile(r"<!-- bench:([\w-]+) -->\n?(.*?)\n?<!-- /bench:\1 -->", re.DOTALL)


def split_parts(text: str) -> tuple[str, dict[str, str]]:
    """A block's text as its header (everything before its first part) and its parts."""
    first = _PART.search(text)
    header = (text[: first.start()] if first else text).strip("\n")
    return header, {match[1]: match[2].strip("\n") for match in _PART.finditer(text)}


def _legacy_parts(text: str, legacy: Mapping[str, str]) -> dict[str, str]:
    """A block written before it had parts: its `### ` sections, each given to the part whose
    ``legacy`` heading prefix it starts with (a section matching none stays with the one before
    it), each under the old block's header (its machine and date)."""
    chunks = re.split(r"\n(?=### )", text)
    dated = chunks[0].strip("\n")
    parts: dict[str, str] = {}
    current = None
    for chunk in chunks[1:]:
        title = chunk.splitlines()[0].removeprefix("### ")
        current = next((p for prefix, p in legacy.items() if title.startswith(prefix)), current)
        if current is None:
            continue
        if current not in parts:
            parts[current] = f"{dated}\n\n" if dated else ""
        parts[current] += chunk.strip("\n") + "\n\n"
    return {name: text.strip("\n") for name, text in parts.items()}


def write_parts(
    name: str,
    header: str,
    parts: Mapping[str, str],
    order: Sequence[str],
    heading: str,
    legacy: Mapping[str, str] | None = None,
) -> None:
    """Rewrite block ``name`` as ``header`` then its parts in ``order`` (parts it holds that
    ``order`` does not name come after them): the ones in ``parts`` replaced or added, every
    other one kept. A block without parts yet is split by ``legacy`` (`_legacy_parts`)."""
    current = read_block(name)
    kept: dict[str, str] = {}
    if current is not None:
        _, kept = split_parts(current)
        if not kept and legacy:
            kept = _legacy_parts(current, legacy)
    merged = {**kept, **parts}
    names = [n for n in order if n in merged] + [n for n in merged if n not in order]
    body = [header.strip("\n")]
    for part in names:
        begin, end = _markers(part)
        body.append(f"{begin}\n{merged[part]}\n{end}")
    write_block(name, "\n\n".join(body), heading)
