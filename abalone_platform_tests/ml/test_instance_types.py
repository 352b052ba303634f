"""TrainingInstanceType: only real SageMaker instance types, with their vCPU counts."""

from __future__ import annotations

import os

import pytest

from abalone_platform.ml.train import (
    SAGEMAKER_INSTANCE_SIZES,
    InstanceTypeError,
    cuda_available,
    instance_vcpus,
    resolve_compute,
)

PARAMETER = "training_instance_type (TrainingInstanceType)"
SUGGESTION = "use one such as ml.m5.xlarge, ml.c5.2xlarge, ml.p3.2xlarge"


@pytest.mark.parametrize(
    ("instance_type", "vcpus"),
    [
        ("ml.m5.large", 2),
        ("ml.m5.xlarge", 4),
        ("ml.m5.24xlarge", 96),
        ("ml.m4.10xlarge", 40),
        ("ml.c5.xlarge", 4),
        ("ml.c5.2xlarge", 8),
        ("ml.c5.9xlarge", 36),
        ("ml.c5.18xlarge", 72),
        ("ml.c5n.18xlarge", 72),
        ("ml.t2.medium", 2),
        ("ml.t3.2xlarge", 8),
        ("ml.r5.12xlarge", 48),
        ("ml.m6i.32xlarge", 128),
        ("ml.c7i.48xlarge", 192),
        ("ml.p2.xlarge", 4),
        ("ml.p3.2xlarge", 8),
        ("ml.p3.16xlarge", 64),
        ("ml.p3dn.24xlarge", 96),
        ("ml.p4d.24xlarge", 96),
        ("ml.p5.48xlarge", 192),
        ("ml.g4dn.xlarge", 4),
        ("ml.g4dn.12xlarge", 48),
        ("ml.g5.xlarge", 4),
        ("ml.g6e.48xlarge", 192),
        ("ml.trn1.32xlarge", 128),
    ],
)
def test_real_instance_types_and_their_vcpus(instance_type: str, vcpus: int) -> None:
    assert instance_vcpus(instance_type) == vcpus


def test_every_listed_type_is_accepted() -> None:
    for family, sizes in SAGEMAKER_INSTANCE_SIZES.items():
        assert sizes, family
        for size in sizes:
            assert instance_vcpus(f"ml.{family}.{size}") >= 2


@pytest.mark.parametrize(
    "instance_type",
    [
        "ml.zz9.xlarge",
        "ml.m99.xlarge",
        "ml.x5.xlarge",
        "ml.inf1.xlarge",  # inference only: no training or processing jobs
        "m5.xlarge",
        "ml.m5",
        "ML.M5.XLARGE",
        "ml.m5.xlarge ",
        "ml.m5.xlarge\n",
        "",
    ],
)
def test_unknown_instance_types_are_refused_with_examples(instance_type: str) -> None:
    with pytest.raises(InstanceTypeError) as caught:
        instance_vcpus(instance_type)
    assert str(caught.value) == (
        f"{PARAMETER}: {instance_type!r} is not a SageMaker instance type; {SUGGESTION}"
    )
    with pytest.raises(InstanceTypeError, match="is not a SageMaker instance type"):
        resolve_compute(instance_type)


@pytest.mark.parametrize(
    ("instance_type", "problem"),
    [
        (
            "ml.m5.huge",
            "has an unknown size 'huge' for ml.m5 "
            "(sizes: large, xlarge, 2xlarge, 4xlarge, 12xlarge, 24xlarge)",
        ),
        (
            "ml.p3.xlarge",
            "has an unknown size 'xlarge' for ml.p3 (sizes: 2xlarge, 8xlarge, 16xlarge)",
        ),
        ("ml.m5.metal", "has an unknown size 'metal' for ml.m5"),
        ("ml.c5.3xlarge", "has an unknown size '3xlarge' for ml.c5"),
    ],
)
def test_a_size_the_family_lacks_is_refused(instance_type: str, problem: str) -> None:
    with pytest.raises(InstanceTypeError) as caught:
        instance_vcpus(instance_type)
    assert str(caught.value).startswith(f"{PARAMETER}: {instance_type!r} {problem}")


def test_cpu_families_train_on_the_cpu_with_capped_threads() -> None:
    for instance_type, vcpus in (("ml.m5.xlarge", 4), ("ml.c5.xlarge", 4), ("ml.trn1.2xlarge", 8)):
        compute = resolve_compute(instance_type)
        assert (compute.device, compute.vcpus) == ("cpu", vcpus)
        assert compute.nthread == max(1, min(vcpus, os.cpu_count() or 1))


@pytest.mark.parametrize("instance_type", ["ml.p3.2xlarge", "ml.g5.xlarge", "ml.g4dn.xlarge"])
def test_gpu_families_ask_for_cuda(instance_type: str) -> None:
    if cuda_available():
        assert resolve_compute(instance_type).device == "cuda"
    else:
        with pytest.raises(InstanceTypeError) as caught:
            resolve_compute(instance_type)
        assert str(caught.value) == (
            f"{PARAMETER}: {instance_type} is a GPU instance type but XGBoost finds no CUDA "
            "device here; choose a CPU type such as ml.m5.xlarge"
        )
