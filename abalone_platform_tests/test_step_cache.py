"""The cache key, the steps' code version and cache_expire_after (abalone_platform.step_cache)."""

import datetime
import shutil
from pathlib import Path

import pytest

from abalone_platform import step_cache
from abalone_platform.defs.shared.resources import PipelineParameters

PACKAGE = Path(step_cache.__file__).parent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P30D", datetime.timedelta(days=30)),
        ("PT12H", datetime.timedelta(hours=12)),
        ("P1W", datetime.timedelta(days=7)),
        ("P1DT6H30M", datetime.timedelta(days=1, hours=6, minutes=30)),
        ("PT0.5S", datetime.timedelta(seconds=0.5)),
        ("P1Y2M", datetime.timedelta(days=365 + 60)),
        ("p2d", datetime.timedelta(days=2)),
    ],
)
def test_iso_8601_durations(text: str, expected: datetime.timedelta) -> None:
    assert step_cache.parse_expire_after(text) == expected


def test_empty_never_expires() -> None:
    assert step_cache.parse_expire_after("") is None
    assert PipelineParameters(cache_expire_after="").cache_expire_after == ""


@pytest.mark.parametrize("text", ["30 days", "P", "PT", "P1H", "30D", "P1DT", "PT0S", "-P1D"])
def test_a_bad_duration_names_the_parameter(text: str) -> None:
    with pytest.raises(ValueError, match="cache_expire_after"):
        step_cache.parse_expire_after(text)
    # Refused with the run config, before any step runs.
    with pytest.raises(Exception, match="cache_expire_after"):
        PipelineParameters(cache_expire_after=text)


def test_caching_is_on_by_default() -> None:
    assert PipelineParameters().enable_caching is True


def test_the_key_changes_with_each_input_parameter_and_the_code() -> None:
    base = {
        "step": "trained_model",
        "code_version": "c1",
        "inputs": {"train_split": "a" * 64, "validation_split": "b" * 64},
        "parameters": {"seed": 42, "training_instance_type": "ml.m5.xlarge"},
    }
    key = step_cache.step_cache_key(**base)
    assert key == step_cache.step_cache_key(**base)
    # The order the inputs are given in does not matter; their names and values do.
    reordered = {**base, "inputs": dict(reversed(list(base["inputs"].items())))}
    assert step_cache.step_cache_key(**reordered) == key
    variants = [
        {**base, "step": "evaluation_report"},
        {**base, "code_version": "c2"},
        {**base, "inputs": {**base["inputs"], "train_split": "c" * 64}},
        {**base, "inputs": {"train_split": "b" * 64, "validation_split": "a" * 64}},
        {**base, "parameters": {**base["parameters"], "seed": 0}},
        {**base, "parameters": {**base["parameters"], "training_instance_type": "ml.m5.large"}},
    ]
    keys = {step_cache.step_cache_key(**variant) for variant in variants}
    assert key not in keys and len(keys) == len(variants)


def test_the_code_version_follows_the_computation_modules(tmp_path: Path) -> None:
    asset_module = PACKAGE / "defs" / "training" / "assets.py"
    version = step_cache.step_code_version(str(asset_module))
    assert len(version) == 64
    # Another step's module gives another version.
    assert step_cache.step_code_version(str(PACKAGE / "defs" / "data" / "assets.py")) != version
    # A copy of the package with one computation module edited gives another version; an
    # unedited copy the same one (paths are relative, so any checkout agrees).
    copy = tmp_path / "abalone_platform"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    original = step_cache._PACKAGE
    try:
        step_cache._PACKAGE = copy
        step_cache.step_code_version.cache_clear()
        copied_module = str(copy / "defs" / "training" / "assets.py")
        assert step_cache.step_code_version(copied_module) == version
        train = copy / "ml" / "train.py"
        train.write_text(train.read_text() + "\n# an edit\n")
        step_cache.step_code_version.cache_clear()
        assert step_cache.step_code_version(copied_module) != version
    finally:
        step_cache._PACKAGE = original
        step_cache.step_code_version.cache_clear()
