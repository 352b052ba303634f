"""Loading the code location and a sensor tick, measured inside one fresh process.

    python -m bench.load defs                          (import dagster, import + build, validate)
    python -m bench.load tick [--sensor NAME]          (load, instance, two evaluations)

Run with DAGSTER_HOME (and ABALONE_HOME) set, as `bench/__main__.py`'s load section does. Each
prints one JSON line of seconds measured from inside the process; the whole process's wall time
(interpreter start and exit included) is what the caller measures around it.

``tick`` does what a daemon's tick does on a code server that has just started: load the code
location, open the instance, evaluate the sensor once (its cursor empty: a file in the watched
folder is seen for the first time), and a second evaluation with the cursor the first returned
(the file is now ready: one run request).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

_STARTED = time.perf_counter()

HEAVY = ("xgboost", "sklearn", "scipy", "pandas", "pyarrow", "mlflow", "matplotlib", "dask")


def _imported() -> dict:
    return {
        "modules": len(sys.modules),
        "heavy": [name for name in HEAVY if name in sys.modules],
    }


def _defs(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    import dagster as dg

    dagster_done = time.perf_counter()
    from abalone_platform.definitions import build_defs

    defs = build_defs()
    built = time.perf_counter()
    dg.Definitions.validate_loadable(defs)
    validated = time.perf_counter()
    return {
        "before_main": started - _STARTED,
        "import_dagster": dagster_done - started,
        "import_and_build": built - dagster_done,
        "validate": validated - built,
        **_imported(),
    }


def _tick(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    import dagster as dg
    from dagster._core.execution.resources_init import get_transitive_required_resource_keys

    from abalone_platform.definitions import build_defs

    # As the code server does: the repository of the location's Definitions, then (dagster's
    # get_external_sensor_execution) the sensor's resources among its top-level ones.
    repository = build_defs().get_repository_def()
    sensor = repository.get_sensor_def(args.sensor)
    top_level = repository.get_top_level_resources()
    needed = get_transitive_required_resource_keys(sensor.required_resource_keys, top_level)
    resources = {key: value for key, value in top_level.items() if key in needed}
    loaded = time.perf_counter()
    instance = dg.DagsterInstance.get()
    opened = time.perf_counter()
    evaluations, cursor, outcomes = [], None, []
    for _ in range(2):
        begin = time.perf_counter()
        with dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            repository_name=repository.name,
            repository_def=repository,
            sensor_name=args.sensor,
            resources=resources,
        ) as context:
            result = sensor.evaluate_tick(context)
        evaluations.append(time.perf_counter() - begin)
        cursor = result.cursor if result.cursor is not None else cursor
        outcomes.append(
            f"{len(result.run_requests)} run request(s)"
            if result.run_requests
            else f"skipped: {result.skip_message}"
        )
    return {
        "sensor": args.sensor,
        "load": loaded - started,
        "instance": opened - loaded,
        "first_tick": evaluations[0],
        "second_tick": evaluations[1],
        "outcomes": outcomes,
        **_imported(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=("defs", "tick"))
    parser.add_argument("--sensor", default="new_input_data_sensor")
    args = parser.parse_args(argv)
    result = _defs(args) if args.what == "defs" else _tick(args)
    sys.stdout.write(json.dumps({"what": args.what, **result}) + "\n")


if __name__ == "__main__":
    main()
