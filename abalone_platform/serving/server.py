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

OPTIONS_ENV = "ABALONE_SERVE_OPTIONS"
TOKEN_ENV = "ABALONE_SERVE_TOKEN"
DEFAULT_PORT = 8080  # as SageMaker's inference containers


class ServeError(PlatformError):
    pass


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    version: int | None = None  # None: follow the `approved` alias
    workers: int = 1
    max_payload_mb: float = 6.0
    poll_interval_s: float = 2.0
    token: str | None = None
    tracking_uri: str | None = None


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
    if not is_loopback(options.host) and not options.token:
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
        lambda: open_registry(options.tracking_uri),
        pinned=options.version,
        poll_interval_s=options.poll_interval_s,
        on_switch=lambda model: metrics.served(model.version if model else None),
    )
    settings = AppSettings(
        max_payload_bytes=int(options.max_payload_mb * 1_000_000), token=options.token
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
