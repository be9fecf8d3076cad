"""kb serve in headless Chromium (Selenium): the home page, the works table, a work's page,
full-text search from the works table and every canned query, each saved as a screenshot under
tests/out/ (git-ignored) — look at them after a change to the pages."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving import start_serve, stop
from tests.test_browser import OUT, browser  # noqa: F401 (fixture)
from tests.test_browser import pytestmark as browser_marks

POOLED = "10.22074/cellj.2024.2032098.1600"

pytestmark = browser_marks  # browser; skipped without Debian's chromium and chromium-driver


@pytest.fixture(scope="module")
def base(bundled_kb: Path) -> Iterator[str]:
    proc, port = start_serve({**os.environ, "KB_OFFLINE": "1", "KB_DB": str(bundled_kb)})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def driver(browser: object) -> object:
    return browser


def _shot(driver: object, name: str) -> None:
    driver.execute_script("window.scrollTo(0, 0)")  # type: ignore[attr-defined]
    driver.save_screenshot(str(OUT / f"datasette_{name}.png"))  # type: ignore[attr-defined]


def _top(driver: object, css: str) -> float:
    """How far down the page (px) the first element matching ``css`` starts."""
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, css).rect["y"]  # type: ignore[attr-defined]


def _images_loaded(driver: object) -> list[str]:
    return driver.execute_script(  # type: ignore[attr-defined]
        "return [...document.images].filter(i => !i.complete || !i.naturalWidth).map(i => i.src)")


def test_home(base: str, driver: object) -> None:
    from selenium.webdriver.common.by import By
    driver.get(base + "/")  # type: ignore[attr-defined]
    text = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    assert "Works by study design" in text and "Trials by cell product" in text
    assert "Ready-made queries" in text and "UCB-MNC" in text
    assert _images_loaded(driver) == []  # the chart and the seed picture
    assert _top(driver, ".kb-chart img") < 700
    _shot(driver, "home")


def test_works_table(base: str, driver: object) -> None:
    from selenium.webdriver.common.by import By
    driver.get(base + "/kb/works")  # type: ignore[attr-defined]
    assert _top(driver, "table.rows-and-columns tbody tr") < 1000  # was about 2,100 px
    headers = [th.get_attribute("data-column") for th in driver.find_elements(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, "table.rows-and-columns th")]
    assert "title" in headers and "provenance" not in headers and "created_at" not in headers
    links = driver.find_elements(By.CSS_SELECTOR, 'td.col-doi a[href^="https://doi.org/10."]')  # type: ignore[attr-defined]
    assert len(links) >= 20
    title = driver.find_element(By.CSS_SELECTOR, "td.col-title")  # type: ignore[attr-defined]
    assert title.rect["width"] >= 300  # titles are not squeezed
    _shot(driver, "works")


def test_a_works_page(base: str, driver: object) -> None:
    from selenium.webdriver.common.by import By
    driver.get(f"{base}/kb/works?doi={POOLED}")  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "td.col-id a").click()  # type: ignore[attr-defined]
    marks = driver.find_element(By.CSS_SELECTOR, ".kb-marks")  # type: ignore[attr-defined]
    assert "unverified" in marks.text and marks.rect["y"] < 400
    record = driver.find_element(By.CSS_SELECTOR, "table.kb-record").text  # type: ignore[attr-defined]
    assert "Cell-Based Therapy for Cerebral Palsy" in record and POOLED in record
    _shot(driver, "work")


def test_full_text_search(base: str, driver: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(base + "/kb/works")  # type: ignore[attr-defined]
    box = driver.find_element(By.ID, "_search")  # type: ignore[attr-defined]
    box.send_keys("GMFM")
    box.submit()
    WebDriverWait(driver, 15).until(ec.url_contains("search_works?q=GMFM"))
    rows = driver.find_elements(By.CSS_SELECTOR, "table.rows-and-columns tbody tr")  # type: ignore[attr-defined]
    assert len(rows) >= 15
    scores = [float(td.text) for td in driver.find_elements(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, "td.col-relevance")]
    assert scores == sorted(scores, reverse=True)
    assert driver.find_elements(By.CSS_SELECTOR, "td.col-snippet mark")  # type: ignore[attr-defined]
    _shot(driver, "search")


@pytest.mark.parametrize("query", [
    f"source_trials_of_pooled_study?doi={POOLED}",
    f"outcomes_of_pooled_study?doi={POOLED}&instrument=GMFM-66",
    "effects_at_12_months_by_cell_product",
    "evidence_table",
    "unresolved_references",
    "most_cited",
    "works_citing_doi?doi=10.1186/s13287-021-02513-4",
    "search_works?q=cord+blood",
])
def test_each_canned_query(base: str, driver: object, query: str) -> None:
    from selenium.webdriver.common.by import By
    driver.get(f"{base}/kb/{query}")  # type: ignore[attr-defined]
    rows = driver.find_elements(By.CSS_SELECTOR, "table.rows-and-columns tbody tr")  # type: ignore[attr-defined]
    assert rows, query
    _shot(driver, "query_" + query.partition("?")[0])
