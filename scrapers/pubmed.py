"""NCBI E-utilities (esearch, efetch, elink) and the PMC ID converter.

Every request goes through :class:`kb.http.Client` (pacing, retries, cache) and carries NCBI's
``tool`` / ``email`` parameters, plus ``api_key`` when ``NCBI_API_KEY`` is set (the client keeps
it out of caches, logs and messages). NCBI reports many failures inside a 200 answer
(``<ERROR>``, ``ErrorList``); those become :class:`~kb.errors.FetchError` or warnings here.
PubMed XML is parsed by :mod:`kb.scrapers.pubmed_xml`, the same parser ``kb import`` uses.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from kb.errors import FetchError, InputError, ParseError, QuotaError
from kb.http import check_json, check_xml
from kb.identifiers import classify, normalize_doi, normalize_pmcid, normalize_pmid
from kb.records import WorkRecord

from .pubmed_xml import Deletion, parse_pubmed_xml

__all__ = ["SearchResult", "search", "fetch_works", "fetch_links", "convert_ids",
           "ESEARCH_LIMIT", "LINKNAMES"]

#: Answers parsed whole (esearch, elink, errors) are refused above this size.
SMALL_ANSWER = 8 * 2**20
#: The most bytes an efetch answer may hold between two record ends.
MAX_RECORD_BYTES = 4 * 2**20
_RECORD_END = re.compile(rb"</(?:PubmedArticle|PubmedBookArticle|DeleteCitation)\s*>")
#: ESearch cannot page past this many records of one query.
ESEARCH_LIMIT = 10_000
#: elink link names kb uses: a work's references, and the PubMed works citing it.
LINKNAMES = ("pubmed_pubmed_refs", "pubmed_pubmed_citedin")
_GET_IDS = 200        # ids per efetch GET; beyond, POST
_POST_IDS = 500       # ids per efetch POST
_LINK_IDS = 100       # ids per elink call (one LinkSet each)
_IDCONV_IDS = 200     # ids per ID-converter call (NCBI's maximum)
_TOOL = "kb"


@dataclass
class SearchResult:
    """What esearch found: the total ``count``, the PMIDs fetched, and warnings for the user."""

    query: str
    count: int
    pmids: list[str]
    translation: str | None = None
    webenv: str | None = None
    query_key: str | None = None
    warnings: list[str] = field(default_factory=list)


def _identity(client: Any) -> dict[str, str]:
    """NCBI's identification parameters, sent with every call."""
    config = client.config
    params = {"tool": _TOOL}
    if config.mailto:
        params["email"] = config.mailto
    if config.ncbi_api_key:
        params["api_key"] = config.ncbi_api_key
    return params


def _call(client: Any, endpoint: str, params: dict[str, Any] | list[tuple[str, Any]], *,
          post: bool = False) -> Any:
    """GET (or POST) an E-utility; NCBI's rate-limit answer becomes a QuotaError with a hint."""
    url = client.config.url("eutils", endpoint)
    items = list(params.items()) if isinstance(params, dict) else list(params)
    items += list(_identity(client).items())
    try:
        if post:
            return client.post(url, data=items, check=_check_answer)
        return client.get(url, params=items, check=_check_answer)
    except QuotaError as exc:
        raise QuotaError(f"NCBI rate limit: {exc.args[0]}", url=exc.url, status=exc.status,
                         hint="set NCBI_API_KEY (10 requests/s instead of 3), or wait and "
                              "run again") from None


def _check_answer(response: Any) -> str | None:
    """An HTML page or a cut-off document is fetched again (NCBI's JSON errors are not:
    :func:`_json_error` reports them)."""
    return None if response.content.lstrip().startswith(b"{") else check_xml(response)


def _check_layout(content: bytes, url: str | None) -> None:
    """Refuse an efetch answer with a stretch of more than :data:`MAX_RECORD_BYTES` that
    ends no record: the streaming parser holds such a stretch whole, and a hostile one
    (millions of stray or nested elements) would take gigabytes. No real record is that big.

    :raises FetchError: there is such a stretch.
    """
    ends = [m.end() for m in _RECORD_END.finditer(content)]
    marks = [0, *ends, len(content)]
    widest = max(b - a for a, b in zip(marks, marks[1:]))
    if widest > MAX_RECORD_BYTES:
        raise FetchError(f"PubMed fetch: {widest / 2**20:.0f} MB of the answer hold no complete "
                         "record (no real record is that big); refused", url=url)


def _xml(response: Any, what: str) -> Any:
    """Parse a small E-utilities XML answer; raise on ``<ERROR>`` and on NCBI's JSON errors."""
    from lxml import etree
    content = response.content
    if len(content) > SMALL_ANSWER:  # parsed whole below: a hostile one would take GBs
        raise FetchError(f"{what}: NCBI's answer is {len(content) / 2**20:.0f} MB, far larger "
                         "than such an answer can be", url=_url(response))
    _json_error(content, what)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        raise FetchError(f"{what}: NCBI answered something that is not XML ({exc})",
                         url=_url(response)) from None
    errors = [" ".join("".join(e.itertext()).split()) for e in root.iter("ERROR")]
    errors = [e for e in errors if e]
    if errors:
        raise FetchError(f"{what}: NCBI says: {'; '.join(errors)}", url=_url(response))
    return root


def _json_error(content: bytes, what: str) -> None:
    """NCBI sends ``{"error": "API rate limit exceeded", ...}`` even from XML endpoints."""
    if not content.lstrip().startswith(b"{"):
        return
    try:
        body = json.loads(content)
    except ValueError:
        return
    message = body.get("error") or body.get("ERROR") if isinstance(body, dict) else None
    if message:
        if "rate limit" in str(message).lower():
            raise QuotaError(f"{what}: NCBI says: {message}",
                             hint="set NCBI_API_KEY (10 requests/s instead of 3), or wait")
        raise FetchError(f"{what}: NCBI says: {message}")


def _url(response: Any) -> str:
    """The answer's URL with secrets (api_key) hidden, for error messages."""
    from kb.http import redact
    return redact(response.url or "")


def _text(root: Any, path: str) -> str | None:
    found = root.find(path)
    return found.text.strip() if found is not None and found.text else None


def _pmids(values: Iterable[str]) -> list[str]:
    """The values as normalised PMIDs, first occurrence kept.

    :raises InputError: a value that is not a PMID.
    """
    wanted: list[str] = []
    for value in values:
        pmid = normalize_pmid(str(value))
        if pmid is None:
            raise InputError(f"not a PMID: {value!r}")
        if pmid not in wanted:
            wanted.append(pmid)
    return wanted


def _chunks(values: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


# -- esearch --------------------------------------------------------------------------------

def search(client: Any, query: str, *, max_results: int = 100, page_size: int = 5000
           ) -> SearchResult:
    """Search PubMed; return up to ``max_results`` PMIDs (newest first, PubMed's order).

    ESearch stops at the first 10,000 records of a query; a warning says so when the query
    finds more, and suggests narrowing it.

    :raises InputError: an empty query or a non-positive ``max_results``.
    :raises FetchError: NCBI reports an error (``<ERROR>`` inside the answer).
    """
    query = " ".join(query.split())
    if not query:
        raise InputError("the PubMed query is empty")
    if max_results < 1:
        raise InputError("--max must be at least 1")
    wanted = min(max_results, ESEARCH_LIMIT)
    page_size = max(1, min(page_size, ESEARCH_LIMIT))
    post = len(query) > 1500
    pmids: list[str] = []
    result: SearchResult | None = None
    params: dict[str, Any] = {"db": "pubmed", "term": query, "usehistory": "y",
                              "retmode": "xml"}
    while True:
        params.update(retstart=len(pmids), retmax=min(page_size, wanted - len(pmids)))
        root = _xml(_call(client, "esearch.fcgi", params, post=post), "PubMed search")
        ids = [i.text.strip() for i in root.iterfind("IdList/Id") if i.text]
        if result is None:
            count = int(_text(root, "Count") or 0)
            result = SearchResult(query, count, pmids, _text(root, "QueryTranslation"),
                                  _text(root, "WebEnv"), _text(root, "QueryKey"))
            result.warnings += _search_warnings(root)
            if result.webenv:
                params.update(WebEnv=result.webenv)
        # never more than asked for, whatever the answer holds
        pmids += [p for p in (normalize_pmid(i) for i in ids) if p][:wanted - len(pmids)]
        if not ids or len(pmids) >= min(wanted, result.count):
            break
    if result.count > ESEARCH_LIMIT:
        result.warnings.append(
            f"PubMed found {result.count:,} records, but E-utilities can only page through the "
            f"first {ESEARCH_LIMIT:,}; narrow the query (for example by publication date) to "
            "reach the rest")
    elif result.count > len(pmids) and len(pmids) >= max_results:
        result.warnings.append(f"PubMed found {result.count:,} records; fetched the first "
                               f"{len(pmids):,} (raise --max for more)")
    return result


def _search_warnings(root: Any) -> list[str]:
    """ErrorList / WarningList entries of an esearch answer, worded for the user."""
    notes = []
    for section in ("ErrorList", "WarningList"):
        for item in root.iterfind(f"{section}/*"):
            text = " ".join("".join(item.itertext()).split())
            if not text:
                continue
            label = {"PhraseNotFound": "phrase not found", "FieldNotFound": "field not found",
                     "QuotedPhraseNotFound": "quoted phrase not found",
                     "PhraseIgnored": "phrase ignored", "OutputMessage": "PubMed"}.get(
                item.tag, item.tag)
            notes.append(f"{label}: {text}")
    return notes


# -- efetch ---------------------------------------------------------------------------------

def fetch_works(client: Any, pmids: Iterable[str], *, raw: bool = True
                ) -> tuple[list[WorkRecord], list[str]]:
    """Fetch PubMed records by PMID: (records in PubMed's order, PMIDs PubMed did not return).

    Up to 200 ids go in one GET; longer lists are POSTed in batches, as NCBI asks.

    :raises InputError: a value that is not a PMID.
    :raises FetchError: NCBI failed or answered something that is not PubMed XML.
    """
    wanted = _pmids(pmids)
    if not wanted:
        return [], []
    post = len(wanted) > _GET_IDS
    records: list[WorkRecord] = []
    fetched_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for chunk in _chunks(wanted, _POST_IDS if post else _GET_IDS):
        params = {"db": "pubmed", "id": ",".join(chunk), "retmode": "xml"}
        response = _call(client, "efetch.fcgi", params, post=post)
        content = response.content
        _json_error(content, "PubMed fetch")
        if b"<ERROR>" in content[:4096] or b"<eFetchResult" in content[:4096]:
            _xml(response, "PubMed fetch")
        _check_layout(content, _url(response))
        try:
            items = list(parse_pubmed_xml(content, raw=raw))
        except ParseError as exc:
            raise FetchError(f"PubMed fetch: the answer is not PubMed XML ({exc})",
                             url=_url(response)) from None
        source_url = None if post else (client.config.url("eutils", "efetch.fcgi")
                                        + f"?db=pubmed&retmode=xml&id={','.join(chunk)}")
        for item in items:
            if isinstance(item, Deletion):
                continue
            item["fetched_at"] = fetched_at
            if source_url:
                item["source_url"] = source_url
            records.append(item)
    returned = {r.get("pmid") for r in records}
    return records, [p for p in wanted if p not in returned]


# -- elink ----------------------------------------------------------------------------------

def fetch_links(client: Any, pmids: Iterable[str], linkname: str) -> dict[str, list[str]]:
    """PubMed links per PMID: ``pubmed_pubmed_refs`` (its references) or
    ``pubmed_pubmed_citedin`` (works citing it). Every PMID asked for gets a (maybe empty) list.

    :raises InputError: an unknown link name or a value that is not a PMID.
    """
    if linkname not in LINKNAMES:
        raise InputError(f"unknown PubMed link name {linkname!r} (use one of {LINKNAMES})")
    wanted = _pmids(pmids)
    links: dict[str, list[str]] = {p: [] for p in wanted}
    for chunk in _chunks(wanted, _LINK_IDS):
        params = [("dbfrom", "pubmed"), ("db", "pubmed"), ("linkname", linkname),
                  ("retmode", "xml")] + [("id", p) for p in chunk]
        root = _xml(_call(client, "elink.fcgi", params), "PubMed links")
        for link_set in root.iterfind("LinkSet"):
            source = normalize_pmid(_text(link_set, "IdList/Id") or "")
            if source is None or source not in links:
                continue
            for db in link_set.iterfind("LinkSetDb"):
                if _text(db, "LinkName") != linkname:
                    continue
                for link in db.iterfind("Link/Id"):
                    target = normalize_pmid(link.text or "")
                    if target and target not in links[source]:
                        links[source].append(target)
    return links


# -- PMC ID converter -----------------------------------------------------------------------

def convert_ids(client: Any, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Map DOIs, PMIDs and PMCIDs to each other with the PMC ID converter.

    Returns ``{requested id (normalised): {"doi", "pmid", "pmcid", "errmsg"}}``; ids the
    converter does not know come back with ``errmsg`` and no identifiers. Up to 200 ids of one
    kind go in a request.

    :raises InputError: a value that is not a DOI, PMID or PMCID.
    """
    groups: dict[str, list[str]] = {"doi": [], "pmid": [], "pmcid": []}
    for value in ids:
        ident = classify(str(value))
        if ident is None or ident.kind not in groups:
            raise InputError(f"the PMC ID converter takes DOIs, PMIDs and PMCIDs, not {value!r}")
        if ident.value not in groups[ident.kind]:
            groups[ident.kind].append(ident.value)
    url = client.config.url("idconv")
    found: dict[str, dict[str, Any]] = {}
    for kind, values in groups.items():
        for chunk in _chunks(values, _IDCONV_IDS):
            params = {"ids": ",".join(chunk), "idtype": kind, "format": "json",
                      "versions": "no", **_identity(client)}
            try:
                response = client.get(url, params=params, check=check_json)
            except QuotaError as exc:
                raise QuotaError(f"NCBI rate limit: {exc.args[0]}", url=exc.url,
                                 status=exc.status, hint="set NCBI_API_KEY, or wait") from None
            found.update(_idconv_records(response, kind, chunk))
    return found


def _idconv_records(response: Any, kind: str, asked: list[str]) -> dict[str, dict[str, Any]]:
    try:
        body = json.loads(response.content)
    except ValueError:
        raise FetchError("PMC ID converter: the answer is not JSON", url=_url(response)) from None
    if not isinstance(body, dict):
        raise FetchError("PMC ID converter: unexpected answer", url=_url(response))
    if body.get("status") == "error" and not body.get("records"):
        raise FetchError(f"PMC ID converter: {body.get('errmsg') or body.get('message') or 'error'}",
                         url=_url(response))
    normalize = {"doi": normalize_doi, "pmid": normalize_pmid, "pmcid": normalize_pmcid}[kind]
    out: dict[str, dict[str, Any]] = {}
    records = body.get("records") or []
    if not isinstance(records, list):
        raise FetchError("PMC ID converter: 'records' is not a list", url=_url(response))
    for item in records:
        if not isinstance(item, dict):
            continue  # a null among the records: the ids it would answer stay unanswered
        requested = str(item.get("requested-id") or item.get(kind) or "")
        key = normalize(requested) or requested
        if key not in asked:
            continue
        entry = {
            "doi": normalize_doi(str(item["doi"])) if item.get("doi") else None,
            "pmid": normalize_pmid(str(item["pmid"])) if item.get("pmid") not in (None, "")
            else None,
            "pmcid": normalize_pmcid(str(item["pmcid"])) if item.get("pmcid") else None,
            "errmsg": item.get("errmsg") or None,
        }
        if entry["errmsg"]:  # an error entry may echo the requested id; it names no match
            entry.update({k: None for k in ("doi", "pmid", "pmcid")})
        entry[kind] = key
        out[key] = entry
    for key in asked:
        out.setdefault(key, {"doi": None, "pmid": None, "pmcid": None, kind: key,
                             "errmsg": "not in the converter's answer"})
    return out
