"""Read kb's embedded seed (``kb/seed/``) into plain records for the normal importers.

The seed is the curated corpus: CSL-JSON works, a ``citing,cited,relation,source`` CSV and
curated trial facts (see ``kb/seed/README.md``). Pure functions: nothing here writes. Output is
sorted so the same seed always gives the same records in the same order.
"""
from __future__ import annotations

import csv
import io
import json
import re
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, NamedTuple

from ..errors import ParseError
from ..identifiers import normalize_doi, normalize_pmcid, normalize_pmid, normalize_url
from ..records import AuthorRecord, LinkRecord, MeshRecord, ReferenceRecord, WorkRecord, WorkRef

__all__ = ["seed_files", "SEED_ARTICLE_URL", "work_from_csl", "read_works", "read_links",
           "read_trials", "ref_for_id", "Lineage"]

#: The news article the seed starts from, shipped as ``kb/seed/cells4life-2025-03.html``.
SEED_ARTICLE_URL = "https://cells4life.com/2025/03/fresh-insights-cell-therapy-cerebral-palsy"
#: CSL item types -> kb work types (Crossref's vocabulary).
_TYPES = {"article-journal": "journal-article", "webpage": "web-article", "post-weblog": "web-article",
          "article-newspaper": "web-article", "report": "report", "book": "book",
          "chapter": "book-chapter", "paper-conference": "proceedings-article",
          "dataset": "dataset", "thesis": "dissertation"}


class Lineage(NamedTuple):
    """A typed edge from the seed's citation CSV (``pools``): ids as in ``works.json``."""

    from_id: str
    to_id: str
    relation: str
    source: str


def seed_files() -> Traversable:
    """The folder holding the packaged seed."""
    return resources.files("kb").joinpath("seed")


def ref_for_id(corpus_id: str) -> WorkRef:
    """A corpus id (lower-case DOI or ``url:<URL>``) as the ids of a work.

    >>> ref_for_id("10.1186/s13287-021-02513-4"), ref_for_id("url:https://x.org/a")
    ({'doi': '10.1186/s13287-021-02513-4'}, {'url': 'https://x.org/a'})
    """
    if corpus_id.startswith("url:") and normalize_url(corpus_id[4:]):
        return {"url": normalize_url(corpus_id[4:])}
    doi = normalize_doi(corpus_id)
    if not doi:
        raise ParseError(f"seed id is neither a DOI nor url:<http(s) URL>: {corpus_id!r}")
    return {"doi": doi}


def _date(item: dict[str, Any]) -> tuple[int | None, str | None]:
    parts = ((item.get("issued") or {}).get("date-parts") or [[]])[0]
    parts = [int(p) for p in parts if p not in (None, "")]
    if not parts:
        return None, None
    return parts[0], "-".join([f"{parts[0]:04d}"] + [f"{p:02d}" for p in parts[1:3]])


def _authors(item: dict[str, Any]) -> list[AuthorRecord]:
    authors: list[AuthorRecord] = []
    for person in item.get("author") or []:
        if person.get("family"):
            authors.append({"family": person["family"], "given": person.get("given")})
        elif person.get("literal") or person.get("name"):
            authors.append({"name": person.get("literal") or person.get("name")})
    return authors


def _split(value: Any, sep: str) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").split(sep)
    return [i.strip() for i in items if i and i.strip()]


def _included_trials(custom: dict[str, Any]) -> list[ReferenceRecord]:
    """A review's included trials as its page listed them ("Min et al [39], 2013 (…)"):
    reference rows with the printed text, at the reference number the page gave.

    >>> _included_trials({"included_trials_as_shown": ["Min et al [39], 2013 (South Korea, n=105)"]})
    [{'position': 39, 'unstructured': 'Min et al [39], 2013 (South Korea, n=105)'}]
    """
    references: list[ReferenceRecord] = []
    for text in custom.get("included_trials_as_shown") or []:
        number = re.search(r"\[(\d+)\]", text)
        reference: ReferenceRecord = {"unstructured": text}
        if number:
            reference = {"position": int(number.group(1)), **reference}
        references.append(reference)
    return references


def _mesh(custom: dict[str, Any]) -> list[MeshRecord]:
    """PubMed MeSH headings as the corpus lists them (``custom.mesh``), one row per
    descriptor/qualifier pair, the bare descriptor when it has none (as kb reads PubMed). A
    heading whose page showed no major-topic flags (``major: null``) is stored as not major.

    >>> _mesh({"mesh": [{"descriptor": "Cerebral Palsy", "qualifiers": ["therapy"],
    ...                  "major": True}, {"descriptor": "Child", "qualifiers": []}]})
    [{'descriptor': 'Cerebral Palsy', 'qualifier': 'therapy', 'major': True}, \
{'descriptor': 'Child', 'qualifier': None, 'major': False}]
    """
    rows: list[MeshRecord] = []
    for heading in custom.get("mesh") or []:
        for qualifier in heading.get("qualifiers") or [None]:
            rows.append({"descriptor": heading["descriptor"], "qualifier": qualifier,
                         "major": bool(heading.get("major"))})
    return rows


def work_from_csl(item: dict[str, Any]) -> WorkRecord:
    """One CSL-JSON item of the seed as a ``corpus`` record.

    Curated facts kept: the study design (``custom.design``), ``unverified``, ``note`` (as
    ``curation_note``: a caveat of the corpus, not the user's note),
    PubMed publication types and MeSH headings, a review's included trials as printed (reference rows for
    :mod:`kb.ingest.resolve`); the whole item, with the pages it was read from
    (``custom.sources``), is the record's raw payload.
    """
    custom = item.get("custom") or {}
    ids = ref_for_id(item["id"])
    year, pub_date = _date(item)
    issn = _split(item.get("ISSN"), ",") + _split(custom.get("e_issn"), ",")
    record: WorkRecord = {
        "source": "corpus", "source_id": item["id"],
        "raw": json.dumps(item, ensure_ascii=False, sort_keys=True),
        "doi": normalize_doi(item["DOI"]) if item.get("DOI") else ids.get("doi"),
        "pmid": normalize_pmid(str(item["PMID"])) if item.get("PMID") else None,
        "pmcid": normalize_pmcid(item["PMCID"]) if item.get("PMCID") else None,
        "url": normalize_url(item["URL"]) if item.get("URL") else ids.get("url"),
        "title": item.get("title"), "journal": item.get("container-title"),
        "journal_abbrev": item.get("container-title-short"),
        "issn": "; ".join(dict.fromkeys(issn)) or None, "publisher": item.get("publisher"),
        "year": year, "pub_date": pub_date, "volume": item.get("volume"),
        "issue": item.get("issue"), "pages": item.get("page"),
        "type": _TYPES.get(item.get("type", ""), item.get("type")),
        "study_design": custom.get("design"), "unverified": bool(custom.get("unverified")),
        "curation_note": custom.get("note"),
        # a work known only from a citing page's list, without a title, waits to be fetched
        "status": "full" if item.get("title") else "stub",
        "authors": _authors(item), "keywords": _split(item.get("keyword"), ";"),
        "publication_types": list(custom.get("publication_types") or []),
        "mesh": _mesh(custom),
        "references": _included_trials(custom),
    }
    return {k: v for k, v in record.items() if v not in (None, "", [])}  # type: ignore[return-value]


def read_works(folder: Traversable | None = None) -> list[WorkRecord]:
    """Every work of ``works.json``, sorted by corpus id.

    :raises ParseError: the file is not a CSL-JSON array of items with ids.
    """
    folder = folder or seed_files()
    try:
        items = json.loads(folder.joinpath("works.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ParseError(f"seed works.json is not valid JSON: {exc}") from exc
    if not isinstance(items, list) or not all(isinstance(i, dict) and i.get("id") for i in items):
        raise ParseError("seed works.json must be a CSL-JSON array of items with an id")
    return [work_from_csl(item) for item in sorted(items, key=lambda i: i["id"])]


def _described(corpus_id: str, works: dict[str, WorkRecord]) -> WorkRef:
    """The ids of a work plus what the seed says of it (title, year, first author)."""
    ref = ref_for_id(corpus_id)
    work = works.get(corpus_id) or {}
    for field in ("title", "year"):
        if work.get(field):
            ref[field] = work[field]
    first = (work.get("authors") or [{}])[0]
    if first.get("family") or first.get("name"):
        ref["first_author"] = first.get("family") or first.get("name")
    return ref


def read_links(folder: Traversable | None = None) -> tuple[list[LinkRecord], list[Lineage]]:
    """The seed's ``cites`` rows as citation links (the cited end described as the seed
    describes it) and its ``pools`` rows as lineage, each sorted by (citing, cited)."""
    folder = folder or seed_files()
    works = {sid: w for w in read_works(folder) if (sid := w.get("source_id"))}
    rows = list(csv.DictReader(io.StringIO(
        folder.joinpath("citations.csv").read_text(encoding="utf-8"))))
    missing = {"citing", "cited", "relation", "source"} - set(rows[0] if rows else {})
    if missing:
        raise ParseError(f"seed citations.csv lacks columns: {', '.join(sorted(missing))}")
    links: list[LinkRecord] = []
    lineage: list[Lineage] = []
    for row in sorted(rows, key=lambda r: (r["citing"], r["cited"], r["relation"])):
        if row["relation"] == "cites":
            links.append({"citing": ref_for_id(row["citing"]),
                          "cited": _described(row["cited"], works), "source": "corpus"})
        elif row["relation"] == "pools":
            lineage.append(Lineage(row["citing"], row["cited"], "pools", row["source"]))
        else:
            raise ParseError(f"seed citations.csv: unknown relation {row['relation']!r}")
    return links, lineage


def read_trials(folder: Traversable | None = None) -> list[dict[str, Any]]:
    """The curated trial facts of ``trials.json`` as given, in a stable order."""
    folder = folder or seed_files()
    trials = json.loads(folder.joinpath("trials.json").read_text(encoding="utf-8"))
    return sorted(trials, key=lambda t: (t.get("doi") or "", t.get("work_id") or "",
                                         ";".join(t.get("registry_ids") or []),
                                         json.dumps(t, sort_keys=True)))
