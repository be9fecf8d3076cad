"""The plain record contract between scrapers and the store.

Scrapers fetch and parse into these dicts; only :mod:`kb.store` writes them to SQLite.
Every key is optional unless noted; absent and ``None`` both mean "this source does not say".
Strings are plain text (no markup), DOIs canonical (see :mod:`kb.identifiers`).
"""
from __future__ import annotations

from typing import Required, TypedDict

__all__ = ["AuthorRecord", "MeshRecord", "ReferenceRecord", "UpdateRecord", "AccessionRecord",
           "WorkRecord", "WorkRef", "LinkRecord", "SOURCES", "DIRECTIONS"]

#: Source names, highest precedence first (see :mod:`kb.store` for the merge rule).
SOURCES = ("crossref", "pubmed", "datacite", "doi.org", "openalex", "corpus", "webpage",
           "import", "reference")
#: Which way to follow citations: what works cite, who cites them, or both.
DIRECTIONS = ("refs", "cited-by", "both")


class AuthorRecord(TypedDict, total=False):
    family: str | None
    given: str | None        # given names, or initials when that is all a source has
    name: str | None         # a collective or literal name (a group, an institution)
    orcid: str | None        # bare 0000-0000-0000-0000
    affiliation: str | None  # affiliations joined with "; "


class MeshRecord(TypedDict, total=False):
    descriptor: str          # required
    descriptor_ui: str | None
    qualifier: str | None    # one row per descriptor/qualifier pair; None for the bare heading
    major: bool


class ReferenceRecord(TypedDict, total=False):
    position: int            # 1-based order in the citing work's reference list
    doi: str | None
    pmid: str | None
    pmcid: str | None
    openalex_id: str | None
    title: str | None        # article title (or journal title when that is all there is)
    journal: str | None
    year: int | None
    first_author: str | None  # family name
    volume: str | None
    first_page: str | None
    unstructured: str | None  # the reference as printed
    url: str | None           # a cited page with no other identifier (it becomes a work)


class UpdateRecord(TypedDict, total=False):
    kind: str                 # retraction, correction, erratum, expression-of-concern, new-version, ...
    direction: str            # "updated-by": the notice is elsewhere; "update-to": this work is the notice
    doi: str | None           # the other work
    pmid: str | None
    label: str | None         # as the source words it
    source: str | None


class AccessionRecord(TypedDict, total=False):
    bank: str                 # e.g. ClinicalTrials.gov, IRCT
    accession: str            # e.g. NCT01234567


class WorkRecord(TypedDict, total=False):
    # where it came from (source is required)
    source: str               # one of SOURCES
    source_id: str | None     # the source's own id for the payload (DOI, PMID, URL, ...)
    source_url: str | None    # the URL the payload was fetched from
    fetched_at: str | None    # ISO 8601 UTC
    raw: str | None           # the payload as returned, kept in the records table
    # identity
    doi: str | None
    pmid: str | None
    pmcid: str | None
    openalex_id: str | None
    url: str | None
    # description
    title: str | None
    subtitle: str | None
    abstract: str | None
    journal: str | None
    journal_abbrev: str | None
    issn: str | None          # ISSNs joined with "; "
    publisher: str | None
    year: int | None
    pub_date: str | None      # ISO, partial allowed: 2021, 2021-08, 2021-08-06
    volume: str | None
    issue: str | None
    pages: str | None
    language: str | None
    type: str | None          # journal-article, review?, book-chapter, web-article, dataset, ...
    license: str | None
    cited_by_count: int | None
    is_retracted: bool | None
    study_design: str | None  # set only by a curated source; otherwise derived
    status: str | None        # "full" (default) or "stub" (known only as a reference)
    unverified: bool | None   # rests on a weak source; show, never present as confirmed
    note: str | None          # the user's own note (exports carry it)
    curation_note: str | None  # a curation caveat of the corpus ("Title NOT seen…"); not exported
    # lists: a list replaces the stored one when the source is allowed to set it
    authors: list[AuthorRecord]
    mesh: list[MeshRecord]
    keywords: list[str]
    publication_types: list[str]
    references: list[ReferenceRecord]
    updates: list[UpdateRecord]
    accessions: list[AccessionRecord]


class WorkRef(TypedDict, total=False):
    """A work named by an edge: ids plus whatever a source says of it."""

    doi: str | None
    pmid: str | None
    pmcid: str | None
    openalex_id: str | None
    url: str | None
    title: str | None
    year: int | None
    first_author: str | None


class LinkRecord(TypedDict, total=False):
    """A citation edge from a cited-by / references service (no reference text)."""

    citing: Required[WorkRef]
    cited: Required[WorkRef]
    source: Required[str]     # openalex, opencitations, pubmed, corpus, ...
