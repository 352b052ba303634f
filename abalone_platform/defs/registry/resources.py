"""The model registry (SageMaker's model package group) on MLflow.

Default backend: SQLite under ABALONE_HOME with artifacts beside it; MLFLOW_TRACKING_URI points
it at a tracking server instead. mlflow is imported only when the registry is used, since its
import alone costs seconds.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from abalone_platform.faults import fault_point
from abalone_platform.registry import (
    APPROVAL_TAG,
    COMPLETE,
    INCOMPLETE,
    MODEL_PACKAGE_GROUP,
    REGISTRATION_TAG,
    Registry,
    open_registry,
    registry_lock,
    sync_approved_alias,
)
from abalone_platform.settings import abalone_home, artifact_root_setting, tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT_NAME = "abalone_platform"


class ModelRegistry(dg.ConfigurableResource):
    """An MLflow model registry holding the model package group's versions."""

    tracking_uri: str = Field(
        description="MLflow tracking/registry URI (MLFLOW_TRACKING_URI, else SQLite under "
        "ABALONE_HOME)."
    )
    artifact_root: str = Field(
        description="Where MLflow stores a new experiment's artifacts (ABALONE_HOME/mlartifacts)."
    )
    model_name: str = Field(
        default=MODEL_PACKAGE_GROUP, description="Registered model (model package group) name."
    )

    def open(self) -> Registry:
        """The registry (an embedded SQLite database is created or checked first)."""
        return open_registry(self.tracking_uri)

    def client(self) -> MlflowClient:
        return self.open().client

    def _experiment_id(self, client: MlflowClient) -> str:
        from mlflow.exceptions import MlflowException

        experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(EXPERIMENT_NAME, artifact_location=self.artifact_root)
        except MlflowException:
            # Another run created it between our lookup and our create.
            return client.get_experiment_by_name(EXPERIMENT_NAME).experiment_id

    def register(
        self,
        *,
        bundle_dir: Path,
        approval_status: str,
        metrics: dict[str, float],
        params: dict[str, object],
        tags: dict[str, str],
    ) -> tuple[str, str]:
        """Log the bundle under a new MLflow run and register it as a new version.

        Returns (version, source URI). The version's tags carry the approval status and `tags`.
        It is created tagged registration=incomplete and marked complete only once its run is
        finished, so a run stopped in between leaves a version that says so (and that nothing
        approves, aliases or serves) instead of one that looks whole.
        """
        from mlflow.exceptions import MlflowException

        registry = self.open()
        client = registry.client
        with registry_lock(registry):
            run = client.create_run(self._experiment_id(client), tags=tags)
            run_id = run.info.run_id
            version = None
            try:
                for key, value in params.items():
                    client.log_param(run_id, key, value)
                for key, value in metrics.items():
                    client.log_metric(run_id, key, value)
                fault_point("registry.log_artifacts")
                client.log_artifacts(run_id, str(bundle_dir), "model")
                try:
                    client.create_registered_model(
                        self.model_name,
                        description="Abalone rings regressor (SageMaker model package group).",
                    )
                except MlflowException as exc:
                    if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                        raise
                source = f"{run.info.artifact_uri}/model"
                version = client.create_model_version(
                    self.model_name,
                    source=source,
                    run_id=run_id,
                    tags={APPROVAL_TAG: approval_status, REGISTRATION_TAG: INCOMPLETE, **tags},
                    description=f"Registered by abalone_platform with status {approval_status}.",
                )
                fault_point("registry.version_created")
                client.set_terminated(run_id)
                client.set_model_version_tag(
                    self.model_name, str(version.version), REGISTRATION_TAG, COMPLETE
                )
            except BaseException:
                # Stopped (SIGTERM, SIGINT) or failed part-way: take back what was registered,
                # so nothing half-registered stays. Best effort: the failure being raised is
                # what matters (on a full disk these writes may fail too); a version that
                # cannot be removed stays tagged registration=incomplete.
                if version is not None:
                    with contextlib.suppress(Exception):
                        client.delete_model_version(self.model_name, str(version.version))
                with contextlib.suppress(Exception):
                    client.set_terminated(run_id, status="FAILED")
                raise
            # A version registered as Approved is the newest Approved one: the `approved` alias
            # that batch inference follows moves to it now, not at the next CLI call.
            sync_approved_alias(registry, locked=True)
            return str(version.version), source


def default_artifact_root() -> str:
    """MLflow's artifacts: ``<ABALONE_ARTIFACT_ROOT>/mlartifacts`` when that is set (an s3://
    root reaches S3 through boto3's standard settings, AWS_ENDPOINT_URL included), else
    ABALONE_HOME/mlartifacts. The registry's database stays local SQLite either way."""
    root = artifact_root_setting()
    if root.startswith("s3://"):
        return f"{root.rstrip('/')}/mlartifacts"
    if root:
        return (Path(root).expanduser().resolve() / "mlartifacts").as_uri()
    return (abalone_home() / "mlartifacts").as_uri()


def default_registry() -> ModelRegistry:
    return ModelRegistry(
        tracking_uri=tracking_uri(),
        artifact_root=default_artifact_root(),
    )
