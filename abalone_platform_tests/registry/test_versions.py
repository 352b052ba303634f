import json
from pathlib import Path

import pytest

from abalone_platform.defs.shared.resources import ModelRegistry
from abalone_platform.registry import (
    ALLOWED_TRANSITIONS,
    APPROVED_ALIAS,
    HISTORY_TAG,
    Registry,
    TransitionError,
    UnknownVersionError,
    describe_version,
    list_versions,
    register_version,
    validate_transition,
)
from abalone_platform_tests.support.registry import approve, reject


def make_registry(root: Path, statuses: list[str]) -> Registry:
    """A real MLflow SQLite registry holding one version per status, registered the way
    model_package registers them."""
    resource = ModelRegistry(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_root=(root / "mlartifacts").as_uri(),
    )
    bundle = root / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    for number, status in enumerate(statuses, start=1):
        register_version(
            resource.open(),
            artifact_root=resource.artifact_root,
            model_dir=bundle,
            approval_status=status,
            metrics={"mse": 4.0 + number},
            params={"MseThreshold": "6.0"},
            tags={"dagster_run_id": f"run-{number}", "mse": repr(4.0 + number)},
        )
    return resource.open()


def alias_target(registry: Registry) -> str | None:
    target = registry.client.get_registered_model(registry.name).aliases.get(APPROVED_ALIAS)
    return None if target is None else str(target)


def tags_of(registry: Registry) -> list[dict]:
    return [dict(v.tags) for v in registry.client.search_model_versions(f"name='{registry.name}'")]


def test_transition_table():
    validate_transition("PendingManualApproval", "Approved", "1")
    validate_transition("PendingManualApproval", "Rejected", "1")
    validate_transition("Approved", "Rejected", "1")
    for current, target in [
        ("Approved", "Approved"),
        ("Rejected", "Approved"),
        ("Rejected", "Rejected"),
        ("Approved", "PendingManualApproval"),
    ]:
        with pytest.raises(TransitionError, match=f"is {current}; it cannot become {target}"):
            validate_transition(current, target, "1")
    assert ALLOWED_TRANSITIONS["Rejected"] == frozenset()


def test_notebook_story_moves_the_alias(tmp_path):
    registry = make_registry(tmp_path, ["PendingManualApproval", "Approved"])
    listed = list_versions(registry)
    assert [(v["version"], v["approval_status"], v["aliases"]) for v in listed] == [
        (1, "PendingManualApproval", []),
        (2, "Approved", ["approved"]),
    ]
    assert listed[1]["mse"] == 6.0 and listed[1]["dagster_run_id"] == "run-2"
    assert alias_target(registry) == "2"

    change = approve(registry, 1, reason="reviewed the residuals", by="alice")
    assert (change["from"], change["to"], change["by"]) == (
        "PendingManualApproval",
        "Approved",
        "alice",
    )
    assert alias_target(registry) == "2"  # still the newest Approved version

    change = reject(registry, "2", reason="drift on new data")
    assert change["approved_alias"] == "1"
    assert alias_target(registry) == "1"
    assert change["by"]  # the OS user when --by is not given

    info = describe_version(registry, 2)
    assert info["approval_status"] == "Rejected"
    history = info["approval_history"]
    assert [(h["from"], h["to"]) for h in history] == [(None, "Approved"), ("Approved", "Rejected")]
    assert history[1]["reason"] == "drift on new data"
    assert history[1]["at"].endswith("+00:00")
    assert json.loads(registry.client.get_model_version(registry.name, "2").tags[HISTORY_TAG])

    reject(registry, 1, reason="superseded")
    with pytest.raises(Exception, match="not found|RESOURCE_DOES_NOT_EXIST|alias"):
        registry.client.get_model_version_by_alias(registry.name, APPROVED_ALIAS)
    assert [v["aliases"] for v in list_versions(registry)] == [[], []]


def test_refused_requests_change_nothing(tmp_path):
    registry = make_registry(tmp_path, ["Rejected", "Approved"])
    before = tags_of(registry)
    with pytest.raises(TransitionError, match="version 1 is Rejected; it cannot become Approved"):
        approve(registry, 1, reason="changed my mind")
    with pytest.raises(TransitionError, match="version 2 is Approved; it cannot become Approved"):
        approve(registry, 2, reason="again")
    with pytest.raises(TransitionError, match="reason is required"):
        reject(registry, 2, reason="  ")
    with pytest.raises(UnknownVersionError, match="has no version 9 .*holds versions 1, 2"):
        approve(registry, 9, reason="x")
    with pytest.raises(UnknownVersionError, match="not a version number"):
        describe_version(registry, "latest")
    assert tags_of(registry) == before
    assert alias_target(registry) == "2"


def test_empty_registry(tmp_path):
    registry = make_registry(tmp_path, [])
    assert list_versions(registry) == []
    with pytest.raises(UnknownVersionError, match="has no version 1 .*holds no versions yet"):
        describe_version(registry, 1)


def test_describe_reports_metrics_spec_artifacts_and_parameters(notebook):
    from abalone_platform_tests.support.notebook import applied

    with applied(notebook.env):
        from abalone_platform.registry import open_registry

        info = describe_version(open_registry(), 2)
    assert info["dagster_run_id"] == notebook.run_ids[1]
    assert set(info["metrics"]) >= {"mse", "rmse", "mae", "r2", "mse_standard_deviation"}
    # The status it was registered with (the CLI tests may have changed its status since).
    assert info["parameters"]["ModelApprovalStatus"] == "Approved"
    assert info["approval_history"][0]["to"] == "Approved"
    assert info["parameters"]["input_sha256"] == (
        "de37cdcdcaaa50c309d514f248f7c2302a5f1f88c168905eba23fe2fbc78449f"
    )
    assert info["inference_spec"]["supported_content_types"] == ["text/csv"]
    for artifact in info["artifacts"]:
        assert artifact["uri"] and len(artifact["sha256"]) == 64


def test_one_set_of_statuses_and_one_tracking_uri(tmp_path, monkeypatch):
    """The parameter, the transitions and the registry's status tags share registry's enum; the
    pipeline's resource and the CLI resolve the same tracking URI."""
    from abalone_platform.defs.shared.resources import PipelineParameters, default_registry
    from abalone_platform.registry import ModelApprovalStatus, tracking_uri

    assert PipelineParameters.model_fields["model_approval_status"].annotation is (
        ModelApprovalStatus
    )
    assert set(ALLOWED_TRANSITIONS) == {s.value for s in ModelApprovalStatus}
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("ABALONE_HOME", str(tmp_path))
    assert (
        tracking_uri()
        == default_registry().tracking_uri
        == (f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}")
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == default_registry().tracking_uri == "http://127.0.0.1:5000"


def test_a_lock_create_that_loses_to_a_release_is_retried_not_raised():
    """On a tracking server, creating the lock can race with its holder's release and come back
    RESOURCE_DOES_NOT_EXIST; that is "not taken, try again" like RESOURCE_ALREADY_EXISTS, while
    any other error still raises."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, RESOURCE_DOES_NOT_EXIST

    from abalone_platform.registry import _try_create

    class Server:
        def __init__(self, code):
            self.code = code

        def create_registered_model(self, *args, **kwargs):
            raise MlflowException("raced", error_code=self.code)

    assert _try_create(Server(RESOURCE_DOES_NOT_EXIST), "m.registry-lock", "me", "x") is False
    with pytest.raises(MlflowException):
        _try_create(Server(INTERNAL_ERROR), "m.registry-lock", "me", "x")
