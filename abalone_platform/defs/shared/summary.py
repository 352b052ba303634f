"""The lines a person reads at the end of `make run` / `dagster job execute`.

The console shows INFO and above (jobs.py), and Dagster's step events are DEBUG, so what a run
did is said by the steps themselves: the gate logs its outcome in one line (a failed gate: the
reason, before Dagster's failure event and its stack trace), and model_package, the run's last
step, logs the summary: MSE against the threshold, the version registered and its status, where
the predictions are, and the run id.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from abalone_platform.storage.artifacts import URI_KEY, plain_metadata

BATCH_PREDICTIONS = dg.AssetKey("batch_predictions")
ROW_COUNT_KEY = "dagster/row_count"


def gate_line(mse: float, threshold: float) -> str:
    """A passed gate in one line."""
    return f"Gate passed: MSE {mse:.4f} <= MseThreshold {threshold}"


def failed_run_line(run_id: str, failure: str, mse: float) -> str:
    """A run the gate stopped, in one line: the FailStep message first."""
    return (
        f"Run {run_id} failed: {failure} (MSE {mse:.4f}); nothing registered, no batch "
        "predictions (deployable_model, batch_predictions and model_package are skipped)"
    )


def predictions_line(instance: dg.DagsterInstance, run_id: str) -> str:
    """Where this run's batch predictions are, from batch_predictions' materialization in the
    run (the event log, not the step's return value: the two steps do not depend on each
    other)."""
    event = instance.get_latest_materialization_event(BATCH_PREDICTIONS)
    if event is None or event.run_id != run_id or event.asset_materialization is None:
        return "none in this run (batch_predictions was not selected or did not run)"
    metadata = plain_metadata(
        {k: event.asset_materialization.metadata.get(k) for k in (URI_KEY, ROW_COUNT_KEY)}
    )
    rows = metadata.get(ROW_COUNT_KEY)
    return f"{metadata[URI_KEY]}" + (f" ({rows:,} rows)" if isinstance(rows, int) else "")


def run_summary(
    run_id: str,
    *,
    mse: float,
    threshold: float,
    version: str | int,
    status: str,
    model_uri: str,
    predictions: str,
) -> str:
    """The summary model_package logs at the end of a run that passed the gate."""
    lines: Mapping[str, str] = {
        "gate": f"passed, MSE {mse:.4f} <= MseThreshold {threshold}",
        "registered": f"version {version} ({status}), {model_uri}",
        "predictions": predictions,
    }
    return f"Run {run_id} summary:\n" + "\n".join(f"  {k}: {v}" for k, v in lines.items())
