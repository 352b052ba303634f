"""The code location as the Kubernetes deployment loads it (deploy/k8s/values.yaml:
`dagster api grpc -m abalone_platform.k8s_location`): the same definitions, with dagster-k8s's
`k8s_job_executor` instead of the in-process one, so each step of a run is its own pod (sized by
the run config, abalone_platform.k8s_resources.k8s_run_config / deploy/k8s/run_config_*.yaml).

A module of its own so that the default code location never imports the Kubernetes client
(about a second of start-up on every `dagster` command).
"""

import dagster as dg
from dagster_k8s import k8s_job_executor

import abalone_platform.definitions as default_location


def build_k8s_defs() -> dg.Definitions:
    return dg.Definitions.merge(
        default_location.load_defs_folder(),
        dg.Definitions(executor=k8s_job_executor),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_k8s_defs()
