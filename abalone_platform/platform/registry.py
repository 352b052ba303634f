"""Model registry operations on MLflow: list, describe, approve, reject.

The approval status lives in the version's ModelApprovalStatus tag (where model_package puts it)
and its history in a JSON tag beside it, so MLflow alone holds the whole record. The `approved`
alias is derived from the statuses (`sync_approved_alias`): model_package calls it when it
registers a version, and every command here calls it too.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abalone_platform.platform.errors import RegistryError, TransitionError, UnknownVersionError
from abalone_platform.settings import tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

# The registry's names, for the pipeline (defs.registry) and the CLI alike. The statuses repeat
# defs.shared.resources.ModelApprovalStatus, which this module does not import (it pulls in
# Dagster and XGBoost: seconds per command); tests/platform/test_registry.py checks they agree.
MODEL_PACKAGE_GROUP = "AbaloneModelPackageGroupName"
APPROVAL_TAG = "ModelApprovalStatus"
APPROVED_ALIAS = "approved"
HISTORY_TAG = "approval_history"
PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"

# The one place that says which status changes a person may make.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({APPROVED, REJECTED}),
    APPROVED: frozenset({REJECTED}),
    REJECTED: frozenset(),
}


@dataclass(frozen=True)
class Registry:
    client: MlflowClient
    name: str
    tracking_uri: str


def open_registry() -> Registry:
    import logging

    # Alembic's migration chatter on a new database is noise on a terminal.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow import MlflowClient

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return Registry(client, MODEL_PACKAGE_GROUP, uri)


def _iso(millis: int | None) -> str | None:
    if millis is None:
        return None
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC).isoformat(timespec="seconds")


def now_iso() -> str:
    return dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds")


def _versions(registry: Registry) -> list[ModelVersion]:
    versions = registry.client.search_model_versions(
        f"name = '{registry.name}'", max_results=10_000
    )
    return sorted(versions, key=lambda v: int(v.version))


def _status(version: ModelVersion) -> str:
    return version.tags.get(APPROVAL_TAG, "")


def _mse(version: ModelVersion) -> float | None:
    try:
        return float(version.tags["mse"])
    except (KeyError, ValueError):
        return None


def validate_transition(current: str, target: str, version: str) -> None:
    """Raise TransitionError unless a person may move a version from `current` to `target`."""
    if target not in ALLOWED_TRANSITIONS:
        raise TransitionError(
            f"{target!r} is not an approval status (one of {', '.join(ALLOWED_TRANSITIONS)})"
        )
    allowed = ALLOWED_TRANSITIONS.get(current)
    if allowed is None:
        raise TransitionError(
            f"version {version} has approval status {current!r}, which is not one of "
            f"{', '.join(ALLOWED_TRANSITIONS)}; fix its {APPROVAL_TAG} tag in MLflow first"
        )
    if target not in allowed:
        possible = " or ".join(sorted(allowed)) if allowed else "nothing (it is final)"
        raise TransitionError(
            f"version {version} is {current}; it cannot become {target} "
            f"(from {current} it can become {possible})"
        )


def approval_history(version: ModelVersion) -> list[dict[str, Any]]:
    """The version's status changes, oldest first, starting with its registration."""
    raw = version.tags.get(HISTORY_TAG)
    if raw:
        return json.loads(raw)
    # Until a person changes it, the status is the one the pipeline registered it with.
    run = version.tags.get("dagster_run_id", "unknown")
    return [
        {
            "from": None,
            "to": _status(version),
            "by": f"abalone_platform pipeline (Dagster run {run})",
            "at": _iso(version.creation_timestamp),
            "reason": f"registered with ModelApprovalStatus={_status(version)}",
        }
    ]


def sync_approved_alias(registry: Registry) -> str | None:
    """Point the `approved` alias at the newest Approved version (remove it when there is none);
    returns the version it points at."""
    approved = [v for v in _versions(registry) if _status(v) == APPROVED]
    target = str(int(approved[-1].version)) if approved else None
    try:
        current = registry.client.get_registered_model(registry.name).aliases.get(APPROVED_ALIAS)
    except Exception as exc:  # no registered model yet: nothing to point at
        if _is_missing(exc):
            return None
        raise
    if current is not None and str(current) == target:
        return target
    if target is None:
        registry.client.delete_registered_model_alias(registry.name, APPROVED_ALIAS)
    else:
        registry.client.set_registered_model_alias(registry.name, APPROVED_ALIAS, target)
    return target


def _is_missing(exc: Exception) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or (
        "not found" in str(exc).lower()
    )


def _parse_version(version: str | int) -> str:
    text = str(version).strip()
    if not text.isdigit() or int(text) < 1:
        raise UnknownVersionError(f"{version!r} is not a version number (1, 2, ...)")
    return str(int(text))


def get_version(registry: Registry, version: str | int) -> ModelVersion:
    number = _parse_version(version)
    try:
        return registry.client.get_model_version(registry.name, number)
    except Exception as exc:
        if not _is_missing(exc):
            raise
    known = [v.version for v in _versions(registry)]
    held = f"versions {', '.join(map(str, known))}" if known else "no versions yet"
    raise UnknownVersionError(
        f"{registry.name} has no version {number} (the registry at {registry.tracking_uri} "
        f"holds {held})"
    )


def list_versions(registry: Registry) -> list[dict[str, Any]]:
    """Every version, oldest first: version, status, mse, created, Dagster run id, aliases."""
    alias = sync_approved_alias(registry)
    return [
        {
            "version": int(v.version),
            "approval_status": _status(v),
            "mse": _mse(v),
            "created": _iso(v.creation_timestamp),
            "dagster_run_id": v.tags.get("dagster_run_id"),
            "aliases": [APPROVED_ALIAS] if str(int(v.version)) == alias else [],
        }
        for v in _versions(registry)
    ]


def describe_version(registry: Registry, version: str | int) -> dict[str, Any]:
    """Everything about one version: metrics, inference spec, artifacts, run parameters, history."""
    alias = sync_approved_alias(registry)
    mv = get_version(registry, version)
    run = registry.client.get_run(mv.run_id) if mv.run_id else None
    tags = dict(mv.tags)
    spec_text = tags.get("inference_spec")
    shown = {APPROVAL_TAG, HISTORY_TAG, "inference_spec", "mse"}
    return {
        "name": registry.name,
        "version": int(mv.version),
        "approval_status": _status(mv),
        "aliases": [APPROVED_ALIAS] if str(int(mv.version)) == alias else [],
        "created": _iso(mv.creation_timestamp),
        "last_updated": _iso(mv.last_updated_timestamp),
        "description": mv.description,
        "dagster_run_id": tags.get("dagster_run_id"),
        "mlflow_run_id": mv.run_id,
        "model_uri": f"models:/{registry.name}/{int(mv.version)}",
        "tracking_uri": registry.tracking_uri,
        "metrics": dict(sorted(run.data.metrics.items())) if run else {},
        "parameters": dict(run.data.params) if run else {},
        "inference_spec": json.loads(spec_text) if spec_text else None,
        "artifacts": [
            {
                "name": "model package (MLflow copy of the bundle)",
                "uri": mv.source,
                "sha256": tags.get("bundle_sha256"),
            },
            {
                "name": "deployable_model bundle",
                "uri": tags.get("bundle_uri"),
                "sha256": tags.get("bundle_sha256"),
            },
            {
                "name": "evaluation_report (evaluation.json)",
                "uri": tags.get("evaluation_uri"),
                "sha256": tags.get("evaluation_sha256"),
            },
        ],
        "approval_history": approval_history(mv),
        "tags": {k: v for k, v in sorted(tags.items()) if k not in shown},
    }


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER, as in some containers
        return f"uid {os.getuid()}"


def set_approval(
    registry: Registry,
    version: str | int,
    target: str,
    *,
    reason: str,
    by: str | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """Move a version to `target` (Approved or Rejected), recording who, when and why.

    Everything is checked before anything is written, so a refused request changes nothing.
    Returns the history entry that was added and where the `approved` alias now points.
    """
    if not reason or not reason.strip():
        raise TransitionError("a reason is required (--reason TEXT): say why, for the record")
    mv = get_version(registry, version)
    number = str(int(mv.version))
    current = _status(mv)
    validate_transition(current, target, number)
    entry = {
        "from": current,
        "to": target,
        "by": (by or "").strip() or current_user(),
        "at": at or now_iso(),
        "reason": reason.strip(),
    }
    history = [*approval_history(mv), entry]
    client = registry.client
    # History first: should the status write fail, the record over-reports an attempt rather
    # than hiding a change.
    client.set_model_version_tag(registry.name, number, HISTORY_TAG, json.dumps(history))
    client.set_model_version_tag(registry.name, number, APPROVAL_TAG, target)
    alias = sync_approved_alias(registry)
    return {"version": int(number), **entry, "approved_alias": alias}


def approve(registry: Registry, version: str | int, *, reason: str, by: str | None = None):
    return set_approval(registry, version, APPROVED, reason=reason, by=by)


def reject(registry: Registry, version: str | int, *, reason: str, by: str | None = None):
    return set_approval(registry, version, REJECTED, reason=reason, by=by)


__all__ = [
    "ALLOWED_TRANSITIONS",
    "APPROVED_ALIAS",
    "HISTORY_TAG",
    "MODEL_PACKAGE_GROUP",
    "Registry",
    "RegistryError",
    "TransitionError",
    "UnknownVersionError",
    "approve",
    "describe_version",
    "list_versions",
    "open_registry",
    "reject",
    "set_approval",
    "sync_approved_alias",
    "validate_transition",
]
