"""Execution records (SageMaker's describe() / list_steps()), read from the Dagster instance.

Nothing is copied: run status and times come from the run storage, per-step times and attempts
from Dagster's step stats, the gate's outcome from its asset check evaluation, and failure
reasons from the step failure events.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg

from abalone_platform.errors import ExecutionError
from abalone_platform.instance import process_alive
from abalone_platform.records.steps import pipeline_steps
from abalone_platform.step_cache import CACHE_HIT_OF
from abalone_platform.storage.artifacts import plain_metadata


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat(timespec="seconds")


def run_parameters(defs: dg.Definitions, run: dg.DagsterRun, recorded: dict[str, Any]) -> dict:
    """The run's parameters: its run config over the defaults, by SageMaker name where there is
    one. Empty data parameters show the file the run actually resolved and read."""
    from abalone_platform.records.definition import parameter_definitions

    config = (run.run_config or {}).get("resources", {}).get("parameters", {}).get("config", {})
    values: dict[str, Any] = {}
    for param in parameter_definitions(defs):
        value = config.get(param["field"], param["default"])
        if value in ("", None) and param["field"] in recorded:
            value = recorded[param["field"]]
        values[param["name"]] = value
    return values


def _resolve_run(instance: dg.DagsterInstance, run_id: str) -> dg.RunRecord:
    text = run_id.strip()
    record = instance.get_run_record_by_id(text) if len(text) == 36 else None
    if record is not None:
        return record
    matches = [r for r in instance.get_run_records() if r.dagster_run.run_id.startswith(text)]
    if len(matches) == 1 and text:
        return matches[0]
    if not matches or not text:
        raise ExecutionError(
            f"no run {run_id!r} in the Dagster instance at {instance.root_directory} "
            "(`abalone-platform executions list` shows the runs it holds)"
        )
    raise ExecutionError(
        f"run id prefix {run_id!r} is ambiguous: "
        + ", ".join(r.dagster_run.run_id for r in matches[:5])
    )


def _failure_reason(data: Any) -> str:
    user = getattr(data, "user_failure_data", None)
    if user is not None and user.description:
        return user.description
    error = getattr(data, "error", None)
    if error is None:
        return "failed"
    message = error.message.strip()
    # dg.Failure's message is "dagster._core.definitions.events.Failure: <description>".
    return message.split("Failure: ", 1)[1] if "events.Failure: " in message else message


def _events(instance: dg.DagsterInstance, run_id: str) -> list[dg.EventLogEntry]:
    return [e for e in instance.all_logs(run_id) if e.is_dagster_event]


def _recorded_inputs(events: list[dg.EventLogEntry]) -> dict[str, Any]:
    recorded: dict[str, Any] = {}
    for entry in events:
        if entry.dagster_event.event_type != dg.DagsterEventType.ASSET_MATERIALIZATION:
            continue
        metadata = entry.asset_materialization.metadata
        for field in ("input_data", "batch_data"):
            if field in metadata:
                recorded.setdefault(field, getattr(metadata[field], "value", metadata[field]))
    return recorded


def _gate(events: list[dg.EventLogEntry]) -> dict[str, Any] | None:
    for entry in events:
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            data = event.event_specific_data
            metadata = plain_metadata(data.metadata)
            return {
                "check": data.check_name,
                "passed": data.passed,
                "outcome": "True" if data.passed else "False",
                "mse": metadata.get("mse"),
                "threshold": metadata.get("mse_threshold"),
                "condition": metadata.get("condition"),
                "description": data.description,
            }
    return None


def _run_failure(events: list[dg.EventLogEntry]) -> str | None:
    """The run's own failure message, for a run that failed outside any step (killed)."""
    for entry in reversed(events):
        if entry.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE:
            return entry.dagster_event.message or entry.user_message or None
    return None


def _run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_START, limit=1
    ).records
    event = records[0].event_log_entry.dagster_event if records else None
    return event.pid if event is not None else None


def mark_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs that are STARTED but whose process is gone (kill -9, a crash).

    Only for an instance on local SQLite storage, whose runs all ran on this machine: there a
    run's pid means something. A shared instance (Postgres) relies on Dagster's run monitoring
    in the daemon instead. Returns the run ids marked.
    """
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

    if not isinstance(instance.run_storage, SqliteRunStorage):
        return []
    marked = []
    started = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    for run in instance.get_runs(filters=started):
        pid = _run_pid(instance, run.run_id)
        if pid is None or process_alive(pid):
            continue
        instance.report_run_failed(
            run,
            message=f"The run's process (pid {pid}) is gone: it was killed (e.g. kill -9) or "
            "its machine stopped. Marked failed by abalone-platform; nothing it left unfinished "
            "is used by later runs.",
        )
        marked.append(run.run_id)
    return marked


def _summary(defs: dg.Definitions, record: dg.RunRecord, events=None) -> dict[str, Any]:
    run = record.dagster_run
    summary = {
        "run_id": run.run_id,
        "job": run.job_name,
        "status": run.status.value,
        "start": _iso(record.start_time),
        "end": _iso(record.end_time),
        "duration_s": round(record.end_time - record.start_time, 3)
        if record.start_time and record.end_time
        else None,
    }
    if events is not None:
        summary["parameters"] = run_parameters(defs, run, _recorded_inputs(events))
    return summary


def list_executions(
    instance: dg.DagsterInstance, defs: dg.Definitions, limit: int | None = None
) -> list[dict]:
    """Every run, newest first (as list_pipeline_executions), with its parameters."""
    mark_dead_runs(instance)
    records = instance.get_run_records(limit=limit)
    result = []
    for record in records:
        events = _events(instance, record.dagster_run.run_id)
        summary = _summary(defs, record, events)
        failures = [
            _failure_reason(e.dagster_event.event_specific_data)
            for e in events
            if e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE
        ]
        summary["failure_reason"] = failures[0] if failures else _run_failure(events)
        result.append(summary)
    return result


def describe_execution(
    instance: dg.DagsterInstance, defs: dg.Definitions, run_id: str
) -> dict[str, Any]:
    """One run: status, times, parameters, and each step as list_steps() shows it."""
    mark_dead_runs(instance)
    record = _resolve_run(instance, run_id)
    run = record.dagster_run
    events = _events(instance, run.run_id)
    summary = _summary(defs, record, events)
    stats = {s.step_key: s for s in instance.get_run_step_stats(run.run_id)}
    failures: dict[str, str] = {}
    # SageMaker's CacheHitResult: the run whose outputs a cached step reused.
    cache_hits: dict[str, str] = {}
    for entry in events:
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            failures[entry.step_key] = _failure_reason(event.event_specific_data)
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            hit_of = event.step_materialization_data.materialization.metadata.get(CACHE_HIT_OF)
            if hit_of is not None:
                cache_hits[entry.step_key] = str(getattr(hit_of, "value", hit_of))
    planned: list[str] | None = None
    if run.execution_plan_snapshot_id:
        plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        planned = list(plan.step_keys_to_execute)
    gate = _gate(events)
    by_name = {s.name: s for s in pipeline_steps(defs)}
    steps = []
    for key in planned if planned is not None else list(stats):
        stat = stats.get(key)
        definition = by_name.get(key)
        step = {
            "name": key,
            "sagemaker_step": definition.sagemaker_name if definition else None,
            "sagemaker_type": definition.sagemaker_type if definition else None,
            "status": stat.status.value if stat and stat.status else "NOT_STARTED",
            "start": _iso(stat.start_time) if stat else None,
            "end": _iso(stat.end_time) if stat else None,
            "attempt_count": stat.attempts if stat else 0,
        }
        if key in failures:
            step["failure_reason"] = failures[key]
        if key in cache_hits:
            step["cache_hit_of"] = cache_hits[key]
        if definition is not None and definition.checks and gate is not None:
            step["gate"] = gate
        steps.append(step)
    return {
        **summary,
        "failure_reason": next(iter(failures.values()), None) or _run_failure(events),
        "gate": gate,
        "tags": dict(run.tags),
        "steps": steps,
    }
