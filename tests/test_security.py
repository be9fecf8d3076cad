"""Security: secrets never written anywhere; `kb serve` read-only and on loopback by default.

The secret-leak tests run a real fetch with ``NCBI_API_KEY`` / ``OPENALEX_API_KEY`` set and
``-v``, then grep every byte kb left behind: the KB file (and its WAL), the HTTP cache files,
and stderr.
"""
from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.cli import cli
from kb.config import load_config
from tests.faults import SyntheticCorpus
from tests.replay import ReplayServer
from tests.serving import start_serve, stop

NCBI_KEY = "ncbiSECRETkey0123456789abcdef"
OPENALEX_KEY = "oaSECRETkey9876543210"






def _leaks(root: Path, secrets: tuple[str, ...]) -> list[str]:
    """Files under ``root`` whose bytes contain a secret (also URL-encoded or in UTF-16)."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for secret in secrets:
            for form in (secret.encode(), secret.encode("utf-16-le")):
                if form in data:
                    found.append(f"{path.name} holds {secret[:8]}…")
    return found


@pytest.fixture
def corpus_server(server: ReplayServer) -> SyntheticCorpus:
    corpus = SyntheticCorpus(n=20, pubmed_only=5)
    corpus.install(server)
    return corpus


@pytest.fixture
def secret_env(kb_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("NCBI_API_KEY", NCBI_KEY)
    monkeypatch.setenv("OPENALEX_API_KEY", OPENALEX_KEY)
    return {**kb_env, "NCBI_API_KEY": NCBI_KEY, "OPENALEX_API_KEY": OPENALEX_KEY}


def test_http_client_keeps_api_keys_out_of_cache_and_logs(
        secret_env: dict[str, str], corpus_server: SyntheticCorpus, server: ReplayServer,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from kb.http import Client
    config = load_config(secret_env).with_options(backoff=0.01)
    caplog.set_level(logging.DEBUG)
    with Client(config) as client:
        url = config.url("eutils", "efetch.fcgi")
        params = {"db": "pubmed", "id": corpus_server.works[0].pmid, "retmode": "xml",
                  "api_key": NCBI_KEY, "tool": "kb", "email": "tests@example.org"}
        first = client.get(url, params=params)
        again = client.get(url, params=params)
        client.get(config.url("openalex", "works/W4000000001"), params={"api_key": OPENALEX_KEY})
        with pytest.raises(Exception) as failure:  # the error message must not carry it either
            client.get(config.url("eutils", "nothing.fcgi"), params={"api_key": NCBI_KEY})
    assert first.status_code == 200 and getattr(again, "from_cache", False)
    assert server.requests[0].query["api_key"] == [NCBI_KEY]  # it did reach the service
    assert NCBI_KEY not in str(failure.value)
    assert not _leaks(tmp_path / "cache", (NCBI_KEY, OPENALEX_KEY))
    kb_lines = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("kb"))
    assert "REDACTED" in kb_lines  # kb did log the request, with the key hidden
    assert NCBI_KEY not in kb_lines and OPENALEX_KEY not in kb_lines


def test_kb_add_with_api_keys_leaves_no_trace(secret_env: dict[str, str],
                                              corpus_server: SyntheticCorpus,
                                              server: ReplayServer, tmp_path: Path) -> None:
    """`kb -v add` of PMIDs and DOIs with both keys set: the keys reach NCBI / OpenAlex,
    but not the DB, its WAL, the cache, or stderr."""
    works = corpus_server.works
    ids = [works[1].pmid, works[2].pmid, corpus_server.pubmed_only_pmids[0], works[5].doi]
    result = CliRunner().invoke(cli, ["-v", "add", *ids])
    assert result.exit_code == 0, result.output
    ncbi = [r for r in server.requests if r.path.startswith("/eutils") or
            r.path.startswith("/idconv")]
    assert ncbi, "the PMIDs were not fetched from E-utilities"
    sent = [r for r in ncbi if NCBI_KEY in (r.query.get("api_key") or [""])[0]
            or NCBI_KEY.encode() in r.body]
    assert sent, "NCBI_API_KEY was set but not sent to NCBI"
    leaks = _leaks(tmp_path, (NCBI_KEY, OPENALEX_KEY))
    assert not leaks, leaks
    assert NCBI_KEY not in result.output and OPENALEX_KEY not in result.output
    conn = sqlite3.connect(tmp_path / "kb.db")
    assert conn.execute("SELECT count(*) FROM works WHERE pmid = ?",
                        (works[1].pmid,)).fetchone()[0] == 1


def test_kb_crawl_with_api_keys_leaves_no_trace(secret_env: dict[str, str],
                                                corpus_server: SyntheticCorpus,
                                                server: ReplayServer, tmp_path: Path) -> None:
    """`kb -v crawl` asks OpenAlex (api_key) and E-utilities (api_key): neither key is kept."""
    result = CliRunner().invoke(cli, ["-v", "crawl", "--doi", corpus_server.works[12].doi,
                                      "--depth", "1"])
    assert result.exit_code == 0, result.output
    openalex = [r for r in server.requests if r.path.startswith("/openalex")]
    assert openalex and all(r.query.get("api_key") == [OPENALEX_KEY] for r in openalex)
    assert any(r.query.get("api_key") == [NCBI_KEY] for r in server.requests
               if r.path.startswith("/eutils"))
    leaks = _leaks(tmp_path, (NCBI_KEY, OPENALEX_KEY))
    assert not leaks, leaks
    assert NCBI_KEY not in result.output and OPENALEX_KEY not in result.output


def test_failed_fetch_message_hides_the_key(secret_env: dict[str, str], server: ReplayServer,
                                            tmp_path: Path) -> None:
    """A service that keeps failing: the error kb prints names the URL, never the key."""
    from tests.replay import Reply
    server.add("GET", r"/.*", Reply(503, "<html><h1>503</h1></html>", content_type="text/html"))
    server.add("POST", r"/.*", Reply(503, "<html><h1>503</h1></html>", content_type="text/html"))
    result = CliRunner().invoke(cli, ["-v", "add", "31000007"], env={"KB_RETRIES": "1"})
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert NCBI_KEY not in result.output
    assert not _leaks(tmp_path, (NCBI_KEY,))


# -- kb serve --------------------------------------------------------------------------------

@pytest.fixture
def small_kb(tmp_path: Path) -> Path:
    from kb import store
    db = tmp_path / "kb.db"
    conn = store.connect(db)
    store.upsert_work(conn, {"source": "crossref", "doi": "10.5555/kb.0001",
                             "title": "Mesenchymal cells in cerebral palsy", "year": 2021})
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db


def test_serve_listens_on_loopback_only_by_default(small_kb: Path) -> None:
    import psutil
    proc, port = start_serve({**os.environ, "KB_DB": str(small_kb)})
    try:
        listening = [c for c in psutil.Process(proc.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
        assert listening, "kb serve is not listening on the port it was given"
        assert {c.laddr.ip for c in listening} <= {"127.0.0.1", "::1"}, listening
    finally:
        stop(proc)


def test_serve_refuses_writes_and_leaves_the_db_unchanged(small_kb: Path) -> None:
    import requests
    before = small_kb.read_bytes()
    proc, port = start_serve({**os.environ, "KB_DB": str(small_kb)})
    base = f"http://127.0.0.1:{port}"
    try:
        page = requests.get(f"{base}/kb/works.json?_shape=array", timeout=10)
        assert page.status_code == 200 and page.json()[0]["doi"] == "10.5555/kb.0001"
        for sql in ("UPDATE works SET title = 'pwned'", "DELETE FROM works",
                    "DROP TABLE works", "ATTACH DATABASE '/tmp/x.db' AS x",
                    "PRAGMA journal_mode = DELETE"):
            answer = requests.get(f"{base}/kb.json", params={"sql": sql}, timeout=10)
            assert answer.status_code >= 400 or not answer.json().get("ok", True), sql
        write = requests.post(f"{base}/kb/works/-/insert", json={"row": {"title": "x"}},
                              timeout=10)
        assert write.status_code >= 400
    finally:
        stop(proc)
    assert small_kb.read_bytes() == before
    conn = sqlite3.connect(small_kb)
    assert conn.execute("SELECT title FROM works").fetchall() == [
        ("Mesenchymal cells in cerebral palsy",)]


def test_serve_help_says_it_binds_loopback() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "127.0.0.1" in result.output
