"""DataCite REST API: the fallback for DOIs Crossref does not know (datasets, Zenodo, preprints).

``fetch_work`` asks ``/dois/{doi}``; ``to_record`` turns its JSON:API document into a
:class:`~kb.records.WorkRecord`.
"""
from __future__ import annotations

import json
import re
from typing import Any

from kb.clock import now
from kb.errors import FetchError
from kb.http import Client, quote_path
from kb.identifiers import normalize_doi
from kb.records import AuthorRecord, ReferenceRecord, WorkRecord
from kb.scrapers import well_formed

from .crossref import jats_to_text

__all__ = ["fetch_work", "to_record"]


def fetch_work(client: Client, doi: str) -> WorkRecord:
    """Fetch one DOI from DataCite.

    :raises NotFoundError: DataCite does not know the DOI.
    :raises FetchError: the request failed or the answer is not a DataCite DOI document.
    """
    url = client.config.url("datacite", f"dois/{quote_path(doi)}")
    document = client.get_json(url, params={"affiliation": "true"})
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict) \
            or not isinstance(document["data"].get("attributes"), dict):
        raise FetchError(f"DataCite answered an unexpected document: {url}", url=url)
    record = well_formed("DataCite", doi, to_record, document)
    record["source_url"] = url
    record["fetched_at"] = now()
    return record


def _name(value: Any) -> str | None:
    """A publisher or affiliation given as a string or as ``{"name": …}``."""
    if isinstance(value, dict):
        value = value.get("name")
    return " ".join(value.split()) if isinstance(value, str) and value.strip() else None


def _creator(creator: dict[str, Any]) -> AuthorRecord | None:
    orcid = None
    for ident in creator.get("nameIdentifiers") or []:
        if (ident.get("nameIdentifierScheme") or "").upper() == "ORCID":
            match = re.search(r"\d{4}-\d{4}-\d{4}-\d{3}[\dX]", ident.get("nameIdentifier") or "",
                              re.I)
            orcid = match.group(0).upper() if match else None
    affiliation = "; ".join(a for a in (_name(x) for x in creator.get("affiliation") or []) if a)
    author: AuthorRecord = {"orcid": orcid, "affiliation": affiliation or None}
    if creator.get("familyName"):
        author["family"] = creator["familyName"].strip()
        author["given"] = (creator.get("givenName") or "").strip() or None
    elif creator.get("nameType") == "Personal" and "," in (creator.get("name") or ""):
        family, given = creator["name"].split(",", 1)
        author["family"], author["given"] = family.strip(), given.strip() or None
    elif _name(creator.get("name")):
        author["name"] = _name(creator.get("name"))
    else:
        return None
    return author


def _type(types: dict[str, Any]) -> str | None:
    """``JournalArticle`` → ``journal-article``; ``Text`` (untyped) → the citeproc type."""
    general = types.get("resourceTypeGeneral") or ""
    if general in ("", "Text", "Other"):
        citeproc = types.get("citeproc") or ""
        return {"article-journal": "journal-article"}.get(citeproc, citeproc) or None
    return re.sub(r"(?<!^)(?=[A-Z])", "-", general).lower()


def _issued(attributes: dict[str, Any]) -> tuple[int | None, str | None]:
    for item in attributes.get("dates") or []:
        if item.get("dateType") == "Issued":
            match = re.match(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", item.get("date") or "")
            if match:
                return int(match.group(1)), "-".join(p for p in match.groups() if p)
    year = attributes.get("publicationYear")
    try:
        year = int(year) if year is not None else None
    except (TypeError, ValueError):
        year = None
    return year, (f"{year:04d}" if year else None)


def _references(attributes: dict[str, Any]) -> list[ReferenceRecord]:
    refs: list[ReferenceRecord] = []
    for item in attributes.get("relatedIdentifiers") or []:
        if item.get("relationType") != "References" \
                or (item.get("relatedIdentifierType") or "").upper() != "DOI":
            continue
        doi = normalize_doi(item.get("relatedIdentifier") or "")
        if doi:
            refs.append({"position": len(refs) + 1, "doi": doi})
    return refs


def to_record(document: dict[str, Any]) -> WorkRecord:
    """A DataCite ``/dois/{doi}`` document as a record (pure; the payload is kept in ``raw``)."""
    attributes = document["data"]["attributes"]
    doi = normalize_doi(attributes.get("doi") or document["data"].get("id") or "")
    titles = attributes.get("titles") or []
    title = next((t.get("title") for t in titles if not t.get("titleType") and t.get("title")),
                 None)
    subtitle = next((t.get("title") for t in titles if t.get("titleType") == "Subtitle"), None)
    abstract = next((d.get("description") for d in attributes.get("descriptions") or []
                     if d.get("descriptionType") == "Abstract" and d.get("description")), None)
    container = attributes.get("container") or {}
    first, last = container.get("firstPage"), container.get("lastPage")
    rights = [r.get("rightsUri") for r in attributes.get("rightsList") or []
              if (r.get("rightsUri") or "").startswith("http")]
    year, pub_date = _issued(attributes)
    authors = [a for a in (_creator(c) for c in attributes.get("creators") or []) if a]
    return {
        "source": "datacite",
        "source_id": doi,
        "raw": json.dumps(document, ensure_ascii=False, separators=(",", ":")),
        "doi": doi,
        "url": attributes.get("url") or (f"https://doi.org/{doi}" if doi else None),
        "title": " ".join(title.split()) if title else None,
        "subtitle": " ".join(subtitle.split()) if subtitle else None,
        "abstract": jats_to_text(abstract),
        "journal": _name(container.get("title")),
        "publisher": _name(attributes.get("publisher")),
        "year": year,
        "pub_date": pub_date,
        "volume": container.get("volume") or None,
        "issue": container.get("issue") or None,
        "pages": "-".join(p for p in (first, last) if p) or None,
        "language": attributes.get("language") or None,
        "type": _type(attributes.get("types") or {}),
        "license": rights[0] if rights else None,
        "keywords": [s["subject"] for s in attributes.get("subjects") or []
                     if s.get("subject") and not s.get("subjectScheme")],
        "authors": authors,
        "references": _references(attributes),
    }
