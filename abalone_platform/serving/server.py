"""`abalone-platform serve`: the endpoint on uvicorn, one or several worker processes.

Each worker builds its own app from the options (passed through the environment, since uvicorn
starts workers by import string), with its own model holder following the registry.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from abalone_platform.errors import PlatformError
from abalone_platform.registry import APPROVED_ALIAS

OPTIONS_ENV = "ABALONE_SERVE_OPTIONS"
TOKEN_ENV = "ABALONE_SERVE_TOKEN"
DEFAULT_PORT = 8080  # as SageMaker's inference containers


class ServeError(PlatformError):
    pass


@dataclass(frozen=True)
class ServeOptions:
    """`abalone-platform serve`'s options; their defaults are the command's."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    version: int | None = None  # a pinned version; None: follow ``alias``
    alias: str = APPROVED_ALIAS
    workers: int = 1
    max_payload_mb: float = 6.0  # SageMaker's real-time payload limit
    poll_interval_s: float = 2.0
    # The token's file (else ABALONE_SERVE_TOKEN); read by each worker, so the token itself
    # never travels in the options (which workers get through the environment).
    token_file: str | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(token_file: str | None) -> str | None:
    """The bearer token: --token-file's content, else ABALONE_SERVE_TOKEN, else None."""
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise ServeError(f"--token-file {token_file}: cannot read it ({exc.strerror})") from exc
        if not token:
            raise ServeError(f"--token-file {token_file} is empty")
        return token
    return os.environ.get(TOKEN_ENV, "").strip() or None


def check_options(options: ServeOptions) -> None:
    if options.alias != APPROVED_ALIAS:
        raise ServeError(f"--alias must be {APPROVED_ALIAS!r}, the alias approvals move")
    if not is_loopback(options.host) and not read_token(options.token_file):
        raise ServeError(
            f"--host {options.host} is reachable from other machines: set {TOKEN_ENV} or "
            "--token-file, and clients send Authorization: Bearer <token>"
        )
    if options.workers < 1:
        raise ServeError(f"--workers must be 1 or more, not {options.workers}")
    if options.max_payload_mb <= 0:
        raise ServeError(f"--max-payload-mb must be above 0, not {options.max_payload_mb}")
    if options.version is not None and options.version < 1:
        raise ServeError(f"--version must be a version number (1, 2, ...), not {options.version}")


def create_app():  # -> starlette.applications.Starlette; uvicorn's factory in each worker
    from abalone_platform.registry import open_registry
    from abalone_platform.serving.app import AppSettings, build_app
    from abalone_platform.serving.metrics import ServerMetrics
    from abalone_platform.serving.model import ModelHolder

    options = ServeOptions(**json.loads(os.environ[OPTIONS_ENV]))
    metrics = ServerMetrics()
    holder = ModelHolder(
        open_registry,
        pinned=options.version,
        poll_interval_s=options.poll_interval_s,
        on_switch=lambda model: metrics.served(model.version if model else None),
        on_load_failure=lambda version, exc: metrics.load_failures.inc(),
    )
    settings = AppSettings(
        max_payload_bytes=int(options.max_payload_mb * 1_000_000),
        token=read_token(options.token_file),
    )
    return build_app(holder, metrics, settings)


def _log_config() -> dict:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    # The model holder's lines (what is served, switches) beside uvicorn's, at INFO.
    config["loggers"]["abalone_platform"] = {"handlers": ["default"], "level": "INFO"}
    return config


def serve(options: ServeOptions) -> None:
    check_options(options)
    # XGBoost's OpenMP threads sleep rather than spin between requests (set before it loads).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Downloading a version's files is logged once per load; a progress bar would fill the log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ[OPTIONS_ENV] = json.dumps(dataclasses.asdict(options))
    import uvicorn

    with tempfile.TemporaryDirectory(prefix="abalone-serve-metrics-") as metrics_dir:
        if options.workers > 1:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        uvicorn.run(
            "abalone_platform.serving.server:create_app",
            factory=True,
            host=options.host,
            port=options.port,
            workers=options.workers,
            log_config=_log_config(),
            log_level="info",
            access_log=True,
            # SIGTERM: stop accepting, finish what is in flight (up to this long), then exit.
            timeout_graceful_shutdown=30,
            # uvloop and httptools, when installed (they are, with uvicorn's extras here).
            loop="auto",
            http="auto",
        )
