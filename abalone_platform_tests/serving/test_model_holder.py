"""The endpoint's model holder against a real MLflow registry (SQLite), without HTTP: what it
serves as versions are registered, approved and rejected, pinned versions, and legacy versions
(a bare bundle) loaded with the project's own loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from abalone_platform.defs.shared.resources import ModelRegistry
from abalone_platform.ml.mlflow_format import save_model_dir
from abalone_platform.registry import (
    APPROVED,
    BUNDLE_SHA256_TAG,
    MODEL_FORMAT_TAG,
    PENDING,
    PYFUNC_FORMAT,
    Registry,
    list_versions,
    register_version,
)
from abalone_platform.serving.model import ModelHolder
from abalone_platform_tests.support.registry import approve, reject

# Each test builds a registry (an MLflow SQLite database and two versions): seconds apiece.
pytestmark = pytest.mark.slow


@pytest.fixture
def registry(tmp_path: Path, bundle: tuple[Path, str]) -> Registry:
    """Version 1: a legacy bare bundle, Approved. Version 2: an MLflow model, Pending."""
    resource = ModelRegistry(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=(tmp_path / "mlartifacts").as_uri(),
    )
    bundle_dir, sha = bundle
    model_dir = tmp_path / "model"
    save_model_dir(model_dir, bundle_dir, sha, None)
    for status, files, tags in (
        (APPROVED, bundle_dir, {}),
        (PENDING, model_dir, {MODEL_FORMAT_TAG: PYFUNC_FORMAT}),
    ):
        register_version(
            resource.open(),
            artifact_root=resource.artifact_root,
            model_dir=files,
            approval_status=status,
            metrics={"mse": 5.0},
            params={},
            tags={BUNDLE_SHA256_TAG: sha, "mse": "5.0", **tags},
        )
    return resource.open()


def test_follows_the_approved_alias(registry: Registry) -> None:
    switches = []
    holder = ModelHolder(lambda: registry, on_switch=switches.append)
    holder.refresh()
    assert holder.current.version == 1  # the legacy version, with the project's own loader
    assert [v["format"] for v in list_versions(registry)] == ["bundle (legacy)", PYFUNC_FORMAT]
    legacy = holder.current
    approve(registry, 2, reason="test")
    holder.refresh()
    assert holder.current.version == 2 and legacy.version == 1  # the old one is untouched
    reject(registry, 2, reason="test")
    holder.refresh()
    assert holder.current.version == 1
    reject(registry, 1, reason="test")
    holder.refresh()
    holder.refresh()  # nothing changed: no second "switch" to none
    assert holder.current is None and "no Approved version" in holder.state.reason
    assert [m.version if m else None for m in switches] == [1, 2, 1, None]


def test_both_formats_predict_the_same(registry: Registry, rows) -> None:
    holder = ModelHolder(lambda: registry)
    holder.refresh()
    legacy = holder.current.predict(rows)
    approve(registry, 2, reason="test")
    holder.refresh()
    np.testing.assert_array_equal(holder.current.predict(rows), legacy)


def test_pinned_version_is_served_until_rejected(registry: Registry) -> None:
    holder = ModelHolder(lambda: registry, pinned=2)
    holder.refresh()
    assert holder.current.version == 2  # Pending, pinned: served
    reject(registry, 2, reason="test")
    holder.refresh()
    assert holder.current is None and "version 2 is Rejected" in holder.state.reason
