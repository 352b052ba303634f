"""Where things live, read from the environment: the one place for ABALONE_HOME,
ABALONE_ARTIFACT_ROOT and the registry's tracking URI.

Plain Python, no Dagster or MLflow import, so the pipeline's resources and the `abalone-platform`
command (which must start fast) share these rules instead of each keeping a copy.
"""

from __future__ import annotations

import os
from pathlib import Path


def abalone_home() -> Path:
    """ABALONE_HOME: a local directory holding the download cache, the MLflow registry's SQLite
    database and, unless ABALONE_ARTIFACT_ROOT says otherwise, the artifacts."""
    value = os.environ.get("ABALONE_HOME", "")
    if "://" in value:
        # Keeping the cache and the SQLite registry local is deliberate (SQLite cannot live in
        # S3); artifacts have their own setting.
        raise ValueError(
            f"ABALONE_HOME must be a local directory, got {value!r}; to keep artifacts in S3 "
            "set ABALONE_ARTIFACT_ROOT=s3://bucket/prefix"
        )
    return Path(value or Path.cwd() / "abalone_home").resolve()


def artifact_root_setting() -> str:
    """ABALONE_ARTIFACT_ROOT: where artifacts go, a directory or ``s3://bucket/prefix``; empty
    means ``ABALONE_HOME/artifacts``."""
    return os.environ.get("ABALONE_ARTIFACT_ROOT", "").strip()


def tracking_uri() -> str:
    """The MLflow registry: MLFLOW_TRACKING_URI, else SQLite in ABALONE_HOME."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{abalone_home() / 'mlflow.db'}"


def mlflow_artifact_root() -> str:
    """Where MLflow stores the registered versions' files: ``<ABALONE_ARTIFACT_ROOT>/mlartifacts``
    when that is set (an s3:// root reaches S3 through boto3's standard settings,
    AWS_ENDPOINT_URL included); else, with a tracking server (http:// or https://), empty: the
    server decides (its ``--artifacts-destination``, proxied, so clients need no S3
    credentials); else ABALONE_HOME/mlartifacts. The registry's database stays where the
    tracking URI says either way."""
    root = artifact_root_setting()
    if not root and tracking_uri().startswith(("http://", "https://")):
        return ""
    if root.startswith("s3://"):
        return f"{root.rstrip('/')}/mlartifacts"
    if root:
        return (Path(root).expanduser().resolve() / "mlartifacts").as_uri()
    return (abalone_home() / "mlartifacts").as_uri()
