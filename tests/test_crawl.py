"""kb crawl: snowballing over OpenAlex, OpenCitations and PubMed elink served from loopback,
topic filter, limits, idempotent re-runs, and resuming after the process is killed."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kb.cli import cli
from kb.ingest.crawl import on_topic
from tests.crossref_fake import FakeCrossref
from tests.scholarly_fake import FakeElink, FakeOpenAlex, FakeOpenCitations, request_filters

POOLED = "10.22074/cellj.2024.2032098.1600"
AMANAT = "10.1186/s13287-021-02513-4"
ZARRABI = "10.1186/s12883-022-02636-y"
QU = "10.3389/fbioe.2022.1006845"
REVIEW = "10.5555/kb.fixture.review1"
OFFTOPIC = "10.5555/kb.fixture.offtopic"
COMMENTARY = "10.5555/kb.fixture.commentary"


def _services(server, delay: float = 0.0, elink: dict | None = None) -> None:
    FakeCrossref(server, latency=delay)
    FakeOpenAlex(delay=delay).install(server)
    FakeOpenCitations(delay=delay).install(server)
    FakeElink(elink, delay=delay).install(server)


def _state(db: Path) -> dict[str, object]:
    """Everything a crawl writes, keyed by identifiers (not row ids)."""
    conn = sqlite3.connect(db)
    name = ("coalesce(w.doi, 'pmid:' || w.pmid, 'openalex:' || w.openalex_id)")
    works = conn.execute(f"SELECT {name}, w.status, w.title FROM works w ORDER BY 1").fetchall()
    edges = conn.execute(
        f"SELECT {name.replace('w.', 'a.')}, {name.replace('w.', 'b.')}, c.sources "
        "FROM citations c JOIN works a ON a.id = c.citing_id JOIN works b ON b.id = c.cited_id "
        "ORDER BY 1, 2").fetchall()
    frontier = conn.execute(
        f"SELECT {name}, f.depth, f.state FROM crawl_frontier f JOIN works w ON w.id = f.work_id "
        "ORDER BY 1").fetchall()
    crawls = conn.execute("SELECT seed, direction, max_depth, max_works, topic, status "
                          "FROM crawls").fetchall()
    conn.close()
    return {"works": works, "edges": edges, "frontier": frontier, "crawls": crawls}


def _edges(state: dict[str, object]) -> dict[tuple[str, str], list[str]]:
    return {(a, b): sorted(json.loads(s)) for a, b, s in state["edges"]}  # type: ignore[union-attr]


def test_crawl_both_directions_with_a_topic(server, kb_env, runner) -> None:
    _services(server)
    result = runner.invoke(cli, ["crawl", "--doi", f"https://doi.org/{POOLED}", "--depth", "2",
                                 "--topic", "cerebral palsy"])
    assert result.exit_code == 0, result.output
    assert "5 works stored" in result.stderr and "1 off topic" in result.stderr
    state = _state(Path(kb_env["KB_DB"]))
    frontier = {doi: (depth, st) for doi, depth, st in state["frontier"]}
    assert frontier == {POOLED: (0, "stored"), AMANAT: (1, "stored"), ZARRABI: (1, "stored"),
                        COMMENTARY: (1, "stored"), REVIEW: (2, "stored"),
                        OFFTOPIC: (2, "off-topic")}
    status = {doi: st for doi, st, _ in state["works"]}
    conn = sqlite3.connect(kb_env["KB_DB"])
    provenance = dict(conn.execute("SELECT doi, json_extract(provenance, '$.title') FROM works "
                                   "WHERE doi IN (?, ?)", (AMANAT, POOLED)).fetchall())
    conn.close()
    assert provenance == {AMANAT: "crossref", POOLED: "openalex"}  # Crossref outranks
    crossref_batches = [r.query["filter"][0] for r in server.requests
                        if r.path == "/crossref/works"]
    assert any(AMANAT in f and ZARRABI in f for f in crossref_batches)
    assert status[OFFTOPIC] == "stub" and status[REVIEW] == "full" and status[POOLED] == "full"
    edges = _edges(state)
    # the pooled analysis's two trials: from OpenAlex and OpenCitations, one edge each
    assert edges[(POOLED, AMANAT)] == ["openalex", "opencitations"]
    assert edges[(POOLED, ZARRABI)] == ["openalex", "opencitations"]
    assert edges[(COMMENTARY, POOLED)] == ["openalex", "opencitations"]
    assert edges[(REVIEW, AMANAT)] == ["openalex", "opencitations"]
    assert edges[(OFFTOPIC, AMANAT)] == ["openalex"]
    # depth-2 works are stored but not expanded: the review's references are not followed
    assert (REVIEW, QU) not in edges
    # one OpenAlex request per frontier batch, not one per work
    filters = request_filters(server)
    assert filters[0] == f"doi:{POOLED}"
    depth_one = [f for f in filters if f.startswith("doi:") and AMANAT in f]
    assert len(depth_one) == 1
    assert sorted(depth_one[0][4:].split("|")) == sorted([AMANAT, ZARRABI, COMMENTARY])
    citing_pages = [r for r in server.requests if r.path == "/openalex/works"
                    and r.query["filter"][0].startswith("cites:")]
    assert citing_pages and all(r.query["select"] == ["id,doi,ids,title,publication_year,"
                                                      "authorships,referenced_works"]
                                for r in citing_pages)
    assert server.count(r"/eutils/elink\.fcgi") == 2  # refs and citedin of Amanat's PMID
    elink_ids = {r.query["id"][0] for r in server.requests if r.path.endswith("elink.fcgi")}
    assert elink_ids == {"34362453"}


def test_rerunning_a_finished_crawl_does_nothing(server, kb_env, runner) -> None:
    _services(server)
    args = ["crawl", "--doi", POOLED, "--depth", "1", "--topic", "cerebral palsy"]
    assert runner.invoke(cli, args).exit_code == 0
    before, requests = _state(Path(kb_env["KB_DB"])), len(server.requests)
    conn = sqlite3.connect(kb_env["KB_DB"])
    dump = list(conn.iterdump())
    conn.close()
    result = runner.invoke(cli, args)
    assert result.exit_code == 0 and "already finished" in result.stderr
    assert len(server.requests) == requests
    conn = sqlite3.connect(kb_env["KB_DB"])
    assert list(conn.iterdump()) == dump
    conn.close()
    # --fresh crawls again (answers come from the HTTP cache) and ends in the same state
    assert runner.invoke(cli, args + ["--fresh"]).exit_code == 0
    assert _state(Path(kb_env["KB_DB"])) == before


def test_references_only_with_a_work_limit(server, kb_env, runner) -> None:
    _services(server)
    result = runner.invoke(cli, ["crawl", "--doi", REVIEW, "--direction", "refs", "--depth", "1",
                                 "--max-works", "3"])
    assert result.exit_code == 0, result.output
    state = _state(Path(kb_env["KB_DB"]))
    states = {doi: st for doi, _, st in state["frontier"]}
    assert list(states.values()).count("stored") == 3
    assert list(states.values()).count("over-limit") == 3
    # works beyond the limit are never fetched: two OpenAlex batches of 1 and 2 DOIs
    assert [len(f.split("|")) for f in request_filters(server) if f.startswith("doi:")] == [1, 2]
    assert states[REVIEW] == "stored"
    # every reference of the review is an edge, from OpenAlex, OpenCitations or both
    edges = _edges(state)
    assert edges[(REVIEW, AMANAT)] == ["openalex", "opencitations"]
    assert edges[(REVIEW, "10.1002/stem.1304")] == ["opencitations"]
    assert edges[(REVIEW, QU)] == ["openalex"]
    assert edges[(REVIEW, "openalex:W5000000008")] == ["openalex"]
    assert not any(path.startswith("/opencitations/citations") for path in
                   (r.path for r in server.requests))


def test_pubmed_citedin_edges_join_the_others(server, kb_env, runner) -> None:
    """elink's citing PMIDs become edges (source pubmed) and frontier works fetched from
    OpenAlex by PMID. 99999999 is beyond PubMed's range: a synthetic citing article."""
    _services(server, elink={("34362453", "pubmed_pubmed_citedin"): ["99999999"]})
    result = runner.invoke(cli, ["crawl", "--doi", AMANAT, "--direction", "cited-by"])
    assert result.exit_code == 0, result.output
    state = _state(Path(kb_env["KB_DB"]))
    edges = _edges(state)
    assert edges[("pmid:99999999", AMANAT)] == ["pubmed"]
    assert edges[(POOLED, AMANAT)] == ["openalex", "opencitations"]
    frontier = {key: st for key, _, st in state["frontier"]}
    assert frontier["pmid:99999999"] == "missing"
    assert "ids.pmid:99999999" in request_filters(server)
    citedin = [r for r in server.requests if r.path.endswith("elink.fcgi")]
    assert [r.query["linkname"] for r in citedin] == [["pubmed_pubmed_citedin"]]


def test_one_source_failing_is_reported_and_the_rest_kept(server, kb_env, runner,
                                                          monkeypatch) -> None:
    from tests.replay import Reply
    monkeypatch.setenv("KB_RETRIES", "0")
    server.add("GET", r"/opencitations/.+", Reply(500, "Internal Server Error"))
    FakeOpenAlex().install(server)
    FakeElink().install(server)
    result = runner.invoke(cli, ["crawl", "--doi", POOLED, "--depth", "1",
                                 "--source", "openalex", "--source", "opencitations"])
    assert result.exit_code == 1
    assert "failed: OpenCitations references of" in result.stderr
    edges = _edges(_state(Path(kb_env["KB_DB"])))
    assert edges[(POOLED, AMANAT)] == ["openalex"]
    assert server.count(r"/eutils/.*") == 0  # pubmed was not asked for


def test_a_work_only_crossref_has_is_stored(server, kb_env, runner) -> None:
    _services(server)
    huang = "10.1177/0963689717729379"  # in the Crossref fixtures, not in the OpenAlex ones
    result = runner.invoke(cli, ["crawl", "--doi", huang, "--depth", "0"])
    assert result.exit_code == 0, result.output
    assert "1 works stored" in result.stderr
    conn = sqlite3.connect(kb_env["KB_DB"])
    row = conn.execute("SELECT status, json_extract(provenance, '$.title') FROM works "
                       "WHERE doi = ?", (huang,)).fetchone()
    conn.close()
    assert row == ("full", "crossref")


def test_references_printed_without_ids_are_pointed_out(server, kb_env, runner) -> None:
    _services(server)  # Crossref prints one of this review's four references without a DOI
    result = runner.invoke(cli, ["crawl", "--doi", "10.1007/s12035-016-0030-0", "--depth", "0"])
    assert result.exit_code == 0, result.output
    assert "1 references were printed without identifiers: `kb resolve`" in result.stderr


def test_a_seed_no_source_knows_fails(server, kb_env, runner) -> None:
    _services(server)
    result = runner.invoke(cli, ["crawl", "--doi", "10.5555/kb.unknown"])
    assert result.exit_code == 1
    assert "no source knows this DOI" in result.stderr and "0 works stored" in result.stderr


def test_bad_input(kb_env, runner) -> None:
    result = runner.invoke(cli, ["crawl", "--doi", "not-a-doi"])
    assert result.exit_code == 2 and "not a DOI" in result.output
    result = runner.invoke(cli, ["crawl", "--doi", POOLED, "--direction", "sideways"])
    assert result.exit_code == 2


def test_topic_matching() -> None:
    assert on_topic("Stem cells for CEREBRAL PALSY", ["cerebral palsy"])
    assert on_topic("anything", [])
    assert on_topic("cord blood banking", ["cerebral palsy", "cord blood"])
    assert not on_topic("Serum ferritin in adults", ["cerebral palsy"])


@pytest.mark.slow
def test_a_killed_crawl_resumes_to_the_same_state(server, kb_env, tmp_path: Path) -> None:
    args = ["crawl", "--doi", POOLED, "--depth", "3", "--topic", "cerebral palsy"]
    env = dict(os.environ)
    kb = [sys.executable, "-m", "kb.cli"]

    # reference: one uninterrupted run
    _services(server)
    whole = tmp_path / "whole.db"
    subprocess.run(kb + ["--db", str(whole), *args], env={**env, "KB_CACHE_DIR": str(
        tmp_path / "cache1")}, check=True, capture_output=True, timeout=120)
    expected = _state(whole)
    assert [c[-1] for c in expected["crawls"]] == ["done"]

    # the same crawl with slow services, killed part-way
    server.routes.clear()
    server.requests.clear()
    _services(server, delay=0.15)
    cut = tmp_path / "cut.db"
    run_env = {**env, "KB_CACHE_DIR": str(tmp_path / "cache2")}
    process = subprocess.Popen(kb + ["--db", str(cut), *args], env=run_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not _stored_beyond_seed(cut):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    partial = _state(cut)
    assert [c[-1] for c in partial["crawls"]] == ["running"]
    assert 0 < sum(1 for *_, s in partial["frontier"] if s != "queued") \
        < sum(1 for *_, s in expected["frontier"] if s != "queued")

    server.routes.clear()
    _services(server)
    done = subprocess.run(kb + ["--db", str(cut), *args], env=run_env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resumed" in done.stderr
    assert _state(cut) == expected


def _stored_beyond_seed(db: Path) -> bool:
    """True once the crawl committed a round after the seed's."""
    if not db.exists():
        return False
    try:
        conn = sqlite3.connect(db, timeout=0.1)
        try:
            row = conn.execute("SELECT count(*) FROM crawl_frontier WHERE depth = 1 "
                               "AND state != 'queued'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return bool(row and row[0])


def test_a_crawl_failing_part_way_is_interrupted_then_resumed(server, kb_env, runner,
                                                              monkeypatch) -> None:
    from tests.replay import Reply
    monkeypatch.setenv("KB_RETRIES", "0")
    openalex = FakeOpenAlex()
    calls: list[int] = []

    def failing_after_a_few(request):  # type: ignore[no-untyped-def]
        calls.append(1)
        return openalex.list(request) if len(calls) <= 3 else Reply(500, "Internal Server Error")

    server.add("GET", r"/openalex/works$", failing_after_a_few)
    args = ["crawl", "--doi", POOLED, "--depth", "2", "--source", "openalex"]
    failed = runner.invoke(cli, args)
    assert failed.exit_code == 1
    state = _state(Path(kb_env["KB_DB"]))
    assert [c[-1] for c in state["crawls"]] == ["interrupted"]  # not 'running' for ever
    assert any(s == "stored" for *_, s in state["frontier"])

    server.routes.clear()
    _services(server)
    resumed = runner.invoke(cli, args)
    assert resumed.exit_code == 0, resumed.output
    assert "resumed" in resumed.stderr
    assert [c[-1] for c in _state(Path(kb_env["KB_DB"]))["crawls"]] == ["done"]


def test_schema_12_keeps_every_crawl_and_frontier_row(tmp_path: Path) -> None:
    from kb import store
    conn = store.connect(tmp_path / "old.db", migrate_schema=False)
    store.migrate(conn, 11)
    conn.execute("INSERT INTO works(id, doi, status, created_at, updated_at) "
                 "VALUES (1, '10.5555/a', 'stub', 't', 't')")
    conn.execute("INSERT INTO crawls(id, seed, direction, max_depth, started_at, updated_at) "
                 "VALUES (7, '10.5555/a', 'refs', 1, 't', 't')")
    conn.execute("INSERT INTO crawl_frontier VALUES (7, 1, 0, 1, 'stored')")
    store.migrate(conn)
    assert [tuple(r) for r in conn.execute("SELECT id, status FROM crawls")] == [(7, "running")]
    assert [tuple(r) for r in conn.execute("SELECT * FROM crawl_frontier")] == [
        (7, 1, 0, 1, "stored")]
    conn.execute("UPDATE crawls SET status = 'interrupted'")  # allowed from schema 12 on
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
