"""kb's Datasette plugin (kb/datasette) on a copy of the bundled kb.db, through Datasette's own
test client: the home page, identifier links, hidden columns, ranked search, row marks, table
order, the chart and the seed picture, the canned queries."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from kb.datasette import HIDDEN_COLUMNS, identifier_links
from tests.test_serve import ds  # noqa: F401  (the fixture, over kb_path below)

POOLED = "10.22074/cellj.2024.2032098.1600"
AMANAT = "10.1186/s13287-021-02513-4"


@pytest.fixture(scope="module")
def kb_path(bundled_kb: Path) -> Path:
    return bundled_kb  # served by test_serve's ds fixture


async def test_home_page_shows_the_field(ds) -> None:
    page = await ds.client.get("/")
    assert page.status_code == 200
    text = page.text
    for part in ("Works by study design", "Trials by cell product", "Ready-made queries",
                 "/-/kb/works-per-year.svg", "/-/kb/seed.svg", "search_works"):
        assert part in text, part
    assert re.search(r"<strong>\d+</strong> works", text)
    assert "UCB-MNC" in text and "intrathecal" in text
    for name in ("source_trials_of_pooled_study", "evidence_table", "outcomes_of_pooled_study",
                 "effects_at_12_months_by_cell_product", "works_citing_doi"):
        assert f"/kb/{name}" in text, name


async def test_chart_and_seed_picture_are_svg(ds) -> None:
    chart = await ds.client.get("/-/kb/works-per-year.svg")
    assert chart.status_code == 200 and chart.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in chart.text and "rct" in chart.text
    seed = await ds.client.get("/-/kb/seed.svg")
    assert seed.status_code == 200 and "<svg" in seed.text and "Amanat" in seed.text


def test_identifier_links() -> None:
    assert identifier_links("doi", AMANAT) == f'<a href="https://doi.org/{AMANAT}">{AMANAT}</a>'
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/34362453/"' in identifier_links("pmid", "34362453")
    assert 'href="https://pmc.ncbi.nlm.nih.gov/articles/PMC8343813/"' in \
        identifier_links("pmcid", "PMC8343813")
    assert identifier_links("registry_ids", "NCT01147653; ChiCTR-TRC-12002568").count("<a ") == 2
    assert 'href="https://www.isrctn.com/ISRCTN12345678"' in identifier_links("trial_ref",
                                                                               "ISRCTN12345678")
    assert identifier_links("url", "javascript:alert(1)") is None
    assert "&lt;" in identifier_links("doi", "10.1/<b>")  # escaped, never raw HTML
    assert identifier_links("title", AMANAT) is None and identifier_links("n", 12) is None


async def test_identifiers_render_as_links_in_pages(ds) -> None:
    works = await ds.client.get("/kb/works")
    assert f'<a href="https://doi.org/{AMANAT}">' in works.text
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/' in works.text
    trials = await ds.client.get("/kb/trials")
    assert 'href="https://clinicaltrials.gov/study/NCT' in trials.text


async def test_internal_columns_are_hidden_unless_asked(ds) -> None:
    page = await ds.client.get("/kb/works")
    headers = re.findall(r'data-column="([^"]+)"', page.text)
    assert "title" in headers and "doi" in headers
    assert not set(HIDDEN_COLUMNS["works"]) & set(headers)
    assert "show every column" in page.text
    everything = await ds.client.get("/kb/works?_nohide=1")
    assert {"provenance", "created_at"} <= set(re.findall(r'data-column="([^"]+)"', everything.text))
    data = await ds.client.get("/kb/works.json?_shape=array&_size=1")
    assert "provenance" in data.json()[0]  # the JSON API keeps every column


async def test_full_text_search_is_ranked_by_relevance(ds) -> None:
    redirect = await ds.client.get("/kb/works?_search=GMFM")
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "/kb/search_works?q=GMFM"
    found = (await ds.client.get("/kb/search_works.json?q=GMFM&_shape=array")).json()
    assert len(found) >= 15
    scores = [row["relevance"] for row in found]
    assert scores == sorted(scores, reverse=True)
    words = (await ds.client.get("/kb/search_works.json?q=cord+blood&_shape=array")).json()
    assert words and all("\x02" in row["snippet"] for row in words)
    page = await ds.client.get("/kb/search_works?q=intrathecal")
    assert "<mark>" in page.text and 'href="/kb/works/' in page.text
    odd = await ds.client.get("/kb/search_works.json?q=UC-MSC+%22unclosed&_shape=array")
    assert odd.status_code == 200  # an unreadable query is searched as plain words


async def test_a_works_page_shows_its_marks_first(ds) -> None:
    rows = (await ds.client.get("/kb/works.json?_shape=array&unverified=1&_col=id&_col=note"
                                )).json()
    assert rows
    page = await ds.client.get(f"/kb/works/{rows[0]['id']}")
    text = page.text
    marks, table = text.index('class="kb-marks'), text.index('class="kb-record"')
    assert marks < table and "unverified" in text[marks:table]
    assert "kb-field-title" in text  # one field per line, not one very wide row


async def test_tables_in_reading_order(ds) -> None:
    page = await ds.client.get("/kb")
    names = re.findall(r'<div class="db-table">\s*<h3><a href="/kb/([^"]+)"', page.text)
    assert names[:3] == ["works", "trials", "outcomes"], names[:6]
    assert names.index("accessions") > names.index("citations")


@pytest.mark.parametrize("query, expected", [
    (f"source_trials_of_pooled_study?doi={POOLED}", {"Amanat 2021", "Zarrabi 2022"}),
    (f"outcomes_of_pooled_study?doi={POOLED}&instrument=GMFM-66", {"Amanat 2021", "Zarrabi 2022"}),
    ("effects_at_12_months_by_cell_product", set()),
    ("evidence_table", {"Amanat 2021"}),
    ("unresolved_references", set()),
    ("most_cited", set()),
    (f"works_citing_doi?doi={AMANAT}", set()),
    ("search_works?q=intrathecal", {"Amanat 2021"}),
])
async def test_each_canned_query_returns_rows(ds, query: str, expected: set[str]) -> None:
    name, _, args = query.partition("?")
    rows = (await ds.client.get(f"/kb/{name}.json?{args}&_shape=array")).json()
    assert rows, query
    values = {str(v) for row in rows for v in row.values()}
    assert expected <= values, query
