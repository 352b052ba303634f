"""End to end on S3: train from an s3:// input with artifacts and MLflow's artifact store in a
bucket, then let new_batch_data_sensor score a batch file dropped under an s3:// prefix."""

from __future__ import annotations

import dagster as dg
from dagster._serdes import serialize_value

from abalone_platform.definitions import build_defs
from abalone_platform.defs.shared.resources import default_registry
from abalone_platform_tests.support.pipeline import run_pipeline
from abalone_platform_tests.support.project import ASSETS
from abalone_platform_tests.support.s3_server import S3Server
from abalone_platform_tests.support.ticks import run_request, tick

# model_package's uri is MLflow's artifact location, checked on its own.
IN_STORE = ASSETS[:-1]


def keys(client, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def assert_no_secret(instance: dg.DagsterInstance, run_id: str, secret: str) -> None:
    records = instance.all_logs(run_id)
    assert records, run_id
    for record in records:
        assert secret not in serialize_value(record), record.message
    run = instance.get_run_by_id(run_id)
    assert secret not in serialize_value(run)


def test_pipeline_and_batch_sensor_on_s3(
    in_process, aws_env: S3Server, bucket: str, abalone_file, monkeypatch, caplog
):
    client = aws_env.client()
    client.upload_file(str(abalone_file), bucket, "input/abalone.data")
    monkeypatch.setenv("ABALONE_ARTIFACT_ROOT", f"s3://{bucket}/artifacts")
    monkeypatch.setenv("ABALONE_BATCH_WATCH", f"s3://{bucket}/batch/")
    input_uri = f"s3://{bucket}/input/abalone.data"

    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(
            instance, {"input_data": input_uri, "model_approval_status": "Approved"}
        )
        assert result.success
        run_id = result.run_id
        stored = keys(client, bucket, "artifacts/")
        for asset in IN_STORE:
            assert any(k.startswith(f"artifacts/{asset}/{run_id}/") for k in stored), asset
        assert f"artifacts/deployable_model/{run_id}/bundle/manifest.json" in stored
        assert f"artifacts/batch_predictions/{run_id}/abalone.data.out" in stored
        process = instance.get_latest_materialization_event(dg.AssetKey("train_split"))
        metadata = process.asset_materialization.metadata
        assert metadata["uri"].value.startswith(f"s3://{bucket}/artifacts/train_split/")
        assert metadata["input_data"].value == input_uri

        # The registry version: SQLite stays local, its artifacts went to the bucket.
        registry = default_registry()
        assert registry.artifact_root == f"s3://{bucket}/artifacts/mlartifacts"
        version = registry.open().client.get_model_version(registry.model_name, "1")
        assert version.tags["bundle_uri"].startswith(f"s3://{bucket}/artifacts/deployable_model/")
        assert version.source.startswith(f"s3://{bucket}/artifacts/mlartifacts/")
        mlflow_keys = keys(client, bucket, "artifacts/mlartifacts/")
        # An MLflow model, its booster (XGBoost's format) an artifact of it, all in the bucket.
        assert any(k.endswith("/model/MLmodel") for k in mlflow_keys), mlflow_keys
        assert any("/model/artifacts/" in k and k.endswith("/model.ubj") for k in mlflow_keys)
        assert str(in_process.abalone_home) in registry.tracking_uri

        # A batch file dropped under the watched prefix: scored by the Approved version, no
        # retraining, output named after the object.
        defs = build_defs()
        sensor = defs.resolve_sensor_def("new_batch_data_sensor")
        resources = {
            "artifacts": defs.resources["artifacts"],
            "registry": defs.resources["registry"],
        }
        rows = abalone_file.read_bytes().splitlines(keepends=True)[:250]
        client.put_object(Bucket=bucket, Key="batch/day1.csv", Body=b"".join(rows))
        first = tick(sensor, instance, None, resources)
        assert (
            not first.run_requests and "picked up once unchanged" in first.skip_reason.skip_message
        )
        second = tick(sensor, instance, first.cursor, resources)
        [request] = second.run_requests
        assert request.asset_selection == [dg.AssetKey("batch_predictions")]
        config = request.run_config["resources"]["parameters"]["config"]
        assert config == {"batch_data": f"s3://{bucket}/batch/day1.csv", "model_package_version": 1}

        batch = run_request(defs, instance, request)
        assert batch.success
        materialized = {e.asset_key.path[-1] for e in batch.get_asset_materialization_events()}
        assert materialized == {"batch_predictions"}
        out_key = f"artifacts/batch_predictions/{batch.run_id}/day1.csv.out"
        predictions = client.get_object(Bucket=bucket, Key=out_key)["Body"].read().splitlines()
        assert len(predictions) == 250
        latest = instance.get_latest_materialization_event(dg.AssetKey("batch_predictions"))
        assert latest.asset_materialization.metadata["model_package_version"].value == 1

        # An explicit version that does not exist is refused, naming it.
        missing = defs.resolve_job_def("abalone_pipeline").execute_in_process(
            run_config={"resources": {"parameters": {"config": {"model_package_version": 99}}}},
            instance=instance,
            asset_selection=request.asset_selection,
            raise_on_error=False,
        )
        assert not missing.success
        [failure] = [e for e in missing.all_events if e.is_step_failure]
        assert "model_package_version 99: no such version" in str(failure.event_specific_data)

        for checked in (run_id, batch.run_id):
            assert_no_secret(instance, checked, aws_env.secret_access_key)
    assert aws_env.secret_access_key not in caplog.text
