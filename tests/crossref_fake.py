"""A fake Crossref and DataCite for the replay server, answering from tests/fixtures.

Crossref's list route filters the fixture works by ``filter=doi:…`` and ``rows`` the way the real
API does; DOIs holding ``<``, ``>`` or ``;`` are left out of list answers (the filter syntax is
not known to match them reliably), so they exercise the single-DOI retry. Unknown DOIs get the
real 404 bodies. Synthetic DOIs ``10.5555/kb-bulk.N`` exist on demand (for batching counts).
"""
from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import unquote

from kb.identifiers import normalize_doi
from tests.replay import FIXTURES, Reply, Request, ReplayServer, fixture_json, fixture_text

#: Crossref's polite-pool headers as recorded in 2026 (see apis.md §1).
POLITE_HEADERS = {"x-api-pool": "polite", "x-rate-limit-limit": "10",
                  "x-rate-limit-interval": "1s", "x-concurrency-limit": "3"}


def crossref_works() -> dict[str, dict[str, Any]]:
    """Every work message in tests/fixtures/crossref, by canonical DOI."""
    works: dict[str, dict[str, Any]] = {}
    for path in sorted((FIXTURES / "crossref").glob("work-*.json")):
        message = fixture_json("crossref", path.name)["message"]
        works[normalize_doi(message["DOI"])] = message
    for item in fixture_json("crossref", "batch.json")["message"]["items"]:
        works[normalize_doi(item["DOI"])] = item
    return works


def datacite_documents() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted((FIXTURES / "datacite").glob("*.json")):
        doc = fixture_json("datacite", path.name)
        if "data" in doc:
            docs[normalize_doi(doc["data"]["attributes"]["doi"])] = doc
    return docs


def _bulk(doi: str) -> dict[str, Any] | None:
    match = re.fullmatch(r"10\.5555/kb-bulk\.(\d+)", doi)
    if not match:
        return None
    n = int(match.group(1))
    return {"DOI": f"10.5555/kb-bulk.{n}", "type": "journal-article", "prefix": "10.5555",
            "title": [f"Synthetic bulk record {n}"], "publisher": "Crossref Test Publisher",
            "container-title": ["Journal of Synthetic Test Records"],
            "issued": {"date-parts": [[2000 + n % 25]]}, "URL": f"https://doi.org/10.5555/kb-bulk.{n}",
            "author": [{"given": "Test", "family": f"Author{n}", "sequence": "first",
                        "affiliation": []}], "reference-count": 0, "is-referenced-by-count": 0}


class FakeCrossref:
    """Routes /crossref/works, /crossref/works/{doi} and /datacite/dois/{doi}."""

    def __init__(self, server: ReplayServer, *, prefix: str = "", latency: float = 0.0) -> None:
        self.works = crossref_works()
        self.datacite = datacite_documents()
        self.prefix = prefix
        #: when True, Crossref answers 429 with a day-long Retry-After (an exhausted quota)
        self.blocked = False
        #: seconds each answer is delayed (to imitate a real network in benchmarks)
        self.latency = latency
        server.add("GET", f"{prefix}/crossref/works", self._list)
        server.add("GET", f"{prefix}/crossref/works/.+", self._single)
        server.add("GET", f"{prefix}/datacite/dois/.+", self._datacite)

    def work(self, doi: str) -> dict[str, Any] | None:
        found = self.works.get(doi) or _bulk(doi)
        return copy.deepcopy(found) if found else None

    def _quota(self) -> Reply:
        return Reply(429, fixture_text("crossref", "too-many-requests.html"),
                     content_type="text/html", headers={"Retry-After": "86400"})

    def _list(self, request: Request) -> Reply:
        if self.blocked:
            return self._quota()
        rows = int(request.query.get("rows", ["20"])[0])
        if rows > 1000:
            return Reply(400, fixture_json("crossref", "validation-failure.json"))
        dois = []
        for part in request.query.get("filter", [""])[0].split(","):
            if part.startswith("doi:") and not re.search(r"[<>;]", part):
                dois.append(normalize_doi(part[4:]))
        items = [w for w in (self.work(d) for d in dois if d) if w][:rows]
        body = {"status": "ok", "message-type": "work-list", "message-version": "1.0.0",
                "message": {"facets": {}, "total-results": len(items), "items": items,
                            "items-per-page": rows, "query": {"start-index": 0,
                                                              "search-terms": None}}}
        return Reply(200, body, headers=POLITE_HEADERS, delay=self.latency)

    def _single(self, request: Request) -> Reply:
        if self.blocked:
            return self._quota()
        doi = normalize_doi(unquote(request.path.split("/works/", 1)[1]))
        work = self.work(doi) if doi else None
        if work is None:
            return Reply(404, fixture_text("crossref", "not-found.txt"), headers=POLITE_HEADERS,
                         delay=self.latency)
        return Reply(200, {"status": "ok", "message-type": "work", "message-version": "1.0.0",
                           "message": work}, headers=POLITE_HEADERS, delay=self.latency)

    def _datacite(self, request: Request) -> Reply:
        doi = normalize_doi(unquote(request.path.split("/dois/", 1)[1]))
        if doi in self.datacite:
            return Reply(200, self.datacite[doi], content_type="application/vnd.api+json")
        return Reply(404, fixture_json("datacite", "not-found.json"),
                     content_type="application/vnd.api+json")
