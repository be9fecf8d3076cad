"""OpenCitations Index v2 over real HTTP: references and citations of a DOI as edges."""
from __future__ import annotations

from pathlib import Path

import pytest

from kb import store
from kb.errors import FetchError
from kb.scrapers import opencitations
from tests.replay import Reply
from tests.scholarly_fake import FakeOpenCitations

POOLED = "10.22074/cellj.2024.2032098.1600"
AMANAT = "10.1186/s13287-021-02513-4"


def test_references_and_citations_become_edges(server, client) -> None:
    FakeOpenCitations().install(server)
    refs = opencitations.to_links(opencitations.fetch_references(client, POOLED.upper()))
    assert [(l["citing"]["doi"], l["cited"]["doi"]) for l in refs] == [
        (POOLED, AMANAT), (POOLED, "10.1186/s12883-022-02636-y")]
    assert refs[0]["cited"] == {"doi": AMANAT, "pmid": "34362453"}
    assert server.requests[0].path == f"/opencitations/references/doi:{POOLED}"
    cites = opencitations.to_links(opencitations.fetch_citations(client, AMANAT))
    assert [(l["citing"]["doi"], l["source"]) for l in cites] == [
        (POOLED, "opencitations"), ("10.5555/kb.fixture.review1", "opencitations")]


def test_a_cited_work_known_only_by_omid_is_dropped(server, client) -> None:
    FakeOpenCitations().install(server)
    rows = opencitations.fetch_references(client, "10.5555/kb.fixture.review1")
    assert len(rows) == 3
    assert [l["cited"]["doi"] for l in opencitations.to_links(rows)] == [
        AMANAT, "10.1002/stem.1304"]


def test_unknown_dois_give_nothing(server, client) -> None:
    FakeOpenCitations().install(server)
    assert opencitations.fetch_citations(client, "10.5555/kb.unknown") == []
    assert opencitations.fetch_references(client, "not a doi") == []
    server.add("GET", r"/opencitations/citations/doi:10.5555/kb.gone", Reply(404, "Not found"))
    routes = server.routes
    routes.insert(0, routes.pop())  # the 404 route answers before the fixture index
    assert opencitations.fetch_citations(client, "10.5555/kb.gone") == []


def test_a_non_list_answer_is_a_fetch_error(server, client) -> None:
    server.add("GET", r"/opencitations/references/.+", Reply(200, {"error": "bad"}))
    with pytest.raises(FetchError, match="not a list of rows"):
        opencitations.fetch_references(client, POOLED)


def test_parse_pids_takes_the_first_doi_and_ignores_other_schemes() -> None:
    ref = opencitations.parse_pids(
        "omid:br/06101802023 doi:10.7717/peerj-cs.163 pmid:33816816 "
        "doi:10.7287/peerj.preprints.26727v1 arxiv:1234.5678")
    assert ref == {"doi": "10.7717/peerj-cs.163", "pmid": "33816816"}
    assert opencitations.parse_pids("omid:br/06101802023") == {}
    assert opencitations.parse_pids(None) == {}


def test_the_same_edge_from_openalex_and_opencitations_is_one_edge(server, client,
                                                                  tmp_path: Path) -> None:
    FakeOpenCitations().install(server)
    conn = store.connect(tmp_path / "kb.db")
    store.add_links(conn, [{"citing": {"doi": POOLED, "openalex_id": "W5000000001"},
                            "cited": {"doi": AMANAT, "openalex_id": "W5000000002",
                                      "pmid": "34362453"}, "source": "openalex"}])
    added = store.add_links(conn, opencitations.to_links(
        opencitations.fetch_references(client, POOLED)))
    assert added == 2  # a new source on the shared edge, and the Zarrabi edge
    rows = conn.execute("SELECT w.doi, c.sources FROM citations c JOIN works w "
                        "ON w.id = c.cited_id ORDER BY w.doi").fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        ("10.1186/s12883-022-02636-y", '["opencitations"]'),
        (AMANAT, '["openalex", "opencitations"]')]
