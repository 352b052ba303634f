"""Step caching (SageMaker's CacheConfig) on a real instance: hits reuse the earlier run's
artifacts with the same uri/sha256 and `cache_hit_of`, every change that matters is a miss, a
damaged entry is recomputed, and the gate and registration always run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from abalone_platform import step_cache
from abalone_platform.definitions import build_defs
from abalone_platform.defs.shared import caching
from abalone_platform.records.executions import describe_execution
from abalone_platform_tests.support.pipeline import (
    execute_at_once,
    failure_text,
    meta,
    run_pipeline,
)
from abalone_platform_tests.support.project import Env
from abalone_platform_tests.support.registry import registered_versions

# Runs the pipeline several times over: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

PROCESS = ["train_split", "validation_split", "test_split", "preprocessor"]
CACHED = [*PROCESS, "trained_model", "evaluation_report", "batch_predictions"]
# Up to the evaluation: enough for the steps whose keys these tests change.
UP_TO_EVALUATION = [*PROCESS, "tuned_hyperparameters", "trained_model", "evaluation_report"]


def hits(result: dg.ExecuteInProcessResult) -> dict[str, str | None]:
    """Each materialized asset's cache_hit_of (None: computed in this run)."""
    return {
        e.asset_key.to_user_string(): getattr(
            e.materialization.metadata.get(caching.CACHE_HIT_OF), "value", None
        )
        for e in result.get_asset_materialization_events()
    }


def logged(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance) -> str:
    return "\n".join(
        record.user_message for record in instance.all_logs(result.run_id) if record.user_message
    )


def artifact_path(metadata: dict[str, Any]) -> Path:
    return Path(str(metadata["uri"]).removeprefix("file://"))


def test_an_identical_run_reuses_every_cached_step_and_still_gates_and_registers(
    in_process: Env,
) -> None:
    with dg.DagsterInstance.get() as instance:
        first = run_pipeline(instance)
        assert first.success, failure_text(first)
        assert set(hits(first).values()) == {None}
        second = run_pipeline(instance)
        assert second.success, failure_text(second)
        reused = hits(second)
        for asset in CACHED:
            assert reused[asset] == first.run_id, asset
            # The same artifact, recorded again in this run: same uri and sha256.
            assert meta(second, asset)["uri"] == meta(first, asset)["uri"]
            assert meta(second, asset)["sha256"] == meta(first, asset)["sha256"]
            assert meta(second, asset)[caching.CACHE_KEY] == meta(first, asset)[caching.CACHE_KEY]
        # Never cached: the bundle (cheap; its sha256 is its content's, hence the transform's
        # hit) and the registration.
        assert reused["deployable_model"] is None and reused["model_package"] is None
        assert (
            meta(second, "deployable_model")["sha256"] == meta(first, "deployable_model")["sha256"]
        )
        # Lineage names this run's inputs: each hit's chain points at the second run.
        assert meta(second, "trained_model")["upstream"]["train_split"]["run_id"] == second.run_id
        assert (
            meta(second, "evaluation_report")["upstream"]["trained_model"]["run_id"]
            == second.run_id
        )
        # The gate ran and passed on the reused evaluation.
        [check] = second.get_asset_check_evaluations()
        assert (
            check.passed and check.metadata["mse"].value == meta(first, "evaluation_report")["mse"]
        )
        assert f"cache hit: reusing run {first.run_id}" in logged(second, instance)
        # `abalone-platform executions describe` shows it per step (SageMaker's CacheHitResult).
        steps = {
            s["name"]: s for s in describe_execution(instance, build_defs(), second.run_id)["steps"]
        }
        for step in ("abalone_process", "trained_model", "evaluation_report", "batch_predictions"):
            assert steps[step]["cache_hit_of"] == first.run_id, step
        assert "cache_hit_of" not in steps["model_package"]
    versions = registered_versions(in_process.tracking_uri())
    assert [v["version"] for v in versions] == ["1", "2"]
    assert [v["dagster_run_id"] for v in versions] == [first.run_id, second.run_id]
    # The same model: both versions' bundles hold the same bytes.
    assert versions[0]["bundle_sha256"] == versions[1]["bundle_sha256"]


def test_each_change_that_matters_is_a_miss(
    in_process: Env, tmp_path: Path, abalone_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.DagsterInstance.get() as instance:
        first = run_pipeline(instance, selection=UP_TO_EVALUATION)
        assert first.success, failure_text(first)

        # Another seed: a miss from processing down.
        seeded = run_pipeline(instance, {"seed": 7}, UP_TO_EVALUATION)
        assert seeded.success
        assert {hits(seeded)[a] for a in UP_TO_EVALUATION} == {None}

        # Another input file (the same rows plus one): a miss from processing down.
        other = tmp_path / "abalone_plus_one.data"
        lines = abalone_file.read_text().splitlines()
        other.write_text("\n".join([*lines, lines[0]]) + "\n")
        changed = run_pipeline(instance, {"input_data": str(other)}, UP_TO_EVALUATION)
        assert changed.success
        assert {hits(changed)[a] for a in UP_TO_EVALUATION} == {None}
        assert meta(changed, "train_split")["input_rows"] == len(lines) + 1

        # The same bytes under another path: a hit (the key holds the input's sha256).
        same_bytes = tmp_path / "copy.data"
        same_bytes.write_bytes(abalone_file.read_bytes())
        copied = run_pipeline(instance, {"input_data": str(same_bytes)}, PROCESS)
        assert {hits(copied)[a] for a in PROCESS} == {first.run_id}
        # ... recorded with the path this run was given.
        assert meta(copied, "train_split")["input_data"] == str(same_bytes)

        # enable_caching false: computed, though an entry exists.
        off = run_pipeline(instance, {"enable_caching": False}, UP_TO_EVALUATION)
        assert off.success
        assert {hits(off)[a] for a in UP_TO_EVALUATION} == {None}
        assert "enable_caching is false" in logged(off, instance)
        # Its artifacts are new files with the same bytes (every step is seeded).
        assert meta(off, "trained_model")["uri"] != meta(first, "trained_model")["uri"]
        assert meta(off, "trained_model")["sha256"] == meta(first, "trained_model")["sha256"]

        # Another code version of the steps: a miss.
        monkeypatch.setattr(step_cache, "step_code_version", lambda module: f"edited:{module}")
        recoded = run_pipeline(instance, selection=UP_TO_EVALUATION)
        assert recoded.success
        assert {hits(recoded)[a] for a in UP_TO_EVALUATION} == {None}


def test_an_expired_entry_is_computed_again(
    in_process: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.DagsterInstance.get() as instance:
        first = run_pipeline(instance, selection=PROCESS)
        assert first.success
        fresh = run_pipeline(instance, {"cache_expire_after": "P1D"}, PROCESS)
        assert {hits(fresh)[a] for a in PROCESS} == {first.run_id}
        # A day and a minute later (the clock the lookup reads, moved forward).
        later = caching.clock() + 86_460
        monkeypatch.setattr(caching, "clock", lambda: later)
        expired = run_pipeline(instance, {"cache_expire_after": "P1D"}, PROCESS)
        assert expired.success
        assert {hits(expired)[a] for a in PROCESS} == {None}
        assert "expired" in logged(expired, instance)
        # Without an expiry the same entry is still good.
        kept = run_pipeline(instance, selection=PROCESS)
        assert {hits(kept)[a] for a in PROCESS} == {expired.run_id}


def test_a_corrupted_or_missing_entry_is_recomputed_never_reused(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        first = run_pipeline(instance, selection=UP_TO_EVALUATION)
        assert first.success
        # One flipped byte in the cached train split.
        split = artifact_path(meta(first, "train_split"))
        data = bytearray(split.read_bytes())
        data[len(data) // 2] ^= 0xFF
        split.write_bytes(bytes(data))
        second = run_pipeline(instance, selection=UP_TO_EVALUATION)
        assert second.success, failure_text(second)
        assert {hits(second)[a] for a in PROCESS} == {None}
        assert "not reusing run" in logged(second, instance)
        # Recomputed into this run's own directory, with the bytes the first run recorded.
        recomputed = meta(second, "train_split")
        assert recomputed["uri"] != meta(first, "train_split")["uri"]
        assert recomputed["sha256"] == meta(first, "train_split")["sha256"]
        assert artifact_path(recomputed).read_bytes() != bytes(data)
        # Its downstream steps then hit the first run's entries (same input sha256s)...
        assert hits(second)["trained_model"] == first.run_id
        # ...unless that entry's file is gone.
        artifact_path(meta(first, "trained_model")).unlink()
        third = run_pipeline(instance, selection=UP_TO_EVALUATION)
        assert third.success, failure_text(third)
        assert hits(third)["trained_model"] is None
        assert hits(third)["train_split"] == second.run_id


def test_a_fully_cached_run_is_still_held_to_its_own_threshold(in_process: Env) -> None:
    with dg.DagsterInstance.get() as instance:
        first = run_pipeline(instance)
        assert first.success
        strict = run_pipeline(instance, {"mse_threshold": 3.0})
        assert not strict.success
        # Every cached step up to the evaluation was a hit; the gate still failed the run and
        # nothing after it ran.
        assert {hits(strict)[a] for a in [*PROCESS, "trained_model", "evaluation_report"]} == {
            first.run_id
        }
        [check] = strict.get_asset_check_evaluations()
        assert not check.passed
        assert "Execution failed due to MSE > 3.0" in failure_text(strict)
        assert not {"deployable_model", "batch_predictions", "model_package"} & set(hits(strict))
    assert [v["version"] for v in registered_versions(in_process.tracking_uri())] == ["1"]


def test_a_tuned_study_is_reused_when_its_trials_and_train_split_are_the_same(
    in_process: Env,
) -> None:
    steps = [*PROCESS, "tuned_hyperparameters", "trained_model"]
    with dg.DagsterInstance.get() as instance:
        first = run_pipeline(instance, {"tuning_trials": 2}, steps)
        assert first.success, failure_text(first)
        second = run_pipeline(instance, {"tuning_trials": 2}, steps)
        assert hits(second)["tuned_hyperparameters"] == first.run_id
        assert hits(second)["trained_model"] == first.run_id
        tuned = meta(second, "tuned_hyperparameters")
        assert (
            tuned["mlflow_parent_run_id"]
            == meta(first, "tuned_hyperparameters")["mlflow_parent_run_id"]
        )
        more = run_pipeline(instance, {"tuning_trials": 3}, steps)
        assert hits(more)["tuned_hyperparameters"] is None


def test_two_identical_runs_at_once_both_complete_with_the_same_artifacts(env: Env) -> None:
    execute_at_once(env, 2)
    versions = registered_versions(env.tracking_uri())
    assert [v["version"] for v in versions] == ["1", "2"]
    assert versions[0]["bundle_sha256"] == versions[1]["bundle_sha256"]
    with dg.DagsterInstance.from_config(str(env.dagster_home)) as instance:
        for asset in CACHED:
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=10).records
            assert len(records) == 2, asset
            [a, b] = [r.asset_materialization.metadata for r in records]
            assert a["sha256"].value == b["sha256"].value, asset
            # Whichever interleaving happened: a hit names the other run and its very file.
            for record, other in ((records[0], records[1]), (records[1], records[0])):
                hit_of = record.asset_materialization.metadata.get(caching.CACHE_HIT_OF)
                if hit_of is not None:
                    assert hit_of.value == other.run_id
                    assert (
                        record.asset_materialization.metadata["uri"].value
                        == other.asset_materialization.metadata["uri"].value
                    )
            for record in records:
                assert artifact_path(
                    {"uri": record.asset_materialization.metadata["uri"].value}
                ).exists()
