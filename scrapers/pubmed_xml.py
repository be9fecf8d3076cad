"""The one streaming parser for PubMed XML: efetch responses, baseline and update files alike.

:func:`parse_pubmed_xml` walks a ``PubmedArticleSet`` with lxml ``iterparse``, turns each
``PubmedArticle`` / ``PubmedBookArticle`` into a :class:`kb.records.WorkRecord` and clears it,
so memory stays flat whatever the file size. ``DeleteCitation`` PMIDs (the tail of update
files) come out as :class:`Deletion` markers. Entities are never expanded and nothing is
fetched: a document whose DTD declares entities (the "billion laughs" shape, external
entities) is refused before parsing starts.
"""
from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple, Union

from kb.errors import ParseError
from kb.identifiers import find_dois, normalize_doi, normalize_pmcid, normalize_pmid
from kb.records import AuthorRecord, MeshRecord, ReferenceRecord, UpdateRecord, WorkRecord

__all__ = ["Deletion", "parse_pubmed_xml", "is_pubmed_xml", "UPDATE_KINDS"]

Source = Union[str, Path, bytes, IO[bytes]]


class Deletion(NamedTuple):
    """A ``DeleteCitation`` entry: the record with this PMID is withdrawn from PubMed."""

    pmid: str


#: CommentsCorrections RefType -> (update kind, direction). Comments, reprints and
#: associated data are not editorial updates and are left out.
UPDATE_KINDS: dict[str, tuple[str, str]] = {
    "RetractionIn": ("retraction", "updated-by"),
    "RetractionOf": ("retraction", "update-to"),
    "RetractedandRepublishedIn": ("retraction", "updated-by"),
    "RetractedandRepublishedFrom": ("retraction", "update-to"),
    "ErratumIn": ("erratum", "updated-by"),
    "ErratumFor": ("erratum", "update-to"),
    "CorrectedandRepublishedIn": ("correction", "updated-by"),
    "CorrectedandRepublishedFrom": ("correction", "update-to"),
    "ExpressionOfConcernIn": ("expression-of-concern", "updated-by"),
    "ExpressionOfConcernFor": ("expression-of-concern", "update-to"),
    "UpdateIn": ("new-version", "updated-by"),
    "UpdateOf": ("new-version", "update-to"),
    "RepublishedIn": ("republished", "updated-by"),
    "RepublishedFrom": ("republished", "update-to"),
}
_MONTHS = {name: f"{i:02d}" for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_YEAR = re.compile(r"(1[5-9]\d\d|2\d\d\d)")
_MEDLINE_DATE = re.compile(r"(\d{4})\s*([A-Za-z]{3})?")
_ORCID = re.compile(r"(\d{4})-?(\d{4})-?(\d{4})-?(\d{3}[\dXx])\s*$")
_HEAD = 1 << 16
_INTERNAL_SUBSET = re.compile(r"<!DOCTYPE[^\[>]*\[")
_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")


# -- opening the input safely ---------------------------------------------------------------

def _open(source: Source) -> tuple[IO[bytes], str]:
    """A binary stream over the (possibly gzipped) XML, and a name for error messages."""
    if isinstance(source, (str, Path)):
        try:
            stream: IO[bytes] = open(source, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise ParseError(f"cannot read {source}: {exc.strerror or exc}") from exc
        name = str(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        stream, name = io.BytesIO(bytes(source)), "PubMed XML"
    else:
        name = getattr(source, "name", "PubMed XML")
        stream = source if source.seekable() else io.BytesIO(source.read())
    magic = stream.read(2)
    stream.seek(0)
    if magic == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
    return stream, name


class _Checked(io.RawIOBase):
    """Refuses a document whose DTD declares entities, before lxml sees any of it."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self._stream, self._name, self._head = stream, name, b""
        head = self._read(_HEAD)
        self._check(head)
        self._head = head

    def _read(self, size: int) -> bytes:
        try:
            return self._stream.read(size)
        except (EOFError, OSError, zlib.error) as exc:
            raise ParseError(f"{self._name}: broken or truncated compressed data ({exc})") from exc

    def _check(self, head: bytes) -> None:
        text = head.decode("utf-16") if head[:2] in (b"\xff\xfe", b"\xfe\xff") else \
            head.decode("latin-1")
        if "<!ENTITY" in text:
            raise ParseError(f"{self._name}: the document declares XML entities; kb refuses "
                             "entity expansion and external entities")
        subset = _INTERNAL_SUBSET.search(text)
        if subset and not re.search(r"\]\s*>", text[subset.end():]):
            raise ParseError(f"{self._name}: the DOCTYPE internal subset is too long to check")

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._read(size)
        if size < 0:
            head, self._head = self._head, b""
            return head + self._read(-1)
        head, self._head = self._head[:size], self._head[size:]
        return head

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def is_pubmed_xml(head: bytes) -> bool:
    """True when the first bytes of a file (gunzipped) look like a PubmedArticleSet.

    >>> is_pubmed_xml(b'<?xml version="1.0"?>\\n<!DOCTYPE PubmedArticleSet PUBLIC "x" "y">')
    True
    >>> is_pubmed_xml(b'TY  - JOUR')
    False
    """
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4096)
        except zlib.error:
            return False
    text = head[:4096].decode("utf-8", "replace")
    return bool(re.search(r"<(?:!DOCTYPE\s+)?PubmedArticleSet[\s>]|<PubmedArticle[\s>]|"
                          r"<PubmedBookArticle[\s>]", text))


# -- text helpers ---------------------------------------------------------------------------

def _text(el: Any) -> str:
    """The element's text with inline markup flattened and whitespace collapsed."""
    if el is None:
        return ""
    if len(el):
        return " ".join("".join(el.itertext()).split())
    return " ".join(el.text.split()) if el.text else ""


def _pmid(value: str | None) -> str | None:
    """A PMID from an element's text: the plain-digits case fast, the rest by kb.identifiers."""
    value = (value or "").strip()
    if value.isdigit() and len(value) <= 9:
        return str(int(value)) if int(value) else None
    return normalize_pmid(value)


def _orcid(value: str) -> str | None:
    match = _ORCID.search(value.strip())
    return "-".join(match.groups()).upper() if match else None


def _date(el: Any) -> tuple[int | None, str | None]:
    """(year, ISO partial date) from a PubDate / ArticleDate element."""
    if el is None:
        return None, None
    year = month = day = None
    for child in el:
        tag = child.tag
        if tag == "Year":
            year = (child.text or "").strip()
        elif tag == "Month":
            month = (child.text or "").strip()
        elif tag == "Day":
            day = (child.text or "").strip()
        elif tag == "MedlineDate":
            match = _MEDLINE_DATE.search(child.text or "")
            if match:
                year = match.group(1)
                month = match.group(2)
    if not year or not _YEAR.fullmatch(year):
        return None, None
    iso = year
    if month:
        month = _MONTHS.get(month[:3].lower()) or (f"{int(month):02d}" if month.isdigit()
                                                  and 1 <= int(month) <= 12 else None)
        if month:
            iso += f"-{month}"
            if day and day.isdigit() and 1 <= int(day) <= 31:
                iso += f"-{int(day):02d}"
    return int(year), iso


def _authors(author_list: Any) -> list[AuthorRecord]:
    authors: list[AuthorRecord] = []
    for author in author_list:
        if author.tag != "Author" or author.get("ValidYN") == "N":
            continue
        record: AuthorRecord = {}
        affiliations = []
        initials = None
        for part in author:
            tag = part.tag
            if tag == "LastName":
                record["family"] = _text(part)
            elif tag == "ForeName":
                record["given"] = _text(part)
            elif tag == "Initials":
                initials = _text(part)
            elif tag == "CollectiveName":
                record["name"] = _text(part)
            elif tag == "Identifier":
                if (part.get("Source") or "").upper() == "ORCID" and part.text:
                    orcid = _orcid(part.text)
                    if orcid:
                        record["orcid"] = orcid
            elif tag == "AffiliationInfo":
                for aff in part:
                    if aff.tag == "Affiliation":
                        value = _text(aff)
                        if value and value not in affiliations:
                            affiliations.append(value)
        if not record.get("given") and initials:
            record["given"] = initials
        if affiliations:
            record["affiliation"] = "; ".join(affiliations)
        if record.get("family") or record.get("name"):
            authors.append(record)
    return authors


def _abstract(abstract: Any) -> str | None:
    parts = []
    for section in abstract:
        if section.tag != "AbstractText":
            continue
        text = _text(section)
        if not text:
            continue
        label = (section.get("Label") or "").strip()
        parts.append(f"{label}: {text}" if label and label != "UNASSIGNED" else text)
    return "\n".join(parts) or None


def _article_ids(id_list: Any, into: dict[str, Any]) -> None:
    """Fill doi / pmid / pmcid from an ArticleIdList (first valid value of each wins)."""
    for article_id in id_list:
        kind = article_id.get("IdType")
        value = article_id.text
        if not value:
            continue
        if kind == "doi" and "doi" not in into:
            doi = normalize_doi(value)
            if doi:
                into["doi"] = doi
        elif kind == "pubmed" and "pmid" not in into:
            pmid = _pmid(value)
            if pmid:
                into["pmid"] = pmid
        elif kind in ("pmc", "pmcid") and "pmcid" not in into:
            pmcid = normalize_pmcid(value)
            if pmcid:
                into["pmcid"] = pmcid


def _references(reference_list: Any, refs: list[ReferenceRecord]) -> None:
    for item in reference_list:
        tag = item.tag
        if tag == "ReferenceList":
            _references(item, refs)
        elif tag == "Reference":
            ref: dict[str, Any] = {}
            for part in item:
                if part.tag == "Citation":
                    citation = _text(part)
                    if citation:
                        ref["unstructured"] = citation
                elif part.tag == "ArticleIdList":
                    _article_ids(part, ref)
            if ref:
                ref["position"] = len(refs) + 1
                refs.append(ref)  # type: ignore[arg-type]


def _mesh(heading_list: Any) -> list[MeshRecord]:
    """One row per descriptor/qualifier pair; the bare descriptor when it has no qualifier."""
    rows: list[MeshRecord] = []
    for heading in heading_list:
        descriptor: dict[str, Any] | None = None
        qualifiers = []
        for part in heading:
            if part.tag == "DescriptorName":
                descriptor = {"descriptor": _text(part), "descriptor_ui": part.get("UI"),
                              "qualifier": None, "major": part.get("MajorTopicYN") == "Y"}
            elif part.tag == "QualifierName":
                qualifiers.append((_text(part), part.get("MajorTopicYN") == "Y"))
        if descriptor is None or not descriptor["descriptor"]:
            continue
        if not qualifiers:
            rows.append(descriptor)  # type: ignore[arg-type]
        for name, major in qualifiers:
            rows.append({**descriptor, "qualifier": name or None,  # type: ignore[typeddict-item]
                         "major": descriptor["major"] or major})
    return rows


def _comments(comments_list: Any, record: dict[str, Any]) -> None:
    updates: list[UpdateRecord] = []
    cites: list[ReferenceRecord] = []
    for item in comments_list:
        ref_type = item.get("RefType") or ""
        if ref_type != "Cites" and ref_type not in UPDATE_KINDS:
            continue
        ref_source = pmid = None
        for part in item:
            if part.tag == "RefSource":
                ref_source = _text(part)
            elif part.tag == "PMID" and part.text:
                pmid = _pmid(part.text)
        if ref_type == "Cites":
            if pmid or ref_source:
                cites.append({"pmid": pmid, "unstructured": ref_source or None})
            continue
        kind, direction = UPDATE_KINDS[ref_type]
        dois = find_dois(ref_source or "")
        updates.append({"kind": kind, "direction": direction, "pmid": pmid,
                        "doi": dois[0] if dois else None, "label": ref_type,
                        "source": "pubmed"})
    if updates:
        record["updates"] = updates
    if cites:
        record["_cites"] = cites


def _journal(journal: Any, record: dict[str, Any]) -> None:
    issns = []
    for part in journal:
        tag = part.tag
        if tag == "ISSN":
            if part.text and part.text.strip() not in issns:
                issns.append(part.text.strip())
        elif tag == "JournalIssue":
            for item in part:
                if item.tag == "Volume":
                    if item.text:
                        record["volume"] = item.text.strip()
                elif item.tag == "Issue":
                    if item.text:
                        record["issue"] = item.text.strip()
                elif item.tag == "PubDate":
                    year, iso = _date(item)
                    if year:
                        record["year"], record["pub_date"] = year, iso
        elif tag == "Title":
            record["journal"] = _text(part)
        elif tag == "ISOAbbreviation":
            record["journal_abbrev"] = _text(part)
    if issns:
        record["_issns"] = issns


def _pages(pagination: Any) -> str | None:
    start = end = None
    for part in pagination:
        if part.tag == "MedlinePgn" and part.text and part.text.strip():
            return part.text.strip()
        if part.tag == "StartPage":
            start = (part.text or "").strip()
        elif part.tag == "EndPage":
            end = (part.text or "").strip()
    if start:
        return f"{start}-{end}" if end else start
    return None


def _common(el: Any, record: dict[str, Any], tag: str) -> bool:
    """Fields shared by Article and BookDocument children; True if ``tag`` was handled."""
    if tag == "ArticleTitle":
        title = _text(el)
        if title:
            record["title"] = title
    elif tag == "VernacularTitle":
        record["_vernacular"] = _text(el)
    elif tag == "Abstract":
        abstract = _abstract(el)
        if abstract:
            record["abstract"] = abstract
    elif tag == "AuthorList":
        if el.get("Type") != "editors":
            record.setdefault("authors", []).extend(_authors(el))
    elif tag == "Language":
        if el.text and "language" not in record:
            record["language"] = el.text.strip()
    elif tag == "PublicationTypeList":
        record["publication_types"] = [t for t in (_text(p) for p in el) if t]
    elif tag == "PublicationType":  # a BookDocument lists them without a PublicationTypeList
        publication_type = _text(el)
        if publication_type:
            record.setdefault("publication_types", []).append(publication_type)
    elif tag == "ELocationID":
        if el.get("EIdType") == "doi" and el.get("ValidYN") != "N" and el.text \
                and "_elocation_doi" not in record:
            doi = normalize_doi(el.text)
            if doi:
                record["_elocation_doi"] = doi
    elif tag == "KeywordList":
        record.setdefault("keywords", []).extend(k for k in (_text(k) for k in el) if k)
    elif tag == "ReferenceList":
        _references(el, record.setdefault("references", []))
    else:
        return False
    return True


def _article(article: Any, record: dict[str, Any]) -> None:
    for el in article:
        tag = el.tag
        if _common(el, record, tag):
            continue
        if tag == "Journal":
            _journal(el, record)
        elif tag == "Pagination":
            pages = _pages(el)
            if pages:
                record["pages"] = pages
        elif tag == "DataBankList":
            accessions = record.setdefault("accessions", [])
            for bank in el:
                name = None
                for part in bank:
                    if part.tag == "DataBankName":
                        name = _text(part)
                    elif part.tag == "AccessionNumberList" and name:
                        accessions.extend({"bank": name, "accession": _text(n)}
                                          for n in part if _text(n))
        elif tag == "ArticleDate" and "_article_date" not in record:
            record["_article_date"] = _date(el)


def _medline_citation(medline: Any, record: dict[str, Any]) -> None:
    for el in medline:
        tag = el.tag
        if tag == "PMID":
            record["pmid"] = _pmid(el.text)
        elif tag == "Article":
            _article(el, record)
        elif tag == "MedlineJournalInfo":
            for part in el:
                if part.tag == "MedlineTA":
                    record["_medline_ta"] = _text(part)
                elif part.tag == "ISSNLinking" and part.text:
                    record["_issn_linking"] = part.text.strip()
        elif tag == "MeshHeadingList":
            record["mesh"] = _mesh(el)
        elif tag == "KeywordList":
            record.setdefault("keywords", []).extend(k for k in (_text(k) for k in el) if k)
        elif tag == "CommentsCorrectionsList":
            _comments(el, record)


def _pubmed_data(data: Any, record: dict[str, Any], ids: dict[str, Any]) -> None:
    for el in data:
        tag = el.tag
        if tag == "ArticleIdList":
            _article_ids(el, ids)
        elif tag == "ReferenceList":
            _references(el, record.setdefault("references", []))


def _book_document(book_doc: Any, record: dict[str, Any], ids: dict[str, Any]) -> None:
    for el in book_doc:
        tag = el.tag
        if _common(el, record, tag):
            continue
        if tag == "PMID":
            record["pmid"] = _pmid(el.text)
        elif tag == "ArticleIdList":
            _article_ids(el, ids)
        elif tag == "Book":
            for part in el:
                ptag = part.tag
                if ptag == "Publisher":
                    for item in part:
                        if item.tag == "PublisherName":
                            record["publisher"] = _text(item)
                elif ptag == "BookTitle":
                    record["_book_title"] = _text(part)
                elif ptag == "PubDate":
                    year, iso = _date(part)
                    if year:
                        record["year"], record["pub_date"] = year, iso
                elif ptag == "Volume" and part.text:
                    record["volume"] = part.text.strip()
                elif ptag == "AuthorList" and part.get("Type") != "editors":
                    record["_book_authors"] = _authors(part)
                elif ptag == "Isbn" and part.text:
                    record.setdefault("_issns", []).append(part.text.strip())


def _finish(record: dict[str, Any], ids: dict[str, Any]) -> WorkRecord:
    """Resolve the helper keys (prefixed ``_``) into WorkRecord fields."""
    elocation = record.pop("_elocation_doi", None)
    if ids.get("doi") or elocation:
        record["doi"] = ids.get("doi") or elocation
    if ids.get("pmcid"):
        record["pmcid"] = ids["pmcid"]
    if not record.get("pmid") and ids.get("pmid"):
        record["pmid"] = ids["pmid"]
    vernacular = record.pop("_vernacular", None)
    if not record.get("title") and vernacular:
        record["title"] = vernacular
    medline_ta = record.pop("_medline_ta", None)
    if not record.get("journal_abbrev") and medline_ta:
        record["journal_abbrev"] = medline_ta
    issns = record.pop("_issns", [])
    linking = record.pop("_issn_linking", None)
    if linking and linking not in issns:
        issns.append(linking)
    if issns:
        record["issn"] = "; ".join(issns)
    article_date = record.pop("_article_date", None)
    if not record.get("year") and article_date and article_date[0]:
        record["year"], record["pub_date"] = article_date
    cites = record.pop("_cites", None)
    if cites:
        refs = record.setdefault("references", [])
        known = {r.get("pmid") for r in refs if r.get("pmid")}
        for cite in cites:
            if cite.get("pmid") not in known or not cite.get("pmid"):
                refs.append({**cite, "position": len(refs) + 1})
    if "references" in record and not record["references"]:
        del record["references"]
    types = record.get("publication_types") or []
    if "Retracted Publication" in types or any(
            u["kind"] == "retraction" and u["direction"] == "updated-by"
            for u in record.get("updates") or []):
        record["is_retracted"] = True
    for key in ("keywords", "authors", "accessions"):
        if key in record and not record[key]:
            del record[key]
    if record.get("keywords"):
        record["keywords"] = list(dict.fromkeys(record["keywords"]))
    record["source_id"] = record.get("pmid")
    return record  # type: ignore[return-value]


def _article_record(el: Any, raw: bool) -> WorkRecord:
    record: dict[str, Any] = {"source": "pubmed", "type": "journal-article"}
    ids: dict[str, Any] = {}
    for part in el:
        if part.tag == "MedlineCitation":
            _medline_citation(part, record)
        elif part.tag == "PubmedData":
            _pubmed_data(part, record, ids)
    if raw:
        record["raw"] = _raw(el)
    return _finish(record, ids)


def _book_record(el: Any, raw: bool) -> WorkRecord:
    record: dict[str, Any] = {"source": "pubmed"}
    ids: dict[str, Any] = {}
    for part in el:
        if part.tag == "BookDocument":
            _book_document(part, record, ids)
        elif part.tag == "PubmedBookData":
            for item in part:
                if item.tag == "ArticleIdList":
                    _article_ids(item, ids)
    book_title = record.pop("_book_title", None)
    book_authors = record.pop("_book_authors", None)
    if record.get("title") and book_title and record["title"] != book_title:
        record["type"] = "book-chapter"
        record["journal"] = book_title
    else:
        record["type"] = "book"
        record["title"] = record.get("title") or book_title
    if not record.get("authors") and book_authors:
        record["authors"] = book_authors
    if raw:
        record["raw"] = _raw(el)
    return _finish(record, ids)


def _raw(el: Any) -> str:
    from lxml import etree
    return etree.tostring(el, encoding="unicode", with_tail=False)


# -- the parser -----------------------------------------------------------------------------

def parse_pubmed_xml(source: Source, *, raw: bool = False
                     ) -> Iterator[WorkRecord | Deletion]:
    """Yield a WorkRecord for each PubmedArticle / PubmedBookArticle, and a
    :class:`Deletion` for each PMID under DeleteCitation, in document order.

    :param source: a path (``.xml`` or ``.xml.gz``, detected from the content), the bytes of
        a document, or a binary file object.
    :param raw: keep each record's XML in ``raw`` (costs time and space on bulk imports).
    :raises ParseError: the input is not well-formed XML, is truncated, is not a
        PubmedArticleSet, or declares entities.
    """
    from lxml import etree

    stream, name = _open(source)
    try:
        checked = _Checked(stream, name)
        context = etree.iterparse(checked, events=("end",), tag=_TAGS, resolve_entities=False,
                                  no_network=True, load_dtd=False, huge_tree=False,
                                  remove_comments=True, remove_pis=True)
        root_checked = False
        try:
            for _, el in context:
                if not root_checked:
                    root = el.getroottree().getroot()
                    if root.tag != "PubmedArticleSet":
                        raise ParseError(f"{name}: not PubMed XML (root element <{root.tag}>)")
                    root_checked = True
                tag = el.tag
                if tag == "PubmedArticle":
                    yield _article_record(el, raw)
                elif tag == "PubmedBookArticle":
                    yield _book_record(el, raw)
                else:
                    for pmid_el in el:
                        pmid = _pmid(pmid_el.text) if pmid_el.tag == "PMID" else None
                        if pmid:
                            yield Deletion(pmid)
                el.clear(keep_tail=False)
                parent = el.getparent()
                if parent is not None:
                    while el.getprevious() is not None:
                        del parent[0]
            if not root_checked:
                root = context.root
                if root is None or root.tag != "PubmedArticleSet":
                    raise ParseError(f"{name}: not PubMed XML (no PubmedArticleSet)")
        except etree.XMLSyntaxError as exc:
            raise ParseError(f"{name}: not well-formed or truncated XML: {exc}") from exc
        except (EOFError, zlib.error) as exc:
            raise ParseError(f"{name}: broken or truncated compressed data ({exc})") from exc
    finally:
        stream.close()
