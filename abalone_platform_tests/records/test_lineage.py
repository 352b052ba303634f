import hashlib
import re
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from abalone_platform.definitions import build_defs
from abalone_platform.records.lineage import model_package_lineage
from abalone_platform.registry import UnknownVersionError, open_registry
from abalone_platform_tests.support.notebook import applied
from abalone_platform_tests.support.pipeline import run_pipeline
from abalone_platform_tests.support.project import SHARED_ABALONE, Env, make_env

# Runs the pipeline in subprocesses or several times over: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

PROCESSING = ["train_split", "validation_split", "test_split", "preprocessor"]
UCI_SHA256 = "de37cdcdcaaa50c309d514f248f7c2302a5f1f88c168905eba23fe2fbc78449f"
STEPS = [
    "AbaloneProcess",
    "AbaloneTuning",
    "AbaloneTrain",
    "AbaloneEval",
    "AbaloneCreateModel-CreateModel",
    "AbaloneTransform",
    "AbaloneRegisterModel-RegisterModel",
]


def sha256_of(uri: str) -> str:
    path = Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))
    if path.is_dir():  # a bundle's sha256 is its manifest's
        path = path / "manifest.json"
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory):
    """Two versions trained on different input files (the second drops the last 177 rows)."""
    root = tmp_path_factory.mktemp("lineage")
    smaller = root / "abalone-4000.data"
    smaller.write_text("".join(SHARED_ABALONE.read_text().splitlines(keepends=True)[:4000]))
    env = make_env(root / "env", SHARED_ABALONE)
    with applied(env), dg.DagsterInstance.get() as instance:
        first = run_pipeline(instance)
        second = run_pipeline(instance, {"input_data": str(smaller)})
        assert first.success and second.success
        registry = open_registry()
        yield {
            "first": model_package_lineage(instance, build_defs(), registry, 1),
            "second": model_package_lineage(instance, build_defs(), registry, 2),
            "smaller_sha256": hashlib.sha256(smaller.read_bytes()).hexdigest(),
            "run_ids": [first.run_id, second.run_id],
            "instance": instance,
            "registry": registry,
        }


def rows_of(lineage, step, direction=None):
    return [
        r
        for r in lineage["rows"]
        if r["step"] == step and (direction is None or r["direction"] == direction)
    ]


def test_input_file_hashes_differ(two_inputs):
    first, second = two_inputs["first"], two_inputs["second"]
    assert first["input_data"]["sha256"] == UCI_SHA256
    assert second["input_data"]["sha256"] == two_inputs["smaller_sha256"] != UCI_SHA256
    assert second["input_data"]["uri"].endswith("abalone-4000.data")
    [row] = [r for r in rows_of(first, "AbaloneProcess", "Input") if r["name"] == "InputData"]
    assert row["sha256"] == UCI_SHA256
    # Everything derived from the data differs too.
    for name in ("train_split", "trained_model", "deployable_model"):
        hashes = [
            {r["sha256"] for r in lineage["rows"] if r["name"] == name}
            for lineage in (first, second)
        ]
        assert hashes[0].isdisjoint(hashes[1])


def test_every_step_with_sha256_and_code_version(two_inputs):
    lineage = two_inputs["second"]
    assert [s["step"] for s in lineage["steps"]] == STEPS
    assert {s["dagster_run_id"] for s in lineage["steps"]} == {two_inputs["run_ids"][1]}
    for row in lineage["rows"]:
        assert row["direction"] in ("Input", "Output")
        if row["lineage_type"] == "artifact":
            assert re.fullmatch(r"[0-9a-f]{64}", row["sha256"]), row
        assert row["code_version"].startswith(("git:", "abalone_platform ")), row
    # The recorded hashes are those of the files on disk.
    for row in lineage["rows"]:
        if row["source"].startswith("file://") and row["name"] != "model_package":
            assert sha256_of(row["source"]) == row["sha256"], row["name"]
    register = rows_of(lineage, "AbaloneRegisterModel-RegisterModel")
    assert {(r["type"], r["association_type"], r["lineage_type"]) for r in register} >= {
        ("Approval", "ContributedTo", "action"),
        ("ModelGroup", "AssociatedWith", "context"),
    }
    train = rows_of(lineage, "AbaloneTrain")
    assert {(r["name"], r["direction"]) for r in train} == {
        ("train_split", "Input"),
        ("validation_split", "Input"),
        ("tuned_hyperparameters", "Input"),
        ("trained_model", "Output"),
    }
    tuning = rows_of(lineage, "AbaloneTuning")
    assert {(r["name"], r["direction"]) for r in tuning} == {
        ("train_split", "Input"),
        ("tuned_hyperparameters", "Output"),
    }


def test_batch_predictions_trace_to_version_and_batch_file(two_inputs):
    lineage = two_inputs["first"]
    transform = rows_of(lineage, "AbaloneTransform")
    inputs = {r["name"]: r for r in transform if r["direction"] == "Input"}
    assert inputs["deployable_model"]["sha256"] == lineage["model_package"]["bundle_sha256"]
    assert inputs["BatchData"]["sha256"] == UCI_SHA256
    [output] = [r for r in transform if r["direction"] == "Output"]
    assert output["name"] == "batch_predictions" and output["sha256"] == sha256_of(output["source"])


def test_unknown_version(two_inputs):
    with pytest.raises(UnknownVersionError, match="has no version 3"):
        model_package_lineage(two_inputs["instance"], build_defs(), two_inputs["registry"], 3)


@contextmanager
def records_read(instance: dg.DagsterInstance) -> Iterator[Counter[str]]:
    """Counts, by asset, the event records the instance hands out while in the block (what
    fetch_materializations and get_records_for_run return, the two ways lineage reads)."""
    counts: Counter[str] = Counter()
    fetch, for_run = instance.fetch_materializations, instance.get_records_for_run

    def counting_fetch(*args, **kwargs):
        result = fetch(*args, **kwargs)
        counts.update(r.asset_key.to_user_string() for r in result.records)
        return result

    def counting_for_run(*args, **kwargs):
        result = for_run(*args, **kwargs)
        counts.update(f"run:{r.asset_key.to_user_string()}" for r in result.records)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(instance, "fetch_materializations", counting_fetch)
        patch.setattr(instance, "get_records_for_run", counting_for_run)
        yield counts


@pytest.mark.parametrize("project_instance", [False, True], ids=["dagster default", "dagster.yaml"])
def test_reads_do_not_grow_with_the_assets_history(
    tmp_path: Path, abalone_file: Path, project_instance: bool
) -> None:
    """Lineage reads the runs and materializations its links name, never an asset's history:
    more runs of the same assets leave what it reads (and what it finds) as it was. The one
    open-ended read is the batches recorded after the version's bundle (a transform-only run
    may use any bundle), one record each."""
    env: Env = make_env(tmp_path, abalone_file, project_instance=project_instance)
    with applied(env), dg.DagsterInstance.get() as instance:
        assert run_pipeline(instance).success
        registry = open_registry()
        with records_read(instance) as alone:
            first = model_package_lineage(instance, build_defs(), registry, 1)

        # More history of every asset: another full run (version 2), then processing alone,
        # each computed (caching off), so each is new history rather than a reuse.
        assert run_pipeline(instance, {"enable_caching": False}).success
        assert run_pipeline(instance, {"enable_caching": False}, PROCESSING).success
        with records_read(instance) as later:
            again = model_package_lineage(instance, build_defs(), registry, 1)
        with records_read(instance) as newest:
            second = model_package_lineage(instance, build_defs(), registry, 2)

        assert again == first
        # Version 1's reads are those of before plus the one later batch (version 2's).
        assert later - alone == Counter({"batch_predictions": 1})
        assert alone - later == Counter()
        # Version 2, now with a version before it and a run after it, reads what version 1 did
        # when it was alone.
        assert newest == alone
        assert {s["dagster_run_id"] for s in second["steps"]} != {
            s["dagster_run_id"] for s in first["steps"]
        }
        # Rows carry the asset index's storage ids (not a run's own event numbering).
        for row in [*first["rows"], *second["rows"]]:
            if row["storage_id"] is not None:
                [record] = instance.fetch_materializations(
                    dg.AssetRecordsFilter(
                        asset_key=dg.AssetKey.from_user_string(row["name"]),
                        storage_ids=[row["storage_id"]],
                    ),
                    limit=2,
                ).records
                assert record.run_id == row["dagster_run_id"], row
                sha256 = record.asset_materialization.metadata["sha256"].value
                assert sha256 == row["sha256"], row
