"""Bad input through the whole pipeline: a clear error naming parameter, file and line; nothing
half-written; nothing registered."""

import hashlib
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from abalone_platform.storage.inputs import UCI_ABALONE_SHA256, UCI_ABALONE_URL, _cache_path
from abalone_platform_tests.support.project import Env, make_env
from abalone_platform_tests.support.registry import registered_versions

# Runs the pipeline in subprocesses or several times over: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

PROCESSING = ["train_split", "validation_split", "test_split", "preprocessor"]
GOOD = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15"


def assert_failed_cleanly(env: Env, output: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in output, output[-4000:]
    assert registered_versions(env.tracking_uri()) == []
    artifacts = env.abalone_home / "artifacts"
    written = [p for p in artifacts.rglob("*") if p.is_file()] if artifacts.exists() else []
    assert written == []


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (None, ["input_data (InputData): {path}: file does not exist"]),
        ("", ["input_data (InputData): {path}: file is empty"]),
        (f"{GOOD}\n{GOOD}\nM,0.4,0.3,0.1\n", ["{path} line 3: expected 9 columns"]),
        (
            f"{GOOD}\nF,0.4,0.3,big,0.4,0.2,0.1,0.1,9\n",
            ["{path} line 2: column 'height' value 'big' is not a number"],
        ),
        (
            f"{GOOD}\n{GOOD}\nQ,0.4,0.3,0.1,0.4,0.2,0.1,0.1,9\n",
            ["{path} line 3: column 'sex' has unknown code 'Q'"],
        ),
    ],
    ids=["missing", "empty", "column-count", "non-numeric", "unknown-sex"],
)
def test_bad_input_data(tmp_path: Path, content: str | None, fragments: list[str]) -> None:
    _run_bad_input(tmp_path, content, fragments)


# Inputs as users have them (hand-edited, exported from a spreadsheet, truncated), through the
# whole pipeline; ml/test_input_edge_cases.py covers every other variant at the parser.
MANY_GOOD = f"{GOOD}\n" * 80


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (
            f"{GOOD}\nF,0.4,0.3,inf,0.4,0.2,0.1,0.1,9\n{MANY_GOOD}",
            ["{path} line 2: column 'height' value 'inf' is not a finite number"],
        ),
        (
            f"{GOOD}\n{GOOD}\nF,0.4,0.3,0.1,0.4,0.2,0.1,0.1,-1\n{MANY_GOOD}",
            ["{path} line 3: column 'rings' value '-1' is negative"],
        ),
        (
            f"{GOOD}\nF,0.4,{'9' * 1_000_000},0.1,0.4,0.2,0.1,0.1,9\n{MANY_GOOD}",
            ["{path} line 2: the line is 1,000,028 characters long"],
        ),
        (
            f"{GOOD}\n" * 5,
            ["{path}: has 5 data rows; at least 64 are needed"],
        ),
    ],
    ids=[
        "inf",
        "negative-rings",
        "1MB-line",
        "5-rows",
    ],
)
def test_inputs_as_users_have_them(tmp_path: Path, content: str, fragments: list[str]) -> None:
    _run_bad_input(tmp_path, content, ["input_data (InputData)", *fragments])


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "input" / "abalone.csv"
    path.parent.mkdir()
    os.mkfifo(path)  # nobody writes to it: opening it to read would hang the run
    _run_bad_input(
        tmp_path, None, ["input_data (InputData): {path}: is not a regular file (a FIFO)"]
    )


def test_padded_values_are_read_as_if_unpadded(in_process: Env, abalone_file: Path) -> None:
    from abalone_platform_tests.support.pipeline import run_pipeline

    padded = in_process.abalone_home.parent / "padded.data"
    padded.write_text(
        "".join(
            " " + " , ".join(line.split(",")) + " \n"
            for line in abalone_file.read_text().splitlines()
            if line.strip()
        )
    )
    with dg.DagsterInstance.get() as instance:
        plain = run_pipeline(instance, selection=PROCESSING)
        spaced = run_pipeline(instance, {"input_data": str(padded)}, selection=PROCESSING)
        assert plain.success and spaced.success

        def shas(result):
            return {
                e.asset_key.to_user_string(): e.materialization.metadata["sha256"].value
                for e in result.get_asset_materialization_events()
            }

        assert shas(spaced) == shas(plain)


def _run_bad_input(tmp_path: Path, content: str | None, fragments: list[str]) -> None:
    path = tmp_path / "input" / "abalone.csv"
    path.parent.mkdir(exist_ok=True)
    if content is not None:
        path.write_text(content)
    env = make_env(tmp_path / "env", path)
    proc = env.execute()
    assert proc.returncode != 0
    assert_failed_cleanly(env, proc.stdout + proc.stderr, *(f.format(path=path) for f in fragments))


def test_bad_batch_data_names_batch_parameter(tmp_path: Path, abalone_file: Path) -> None:
    batch = tmp_path / "batch.csv"
    batch.write_text("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15\nI,0.3,0.2,0.1,0.1,0.1,0.1,x\n")
    env = make_env(tmp_path / "env", abalone_file, ABALONE_BATCH_DATA=str(batch))
    proc = env.execute()
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"batch_data (BatchData): {batch} line 2: column 'shell_weight' value 'x'" in output
    artifacts = env.abalone_home / "artifacts" / "batch_predictions"
    assert not artifacts.exists() or [p for p in artifacts.rglob("*") if p.is_file()] == []


def test_a_corrupt_download_is_refused_and_removed(tmp_path: Path, abalone_file: Path) -> None:
    env = make_env(tmp_path / "env", abalone_file)
    del env.vars["ABALONE_INPUT_DATA"]
    cached = _cache_path(env.abalone_home / "cache", UCI_ABALONE_URL)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(abalone_file.read_bytes().replace(b"0.455", b"0.456", 1))
    proc = env.execute()
    assert proc.returncode != 0
    assert_failed_cleanly(
        env,
        proc.stdout + proc.stderr,
        "input_data (InputData)",
        "checksum mismatch",
        UCI_ABALONE_SHA256,
        str(cached),
    )
    assert not cached.exists()


def test_a_good_cached_download_is_used(in_process: Env, abalone_file: Path, monkeypatch) -> None:
    from abalone_platform_tests.support.pipeline import run_pipeline

    monkeypatch.delenv("ABALONE_INPUT_DATA")
    cached = _cache_path(in_process.abalone_home / "cache", UCI_ABALONE_URL)
    cached.parent.mkdir(parents=True)
    shutil.copy(abalone_file, cached)
    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance, selection=PROCESSING)
        assert result.success
        event = result.get_asset_materialization_events()[0]
        meta = event.materialization.metadata
        assert meta["input_data"].value == UCI_ABALONE_URL
        assert meta["input_sha256"].value == UCI_ABALONE_SHA256


def test_offline_without_input_data_says_which_variable_to_set(tmp_path: Path, abalone_file):
    env = make_env(tmp_path / "env", abalone_file)
    del env.vars["ABALONE_INPUT_DATA"]
    # No network here but package registries; make sure of it for this process.
    env.vars.update(HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    proc = env.execute()
    assert proc.returncode != 0
    assert_failed_cleanly(
        env,
        proc.stdout + proc.stderr,
        f"input_data (InputData): {UCI_ABALONE_URL}",
        "could not download",
        "set ABALONE_INPUT_DATA",
    )


@pytest.fixture
def http_server(tmp_path: Path, abalone_file: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(abalone_file, root / "abalone.csv")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/abalone.csv"
    finally:
        server.shutdown()
        server.server_close()


def test_http_input_is_downloaded_once_into_the_cache(
    in_process: Env, http_server: str, abalone_file: Path
) -> None:
    from abalone_platform_tests.support.pipeline import run_pipeline

    with dg.DagsterInstance.get() as instance:
        result = run_pipeline(instance, {"input_data": http_server}, selection=PROCESSING)
        assert result.success
    cached = _cache_path(in_process.abalone_home / "cache", http_server)
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == UCI_ABALONE_SHA256


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "M,0.455,0.365,0.095,0.514,0.2245,0.101\nI,0.3,0.2,0.1,0.1,0.1,0.1\n",
            " line 1: expected 8 or 9",
        ),
        (None, ": file does not exist"),
    ],
    ids=["column-count", "missing"],
)
def test_a_wrong_batch_file_fails_before_any_step(
    tmp_path: Path, abalone_file: Path, content: str | None, problem: str
) -> None:
    batch = tmp_path / "batch.csv"
    if content is not None:
        batch.write_text(content)
    env = make_env(tmp_path / "env", abalone_file, ABALONE_BATCH_DATA=str(batch))
    proc = env.execute()
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"batch_data (BatchData): {batch}{problem}" in output
    assert "STEP_START" not in output  # refused when the run started: nothing trained
    assert_failed_cleanly(env, output)


def test_a_bad_value_deep_in_the_batch_fails_the_transform_only(
    tmp_path: Path, abalone_file: Path
) -> None:
    """Documented: the shape is checked up front, values as the transform streams them; the
    model was registered before the transform failed, and stays registered."""
    batch = tmp_path / "batch.csv"
    good = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15\n"
    batch.write_text(good * 50 + "I,0.3,0.2,0.1,0.1,0.1,0.1,x\n")
    env = make_env(tmp_path / "env", abalone_file, ABALONE_BATCH_DATA=str(batch))
    proc = env.execute()
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"batch_data (BatchData): {batch} line 51: column 'shell_weight'" in output
    [version] = registered_versions(env.tracking_uri())
    assert version["registration"] == "complete"
