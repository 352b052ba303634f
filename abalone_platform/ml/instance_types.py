"""TrainingInstanceType's table: the SageMaker instance types a run accepts and their vCPUs.

Standard library only: the `parameters` resource validates the string when the code location
loads (every `dagster dev` code server, sensor tick process and `dg check defs`), and
k8s_resources.py sizes the training pod from it, neither of which should import XGBoost,
scikit-learn or pandas for a table lookup. ml/train.py maps a type to local compute from here.
"""

from __future__ import annotations

import re

# The parameter as errors name it.
_PARAMETER = "training_instance_type (TrainingInstanceType)"
_INSTANCE_TYPE = re.compile(r"ml\.(?P<family>[a-z0-9-]+)\.(?P<size>[a-z0-9]+)")

_M_SIZES = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")
_GEN6_SIZES = (*_M_SIZES, "32xlarge")
_GEN7_SIZES = (*_M_SIZES, "48xlarge")
_C5_SIZES = ("xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge")
_G_SIZES = (*_M_SIZES[1:], "48xlarge")
# The instance families SageMaker offers for training and processing jobs, with their sizes
# (the common ones; inference-only families such as ml.inf1 / ml.inf2 are left out). A pattern
# alone let typos such as ml.zz9.xlarge through to the run, where they meant nothing.
SAGEMAKER_INSTANCE_SIZES: dict[str, tuple[str, ...]] = {
    # General purpose
    "m4": ("xlarge", "2xlarge", "4xlarge", "10xlarge", "16xlarge"),
    "m5": ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge"),
    "m5d": _M_SIZES,
    "m6i": _GEN6_SIZES,
    "m6id": _GEN6_SIZES,
    "m7i": _GEN7_SIZES,
    "t2": ("medium", "large", "xlarge", "2xlarge"),
    "t3": ("medium", "large", "xlarge", "2xlarge"),
    # Compute optimised
    "c4": ("xlarge", "2xlarge", "4xlarge", "8xlarge"),
    "c5": _C5_SIZES,
    "c5n": _C5_SIZES,
    "c6i": _GEN6_SIZES,
    "c7i": _GEN7_SIZES,
    # Memory optimised
    "r5": _M_SIZES,
    "r5d": _M_SIZES,
    "r6i": _GEN6_SIZES,
    "r7i": _GEN7_SIZES,
    # Accelerated: NVIDIA GPUs (p*, g*), AWS Trainium (trn*)
    "p2": ("xlarge", "8xlarge", "16xlarge"),
    "p3": ("2xlarge", "8xlarge", "16xlarge"),
    "p3dn": ("24xlarge",),
    "p4d": ("24xlarge",),
    "p4de": ("24xlarge",),
    "p5": ("48xlarge",),
    "g4dn": ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"),
    "g5": _G_SIZES,
    "g6": _G_SIZES,
    "g6e": _G_SIZES,
    "trn1": ("2xlarge", "32xlarge"),
    "trn1n": ("32xlarge",),
}
_SIZE_VCPUS = {"medium": 2, "large": 2, "xlarge": 4}
# NVIDIA GPU families: XGBoost's CUDA device. Trainium (trn*) is no CUDA device: CPU threads.
_GPU_FAMILIES = ("p", "g")
# Named in the error for a type that is not in the table.
_EXAMPLES = ("ml.m5.xlarge", "ml.c5.2xlarge", "ml.p3.2xlarge")


class InstanceTypeError(ValueError):
    pass


def _family(instance_type: str) -> str:
    """The family (``m5`` of ``ml.m5.xlarge``) of a type in SAGEMAKER_INSTANCE_SIZES."""
    match = _INSTANCE_TYPE.fullmatch(instance_type)
    if not match or match["family"] not in SAGEMAKER_INSTANCE_SIZES:
        raise InstanceTypeError(
            f"{_PARAMETER}: {instance_type!r} is not a SageMaker instance type; use one such as "
            f"{', '.join(_EXAMPLES)}"
        )
    return match["family"]


def instance_vcpus(instance_type: str) -> int:
    """vCPUs of a SageMaker training instance type; InstanceTypeError for an unknown one.

    The count follows from the size as it does on EC2: 2 for medium and large, 4 per xlarge
    (ml.c5.18xlarge: 72, ml.p3.2xlarge: 8).
    """
    family = _family(instance_type)
    size = _INSTANCE_TYPE.fullmatch(instance_type)["size"]
    sizes = SAGEMAKER_INSTANCE_SIZES[family]
    if size not in sizes:
        raise InstanceTypeError(
            f"{_PARAMETER}: {instance_type!r} has an unknown size {size!r} for ml.{family} "
            f"(sizes: {', '.join(sizes)})"
        )
    if size in _SIZE_VCPUS:
        return _SIZE_VCPUS[size]
    return 4 * int(size.removesuffix("xlarge"))
