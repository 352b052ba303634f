"""The Dask cluster a step runs its tasks on: a LocalCluster of N worker processes started for
the step and closed after it, or an existing cluster reached through its scheduler address."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client

# The variable Dask itself reads for its scheduler (dask config key ``scheduler-address``).
SCHEDULER_VARIABLE = "DASK_SCHEDULER_ADDRESS"
CONNECT_TIMEOUT_S = 10.0


class ClusterError(RuntimeError):
    """The cluster could not be reached or started; raised before any work is sent."""


@dataclass(frozen=True)
class StepCluster:
    """A connected client and what it runs on."""

    client: Client
    # "LocalCluster" or the scheduler's address.
    kind: str
    # Worker addresses when the step started.
    workers: tuple[str, ...]
    # XGBoost threads per task: a LocalCluster's workers share this machine's cores; an
    # existing cluster's parallelism is its own worker threads, one task (and thread) each.
    nthread: int

    @property
    def local(self) -> bool:
        return self.kind == "LocalCluster"


def scheduler_address(override: str = "") -> str:
    """The existing cluster to use: ``override`` (the resource's field), else the variable."""
    return override.strip() or os.environ.get(SCHEDULER_VARIABLE, "").strip()


def _quiet_dask() -> None:
    # A worker's start and stop, and a LocalCluster closing under tasks, log at INFO/WARNING
    # on Dask's own loggers; the step logs what it ran on instead.
    for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def open_cluster(workers: int, address_override: str = "") -> Iterator[StepCluster]:
    """A client on the existing cluster (``scheduler_address``) or on a LocalCluster of
    ``workers`` processes (one thread each, loopback only, no dashboard), closed afterwards.

    An existing cluster that cannot be reached raises ClusterError naming the variable (or the
    field) and the address, before any task is sent.
    """
    _quiet_dask()
    from distributed import Client, LocalCluster

    address = scheduler_address(address_override)
    if address:
        named = (
            "the Dask resource's scheduler_address"
            if address_override.strip()
            else (SCHEDULER_VARIABLE)
        )
        try:
            # direct_to_workers: results travel from the workers to this process, never through
            # the scheduler.
            client = Client(address, timeout=CONNECT_TIMEOUT_S, direct_to_workers=True)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"{named}={address}: cannot reach the Dask scheduler ({exc}); start it "
                f"(`dask scheduler`) or unset {SCHEDULER_VARIABLE} to use a LocalCluster"
            ) from exc
        try:
            found = tuple(client.scheduler_info()["workers"])
            if not found:
                raise ClusterError(
                    f"{named}={address}: the Dask scheduler has no workers; start some "
                    f"(`dask worker {address}`)"
                )
            yield StepCluster(client, address, found, nthread=1)
        finally:
            client.close()
        return
    cores = os.cpu_count() or 1
    try:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # No dashboard; the scheduler's HTTP routes (health, metrics) on a free loopback port.
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
            # Workers share this machine's cores with XGBoost's OpenMP threads: idle ones sleep.
            env={"OMP_WAIT_POLICY": "PASSIVE"},
        )
    except Exception as exc:
        raise ClusterError(
            f"could not start a Dask LocalCluster of {workers} workers: {exc}"
        ) from exc
    try:
        with Client(cluster, direct_to_workers=True) as client:
            found = tuple(client.scheduler_info()["workers"])
            yield StepCluster(
                client, "LocalCluster", found, nthread=max(1, cores // max(1, workers))
            )
    finally:
        cluster.close()
