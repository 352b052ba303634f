"""The sensors' ticks through build_sensor_context: first tick, repeat tick with the same
cursor, a new object, a changed object, a half-written object, listing errors."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from abalone_platform.defs.data.sensors import build_input_sensor
from abalone_platform.defs.deployment.sensors import build_batch_sensor
from abalone_platform.defs.shared.resources import ArtifactStore, ModelRegistry
from abalone_platform.defs.shared.watch import WatchSettings, watch_settings
from abalone_platform_tests.support.s3_server import S3Server
from abalone_platform_tests.support.ticks import tick

ROWS = b"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15\n"


def settings(location: str) -> WatchSettings:
    return WatchSettings(
        location=location,
        interval_s=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        is_default_location=False,
    )


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def resources(tmp_path: Path) -> dict:
    return {"artifacts": ArtifactStore(root=str(tmp_path / "home"), s3=S3Resource())}


def inputs_of(result: dg.SensorResult) -> list[str]:
    return [
        r.run_config["resources"]["parameters"]["config"]["input_data"] for r in result.run_requests
    ]


def bump_mtime(path: Path) -> None:
    # Two writes within the filesystem's timestamp resolution must still look different.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_local_folder_lifecycle(tmp_path, instance, resources):
    folder = tmp_path / "watch"
    folder.mkdir()
    sensor = build_input_sensor(settings(str(folder)))

    empty = tick(sensor, instance, None, resources)
    assert not empty.run_requests and "No new or changed" in empty.skip_reason.skip_message

    first = folder / "first.csv"
    first.write_bytes(ROWS * 10)
    (folder / ".first.csv.tmp").write_bytes(ROWS)  # temporary names are ignored
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / "notes.txt").write_bytes(b"not data")
    seen = tick(sensor, instance, empty.cursor, resources)
    assert not seen.run_requests and "first.csv" in seen.skip_reason.skip_message
    ready = tick(sensor, instance, seen.cursor, resources)
    assert inputs_of(ready) == [str(first.resolve())]
    [request] = ready.run_requests
    assert request.run_key.startswith(f"{first.resolve()}@{len(ROWS) * 10}-")
    assert request.job_name in (None, "abalone_pipeline")

    # The same cursor again: each version is processed once.
    repeat = tick(sensor, instance, ready.cursor, resources)
    assert not repeat.run_requests

    second = folder / "second.data"
    second.write_bytes(ROWS * 3)
    cursor = tick(sensor, instance, repeat.cursor, resources).cursor
    new = tick(sensor, instance, cursor, resources)
    assert inputs_of(new) == [str(second.resolve())]

    # A changed object is a new version: one more run, with a different run key.
    with open(first, "ab") as handle:
        handle.write(ROWS)
    bump_mtime(first)
    cursor = tick(sensor, instance, new.cursor, resources).cursor
    changed = tick(sensor, instance, cursor, resources)
    assert inputs_of(changed) == [str(first.resolve())]
    assert changed.run_requests[0].run_key != request.run_key
    assert not tick(sensor, instance, changed.cursor, resources).run_requests


def test_half_written_file_waits_until_its_size_is_stable(tmp_path, instance, resources):
    folder = tmp_path / "watch"
    folder.mkdir()
    sensor = build_input_sensor(settings(str(folder)))
    growing = folder / "growing.csv"
    growing.write_bytes(ROWS * 2)
    cursor = tick(sensor, instance, None, resources).cursor
    for _ in range(3):
        with open(growing, "ab") as handle:  # still being written between ticks
            handle.write(ROWS * 5)
        result = tick(sensor, instance, cursor, resources)
        assert not result.run_requests
        assert "still changing" in result.skip_reason.skip_message
        cursor = result.cursor
    done = tick(sensor, instance, cursor, resources)  # unchanged since the last tick
    assert inputs_of(done) == [str(growing.resolve())]


def test_listing_error_is_logged_and_the_sensor_keeps_going(tmp_path, instance, resources, capfd):
    folder = tmp_path / "not-yet"
    sensor = build_input_sensor(settings(str(folder)))
    failed = tick(sensor, instance, '{"done": {}, "seen": {}}', resources)
    assert not failed.run_requests
    assert f"{folder}: watched folder does not exist" in failed.skip_reason.skip_message
    # The tick's log (the daemon keeps it with the tick in the UI) gets a warning.
    assert "WARNING - Could not list the watched location" in capfd.readouterr().err
    assert failed.cursor == '{"done": {}, "seen": {}}'
    folder.mkdir()
    (folder / "late.csv").write_bytes(ROWS)
    cursor = tick(sensor, instance, failed.cursor, resources).cursor
    assert inputs_of(tick(sensor, instance, cursor, resources)) == [str(folder / "late.csv")]


def test_s3_prefix_lifecycle(aws_env: S3Server, bucket, instance, resources):
    client = aws_env.client()
    sensor = build_input_sensor(settings(f"s3://{bucket}/incoming/"))
    client.put_object(Bucket=bucket, Key="incoming/a.csv", Body=ROWS * 4)
    client.put_object(Bucket=bucket, Key="incoming/nested/b.csv", Body=ROWS)  # not directly under
    client.put_object(Bucket=bucket, Key="elsewhere/c.csv", Body=ROWS)
    # A multipart upload in progress is not an object yet: never listed, never picked up.
    upload = client.create_multipart_upload(Bucket=bucket, Key="incoming/half.csv")
    client.upload_part(
        Bucket=bucket,
        Key="incoming/half.csv",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=ROWS * 100,
    )
    first = tick(sensor, instance, None, resources)
    assert not first.run_requests
    second = tick(sensor, instance, first.cursor, resources)
    assert inputs_of(second) == [f"s3://{bucket}/incoming/a.csv"]
    assert not tick(sensor, instance, second.cursor, resources).run_requests

    client.put_object(Bucket=bucket, Key="incoming/a.csv", Body=ROWS * 5)  # new ETag and size
    client.put_object(Bucket=bucket, Key="incoming/new.csv", Body=ROWS)
    cursor = tick(sensor, instance, second.cursor, resources).cursor
    third = tick(sensor, instance, cursor, resources)
    assert sorted(inputs_of(third)) == [
        f"s3://{bucket}/incoming/a.csv",
        f"s3://{bucket}/incoming/new.csv",
    ]
    assert second.run_requests[0].run_key not in {r.run_key for r in third.run_requests}


def test_s3_listing_errors_skip_with_a_reason_and_no_secret(
    aws_env: S3Server, bucket, instance, resources, monkeypatch
):
    missing = tick(
        build_input_sensor(settings("s3://no-such-bucket-abalone/in/")), instance, "{}", resources
    )
    assert "s3://no-such-bucket-abalone/in/" in missing.skip_reason.skip_message
    assert "does not exist" in missing.skip_reason.skip_message
    assert missing.cursor == "{}"

    wrong = "wrong-" + aws_env.secret_access_key[::-1]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    denied = tick(build_input_sensor(settings(f"s3://{bucket}/in/")), instance, None, resources)
    message = denied.skip_reason.skip_message
    assert f"s3://{bucket}/in/" in message and "access denied" in message
    assert wrong not in message and aws_env.secret_access_key not in message


def test_batch_sensor_skips_without_an_approved_model(tmp_path, instance, resources):
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "day1.csv").write_bytes(ROWS)
    registry = ModelRegistry(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=(tmp_path / "mlartifacts").as_uri(),
    )
    sensor = build_batch_sensor(settings(str(folder)))
    all_resources = {**resources, "registry": registry}
    cursor = tick(sensor, instance, None, all_resources).cursor
    for _ in range(2):  # the file stays pending while nothing is approved
        result = tick(sensor, instance, cursor, all_resources)
        assert not result.run_requests
        assert "No Approved model package in AbaloneModelPackageGroupName" in (
            result.skip_reason.skip_message
        )
        cursor = result.cursor


def test_settings_come_from_the_environment_and_default_to_stopped(monkeypatch, tmp_path):
    for key in ("ABALONE_INPUT_WATCH", "ABALONE_INPUT_WATCH_INTERVAL", "ABALONE_SENSORS_RUNNING"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ABALONE_HOME", str(tmp_path))
    default = watch_settings("ABALONE_INPUT_WATCH", "input")
    assert default.location == str(tmp_path / "incoming" / "input")
    assert default.interval_s == 30 and default.is_default_location
    assert default.default_status == dg.DefaultSensorStatus.STOPPED

    monkeypatch.setenv("ABALONE_INPUT_WATCH", "s3://bucket/in/")
    monkeypatch.setenv("ABALONE_INPUT_WATCH_INTERVAL", "5")
    monkeypatch.setenv("ABALONE_SENSORS_RUNNING", "1")
    sensor = build_input_sensor()
    assert sensor.minimum_interval_seconds == 5
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert "s3://bucket/in/" in sensor.description
