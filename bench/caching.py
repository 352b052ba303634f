"""What the cache section reads from the project and from the runs' instance, in a process of
its own (the bench's parent process stays free of Dagster).

    python -m bench.caching supports      (does PipelineParameters have enable_caching?)
    python -m bench.caching runs          (DAGSTER_HOME's runs, oldest first: status, seconds,
                                           each step's seconds, each materialization's
                                           step and cache_hit_of, what each step logged
                                           about its cache entry)

Each prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys

CACHE_PARAMETERS = ("enable_caching", "cache_expire_after")


def supports() -> dict:
    from abalone_platform.defs.shared.resources import PipelineParameters

    fields = PipelineParameters.model_fields
    return {name: name in fields for name in CACHE_PARAMETERS}


def _value(metadata: object) -> object:
    return getattr(metadata, "value", metadata)


def runs() -> dict:
    import dagster as dg

    instance = dg.DagsterInstance.get()
    found = []
    for run in reversed(instance.get_runs()):  # get_runs is newest first
        stats = instance.get_run_stats(run.run_id)
        started: dict[str, float] = {}
        steps: dict[str, float] = {}
        materializations: dict[str, dict] = {}
        notes: dict[str, str] = {}
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None:
                # The steps' own log lines: what each said about its cache entry.
                message = entry.user_message or ""
                if (
                    entry.step_key
                    and message.startswith(f"{entry.step_key}: ")
                    and ("cache" in message or "enable_caching" in message)
                ):
                    notes[entry.step_key] = message
                continue
            kind = event.event_type_value
            if kind == "STEP_START":
                started[entry.step_key] = entry.timestamp
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in started:
                steps[entry.step_key] = entry.timestamp - started[entry.step_key]
            elif kind == "ASSET_MATERIALIZATION":
                materialization = event.event_specific_data.materialization
                hit = materialization.metadata.get("cache_hit_of")
                key = materialization.asset_key.to_user_string()
                materializations[key] = {
                    "step": entry.step_key,
                    "cache_hit_of": None if hit is None else str(_value(hit)),
                }
        found.append(
            {
                "run_id": run.run_id,
                "status": run.status.value,
                "seconds": (stats.end_time or 0) - (stats.start_time or 0),
                "steps": steps,
                "materializations": materializations,
                "cache_notes": notes,
            }
        )
    return {"runs": found}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=("supports", "runs"))
    args = parser.parse_args(argv)
    result = supports() if args.what == "supports" else runs()
    sys.stdout.write(json.dumps({"what": args.what, **result}) + "\n")


if __name__ == "__main__":
    main()
