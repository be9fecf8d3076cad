"""OpenAlex over real HTTP: batched OR filters, cursor paging, records and edges."""
from __future__ import annotations

from pathlib import Path

import pytest

from kb import store
from kb.errors import FetchError
from kb.http import Client
from kb.scrapers import openalex
from tests.replay import Reply, fixture_json
from tests.scholarly_fake import FakeOpenAlex, request_filters

AMANAT = "10.1186/s13287-021-02513-4"
POOLED = "10.22074/cellj.2024.2032098.1600"


def test_fetch_works_batches_dois_in_one_or_filter(server, client) -> None:
    FakeOpenAlex().install(server)
    dois = [f"https://doi.org/{AMANAT.upper()}", POOLED, "10.1186/s12883-022-02636-y",
            "10.5555/kb.not-in-openalex", "not a doi"]
    works = openalex.fetch_works(client, dois)
    assert sorted(w["doi"] for w in works) == [
        "https://doi.org/10.1186/s12883-022-02636-y", f"https://doi.org/{AMANAT}",
        f"https://doi.org/{POOLED}"]
    assert request_filters(server) == [
        "doi:10.1186/s12883-022-02636-y|10.1186/s13287-021-02513-4|"
        "10.22074/cellj.2024.2032098.1600|10.5555/kb.not-in-openalex"]
    request = server.requests[0]
    assert request.query["per-page"] == ["100"] and request.query["mailto"] == [
        "tests@example.org"]


def test_more_than_100_values_take_several_requests(server, client) -> None:
    FakeOpenAlex().install(server)
    dois = [f"10.5555/kb.batch.{n}" for n in range(230)]
    assert openalex.fetch_works(client, dois) == []
    sizes = [len(f.split(":", 1)[1].split("|")) for f in request_filters(server)]
    assert sizes == [100, 100, 30]


def test_a_doi_the_filter_cannot_carry_is_fetched_alone(server, client) -> None:
    fake = FakeOpenAlex()
    odd = dict(fake.works[-1], id="https://openalex.org/W5000000010",
               doi="https://doi.org/10.5555/kb.fixture.a,b")
    fake.works.append(odd)
    fake.install(server)
    works = openalex.fetch_works(client, ["10.5555/kb.fixture.a,b", "10.5555/kb.fixture.c|d"])
    assert [w["id"] for w in works] == ["https://openalex.org/W5000000010"]
    assert request_filters(server) == []
    assert server.count(r"/openalex/works/doi:.*") == 2  # one found, one 404


def test_api_key_goes_on_the_request(server, config) -> None:
    FakeOpenAlex().install(server)
    with Client(config.with_options(openalex_api_key="sekret-key")) as http:
        openalex.fetch_works(http, [AMANAT])
    assert server.requests[0].query["api_key"] == ["sekret-key"]


def test_citing_works_follow_the_cursor(server, client) -> None:
    FakeOpenAlex(page_size=1).install(server)
    citing = list(openalex.fetch_citing(client, ["W5000000002"]))
    assert sorted(w["doi"] for w in citing) == [
        "https://doi.org/10.22074/cellj.2024.2032098.1600",
        "https://doi.org/10.5555/kb.fixture.commentary",
        "https://doi.org/10.5555/kb.fixture.offtopic",
        "https://doi.org/10.5555/kb.fixture.review1"]
    cursors = [r.query["cursor"][0] for r in server.requests]
    assert cursors[0] == "*" and len(cursors) == 4 and len(set(cursors)) == 4
    assert len(list(openalex.fetch_citing(client, ["W5000000002"], limit=2))) == 2


def test_an_error_answer_is_a_fetch_error(server, client) -> None:
    server.add("GET", r"/openalex/works", Reply(200, {"error": "Invalid query parameters"}))
    with pytest.raises(FetchError, match="not a list of works"):
        openalex.fetch_works(client, [AMANAT])


def test_to_record_reads_every_field() -> None:
    work = next(w for w in fixture_json("openalex", "works.json")
                if w["doi"] == f"https://doi.org/{AMANAT}")
    record = openalex.to_record(work)
    assert record["source"] == "openalex" and record["source_id"] == "W5000000002"
    assert (record["doi"], record["pmid"], record["pmcid"], record["openalex_id"]) == (
        AMANAT, "34362453", "PMC8343813", "W5000000002")
    assert record["title"].startswith("Clinical and imaging outcomes after intrathecal")
    assert (record["year"], record["pub_date"], record["volume"], record["issue"],
            record["pages"]) == (2021, "2021-08-06", "12", "1", "439")
    assert record["journal"] == "Stem Cell Research & Therapy"
    assert record["type"] == "journal-article" and record["is_retracted"] is False
    assert record["cited_by_count"] == 4 and "abstract" not in record
    assert record["authors"][0] == {"family": "Amanat", "given": "Man", "orcid": None,
                                    "affiliation": None}
    assert record["mesh"] == [{"descriptor": "Cerebral Palsy", "descriptor_ui": "D002547",
                               "qualifier": "therapy", "major": True}]


def test_to_record_rebuilds_the_abstract_and_handles_a_work_without_doi() -> None:
    works = {w["id"].rsplit("/", 1)[1]: w for w in fixture_json("openalex", "works.json")}
    review = openalex.to_record(works["W5000000005"])
    assert review["abstract"].startswith("This synthetic abstract exists only in kb test")
    assert review["type"] == "review"
    no_doi = openalex.to_record(works["W5000000008"])
    assert "doi" not in no_doi and no_doi["openalex_id"] == "W5000000008"
    assert no_doi["url"] == "https://example.org/abstracts/2019/cord-blood-banking"


def test_edges_carry_the_cited_works_ids(server, client, tmp_path: Path) -> None:
    FakeOpenAlex().install(server)
    review = openalex.fetch_works(client, ["10.5555/kb.fixture.review1"])[0]
    known = {w["id"].rsplit("/", 1)[1]: w for w in openalex.fetch_by_openalex(
        client, review["referenced_works"], select=openalex.REF_FIELDS)}
    assert request_filters(server)[-1] == ("ids.openalex:W5000000002|W5000000003|"
                                           "W5000000004|W5000000008")
    assert server.requests[-1].query["select"] == [openalex.REF_FIELDS]
    links = openalex.reference_links(review, known)
    assert [link["cited"].get("doi") for link in links] == [
        AMANAT, "10.1186/s12883-022-02636-y", "10.3389/fbioe.2022.1006845", None]
    assert links[0]["cited"]["pmid"] == "34362453" and links[0]["source"] == "openalex"
    assert links[3]["cited"] == {"openalex_id": "W5000000008", "title":
                                 "Synthetic conference abstract on cord blood banking for "
                                 "cerebral palsy", "year": 2019, "first_author": "Banker"}
    conn = store.connect(tmp_path / "kb.db")
    assert store.add_links(conn, links) == 4
    assert store.add_links(conn, links) == 0
    assert conn.execute("SELECT count(*) FROM citations WHERE cited_id IS NOT NULL"
                        ).fetchone()[0] == 4


def test_citing_links_point_only_at_the_asked_works(server, client) -> None:
    FakeOpenAlex().install(server)
    targets = {w["id"].rsplit("/", 1)[1]: w
               for w in openalex.fetch_works(client, [AMANAT, POOLED])}
    edges = sorted((link["citing"]["doi"], link["cited"]["doi"])
                   for work in openalex.fetch_citing(client, targets)
                   for link in openalex.citing_links(work, targets))
    assert edges == [(POOLED, AMANAT), ("10.5555/kb.fixture.commentary", AMANAT),
                     ("10.5555/kb.fixture.commentary", POOLED),
                     ("10.5555/kb.fixture.offtopic", AMANAT),
                     ("10.5555/kb.fixture.review1", AMANAT)]


def test_pmid_lookup(server, client) -> None:
    FakeOpenAlex().install(server)
    works = openalex.fetch_by_pmid(client, ["36588957", "PMID: 34362453"])
    assert request_filters(server) == ["ids.pmid:34362453|36588957"]
    assert len(works) == 2
