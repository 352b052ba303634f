"""`dagster dev` serves the code location and completes a run launched as the UI launches it."""

import pytest

from abalone_platform_tests.support.dagster_dev import LOCATION, dagster_dev
from abalone_platform_tests.support.project import ASSETS, Env
from abalone_platform_tests.support.registry import registered_versions

# Starts a real `dagster dev`: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def test_materialize_all_through_graphql_succeeds(env: Env) -> None:
    with dagster_dev(env) as server:
        # What the asset graph's "Materialize all" sends: the implicit asset job with a selection.
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": [name]} for name in ASSETS],
                "assetCheckSelection": [
                    {"assetKey": {"path": ["evaluation_report"]}, "name": "mse_within_threshold"}
                ],
            },
            "runConfigData": {},
            "mode": "default",
        }
        launched = server.graphql(LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        assert server.wait_for_run(run_id) == "SUCCESS", server.log.read_text()[-4000:]

        # And the named job with a parameter set in the launchpad.
        params["selector"] = {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "jobName": "abalone_pipeline",
        }
        params["runConfigData"] = {
            "resources": {"parameters": {"config": {"model_approval_status": "Approved"}}}
        }
        launched = server.graphql(LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        assert server.wait_for_run(launched["run"]["runId"]) == "SUCCESS"

    versions = registered_versions(env.tracking_uri())
    assert [(v["version"], v["status"], v["dagster_run_id"] == run_id) for v in versions] == [
        ("1", "PendingManualApproval", True),
        ("2", "Approved", False),
    ]
