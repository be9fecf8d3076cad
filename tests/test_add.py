"""kb add, end to end: CliRunner on a tmp_path KB, services faked on the loopback server."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from kb.ingest import add as ingest
from kb.cli import cli
from kb.config import Config
from kb.http import Client
from kb.identifiers import normalize_url
from kb.store import connect
from tests.crossref_fake import FakeCrossref
from tests.replay import Reply, ReplayServer, Request, fixture_text

AMANAT = "10.1186/s13287-021-02513-4"
REVIEW = "10.1007/s12035-016-0030-0"
ZENODO = "10.5281/zenodo.3478556"


def _db(env: dict[str, str]) -> sqlite3.Connection:
    conn = sqlite3.connect(env["KB_DB"])
    conn.row_factory = sqlite3.Row
    return conn


def _work(conn: sqlite3.Connection, doi: str) -> sqlite3.Row:
    return conn.execute("SELECT * FROM works WHERE doi = ?", (doi,)).fetchone()


def test_add_dois_in_pasted_forms(runner: CliRunner, kb_env: dict[str, str],
                                  server: ReplayServer) -> None:
    FakeCrossref(server)
    result = runner.invoke(cli, ["add", f"https://doi.org/{AMANAT.upper()}", f"doi:{REVIEW}",
                                 "10.1186/s12883-022-02636-y."])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"added\t{AMANAT}", f"added\t{REVIEW}",
                                          "added\t10.1186/s12883-022-02636-y"]
    assert "Added 3, updated 0, unchanged 0, failed 0" in result.stderr
    assert server.count("/crossref/works") == 1  # one batch for all three
    conn = _db(kb_env)
    amanat = _work(conn, AMANAT)
    assert amanat["title"].startswith("Clinical and imaging outcomes after intrathecal")
    assert (amanat["journal"], amanat["volume"], amanat["pages"], amanat["year"]) == (
        "Stem Cell Research & Therapy", "12", "439", 2021)
    assert amanat["status"] == "full"
    assert conn.execute("SELECT count(*) FROM work_authors WHERE work_id = ?",
                        (amanat["id"],)).fetchone()[0] == 20
    review = _work(conn, REVIEW)
    cites = conn.execute(
        "SELECT c.position, c.cited_doi, w.status, w.title, c.unstructured FROM citations c "
        "LEFT JOIN works w ON w.id = c.cited_id WHERE c.citing_id = ? ORDER BY c.position",
        (review["id"],)).fetchall()
    assert [tuple(r)[:3] for r in cites] == [
        (1, "10.1016/j.pmr.2009.06.001", "stub"), (2, "10.1111/dmcn.12262", "stub"),
        (3, "10.3233/nre-2003-18310", "stub"), (4, None, None)]
    assert cites[3]["unstructured"].startswith("Verschuren O, et al. (2007)")
    stub = _work(conn, "10.1016/j.pmr.2009.06.001")
    assert stub["year"] == 2009 and stub["journal"] == "Phys Med Rehabil Clin N Am"
    raw = conn.execute("SELECT source, url FROM records WHERE source_id = ?",
                       (AMANAT,)).fetchone()
    assert raw["source"] == "crossref" and "tests@example.org" not in raw["url"]


def test_datacite_fallback_and_a_doi_nobody_knows(runner: CliRunner, kb_env: dict[str, str],
                                                  server: ReplayServer) -> None:
    FakeCrossref(server)
    result = runner.invoke(cli, ["add", AMANAT, ZENODO, "10.5555/kb-test.nowhere"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"added\t{AMANAT}", f"added\t{ZENODO}"]
    assert "Added 2, updated 0, unchanged 0, failed 1" in result.stderr
    assert ("10.5555/kb-test.nowhere: not found in Crossref, DataCite, doi.org or PubMed"
            in result.stderr)
    assert "Traceback" not in result.output
    conn = _db(kb_env)
    zenodo = _work(conn, ZENODO)
    assert zenodo["title"] == "Treatment of cerebral palsy using stem cells"
    assert _work(conn, "10.5555/kb-test.nowhere") is None
    assert server.count(r"/datacite/dois/.+") == 2  # only for the two Crossref did not know


def test_bad_identifier_exits_2_and_leaves_the_db_alone(runner: CliRunner,
                                                        kb_env: dict[str, str],
                                                        server: ReplayServer) -> None:
    result = runner.invoke(cli, ["add", AMANAT, "10.1234"])
    assert result.exit_code == 2
    assert "'10.1234'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not Path(kb_env["KB_DB"]).exists() and server.count() == 0


def test_from_file_with_comments(runner: CliRunner, kb_env: dict[str, str],
                                 server: ReplayServer, tmp_path: Path) -> None:
    FakeCrossref(server)
    ids = tmp_path / "ids.txt"
    ids.write_text(f"# trials\n{AMANAT}   # Amanat 2021\n\nhttps://doi.org/{REVIEW}\n",
                   encoding="utf-8")
    result = runner.invoke(cli, ["add", "--from-file", str(ids)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"added\t{AMANAT}", f"added\t{REVIEW}"]
    bad = tmp_path / "bad.txt"
    bad.write_text("PMID 34362453\nnot-an-id\n", encoding="utf-8")
    result = runner.invoke(cli, ["add", "--from-file", str(bad)])
    assert result.exit_code == 2 and "'not-an-id'" in result.stderr


def test_no_ids_is_a_usage_error(runner: CliRunner, kb_env: dict[str, str]) -> None:
    result = runner.invoke(cli, ["add"])
    assert result.exit_code == 2 and "at least one" in result.stderr


def test_second_run_is_unchanged_and_makes_no_requests(runner: CliRunner,
                                                       kb_env: dict[str, str],
                                                       server: ReplayServer) -> None:
    FakeCrossref(server)
    assert runner.invoke(cli, ["add", AMANAT, REVIEW]).exit_code == 0
    before = server.count()
    conn = _db(kb_env)
    stamps = conn.execute("SELECT id, updated_at FROM works ORDER BY id").fetchall()
    result = runner.invoke(cli, ["add", AMANAT, REVIEW])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"unchanged\t{AMANAT}", f"unchanged\t{REVIEW}"]
    assert server.count() == before
    assert conn.execute("SELECT id, updated_at FROM works ORDER BY id").fetchall() == stamps
    offline = runner.invoke(cli, ["add", "--offline", REVIEW, AMANAT])  # the same batch
    assert offline.exit_code == 0 and server.count() == before


def test_offline_without_a_cache_names_what_it_could_not_answer(
        runner: CliRunner, kb_env: dict[str, str], server: ReplayServer) -> None:
    FakeCrossref(server)
    result = runner.invoke(cli, ["add", "--offline", AMANAT])
    assert result.exit_code == 1
    assert "offline" in result.stderr and AMANAT in result.stderr
    assert server.count() == 0


def test_refresh_fetches_again(runner: CliRunner, kb_env: dict[str, str],
                               server: ReplayServer) -> None:
    FakeCrossref(server)
    runner.invoke(cli, ["add", AMANAT])
    before = server.count()
    assert runner.invoke(cli, ["add", "--refresh", AMANAT]).exit_code == 0
    assert server.count() > before


def test_refs_fetches_the_cited_dois_in_batches(runner: CliRunner, kb_env: dict[str, str],
                                                server: ReplayServer) -> None:
    fake = FakeCrossref(server)
    for n, doi in enumerate(["10.1016/j.pmr.2009.06.001", "10.1111/dmcn.12262"]):
        work = fake.work(f"10.5555/kb-bulk.{n}")
        work["DOI"] = doi.upper()
        fake.works[doi] = work
    result = runner.invoke(cli, ["add", "--refs", REVIEW])
    assert result.exit_code == 0, result.output
    assert "references fetched: 2 (0 new), 1 not fetched" in result.stderr
    conn = _db(kb_env)
    assert _work(conn, "10.1016/j.pmr.2009.06.001")["status"] == "full"
    assert _work(conn, "10.3233/nre-2003-18310")["status"] == "stub"
    lists = [r for r in server.requests if r.path == "/crossref/works"]
    assert len(lists) == 2  # the work, then its three cited DOIs together
    assert len(lists[1].query["filter"][0].split(",")) == 3


def test_retractions_are_flagged(runner: CliRunner, kb_env: dict[str, str],
                                 server: ReplayServer) -> None:
    FakeCrossref(server)
    result = runner.invoke(cli, ["add", "10.5555/kb-test.full", "10.5555/kb-test.retraction"])
    assert result.exit_code == 0, result.output
    conn = _db(kb_env)
    work = _work(conn, "10.5555/kb-test.full")
    assert work["is_retracted"] == 1
    assert _work(conn, "10.5555/kb-test.retraction")["is_retracted"] == 0
    kinds = conn.execute("SELECT kind, direction, other_doi FROM updates WHERE work_id = ? "
                         "ORDER BY kind", (work["id"],)).fetchall()
    assert [tuple(k) for k in kinds] == [
        ("correction", "updated-by", "10.5555/kb-test.correction"),
        ("retraction", "updated-by", "10.5555/kb-test.retraction")]


def test_a_quota_stores_what_was_fetched_and_fails_the_rest(config: Config,
                                                            server: ReplayServer,
                                                            tmp_path: Path) -> None:
    fake = FakeCrossref(server)
    conn = connect(tmp_path / "kb.db")
    assert ingest.add(conn, Client(config), [AMANAT]).added == [AMANAT]
    fake.blocked = True  # Crossref now answers 429 with a day-long Retry-After
    before = server.count("/crossref/.*")
    report = ingest.add(conn, Client(config), [AMANAT, REVIEW, ZENODO])
    assert report.unchanged == [AMANAT]  # answered from the cache
    assert list(report.failed) == [REVIEW, ZENODO]
    assert "86400 s" in report.failed[REVIEW] and "86400 s" in report.failed[ZENODO]
    assert server.count("/crossref/.*") - before == 1  # no hammering after the first 429
    assert server.count("/datacite/.*") == 0  # Crossref could not say whether it knows them
    assert not report.ok and "failed 2" in report.summary()


def test_datacite_down_is_given_up_on(config: Config, server: ReplayServer,
                                      tmp_path: Path) -> None:
    server.add("GET", "/datacite/.*", Reply(503, "Service Unavailable"))
    FakeCrossref(server)
    dois = [f"10.5555/kb-test.unknown{n}" for n in range(5)]
    report = ingest.add(connect(tmp_path / "kb.db"), Client(config.with_options(retries=1)),
                        dois)
    assert sorted(report.failed) == sorted(dois)
    assert all("DataCite: HTTP 503" in reason for reason in report.failed.values())
    assert server.count("/datacite/.*") == 2 * 2  # two DOIs, one retry each; then stop


def test_progress_is_reported_per_input(config: Config, server: ReplayServer,
                                        tmp_path: Path) -> None:
    FakeCrossref(server)
    ticks: list[int] = []
    report = ingest.add(connect(tmp_path / "kb.db"), Client(config),
                        [AMANAT, REVIEW, "10.5555/kb-test.nowhere"], progress=ticks.append)
    assert sum(ticks) == 3 and len(report.added) == 2 and len(report.failed) == 1
    assert ticks[0] == 2  # the Crossref batch, before DataCite is asked about the third


def _serve_pubmed(server: ReplayServer) -> None:
    server.add("GET", "/idconv", Reply(200, fixture_text("idconv", "add-merge-doi.json"),
                                       content_type="application/json"),
               query={"idtype": "doi"})
    server.add("GET", "/idconv", Reply(200, fixture_text("idconv", "add-merge-pmcid.json"),
                                       content_type="application/json"),
               query={"idtype": "pmcid"})
    server.add("GET", "/eutils/efetch.fcgi",
               Reply(200, fixture_text("pubmed", "add-merge-34362453.xml"),
                     content_type="text/xml"), query={"id": "34362453"})


def test_crossref_and_pubmed_records_merge_into_one_work(runner: CliRunner,
                                                         kb_env: dict[str, str],
                                                         server: ReplayServer) -> None:
    FakeCrossref(server)
    _serve_pubmed(server)
    result = runner.invoke(cli, ["add", AMANAT])
    assert result.exit_code == 0, result.output
    conn = _db(kb_env)
    assert conn.execute("SELECT count(*) FROM works WHERE status = 'full'").fetchone()[0] == 1
    work = _work(conn, AMANAT)
    assert (work["pmid"], work["pmcid"]) == ("34362453", "PMC8343813")
    assert work["title"].startswith("Clinical and imaging") and not work["title"].endswith(".")
    assert work["journal"] == "Stem Cell Research & Therapy"  # Crossref outranks PubMed
    assert work["journal_abbrev"] == "Stem Cell Res Ther"
    mesh = [r[0] for r in conn.execute("SELECT descriptor FROM mesh WHERE work_id = ?",
                                       (work["id"],))]
    assert "Cerebral Palsy" in mesh and len(mesh) == 10
    sources = {r[0] for r in conn.execute("SELECT source FROM records WHERE work_id = ?",
                                          (work["id"],))}
    assert sources == {"crossref", "pubmed"}
    for again in (["add", "PMID:34362453"], ["add", "PMC8343813"]):
        result = runner.invoke(cli, again)
        assert result.exit_code == 0, result.output
        assert result.stdout.split("\t")[0] == "unchanged"
    assert conn.execute("SELECT count(*) FROM works WHERE status = 'full'").fetchone()[0] == 1


def test_a_doi_only_pubmed_knows_is_still_added(runner: CliRunner, kb_env: dict[str, str],
                                                server: ReplayServer) -> None:
    fake = FakeCrossref(server)
    del fake.works[AMANAT]
    _serve_pubmed(server)
    result = runner.invoke(cli, ["add", AMANAT])
    assert result.exit_code == 0, result.output
    work = _work(_db(kb_env), AMANAT)
    assert work["pmid"] == "34362453" and work["journal"] == "Stem cell research & therapy"


def test_a_pmid_pubmed_does_not_know_fails(runner: CliRunner, kb_env: dict[str, str],
                                           server: ReplayServer) -> None:
    server.add("GET", "/eutils/efetch.fcgi", Reply(200, '<?xml version="1.0" ?>\n'
                                                   "<PubmedArticleSet></PubmedArticleSet>",
                                                   content_type="text/xml"))
    result = runner.invoke(cli, ["add", "PMID:99999999"])
    assert result.exit_code == 1 and "PMID 99999999: not found in PubMed" in result.stderr


def test_web_pages_by_url_and_saved_file(runner: CliRunner, kb_env: dict[str, str],
                                         server: ReplayServer, tmp_path: Path) -> None:
    page = fixture_text("webpage", "wordpress_ol.html")
    server.add("GET", "/pages/cord-blood", Reply(200, page, content_type="text/html"))
    saved = tmp_path / "saved page.html"
    saved.write_text(page, encoding="utf-8")
    result = runner.invoke(cli, ["add", str(saved)])
    assert result.exit_code == 0, result.output
    canonical = normalize_url(
        "https://cordbloodnews.example.org/2023/06/cord-blood-cerebral-palsy-trials/")
    conn = _db(kb_env)
    work = conn.execute("SELECT * FROM works WHERE url = ?", (canonical,)).fetchone()
    assert work["type"] == "web-article"
    assert conn.execute("SELECT count(*) FROM citations WHERE citing_id = ?",
                        (work["id"],)).fetchone()[0] > 0
    result = runner.invoke(cli, ["add", f"{server.url}/pages/cord-blood"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("unchanged\t") or result.stdout.startswith("updated\t")
    missing = runner.invoke(cli, ["add", f"{server.url}/pages/gone"])
    assert missing.exit_code == 1 and "/pages/gone" in missing.stderr


def test_openalex_ids_merge_with_crossref(runner: CliRunner, kb_env: dict[str, str],
                                          server: ReplayServer) -> None:
    import json
    FakeCrossref(server)
    works = {w["id"].rsplit("/", 1)[1]: w for w in json.loads(fixture_text("openalex",
                                                                           "works.json"))}

    def openalex(request: Request) -> Reply:  # filter=ids.openalex:W1|W2
        wanted = request.query["filter"][0].split(":", 1)[1].split("|")
        results = [works[w] for w in wanted if w in works]
        return Reply(200, {"meta": {"count": len(results), "page": 1, "per_page": 100},
                           "results": results, "group_by": []})
    server.add("GET", "/openalex/works", openalex)
    result = runner.invoke(cli, ["add", "https://openalex.org/W5000000002", "W5999999999"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["added\tOpenAlex W5000000002"]
    assert "OpenAlex W5999999999: not found in OpenAlex" in result.stderr
    work = _work(_db(kb_env), AMANAT)
    assert work["openalex_id"] == "W5000000002" and work["volume"] == "12"
    sources = {r[0] for r in _db(kb_env).execute("SELECT source FROM records WHERE work_id = ?",
                                                 (work["id"],))}
    assert {"crossref", "openalex"} <= sources


def test_retry_notices_follow_quiet_and_verbose(runner: CliRunner, kb_env: dict[str, str],
                                                server: ReplayServer, monkeypatch) -> None:
    """A long pause before a retry is announced on stderr; --quiet silences it."""
    monkeypatch.setenv("KB_RETRIES", "1")
    server.add("GET", "/crossref/.*", Reply(503, "busy", headers={"Retry-After": "1"}))
    server.add("GET", "/datacite/.*", Reply(404, "not found"))
    shown = runner.invoke(cli, ["add", "--no-cache", "10.5555/kb-test.busy"])
    assert "retrying in 1 s" in shown.stderr and "HTTP 503" in shown.stderr
    quiet = runner.invoke(cli, ["-q", "add", "--no-cache", "10.5555/kb-test.busy"])
    assert "retrying" not in quiet.stderr
    assert quiet.exit_code == shown.exit_code != 0


#: One CSL item in the shape doi.org content negotiation serves (title and container-title as
#: strings, container-title-short present); the DOI is a test one, its agency hypothetical.
AGENCY_DOI = "10.5555/kb-test.medra-cp"
AGENCY_ITEM = {
    "type": "article-journal", "DOI": AGENCY_DOI.upper(), "URL": f"https://doi.org/{AGENCY_DOI}",
    "title": "Autologous bone marrow mononuclear cells in children with cerebral palsy",
    "container-title": "Minerva Pediatrica", "container-title-short": "Minerva Pediatr",
    "author": [{"family": "Rossi", "given": "Maria"}, {"family": "Bianchi", "given": "Luca"}],
    "issued": {"date-parts": [[2019, 4]]}, "volume": "71", "issue": "2", "page": "120-128",
    "publisher": "Edizioni Minerva Medica", "ISSN": ["0026-4946"], "language": "en",
}


def test_doi_org_content_negotiation_is_the_last_resort(runner: CliRunner,
                                                        kb_env: dict[str, str],
                                                        server: ReplayServer) -> None:
    """A DOI neither Crossref nor DataCite knows: doi.org redirects to its agency, which
    answers CSL-JSON; an agency that answers a web page instead is a clear failure."""
    FakeCrossref(server)
    server.add("GET", f"/doi/{AGENCY_DOI}",
               Reply(302, "Handle Redirect", headers={"Location": f"{server.url}/medra/item"}))
    server.add("GET", "/medra/item",
               Reply(200, AGENCY_ITEM, content_type="application/vnd.citationstyles.csl+json"))
    server.add("GET", "/doi/10.5555/kb-test.no-csl",
               Reply(200, "<html><title>Landing page</title></html>",
                     content_type="text/html; charset=utf-8"))
    result = runner.invoke(cli, ["add", AGENCY_DOI, "10.5555/kb-test.no-csl"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stdout.splitlines() == [f"added\t{AGENCY_DOI}"]
    assert "10.5555/kb-test.no-csl: not found in Crossref or DataCite; doi.org: the agency " \
           "of 10.5555/kb-test.no-csl does not serve CSL-JSON (it answered text/html)" \
        in result.stderr
    asked = [r for r in server.requests if r.path.startswith("/doi/")]
    assert {r.headers.get("Accept") for r in asked} == {"application/vnd.citationstyles.csl+json"}
    work = _work(_db(kb_env), AGENCY_DOI)
    assert work["title"] == AGENCY_ITEM["title"] and work["journal"] == "Minerva Pediatrica"
    assert (work["journal_abbrev"], work["year"], work["pub_date"]) == ("Minerva Pediatr", 2019,
                                                                        "2019-04")
    assert json.loads(work["provenance"])["title"] == "doi.org"
    conn = _db(kb_env)
    authors = [r[0] for r in conn.execute(
        "SELECT a.family FROM work_authors wa JOIN authors a ON a.id = wa.author_id "
        "WHERE wa.work_id = ? ORDER BY wa.position", (work["id"],))]
    assert authors == ["Rossi", "Bianchi"]
    raw = conn.execute("SELECT source, url FROM records WHERE source_id = ?",
                       (AGENCY_DOI,)).fetchone()
    assert raw["source"] == "doi.org" and raw["url"].endswith(f"/doi/{AGENCY_DOI}")
