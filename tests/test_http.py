"""kb.http.Client over real HTTP against the loopback replay server."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from kb import __version__
from kb.config import Config
from kb.errors import FetchError, KBError, NotFoundError, OfflineError, QuotaError
from kb.http import Client
from tests.replay import Reply, ReplayServer, fixture_json, fixture_text

WORK = fixture_json("crossref", "work-with-references.json")


def _url(server: ReplayServer, path: str = "/crossref/works/10.1007/s12035-016-0030-0") -> str:
    return server.url + path


def test_identifies_kb_and_sends_a_timeout(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/crossref/works/.+", Reply(200, WORK))
    client = Client(config)
    response = client.get(_url(server))
    assert response.json()["message"]["DOI"] == "10.1007/s12035-016-0030-0"
    agent = server.requests[0].headers["User-Agent"]
    assert agent == f"kb/{__version__} (https://github.com/kb-cp/kb; mailto:tests@example.org)"
    assert client.stats == {"requests": 1, "retries": 0, "cache_hits": 0}


def test_429_with_retry_after_is_honoured_then_succeeds(server: ReplayServer,
                                                         config: Config) -> None:
    server.add("GET", "/crossref/works/.+",
               Reply(429, fixture_text("crossref", "too-many-requests.html"),
                     content_type="text/html", headers={"Retry-After": "1"}),
               Reply(200, WORK))
    client = Client(config)
    started = time.monotonic()
    assert client.get_json(_url(server))["status"] == "ok"
    assert time.monotonic() - started >= 0.95
    assert client.stats["requests"] == 2 and client.stats["retries"] == 1


def test_long_pauses_are_announced(server: ReplayServer, config: Config,
                                   caplog: pytest.LogCaptureFixture) -> None:
    server.add("GET", "/crossref/works/.+", Reply(503, "busy", headers={"Retry-After": "1"}),
               Reply(200, WORK))
    with caplog.at_level("INFO", logger="kb.http"):
        Client(config).get(_url(server))
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # a 1 s pause is long
    warnings = caplog.records
    assert len(warnings) == 1 and "retrying in 1 s" in warnings[0].getMessage()
    assert "HTTP 503" in warnings[0].getMessage()


def test_retry_after_beyond_the_limit_fails_fast_with_quota_error(server: ReplayServer,
                                                                  config: Config) -> None:
    server.add("GET", "/crossref/works/.+", Reply(429, "slow down",
                                                  headers={"Retry-After": "3600"}))
    client = Client(config)
    started = time.monotonic()
    with pytest.raises(QuotaError, match="3600 s"):
        client.get(_url(server))
    assert time.monotonic() - started < 1
    assert server.count() == 1


def test_429_that_never_ends_is_a_quota_error(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/crossref/works/.+", Reply(429, "no"))
    with pytest.raises(QuotaError, match="429"):
        Client(config).get(_url(server))
    assert server.count() == config.retries + 1


def test_503_then_200(server: ReplayServer, config: Config,
                      caplog: pytest.LogCaptureFixture) -> None:
    server.add("GET", "/crossref/works/.+", Reply(503, "busy"), Reply(200, WORK))
    client = Client(config)
    with caplog.at_level("INFO", logger="kb.http"):
        assert client.get(_url(server)).status_code == 200
    assert client.stats["retries"] == 1
    assert [r.levelname for r in caplog.records] == ["INFO"]  # a short pause stays quiet


def test_server_errors_give_up_after_the_configured_retries(server: ReplayServer,
                                                            config: Config) -> None:
    server.add("GET", "/crossref/works/.+",
               Reply(502, fixture_text("crossref", "bad-gateway.html"), content_type="text/html"))
    with pytest.raises(FetchError, match="HTTP 502") as caught:
        Client(config).get(_url(server))
    assert caught.value.status == 502 and "10.1007/s12035-016-0030-0" in str(caught.value)
    assert server.count() == config.retries + 1


def test_truncated_body_is_fetched_again(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/crossref/works/.+", Reply(200, WORK, truncate=100), Reply(200, WORK))
    client = Client(config)
    assert client.get_json(_url(server))["message"]["DOI"] == "10.1007/s12035-016-0030-0"
    assert client.stats["requests"] == 2


def test_html_error_page_instead_of_json_is_a_clear_error_and_not_cached(
        server: ReplayServer, config: Config) -> None:
    page = fixture_text("crossref", "bad-gateway.html")
    server.add("GET", "/crossref/works/.+", Reply(200, page, content_type="text/html"))
    with pytest.raises(FetchError, match="HTML page .'502 Bad Gateway'."):
        Client(config).get_json(_url(server))
    before = server.count()
    with pytest.raises(FetchError):
        Client(config).get_json(_url(server))
    assert server.count() > before  # the broken answer was not served from the cache


def test_invalid_json_is_retried(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/crossref/works/.+",
               Reply(200, '{"status":"ok","message":{"DOI":', content_type="application/json"),
               Reply(200, WORK))
    client = Client(config)
    assert client.get_json(_url(server))["message"]["DOI"] == "10.1007/s12035-016-0030-0"
    assert client.stats["retries"] == 1
    assert Client(config).get_json(_url(server))["status"] == "ok"  # the good one was cached


def test_a_stall_past_the_timeout_is_retried(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/crossref/works/.+", Reply(200, WORK, delay=1.5), Reply(200, WORK))
    client = Client(config.with_options(timeout=0.3))
    assert client.get(_url(server)).status_code == 200
    assert client.stats["retries"] == 1


def test_a_server_that_always_stalls_times_out(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/crossref/works/.+", Reply(200, WORK, delay=1.0))
    with pytest.raises(FetchError, match="timed out"):
        Client(config.with_options(timeout=0.2, retries=1)).get(_url(server))


def test_404_is_not_found_without_retries(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/crossref/works/.+", Reply(404, fixture_text("crossref", "not-found.txt")))
    with pytest.raises(NotFoundError):
        Client(config).get(_url(server))
    assert server.count() == 1


def test_400_names_the_services_message(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/crossref/works", Reply(400, fixture_json("crossref",
                                                                  "validation-failure.json")))
    with pytest.raises(FetchError, match="integer-not-valid"):
        Client(config).get(server.url + "/crossref/works", params={"rows": "things"})
    assert server.count() == 1


def test_connection_refused_is_a_fetch_error(config: Config) -> None:
    dead = ReplayServer().start()
    url = dead.url + "/crossref/works/x"
    dead.stop()
    with pytest.raises(FetchError, match="no network: could not reach 127.0.0.1"):
        Client(config.with_options(retries=1)).get(url)


def test_second_run_is_served_from_the_cache_with_zero_requests(server: ReplayServer,
                                                                config: Config) -> None:
    server.add("GET", "/crossref/works/.+", Reply(200, WORK))
    first = Client(config)
    first.get(_url(server))
    first.close()
    second = Client(config)
    assert second.get_json(_url(server))["status"] == "ok"
    assert second.stats == {"requests": 0, "retries": 0, "cache_hits": 1}
    assert server.count() == 1


def test_refresh_and_no_cache_go_to_the_network(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/crossref/works/.+", Reply(200, WORK))
    Client(config).get(_url(server))
    assert Client(config.with_options(refresh=True)).get(_url(server)).status_code == 200
    assert Client(config.with_options(use_cache=False)).stats["requests"] == 0
    uncached = Client(config.with_options(use_cache=False))
    uncached.get(_url(server))
    assert uncached.stats["requests"] == 1
    assert server.count() == 3


def test_404s_are_cached_too(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/crossref/works/.+", Reply(404, "Resource not found."))
    for _ in range(2):
        with pytest.raises(NotFoundError):
            Client(config).get(_url(server))
    assert server.count() == 1


def test_offline_answers_from_the_cache_and_names_what_it_cannot(server: ReplayServer,
                                                                 config: Config) -> None:
    server.add("GET", "/crossref/works/.+", Reply(200, WORK))
    Client(config).get(_url(server))
    offline = Client(config.with_options(offline=True))
    assert offline.get(_url(server)).status_code == 200
    missing = _url(server, "/crossref/works/10.5555/not-cached")
    with pytest.raises(OfflineError, match="10.5555/not-cached"):
        offline.get(missing)
    with pytest.raises(OfflineError, match="cache is off"):
        Client(config.with_options(offline=True, use_cache=False)).get(missing)
    assert server.count() == 1


def test_secrets_stay_out_of_cache_keys_files_and_errors(server: ReplayServer, config: Config,
                                                        tmp_path: Path) -> None:
    server.add("GET", "/eutils/efetch.fcgi", Reply(200, "<PubmedArticleSet/>",
                                                   content_type="text/xml"))
    server.add("POST", "/eutils/efetch.fcgi", Reply(200, "<PubmedArticleSet/>",
                                                    content_type="text/xml"))
    server.add("GET", "/eutils/esearch.fcgi", Reply(500, "down"))
    url = server.url + "/eutils/efetch.fcgi"
    client = Client(config)
    client.get(url, params={"db": "pubmed", "id": "34362453", "api_key": "SECRET-KEY-1"},
               headers={"Crossref-Plus-API-Token": "Bearer SECRET-TOKEN"})
    client.post(url, data={"db": "pubmed", "id": "34362453", "api_key": "SECRET-KEY-1"})
    assert server.requests[0].query["api_key"] == ["SECRET-KEY-1"]  # it is still sent
    other_key = Client(config)
    other_key.get(url, params={"db": "pubmed", "id": "34362453", "api_key": "SECRET-KEY-2"})
    other_key.post(url, data={"db": "pubmed", "id": "34362453", "api_key": "SECRET-KEY-2"})
    assert other_key.stats["cache_hits"] == 2 and other_key.stats["requests"] == 0
    with pytest.raises(FetchError) as caught:
        Client(config.with_options(retries=0)).get(server.url + "/eutils/esearch.fcgi",
                                                   params={"api_key": "SECRET-KEY-1"})
    assert "SECRET" not in str(caught.value) and "api_key=REDACTED" in str(caught.value)
    client.close()
    other_key.close()
    for path in Path(config.cache_dir).rglob("*"):
        if path.is_file():
            assert b"SECRET" not in path.read_bytes(), path


def test_pacing_spaces_requests_per_service(server: ReplayServer, config: Config) -> None:
    server.add("GET", "/eutils/.+", Reply(200, "ok"))
    server.add("GET", "/idconv/.*", Reply(200, "{}"))
    server.add("GET", "/openalex/.+", Reply(200, "ok"))
    client = Client(config.with_options(use_cache=False),
                    rates={"ncbi": 5.0, "openalex": 1000.0})
    started = time.monotonic()
    for n in range(3):
        client.get(server.url + f"/eutils/esearch.fcgi?term={n}")
    client.get(server.url + "/idconv/?ids=PMC1")  # the same NCBI budget
    assert time.monotonic() - started >= 0.55
    started = time.monotonic()
    for n in range(5):
        client.get(server.url + f"/openalex/works/W{n}")
    assert time.monotonic() - started < 0.5


def test_pacing_follows_crossrefs_rate_limit_headers(server: ReplayServer,
                                                     config: Config) -> None:
    headers = {"x-rate-limit-limit": "4", "x-rate-limit-interval": "1s"}
    server.add("GET", "/crossref/works/.+", Reply(200, WORK, headers=headers))
    client = Client(config.with_options(use_cache=False), rates={"crossref": 1000.0})
    client.get(_url(server))
    started = time.monotonic()
    client.get(_url(server))
    client.get(_url(server))
    assert time.monotonic() - started >= 0.45  # 0.25 s apart once the headers are known
    fresh = Client(config.with_options(use_cache=False), rates={"crossref": 1000.0})
    client.get(_url(server))
    started = time.monotonic()
    fresh.get(_url(server))
    assert time.monotonic() - started < 0.2  # pacing state belongs to the instance


def test_service_is_recognised_by_base_url(config: Config) -> None:
    client = Client(config.with_options(use_cache=False))
    assert client.service(config.url("crossref", "works/10.1/x")) == "crossref"
    assert client.service(config.url("eutils", "efetch.fcgi") + "?id=1") == "eutils"
    assert client.service("https://example.org/page") is None


def test_remember_and_cached(server: ReplayServer, config: Config) -> None:
    url = _url(server, "/crossref/works/10.5555/kb-test.full")
    client = Client(config)
    assert client.cached(url) is None
    client.remember(url, {"mailto": "tests@example.org", "api_key": "SECRET-3"}, b'{"a": 1}')
    again = Client(config)
    other = {"mailto": "other@example.org", "api_key": "SECRET-4"}  # values are not in the key
    assert again.cached(url, other).json() == {"a": 1}
    assert again.get_json(url, params=other) == {"a": 1}
    assert again.stats == {"requests": 0, "retries": 0, "cache_hits": 2}
    assert Client(config.with_options(refresh=True)).cached(url) is None
    assert Client(config.with_options(use_cache=False)).cached(url) is None
    client.close()
    again.close()
    for path in Path(config.cache_dir).rglob("*"):
        if path.is_file():
            assert b"SECRET" not in path.read_bytes(), path
    assert server.count() == 0


def test_an_unusable_cache_folder_is_a_clear_error(config: Config, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(KBError, match="cannot use the HTTP cache") as caught:
        Client(config.with_options(cache_dir=blocker / "cache"))
    assert "--no-cache" in str(caught.value)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "http_cache.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(KBError, match="cannot use the HTTP cache"):
        Client(config.with_options(cache_dir=corrupt)).get("http://127.0.0.1:9/x")


def test_a_pages_own_key_parameter_stays_in_the_cache_key(server: ReplayServer,
                                                          config: Config) -> None:
    server.add("GET", "/page", lambda request: Reply(200, f"page {request.query['key'][0]}"))
    client = Client(config)
    assert client.get(server.url + "/page", params={"key": "1"}).text == "page 1"
    assert client.get(server.url + "/page", params={"key": "2"}).text == "page 2"
    assert server.count() == 2
