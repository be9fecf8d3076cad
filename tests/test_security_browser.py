"""`kb graph --format html` with hostile data: a DOI that breaks out of an attribute, a title
and an author that are markup, a javascript: URL. In headless Chromium nothing runs, the text
shows as text, and only http(s) addresses become links. A screenshot goes to tests/out/."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import store
from kb.cli import cli
from tests.test_graph_browser import CHROMEDRIVER, CHROMIUM, OUT, browser  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
                       reason="needs Debian's chromium and chromium-driver in /usr/bin"),
]

HOSTILE_DOI = "10.5555/x'/autofocus/onfocus='window.__pwned=1'/x="
HOSTILE_TITLE = ("<img src=x onerror=\"window.__pwned=2\"> Cord blood"
                 "</script><script>window.__pwned=5</script>")
HOSTILE_AUTHOR = "<svg onload=window.__pwned=4>"
HOSTILE_URL = "javascript:window.__pwned=3"


@pytest.fixture
def hostile_page(tmp_path: Path) -> Path:
    db = tmp_path / "kb.db"
    conn = store.connect(db)
    store.upsert_work(conn, {"source": "crossref", "doi": HOSTILE_DOI, "title": HOSTILE_TITLE,
                             "year": 2021, "authors": [{"family": HOSTILE_AUTHOR, "given": "A"}]})
    store.upsert_work(conn, {"source": "webpage", "url": HOSTILE_URL, "title": "'\"><b>x",
                             "year": 2020})
    focus, = conn.execute("SELECT doi FROM works WHERE doi IS NOT NULL").fetchone()
    other, = conn.execute("SELECT url FROM works WHERE doi IS NULL").fetchone()
    store.add_links(conn, [{"citing": {"doi": focus}, "cited": {"url": other},
                            "source": "corpus"}])
    conn.close()
    out = tmp_path / "hostile.html"
    result = CliRunner().invoke(cli, ["--db", str(db), "graph", "--doi", focus,
                                      "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_page_is_inert_with_hostile_data(hostile_page: Path, browser: object) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    text = hostile_page.read_text()
    assert "Content-Security-Policy" in text and "script-src 'sha256-" in text.replace("&#39;", "'")
    driver = browser
    driver.get(hostile_page.as_uri())  # type: ignore[attr-defined]
    nodes = driver.find_elements(By.CSS_SELECTOR, "#graph g.node")  # type: ignore[attr-defined]
    assert len(nodes) == 2, "the page's own script did not run"
    for node in nodes:  # hover and click every work: tooltips and details are built too
        ActionChains(driver).move_to_element(node.find_element(By.TAG_NAME, "circle")).perform()
        ActionChains(driver).click(node.find_element(By.TAG_NAME, "circle")).perform()
        for link in driver.find_elements(By.CSS_SELECTOR, "#details a"):  # type: ignore[attr-defined]
            href = link.get_attribute("href") or ""
            assert href.startswith(("https://", "http://", "file:")), href
            if href.startswith("http"):
                link.send_keys("")  # focus it: an injected onfocus would fire now
    details = driver.find_element(By.ID, "details")  # type: ignore[attr-defined]
    assert "'\"><b>x" in details.text  # the hostile title shows as text
    assert driver.execute_script("return window.__pwned === undefined")  # type: ignore[attr-defined]
    assert not driver.find_elements(By.CSS_SELECTOR, "img, #details b b, [onfocus], [onerror]")  # type: ignore[attr-defined]
    OUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUT / "graph-hostile.png"))  # type: ignore[attr-defined]
