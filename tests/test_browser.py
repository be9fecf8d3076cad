"""A person's view of `kb serve`: headless Chromium (Debian's chromium + chromium-driver, driven
by Selenium, nothing downloaded) searches the served KB, runs a canned query, and tries to write.

Screenshots go to tests/out/ (git-ignored).
"""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb.ingest.build import build_kb
from tests.serving import start_serve, stop

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OUT = Path(__file__).parent / "out"
POOLED = "10.22074/cellj.2024.2032098.1600"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
                       reason="needs Debian's chromium and chromium-driver in /usr/bin"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`kb serve` on a free loopback port over a freshly built KB."""
    db = tmp_path_factory.mktemp("browser") / "kb.db"
    build_kb(db)
    proc, port = start_serve({**os.environ, "KB_OFFLINE": "1", "KB_DB": str(db)})
    try:
        yield f"http://127.0.0.1:{port}", db
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1400,1200",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    OUT.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def _table_text(driver: object) -> str:
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, "table.rows-and-columns").text  # type: ignore[attr-defined]


def _screenshot(driver: object, name: str, css: str) -> None:
    """Scroll ``css`` to the top of the window, then save a screenshot under tests/out/."""
    from selenium.webdriver.common.by import By
    element = driver.find_element(By.CSS_SELECTOR, css)  # type: ignore[attr-defined]
    driver.execute_script("arguments[0].scrollIntoView(true); window.scrollBy(0, -20);",  # type: ignore[attr-defined]
                          element)
    driver.save_screenshot(str(OUT / name))  # type: ignore[attr-defined]


def test_full_text_search_for_mesenchymal(served: tuple[str, Path], browser: object) -> None:
    """The works table's search box leads to kb's ranked search (best matches first)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = served
    browser.get(f"{base}/kb/works")
    box = browser.find_element(By.ID, "_search")
    box.send_keys("mesenchymal")
    box.submit()
    WebDriverWait(browser, 15).until(ec.url_contains("search_works?q=mesenchymal"))
    rows = browser.find_elements(By.CSS_SELECTOR, "table.rows-and-columns tbody tr")
    assert len(rows) >= 5
    text = _table_text(browser)
    assert "10.1186/s13287-021-02513-4" in text  # Amanat 2021, UCT-MSC trial
    assert "Mesenchymal" in text or "mesenchymal" in text
    _screenshot(browser, "browser_search_mesenchymal.png", "h1")


def test_canned_query_source_trials_of_the_pooled_study(served: tuple[str, Path],
                                                        browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = served
    browser.get(f"{base}/kb")
    browser.find_element(By.LINK_TEXT, "Source trials of a pooled study").click()
    WebDriverWait(browser, 15).until(ec.presence_of_element_located((By.ID, "qp1")))
    field = browser.find_element(By.CSS_SELECTOR, "input[name=doi]")
    field.send_keys(POOLED)
    field.submit()
    WebDriverWait(browser, 15).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "table.rows-and-columns")))
    text = _table_text(browser)
    assert "Amanat 2021" in text and "Zarrabi 2022" in text
    assert "UCT-MSC" in text and "UCB-MNC" in text and "intrathecal" in text
    assert text.count("pools") >= 2
    _screenshot(browser, "browser_source_trials.png", "h1")


def test_a_write_through_the_server_is_refused(served: tuple[str, Path], browser: object) -> None:
    from urllib.parse import quote

    from selenium.webdriver.common.by import By

    base, db = served
    before = db.read_bytes()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    works = conn.execute("SELECT count(*) FROM works").fetchone()[0]
    conn.close()
    browser.get(f"{base}/kb?sql={quote('DELETE FROM works')}")
    page = browser.find_element(By.CSS_SELECTOR, "section.content").text
    assert "Invalid SQL" in page and "Statement must be a SELECT" in page
    browser.save_screenshot(str(OUT / "browser_write_refused.png"))
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/kb/works/-/insert', {method: 'POST', headers: {'Content-Type': "
        "'application/json'}, body: JSON.stringify({row: {title: 'x'}})})"
        ".then(r => done(r.status)).catch(e => done(String(e)));")
    assert isinstance(status, int) and status >= 400, status
    assert db.read_bytes() == before
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == works
    conn.close()
