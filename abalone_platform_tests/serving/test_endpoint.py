"""The real-time endpoint and MLflow-native versions, end to end: two versions registered by
real pipeline runs (v1 Approved with seed 42, v2 PendingManualApproval with seed 7, so their
predictions differ), then `abalone-platform serve`, `mlflow models serve` and
`mlflow.pyfunc.load_model` against that registry, each server on a free loopback port and
stopped by the test that started it."""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from abalone_platform.ml.data import FEATURE_COLUMNS, RAW_COLUMNS
from abalone_platform.registry import MODEL_PACKAGE_GROUP
from abalone_platform_tests.support.notebook import applied, cli
from abalone_platform_tests.support.pipeline import run_pipeline
from abalone_platform_tests.support.project import SHARED_ABALONE, Env, make_env
from abalone_platform_tests.support.serve import Client, abalone_serve, mlflow_models_serve

pytestmark = pytest.mark.slow

CSV = {"Content-Type": "text/csv"}
JSON = {"Content-Type": "application/json"}


@dataclass
class Registered:
    env: Env
    lines: list[str]  # the UCI file's rows (the batch data of both runs)
    predictions: dict[int, list[str]]  # version -> batch_predictions lines, in file order


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Registered:
    env = make_env(tmp_path_factory.mktemp("serving"), SHARED_ABALONE)
    predictions = {}
    with applied(env), dg.DagsterInstance.get() as instance:
        for version, parameters in (
            (1, {"model_approval_status": "Approved"}),
            (2, {"seed": 7}),
        ):
            result = run_pipeline(instance, parameters)
            assert result.success
            (out,) = (env.abalone_home / "artifacts" / "batch_predictions" / result.run_id).glob(
                "*.out"
            )
            predictions[version] = out.read_text().splitlines()
    assert predictions[1] != predictions[2]
    return Registered(env, SHARED_ABALONE.read_text().splitlines(), predictions)


def csv_rows(registered: Registered, rows: slice, *, rings: bool = False) -> bytes:
    lines = registered.lines[rows]
    if not rings:
        lines = [line.rsplit(",", 1)[0] for line in lines]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def server(registered: Registered):
    with abalone_serve(registered.env, "--max-payload-mb", "0.05") as started:
        yield started


@pytest.fixture
def client(server):
    connection = server.client()
    yield connection
    connection.close()


def test_pyfunc_by_alias_and_by_version_equals_batch_predictions(registered: Registered) -> None:
    import mlflow
    import mlflow.pyfunc

    frame = pd.read_csv(SHARED_ABALONE, header=None, names=list(RAW_COLUMNS))
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(registered.env.tracking_uri())
    mlflow.set_registry_uri(registered.env.tracking_uri())
    try:
        for uri, version in (
            (f"models:/{MODEL_PACKAGE_GROUP}@approved", 1),
            (f"models:/{MODEL_PACKAGE_GROUP}/1", 1),
            (f"models:/{MODEL_PACKAGE_GROUP}/2", 2),
        ):
            predicted = mlflow.pyfunc.load_model(uri).predict(frame).astype(np.float32)
            expected = np.array([np.float32(v) for v in registered.predictions[version]])
            np.testing.assert_array_equal(predicted, expected, err_msg=uri)
        run = mlflow.MlflowClient().get_run(
            mlflow.MlflowClient().get_model_version(MODEL_PACKAGE_GROUP, "1").run_id
        )
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    # The run behind the version: named after the Dagster run, with the evaluation's metrics,
    # the validation RMSE per round and the input data as a dataset.
    assert run.info.run_name.startswith("abalone_pipeline-")
    assert run.info.run_name.removeprefix("abalone_pipeline-") in run.data.tags["dagster_run_id"]
    assert {"mse", "rmse", "mae", "r2", "validation_rmse"} <= set(run.data.metrics)
    (dataset,) = run.inputs.dataset_inputs
    assert json.loads(dataset.dataset.source)["uri"] == str(SHARED_ABALONE)
    assert json.loads(dataset.dataset.profile)["num_rows"] == len(registered.lines)


def test_registry_list_shows_the_format(registered: Registered) -> None:
    listed = json.loads(cli(registered.env, "registry", "list", "--json").stdout)
    assert [v["format"] for v in listed] == ["mlflow_pyfunc", "mlflow_pyfunc"]


def test_mlflow_models_serve_answers_csv_and_json(registered: Registered) -> None:
    with mlflow_models_serve(registered.env, f"models:/{MODEL_PACKAGE_GROUP}/1") as mlflow_server:
        client = mlflow_server.client()
        # MLflow's CSV has a header row; its JSON is the dataframe_split form.
        body = (",".join(FEATURE_COLUMNS) + "\n").encode() + csv_rows(registered, slice(0, 5))
        status, _, content = client.request("POST", "/invocations", body, CSV)
        assert status == 200, content
        values = np.array(json.loads(content)["predictions"], np.float32)
        expected = np.array([np.float32(v) for v in registered.predictions[1][:5]])
        np.testing.assert_array_equal(values, expected)
        rows = [line.split(",")[:8] for line in registered.lines[5:8]]
        payload = {
            "dataframe_split": {
                "columns": list(FEATURE_COLUMNS),
                "data": [[r[0], *map(float, r[1:])] for r in rows],
            }
        }
        status, _, content = client.request(
            "POST", "/invocations", json.dumps(payload).encode(), JSON
        )
        assert status == 200, content
        values = np.array(json.loads(content)["predictions"], np.float32)
        expected = np.array([np.float32(v) for v in registered.predictions[1][5:8]])
        np.testing.assert_array_equal(values, expected)
        client.close()


def test_ping_and_csv_are_the_batch_predictions(registered: Registered, client: Client) -> None:
    status, headers, _ = client.request("GET", "/ping")
    assert (status, headers["x-model-version"]) == (200, "1")
    for rows, rings in ((slice(10, 11), False), (slice(0, 300), True)):
        status, headers, content = client.request(
            "POST", "/invocations", csv_rows(registered, rows, rings=rings), CSV
        )
        assert status == 200 and headers["x-model-version"] == "1"
        assert headers["content-type"].startswith("text/csv")
        # The same text as the batch transform's output, line for line.
        assert content.decode().splitlines() == registered.predictions[1][rows]


def test_json_forms_and_accept(registered: Registered, client: Client) -> None:
    rows = [line.split(",")[:8] for line in registered.lines[20:23]]
    typed = [[r[0], *map(float, r[1:])] for r in rows]
    expected = [float(v) for v in registered.predictions[1][20:23]]
    for payload in (
        {"dataframe_split": {"columns": list(FEATURE_COLUMNS), "data": typed}},
        {"dataframe_records": [dict(zip(FEATURE_COLUMNS, r, strict=True)) for r in typed]},
        {"instances": typed},
        {"inputs": typed},
    ):
        status, headers, content = client.request(
            "POST", "/invocations", json.dumps(payload).encode(), JSON
        )
        assert status == 200, content
        assert headers["content-type"].startswith("application/json")
        assert json.loads(content) == {"predictions": expected}
    # Accept picks the response type, whatever the request's.
    body = csv_rows(registered, slice(20, 23))
    status, headers, content = client.request(
        "POST", "/invocations", body, {**CSV, "Accept": "application/json"}
    )
    assert status == 200 and json.loads(content) == {"predictions": expected}
    status, _, content = client.request(
        "POST",
        "/invocations",
        json.dumps({"instances": typed}).encode(),
        {**JSON, "Accept": "text/csv"},
    )
    assert status == 200 and content.decode().splitlines() == registered.predictions[1][20:23]


def test_bad_requests_get_their_status_and_do_not_stop_the_server(
    registered: Registered, server, client: Client
) -> None:
    good = csv_rows(registered, slice(0, 2))
    cases = [
        (b"M,0.4,0.3,0.1,0.5,0.2,0.1,0.15\nF,0.5,oops,0.1,0.5,0.2,0.1,0.15\n", CSV, 400,
         "line 2: column 'diameter' value 'oops' is not a number"),
        (b"M,0.4,0.3\n", CSV, 400, "expected 8 or 9 comma-separated columns"),
        (json.dumps({"instances": [["M", 0.4]]}).encode(), JSON, 400, "row 1 has 2 values"),
        (good, {"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported"),
        (good, {**CSV, "Accept": "application/xml"}, 406, "Accept"),
        (good * 2000, CSV, 413, "limit"),
    ]  # fmt: skip
    for body, headers, status, message in cases:
        got, answer_headers, content = client.request("POST", "/invocations", body, headers)
        assert (got, message in content.decode()) == (status, True), content
        assert answer_headers["x-model-version"] == "1"
    # Unknown paths and methods: the same header, counted too.
    for method, path, status in (("GET", "/nope", 404), ("GET", "/invocations", 405)):
        got, answer_headers, _ = client.request(method, path)
        assert (got, answer_headers["x-model-version"]) == (status, "1")
    # Still serving, on the same connection and on a new one.
    assert client.request("POST", "/invocations", good, CSV)[0] == 200
    assert server.process.poll() is None
    assert server.client().request("GET", "/ping")[0] == 200


def test_metrics(registered: Registered, client: Client) -> None:
    client.request("POST", "/invocations", b"M,0.4\n", CSV)
    status, headers, content = client.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = content.decode()
    assert 'abalone_serve_requests_total{path="/invocations",status="400"}' in text
    assert 'abalone_serve_requests_total{path="/invocations",status="200"}' in text
    assert 'abalone_serve_request_latency_seconds_bucket{le="0.001",path="/invocations"}' in text
    assert "abalone_serve_model_version 1.0" in text


def test_token(registered: Registered, tmp_path: Path) -> None:
    refused = cli(registered.env, "serve", "--host", "0.0.0.0", "--port", "9")
    assert refused.returncode == 1 and "ABALONE_SERVE_TOKEN" in refused.stderr
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    with abalone_serve(registered.env, "--token-file", str(token_file)) as server:
        client = server.client()
        body = csv_rows(registered, slice(0, 1))
        assert client.request("POST", "/invocations", body, CSV)[0] == 401
        wrong = {**CSV, "Authorization": "Bearer nope"}
        assert client.request("POST", "/invocations", body, wrong)[0] == 401
        assert client.request("GET", "/ping")[0] == 401
        right = {**CSV, "Authorization": "Bearer s3cret-token"}
        status, _, content = client.request("POST", "/invocations", body, right)
        assert status == 200 and content.decode().splitlines() == registered.predictions[1][:1]
        client.close()


def test_sigterm_drains_the_request_in_flight(registered: Registered) -> None:
    """The handler sends the server SIGTERM while it holds a request (a fault point, not a
    sleep): that request is still answered in full, then the server exits cleanly."""
    with abalone_serve(registered.env, extra={"ABALONE_FAULT": "serve.invocation=term"}) as server:
        client = server.client()
        status, _, content = client.request(
            "POST", "/invocations", csv_rows(registered, slice(0, 50)), CSV
        )
        assert status == 200
        assert content.decode().splitlines() == registered.predictions[1][:50]
        # uvicorn finishes its shutdown, then re-raises the signal (the conventional status).
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
        log = server.log_text()
        assert "Shutting down" in log and "Finished server process" in log
        client.close()


def test_switch_under_load_then_no_approved_version(registered: Registered) -> None:
    """Approving v2 while a client sends requests: every request succeeds, each answer is one
    version's predictions under that version's header, and the header changes exactly once.
    Rejecting both then leaves /ping and /invocations at 503."""
    body = csv_rows(registered, slice(100, 103))
    expected = {str(v): registered.predictions[v][100:103] for v in (1, 2)}
    with abalone_serve(registered.env, "--poll-interval", "0.2") as server:
        answers: list[tuple[int, str, list[str]]] = []
        switched_at: list[int] = []
        errors: list[BaseException] = []

        def load() -> None:
            client = server.client()
            deadline = time.monotonic() + 60
            try:
                # Bounded: until 200 requests after the switch were answered, or 60 s.
                while time.monotonic() < deadline:
                    status, headers, content = client.request("POST", "/invocations", body, CSV)
                    answers.append(
                        (status, headers["x-model-version"], content.decode().splitlines())
                    )
                    if headers["x-model-version"] == "2" and not switched_at:
                        switched_at.append(len(answers))
                    if switched_at and len(answers) >= switched_at[0] + 200:
                        return
            except BaseException as exc:
                errors.append(exc)
            finally:
                client.close()

        thread = threading.Thread(target=load)
        thread.start()
        while len(answers) < 50 and thread.is_alive():
            time.sleep(0.01)  # waiting for traffic to be flowing, not timing a result
        approved = cli(registered.env, "registry", "approve", "2", "--reason", "switch test")
        assert approved.returncode == 0, approved.stderr
        thread.join(timeout=90)
        assert not errors and switched_at, (errors, server.log_text()[-3000:])
        assert {status for status, _, _ in answers} == {200}
        versions = [version for _, version, _ in answers]
        assert versions == ["1"] * (switched_at[0] - 1) + ["2"] * (
            len(versions) - switched_at[0] + 1
        )
        assert all(lines == expected[version] for _, version, lines in answers)
        for version in ("2", "1"):
            rejected = cli(registered.env, "registry", "reject", version, "--reason", "test")
            assert rejected.returncode == 0, rejected.stderr
        client = server.client()
        deadline = time.monotonic() + 10  # the bound for following a change
        while client.request("GET", "/ping")[0] != 503:
            assert time.monotonic() < deadline, server.log_text()[-3000:]
            time.sleep(0.05)
        status, headers, content = client.request("POST", "/invocations", body, CSV)
        assert status == 503 and b"no Approved version" in content
        assert headers["x-model-version"] == "none"
        client.close()
