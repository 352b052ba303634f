"""TrainingInstanceType as Kubernetes pod resources, and the run-config preset that gives the
training step its own pod of that size under dagster-k8s's `k8s_job_executor` (the way
SageMaker gives each step its own instance). Dagster-free: plain dictionaries.

The vCPUs are the parameter's own table (abalone_platform.ml.instance_types), so a type
the parameter refuses is refused here too. Memory is the family's GiB per vCPU as AWS sizes it
(c: 2, m/t/g: 4, r: 8, ...); GPU families (ml.p*, ml.g*) also request their NVIDIA GPUs as
`nvidia.com/gpu` (the NVIDIA device plugin's resource name). Requests equal limits: the pod is
Guaranteed, as an instance is.
"""

from __future__ import annotations

import re
from typing import Any

from abalone_platform.ml.instance_types import instance_vcpus

# The op (step) that trains: its pod gets TrainingInstanceType's resources.
TRAINING_STEP = "trained_model"
GPU_RESOURCE = "nvidia.com/gpu"
_TYPE = re.compile(r"ml\.(?P<family>[a-z0-9-]+)\.(?P<size>[a-z0-9]+)")
# GiB of memory per vCPU, by family (AWS's instance sizes); families not named here use their
# class letter's ratio below.
_GIB_PER_VCPU = {
    "c4": 1.875,  # ml.c4.xlarge: 4 vCPU, 7.5 GiB
    "p2": 15.25,  # ml.p2.xlarge: 4 vCPU, 61 GiB
    "p3": 7.625,  # ml.p3.2xlarge: 8 vCPU, 61 GiB
    "p3dn": 8,  # ml.p3dn.24xlarge: 96 vCPU, 768 GiB
    "p4d": 12,  # ml.p4d.24xlarge: 96 vCPU, 1152 GiB
    "p4de": 12,
    "p5": 2048 / 192,  # ml.p5.48xlarge: 192 vCPU, 2048 GiB
    "g6e": 8,  # ml.g6e.xlarge: 4 vCPU, 32 GiB
}
_GIB_PER_VCPU_BY_CLASS = {"c": 2, "m": 4, "t": 4, "r": 8, "g": 4, "p": 8, "trn": 4}
# NVIDIA GPUs per instance, for the GPU families (ml.p*, ml.g*); a size not named has one.
_GPUS = {
    ("p2", "8xlarge"): 8,
    ("p2", "16xlarge"): 16,
    ("p3", "8xlarge"): 4,
    ("p3", "16xlarge"): 8,
    ("p3dn", "24xlarge"): 8,
    ("p4d", "24xlarge"): 8,
    ("p4de", "24xlarge"): 8,
    ("p5", "48xlarge"): 8,
    ("g4dn", "12xlarge"): 4,
    **{(family, "12xlarge"): 4 for family in ("g5", "g6", "g6e")},
    **{(family, "24xlarge"): 4 for family in ("g5", "g6", "g6e")},
    **{(family, "48xlarge"): 8 for family in ("g5", "g6", "g6e")},
}


def _class(family: str) -> str:
    return "trn" if family.startswith("trn") else family[0]


def training_pod_resources(instance_type: str) -> dict[str, dict[str, str]]:
    """Kubernetes `resources` (requests and limits) for a training pod standing in for
    ``instance_type``; InstanceTypeError (a ValueError) for a type the parameter refuses."""
    vcpus = instance_vcpus(instance_type)
    match = _TYPE.fullmatch(instance_type)
    assert match is not None  # instance_vcpus accepted it
    family, size = match["family"], match["size"]
    ratio = _GIB_PER_VCPU.get(family, _GIB_PER_VCPU_BY_CLASS[_class(family)])
    amounts = {"cpu": str(vcpus), "memory": f"{int(vcpus * ratio)}Gi"}
    if _class(family) in ("p", "g"):
        amounts[GPU_RESOURCE] = str(_GPUS.get((family, size), 1))
    return {"requests": dict(amounts), "limits": dict(amounts)}


def k8s_run_config(instance_type: str = "ml.m5.xlarge") -> dict[str, Any]:
    """The run config for the Kubernetes code location (abalone_platform.k8s_location, whose
    executor is dagster-k8s's k8s_job_executor): each step its own pod, the training step's
    sized from ``instance_type``, which is also the run's TrainingInstanceType."""
    resources = training_pod_resources(instance_type)
    step_config: dict[str, Any] = {"container_config": {"resources": resources}}
    if GPU_RESOURCE in resources["limits"]:
        # GPU nodes are usually tainted so that only pods asking for GPUs land there.
        step_config["pod_spec_config"] = {
            "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
        }
    return {
        "execution": {
            "config": {
                # Every other step: a small pod (the steps are light; processing's Dask work
                # goes to the DaskCluster through DASK_SCHEDULER_ADDRESS).
                "step_k8s_config": {
                    "container_config": {
                        "resources": {
                            "requests": {"cpu": "500m", "memory": "1Gi"},
                            "limits": {"cpu": "2", "memory": "4Gi"},
                        }
                    }
                },
                "per_step_k8s_config": {TRAINING_STEP: step_config},
            }
        },
        "resources": {"parameters": {"config": {"training_instance_type": instance_type}}},
    }
