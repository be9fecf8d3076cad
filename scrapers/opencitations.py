"""OpenCitations Index API v2: the references and the citations of a DOI.

``/references/doi:X`` lists the rows where X cites, ``/citations/doi:X`` the rows where X is
cited. Each row names both works as a space-separated list of prefixed identifiers
(``omid:br/… doi:… pmid:… openalex:W…``); :func:`parse_pids` reads one and :func:`to_links`
turns rows into :class:`~kb.records.LinkRecord` edges (source ``opencitations``).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kb.http import quote_path
from kb.errors import FetchError, NotFoundError
from kb.identifiers import normalize_doi, normalize_openalex, normalize_pmid
from kb.records import LinkRecord, WorkRef

if TYPE_CHECKING:
    from kb.http import Client

__all__ = ["fetch_references", "fetch_citations", "parse_pids", "to_links"]

_INDEX_PREFIX = re.compile(r"^\s*\[[^\]]*\]\s*=>\s*")


def _rows(client: Client, operation: str, doi: str) -> list[dict[str, Any]]:
    value = normalize_doi(doi)
    if value is None:
        return []
    url = client.config.url("opencitations", f"{operation}/doi:{quote_path(value)}")
    try:
        data = client.get_json(url)
    except NotFoundError:
        return []  # an unknown DOI (the API answers [] or 404)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise FetchError("OpenCitations answered something that is not a list of rows", url=url)
    return data


def fetch_references(client: Client, doi: str) -> list[dict[str, Any]]:
    """Rows for the works ``doi`` cites."""
    return _rows(client, "references", doi)


def fetch_citations(client: Client, doi: str) -> list[dict[str, Any]]:
    """Rows for the works citing ``doi``."""
    return _rows(client, "citations", doi)


def parse_pids(text: str | None) -> WorkRef:
    """The identifiers in one ``citing``/``cited`` value (the first DOI when there are several).

    >>> parse_pids("omid:br/06101801781 doi:10.7717/PeerJ-cs.421 pmid:33817056")
    {'doi': '10.7717/peerj-cs.421', 'pmid': '33817056'}
    >>> parse_pids("[coci] => omid:br/061 openalex:W2741809807; [poci] => pmid:1")
    {'pmid': '1', 'openalex_id': 'W2741809807'}
    """
    ref: dict[str, str] = {}
    for part in (text or "").split(";"):
        for pid in _INDEX_PREFIX.sub("", part).split():
            scheme, _, value = pid.partition(":")
            scheme = scheme.lower()
            if scheme == "doi" and "doi" not in ref and normalize_doi(value):
                ref["doi"] = normalize_doi(value)  # type: ignore[assignment]
            elif scheme == "pmid" and "pmid" not in ref and normalize_pmid(value):
                ref["pmid"] = normalize_pmid(value)  # type: ignore[assignment]
            elif scheme == "openalex" and "openalex_id" not in ref and normalize_openalex(value):
                ref["openalex_id"] = normalize_openalex(value)  # type: ignore[assignment]
    return {k: ref[k] for k in ("doi", "pmid", "openalex_id") if k in ref}  # type: ignore[return-value]


def to_links(rows: Iterable[Mapping[str, Any]]) -> list[LinkRecord]:
    """Edges for the rows whose citing and cited works both carry a DOI, PMID or OpenAlex
    id (a work known only by its OMID cannot be matched to anything)."""
    links: list[LinkRecord] = []
    for row in rows:
        citing, cited = parse_pids(row.get("citing")), parse_pids(row.get("cited"))
        if citing and cited:
            links.append({"citing": citing, "cited": cited, "source": "opencitations"})
    return links
