"""deploy/k8s checked as far as it can be without a cluster or a Docker engine: every YAML
parses; the run launcher and executor configuration validate against dagster-k8s's own config
schema; the presets are what the step-resource mapping gives; the Dockerfile installs the way
`make setup` and the README do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from dagster._config import validate_config
from dagster_k8s import K8sRunLauncher, k8s_job_executor

from abalone_platform.k8s_resources import (
    GPU_RESOURCE,
    TRAINING_STEP,
    k8s_run_config,
    training_pod_resources,
)
from abalone_platform.ml.train import InstanceTypeError, instance_vcpus
from abalone_platform_tests.support.project import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "k8s"
DEPLOY_YAMLS = sorted((REPO_ROOT / "deploy").rglob("*.yaml"))
PRESETS = sorted(K8S.glob("run_config_*.yaml"))


def test_there_is_something_to_check() -> None:
    names = {p.relative_to(REPO_ROOT / "deploy").as_posix() for p in DEPLOY_YAMLS}
    assert {"postgres/dagster.yaml", "k8s/values.yaml", "k8s/daskcluster.yaml"} <= names
    assert len(PRESETS) >= 2


@pytest.mark.parametrize("path", DEPLOY_YAMLS, ids=lambda p: p.name)
def test_every_yaml_parses(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text()))
    assert documents and all(isinstance(d, dict) for d in documents)


def _values() -> dict:
    return yaml.safe_load((K8S / "values.yaml").read_text())


def test_helm_values_use_the_image_the_launcher_and_postgres() -> None:
    values = _values()
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == [
        "-m",
        "abalone_platform.k8s_location",
        "--location-name",
        "abalone_platform",
    ]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert {s["name"] for s in deployment["envSecrets"]} == {"abalone-aws", "abalone-mlflow"}
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["DASK_SCHEDULER_ADDRESS"].startswith("tcp://abalone-dask-scheduler.")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is True
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"


def test_the_run_launcher_config_validates_against_dagster_k8s() -> None:
    """The K8sRunLauncher section of the instance the chart renders from these values (its
    configmap-instance template maps envSecrets -> env_secrets and so on), checked against
    K8sRunLauncher's own config schema; a wrong field fails it."""
    launcher = _values()["runLauncher"]["config"]["k8sRunLauncher"]
    rendered = {
        "instance_config_map": "abalone-dagster-instance",
        "dagster_home": "/opt/dagster/dagster_home",
        "postgres_password_secret": "abalone-postgres",
        "load_incluster_config": launcher["loadInclusterConfig"],
        "image_pull_policy": launcher["imagePullPolicy"],
        "env_secrets": [s["name"] for s in launcher["envSecrets"]],
        "env_config_maps": launcher["envConfigMaps"],
        "env_vars": launcher["envVars"],
        "volume_mounts": launcher["volumeMounts"],
        "volumes": launcher["volumes"],
    }
    result = validate_config(K8sRunLauncher.config_type(), rendered)
    assert result.success, result.errors
    broken = validate_config(K8sRunLauncher.config_type(), {**rendered, "env_secret": ["x"]})
    assert not broken.success


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_presets_validate_against_the_k8s_job_executor_schema(path: Path) -> None:
    preset = yaml.safe_load(path.read_text())
    instance_type = preset["resources"]["parameters"]["config"]["training_instance_type"]
    assert preset == k8s_run_config(instance_type), f"regenerate {path.name}"
    result = validate_config(
        k8s_job_executor.config_schema.config_type, preset["execution"]["config"]
    )
    assert result.success, result.errors


def test_a_wrong_executor_field_is_refused_by_the_schema() -> None:
    config = k8s_run_config()["execution"]["config"]
    config["per_step_k8s_config"][TRAINING_STEP]["container_configs"] = {}
    result = validate_config(k8s_job_executor.config_schema.config_type, config)
    assert not result.success


@pytest.mark.parametrize("instance_type", ["ml.m5.xlarge", "ml.p3.2xlarge"])
def test_the_step_pod_config_is_what_kubernetes_models_accept(instance_type: str) -> None:
    """container_config / pod_spec_config are free-form in Dagster's schema; dagster-k8s turns
    them into Kubernetes client models when it builds the step's Job. The same conversion here
    (strict: an unknown field raises)."""
    import kubernetes.client as k8s
    from dagster_k8s.models import k8s_model_from_dict

    step = k8s_run_config(instance_type)["execution"]["config"]["per_step_k8s_config"]
    container = k8s_model_from_dict(
        k8s.V1Container, {"name": "step", **step[TRAINING_STEP]["container_config"]}
    )
    assert container.resources.limits == training_pod_resources(instance_type)["limits"]
    if "pod_spec_config" in step[TRAINING_STEP]:
        pod = k8s_model_from_dict(
            k8s.V1PodSpec, {"containers": [], **step[TRAINING_STEP]["pod_spec_config"]}
        )
        assert pod.tolerations[0].key == GPU_RESOURCE
    with pytest.raises(Exception, match="resourcez"):
        k8s_model_from_dict(k8s.V1Container, {"name": "step", "resourcez": {}})


def test_the_k8s_code_location_runs_the_pipeline_on_the_k8s_job_executor() -> None:
    """The preset is accepted by the job itself (executor and parameters together), and the
    training step it sizes is a step of the job."""
    import dagster as dg

    from abalone_platform.k8s_location import build_k8s_defs

    job = build_k8s_defs().resolve_job_def("abalone_pipeline")
    assert job.executor_def is k8s_job_executor
    assert TRAINING_STEP in {node.name for node in job.graph.nodes}
    preset = k8s_run_config("ml.c5.2xlarge")
    validated = dg.validate_run_config(job, preset)
    assert TRAINING_STEP in str(validated["execution"])


@pytest.mark.parametrize(
    ("instance_type", "cpu", "memory", "gpus"),
    [
        ("ml.m5.xlarge", "4", "16Gi", None),
        ("ml.m5.large", "2", "8Gi", None),
        ("ml.c5.xlarge", "4", "8Gi", None),
        ("ml.c5.18xlarge", "72", "144Gi", None),
        ("ml.r5.2xlarge", "8", "64Gi", None),
        ("ml.t3.medium", "2", "8Gi", None),
        ("ml.trn1.2xlarge", "8", "32Gi", None),
        ("ml.p3.2xlarge", "8", "61Gi", "1"),
        ("ml.p3.16xlarge", "64", "488Gi", "8"),
        ("ml.g4dn.xlarge", "4", "16Gi", "1"),
        ("ml.g5.12xlarge", "48", "192Gi", "4"),
        ("ml.g5.48xlarge", "192", "768Gi", "8"),
    ],
)
def test_training_pod_resources(instance_type: str, cpu: str, memory: str, gpus: str | None):
    resources = training_pod_resources(instance_type)
    assert resources["requests"] == resources["limits"]  # Guaranteed, as an instance is
    assert resources["limits"]["cpu"] == cpu == str(instance_vcpus(instance_type))
    assert resources["limits"]["memory"] == memory
    assert resources["limits"].get(GPU_RESOURCE) == gpus


def test_gpu_presets_tolerate_gpu_nodes_and_cpu_presets_do_not() -> None:
    gpu = k8s_run_config("ml.g4dn.xlarge")["execution"]["config"]["per_step_k8s_config"]
    cpu = k8s_run_config("ml.m5.xlarge")["execution"]["config"]["per_step_k8s_config"]
    assert gpu[TRAINING_STEP]["pod_spec_config"]["tolerations"][0]["key"] == GPU_RESOURCE
    assert "pod_spec_config" not in cpu[TRAINING_STEP]


@pytest.mark.parametrize("instance_type", ["ml.zz9.xlarge", "ml.m5.3xlarge", "m5.xlarge"])
def test_types_the_parameter_refuses_are_refused(instance_type: str) -> None:
    with pytest.raises(InstanceTypeError):
        training_pod_resources(instance_type)


def _commands(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines()]


def test_the_dockerfile_installs_as_make_setup_and_the_readme_do() -> None:
    dockerfile = (K8S / "Dockerfile").read_text()
    makefile = (REPO_ROOT / "Makefile").read_text()
    # make: UV := $(PYTHON) -m uv with PYTHON ?= python3.11; bytecode compiled.
    python = re.search(r"^PYTHON \?= (\S+)", makefile, re.M)[1]
    assert re.search(r"^export UV_COMPILE_BYTECODE := 1$", makefile, re.M)
    assert re.search(r"^ENV UV_COMPILE_BYTECODE=1", dockerfile, re.M)
    setup = makefile.split("\nsetup:\n", 1)[1].split("\n\n", 1)[0]
    make_steps = [
        line.strip().lstrip("@").replace("$(UV)", f"{python} -m uv").replace("$(PYTHON)", python)
        for line in setup.splitlines()
    ]
    install = make_steps[0].split("|| ", 1)[1]  # the pip install of uv when it is missing
    sync = make_steps[1]
    run_line = " ".join(dockerfile.split("RUN ", 1)[1].split("\n\n", 1)[0].split())
    assert install in run_line, (install, run_line)
    assert sync in run_line, (sync, run_line)
    # The README's team section gives the same two commands for an image.
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Running for a team", 1)[1].split("\n## ", 1)[0]
    assert install in _commands(section)[section_line(section, install)]
    assert sync in _commands(section)[section_line(section, sync)]


def section_line(section: str, command: str) -> int:
    lines = _commands(section)
    matches = [i for i, line in enumerate(lines) if command in line]
    assert matches, f"the README's team section does not give `{command}`"
    return matches[0]
