"""Reading exactly the upstream versions a step's inputs were made from, and holding the gate.

Artifacts are addressed by the `uri` and `sha256` in their materialization's metadata. Each step
has one *root* input, taken from its own run when the run produced one (so two runs at once
never mix files), else the latest one recorded in the instance. Every other input is the one its
root was made from, found through the chain that each materialization records under
``upstream`` ({asset: {run_id, sha256, uri}}): the bundle takes the preprocessor of the
processing run the model was trained on, evaluation the test split of that same run, and so on.
A step whose inputs do not belong together refuses, naming the runs. Lineage follows the same
chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg

from abalone_platform.sagemaker import gate_failure_message
from abalone_platform.storage.artifacts import SHA256_KEY, UPSTREAM_KEY, ArtifactRef, plain_metadata

EVALUATION_REPORT = dg.AssetKey("evaluation_report")
GATE_CHECK = dg.AssetCheckKey(EVALUATION_REPORT, "mse_within_threshold")


@dataclass(frozen=True)
class Upstream:
    key: dg.AssetKey
    ref: ArtifactRef
    run_id: str
    metadata: dict[str, Any]

    @property
    def name(self) -> str:
        return self.key.to_user_string()

    @property
    def chain(self) -> dict[str, dict[str, str]]:
        """What this materialization was made from: {asset: {run_id, sha256, uri}}."""
        chain = self.metadata.get(UPSTREAM_KEY)
        return chain if isinstance(chain, dict) else {}

    def describe(self) -> str:
        return f"{self.name} of run {self.run_id} (sha256 {self.ref.sha256[:12]})"


StepContext = dg.AssetExecutionContext | dg.AssetCheckExecutionContext


def _from_record(asset_key: dg.AssetKey, record: dg.EventLogRecord) -> Upstream:
    materialization = record.asset_materialization
    metadata = plain_metadata(materialization.metadata)
    ref = ArtifactRef.from_metadata(metadata)
    if ref is None:
        raise dg.Failure(
            description=f"{asset_key.to_user_string()} materialization in run {record.run_id} "
            "records no artifact uri/sha256"
        )
    return Upstream(
        key=asset_key,
        ref=ref,
        run_id=record.run_id,
        metadata=metadata,
    )


def record_in_run(
    instance: dg.DagsterInstance, run_id: str, asset_key: dg.AssetKey
) -> dg.EventLogRecord | None:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, ascending=False
    ).records
    return next((r for r in records if r.asset_key == asset_key), None)


def upstream(context: StepContext, key: str | dg.AssetKey) -> Upstream:
    """A step's root input: this run's materialization of ``key``, else the latest one."""
    asset_key = dg.AssetKey.from_coercible(key)
    instance = context.instance
    record = record_in_run(instance, context.op_execution_context.run_id, asset_key)
    if record is None:
        latest = instance.fetch_materializations(asset_key, limit=1).records
        if not latest:
            raise dg.Failure(
                description=f"{asset_key.to_user_string()} has never been materialized; "
                "run the abalone_pipeline job first"
            )
        record = latest[0]
    return _from_record(asset_key, record)


def upstream_in_run(
    context: StepContext,
    key: str | dg.AssetKey,
    run_id: str,
    *,
    needed_by: str,
    sha256: str | None = None,
) -> Upstream:
    """The materialization of ``key`` that run ``run_id`` made (and whose sha256 is ``sha256``,
    when given); refuses when that run made none."""
    asset_key = dg.AssetKey.from_coercible(key)
    record = record_in_run(context.instance, run_id, asset_key)
    if record is None:
        raise dg.Failure(
            description=f"Refusing to build {needed_by}: it needs the "
            f"{asset_key.to_user_string()} made by run {run_id}, and that run recorded none"
        )
    found = _from_record(asset_key, record)
    if sha256 is not None and found.ref.sha256 != sha256:
        raise dg.Failure(
            description=f"Refusing to build {needed_by}: {found.describe()} is not the recorded "
            f"version (sha256 {sha256[:12]})"
        )
    return found


def linked_upstream(
    context: StepContext, consumer: Upstream, key: str, *, needed_by: str
) -> Upstream:
    """The materialization of ``key`` that ``consumer`` records it was made from (that run's,
    with that sha256); refuses when it records none."""
    link = consumer.chain.get(key)
    if not link:
        raise dg.Failure(
            description=f"Refusing to build {needed_by}: {consumer.describe()} records no {key} "
            "it was made from; run the abalone_pipeline job to rebuild it"
        )
    return upstream_in_run(
        context, key, link["run_id"], needed_by=needed_by, sha256=link[SHA256_KEY]
    )


def processing_run_of(model: Upstream, *, needed_by: str) -> str:
    """The AbaloneProcess run whose train split ``model`` (a trained_model) was trained on."""
    link = model.chain.get("train_split")
    if not link:
        raise dg.Failure(
            description=f"Refusing to build {needed_by}: {model.describe()} records no "
            "train_split it was trained on; run the abalone_pipeline job to rebuild it"
        )
    return link["run_id"]


def require_made_from(consumer: Upstream, source: Upstream, *, needed_by: str, hint: str) -> None:
    """Refuse unless ``consumer`` was made from exactly ``source``."""
    link = consumer.chain.get(source.name, {})
    if link.get("run_id") == source.run_id and link.get(SHA256_KEY) == source.ref.sha256:
        return
    made = f"run {link['run_id']}" if link else "no recorded version"
    raise dg.Failure(
        description=f"Refusing to build {needed_by}: {consumer.describe()} was made from the "
        f"{source.name} of {made}, not from {source.describe()}; {hint}"
    )


def bundle_of(context: StepContext, evaluation: Upstream, needed_by: str) -> Upstream:
    """The deployable_model (this run's, else the latest) built from exactly ``evaluation``."""
    bundle = upstream(context, "deployable_model")
    require_made_from(
        bundle,
        evaluation,
        needed_by=needed_by,
        hint="materialize deployable_model first (or run the abalone_pipeline job)",
    )
    return bundle


def chain_metadata(*inputs: Upstream) -> dict[str, dg.MetadataValue]:
    """The ``upstream`` metadata entry: each input's run, sha256 and uri."""
    return {
        UPSTREAM_KEY: dg.MetadataValue.json(
            {up.name: {"run_id": up.run_id, **up.ref.as_metadata()} for up in inputs}
        )
    }


def hold_to_threshold(asset_name: str, mse: float, threshold: float, source: str) -> None:
    """The gate at this run's MseThreshold: refuse with the reference's message above it."""
    if mse > threshold:
        raise dg.Failure(
            description=f"Refusing to build {asset_name}: {gate_failure_message(threshold)} "
            f"({source} has MSE {mse:.4f}; this run's MseThreshold is {threshold})",
            metadata={"mse": mse, "mse_threshold": threshold},
        )


def require_passed_gate(context: StepContext, asset_name: str, threshold: float) -> Upstream:
    """The evaluation a gated asset builds on: its own gate must have passed, and it must pass
    this run's ``threshold`` too.

    A blocking check skips downstream steps within its own run; this also stops a later run
    (e.g. `dagster asset materialize --select model_package`) from building on an evaluation
    whose check failed or never ran, or that passed only a looser threshold than this run's.
    """
    evaluation = upstream(context, EVALUATION_REPORT)
    history = context.instance.event_log_storage.get_asset_check_execution_history(
        GATE_CHECK, limit=100
    )
    record = next((r for r in history if r.run_id == evaluation.run_id), None)
    outcome = None
    if record is not None and record.event is not None:
        outcome = record.event.dagster_event.asset_check_evaluation_data
    if outcome is None or not outcome.passed:
        if outcome is None:
            why = "its mse_within_threshold check never completed"
        else:
            why = outcome.description or "its mse_within_threshold check did not pass"
        raise dg.Failure(
            description=f"Refusing to build {asset_name}: the latest evaluation_report "
            f"(run {evaluation.run_id}, MSE {evaluation.metadata.get('mse')}) did not pass the "
            f"gate: {why}. Run the abalone_pipeline job to produce an evaluation that passes."
        )
    hold_to_threshold(
        asset_name,
        float(evaluation.metadata["mse"]),
        threshold,
        f"the evaluation_report of run {evaluation.run_id}",
    )
    return evaluation
