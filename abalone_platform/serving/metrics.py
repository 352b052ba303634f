"""The endpoint's Prometheus metrics (prometheus-client).

With several uvicorn workers each is its own process: the metrics are then kept in
prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by `serve` before the
workers start) and /metrics adds every worker's up.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

# Real-time requests take about a millisecond; the buckets resolve that, and the tail.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServerMetrics:
    def __init__(self) -> None:
        multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        # In multiprocess mode values live in files; the registry /metrics reads collects them.
        self.registry = CollectorRegistry()
        if multiprocess:
            MultiProcessCollector(self.registry)
        target = None if multiprocess else self.registry
        self.requests = Counter(
            "abalone_serve_requests",
            "Requests answered, by path and HTTP status.",
            ["path", "status"],
            registry=target,
        )
        self.latency = Histogram(
            "abalone_serve_request_latency_seconds",
            "Time from a request's arrival at the app to its response, by path.",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=target,
        )
        self.rows = Counter(
            "abalone_serve_rows_predicted", "Rows predicted by /invocations.", registry=target
        )
        self.version = Gauge(
            "abalone_serve_model_version",
            "The model package version being served (0: none).",
            registry=target,
            **({"multiprocess_mode": "liveall"} if multiprocess else {}),
        )
        self.switches = Counter(
            "abalone_serve_model_switches",
            "Times the served version changed (including to none).",
            registry=target,
        )

        self.load_failures = Counter(
            "abalone_serve_model_load_failures",
            "Versions that should have been served but failed to load (the old one stays).",
            registry=target,
        )

    def observe(self, path: str, status: int, seconds: float) -> None:
        self.requests.labels(path, str(status)).inc()
        self.latency.labels(path).observe(seconds)

    def served(self, version: int | None) -> None:
        self.version.set(version or 0)
        self.switches.inc()
