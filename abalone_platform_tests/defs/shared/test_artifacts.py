"""Artifacts: immutable per run, atomic, sha256-checked, never mixed between concurrent runs."""

import json
from pathlib import Path

import dagster as dg
import pytest

from abalone_platform_tests.support.pipeline import execute_at_once, run_pipeline
from abalone_platform_tests.support.project import ASSETS, Env
from abalone_platform_tests.support.registry import registered_versions

# Runs the pipeline in subprocesses or several times over: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_every_asset_records_uri_and_sha256_and_runs_never_overwrite(in_process: Env) -> None:
    artifacts = in_process.abalone_home / "artifacts"
    with dg.DagsterInstance.get() as instance:
        first = run_pipeline(instance)
        assert first.success
        before = files_under(artifacts)
        assert not [name for name in before if Path(name).name.startswith(".")], before
        for event in first.get_asset_materialization_events():
            meta = event.materialization.metadata
            assert meta["uri"].value and len(meta["sha256"].value) == 64, event.asset_key

        second = run_pipeline(instance, {"seed": 7})
        assert second.success
    after = files_under(artifacts)
    assert {k: after[k] for k in before} == before
    assert {Path(k).parts[1] for k in after} == {first.run_id, second.run_id}
    second_mse = [
        e.materialization.metadata["mse"].value
        for e in second.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("evaluation_report")
    ]
    first_report = json.loads(next(v for k, v in before.items() if k.endswith("evaluation.json")))
    assert first_report["regression_metrics"]["mse"]["value"] != second_mse[0]


def test_a_tampered_model_is_refused(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance, {"mse_threshold": 0.1})
        assert not result.success
        [model] = (in_process.abalone_home / "artifacts" / "trained_model").rglob("model.ubj")
        model.write_bytes(model.read_bytes()[:-1] + b"\x00")
        # Computed again (no cache), the evaluation reads the model and refuses it.
        again = run_pipeline(instance, {"enable_caching": False}, ["evaluation_report"])
        assert not again.success
        [failure] = [e for e in again.all_events if e.is_step_failure]
        error = failure.step_failure_data.error
        assert error.cause.cls_name == "ArtifactIntegrityError"
        assert "does not match the recorded" in error.cause.message
        # A cached evaluation does not read the model, but the bundle does: still refused
        # before anything is deployed or registered.
        cached = run_pipeline(instance, selection=["evaluation_report", "deployable_model"])
        assert not cached.success
        [failure] = [e for e in cached.all_events if e.is_step_failure]
        assert failure.step_key == "deployable_model"
        assert failure.step_failure_data.error.cause.cls_name == "ArtifactIntegrityError"


def test_two_runs_at_once_get_their_own_files_and_versions(env: Env, tmp_path: Path) -> None:
    # Caching off: each run computes every step (with caching on, one run may reuse the
    # other's files by design; test_caching covers that).
    config = tmp_path / "no_cache.yaml"
    config.write_text("resources:\n  parameters:\n    config:\n      enable_caching: false\n")
    execute_at_once(env, 2, config)
    versions = registered_versions(env.tracking_uri())
    assert sorted(v["version"] for v in versions) == ["1", "2"]
    run_ids = {v["dagster_run_id"] for v in versions}
    assert len(run_ids) == 2
    instance = dg.DagsterInstance.from_config(str(env.dagster_home))
    with instance:
        for run_id in run_ids:
            uris = [
                r.asset_materialization.metadata["uri"].value
                for r in instance.get_records_for_run(
                    run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                ).records
            ]
            assert len(uris) == len(ASSETS)
            store = (env.abalone_home / "artifacts").as_uri()
            in_store = [u for u in uris if u.startswith(store)]
            assert len(in_store) == len(ASSETS) - 1  # model_package's uri is MLflow's
            assert all(f"/{run_id}/" in u for u in in_store), uris
