"""Content-addressed step caching (SageMaker's CacheConfig), the Dagster-free half: the key, the
steps' code version and the expiry parameter.

A step's cache key is the sha256 of everything that decides its outputs: the sha256 of every
input artifact or file, every parameter that affects the step, and the step's code version. Two
runs with the same key compute the same bytes (every step is seeded and tested byte-identical),
so a later run may reuse the earlier one's artifacts instead of recomputing them. The lookup and
the reuse (Dagster's event log, the artifacts' sha256 verified) are in defs/shared/caching.py.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

# The metadata every materialization of a cached step records: its key and code version, and on
# a hit the run that computed what it reuses (SageMaker's CacheHitResult).
CACHE_KEY = "cache_key"
CACHE_HIT_OF = "cache_hit_of"
STEP_CODE_VERSION = "step_code_version"

_PACKAGE = Path(__file__).resolve().parent
# The code a step's outputs depend on besides its own asset module: every Dagster-free module
# that parses, splits, fits, trains, evaluates, predicts or writes artifacts. One version for all
# of them over-invalidates (an edit to evaluate.py also misses processing's cache) but can never
# miss a helper that a per-step list forgot.
COMPUTATION_PACKAGES = ("ml", "compute", "storage")
COMPUTATION_MODULES = ("errors.py",)

EXPIRE_PARAMETER = "cache_expire_after"
# ISO 8601 durations as SageMaker's CacheConfig ExpireAfter takes them: P30D, PT12H, P1W,
# P1Y2M3DT4H5M6.5S. A year counts as 365 days and a month as 30 (as SageMaker's do not say).
_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_DAYS_PER = {"years": 365, "months": 30, "weeks": 7, "days": 1}


def parse_expire_after(text: str) -> datetime.timedelta | None:
    """``cache_expire_after`` as a duration; None for "" (entries never expire). Raises
    ValueError naming the parameter for anything that is not an ISO 8601 duration."""
    text = text.strip()
    if not text:
        return None
    match = _DURATION.match(text.upper())
    if match is None:
        raise ValueError(
            f"{EXPIRE_PARAMETER} must be an ISO 8601 duration such as P30D, PT12H or P1DT6H "
            f"(empty: never expire), got {text!r}"
        )
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    days = sum(parts.get(name, 0.0) * per for name, per in _DAYS_PER.items())
    duration = datetime.timedelta(
        days=days,
        hours=parts.get("hours", 0.0),
        minutes=parts.get("minutes", 0.0),
        seconds=parts.get("seconds", 0.0),
    )
    if duration <= datetime.timedelta(0):
        raise ValueError(f"{EXPIRE_PARAMETER} must be longer than zero, got {text!r}")
    return duration


@functools.cache
def step_code_version(step_module_file: str) -> str:
    """The sha256 of the step's own module and of every computation module, by relative path
    and content: the same checkout (or installed copy) gives the same version on any machine."""
    step_module = Path(step_module_file).resolve()
    files = sorted(
        {
            *(p for package in COMPUTATION_PACKAGES for p in (_PACKAGE / package).rglob("*.py")),
            *(_PACKAGE / name for name in COMPUTATION_MODULES),
            step_module,
        }
    )
    digest = hashlib.sha256()
    for path in files:
        name = path.relative_to(_PACKAGE).as_posix() if path.is_relative_to(_PACKAGE) else path.name
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def step_cache_key(
    step: str,
    code_version: str,
    inputs: Mapping[str, str],
    parameters: Mapping[str, object],
) -> str:
    """The step's cache key: sha256 of its name, code version, each input's sha256 (by input
    name) and each parameter that affects it, as canonical JSON."""
    document = json.dumps(
        {
            "step": step,
            "code_version": code_version,
            "inputs": dict(inputs),
            "parameters": dict(parameters),
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(document.encode()).hexdigest()
