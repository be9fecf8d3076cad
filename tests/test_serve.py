"""kb serve: Datasette on the KB with kb's metadata, search, facets and canned queries, read-only."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.ingest.build import build_kb
from kb.cli import cli
from kb.serve import is_loopback, load_metadata, make_datasette

POOLED = "10.22074/cellj.2024.2032098.1600"
CANNED = ("source_trials_of_pooled_study", "evidence_table", "unresolved_references",
          "most_cited", "works_citing_doi")


@pytest.fixture(scope="module")
def kb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "curated.db"  # any file name is served as "kb"
    build_kb(path)
    return path


@pytest.fixture
async def ds(kb_path: Path):
    datasette = make_datasette(kb_path)
    await datasette.invoke_startup()
    return datasette


def test_metadata_names_everything_the_views_need() -> None:
    metadata = load_metadata()
    assert metadata["title"] and metadata["license"] and metadata["source"]
    kb = metadata["databases"]["kb"]
    assert set(CANNED) <= set(kb["queries"])
    works = kb["tables"]["works"]
    assert {"year", "study_design", "journal"} <= set(works["facets"])
    assert (works["fts_table"], works["fts_pk"]) == ("works_fts", "id")
    assert works["columns"]["doi"]


async def test_home_and_database_pages_show_kb_metadata(ds) -> None:
    home = await ds.client.get("/")
    assert home.status_code == 200
    assert "kb — cell therapy for cerebral palsy" in home.text and "Apache-2.0" in home.text
    assert "_memory" not in home.text
    page = await ds.client.get("/kb")
    assert page.status_code == 200
    for name in ("works_with_first_author", "citation_edges", "Evidence table",
                 "Source trials of a pooled study", "Works citing a DOI"):
        assert name in page.text, name


async def test_full_text_search_on_works(ds) -> None:
    found = await ds.client.get("/kb/works.json?_search=mesenchymal&_shape=array&_col=title"
                                "&_col=doi&_size=max")
    assert found.status_code == 200
    rows = found.json()
    assert "10.1186/s13287-021-02513-4" in [r["doi"] for r in rows]
    fts = await ds.client.get("/kb.json", params={
        "sql": "SELECT rowid FROM works_fts WHERE works_fts MATCH 'mesenchymal'", "_shape": "array"})
    assert sorted(r["id"] for r in rows) == sorted(r["rowid"] for r in fts.json())
    assert sum("mesenchymal" in r["title"].lower() for r in rows) >= 5
    none = await ds.client.get("/kb/works.json?_search=xylophone&_shape=array")
    assert none.json() == []


async def test_facets_by_year_design_and_journal(ds) -> None:
    page = await ds.client.get("/kb/works.json?_size=0")
    facets = page.json()["facet_results"]
    assert {"year", "study_design", "journal"} <= set(facets)
    designs = {f["value"]: f["count"] for f in facets["study_design"]["results"]}
    assert designs["pooled-analysis"] == 1 and designs["rct"] >= 2


async def test_source_trials_of_the_pooled_study(ds) -> None:
    page = await ds.client.get(f"/kb/source_trials_of_pooled_study.json?doi={POOLED}"
                               "&_shape=array")
    assert page.status_code == 200
    rows = {r["trial"]: r for r in page.json()}
    assert set(rows) == {"Amanat 2021", "Zarrabi 2022"}
    assert (rows["Amanat 2021"]["via"], rows["Amanat 2021"]["cell_type"],
            rows["Amanat 2021"]["route"], rows["Amanat 2021"]["n"]) == (
        "pools", "UCT-MSC", "intrathecal", 72)
    assert rows["Zarrabi 2022"]["cell_type"] == "UCB-MNC"


async def test_other_canned_queries(ds) -> None:
    evidence = (await ds.client.get("/kb/evidence_table.json?_shape=array")).json()
    assert {"Amanat 2021", "Zarrabi 2022"} <= {r["label"] for r in evidence}
    cited = (await ds.client.get("/kb/most_cited.json?_shape=array")).json()
    assert cited[0]["cited_by_kb_works"] >= cited[-1]["cited_by_kb_works"]
    citing = (await ds.client.get("/kb/works_citing_doi.json?doi=10.1186/s13287-021-02513-4"
                                  "&_shape=array")).json()
    assert [r["type"] for r in citing] == ["web-article"] and citing[0]["position"] == 4
    unresolved = await ds.client.get("/kb/unresolved_references.json?_shape=array")
    assert unresolved.status_code == 200
    # included trials the meta-analysis names only by author and year, with no unique match
    # (Rah [42] is linked by the corpus's own cites row to Rah 2017)
    assert sorted(r["reference"] for r in unresolved.json()) == [
        "Kang et al [47], 2015 (South Korea, n=36)", "Luan et al [44], 2012 (China, n=91)"]


async def test_views_label_both_ends(ds) -> None:
    edges = (await ds.client.get("/kb/citation_edges.json?_shape=array&citing_label__startswith="
                                 "Fresh&_sort=position")).json()
    assert [e["cited_label"] for e in edges][1:] == ["Qu 2022", "Nouri 2025", "Amanat 2021",
                                                      "Zarrabi 2022"]
    first = (await ds.client.get("/kb/works_with_first_author.json?_shape=array&doi="
                                 "10.1186/s13287-021-02513-4")).json()
    assert first[0]["first_author"] == "Amanat" and first[0]["cited_in_kb"] == 1


@pytest.mark.parametrize("sql", ["UPDATE works SET title = 'x'", "DELETE FROM works",
                                 "INSERT INTO keywords VALUES (1, 'x')", "DROP TABLE works",
                                 "PRAGMA journal_mode = DELETE"])
async def test_writes_are_refused(ds, kb_path: Path, sql: str) -> None:
    before = kb_path.read_bytes()
    answer = await ds.client.get("/kb.json", params={"sql": sql})
    assert answer.status_code >= 400 and answer.json()["ok"] is False
    assert kb_path.read_bytes() == before


def test_serve_needs_an_existing_kb(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--db", str(tmp_path / "missing.db"), "serve"])
    assert result.exit_code == 2 and "no knowledge base" in result.output
    assert not (tmp_path / "missing.db").exists()


def test_help_says_loopback_and_loopback_check() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "127.0.0.1" in result.output
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.10") and not is_loopback("example.org")


async def test_live_mode_sees_writes_made_while_serving(tmp_path: Path) -> None:
    """--live reads through read-only connections, so a `kb add` meanwhile shows up; the
    default immutable mode is for a file nothing writes to (the bundled kb.db)."""
    from kb import store

    path = tmp_path / "kb.db"
    conn = store.connect(path)
    store.upsert_work(conn, {"source": "crossref", "doi": "10.5555/first", "title": "First"})
    live = make_datasette(path, live=True)
    await live.invoke_startup()
    store.upsert_work(conn, {"source": "crossref", "doi": "10.5555/second", "title": "Second"})
    rows = (await live.client.get("/kb/works.json?_shape=array&_col=doi")).json()
    assert sorted(r["doi"] for r in rows) == ["10.5555/first", "10.5555/second"]
    refused = await live.client.get("/kb.json", params={"sql": "DELETE FROM works"})
    assert refused.status_code == 400
    conn.close()
