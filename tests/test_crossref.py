"""The Crossref and DataCite scrapers: parsing real-shaped payloads, and fetching over HTTP."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from kb.config import Config
from kb.errors import FetchError, NotFoundError
from kb.http import Client
from kb.scrapers import crossref, datacite
from tests.crossref_fake import POLITE_HEADERS, FakeCrossref
from tests.replay import Reply, ReplayServer, fixture_json, fixture_text

BATCH = ["10.1186/s13287-021-02513-4", "10.1186/s12883-022-02636-y", "10.1002/sctm.20-0470",
         "10.1177/0963689717729379"]
ODD = "10.5555/(sici)1097-4636(199706)35:4<491::aid-kb9>3.0.co;2-e"


def _message(name: str) -> dict:
    return fixture_json("crossref", name)["message"]


# -- to_record ----------------------------------------------------------------------------

def test_work_with_references() -> None:
    record = crossref.to_record(_message("work-with-references.json"))
    assert record["source"] == "crossref" and record["source_id"] == "10.1007/s12035-016-0030-0"
    assert record["doi"] == "10.1007/s12035-016-0030-0"
    assert record["title"] == "The Role of Stem Cells in the Treatment of Cerebral Palsy: a Review"
    assert (record["journal"], record["journal_abbrev"]) == ("Molecular Neurobiology",
                                                             "Mol Neurobiol")
    assert record["issn"] == "0893-7648; 1559-1182"
    assert record["publisher"] == "Springer Science and Business Media LLC"
    assert (record["year"], record["pub_date"], record["issue"], record["pages"]) == (
        2017, "2017", "7", "4963-4972")
    assert record["volume"] is None and record["abstract"] is None
    assert [a["family"] for a in record["authors"]][:3] == [
        "Kiasatdolatabadi", "Lotfibakhshaiesh", "Yazdankhah"]
    assert record["authors"][0]["given"] == "Anahita"
    refs = record["references"]
    assert [r["position"] for r in refs] == [1, 2, 3, 4]
    assert refs[0] == {"position": 1, "doi": "10.1016/j.pmr.2009.06.001",
                       "title": "Phys Med Rehabil Clin N Am", "journal": "Phys Med Rehabil Clin N Am",
                       "year": 2009, "first_author": "Pakula", "volume": "20", "first_page": "425"}
    assert refs[2]["doi"] == "10.3233/nre-2003-18310"  # normalised from NRE-2003-18310
    assert refs[3] == {"position": 4, "unstructured": (
        "Verschuren O, et al. (2007) Exercise training program in children and adolescents with "
        "cerebral palsy: a randomized controlled trial. Arch Pediatr Adolesc Med "
        "161(11):1075\u20131081")}
    assert json.loads(record["raw"]) == _message("work-with-references.json")


def test_every_optional_field() -> None:
    record = crossref.to_record(_message("work-synthetic-full.json"))
    assert record["title"] == "A synthetic trial record"  # <i> markup dropped
    assert record["subtitle"] == "every field Crossref may send"
    assert record["abstract"] == (
        "Background: This is a synthetic abstract for a test record; it describes no real "
        "study.\n\nMethods: Dose 2 \u00d7 10^6 cells/kg & nothing else.")
    assert record["authors"][0] == {"family": "Núñez", "given": "Ana",
                                    "orcid": "0000-0002-1825-0097",
                                    "affiliation": "Example University; Example Hospital"}
    assert record["authors"][1]["name"] == "The Synthetic Trial Group"
    assert record["pages"] == "e100"  # the article number when there is no page
    assert record["pub_date"] == "2023-05-17"
    assert record["license"] == "http://creativecommons.org/licenses/by/4.0/"  # the vor licence
    assert record["cited_by_count"] == 3 and record["language"] == "en"
    assert record["is_retracted"] is True
    assert record["updates"] == [
        {"kind": "retraction", "direction": "updated-by", "doi": "10.5555/kb-test.retraction",
         "label": "Retraction", "source": "crossref"},
        {"kind": "correction", "direction": "updated-by", "doi": "10.5555/kb-test.correction",
         "label": "Correction", "source": "crossref"}]


def test_a_retraction_notice_is_not_itself_retracted() -> None:
    record = crossref.to_record(_message("work-retraction-notice.json"))
    assert record["is_retracted"] is False
    assert record["updates"] == [{"kind": "retraction", "direction": "update-to",
                                  "doi": "10.5555/kb-test.full", "label": "Retraction",
                                  "source": "crossref"}]


def test_non_ascii_authors_and_doi_only_references() -> None:
    record = crossref.to_record(_message("work-non-ascii.json"))
    assert [(a["family"], a["given"]) for a in record["authors"]] == [("Akat", "A"),
                                                                     ("Karaöz", "E")]
    assert record["references"] == [
        {"position": 1, "doi": "10.1016/j.ridd.2010.12.042"},
        {"position": 2, "doi": "10.1111/dmcn.12268"},
        {"position": 3, "doi": "10.1136/bmjopen-2019-034974"}]


def test_batch_items_and_article_numbers() -> None:
    items = fixture_json("crossref", "batch.json")["message"]["items"]
    records = {r["doi"]: r for r in map(crossref.to_record, items)}
    assert sorted(records) == sorted(BATCH)
    amanat = records["10.1186/s13287-021-02513-4"]
    assert (amanat["volume"], amanat["pages"], amanat["year"]) == ("12", "439", 2021)
    assert len(amanat["authors"]) == 20 and amanat["authors"][-1]["family"] == "Ashrafi"
    assert len(records["10.1186/s12883-022-02636-y"]["authors"]) == 42
    assert records["10.1186/s12883-022-02636-y"]["pub_date"] == "2022-03"
    assert records["10.1177/0963689717729379"]["issn"] == "0963-6897; 1555-3892"


def test_doi_with_angle_brackets_semicolon_and_parentheses() -> None:
    record = crossref.to_record(_message("work-odd-doi.json"))
    assert record["doi"] == ODD
    assert record["pages"] == "491-498" and record["pub_date"] == "1997-06"


# -- fetching -----------------------------------------------------------------------------

def test_fetch_works_batches_then_retries_singly(server: ReplayServer, config: Config) -> None:
    FakeCrossref(server)
    client = Client(config)
    wanted = ["https://doi.org/10.1186/S13287-021-02513-4", *BATCH[1:], ODD,
              "10.5555/kb-test.nowhere"]
    records, missing = crossref.fetch_works(client, wanted)
    assert [r["doi"] for r in records] == [*BATCH, ODD]  # input order
    assert missing == ["10.5555/kb-test.nowhere"]
    lists = [r for r in server.requests if r.path == "/crossref/works"]
    assert len(lists) == 1
    query = lists[0].query
    assert query["mailto"] == ["tests@example.org"]
    assert int(query["rows"][0]) == 6
    assert sorted(query["filter"][0].split(",")) == sorted(
        f"doi:{d}" for d in [*BATCH, ODD, "10.5555/kb-test.nowhere"])
    singles = sorted(unquote(r.path) for r in server.requests if r.path != "/crossref/works")
    assert singles == [f"/crossref/works/{ODD}", "/crossref/works/10.5555/kb-test.nowhere"]
    assert records[0]["source_url"].endswith("/crossref/works/10.1186/s13287-021-02513-4")


def test_batches_hold_at_most_batch_size_dois(server: ReplayServer, config: Config) -> None:
    FakeCrossref(server)
    dois = [f"10.5555/kb-bulk.{n}" for n in range(2 * crossref.BATCH_SIZE + 5)]
    records, missing = crossref.fetch_works(Client(config), dois)
    assert len(records) == len(dois) and missing == []
    assert server.count() == 3
    assert max(len(r.query["filter"][0].split(",")) for r in server.requests) \
        == crossref.BATCH_SIZE


def test_a_failing_batch_falls_back_to_single_requests(server: ReplayServer,
                                                       config: Config) -> None:
    server.add("GET", "/crossref/works", Reply(400, fixture_json("crossref",
                                                                  "validation-failure.json")))
    FakeCrossref(server)
    records, missing = crossref.fetch_works(Client(config), BATCH[:2])
    assert [r["doi"] for r in records] == BATCH[:2] and missing == []
    assert server.count("/crossref/works/.+") == 2


def test_a_quota_stops_asking_and_says_why(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/crossref/works", Reply(429, fixture_text(
        "crossref", "too-many-requests.html"), headers={"Retry-After": "7200"},
        content_type="text/html"))
    errors: dict[str, str] = {}
    records, missing = crossref.fetch_works(Client(config), BATCH, errors=errors)
    assert records == [] and missing == BATCH
    assert server.count() == 1
    assert set(errors) == set(BATCH) and "7200 s" in errors[BATCH[0]]


def test_a_crossref_that_is_down_is_given_up_on_quickly(server: ReplayServer,
                                                         config: Config) -> None:
    server.add("GET", "/crossref/.*", Reply(503, "Service Unavailable"))
    dois = [f"10.5555/kb-bulk.{n}" for n in range(2 * crossref.BATCH_SIZE + 5)]
    errors: dict[str, str] = {}
    records, missing = crossref.fetch_works(Client(config.with_options(retries=1)), dois,
                                            errors=errors)
    assert records == [] and sorted(missing) == sorted(dois) and set(errors) == set(dois)
    assert "HTTP 503" in errors[dois[-1]]
    assert server.count("/crossref/works") == 2 * 2  # two batches, one retry each; then stop
    assert server.count("/crossref/works/.+") == 0  # no DOI-by-DOI hammering


@pytest.mark.parametrize("trouble", [
    Reply(429, fixture_text("crossref", "too-many-requests.html"), content_type="text/html",
          headers={"Retry-After": "1"}),
    Reply(503, "Service Unavailable"),
    Reply(200, fixture_json("crossref", "work-with-references.json"), truncate=200),
    Reply(200, fixture_text("crossref", "bad-gateway.html"), content_type="text/html"),
    Reply(200, '{"status":"ok","message-type":"work","message":{', content_type="application/json"),
    Reply(200, fixture_json("crossref", "work-with-references.json"), delay=1.0),
], ids=["429-retry-after", "503", "truncated", "html-page", "invalid-json", "stall"])
def test_fetch_work_survives_one_bad_answer(server: ReplayServer, config: Config,
                                            trouble: Reply) -> None:
    server.add("GET", "/crossref/works/.+", trouble,
               Reply(200, fixture_json("crossref", "work-with-references.json"),
                     headers=POLITE_HEADERS))
    client = Client(config.with_options(timeout=0.4))
    record = crossref.fetch_work(client, "10.1007/s12035-016-0030-0")
    assert record["title"].startswith("The Role of Stem Cells")
    assert client.stats["retries"] == 1 and server.count() == 2


def test_fetch_work_404(server: ReplayServer, config: Config) -> None:
    FakeCrossref(server)
    with pytest.raises(NotFoundError):
        crossref.fetch_work(Client(config), "10.5555/kb-test.nowhere")


def test_second_run_is_served_from_the_cache(server: ReplayServer, config: Config) -> None:
    FakeCrossref(server)
    first, _ = crossref.fetch_works(Client(config), [*BATCH, ODD])
    requests = server.count()
    again = Client(config)
    second, missing = crossref.fetch_works(again, [*BATCH, ODD])
    assert [r["raw"] for r in second] == [r["raw"] for r in first] and missing == []
    assert server.count() == requests and again.stats["requests"] == 0
    assert again.stats["cache_hits"] == 5  # each work under its own address


def test_a_later_run_asks_only_for_dois_not_yet_fetched(server: ReplayServer,
                                                        config: Config) -> None:
    FakeCrossref(server)
    crossref.fetch_works(Client(config), BATCH[:3])
    assert server.count() == 1
    records, _ = crossref.fetch_works(Client(config), [BATCH[1], BATCH[3]])
    assert [r["doi"] for r in records] == [BATCH[1], BATCH[3]]
    assert server.requests[-1].query["filter"] == [f"doi:{BATCH[3]}"] and server.count() == 2
    offline, missing = crossref.fetch_works(Client(config.with_options(offline=True)),
                                            [BATCH[0], BATCH[3]])
    assert len(offline) == 2 and missing == [] and server.count() == 2
    fresh, _ = crossref.fetch_works(Client(config.with_options(refresh=True)), [BATCH[0]])
    assert server.count() == 3 and fresh[0]["doi"] == BATCH[0]  # --refresh asks again


def test_an_unexpected_document_is_a_fetch_error(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/crossref/works/.+", Reply(200, {"status": "failed", "message": []}))
    with pytest.raises(FetchError, match="unexpected"):
        crossref.fetch_work(Client(config), "10.1007/s12035-016-0030-0")


# -- DataCite -----------------------------------------------------------------------------

def test_datacite_record() -> None:
    record = datacite.to_record(fixture_json("datacite", "zenodo-3478556.json"))
    assert record["source"] == "datacite" and record["doi"] == "10.5281/zenodo.3478556"
    assert record["title"] == "Treatment of cerebral palsy using stem cells"
    assert [a["family"] for a in record["authors"]] == [
        "Hołowczuk", "Janeczko", "Orzeł", "Klatka", "Terpiłowski"]
    assert (record["year"], record["pub_date"], record["publisher"]) == (2019, "2019-10-09",
                                                                         "Zenodo")
    assert record["type"] == "journal-article"
    assert record["license"] == "https://creativecommons.org/licenses/by-nc-sa/4.0/legalcode"


def test_datacite_objects_orcids_containers_and_references() -> None:
    record = datacite.to_record(fixture_json("datacite", "synthetic-dataset.json"))
    assert record["type"] == "dataset" and record["subtitle"] == "a test dataset"
    assert record["publisher"] == "Example Repository"
    assert record["authors"][0] == {"orcid": "0000-0002-1825-0097",
                                    "affiliation": "Example Institute",
                                    "family": "Łukasiewicz", "given": "Zoë"}
    assert record["authors"][1]["name"] == "Synthetic Data Consortium"
    assert (record["journal"], record["volume"], record["issue"], record["pages"]) == (
        "Synthetic Series", "3", "1", "10-12")
    assert record["abstract"] == "A synthetic dataset used to test kb; it holds no real data."
    assert record["references"] == [{"position": 1, "doi": "10.1186/s13287-021-02513-4"},
                                    {"position": 2, "doi": "10.1186/s12883-022-02636-y"}]


def test_datacite_fetch_and_404(server: ReplayServer, config: Config) -> None:
    FakeCrossref(server)
    client = Client(config)
    record = datacite.fetch_work(client, "10.5281/zenodo.3478556")
    assert record["title"] == "Treatment of cerebral palsy using stem cells"
    assert server.requests[-1].query["affiliation"] == ["true"]
    with pytest.raises(NotFoundError):
        datacite.fetch_work(client, "10.5555/kb-test.nowhere")


@pytest.mark.network
def test_live_crossref_batch(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Opt-in (-m network): the real API answers a batch in the shape the parser expects."""
    from kb.config import load_config
    if "network" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("a live check: run with -m network")
    config = load_config({"KB_CACHE_DIR": str(tmp_path), "KB_MAILTO": "kb-tests@example.org"})
    client = Client(config)
    records, missing = crossref.fetch_works(client, BATCH[:2])
    assert missing == [] and client.stats["requests"] == 1
    titles = {r["doi"]: r["title"] for r in records}
    assert titles[BATCH[0]].startswith("Clinical and imaging outcomes after intrathecal")
    assert titles[BATCH[1]].startswith("The safety and efficacy of umbilical cord blood")
