"""How the code location is loaded: the defs folder read module by module (definitions.py) gives
the very repository Dagster's own defs-folder loader gives; the s3 resource is dagster-aws'
configuration without dagster-aws' import; the collector settings of a loading process."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

import abalone_platform.definitions as definitions
from abalone_platform import gc_policy
from abalone_platform.defs.shared.resources import ArtifactStore
from abalone_platform.storage.s3_resource import S3Resource

# What only Dagster's loader adds: the component tree it walked and the catalogue of every
# installed component type (dagster-aws' among them), neither of them a definition.
LOADER_ONLY = ("component_tree", "metadata")


def repository_snapshot(defs: dg.Definitions) -> dict:
    snapshot = json.loads(serialize_value(RepositorySnap.from_def(defs.get_repository_def())))
    return {key: value for key, value in snapshot.items() if key not in LOADER_ONLY}


def test_the_same_repository_as_dagsters_defs_folder_loader() -> None:
    ours = dg.Definitions.merge(
        definitions.load_defs_folder(), dg.Definitions(executor=dg.in_process_executor)
    )
    dagsters = dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(definitions.__file__).parent),
        dg.Definitions(executor=dg.in_process_executor),
    )
    # Assets, checks, jobs, sensors, resources, their metadata, tags and config schemas.
    assert repository_snapshot(ours) == repository_snapshot(dagsters)


def test_a_component_file_hands_the_folder_to_dagsters_loader(tmp_path: Path) -> None:
    area = tmp_path / "area"
    area.mkdir()
    (area / "__init__.py").write_text("")
    (area / "assets.py").write_text("")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / ".hidden.py").write_text("")
    assert definitions._module_names(tmp_path, "pkg") == ["pkg.area", "pkg.area.assets"]
    for keyword in ("defs.yaml", "component.yaml", "definitions.py", "component.py"):
        (area / keyword).write_text("")
        assert definitions._module_names(tmp_path, "pkg") is None, keyword
        (area / keyword).unlink()


def test_the_module_rules_are_dagsters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "two_defs.py").write_text(
        "import dagster as dg\na = dg.Definitions()\nb = dg.Definitions()\n"
    )
    (tmp_path / "plain_assets.py").write_text(
        "import dagster as dg\n@dg.asset\ndef one() -> None: ...\n"
    )
    (tmp_path / "loader.py").write_text(
        "import dagster as dg\n@dg.component_instance\ndef thing(context): ...\n"
    )
    import importlib

    with pytest.raises(dg.DagsterInvalidDefinitionError, match="multiple Definitions"):
        definitions._module_defs(importlib.import_module("two_defs"))
    plain = definitions._module_defs(importlib.import_module("plain_assets"))
    assert [k.to_user_string() for k in plain.resolve_asset_graph().get_all_asset_keys()] == ["one"]
    assert definitions._module_defs(importlib.import_module("loader")) is None
    (tmp_path / "with_context.py").write_text(
        "import dagster as dg\n"
        "@dg.definitions\n"
        "def defs(context: dg.ComponentLoadContext):\n"
        "    return dg.Definitions()\n"
    )
    assert definitions._module_defs(importlib.import_module("with_context")) is None


def test_the_s3_resource_is_dagster_aws_configuration() -> None:
    from dagster_aws.s3 import S3Resource as DagsterAwsS3Resource

    def fields(cls: type) -> dict:
        return {k: (str(v.annotation), v.default) for k, v in cls.model_fields.items()}

    assert fields(S3Resource) == fields(DagsterAwsS3Resource)
    ours = S3Resource(region_name="eu-west-1", endpoint_url="http://localhost:9000")
    theirs = DagsterAwsS3Resource(region_name="eu-west-1", endpoint_url="http://localhost:9000")
    assert ours.get_client().meta.endpoint_url == theirs.get_client().meta.endpoint_url
    assert ours.get_client().meta.region_name == "eu-west-1"


def test_the_artifact_store_takes_either_s3_resource(tmp_path: Path) -> None:
    from dagster_aws.s3 import S3Resource as DagsterAwsS3Resource

    assert isinstance(ArtifactStore(root=str(tmp_path)).s3, S3Resource)
    given = DagsterAwsS3Resource(region_name="eu-west-1")
    assert ArtifactStore(root=str(tmp_path), s3=given).s3 is given
    with pytest.raises(Exception, match="s3"):
        ArtifactStore(root=str(tmp_path), s3=5)


def test_the_collector_settings_of_a_loading_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # abalone_platform.definitions is imported: the young generation's threshold is raised,
    # never lowered, and the exit handler is registered once.
    assert gc.get_threshold()[0] >= gc_policy.YOUNG_THRESHOLD
    before = gc.get_threshold()
    registered = []
    monkeypatch.setattr(gc_policy.atexit, "register", registered.append)
    try:
        gc.set_threshold(50_000, *before[1:])
        gc_policy._installed = False
        gc_policy.install()
        assert gc.get_threshold()[0] == 50_000
        assert registered == [gc_policy._collect_then_freeze]
    finally:
        gc.set_threshold(*before)
        gc_policy._installed = True
