"""Reading the MLflow registry that a test's pipeline runs wrote to."""

from __future__ import annotations

from mlflow import MlflowClient

from abalone_platform.registry import (
    APPROVAL_TAG,
    APPROVED,
    MODEL_PACKAGE_GROUP,
    REJECTED,
    Registry,
    set_approval,
)


def registered_versions(tracking_uri: str) -> list[dict[str, str]]:
    """Every version of the model package group, oldest first (empty if none was registered)."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    versions = client.search_model_versions(f"name='{MODEL_PACKAGE_GROUP}'")
    return [
        {"version": str(v.version), "status": v.tags.get(APPROVAL_TAG, ""), **v.tags}
        for v in sorted(versions, key=lambda v: int(v.version))
    ]


def approve(registry: Registry, version: str | int, *, reason: str, by: str | None = None):
    return set_approval(registry, version, APPROVED, reason=reason, by=by)


def reject(registry: Registry, version: str | int, *, reason: str, by: str | None = None):
    return set_approval(registry, version, REJECTED, reason=reason, by=by)
