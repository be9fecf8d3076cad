"""E-utilities and the PMC ID converter over real HTTP (the loopback replay server)."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import pytest
from click.testing import CliRunner

from kb import store
from kb.cli import cli
from kb.config import Config
from kb.errors import FetchError, InputError, QuotaError
from kb.http import Client
from kb.scrapers import pubmed
from tests.replay import FIXTURES, Reply, Request, ReplayServer

PUBMED = FIXTURES / "pubmed"
XML = "text/xml; charset=UTF-8"


def _xml(name: str) -> Reply:
    return Reply(200, (PUBMED / name).read_bytes(), content_type=XML)


def _json(name: str) -> Reply:
    return Reply(200, (PUBMED / name).read_bytes(), content_type="application/json")


@pytest.fixture
def client(config: Config) -> Client:
    with Client(config.with_options(use_cache=False)) as http:
        yield http


def _sent(server: ReplayServer, path: str) -> list[Request]:
    return [r for r in server.requests if r.path.endswith(path)]


# -- esearch --------------------------------------------------------------------------------

def test_search_sends_identity_and_history(server: ReplayServer, client: Client) -> None:
    server.add("GET", "/eutils/esearch.fcgi", _xml("esearch.xml"))
    result = pubmed.search(client, "vaginal  microbiome", max_results=20)
    assert result.pmids == ["39345789", "34843274"]
    assert (result.count, result.webenv, result.query_key) == (2, "MCID_6927d6e7fee3e90f880ec190",
                                                                "1")
    assert result.translation == '"vaginal microbiome"[All Fields]'
    assert result.warnings == []
    query = _sent(server, "esearch.fcgi")[0].query
    assert query["term"] == ["vaginal microbiome"] and query["usehistory"] == ["y"]
    assert query["db"] == ["pubmed"] and query["retmax"] == ["20"]
    assert query["tool"] == ["kb"] and query["email"] == ["tests@example.org"]
    assert "api_key" not in query


def test_search_pages_with_the_history_server(server: ReplayServer, client: Client) -> None:
    server.add("GET", "/eutils/esearch.fcgi", _xml("esearch_page2.xml"), query={"retstart": "2"})
    server.add("GET", "/eutils/esearch.fcgi", _xml("esearch_page1.xml"))
    result = pubmed.search(client, '"cerebral palsy"[mh]', max_results=4, page_size=2)
    assert result.pmids == ["41297076", "41297075", "41297070", "41297001"]
    sent = _sent(server, "esearch.fcgi")
    assert [r.query["retstart"] for r in sent] == [["0"], ["2"]]
    assert "WebEnv" not in sent[0].query and sent[1].query["WebEnv"] == ["MCID_paging"]
    assert result.warnings == ["PubMed found 5 records; fetched the first 4 (raise --max for more)"]


def test_search_warns_past_ten_thousand(server: ReplayServer, client: Client) -> None:
    server.add("GET", "/eutils/esearch.fcgi", _xml("esearch_large.xml"))
    result = pubmed.search(client, "cancer", max_results=3)
    assert result.count == 42249 and len(result.pmids) == 3
    assert any("only page through the first 10,000" in w for w in result.warnings)


def test_search_no_hits_reports_errorlist(server: ReplayServer, client: Client) -> None:
    server.add("GET", "/eutils/esearch.fcgi", _xml("esearch_notfound.xml"))
    result = pubmed.search(client, "abcXYZ")
    assert (result.count, result.pmids) == (0, [])
    assert result.warnings == ["phrase not found: abcXYZ", "PubMed: No items found."]
    assert len(server.requests) == 1


def test_error_inside_200_is_a_fetch_error(server: ReplayServer, client: Client) -> None:
    server.add("GET", "/eutils/esearch.fcgi", _xml("esearch_error.xml"))
    with pytest.raises(FetchError, match="NCBI says: Invalid db name specified: nothing"):
        pubmed.search(client, "x")
    with pytest.raises(InputError):
        pubmed.search(client, "   ")


def test_rate_limit_429_is_retried_then_a_quota_error(server: ReplayServer, client: Client
                                                      ) -> None:
    limited = Reply(429, (PUBMED / "rate_limit.json").read_bytes(),
                    headers={"x-ratelimit-limit": "3", "Retry-After": "0"},
                    content_type="application/json")
    server.add("GET", "/eutils/esearch.fcgi", limited, _xml("esearch.xml"))
    assert pubmed.search(client, "x").count == 2
    assert len(server.requests) == 2
    server.routes.clear()
    server.add("GET", "/eutils/esearch.fcgi", limited)
    with pytest.raises(QuotaError, match="NCBI rate limit") as info:
        pubmed.search(client, "x")
    assert "NCBI_API_KEY" in str(info.value)


def test_rate_limit_json_inside_200(server: ReplayServer, client: Client) -> None:
    server.add("GET", "/eutils/efetch.fcgi", _json("rate_limit.json"))
    with pytest.raises(QuotaError, match="API rate limit exceeded"):
        pubmed.fetch_works(client, ["39345789"])


def test_api_key_is_sent_but_never_shown(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/eutils/esearch.fcgi", _xml("esearch_error.xml"))
    with Client(config.with_options(ncbi_api_key="SECRET-KEY-123", use_cache=False)) as http:
        with pytest.raises(FetchError) as info:
            pubmed.search(http, "x")
    assert server.requests[0].query["api_key"] == ["SECRET-KEY-123"]
    assert "SECRET-KEY-123" not in str(info.value) and "SECRET" not in (info.value.url or "")


# -- efetch ---------------------------------------------------------------------------------

def test_fetch_works_get_and_missing(server: ReplayServer, client: Client) -> None:
    server.add("GET", "/eutils/efetch.fcgi", _xml("efetch.xml"))
    records, missing = pubmed.fetch_works(client, ["39345789", "PMID:34843274", "11111111"])
    assert [r["pmid"] for r in records] == ["39345789", "34843274"]
    assert missing == ["11111111"]
    sent = _sent(server, "efetch.fcgi")
    assert len(sent) == 1 and sent[0].method == "GET"
    assert sent[0].query["id"] == ["39345789,34843274,11111111"]
    assert sent[0].query["retmode"] == ["xml"] and sent[0].query["tool"] == ["kb"]
    first = records[0]
    assert first["raw"].startswith("<PubmedArticle>") and first["fetched_at"].endswith("Z")
    assert first["source_url"].endswith("efetch.fcgi?db=pubmed&retmode=xml&id=39345789,"
                                        "34843274,11111111")
    with pytest.raises(InputError, match="not a PMID"):
        pubmed.fetch_works(client, ["10.1/x"])


def test_fetch_works_posts_long_lists(server: ReplayServer, client: Client) -> None:
    server.add("POST", "/eutils/efetch.fcgi", _xml("efetch.xml"))
    pmids = [str(30000000 + i) for i in range(700)] + ["39345789"]
    records, missing = pubmed.fetch_works(client, pmids)
    sent = _sent(server, "efetch.fcgi")
    assert [r.method for r in sent] == ["POST", "POST"]
    ids = [parse_qs(r.body.decode())["id"][0].split(",") for r in sent]
    assert [len(i) for i in ids] == [500, 201] and ids[0][0] == "30000000"
    assert "id" not in parse_qs(sent[0].path)  # ids in the body, not the URL
    assert len(missing) == 700 and {r["pmid"] for r in records} == {"39345789", "34843274"}


def test_fetch_error_answer(server: ReplayServer, client: Client) -> None:
    server.add("GET", "/eutils/efetch.fcgi", _xml("efetch_error.xml"))
    with pytest.raises(FetchError, match="ID list is empty"):
        pubmed.fetch_works(client, ["1"])


# -- elink ----------------------------------------------------------------------------------

def test_fetch_links_one_linkset_per_id(server: ReplayServer, client: Client) -> None:
    server.add("GET", "/eutils/elink.fcgi", _xml("elink.xml"))
    links = pubmed.fetch_links(client, ["9298984", "39345789"], "pubmed_pubmed_citedin")
    assert links == {"9298984": ["8794856", "9700164"], "39345789": []}
    sent = _sent(server, "elink.fcgi")[0].query
    assert sent["id"] == ["9298984", "39345789"]  # repeated id=, not id=a,b
    assert sent["linkname"] == ["pubmed_pubmed_citedin"] and sent["dbfrom"] == ["pubmed"]
    assert pubmed.fetch_links(client, ["9298984"], "pubmed_pubmed_refs") == {"9298984": []}
    with pytest.raises(InputError):
        pubmed.fetch_links(client, ["1"], "pubmed_pubmed")


# -- PMC ID converter -----------------------------------------------------------------------

def test_convert_ids(server: ReplayServer, client: Client) -> None:
    server.add("GET", "/idconv", _json("idconv_pmcid.json"), query={"idtype": "pmcid"})
    server.add("GET", "/idconv", _json("idconv.json"))
    found = pubmed.convert_ids(client, ["https://doi.org/10.1093/JAMIAOPEN/ooae099",
                                        "10.1037/amp0000904", "10.9999/not-in-pmc",
                                        "pmc11430916"])
    assert found["10.1093/jamiaopen/ooae099"] == {
        "doi": "10.1093/jamiaopen/ooae099", "pmid": "39345789", "pmcid": "PMC11430916",
        "errmsg": None}
    assert found["10.1037/amp0000904"]["errmsg"] == "Identifier not found in PMC"
    assert found["10.1037/amp0000904"]["pmid"] is None
    assert found["10.9999/not-in-pmc"]["pmid"] is None
    assert found["PMC11430916"]["pmid"] == "39345789"
    sent = [r.query for r in server.requests]
    assert [q["idtype"] for q in sent] == [["doi"], ["pmcid"]]
    assert sent[0]["ids"] == ["10.1093/jamiaopen/ooae099,10.1037/amp0000904,10.9999/not-in-pmc"]
    assert sent[0]["format"] == ["json"] and sent[0]["tool"] == ["kb"]


def test_convert_ids_batches_of_200(server: ReplayServer, client: Client) -> None:
    server.add("GET", "/idconv", _json("idconv.json"))
    found = pubmed.convert_ids(client, [str(1000 + i) for i in range(450)])
    assert [len(r.query["ids"][0].split(",")) for r in server.requests] == [200, 200, 50]
    assert found["1000"]["errmsg"] == "not in the converter's answer"


# -- kb pubmed ------------------------------------------------------------------------------

def test_kb_pubmed_searches_fetches_and_stores(server: ReplayServer, kb_env: dict[str, str],
                                              runner: CliRunner) -> None:
    server.add("GET", "/eutils/esearch.fcgi", _xml("esearch.xml"))
    server.add("GET", "/eutils/efetch.fcgi", _xml("efetch.xml"))
    result = runner.invoke(cli, ["pubmed", "vaginal microbiome", "--max", "5"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["39345789", "34843274"]
    conn = store.connect(Path(kb_env["KB_DB"]))
    rows = conn.execute("SELECT pmid, status FROM works WHERE status = 'full' ORDER BY pmid")
    assert [tuple(r) for r in rows] == [("34843274", "full"), ("39345789", "full")]
    assert conn.execute("SELECT count(*) FROM records WHERE source = 'pubmed'").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM citations").fetchone()[0] == 18
    again = runner.invoke(cli, ["pubmed", "vaginal microbiome", "--max", "5"])
    assert again.exit_code == 0 and "0 added, 0 updated, 2 unchanged" in again.stderr


def test_kb_pubmed_reports_missing_and_limits(server: ReplayServer, kb_env: dict[str, str],
                                             runner: CliRunner) -> None:
    server.add("GET", "/eutils/esearch.fcgi", _xml("esearch_large.xml"))
    server.add("GET", "/eutils/efetch.fcgi", _xml("efetch.xml"))
    result = runner.invoke(cli, ["pubmed", "cancer", "--max", "3"])
    assert result.exit_code == 1
    assert "only page through the first 10,000" in result.stderr
    assert "3 not returned by PubMed" in result.stderr
    bad = runner.invoke(cli, ["pubmed", "cancer", "--max", "0"])
    assert bad.exit_code == 2
