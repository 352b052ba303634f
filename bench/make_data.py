"""Synthetic abalone-like CSV files for the scale series.

Real UCI rows resampled with replacement, numerics jittered by a little multiplicative noise
(so the file is not the same 4,177 rows repeated), rings kept as the real row's. Seeded, so a
given size is the same file on every machine; written in slices so that generating 10M rows
never holds more than one slice in memory. The files are cached, never committed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from abalone_platform.ml.data import RAW_COLUMNS

# The generator is not the baseline (bench/plain_pipeline.py stays standalone on purpose), so
# it takes the column layout from the project.
COLUMNS = RAW_COLUMNS
SLICE_ROWS = 500_000
NOISE = 0.02  # relative standard deviation of the jitter
SEED = 20240605


def _real_rows(source: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = pacsv.read_csv(source, read_options=pacsv.ReadOptions(column_names=list(COLUMNS)))
    sex = table.column("sex").to_numpy(zero_copy_only=False).astype(str)
    numerics = np.column_stack([table.column(c).to_numpy() for c in COLUMNS[1:-1]])
    rings = table.column("rings").to_numpy().astype(np.int64)
    return sex, numerics.astype(np.float64), rings


def generate(source: Path, target: Path, rows: int, seed: int = SEED) -> Path:
    """Write ``rows`` synthetic rows to ``target`` (atomically) and return it."""
    sex, numerics, rings = _real_rows(source)
    rng = np.random.default_rng(seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with pa.OSFile(str(tmp), "wb") as sink:
        done = 0
        while done < rows:
            n = min(SLICE_ROWS, rows - done)
            pick = rng.integers(0, len(sex), n)
            jitter = 1.0 + NOISE * rng.standard_normal((n, numerics.shape[1]))
            values = np.round(np.abs(numerics[pick] * jitter), 4)
            columns = {"sex": pa.array(sex[pick])}
            for j, name in enumerate(COLUMNS[1:-1]):
                columns[name] = pa.array(values[:, j])
            columns["rings"] = pa.array(rings[pick])
            pacsv.write_csv(pa.table(columns), sink, options)
            done += n
    os.replace(tmp, target)
    return target


def cached(source: Path, cache_dir: Path, rows: int) -> Path:
    """The synthetic file of ``rows`` rows in ``cache_dir``, generated on first use."""
    target = cache_dir / f"abalone_{rows}.csv"
    if not target.exists():
        generate(source, target, rows)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, required=True, help="the UCI abalone.data file")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    generate(args.source, args.out, args.rows)


if __name__ == "__main__":
    main()
