"""Crossref REST API: works by DOI, many per request, parsed into :class:`~kb.records.WorkRecord`.

``fetch_works`` asks for up to :data:`BATCH_SIZE` DOIs in one ``/works?filter=doi:A,doi:B,…``
request and retries singly (``/works/{doi}``) whatever a batch did not return. ``to_record``
is pure: one Crossref ``work`` message in, one record out.
"""
from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, cast

from kb.clock import now
from kb.errors import FetchError, NotFoundError
from kb.http import Breaker, Client, quote_path
from kb.identifiers import normalize_doi
from kb.records import AuthorRecord, ReferenceRecord, UpdateRecord, WorkRecord
from kb.scrapers import sound, well_formed

__all__ = ["BATCH_SIZE", "fetch_works", "fetch_work", "to_record", "jats_to_text"]

log = logging.getLogger(__name__)

#: DOIs per ``filter=doi:…`` request. Crossref documents no maximum; its staff warn of URL
#: length limits and other clients use 20-50, so 40 keeps URLs near 1.5 kB (not verified as
#: a service limit). ``rows`` is always set to the batch size (the default page is 20).
BATCH_SIZE = 40
#: Statuses that mean Crossref refused the batch query itself (worth asking DOI by DOI).
_QUERY_ERRORS = frozenset({400, 413, 414})
#: Failed requests in a row after which Crossref is taken to be down for this run.
_GIVE_UP_AFTER = 2
#: Update types that withdraw a work (``updated-by`` with one of these → ``is_retracted``).
RETRACTING = frozenset({"retraction", "withdrawal", "removal"})


def fetch_works(client: Client, dois: Iterable[str], *, errors: dict[str, str] | None = None,
                progress: Callable[[int], None] | None = None
                ) -> tuple[list[WorkRecord], list[str]]:
    """Fetch many works by DOI: from the cache, then in batches, then one request per DOI a
    batch missed. Each work a batch returns is cached under its own ``/works/{doi}`` address,
    so a later run with a different set of DOIs asks only for the new ones.

    Returns the records (in input order) and the DOIs Crossref did not return. When
    ``errors`` is given, it receives the reason for each missing DOI that failed for a reason
    other than "not found" (a server error, offline and not cached, a rate limit). A batch
    that fails after its retries is not asked for again DOI by DOI (unless Crossref refused
    the query itself); after a rate limit, or :data:`_GIVE_UP_AFTER` failures in a row,
    nothing more is asked of Crossref and the remaining DOIs are missing with that reason.
    ``progress`` is called with the number of works each step found.

    :raises InputError: never; DOIs that do not parse are reported missing.
    """
    wanted: list[str] = []
    for doi in dois:
        value = normalize_doi(doi) or doi
        if value not in wanted:
            wanted.append(value)
    found: dict[str, WorkRecord] = {}
    reasons: dict[str, str] = {}
    for doi in wanted:  # answers an earlier batch or single request left in the cache
        record = _from_cache(client, doi)
        if record is not None:
            found[doi] = record
    _report(progress, len(found))
    breaker = Breaker(_GIVE_UP_AFTER)  # Crossref is rate limiting us or not answering
    batchable = sorted(d for d in wanted if d not in found and normalize_doi(d) and "," not in d)
    for start in range(0, len(batchable), BATCH_SIZE):
        batch = batchable[start:start + BATCH_SIZE]
        if breaker.down is not None:
            reasons.update({d: f"Crossref: {breaker.down.args[0]}" for d in batch})
            continue
        try:
            fetched = _fetch_batch(client, batch)
        except FetchError as exc:
            if exc.status in _QUERY_ERRORS:  # the filter syntax choked on a DOI: go one by one
                log.info("Crossref batch refused (%s); asking for its DOIs one by one", exc)
                continue
            reasons.update({d: f"Crossref: {exc.args[0]}" for d in batch})
            breaker.failure(exc)
            continue
        breaker.success()
        found.update(fetched)
        _report(progress, len(fetched))
    for doi in wanted:
        if doi in found or doi in reasons:
            continue
        if breaker.down is not None:
            reasons[doi] = f"Crossref: {breaker.down.args[0]}"
            continue
        try:
            found[doi] = fetch_work(client, doi)
        except NotFoundError:
            breaker.success()
            continue
        except FetchError as exc:
            reasons[doi] = f"Crossref: {exc.args[0]}"
            breaker.failure(exc)
            continue
        breaker.success()
        _report(progress, 1)
    if errors is not None:
        errors.update(reasons)
    return [found[d] for d in wanted if d in found], [d for d in wanted if d not in found]


def _report(progress: Callable[[int], None] | None, count: int) -> None:
    if progress is not None and count:
        progress(count)


def _params(client: Client, **params: Any) -> dict[str, Any]:
    if client.config.mailto:
        params["mailto"] = client.config.mailto
    return params


def _work_url(client: Client, doi: str) -> str:
    return client.config.url("crossref", f"works/{quote_path(doi)}")


def _from_cache(client: Client, doi: str) -> WorkRecord | None:
    url = _work_url(client, doi)
    response = client.cached(url, _params(client))
    if response is None:
        return None
    try:
        return _stamp(client, well_formed("Crossref", doi, to_record,
                                          _message(response.json(), url)))
    except (ValueError, FetchError):
        return None


def _fetch_batch(client: Client, batch: list[str]) -> dict[str, WorkRecord]:
    url = client.config.url("crossref", "works")
    data = client.get_json(url, params=_params(
        client, filter=",".join(f"doi:{doi}" for doi in batch), rows=len(batch)))
    items = _message(data, url).get("items") or []
    if not isinstance(items, list):
        raise FetchError(f"Crossref answered an unexpected list of works: {url}", url=url)
    items = sound("Crossref", lambda item: item.get("DOI") or "a work", to_record, items)
    wanted = set(batch)
    found: dict[str, WorkRecord] = {}
    for item in items:
        record = _stamp(client, to_record(item))
        doi = record.get("doi")
        if doi in wanted:
            found[doi] = record
            single = {"status": "ok", "message-type": "work", "message-version": "1.0.0",
                      "message": item}  # what /works/{doi} answers, cached for later runs
            client.remember(_work_url(client, doi), _params(client),
                            json.dumps(single, ensure_ascii=False).encode())
    return found


def fetch_work(client: Client, doi: str) -> WorkRecord:
    """Fetch one work (``/works/{doi}``).

    :raises NotFoundError: Crossref does not know the DOI.
    :raises FetchError: the request failed or the answer is not a Crossref work.
    """
    url = _work_url(client, doi)
    data = client.get_json(url, params=_params(client))
    message = _message(data, url)
    if not message.get("DOI"):
        raise FetchError(f"Crossref answered something that is not a work: {url}", url=url)
    return _stamp(client, well_formed("Crossref", doi, to_record, message))


def _message(data: Any, url: str) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("status") != "ok" \
            or not isinstance(data.get("message"), dict):
        raise FetchError(f"Crossref answered an unexpected document: {url}", url=url)
    return data["message"]


def _stamp(client: Client, record: WorkRecord) -> WorkRecord:
    record["source_url"] = _work_url(client, record["doi"] or "")
    record["fetched_at"] = now()
    return record


# -- parsing ------------------------------------------------------------------------------------

_BLOCK_END = re.compile(r"</(?:jats:)?(?:p|sec|title|list-item|list|disp-quote|abstract)\s*>",
                        re.I)
_SECTION_TITLE = re.compile(
    r"<(?:jats:)?title\b[^>]*>((?:(?!</?(?:jats:)?title\b).)*)</(?:jats:)?title\s*>"
    r"\s*(?=<(?:jats:)?p\b)", re.I | re.S)
_SUP = re.compile(r"<(?:jats:)?sup\b[^>]*>(.*?)</(?:jats:)?sup\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")


def _inline(text: str) -> str:
    """Markup-free text of a title or a paragraph."""
    text = _SUP.sub(lambda m: "^" + m.group(1), text)
    return " ".join(html.unescape(_TAG.sub("", text)).split())


def jats_to_text(jats: str | None) -> str | None:
    """Plain text of a JATS abstract: paragraphs separated by blank lines, section titles
    kept as ``Title: ``, a leading "Abstract" heading dropped.

    >>> jats_to_text('<jats:title>Abstract</jats:title><jats:sec><jats:title>Background'
    ...              '</jats:title><jats:p>CP is <jats:italic>common</jats:italic>.</jats:p>'
    ...              '</jats:sec><jats:p>10<jats:sup>6</jats:sup> cells/kg.</jats:p>')
    'Background: CP is common.\\n\\n10^6 cells/kg.'
    """
    if not jats or not jats.strip():
        return None
    text = _SECTION_TITLE.sub(lambda m: _inline(m.group(1)).rstrip(":. ") + ": ", jats)
    paragraphs = [_inline(part) for part in _BLOCK_END.split(text)]
    paragraphs = [p for p in paragraphs if p]
    if paragraphs and paragraphs[0].lower().rstrip(":. ") == "abstract":
        paragraphs = paragraphs[1:]
    return "\n\n".join(paragraphs) or None


def _first(values: Any) -> str | None:
    if isinstance(values, list):
        for value in values:
            if isinstance(value, str) and _inline(value):
                return _inline(value)
        return None
    return _inline(values) if isinstance(values, str) and values.strip() else None


def _date(message: dict[str, Any]) -> tuple[int | None, str | None]:
    """The year and ISO date of the first dated field: ``[year, month, day]``, as far as each
    part is a plausible number in its place (``[["x", null, 99]]`` gives no year, not 99).

    >>> _date({"issued": {"date-parts": [["x", None, 99]]},
    ...        "created": {"date-parts": [[2021, 13]]}})
    (2021, '2021')
    """
    for key in ("issued", "published", "published-print", "published-online", "created"):
        parts = ((message.get(key) or {}).get("date-parts") or [[None]])[0] or [None]
        numbers: list[int] = []
        for part, (low, high) in zip(parts, ((1000, 2999), (1, 12), (1, 31))):
            if type(part) is not int or not low <= part <= high:
                break
            numbers.append(part)
        if numbers:
            year = numbers[0]
            return year, "-".join([f"{year:04d}"] + [f"{p:02d}" for p in numbers[1:]])
    return None, None


def _orcid(value: str | None) -> str | None:
    match = re.search(r"(\d{4}-\d{4}-\d{4}-\d{3}[\dX])", value or "", re.I)
    return match.group(1).upper() if match else None


def _authors(message: dict[str, Any]) -> list[AuthorRecord]:
    authors: list[AuthorRecord] = []
    for person in message.get("author") or []:
        if person is None:
            continue
        affiliations = [a.get("name", "").strip() for a in person.get("affiliation") or []
                        if isinstance(a, dict) and a.get("name", "").strip()]
        author: AuthorRecord = {
            "family": _inline(person["family"]) if person.get("family") else None,
            "given": _inline(person["given"]) if person.get("given") else None,
            "orcid": _orcid(person.get("ORCID")),
            "affiliation": "; ".join(affiliations) or None,
        }
        if not author["family"]:
            author["name"] = _inline(person.get("name") or "") or author.pop("given", None)
        if author.get("family") or author.get("name"):
            authors.append(author)
    return authors


def _license(message: dict[str, Any]) -> str | None:
    licences = [lic for lic in message.get("license") or [] if lic.get("URL")]
    for licence in licences:
        if licence.get("content-version") == "vor":
            return licence["URL"]
    return licences[0]["URL"] if licences else None


def _family(author: str | None) -> str | None:
    """The family name in a reference's author string.

    >>> _family("AT Pakula"), _family("Katz RT"), _family("Smith, J."), _family("van der Berg A")
    ('Pakula', 'Katz', 'Smith', 'van der Berg')
    """
    text = _first(author)
    if not text:
        return None
    if "," in text:
        return text.split(",", 1)[0].strip() or None
    words = [w for w in text.split() if not re.fullmatch(r"(?:[A-Z]\.?-?){1,3}", w)]
    return " ".join(words) or text


def _year(value: Any) -> int | None:
    match = re.match(r"\s*(\d{4})", str(value or ""))
    return int(match.group(1)) if match else None


def _references(message: dict[str, Any]) -> list[ReferenceRecord]:
    refs: list[ReferenceRecord] = []
    for position, ref in enumerate(message.get("reference") or [], start=1):
        if ref is None:  # a null in the list: the others still count, in place
            continue
        article = _first(ref.get("article-title")) or _first(ref.get("volume-title"))
        journal = _first(ref.get("journal-title")) or _first(ref.get("series-title"))
        record: ReferenceRecord = {
            "position": position,
            "doi": normalize_doi(ref.get("DOI") or ""),
            "title": article or journal,
            "journal": journal,
            "year": _year(ref.get("year")),
            "first_author": _family(ref.get("author")),
            "volume": ref.get("volume") or None,
            "first_page": ref.get("first-page") or None,
            "unstructured": _first(ref.get("unstructured")),
        }
        refs.append(cast(ReferenceRecord, {k: v for k, v in record.items() if v is not None}))
    return refs


def _updates(message: dict[str, Any]) -> list[UpdateRecord]:
    updates: list[UpdateRecord] = []
    for direction in ("update-to", "updated-by"):
        for item in message.get(direction) or []:
            kind = (item.get("type") or "update").strip().lower().replace("_", "-")
            updates.append({"kind": kind, "direction": direction,
                            "doi": normalize_doi(item.get("DOI") or ""),
                            "label": item.get("label"), "source": "crossref"})
    return updates


def to_record(message: dict[str, Any]) -> WorkRecord:
    """One Crossref ``work`` message (the ``message`` of ``/works/{doi}`` or one of the
    ``items`` of a list) as a record. Pure; keeps the payload in ``raw``."""
    doi = normalize_doi(message.get("DOI") or "")
    year, pub_date = _date(message)
    updates = _updates(message)
    record: WorkRecord = {
        "source": "crossref",
        "source_id": doi,
        "raw": json.dumps(message, ensure_ascii=False, separators=(",", ":")),
        "doi": doi,
        "url": message.get("URL") or (f"https://doi.org/{doi}" if doi else None),
        "title": _first(message.get("title")),
        "subtitle": _first(message.get("subtitle")),
        "abstract": jats_to_text(message.get("abstract")),
        "journal": _first(message.get("container-title")),
        "journal_abbrev": _first(message.get("short-container-title")),
        "issn": "; ".join(dict.fromkeys(message.get("ISSN") or [])) or None,
        "publisher": message.get("publisher") or None,
        "year": year,
        "pub_date": pub_date,
        "volume": message.get("volume") or None,
        "issue": message.get("issue") or None,
        "pages": message.get("page") or message.get("article-number") or None,
        "language": message.get("language") or None,
        "type": message.get("type") or None,
        "license": _license(message),
        "cited_by_count": message.get("is-referenced-by-count"),
        "is_retracted": any(u["kind"] in RETRACTING and u["direction"] == "updated-by"
                            for u in updates),
        "authors": _authors(message),
        "references": _references(message),
        "updates": updates,
    }
    return record
