"""The `kb graph --format html` page in a real browser: headless Chromium (Debian's chromium +
chromium-driver, driven by Selenium) opens the file offline, draws every work, fetches nothing,
and answers clicks and searches. A screenshot goes to tests/out/ (git-ignored)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.cli import cli
from tests import graph_kb
from tests.graph_kb import AMANAT, POOLED

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OUT = Path(__file__).parent / "out"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
                       reason="needs Debian's chromium and chromium-driver in /usr/bin"),
]


@pytest.fixture
def page(tmp_path: Path) -> Path:
    conn = graph_kb.build(tmp_path / "kb.db")
    conn.close()
    out = tmp_path / "pooled.html"
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "kb.db"), "graph", "--doi", POOLED,
                                      "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1300,800",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_draws_offline_and_answers(page: Path, browser: object) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(page.as_uri())  # type: ignore[attr-defined]
    nodes = driver.find_elements(By.CSS_SELECTOR, "#graph g.node")  # type: ignore[attr-defined]
    labels = {n.find_element(By.TAG_NAME, "text").text for n in nodes}
    assert labels == {"Nouri 2025 (unverified)", "Amanat 2021", "Zarrabi 2022", "Qu 2022",
                      "Cells4Life 2025", "Kiasatdolatabadi 2017"}
    assert len(driver.find_elements(By.CSS_SELECTOR, "#graph path.edge")) == 7  # type: ignore[attr-defined]
    # nothing was fetched: the page is its own only resource
    assert driver.execute_script(  # type: ignore[attr-defined]
        "return performance.getEntriesByType('resource').length") == 0
    details = driver.find_element(By.ID, "details")  # type: ignore[attr-defined]
    assert "pooled-analysis" in details.text  # the focus is described on opening
    amanat = next(n for n in nodes if n.find_element(By.TAG_NAME, "text").text == "Amanat 2021")
    ActionChains(driver).click(amanat.find_element(By.TAG_NAME, "circle")).perform()
    assert AMANAT in details.text and "source trials" in details.text
    dimmed = {n.find_element(By.TAG_NAME, "text").text for n in nodes
              if "dim" in (n.get_attribute("class") or "")}
    assert dimmed == {"Qu 2022", "Zarrabi 2022"}  # Amanat and its neighbours stay lit
    search = driver.find_element(By.ID, "q")  # type: ignore[attr-defined]
    search.send_keys("zarrabi")
    lit = {n.find_element(By.TAG_NAME, "text").text for n in nodes
           if "dim" not in (n.get_attribute("class") or "")}
    assert lit == {"Zarrabi 2022"}
    OUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUT / "graph-pooled.png"))  # type: ignore[attr-defined]


def test_no_arrowhead_runs_into_a_label(tmp_path: Path, browser: object) -> None:
    """On the bundled KB's pooled study, whose pooled trials sit below and beside it."""
    out = tmp_path / "bundled.html"
    result = CliRunner().invoke(cli, ["--db", str(Path(__file__).parents[1] / "kb.db"), "graph",
                                      "--doi", POOLED, "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    driver = browser
    driver.get(out.as_uri())  # type: ignore[attr-defined]
    hits = driver.execute_script("""  // the arrowhead: a disc as wide as its marker
      var boxes=[].map.call(document.querySelectorAll('#graph g.node'),function(g){
        var m=g.transform.baseVal.consolidate().matrix,b=g.querySelector('text').getBBox();
        return {x:b.x+m.e,y:b.y+m.f,w:b.width,h:b.height,t:g.textContent};});
      var hits=[];
      document.querySelectorAll('#graph path.edge').forEach(function(p){
        var id=p.getAttribute('marker-end').slice(5,-1),mk=document.getElementById(id);
        var size=parseFloat(mk.getAttribute('markerWidth'))*
          (mk.getAttribute('markerUnits')==='userSpaceOnUse'?1:
           parseFloat(p.getAttribute('stroke-width')));
        var L=p.getTotalLength(),q=p.getPointAtLength(Math.max(0,L-size/2)),r=size/2;
        boxes.forEach(function(b){
          var dx=Math.max(b.x-q.x,0,q.x-(b.x+b.w)),dy=Math.max(b.y-q.y,0,q.y-(b.y+b.h));
          if(dx*dx+dy*dy<r*r*0.6)hits.push(b.t);});});
      return hits;""")
    assert hits == []
