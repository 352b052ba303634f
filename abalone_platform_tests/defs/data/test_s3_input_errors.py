"""Bad s3:// input through a real pipeline run: a clear failure naming the URI, and the
credentials nowhere in the run's event log."""

from __future__ import annotations

import dagster as dg
from dagster._serdes import serialize_value

from abalone_platform_tests.support.pipeline import run_pipeline
from abalone_platform_tests.support.s3_server import S3Server


def failure_text(instance: dg.DagsterInstance, run_id: str) -> str:
    return "\n".join(
        str(record.dagster_event.event_specific_data)
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    )


def test_missing_key_fails_the_run_naming_the_uri(in_process, aws_env: S3Server, bucket):
    uri = f"s3://{bucket}/input/nothing-here.csv"
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance, {"input_data": uri})
        assert not result.success
        text = failure_text(instance, result.run_id)
        assert f"input_data (InputData): {uri}: no such key 'input/nothing-here.csv'" in text
        for record in instance.all_logs(result.run_id):
            assert aws_env.secret_access_key not in serialize_value(record)
