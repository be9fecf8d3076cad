"""OpenAlex and OpenCitations as the replay server plays them: the fixture works and rows in
the services' real JSON shapes, answered with each API's filter, paging and lookup rules."""
from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from tests.replay import Reply, ReplayServer, Request, fixture_json


def _bare(value: str | None) -> str:
    return (value or "").rsplit("/", 1)[-1] if value and "openalex.org" in value else (
        value or "")


class FakeOpenAlex:
    """``/works?filter=…`` (doi, ids.openalex, ids.pmid, cites; ``|`` for OR), cursor paging,
    ``select``, and ``/works/doi:…`` singletons, over the fixture works."""

    def __init__(self, works: Iterable[dict[str, Any]] | None = None, *,
                 page_size: int | None = None, delay: float = 0.0) -> None:
        self.works = list(works if works is not None else fixture_json("openalex", "works.json"))
        self.page_size = page_size
        self.delay = delay

    def install(self, server: ReplayServer) -> None:
        server.add("GET", r"/openalex/works", self.list)
        server.add("GET", r"/openalex/works/.+", self.single)

    @staticmethod
    def _keys(work: dict[str, Any]) -> dict[str, set[str]]:
        ids = work.get("ids") or {}
        doi = (work.get("doi") or "").lower().replace("https://doi.org/", "")
        return {"doi": {doi} if doi else set(),
                "ids.openalex": {_bare(work["id"])},
                "ids.pmid": {ids["pmid"].rsplit("/", 1)[-1]} if ids.get("pmid") else set(),
                "cites": {_bare(r) for r in work.get("referenced_works") or []}}

    def _select(self, work: dict[str, Any], select: str | None) -> dict[str, Any]:
        if not select:
            return work
        return {k: work.get(k) for k in select.split(",")}

    def list(self, request: Request) -> Reply:
        query = {k: v[0] for k, v in request.query.items()}
        name, _, values = query.get("filter", "").partition(":")
        wanted = {v.lower().replace("https://doi.org/", "") if name == "doi" else v
                  for v in values.split("|")}
        if name not in ("doi", "ids.openalex", "ids.pmid", "cites") or not values:
            return Reply(400, {"error": "Invalid query parameters error.",
                               "message": f"{name} is not a valid filter"})
        if len(wanted) > 100:
            return Reply(400, {"error": "Invalid query parameters error.",
                               "message": "Maximum of 100 values in an OR filter"})
        found = [w for w in self.works if self._keys(w)[name] & wanted]
        per_page = int(query.get("per-page") or query.get("per_page") or 25)
        size = min(per_page, self.page_size or per_page)
        meta: dict[str, Any] = {"count": len(found), "db_response_time_ms": 7,
                                "per_page": per_page, "groups_count": None}
        if "cursor" in query:
            start = 0 if query["cursor"] == "*" else int(base64.b64decode(query["cursor"]))
            page = found[start:start + size]
            more = start + size < len(found)
            meta.update(page=None, next_cursor=base64.b64encode(str(start + size).encode()
                                                                ).decode() if more else None)
        else:
            page = found[:size]
            meta.update(page=1)
        results = [self._select(w, query.get("select")) for w in page]
        return Reply(200, {"meta": meta, "results": results, "group_by": []}, delay=self.delay)

    def single(self, request: Request) -> Reply:
        key = unquote(request.path.split("/works/", 1)[1])
        scheme, _, value = key.partition(":")
        for work in self.works:
            if (scheme == "doi" and value.lower() in self._keys(work)["doi"]) or \
                    key in self._keys(work)["ids.openalex"]:
                return Reply(200, work, delay=self.delay)
        return Reply(404, {"error": "Not Found",
                           "message": f"The requested resource could not be found: {key}"})


class FakeOpenCitations:
    """``/references/doi:…`` and ``/citations/doi:…`` from the fixture index ([] if unknown)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.index = fixture_json("opencitations", "index.json")
        self.delay = delay

    def install(self, server: ReplayServer) -> None:
        server.add("GET", r"/opencitations/(references|citations)/.+", self.rows)

    def rows(self, request: Request) -> Reply:
        _, _, operation, pid = request.path.split("/", 3)
        doi = unquote(pid).partition(":")[2].lower()
        return Reply(200, self.index[operation].get(doi, []), delay=self.delay)


def request_filters(server: ReplayServer) -> list[str]:
    """The ``filter`` values of every OpenAlex list request the server saw, in order."""
    return [r.query["filter"][0] for r in server.requests
            if r.path == "/openalex/works" and "filter" in r.query]


__all__ = ["FakeOpenAlex", "FakeOpenCitations", "FakeElink", "request_filters"]


class FakeElink:
    """E-utilities ``elink.fcgi`` (one LinkSet per repeated ``id``), from a link table."""

    def __init__(self, links: dict[tuple[str, str], list[str]] | None = None,
                 delay: float = 0.0) -> None:
        self.links = links or {}
        self.delay = delay

    def install(self, server: ReplayServer) -> None:
        server.add("GET", r"/eutils/elink\.fcgi", self.elink)
        server.add("POST", r"/eutils/elink\.fcgi", self.elink)

    def elink(self, request: Request) -> Reply:
        linkname = request.query["linkname"][0]
        sets = []
        for pmid in request.query.get("id", []):
            found = self.links.get((pmid, linkname), [])
            db = (f"<LinkSetDb><DbTo>pubmed</DbTo><LinkName>{linkname}</LinkName>"
                  + "".join(f"<Link><Id>{p}</Id></Link>" for p in found)
                  + "</LinkSetDb>") if found else ""
            sets.append(f"<LinkSet><DbFrom>pubmed</DbFrom><IdList><Id>{pmid}</Id></IdList>"
                        f"{db}</LinkSet>")
        body = ('<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eLinkResult PUBLIC '
                '"-//NLM//DTD elink 20101123//EN" '
                '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20101123/elink.dtd">\n'
                f"<eLinkResult>{''.join(sets)}</eLinkResult>")
        return Reply(200, body, content_type="text/xml; charset=UTF-8", delay=self.delay)
