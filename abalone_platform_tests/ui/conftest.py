"""A real browser against a real `dagster dev`: Debian's chromium driven by selenium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from abalone_platform_tests.support.apt import apt_install
from abalone_platform_tests.support.dagster_dev import DagsterDev
from abalone_platform_tests.support.dagster_dev import dagster_dev as start_dagster_dev
from abalone_platform_tests.support.project import SHARED_ABALONE, TEST_ARTIFACTS, make_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = TEST_ARTIFACTS / "ui"


def _install_chromium() -> None:
    """Debian's chromium and its driver (browser downloads do not work here; apt does)."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    apt_install("chromium", "chromium-driver")
    assert CHROMEDRIVER.exists(), "chromium-driver installed no /usr/bin/chromedriver"


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    env = make_env(tmp_path_factory.mktemp("ui"), SHARED_ABALONE)
    try:
        with start_dagster_dev(env) as server:
            yield server
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        log = env.dagster_home / "dagster_dev.log"
        if log.exists():
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
        "--window-size=2000,1400",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
