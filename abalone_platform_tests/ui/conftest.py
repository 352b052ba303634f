"""A real browser against a real `dagster dev`: Debian's chromium driven by selenium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from abalone_platform_tests.conftest import (
    BIN,
    REPO_ROOT,
    SHARED_ABALONE,
    TEST_ARTIFACTS,
    Env,
    make_env,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SERVER_START_TIMEOUT_S = 180
SCREENSHOTS = TEST_ARTIFACTS / "ui"


def _install_chromium() -> None:
    """Debian's chromium and its driver (browser downloads do not work here; apt does)."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    if os.geteuid() != 0:
        pytest.fail(
            "chromium and chromium-driver are missing and installing them needs root: run "
            "`apt-get update && apt-get install -y chromium chromium-driver`"
        )
    apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"],
    ):
        done = subprocess.run(command, env=apt, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr}")
    assert CHROMEDRIVER.exists(), "chromium-driver installed no /usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class DagsterDev:
    env: Env
    url: str
    log: Path


def _wait_for_server(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster dev exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(
        f"dagster dev did not answer within {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}"
    )


def _stop(process: subprocess.Popen) -> None:
    # dagster dev starts the webserver, the daemon and code servers: stop the whole group.
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    root = tmp_path_factory.mktemp("ui")
    env = make_env(root, SHARED_ABALONE)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "dagster-dev.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(
            [
                str(BIN / "dagster"),
                "dev",
                "-m",
                "abalone_platform",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=REPO_ROOT,
            env=env.vars,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_server(url, process, log)
        yield DagsterDev(env=env, url=url, log=log)
    finally:
        _stop(process)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, SCREENSHOTS / "dagster-dev.log")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    _install_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1600,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
