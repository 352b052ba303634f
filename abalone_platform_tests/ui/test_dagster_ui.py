"""What a person sees in the Dagster UI: the asset graph, a run launched from it, the report."""

from __future__ import annotations

import re
import time
import urllib.parse

import dagster as dg
import pytest
from selenium.webdriver.common.by import By

from abalone_platform_tests.support.project import ASSETS
from abalone_platform_tests.ui.conftest import SCREENSHOTS

GROUPS = ["processing", "training", "evaluation", "deployment", "registry"]
JOB_PATH = "/locations/abalone_platform/jobs/abalone_pipeline"
RUN_TIMEOUT_S = 240


def screenshot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def wait_for_text(driver, texts: list[str], timeout: float = 60, visible_only: bool = True) -> str:
    """Poll the page until every text is shown; fail naming those that never appeared."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        body = (
            driver.find_element(By.TAG_NAME, "body").text
            if visible_only
            else driver.execute_script("return document.body.textContent")
        )
        if all(text in body for text in texts):
            return body
        time.sleep(0.5)
    missing = [text for text in texts if text not in body]
    screenshot(driver, "failure")
    pytest.fail(f"{driver.current_url} never showed {missing}; it showed:\n{body[:3000]}")


def dismiss_welcome(driver) -> None:
    """A first visit shows a 'Join the Dagster community' dialog over the page; skip it."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        buttons = driver.find_elements(By.XPATH, "//button[normalize-space(.)='Skip']")
        if buttons:
            buttons[0].click()
            return
        time.sleep(0.5)


def on_graph(body: str, names: list[str]) -> list[str]:
    """The asset names not drawn in ``body``. The graph shortens a long name in its middle
    (tuned_hyperparameters is drawn as tuned_hy…arameters), so a name also counts as drawn when
    its first and last characters are, around an ellipsis."""
    return [
        name
        for name in names
        if name not in body
        and not re.search(re.escape(name[:6]) + r"\w*…\w*" + re.escape(name[-6:]), body)
    ]


def zoom_out_until_shown(driver, texts: list[str], clicks: int = 8) -> None:
    """The graph opens zoomed in on part of it, and draws only what is in view."""
    wait_for_text(driver, texts[:1])
    for _ in range(clicks):
        body = driver.find_element(By.TAG_NAME, "body").text
        if not on_graph(body, texts):
            # One step further, so that the screenshot has the whole graph, not its edges.
            driver.find_element(By.XPATH, "//*[@aria-label='zoom_out']/ancestor::button[1]").click()
            return
        driver.find_element(By.XPATH, "//*[@aria-label='zoom_out']/ancestor::button[1]").click()
        time.sleep(0.5)


def show_markdown(driver, key: str) -> None:
    """Open a Markdown metadata value (the table shows a link; the value opens in a dialog)."""
    from selenium.webdriver.common.by import By

    row = driver.find_element(By.XPATH, f"//tr[.//*[normalize-space(text())='{key}']]")
    link = row.find_element(By.XPATH, ".//a[contains(normalize-space(.), 'Show Markdown')]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()


def click_button(driver, label: str, timeout: float = 30) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    button = WebDriverWait(driver, timeout).until(
        expected_conditions.element_to_be_clickable(
            (
                By.XPATH,
                f"//button[.//*[normalize-space(text())='{label}'] or "
                f"normalize-space(.)='{label}']",
            )
        )
    )
    button.click()


def wait_for_run(instance: dg.DagsterInstance, timeout: float) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(limit=1)
        if runs and runs[0].is_finished:
            return runs[0]
        time.sleep(1)
    pytest.fail(f"no run finished within {timeout} s (runs: {instance.get_runs(limit=1)})")


def test_graph_materialize_and_report(dagster_dev, browser):
    # The graph opens with each asset group collapsed; the UI keeps the open ones in the URL.
    expanded = ",".join(f"global@global:{group}" for group in GROUPS)
    browser.get(f"{dagster_dev.url}{JOB_PATH}?expanded={urllib.parse.quote(expanded)}")
    wait_for_text(browser, ["Materialize all"], timeout=90)
    dismiss_welcome(browser)
    zoom_out_until_shown(browser, ASSETS)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert not on_graph(body, list(ASSETS)), body[:3000]
    screenshot(browser, "asset_graph")

    click_button(browser, "Materialize all")
    with dg.DagsterInstance.from_config(str(dagster_dev.env.dagster_home)) as instance:
        run = wait_for_run(instance, RUN_TIMEOUT_S)
        assert run.status == dg.DagsterRunStatus.SUCCESS, dagster_dev.log.read_text()[-3000:]
        assert run.job_name == "abalone_pipeline"
        evaluation = instance.get_latest_materialization_event(dg.AssetKey("evaluation_report"))
        mse = evaluation.asset_materialization.metadata["mse"].value
        check = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("evaluation_report"), "mse_within_threshold"), limit=1
        )
        assert check and check[0].run_id == run.run_id

    browser.get(f"{dagster_dev.url}/runs/{run.run_id}")
    wait_for_text(browser, ["Success"], timeout=60)
    screenshot(browser, "run")

    browser.get(f"{dagster_dev.url}/assets/evaluation_report")
    body = wait_for_text(browser, ["evaluation_report", "mse", "mse_standard_deviation"])
    # The metadata table: a row "mse", its timestamp, then the value as recorded.
    assert re.search(rf"^mse\n.*\n{re.escape(str(mse))}$", body, re.MULTILINE), body[:3000]
    screenshot(browser, "evaluation_report")

    show_markdown(browser, "predicted_vs_actual")
    wait_for_text(browser, ["predicted_vs_actual", "Close"])
    images = browser.find_elements(By.XPATH, "//img[starts-with(@src, 'data:image/png;base64,')]")
    assert images and images[0].size["width"] > 100, "the scatter did not render as a picture"
    screenshot(browser, "evaluation_report_scatter")

    browser.get(f"{dagster_dev.url}/assets/evaluation_report?view=checks")
    wait_for_text(browser, ["mse_within_threshold", "Passed", f"MSE {mse:.4f} <= 6.0"])
    screenshot(browser, "mse_check")
