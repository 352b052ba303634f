"""The pipeline on a Dask cluster started by hand (`dask scheduler` + two `dask worker`
processes) through DASK_SCHEDULER_ADDRESS: both workers run tasks, outputs are those of one
process, S3 inputs are read by the workers themselves; an unreachable scheduler fails the step
before any work, naming the variable and the address."""

from __future__ import annotations

from pathlib import Path

import pytest

from abalone_platform.compute.cluster import SCHEDULER_VARIABLE
from abalone_platform.compute.ranges import RangeSource, RangeSourceError
from abalone_platform.ml.data import line_aligned_ranges
from abalone_platform_tests.support.dask_scheduler import dask_scheduler
from abalone_platform_tests.support.faults import instance_of, materializations
from abalone_platform_tests.support.project import Env, free_port, make_env
from abalone_platform_tests.support.s3_server import S3Server

pytestmark = pytest.mark.slow


def config(tmp_path: Path, **parameters: object) -> Path:
    lines = [f"      {k}: {v}" for k, v in parameters.items()]
    path = tmp_path / f"run-{len(list(tmp_path.glob('run-*.yaml')))}.yaml"
    path.write_text("resources:\n  parameters:\n    config:\n" + "\n".join(lines) + "\n")
    return path


def last_run(env: Env, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, dict]]:
    with instance_of(env, monkeypatch) as instance:
        run = instance.get_runs(limit=1)[0]
        return run.status.value, materializations(instance, run.run_id)


OUTPUTS = ("train_split", "validation_split", "test_split", "preprocessor", "batch_predictions")


def test_the_pipeline_runs_on_a_scheduler_and_workers_started_by_hand(
    tmp_path: Path, abalone_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(tmp_path, abalone_file)
    assert env.execute(config(tmp_path, seed=42)).returncode == 0
    _, one_process = last_run(env, monkeypatch)
    with dask_scheduler(tmp_path) as cluster:
        # Computed on the cluster, not reused from the first run (whose outputs it must equal).
        done = env.execute(
            config(tmp_path, processing_instance_count=2, enable_caching="false"),
            extra={SCHEDULER_VARIABLE: cluster.address},
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    status, on_dask = last_run(env, monkeypatch)
    assert status == "SUCCESS"
    for step in ("train_split", "batch_predictions"):
        metadata = on_dask[step]
        assert metadata["compute"] == f"Dask scheduler {cluster.address}"
        # Both workers started by hand ran tasks of this step.
        assert set(metadata["dask_tasks_per_worker"]) == set(cluster.workers), step
    for name in OUTPUTS:
        assert on_dask[name]["sha256"] == one_process[name]["sha256"], name


def test_workers_read_an_s3_input_themselves(
    tmp_path: Path,
    abalone_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    aws_env: S3Server,
    bucket: str,
) -> None:
    aws_env.client().upload_file(str(abalone_file), bucket, "in/abalone.data")
    uri = f"s3://{bucket}/in/abalone.data"
    env = make_env(tmp_path, abalone_file, **aws_env.env())
    reference = make_env(tmp_path / "reference", abalone_file)
    assert reference.execute(config(tmp_path, seed=42)).returncode == 0
    _, one_process = last_run(reference, monkeypatch)
    with dask_scheduler(tmp_path, env=aws_env.env()) as cluster:
        done = env.execute(
            config(tmp_path, processing_instance_count=2, input_data=uri, batch_data=uri),
            extra={SCHEDULER_VARIABLE: cluster.address},
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _, on_dask = last_run(env, monkeypatch)
    assert set(on_dask["batch_predictions"]["dask_tasks_per_worker"]) == set(cluster.workers)
    for name in OUTPUTS:
        assert on_dask[name]["sha256"] == one_process[name]["sha256"], name


def test_an_s3_range_is_the_objects_bytes_at_the_etag_the_step_hashed(
    tmp_path: Path, abalone_file: Path, aws_env: S3Server, bucket: str
) -> None:
    """What a worker reads for an s3:// input: a ranged GET pinned to the ETag; an object
    replaced since the step hashed it is an error, never a mix of two versions."""
    s3 = aws_env.client()
    s3.upload_file(str(abalone_file), bucket, "in/abalone.data")
    etag = s3.head_object(Bucket=bucket, Key="in/abalone.data")["ETag"]
    uri = f"s3://{bucket}/in/abalone.data"
    data = abalone_file.read_bytes()
    source = RangeSource(path=str(tmp_path / "not-on-this-worker"), s3_uri=uri, etag=etag)
    for start, end in line_aligned_ranges(abalone_file, 3):
        with source.open(start, end) as stream:
            assert stream.read() == data[start:end]
    s3.put_object(Bucket=bucket, Key="in/abalone.data", Body=data[:1000])
    with pytest.raises(RangeSourceError, match="bytes 0-99"), source.open(0, 100):
        pass
    with pytest.raises(RangeSourceError, match="cannot see"):
        with RangeSource(path=str(tmp_path / "missing.csv")).open(0, 10):
            pass


def test_an_unreachable_scheduler_fails_the_step_before_any_work(
    tmp_path: Path, abalone_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(tmp_path, abalone_file)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    done = env.execute(
        config(tmp_path, processing_instance_count=2), extra={SCHEDULER_VARIABLE: address}
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"{SCHEDULER_VARIABLE}={address}: cannot reach the Dask scheduler" in output
    status, made = last_run(env, monkeypatch)
    assert status == "FAILURE" and made == {}, "nothing was materialized"
