"""Dagster's project conventions from the repository root: `dg check defs`, `dg list defs`,
`dg launch --job abalone_pipeline` and `dg dev` work on the [tool.dg] project as they do for
`dagster` with the workspace file."""

from __future__ import annotations

import json

import pytest

from abalone_platform_tests.support.dagster_dev import DG_DEV, LOCATION, dagster_dev
from abalone_platform_tests.support.project import ASSETS, BIN, SAGEMAKER_STEP_OF_ASSET, Env
from abalone_platform_tests.support.registry import registered_versions

APPROVED = {"resources": {"parameters": {"config": {"model_approval_status": "Approved"}}}}


def dg(env: Env, *args: str, timeout: float = 300):
    return env.run(str(BIN / "dg"), *args, timeout=timeout)


@pytest.mark.slow
def test_check_and_list_defs(env: Env) -> None:
    checked = dg(env, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    listed = dg(env, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    defs = json.loads(listed.stdout)
    assert sorted(a["asset_key"] for a in defs["assets"]) == sorted(ASSETS)
    # The SageMaker step each asset stands for, as data the UI and dg show.
    assert {
        a["asset_key"]: {t["key"]: t["value"] for t in a["tags"]}.get("sagemaker/step")
        for a in defs["assets"]
    } == SAGEMAKER_STEP_OF_ASSET
    assert [c["key"] for c in defs["asset_checks"]] == ["evaluation_report:mse_within_threshold"]
    assert [j["name"] for j in defs["jobs"]] == ["abalone_pipeline"]
    assert sorted(s["name"] for s in defs["sensors"]) == [
        "new_batch_data_sensor",
        "new_input_data_sensor",
    ]
    assert {r["name"] for r in defs["resources"]} >= {"parameters", "artifacts", "registry", "s3"}


@pytest.mark.slow
def test_launch_runs_the_pipeline_job(env: Env) -> None:
    launched = dg(
        env,
        "launch",
        "--job",
        "abalone_pipeline",
        "--config-json",
        json.dumps(
            {"resources": {"parameters": {"config": {"model_approval_status": "Approved"}}}}
        ),
    )
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    versions = registered_versions(env.tracking_uri())
    assert [(v["version"], v["status"]) for v in versions] == [("1", "Approved")]


@pytest.mark.slow
def test_dg_dev_serves_the_code_location(env: Env) -> None:
    query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } "
    query += "jobs { name } sensors { name } } } } }"
    with dagster_dev(env, command=DG_DEV) as server:
        nodes = server.graphql(query)["repositoriesOrError"]["nodes"]
    assert [n["location"]["name"] for n in nodes] == [LOCATION]
    assert "abalone_pipeline" in {j["name"] for j in nodes[0]["jobs"]}
    assert {s["name"] for s in nodes[0]["sensors"]} == {
        "new_batch_data_sensor",
        "new_input_data_sensor",
    }
