"""Reading exactly the upstream version a run depends on, and refusing to bypass the gate.

Artifacts are addressed by the `uri` and `sha256` in their materialization's metadata. A step
takes its upstream's materialization from its own run when the run produced one (so two runs at
once never mix files), else the latest one recorded in the instance.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from abalone_platform.storage.artifacts import ArtifactRef

EVALUATION_REPORT = dg.AssetKey("evaluation_report")
GATE_CHECK = dg.AssetCheckKey(EVALUATION_REPORT, "mse_within_threshold")


@dataclass(frozen=True)
class Upstream:
    ref: ArtifactRef
    run_id: str
    metadata: dict[str, object]


def _value(entry: object) -> object:
    return getattr(entry, "value", entry)


StepContext = dg.AssetExecutionContext | dg.AssetCheckExecutionContext


def upstream(context: StepContext, key: str | dg.AssetKey) -> Upstream:
    asset_key = dg.AssetKey.from_coercible(key)
    instance = context.instance
    record = None
    same_run = instance.get_records_for_run(
        context.op_execution_context.run_id,
        of_type=dg.DagsterEventType.ASSET_MATERIALIZATION,
        ascending=False,
    ).records
    for candidate in same_run:
        if candidate.asset_key == asset_key:
            record = candidate
            break
    if record is None:
        latest = instance.fetch_materializations(asset_key, limit=1).records
        if not latest:
            raise dg.Failure(
                description=f"{asset_key.to_user_string()} has never been materialized; "
                "run the abalone_pipeline job first"
            )
        record = latest[0]
    materialization = record.asset_materialization
    metadata = {k: _value(v) for k, v in materialization.metadata.items()}
    if "uri" not in metadata or "sha256" not in metadata:
        raise dg.Failure(
            description=f"{asset_key.to_user_string()} materialization in run {record.run_id} "
            "records no artifact uri/sha256"
        )
    return Upstream(
        ref=ArtifactRef(uri=str(metadata["uri"]), sha256=str(metadata["sha256"])),
        run_id=record.run_id,
        metadata=metadata,
    )


def require_passed_gate(context: dg.AssetExecutionContext, asset_name: str) -> Upstream:
    """The evaluation this asset builds on, after checking that its gate passed.

    A blocking check skips downstream steps within its own run; this also stops a later run
    (e.g. `dagster asset materialize --select model_package`) from building on an evaluation
    whose check failed or never ran.
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
    return evaluation
