"""The console script end to end, as a person runs it after the notebook's three executions."""

import json

import pytest

from abalone_platform_tests.support.notebook import cli
from abalone_platform_tests.support.project import PIPELINE_STEPS, SHARED_ABALONE, make_env

UCI_SHA256 = "de37cdcdcaaa50c309d514f248f7c2302a5f1f88c168905eba23fe2fbc78449f"


def ok(result):
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(result, message):
    assert result.returncode == 1, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def version_rows(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for line in stdout.splitlines()[2:]:
        cells = line.split()
        rows[cells[0]] = cells
    return rows


def test_registry_story(notebook):
    env = notebook.env
    rows = version_rows(ok(cli(env, "registry", "list")))
    assert rows["1"][1] == "PendingManualApproval" and rows["1"][-1] == notebook.run_ids[0]
    assert rows["2"][1] == "Approved" and rows["2"][-1] == "approved"

    change = json.loads(
        ok(cli(env, "registry", "approve", "1", "--reason", "residuals look fine", "--json"))
    )
    assert change["from"] == "PendingManualApproval" and change["to"] == "Approved"
    assert change["approved_alias"] == "2"
    out = ok(cli(env, "registry", "reject", "2", "--reason", "drift", "--by", "carol"))
    assert "version 2: Approved -> Rejected by carol" in out
    assert "alias approved -> version 1" in out

    refused(
        cli(env, "registry", "approve", "2", "--reason", "again"),
        "version 2 is Rejected; it cannot become Approved",
    )
    refused(cli(env, "registry", "reject", "7", "--reason", "x"), "has no version 7")

    listed = json.loads(ok(cli(env, "registry", "list", "--json")))
    assert [(v["version"], v["approval_status"], v["aliases"]) for v in listed] == [
        (1, "Approved", ["approved"]),
        (2, "Rejected", []),
    ]
    described = json.loads(ok(cli(env, "registry", "describe", "2", "--json")))
    assert [(h["to"], h["by"]) for h in described["approval_history"]][1:] == [
        ("Rejected", "carol")
    ]
    assert described["approval_history"][1]["reason"] == "drift"
    assert described["metrics"]["mse"] > 0 and described["inference_spec"]


def test_lineage_and_executions(notebook):
    env = notebook.env
    lineage = ok(cli(env, "lineage", "2"))
    assert UCI_SHA256 in lineage
    for step in ("AbaloneProcess", "AbaloneTrain", "AbaloneEval", "AbaloneTransform"):
        assert f"\n{step} (" in lineage
    for column in ("Name/Source", "Direction", "Type", "Association Type", "Lineage Type"):
        assert column in lineage

    failed = ok(cli(env, "executions", "describe", notebook.run_ids[2]))
    assert "FAILURE" in failed
    assert "failure reason: Execution failed due to MSE > 3.0" in failed
    assert "Outcome False (MSE" in failed and "threshold 3.0" in failed

    runs = json.loads(ok(cli(env, "executions", "list", "--json")))
    assert [r["run_id"] for r in runs] == notebook.run_ids[::-1]
    refused(cli(env, "executions", "describe", "no-such-run"), "no run 'no-such-run'")


def test_definition_is_json(notebook):
    definition = json.loads(ok(cli(notebook.env, "definition")))
    assert {p["sagemaker_name"] for p in definition["Parameters"]} >= {"MseThreshold", "InputData"}
    assert [s["Name"] for s in definition["Steps"]] == list(PIPELINE_STEPS)


@pytest.mark.slow
def test_empty_registry_and_instance(tmp_path):
    env = make_env(tmp_path, SHARED_ABALONE)
    assert "has no versions yet" in ok(cli(env, "registry", "list"))
    refused(cli(env, "registry", "describe", "1"), "holds no versions yet")
    assert "No runs" in ok(cli(env, "executions", "list"))


@pytest.mark.parametrize("args", [["registry"], ["registry", "approve", "1"]])
def test_usage_errors(args, tmp_path):
    result = cli(make_env(tmp_path, SHARED_ABALONE), *args)
    assert result.returncode == 2 and "usage: abalone-platform" in result.stderr
