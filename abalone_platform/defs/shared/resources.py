"""The run's parameters, the artifact store and the model registry, each set in one place.

`PipelineParameters` is SageMaker's ParameterString / ParameterInteger / ParameterFloat set:
configured once per run under `resources.parameters.config` (UI launchpad, `dagster job execute
-c FILE`, a sensor's RunRequest), never repeated per asset.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field, PrivateAttr, field_validator

from abalone_platform.compute.cluster import SCHEDULER_VARIABLE, StepCluster
from abalone_platform.defs.shared.progress import BYTES, ProgressReporter
from abalone_platform.errors import BATCH_PARAMETER, InputDataError
from abalone_platform.ml.instance_types import InstanceTypeError, instance_vcpus
from abalone_platform.registry import (
    MODEL_PACKAGE_GROUP,
    ModelApprovalStatus,
    Registry,
    open_registry,
)
from abalone_platform.sagemaker import parameter_extra, parameter_name, sagemaker_parameter
from abalone_platform.settings import (
    abalone_home,
    artifact_root_setting,
    mlflow_artifact_root,
    tracking_uri,
)
from abalone_platform.step_cache import parse_expire_after
from abalone_platform.storage.artifacts import ArtifactRef, LocalArtifactStore, S3ArtifactStore
from abalone_platform.storage.inputs import (
    UCI_ABALONE_URL,
    ResolvedInput,
    local_input_path,
    named_by_uri,
    resolve_input,
)
from abalone_platform.storage.s3 import S3Files, is_s3_uri, parse_s3_uri

# dagster-aws' S3Resource, same fields, without importing dagster-aws at load (see the module).
from abalone_platform.storage.s3_resource import S3Resource

# Loading the code location (every code server, sensor tick process and `dg check defs`) reads
# this module; pandas, Arrow and the ML modules are imported by the methods that use them.
if TYPE_CHECKING:
    import pandas as pd

    from abalone_platform.compute.ranges import RangeSource

DEFAULT_SEED = 42


class PipelineParameters(dg.ConfigurableResource):
    """The six SageMaker pipeline parameters (plus a seed), set once per run."""

    processing_instance_count: int = Field(
        default=1,
        json_schema_extra=sagemaker_parameter("ProcessingInstanceCount", "Integer"),
        description="ProcessingInstanceCount (Integer, default 1): Dask workers for "
        "processing's parse/validate and the batch transform (1: in this process, no Dask).",
    )
    training_instance_type: str = Field(
        default="ml.m5.xlarge",
        json_schema_extra=sagemaker_parameter("TrainingInstanceType", "String"),
        description="TrainingInstanceType (String, default ml.m5.xlarge): its vCPU count caps "
        "XGBoost's threads; GPU families (ml.p*, ml.g*) train on CUDA.",
    )
    model_approval_status: ModelApprovalStatus = Field(
        default=ModelApprovalStatus.PendingManualApproval,
        json_schema_extra=sagemaker_parameter("ModelApprovalStatus", "String"),
        description="ModelApprovalStatus (String, default PendingManualApproval): the status the "
        "registered model package version gets: PendingManualApproval, Approved or Rejected.",
    )
    input_data: str = Field(
        default="",
        json_schema_extra=sagemaker_parameter("InputData", "String"),
        description="InputData (String): the abalone CSV to train on; a path, file://, https:// "
        "or s3:// URI. Empty: $ABALONE_INPUT_DATA, else the UCI file (downloaded once).",
    )
    batch_data: str = Field(
        default="",
        json_schema_extra=sagemaker_parameter("BatchData", "String"),
        description="BatchData (String): headerless CSV of the 8 raw feature columns (a 9th, "
        "rings, is ignored) for the batch transform; a path, file://, https:// or s3:// URI. "
        "Empty: $ABALONE_BATCH_DATA, else the input data itself.",
    )
    mse_threshold: float = Field(
        default=6.0,
        json_schema_extra=sagemaker_parameter("MseThreshold", "Float"),
        description="MseThreshold (Float, default 6.0): the gate passes when the test MSE is at "
        "most this; otherwise the run fails with 'Execution failed due to MSE > {MseThreshold}'.",
    )
    model_package_version: int = Field(
        default=0,
        description="Registered model package version whose bundle batch_predictions uses "
        "(must be Approved). 0 (default): the deployable_model of this run, else the latest one. "
        "Set by new_batch_data_sensor to the current Approved version.",
    )
    seed: int = Field(
        default=DEFAULT_SEED,
        description="Seed for the split's shuffle and XGBoost's subsampling (the reference has "
        "none, so its results drift between runs).",
    )
    # AbaloneTuning's budget. No SageMaker counterpart (the reference has no tuning step), so,
    # like seed, no json_schema_extra: the SageMaker definition's parameters stay the six.
    tuning_trials: int = Field(
        default=0,
        description="Optuna trials for tuned_hyperparameters (AbaloneTuning). 0 (default): no "
        "search, the reference's hyperparameters, the same model as without the step.",
    )
    tuning_timeout_s: float = Field(
        default=600.0,
        description="Seconds after which tuned_hyperparameters starts no new trial (and stops "
        "the running one's boosting); the best trial so far is used. A study cut short this way "
        "is no longer reproducible: the trial count is the budget that is.",
    )

    # SageMaker's CacheConfig (Enabled, ExpireAfter), one setting for the run's cached steps:
    # abalone_process, tuned_hyperparameters, trained_model, evaluation_report and
    # batch_predictions. The gate check and model_package always run.
    enable_caching: bool = Field(
        default=True,
        description="Reuse an earlier materialization of a step when the sha256 of each of its "
        "inputs, the parameters that affect it and its code version are the same (the artifacts' "
        "sha256 verified first; a hit records cache_hit_of). false: compute every step.",
    )
    cache_expire_after: str = Field(
        default="",
        description="ISO 8601 duration (SageMaker's ExpireAfter), e.g. P30D or PT12H: an entry "
        "computed longer ago than this is computed again. Empty (default): never expire.",
    )

    @field_validator("cache_expire_after")
    @classmethod
    def _iso_duration(cls, value: str) -> str:
        parse_expire_after(value)  # raises ValueError naming the parameter
        return value

    @field_validator("processing_instance_count")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError(
                f"processing_instance_count (ProcessingInstanceCount) must be at least 1, "
                f"got {value}"
            )
        return value

    @field_validator("model_package_version")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"model_package_version must be 0 (latest) or a version, got {value}")
        return value

    @field_validator("tuning_trials")
    @classmethod
    def _trials_not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(
                f"tuning_trials must be 0 (the reference's hyperparameters) or more, got {value}"
            )
        return value

    @field_validator("tuning_timeout_s")
    @classmethod
    def _timeout_positive(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"tuning_timeout_s must be a number of seconds > 0, got {value}")
        return value

    @field_validator("training_instance_type")
    @classmethod
    def _known_instance_type(cls, value: str) -> str:
        try:
            instance_vcpus(value)
        except InstanceTypeError as exc:
            raise ValueError(str(exc)) from exc
        return value

    # Empty data parameters resolve from the environment when the run starts, not when the code
    # loads: a run config that sets any parameter replaces every load-time value.
    @property
    def effective_input_data(self) -> str:
        return self.input_data or os.environ.get("ABALONE_INPUT_DATA") or UCI_ABALONE_URL

    @property
    def effective_batch_data(self) -> str:
        return self.batch_data or os.environ.get("ABALONE_BATCH_DATA") or self.effective_input_data

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Check BatchData's shape when a run that transforms it starts, before any step runs:
        a batch file that cannot be read, or has the wrong number of columns, would otherwise
        fail only after training (and after a version was registered)."""
        if not (self.batch_data or os.environ.get("ABALONE_BATCH_DATA")):
            return  # BatchData is InputData itself, which processing checks first
        run = context.run
        if run is None or (
            run.asset_selection is not None and BATCH_PREDICTIONS not in run.asset_selection
        ):
            return
        check_batch_data_shape(self.effective_batch_data)

    def effective_value(self, field_name: str) -> object:
        """A parameter's value as a run uses it: empty data parameters resolved (see
        effective_input_data), enums as their value."""
        value = getattr(self, f"effective_{field_name}", getattr(self, field_name))
        return getattr(value, "value", value)

    def as_sagemaker_parameters(self) -> dict[str, object]:
        """The values of the fields with a SageMaker counterpart (their json_schema_extra), by
        SageMaker name, plus the seed (as "Seed"), which the reference has not."""
        fields = type(self).model_fields
        values = {
            parameter_name(name, info.json_schema_extra): self.effective_value(name)
            for name, info in fields.items()
            if parameter_extra(info.json_schema_extra)
        }
        values[parameter_name("seed", fields["seed"].json_schema_extra)] = self.seed
        return values


BATCH_PREDICTIONS = dg.AssetKey("batch_predictions")


def check_batch_data_shape(uri: str) -> None:
    """BatchData exists, is a readable regular file of CSV text, and its first row has the 8
    feature columns (or 9, rings last); raises InputDataError naming the parameter, the file
    and the line. Remote files are fetched into the same cache batch_predictions reads from.
    Values further down are checked by batch_predictions as it streams the file."""
    from abalone_platform.ml.data import count_columns

    path = local_input_path(uri) if uri else None
    if path is None:
        # Remote: fetched once into the cache, where batch_predictions finds it again.
        store = ArtifactStore(root=str(abalone_home()), artifact_root=artifact_root_setting())
        path = store.resolve_input(uri, BATCH_PARAMETER, env_hint="ABALONE_BATCH_DATA").path
    try:
        # A local file is only looked at (stat, first line): hashing a large batch file here
        # would be a second full read, on top of the transform's own.
        count_columns(path, BATCH_PARAMETER)
    except InputDataError as exc:
        raise named_by_uri(exc, uri) from exc


# The steps that draw figures for the UI (ml/plots.py).
FIGURE_ASSETS = frozenset(
    dg.AssetKey(name) for name in ("tuned_hyperparameters", "trained_model", "evaluation_report")
)


def draws_figures(run: dg.DagsterRun | None) -> bool:
    """Whether ``run`` (None: not a run, e.g. a sensor's resources) materializes a step that
    draws figures."""
    if run is None:
        return False
    return run.asset_selection is None or not FIGURE_ASSETS.isdisjoint(run.asset_selection)


def _transfer_progress(what: str, total_bytes: int | None) -> ProgressReporter:
    """Progress lines for a large S3 upload or download. There is no step context here:
    get_dagster_logger()'s lines go to the running step's log (from boto3's threads too);
    a transfer that ends within one interval writes nothing."""
    return ProgressReporter(
        dg.get_dagster_logger(), what, unit=BYTES, total=total_bytes, quiet_when_fast=True
    )


class ArtifactStore(dg.ConfigurableResource):
    """Immutable per-run artifacts (a local directory or an S3 prefix) and the local download
    cache for inputs and S3 artifacts."""

    root: str = Field(
        description="Local directory holding cache/ and, by default, artifacts/ (ABALONE_HOME)."
    )
    artifact_root: str = Field(
        default="",
        description="Where artifacts are written: a directory or s3://bucket/prefix "
        "(ABALONE_ARTIFACT_ROOT); empty: <root>/artifacts.",
    )
    # The S3 client comes from dagster-aws; endpoint and credentials from boto3's standard chain
    # (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_PROFILE...), never from Dagster config, so no
    # secret can end up in run config or the event log.
    s3: S3Resource = Field(default_factory=S3Resource, description="S3 access (dagster-aws).")
    # Built on first use and kept: a step reads and writes several artifacts, and each new S3
    # store would otherwise create its own boto3 client.
    _store: LocalArtifactStore | S3ArtifactStore | None = PrivateAttr(default=None)

    @field_validator("s3", mode="wrap")
    @classmethod
    def _any_s3_resource(cls, value: object, handler: Callable[[object], object]) -> object:
        # dagster-aws' own S3Resource (or any resource with get_client()) is kept as given.
        if not isinstance(value, S3Resource) and callable(getattr(value, "get_client", None)):
            return value
        return handler(value)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A run whose steps draw figures starts the figure renderer now, as the run starts:
        # matplotlib is then imported by another process while the first steps compute, not by
        # the step that draws first (see ml/plots.py; the figures are the same bytes).
        if draws_figures(context.run):
            from abalone_platform.ml.plots import start_renderer

            start_renderer()

    def s3_files(self) -> S3Files:
        return S3Files(self.s3.get_client(), transfer_progress=_transfer_progress)

    @property
    def store(self) -> LocalArtifactStore | S3ArtifactStore:
        if self._store is None:
            if is_s3_uri(self.artifact_root):
                self._store = S3ArtifactStore(
                    self.artifact_root, self.s3_files(), self.cache_dir / "s3"
                )
            else:
                self._store = LocalArtifactStore(
                    Path(self.artifact_root or Path(self.root) / "artifacts")
                )
        return self._store

    @property
    def cache_dir(self) -> Path:
        return Path(self.root) / "cache"

    def write_parquet(self, asset: str, run_id: str, name: str, frame: pd.DataFrame) -> ArtifactRef:
        """A split (or any table) as a Parquet artifact of ``asset`` in run ``run_id``."""
        sink = io.BytesIO()
        frame.to_parquet(sink, index=False)
        return self.store.write_bytes(asset, run_id, name, sink.getvalue())

    def read_parquet(self, ref: ArtifactRef) -> pd.DataFrame:
        """A Parquet artifact, read only after its bytes match the recorded sha256."""
        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.store.read_bytes(ref)))

    def resolve_input(self, uri: str, parameter: str, env_hint: str) -> ResolvedInput:
        return resolve_input(
            uri,
            parameter,
            self.cache_dir,
            env_hint=env_hint,
            s3_download=lambda s3_uri, cache: self.s3_files().download_input(
                s3_uri, cache, parameter
            ),
        )


# The model registry (SageMaker's model package group): a thin configuration of
# abalone_platform.registry, which owns the registry's rules (statuses, lookup, the alias,
# locking, registration) for the pipeline and the CLI alike. Default backend: SQLite under
# ABALONE_HOME with artifacts beside it; MLFLOW_TRACKING_URI points it at a tracking server.
# mlflow is imported only when the registry is used (its import costs seconds).
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

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # MLflow's artifact progress bars (tqdm, on stderr) would land in the run's console and
        # captured logs, one redrawn line per file (model_package saves and logs the model's
        # files); an explicit setting in the environment is kept.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    def open(self) -> Registry:
        """The registry (an embedded SQLite database is created or checked first)."""
        return open_registry(self.tracking_uri, self.model_name)


class DaskCluster(dg.ConfigurableResource):
    """Where ProcessingInstanceCount > 1 runs the data work (parse/validate, batch transform):
    Dask tasks on an existing cluster, or on a LocalCluster of that many worker processes
    started for the step and closed after it. A count of 1 never imports Dask."""

    scheduler_address: str = Field(
        default="",
        description="An existing Dask scheduler (tcp://host:8786); empty: $"
        f"{SCHEDULER_VARIABLE} (the variable Dask itself reads), else a LocalCluster per step.",
    )

    @contextmanager
    def open(self, workers: int) -> Iterator[StepCluster]:
        """The step's cluster; ClusterError (naming the variable and address) when an existing
        one cannot be reached, before any work."""
        from abalone_platform.compute.cluster import open_cluster

        with open_cluster(workers, self.scheduler_address) as cluster:
            yield cluster

    @staticmethod
    def range_source(
        cluster: StepCluster, source: ResolvedInput, artifacts: ArtifactStore
    ) -> RangeSource:
        """What the workers read: this machine's file for a LocalCluster (an S3 input's cached
        copy included); for an existing cluster the S3 object itself, pinned to the ETag of
        the copy the step hashed, or the path, which its workers must see."""
        from abalone_platform.compute.ranges import RangeSource

        if cluster.local or not is_s3_uri(source.uri):
            return RangeSource(path=str(source.path))
        location = parse_s3_uri(source.uri)
        head = artifacts.s3_files().client.head_object(Bucket=location.bucket, Key=location.key)
        return RangeSource(path=str(source.path), s3_uri=source.uri, etag=str(head["ETag"]))


def ran_on_metadata(cluster: StepCluster, tasks_per_worker: dict[str, int]) -> dict[str, object]:
    """Where a step's Dask tasks ran, for its materialization metadata."""
    return {
        "compute": "Dask LocalCluster" if cluster.local else f"Dask scheduler {cluster.kind}",
        "dask_workers": len(cluster.workers),
        "dask_tasks_per_worker": dg.MetadataValue.json(dict(sorted(tasks_per_worker.items()))),
    }


def describe_run_on(ran_on: dict[str, object]) -> str:
    """One line for the run log: where the tasks ran, and how many each worker did."""
    tasks = ran_on["dask_tasks_per_worker"].data
    return (
        f"{ran_on['compute']} ({ran_on['dask_workers']} workers; tasks per worker: "
        + ", ".join(f"{worker} {n}" for worker, n in tasks.items())
        + ")"
    )


def default_registry() -> ModelRegistry:
    return ModelRegistry(tracking_uri=tracking_uri(), artifact_root=mlflow_artifact_root())


@dg.definitions
def defs() -> dg.Definitions:
    """The resources every asset, check and sensor uses, built from the environment at each
    load of the code location (a function, not module-level objects, for that reason)."""
    # Endpoint, region and credentials stay with boto3's standard chain (AWS_ENDPOINT_URL,
    # AWS_PROFILE, ...): nothing secret in Dagster config, and AWS / MinIO / moto alike.
    s3 = S3Resource()
    return dg.Definitions(
        resources={
            "parameters": PipelineParameters(),
            "s3": s3,
            "artifacts": ArtifactStore(
                root=str(abalone_home()), artifact_root=artifact_root_setting(), s3=s3
            ),
            "registry": default_registry(),
            "dask": DaskCluster(),
        }
    )
