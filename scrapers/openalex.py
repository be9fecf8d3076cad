"""OpenAlex: works in batches (an OR filter of up to 100 values), their references
(``referenced_works``) and the works citing them (``filter=cites:``, cursor paging).

Fetchers return OpenAlex work objects as the API sends them; :func:`to_record` turns one into
a :class:`~kb.records.WorkRecord` and :func:`reference_links` / :func:`citing_links` into
:class:`~kb.records.LinkRecord` edges. ``api_key`` (``OPENALEX_API_KEY``) and ``mailto``
(``KB_MAILTO``) go on every request.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from kb.http import quote_path
from kb.errors import FetchError, NotFoundError
from kb.identifiers import normalize_doi, normalize_openalex, normalize_pmid
from kb.records import AuthorRecord, LinkRecord, MeshRecord, WorkRecord, WorkRef
from kb.scrapers import sound

if TYPE_CHECKING:
    from kb.http import Client

__all__ = ["fetch_works", "fetch_by_openalex", "fetch_by_pmid", "fetch_citing", "to_record",
           "work_ref", "reference_links", "citing_links", "abstract_text", "BATCH_SIZE",
           "REF_FIELDS", "CITING_FIELDS"]

#: Values per OR filter (OpenAlex allows up to 100).
BATCH_SIZE = 100
#: The fields asked for when only the identity of a work is needed (``select=``).
REF_FIELDS = "id,doi,ids,title,publication_year,authorships"
#: ... and for a citing work, whose edges are read from its reference list.
CITING_FIELDS = REF_FIELDS + ",referenced_works"
_TYPES = {"article": "journal-article", "review": "review", "book-chapter": "book-chapter",
          "book": "book", "dataset": "dataset", "preprint": "posted-content",
          "dissertation": "dissertation", "letter": "letter", "editorial": "editorial",
          "erratum": "erratum", "retraction": "retraction", "report": "report"}


def _params(client: Client, **params: Any) -> dict[str, Any]:
    config = client.config
    if config.openalex_api_key:
        params["api_key"] = config.openalex_api_key
    if config.mailto:
        params["mailto"] = config.mailto
    return params


def _page(client: Client, params: dict[str, Any]) -> dict[str, Any]:
    url = client.config.url("openalex", "works")
    data = client.get_json(url, params=_params(client, **params))
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise FetchError("OpenAlex answered something that is not a list of works", url=url)
    data["results"] = _sound(data["results"])
    return data


def _sound(works: list[Any]) -> list[dict[str, Any]]:
    """The works shaped as OpenAlex documents them; each other one is left out, with a
    warning naming it (a title that is a number, authorships that are not a list, …)."""
    return sound("OpenAlex", lambda work: work.get("id") or "a work",
                 lambda work: (to_record(work), work_ref(work)), works)


def _filtered(client: Client, name: str, values: list[str], select: str | None
              ) -> list[dict[str, Any]]:
    works: list[dict[str, Any]] = []
    for start in range(0, len(values), BATCH_SIZE):
        batch = values[start:start + BATCH_SIZE]
        params: dict[str, Any] = {"filter": f"{name}:{'|'.join(batch)}",
                                  "per-page": BATCH_SIZE}
        if select:
            params["select"] = select
        works.extend(_page(client, params)["results"])
    return works


def fetch_works(client: Client, dois: Iterable[str], *, select: str | None = None
                ) -> list[dict[str, Any]]:
    """The OpenAlex works with these DOIs (those OpenAlex does not know are simply absent).

    DOIs go 100 to a request (``filter=doi:A|B|…``); a DOI with ``|`` or ``,`` in it, which
    the filter syntax cannot carry, is fetched alone (``/works/doi:…``).
    """
    wanted = sorted({d for d in (normalize_doi(x) for x in dois) if d})
    batchable = [d for d in wanted if "|" not in d and "," not in d]
    works = _filtered(client, "doi", batchable, select)
    for doi in sorted(set(wanted) - set(batchable)):
        url = client.config.url("openalex", f"works/doi:{quote_path(doi)}")
        try:
            works.extend(_sound([client.get_json(url, params=_params(client))]))
        except NotFoundError:
            continue
    return works


def fetch_by_openalex(client: Client, ids: Iterable[str], *, select: str | None = None
                      ) -> list[dict[str, Any]]:
    """The works with these OpenAlex ids (``W…``), 100 to a request."""
    wanted = sorted({i for i in (normalize_openalex(x) for x in ids) if i})
    return _filtered(client, "ids.openalex", wanted, select)


def fetch_by_pmid(client: Client, pmids: Iterable[str], *, select: str | None = None
                  ) -> list[dict[str, Any]]:
    """The works with these PMIDs, 100 to a request."""
    wanted = sorted({p for p in (normalize_pmid(x) for x in pmids) if p}, key=int)
    return _filtered(client, "ids.pmid", wanted, select)


def fetch_citing(client: Client, ids: Iterable[str], *, limit: int | None = None,
                 select: str | None = None) -> Iterator[dict[str, Any]]:
    """The works citing any of these OpenAlex ids (``filter=cites:W1|W2``), following the
    cursor until it runs out or ``limit`` works were yielded (``select``: say
    :data:`CITING_FIELDS` when only the edges are wanted)."""
    wanted = sorted({i for i in (normalize_openalex(x) for x in ids) if i})
    yielded = 0
    for start in range(0, len(wanted), BATCH_SIZE):
        cursor: str | None = "*"
        while cursor:
            params: dict[str, Any] = {
                "filter": "cites:" + "|".join(wanted[start:start + BATCH_SIZE]),
                "per-page": BATCH_SIZE, "cursor": cursor}
            if select:
                params["select"] = select
            data = _page(client, params)
            for work in data["results"]:
                yield work
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            cursor = (data.get("meta") or {}).get("next_cursor") if data["results"] else None


# -- parsing ------------------------------------------------------------------------------------

def _plain(text: str | None) -> str | None:
    if not text:
        return None
    return " ".join(re.sub(r"<[^>]+>", "", text).split()) or None


def abstract_text(inverted: Mapping[str, list[int]] | None) -> str | None:
    """Rebuild an abstract from OpenAlex's ``abstract_inverted_index``.

    >>> abstract_text({"Cord": [0], "blood": [1, 3], "and": [2]})
    'Cord blood and blood'
    """
    if not inverted:
        return None
    words: dict[int, str] = {}
    for word, positions in inverted.items():
        for position in positions:
            words[position] = word
    return " ".join(words[i] for i in sorted(words)) or None


def _pmcid(value: str | None) -> str | None:
    if not value:
        return None
    tail = value.rstrip("/").rsplit("/", 1)[-1]
    return f"PMC{int(tail)}" if tail.isdigit() and int(tail) else (
        tail.upper() if re.fullmatch(r"(?i)PMC\d+", tail) else None)


def _ids(work: Mapping[str, Any]) -> dict[str, str | None]:
    ids = work.get("ids") or {}
    return {"doi": normalize_doi(work.get("doi") or ids.get("doi") or ""),
            "pmid": normalize_pmid(ids.get("pmid") or "") if ids.get("pmid") else None,
            "pmcid": _pmcid(ids.get("pmcid")),
            "openalex_id": normalize_openalex(work.get("id") or ids.get("openalex") or "")}


def _author(authorship: Mapping[str, Any]) -> AuthorRecord:
    author = authorship.get("author") or {}
    name = " ".join((author.get("display_name") or authorship.get("raw_author_name")
                     or "").split())
    orcid = (author.get("orcid") or "").rsplit("/", 1)[-1] or None
    places = "; ".join(i["display_name"] for i in authorship.get("institutions") or []
                       if i.get("display_name")) or None
    given, _, family = name.rpartition(" ")
    record: AuthorRecord = {"family": family or None, "given": given or None, "orcid": orcid,
                            "affiliation": places}
    return record


def _first_family(work: Mapping[str, Any]) -> str | None:
    authorships = work.get("authorships") or []
    return _author(authorships[0]).get("family") if authorships else None


def to_record(work: Mapping[str, Any]) -> WorkRecord:
    """One OpenAlex work object as a :class:`~kb.records.WorkRecord` (source ``openalex``)."""
    ids = _ids(work)
    location = work.get("primary_location") or {}
    venue = location.get("source") or {}
    biblio = work.get("biblio") or {}
    pages = "-".join(p for p in (biblio.get("first_page"), biblio.get("last_page")) if p)
    record: WorkRecord = {
        "source": "openalex", "source_id": ids["openalex_id"],
        "source_url": work.get("id"), "raw": json.dumps(work, sort_keys=True),
        **{k: v for k, v in ids.items() if v},  # type: ignore[typeddict-item]
        "title": _plain(work.get("title") or work.get("display_name")),
        "abstract": abstract_text(work.get("abstract_inverted_index")),
        "journal": venue.get("display_name") if venue.get("type") in (None, "journal") else None,
        "issn": "; ".join(venue.get("issn") or []) or None,
        "publisher": venue.get("host_organization_name"),
        "year": work.get("publication_year"), "pub_date": work.get("publication_date"),
        "volume": biblio.get("volume"), "issue": biblio.get("issue"), "pages": pages or None,
        "language": work.get("language"), "type": _TYPES.get(work.get("type") or ""),
        "license": location.get("license"), "cited_by_count": work.get("cited_by_count"),
        "is_retracted": bool(work.get("is_retracted")),
        "url": location.get("landing_page_url") if not ids["doi"] else None,
    }
    authors = [_author(a) for a in work.get("authorships") or []]
    if authors:
        record["authors"] = [a for a in authors if a.get("family")]
    mesh: list[MeshRecord] = [
        {"descriptor": m["descriptor_name"], "descriptor_ui": m.get("descriptor_ui"),
         "qualifier": m.get("qualifier_name"), "major": bool(m.get("is_major_topic"))}
        for m in work.get("mesh") or [] if m.get("descriptor_name")]
    if mesh:
        record["mesh"] = mesh
    keywords = [name for k in work.get("keywords") or []
                if isinstance(k, dict) and (name := k.get("display_name"))]
    if keywords:
        record["keywords"] = keywords
    return {k: v for k, v in record.items() if v is not None}  # type: ignore[return-value]


def work_ref(work: Mapping[str, Any]) -> WorkRef:
    """What an edge needs to know of a work: its ids, title, year and first author."""
    ref: WorkRef = {**{k: v for k, v in _ids(work).items() if v}}  # type: ignore[typeddict-item]
    if work.get("title") or work.get("display_name"):
        ref["title"] = _plain(work.get("title") or work.get("display_name"))
    if work.get("publication_year"):
        ref["year"] = work["publication_year"]
    family = _first_family(work)
    if family:
        ref["first_author"] = family
    return ref


def reference_links(work: Mapping[str, Any],
                    known: Mapping[str, Mapping[str, Any]] | None = None) -> list[LinkRecord]:
    """Edges from ``work`` to each of its ``referenced_works``; ``known`` maps OpenAlex ids
    to work objects (e.g. from :func:`fetch_by_openalex` with :data:`REF_FIELDS`) so the
    cited side carries its DOI and PMID too."""
    citing = work_ref(work)
    links: list[LinkRecord] = []
    for value in work.get("referenced_works") or []:
        wid = normalize_openalex(value)
        if not wid:
            continue
        cited = work_ref(known[wid]) if known and wid in known else {"openalex_id": wid}
        links.append({"citing": citing, "cited": cited, "source": "openalex"})
    return links


def citing_links(citing: Mapping[str, Any], cited: Mapping[str, Mapping[str, Any]]
                 ) -> list[LinkRecord]:
    """Edges from a work returned by :func:`fetch_citing` to those of the ``cited`` works
    (OpenAlex id -> work object) that it references."""
    ref = work_ref(citing)
    links: list[LinkRecord] = []
    for value in citing.get("referenced_works") or []:
        wid = normalize_openalex(value)
        if wid and wid in cited:
            links.append({"citing": ref, "cited": work_ref(cited[wid]), "source": "openalex"})
    return links
