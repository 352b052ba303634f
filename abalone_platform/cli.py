"""`abalone-platform`: the model registry, lineage, execution records and the pipeline definition
from one command line. A thin layer over abalone_platform.platform; it reads the same
ABALONE_HOME / MLFLOW_TRACKING_URI / DAGSTER_HOME as the pipeline."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

PROG = "abalone-platform"


class CliError(RuntimeError):
    pass


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    from tabulate import tabulate

    # Values as given (already formatted here), not re-parsed as numbers; None as blank.
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, missingval="")


def _quiet_library_notices() -> None:
    """Libraries' notices about their own APIs (deprecations, Dagster's beta/preview markers,
    pydantic on MLflow's models) are noise for a person at a terminal; any other warning still
    shows."""
    from dagster_shared.utils.warnings import BetaWarning, PreviewWarning  # light: no dagster

    for category in (
        DeprecationWarning,
        PendingDeprecationWarning,
        FutureWarning,  # includes Dagster's SupersessionWarning
        BetaWarning,
        PreviewWarning,
    ):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _instance():
    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        raise CliError(
            "DAGSTER_HOME is not set: point it at the Dagster instance the pipeline ran in "
            "(`make run` uses the repository root)"
        )
    return dg.DagsterInstance.get()


@functools.cache
def _definitions():
    """The project's Definitions, built with this process's environment (ABALONE_HOME, ...)."""
    from abalone_platform.definitions import build_defs

    return build_defs()


def _registry():
    from abalone_platform.registry import open_registry

    return open_registry()


# --- registry ---------------------------------------------------------------------------------


def cmd_registry_list(args: argparse.Namespace) -> None:
    from abalone_platform.registry import list_versions

    registry = _registry()
    versions = list_versions(registry)
    if args.json:
        _print_json(versions)
        return
    if not versions:
        print(f"{registry.name} has no versions yet ({registry.tracking_uri}); run the pipeline.")
        return
    print(
        _table(
            ["version", "status", "format", "mse", "created", "dagster run id", "aliases"],
            [
                [
                    v["version"],
                    v["approval_status"]
                    + ("" if v["registration"] == "complete" else " (registration incomplete)"),
                    v["format"],
                    "" if v["mse"] is None else f"{v['mse']:.4f}",
                    v["created"],
                    v["dagster_run_id"],
                    ",".join(v["aliases"]),
                ]
                for v in versions
            ],
        )
    )


def cmd_registry_describe(args: argparse.Namespace) -> None:
    from abalone_platform.registry import describe_version

    info = describe_version(_registry(), args.version)
    if args.json:
        _print_json(info)
        return
    print(
        f"{info['name']} version {info['version']}: {info['approval_status']}"
        + (f" (alias {', '.join(info['aliases'])})" if info["aliases"] else "")
    )
    if info["registration"] != "complete":
        print(
            "  registration  INCOMPLETE: the run that registered it was stopped before it "
            "finished; it is never approved, aliased or used for batch inference"
        )
    for label, key in (
        ("created", "created"),
        ("last updated", "last_updated"),
        ("model uri", "model_uri"),
        ("format", "format"),
        ("tracking uri", "tracking_uri"),
        ("dagster run", "dagster_run_id"),
        ("mlflow run", "mlflow_run_id"),
    ):
        print(f"  {label:13} {info[key]}")
    print("\nMetrics")
    print(_table(["metric", "value"], [[k, f"{v:.6g}"] for k, v in info["metrics"].items()]))
    print("\nParameters of the run that produced it")
    print(_table(["parameter", "value"], sorted(info["parameters"].items())))
    print("\nArtifacts")
    print(
        _table(
            ["artifact", "uri", "sha256"],
            [[a["name"], a["uri"], a["sha256"]] for a in info["artifacts"]],
        )
    )
    print("\nInference spec")
    print(json.dumps(info["inference_spec"], indent=2))
    print("\nApproval history")
    print(
        _table(
            ["at", "from", "to", "by", "reason"],
            [
                [h["at"], h["from"] or "-", h["to"], h["by"], h["reason"]]
                for h in info["approval_history"]
            ],
        )
    )


def _transition(target: str) -> Callable[[argparse.Namespace], None]:
    def command(args: argparse.Namespace) -> None:
        from abalone_platform.registry import set_approval

        change = set_approval(_registry(), args.version, target, reason=args.reason, by=args.by)
        if args.json:
            _print_json(change)
            return
        alias = change["approved_alias"]
        print(
            f"version {change['version']}: {change['from']} -> {change['to']} by {change['by']} "
            f"at {change['at']} ({change['reason']})"
        )
        print(
            f"alias approved -> version {alias}"
            if alias
            else "alias approved: none (no version is Approved)"
        )

    return command


# --- lineage ----------------------------------------------------------------------------------

_LINEAGE_COLUMNS = [
    ("Name/Source", None),
    ("Direction", "direction"),
    ("Type", "type"),
    ("Association Type", "association_type"),
    ("Lineage Type", "lineage_type"),
    ("sha256", "sha256"),
    ("Dagster run", "dagster_run_id"),
]


def cmd_lineage(args: argparse.Namespace) -> None:
    from abalone_platform.records.lineage import model_package_lineage

    with _instance() as instance:
        lineage = model_package_lineage(instance, _definitions(), _registry(), args.version)
    if args.json:
        _print_json(lineage)
        return
    package = lineage["model_package"]
    print(
        f"Lineage of {package['name']} version {package['version']} "
        f"({package['approval_status']}), registered by Dagster run {package['dagster_run_id']}"
    )
    for problem in lineage["missing"]:
        print(f"MISSING: {problem}")
    for step in lineage["steps"]:
        rows = [
            r
            for r in lineage["rows"]
            if r["dagster_step"] == step["dagster_step"]
            and r["step_run_id"] == step["dagster_run_id"]
        ]
        print(
            f"\n{step['step']} ({step['sagemaker_type']}): Dagster step {step['dagster_step']}, "
            f"run {step['dagster_run_id']}, code {step['code_version']}"
        )
        print(
            _table(
                [c for c, _ in _LINEAGE_COLUMNS],
                [
                    [f"{r['name']}: {r['source']}", *(r[k] for _, k in _LINEAGE_COLUMNS[1:])]
                    for r in rows
                ],
            )
        )


# --- executions -------------------------------------------------------------------------------


def cmd_executions_list(args: argparse.Namespace) -> None:
    from abalone_platform.records.definition import parameter_definitions
    from abalone_platform.records.executions import list_executions

    with _instance() as instance:
        runs = list_executions(instance, _definitions(), limit=args.limit)
    defaults = {p["name"]: p["default"] for p in parameter_definitions(_definitions())}
    if args.json:
        _print_json(runs)
        return
    if not runs:
        print("No runs in this Dagster instance yet.")
        return
    print(
        _table(
            [
                "run id",
                "job",
                "status",
                "start",
                "end",
                "parameters (not default)",
                "failure reason",
            ],
            [
                [
                    r["run_id"],
                    r["job"],
                    r["status"],
                    r["start"],
                    r["end"],
                    " ".join(
                        f"{k}={v}"
                        for k, v in r["parameters"].items()
                        if v not in ("", None) and v != defaults.get(k)
                    ),
                    r["failure_reason"] or "",
                ]
                for r in runs
            ],
        )
    )


def _gate_text(gate: dict) -> str:
    return f"Outcome {gate['outcome']} (MSE {gate['mse']:.4f} vs threshold {gate['threshold']})"


def cmd_executions_describe(args: argparse.Namespace) -> None:
    from abalone_platform.records.executions import describe_execution

    with _instance() as instance:
        info = describe_execution(instance, _definitions(), args.run_id)
    if args.json:
        _print_json(info)
        return
    print(f"Run {info['run_id']} ({info['job']}): {info['status']}")
    print(f"  start {info['start']}  end {info['end']}  duration {info['duration_s']} s")
    if info["failure_reason"]:
        print(f"  failure reason: {info['failure_reason']}")
    if info["gate"]:
        gate = info["gate"]
        print(
            f"  gate {gate['check']}: outcome {gate['outcome']} (MSE {gate['mse']:.4f}, "
            f"threshold {gate['threshold']}; {gate['condition']})"
        )
    print("\nParameters")
    print(_table(["parameter", "value"], list(info["parameters"].items())))
    print("\nSteps")
    print(
        _table(
            [
                "step",
                "SageMaker step",
                "status",
                "start",
                "end",
                "attempts",
                "outcome / failure / cache",
            ],
            [
                [
                    s["name"],
                    s["sagemaker_step"],
                    s["status"],
                    s["start"],
                    s["end"],
                    s["attempt_count"],
                    "; ".join(
                        filter(
                            None,
                            [
                                _gate_text(s["gate"]) if "gate" in s else "",
                                s.get("failure_reason", ""),
                                f"cache hit of run {s['cache_hit_of']}"
                                if "cache_hit_of" in s
                                else "",
                            ],
                        )
                    ),
                ]
                for s in info["steps"]
            ],
        )
    )


# --- serve ------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> None:
    from abalone_platform.serving.server import ServeOptions, serve

    serve(
        ServeOptions(
            host=args.host,
            port=args.port,
            version=args.version,
            alias=args.alias,
            workers=args.workers,
            max_payload_mb=args.max_payload_mb,
            poll_interval_s=args.poll_interval,
            token_file=args.token_file,
        )
    )


# --- definition -------------------------------------------------------------------------------


def cmd_definition(args: argparse.Namespace) -> None:
    from abalone_platform.records.definition import pipeline_definition, sagemaker_definition

    build = sagemaker_definition if args.format == "sagemaker" else pipeline_definition
    _print_json(build(_definitions()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Model registry, lineage, execution records and the pipeline definition of "
        "abalone_platform (reads ABALONE_HOME, MLFLOW_TRACKING_URI and DAGSTER_HOME).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    registry = commands.add_parser("registry", help="versions of the model package group")
    registry_commands = registry.add_subparsers(
        dest="registry_command", required=True, metavar="ACTION"
    )
    listing = registry_commands.add_parser("list", help="every version with its status")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=cmd_registry_list)
    describe = registry_commands.add_parser("describe", help="everything about one version")
    describe.add_argument("version")
    describe.add_argument("--json", action="store_true", help="machine-readable output")
    describe.set_defaults(func=cmd_registry_describe)
    for action, target, verb, sources in (
        ("approve", "Approved", "approve", "PendingManualApproval"),
        ("reject", "Rejected", "reject", "PendingManualApproval or Approved"),
    ):
        sub = registry_commands.add_parser(
            action,
            help=f"{verb} a version ({sources} -> {target})",
        )
        sub.add_argument("version")
        sub.add_argument("--reason", required=True, help="why, for the approval history")
        sub.add_argument("--by", help="who decides (default: the OS user)")
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        sub.set_defaults(func=_transition(target))

    lineage = commands.add_parser("lineage", help="lineage table of a model package version")
    lineage.add_argument("version")
    lineage.add_argument("--json", action="store_true", help="machine-readable output")
    lineage.set_defaults(func=cmd_lineage)

    executions = commands.add_parser("executions", help="pipeline runs, from the Dagster instance")
    execution_commands = executions.add_subparsers(
        dest="executions_command", required=True, metavar="ACTION"
    )
    runs = execution_commands.add_parser("list", help="every run, newest first")
    runs.add_argument("--limit", type=int, default=None, help="at most this many runs")
    runs.add_argument("--json", action="store_true", help="machine-readable output")
    runs.set_defaults(func=cmd_executions_list)
    run = execution_commands.add_parser("describe", help="one run and its steps")
    run.add_argument("run_id", help="a run id or a unique prefix of one")
    run.add_argument("--json", action="store_true", help="machine-readable output")
    run.set_defaults(func=cmd_executions_describe)

    from abalone_platform.serving.server import ServeOptions

    defaults = ServeOptions()
    serving = commands.add_parser(
        "serve",
        help="real-time endpoint (SageMaker's /ping and /invocations) for the approved version",
        description="Serve the model package group's `approved` version (or --version N) over "
        "HTTP with SageMaker's inference container contract: GET /ping, POST /invocations "
        "(text/csv or MLflow's JSON forms), GET /metrics. Approvals move it within seconds.",
    )
    serving.add_argument("--host", default=defaults.host, help=f"default {defaults.host}")
    serving.add_argument(
        "--port", type=int, default=defaults.port, help=f"default {defaults.port}, as SageMaker's"
    )
    which = serving.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="serve this version (unless Rejected)")
    which.add_argument(
        "--alias",
        choices=(defaults.alias,),
        default=defaults.alias,
        help=f"follow this alias (default: {defaults.alias})",
    )
    serving.add_argument(
        "--workers", type=int, default=defaults.workers, help="uvicorn worker processes"
    )
    serving.add_argument(
        "--max-payload-mb",
        type=float,
        default=defaults.max_payload_mb,
        help=f"largest request body (default {defaults.max_payload_mb:g}, SageMaker's limit)",
    )
    serving.add_argument(
        "--token-file",
        help="file holding the bearer token (else ABALONE_SERVE_TOKEN); required off loopback",
    )
    serving.add_argument(
        "--poll-interval",
        type=float,
        default=defaults.poll_interval_s,
        help="seconds between registry checks for a new approved version "
        f"(default {defaults.poll_interval_s:g})",
    )
    serving.set_defaults(func=cmd_serve)

    definition = commands.add_parser("definition", help="the pipeline definition as JSON")
    definition.add_argument(
        "--format",
        choices=("abalone", "sagemaker"),
        default="abalone",
        help="abalone (default): this project's own form (Dagster steps, their SageMaker "
        "counterparts, the gate); sagemaker: SageMaker's pipeline.definition() schema",
    )
    definition.set_defaults(func=cmd_definition)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_library_notices()
    from abalone_platform.errors import PlatformError

    try:
        args.func(args)
    except (CliError, PlatformError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: not an error; keep Python from reporting one
        # again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
