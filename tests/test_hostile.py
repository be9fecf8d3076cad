"""Hostile answers from the services, through `kb add` as a user runs it: each one fails that
input with a clear message, quickly, in bounded memory; no secret reaches the cache or stderr;
redirects go only where they may; a host that cannot be reached fails at once, once."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kb.config import BASE_URLS, load_config
from kb.errors import FetchError
from kb.http import Client
from tests.hostile import HostileServer, run_kb

DOI = "10.5555/hostile.1"
KEY = "ncbiSECRETkey0123456789abcdef"


@pytest.fixture
def hostile() -> HostileServer:
    with HostileServer(max_requests=50, max_seconds=20) as server:
        yield server


def _env(server: HostileServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {var: f"{server.url}/{name}" for name, (var, _) in BASE_URLS.items()}
    env.update({"KB_CACHE_DIR": str(tmp_path / "cache"), "KB_DB": str(tmp_path / "kb.db"),
                "KB_RETRIES": "1", "KB_TIMEOUT": "5", "KB_OFFLINE": "", "NCBI_API_KEY": "",
                "OPENALEX_API_KEY": ""})
    env.update(extra)
    return env


@pytest.mark.parametrize("behaviour,extra,says", [
    (HostileServer.gzip_bomb(stacked=True), {}, "compressed 2 times over"),
    (HostileServer.gzip_bomb(stacked=False), {"KB_MAX_RESPONSE_MB": "crossref=5"},
     "larger than 5 MB"),
    (HostileServer.endless_chunked(), {"KB_MAX_RESPONSE_MB": "crossref=5"}, "larger than 5 MB"),
    (HostileServer.big(200), {}, "larger than 12 MB"),
    (HostileServer.json("[" + "{}," * (11 * 2**20 // 3) + "{}]"), {}, "unexpected"),
    (HostileServer.drip(every=0.3), {"KB_DEADLINE": "1.5", "KB_TIMEOUT": "1"},
     "longer than 2 s"),
], ids=["double-gzip-bomb", "gzip-bomb", "endless-chunked", "200-MB-body", "11-MB-of-{}",
        "drip"])
def test_a_hostile_answer_fails_that_input_quickly_in_bounded_memory(
        hostile: HostileServer, tmp_path: Path, behaviour, extra: dict[str, str],
        says: str) -> None:
    hostile.add("/crossref", behaviour)
    run = run_kb(_env(hostile, tmp_path, **extra), "add", DOI, timeout=60)
    assert run.code == 1, run.stderr
    assert DOI in run.stderr and says in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert run.peak_mb < 500, f"{run.peak_mb:.0f} MB"
    assert run.seconds < 20, f"{run.seconds:.1f} s"


def test_a_dot_dot_doi_stays_inside_the_api_path(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("/crossref", HostileServer.json(b'{"status": "ok", "message": {"items": []}}'))
    run_kb(_env(hostile, tmp_path), "add", "10.5555/../../../../etc/passwd", timeout=60)
    paths = [path for _, path, _ in hostile.requests]
    assert paths and all(path.startswith(("/crossref/", "/datacite/", "/doi/", "/idconv",
                                          "/eutils/")) for path in paths), paths
    assert not any("/etc/passwd" in path.split("?")[0].replace("%2E%2E/", "")
                   and "/../" in path for path in paths)
    assert not any(path.startswith("/etc/") for path in paths)


@pytest.mark.parametrize("module", ["kb.http", "kb.config", "kb.scrapers", "kb.serve",
                                    "kb.scrapers.crossref", "kb.render.output"])
def test_doctests(module: str) -> None:
    import doctest
    import importlib
    assert doctest.testmod(importlib.import_module(module)).failed == 0


# -- secrets --------------------------------------------------------------------------------

def _cache_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_a_same_host_redirect_keeps_the_key_out_of_the_cache(hostile: HostileServer,
                                                             tmp_path: Path) -> None:
    hostile.add("/idconv/old", HostileServer.redirect(
        lambda h: h.path.replace("/idconv/old", "/idconv/new")))
    hostile.add("/idconv/new", HostileServer.json(b'{"status": "ok", "records": []}'))
    config = load_config(_env(hostile, tmp_path, NCBI_API_KEY=KEY))
    with Client(config) as client:
        client.get(f"{hostile.url}/idconv/old", params={"ids": "1", "api_key": KEY})
        client.get(f"{hostile.url}/idconv/old", params={"ids": "1", "api_key": KEY})
    assert hostile.requests[1][1].startswith("/idconv/new") and KEY in hostile.requests[1][1]
    cache = _cache_bytes(tmp_path / "cache")
    assert cache and KEY.encode() not in cache


def test_a_key_echoed_in_an_error_body_is_not_printed(hostile: HostileServer,
                                                      tmp_path: Path) -> None:
    hostile.add("/", HostileServer.echo_error(400))
    run = run_kb(_env(hostile, tmp_path, NCBI_API_KEY=KEY, OPENALEX_API_KEY="oaSECRET4242"),
                 "-v", "pubmed", "cerebral palsy", "--max", "5", timeout=60)
    assert run.code != 0 and "Invalid API key" in run.stderr, run.stderr
    assert KEY not in run.stderr and KEY[:12] not in run.stderr
    assert KEY.encode() not in _cache_bytes(tmp_path / "cache")


# -- redirects ------------------------------------------------------------------------------

def _resolver(table: dict[str, list[str]]):
    return lambda host: table.get(host, [host])


@pytest.mark.parametrize("location,why", [
    ("file:///etc/passwd", "only http(s)"),
    ("ftp://127.0.0.1/x", "only http(s)"),
    ("http://metadata.internal/latest/meta-data/", "link-local"),
    ("http://intranet.example/admin", "private"),
])
def test_redirects_go_only_where_they_may(hostile: HostileServer, tmp_path: Path,
                                          location: str, why: str) -> None:
    hostile.add("/crossref", HostileServer.redirect(location))
    resolver = _resolver({"metadata.internal": ["169.254.169.254"],
                          "intranet.example": ["10.1.2.3"]})
    with Client(load_config(_env(hostile, tmp_path)), resolver=resolver) as client:
        with pytest.raises(FetchError, match="refused a redirect") as caught:
            client.get(f"{hostile.url}/crossref/works/x")
    assert why in str(caught.value)
    assert len(hostile.requests) == 1  # nothing followed


def test_a_public_service_may_not_redirect_to_loopback(tmp_path: Path) -> None:
    """A service configured by a public name (resolved by the injected resolver) that
    redirects to 127.0.0.2: refused before any request goes there."""
    with HostileServer("127.0.0.2") as inside:
        client = Client(load_config({"KB_CACHE_DIR": str(tmp_path / "c")}),
                        resolver=_resolver({"api.example.org": ["93.184.216.34"],
                                            "127.0.0.2": ["127.0.0.2"]}))
        with client:
            with pytest.raises(FetchError, match="loopback"):
                client._redirect("https://api.example.org/works/x",
                                 f"{inside.url}/admin", {})
        assert inside.requests == []


def test_redirect_hops_are_few(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("/crossref/loop", HostileServer.redirect(lambda h: h.path + "x", 302))
    with Client(load_config(_env(hostile, tmp_path))) as client:
        with pytest.raises(FetchError, match="more than 5 redirects"):
            client.get(f"{hostile.url}/crossref/loop")
    assert len(hostile.requests) == 6


def test_keys_are_not_sent_to_another_host(hostile: HostileServer, tmp_path: Path) -> None:
    with HostileServer("127.0.0.2") as other:
        other.add("/", HostileServer.json(b'{"ok": true}'))
        hostile.add("/eutils", HostileServer.redirect(
            lambda h: f"{other.url}/landing?{h.path.partition('?')[2]}&token2={KEY}"))
        config = load_config(_env(hostile, tmp_path, NCBI_API_KEY=KEY))
        with Client(config) as client:
            client.get(f"{hostile.url}/eutils/esearch.fcgi", params={"term": "x", "api_key": KEY},
                       headers={"Authorization": f"Bearer {KEY}"})
        (_, path, headers), = other.requests
        assert KEY not in path and "api_key" not in path and "term=x" in path
        assert not any(KEY in value for value in headers.values())


# -- no network -----------------------------------------------------------------------------

def test_no_network_fails_at_once_and_says_so_once(tmp_path: Path) -> None:
    dead = HostileServer().start()
    dead.stop()  # nothing listens there now: connection refused
    env = _env(dead, tmp_path, KB_RETRIES="5")
    run = run_kb(env, "add", DOI, "10.5555/hostile.2", "PMID:123", timeout=60)
    assert run.code == 1
    assert run.stderr.count("no network: could not reach 127.0.0.1") == 1, run.stderr
    assert all(label in run.stderr for label in (DOI, "10.5555/hostile.2", "PMID 123"))
    assert "retrying" not in run.stderr
    assert run.seconds < 5, f"{run.seconds:.1f} s"
    run = run_kb(env, "pubmed", "cerebral palsy", "--max", "5", timeout=60)
    assert run.code == 1 and run.seconds < 5, (run.seconds, run.stderr)
    assert run.stderr.count("no network: could not reach 127.0.0.1") == 1, run.stderr


def test_a_failed_name_lookup_is_no_network(tmp_path: Path) -> None:
    env = {"KB_CROSSREF_URL": "http://kb-no-such-host.invalid", "KB_RETRIES": "5",
           "KB_CACHE_DIR": str(tmp_path / "cache")}
    with Client(load_config(env)) as client:
        with pytest.raises(FetchError, match="no network: could not reach "
                                             "kb-no-such-host.invalid"):
            client.get("http://kb-no-such-host.invalid/works/x")
        assert client.stats["retries"] == 0
        with pytest.raises(FetchError, match="no network"):  # later requests: at once
            client.get("http://kb-no-such-host.invalid/works/y")
        assert client.stats["requests"] == 1


def test_pubmed_failure_during_add_is_reported(hostile: HostileServer, tmp_path: Path) -> None:
    from tests.replay import fixture_json
    work = fixture_json("crossref", "work-synthetic-full.json")
    import json
    doi = work["message"]["DOI"]
    hostile.add("/crossref/works", HostileServer.json(json.dumps(
        {"status": "ok", "message": {"items": [work["message"]], "total-results": 1}})))
    hostile.add("/idconv", HostileServer.json(b"<html>broken</html>", 500))
    run = run_kb(_env(hostile, tmp_path), "add", doi, timeout=60)
    assert run.code == 0, run.stderr
    assert "PubMed" in run.stderr, run.stderr
    conn = sqlite3.connect(tmp_path / "kb.db")
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == 1


# -- bounded inputs -------------------------------------------------------------------------

def test_add_from_dev_zero_is_refused_quickly(tmp_path: Path) -> None:
    run = run_kb({"KB_DB": str(tmp_path / "kb.db"), "KB_OFFLINE": "1"}, "add", "--from-file",
                 "/dev/zero", timeout=60)
    assert run.code == 2 and "/dev/zero" in run.stderr, run.stderr
    assert run.peak_mb < 500 and run.seconds < 10


def test_add_from_a_silent_fifo_gives_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from click.testing import CliRunner

    from kb.ingest import add as ingest
    from kb.cli import cli
    fifo = tmp_path / "ids"
    os.mkfifo(fifo)
    monkeypatch.setattr(ingest, "FIFO_WAIT", 0.5)
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "kb.db"), "add", "--offline",
                                      "--from-file", str(fifo)])
    assert result.exit_code == 2 and "FIFO" in result.output, result.output


def test_add_from_a_fifo_reads_what_is_written(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import threading

    from kb.ingest import add as ingest
    fifo = tmp_path / "ids"
    os.mkfifo(fifo)
    monkeypatch.setattr(ingest, "FIFO_WAIT", 10)
    writer = threading.Thread(target=lambda: fifo.write_text("10.5555/a\n# c\nPMID 1\n"))
    writer.start()
    assert ingest.read_id_path(str(fifo)) == ["10.5555/a", "PMID 1"]
    writer.join(5)


def test_build_without_network_is_quick_and_quiet(tmp_path: Path) -> None:
    dead = HostileServer().start()
    dead.stop()
    run = run_kb(_env(dead, tmp_path), "build", "--out", str(tmp_path / "built.db"),
                 timeout=120)
    assert run.code == 1
    assert "no network: could not reach 127.0.0.1" in run.stderr, run.stderr
    assert len(run.stderr) < 1000, run.stderr
    assert (tmp_path / "built.db").exists()


def test_evidence_refresh_registry_without_network_still_prints_the_table(
        tmp_path: Path) -> None:
    import shutil
    dead = HostileServer().start()
    dead.stop()
    db = tmp_path / "kb.db"
    shutil.copy(Path(__file__).parents[1] / "kb.db", db)
    run = run_kb({**_env(dead, tmp_path), "KB_DB": str(db)}, "evidence", "--refresh-registry",
                 "--format", "csv", timeout=60)
    assert run.code == 1 and "no network" in run.stderr, run.stderr
    assert run.stdout.count("\n") > 10 and run.seconds < 10


def test_an_esearch_answer_of_millions_of_elements_in_bounded_memory(
        hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("/eutils/esearch.fcgi", HostileServer.json(
        "<eSearchResult>" + "<a/>" * (30 * 2**20 // 4) + "</eSearchResult>"))
    run = run_kb(_env(hostile, tmp_path), "pubmed", "cerebral palsy", "--max", "5",
                 timeout=60)
    assert run.code == 1 and "Traceback" not in run.stderr, run.stderr
    assert "far larger" in run.stderr, run.stderr
    assert run.peak_mb < 500 and run.seconds < 20, (run.peak_mb, run.seconds)


@pytest.mark.parametrize("where", ["no-record", "after-the-records"])
def test_an_efetch_answer_of_millions_of_stray_elements_in_bounded_memory(
        hostile: HostileServer, tmp_path: Path, where: str) -> None:
    from tests.replay import fixture_text
    record = fixture_text("pubmed", "add-merge-34362453.xml")
    article = record[record.index("<PubmedArticle>"):record.rindex("</PubmedArticle>") + 16]
    strays = "<a/>" * (40 * 2**20 // 4)
    body = ("<PubmedArticleSet>" + (article if where != "no-record" else "") + strays
            + "</PubmedArticleSet>")
    hostile.add("/eutils/esearch.fcgi", HostileServer.json(
        "<eSearchResult><Count>1</Count><IdList><Id>34362453</Id></IdList></eSearchResult>"))
    hostile.add("/eutils/efetch.fcgi", HostileServer.json(body))
    run = run_kb(_env(hostile, tmp_path), "pubmed", "cerebral palsy", "--max", "5",
                 timeout=60)
    assert run.code == 1 and "Traceback" not in run.stderr, run.stderr
    assert "hold no complete record" in run.stderr, run.stderr
    assert run.peak_mb < 500 and run.seconds < 20, (run.peak_mb, run.seconds)


def test_pubmed_max_fetches_only_what_it_needs(hostile: HostileServer, tmp_path: Path) -> None:
    ids = "".join(f"<Id>{10_000_000 + i}</Id>" for i in range(100_000))
    hostile.add("/eutils/esearch.fcgi", HostileServer.json(
        f"<eSearchResult><Count>1000000</Count><RetMax>100000</RetMax><IdList>{ids}</IdList>"
        "<WebEnv>W</WebEnv><QueryKey>1</QueryKey></eSearchResult>"))
    hostile.add("/eutils/efetch.fcgi", HostileServer.json(
        '<?xml version="1.0"?><PubmedArticleSet></PubmedArticleSet>'))
    run = run_kb(_env(hostile, tmp_path), "pubmed", "cerebral palsy", "--max", "50",
                 timeout=60)
    assert "Traceback" not in run.stderr, run.stderr
    fetches = [path for _, path, _ in hostile.requests if path.startswith("/eutils/efetch")]
    assert len(fetches) == 1, len(fetches)
    sent = [h for m, p, h in hostile.requests if p.startswith("/eutils/efetch")]
    assert sent and run.seconds < 20


def test_crawl_without_network_says_so_once_and_leaves_no_running_row(tmp_path: Path) -> None:
    dead = HostileServer().start()
    dead.stop()
    run = run_kb(_env(dead, tmp_path, KB_RETRIES="5"), "crawl", "--doi", "10.5555/seed", timeout=60)
    assert run.code == 1 and run.seconds < 5, (run.seconds, run.stderr)
    assert "no network: could not reach 127.0.0.1" in run.stderr, run.stderr
    assert "retrying" not in run.stderr
    conn = sqlite3.connect(tmp_path / "kb.db")
    assert conn.execute("SELECT count(*) FROM crawls WHERE status = 'running'").fetchone() == (0,)
