"""Bibliographic file formats: read what researchers already have, write what their tools read.

Readers yield plain records (:class:`kb.records.WorkRecord`, or :class:`kb.records.LinkRecord`
for citation CSVs) with ``source="import"``; :mod:`kb.store` writes them. Writers take
:class:`ExportRecord` (a work record plus its citation ``key``) and a text stream.

==================  ======  ======  ==========================================================
format              read    write   what it is
==================  ======  ======  ==========================================================
``bibtex``          yes     yes     BibTeX / BibLaTeX (``@article{key, …}``)
``ris``             yes     yes     RIS (``TY  - JOUR`` … ``ER  -``), as Zotero/EndNote/Mendeley
``csljson``         yes     yes     CSL-JSON array (Zotero, citeproc, pandoc)
``nbib``            yes     yes     PubMed's MEDLINE text export (``PMID- …``, ``.nbib``/``.txt``)
``citations-csv``   yes     yes     citation pairs ``citing,cited`` (OpenCitations; kb corpus
                                    ``citing,cited,relation,source``); written by
                                    :func:`kb.query.export.export_citations`
``csv``             yes     yes     one work per row, kb's column names
``jsonl``           yes     yes     one work record per line (every field)
``pubmed-xml``      detect  no      PubMed/MEDLINE XML: read by kb's PubMed importer
==================  ======  ======  ==========================================================

``detect(path)`` looks at the content (gzip is opened transparently), not only the name.
"""
from __future__ import annotations

import bz2
import codecs
import csv
import functools
import gzip
import io
import lzma
import re
import stat
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TextIO, cast

from ..errors import InputError, ParseError
from ..records import AuthorRecord, LinkRecord, WorkRecord

__all__ = ["ExportRecord", "READ_FORMATS", "WRITE_FORMATS", "detect", "read", "write",
           "base_key", "open_text", "split_name", "bound", "lines", "read_whole",
           "regular_file", "MAX_BYTES"]


class ExportRecord(WorkRecord, total=False):
    """A work as exported: its record fields plus a stable citation key."""

    key: str


#: Formats :func:`read` understands (``pubmed-xml`` is only detected here).
READ_FORMATS = ("bibtex", "ris", "csljson", "nbib", "citations-csv", "csv", "jsonl")
WRITE_FORMATS = ("bibtex", "ris", "csljson", "nbib", "csv", "jsonl")
_SNIFF = 16384
#: kb's work types (``works.type``).
KB_TYPES = ("journal-article", "book", "book-chapter", "proceedings-article", "dissertation",
            "report", "web-article", "dataset", "posted-content", "other")

#: A file (after decompression) may hold at most this many bytes: a bigger one, or a
#: compressed file that inflates past it (a decompression bomb), is refused.
MAX_BYTES = 256 << 20
#: Formats read whole (BibTeX, CSL-JSON) are refused past this many characters.
MAX_WHOLE = 64 << 20
#: Lines longer than this are cut (a field then exceeds its bound and says so).
MAX_LINE = 1 << 20
#: Text fields are cut to these many characters by :func:`bound`; other text fields to 4 KiB.
FIELD_LIMITS = {"abstract": 100_000, "note": 100_000}
_FIELD_LIMIT = 4096
_LONG = ("title", "abstract", "journal", "subtitle", "note", "publisher")
#: At most this many authors, keywords, MeSH rows, ... per record (:func:`bound`).
LIST_LIMIT = 10_000
#: The text encodings :func:`open_text` reads, in the order it tries them.
ENCODINGS = ("UTF-8 (with or without a byte-order mark)", "UTF-16 with a byte-order mark",
             "cp1252 (Windows Western European, which covers Latin-1's letters)")

_HIGH = bytes(range(0x80, 0x100))
_HIGH_RUN = re.compile(rb"[\x80-\xff]{3,}")
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}


def regular_file(path: str | Path) -> Path:
    """``path`` if it names a regular file kb may read (not a FIFO, socket or device, which
    could block or never end).

    :raises InputError: missing, a folder, or not a regular file.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(mode):
        raise InputError(f"{path} is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path} is not a regular file (a pipe, socket or device): kb "
                         "imports files only")
    return path


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzip, bzip2 or xz (told by its content)."""
    with path.open("rb") as handle:
        magic = handle.read(6)
    kind = next((k for m, k in _COMPRESSED.items() if magic.startswith(m)), None)
    if kind == "gzip":
        return cast(IO[bytes], gzip.open(path, "rb"))  # typeshed: GzipFile is no IO[bytes]
    if kind == "bzip2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    return path.open("rb")


def _encoding(path: Path) -> str:
    stat_ = path.stat()
    return _checked_encoding(path, stat_.st_size, stat_.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _checked_encoding(path: Path, size: int, mtime_ns: int) -> str:
    """Read the whole (decompressed) file once; the codec to read it with.

    :raises InputError: the file is cut short or broken (compressed), inflates past
        :data:`MAX_BYTES`, or is in none of :data:`ENCODINGS`.
    """
    total = high = runs = 0
    codec = "utf-8-sig"
    try:
        with _open_binary(path) as raw:
            chunk = raw.read(1 << 20)
            if chunk[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                codec = "utf-16"
            decoder = codecs.getincrementaldecoder(codec)()
            while chunk:
                total += len(chunk)
                if total > MAX_BYTES:
                    raise InputError(
                        f"{path} holds more than {MAX_BYTES >> 20} MiB (decompressed): kb "
                        "refuses it as a possible decompression bomb; split it into smaller "
                        "files")
                if codec != "cp1252":
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError:
                        if codec == "utf-16":
                            raise InputError(f"{path} is not valid UTF-16 text") from None
                        codec = "cp1252"
                if codec != "utf-16" and b"\x00" in chunk:
                    raise InputError(f"{path} is binary, or UTF-16 without a byte-order mark",
                                     hint="save it as UTF-8")
                if codec == "cp1252":
                    try:
                        chunk.decode("cp1252")
                    except UnicodeDecodeError:
                        raise InputError(f"{path} is neither UTF-8, UTF-16 nor cp1252 text",
                                         hint="save it as UTF-8") from None
                    high += len(chunk) - len(chunk.translate(None, _HIGH))
                    runs += sum(len(m) for m in _HIGH_RUN.findall(chunk))
                chunk = raw.read(1 << 20)
            if codec != "cp1252":
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    codec = "cp1252" if codec == "utf-8-sig" else codec
    except (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as exc:
        raise ParseError(f"{path}: the compressed file is cut short or broken ({exc})") from exc
    except OSError as exc:  # bz2 reports a broken stream as OSError("Invalid data stream")
        if exc.errno is None:
            raise ParseError(f"{path}: the compressed file is broken ({exc})") from exc
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if codec == "cp1252" and runs > high // 2:
        # Western European text has its accented letters between ASCII ones; runs of
        # non-ASCII bytes are a multi-byte encoding's characters, which cp1252 would garble
        raise InputError(f"{path} is not UTF-8 and looks like a multi-byte encoding (such as "
                         "GBK or Shift-JIS), not cp1252", hint="save it as UTF-8")
    return codec


def open_text(path: str | Path) -> TextIO:
    """Open a file as text: gzip / bzip2 / xz are decompressed, the text is decoded as
    :data:`ENCODINGS` lists (a file in none of them is refused, never read as mojibake).

    :raises InputError: the file is missing, not a regular file, too big, cut short, or in
        none of the encodings.
    """
    path = regular_file(path)
    codec = _encoding(path)
    return io.TextIOWrapper(_open_binary(path), encoding=codec, newline="")


def lines(handle: TextIO) -> Iterator[str]:
    """The handle's lines (line ends kept), each cut to :data:`MAX_LINE` characters."""
    while line := handle.readline(MAX_LINE):
        if len(line) == MAX_LINE and not line.endswith("\n"):
            while (rest := handle.readline(MAX_LINE)) and not rest.endswith("\n"):
                pass
            line += "\n"
        yield line


def read_whole(handle: TextIO, what: str) -> str:
    """The handle's whole text, refused past :data:`MAX_WHOLE` characters.

    :raises ParseError: the text is longer.
    """
    text = handle.read(MAX_WHOLE + 1)
    if len(text) > MAX_WHOLE:
        raise ParseError(f"more than {MAX_WHOLE >> 20} MiB of {what}, which kb reads whole: "
                         "split it into smaller files")
    return text


def bound(record: WorkRecord, *, deep: bool = True) -> list[str]:
    """Cut over-long text fields and lists in place (:data:`FIELD_LIMITS`,
    :data:`LIST_LIMIT`; with ``deep``, also the text inside list items such as authors;
    without, only the long free-text fields); return what was cut, for a warning.

    >>> record = {"title": "x" * 5000, "keywords": ["a"] * 10}
    >>> bound(record), len(record["title"])
    (['title cut from 5,000 to 4,096 characters'], 4096)
    """
    cut: list[str] = []
    fields: dict = record  # type: ignore[assignment]
    if not deep:  # the long free-text fields only (a bulk import's fast path)
        fields = {name: fields[name] for name in _LONG if name in fields}
    for name, value in fields.items():
        if value.__class__ is str:
            if len(value) > _FIELD_LIMIT and len(value) > FIELD_LIMITS.get(name, _FIELD_LIMIT):
                limit = FIELD_LIMITS.get(name, _FIELD_LIMIT)
                record[name] = value[:limit]  # type: ignore[literal-required]
                cut.append(f"{name} cut from {len(value):,} to {limit:,} characters")
        elif value.__class__ is list:
            if len(value) > LIST_LIMIT:
                cut.append(f"{name} cut from {len(value):,} to {LIST_LIMIT:,} items")
                del value[LIST_LIMIT:]
            if deep:
                cut.extend(f"a {name} item cut from {size:,} characters"
                           for size in _bound_items(value))
    return cut


def _bound_items(items: list) -> Iterator[int]:
    """Cut long strings in a list, or in its dicts' values; yield each cut string's size."""
    for index, item in enumerate(items):
        if item.__class__ is str:
            if len(item) > _FIELD_LIMIT:
                items[index] = item[:_FIELD_LIMIT]
                yield len(item)
        elif item.__class__ is dict:
            for key, text in item.items():
                if text.__class__ is str and len(text) > _FIELD_LIMIT:
                    item[key] = text[:_FIELD_LIMIT]
                    yield len(text)


def _head(path: Path) -> str:
    with open_text(path) as handle:
        return handle.read(_SNIFF)


def detect(path: str | Path) -> str:
    """The format of a file, from its content (the extension only breaks ties).

    Returns one of :data:`READ_FORMATS` or ``"pubmed-xml"``.

    :raises InputError: the file is missing, empty, or in no format kb reads.
    """
    path = Path(path)
    head = _head(path)
    text = head.lstrip()
    if not text:
        raise InputError(f"{path} is empty")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    while len(lines) > 1 and re.fullmatch(r"\d+\.?", lines[0]):
        lines.pop(0)  # Ovid numbers each RIS record ("1.", "2.", ...)
    first = lines[0]
    if text.startswith("<"):
        if re.search(r"<(PubmedArticleSet|PubmedArticle|MedlineCitationSet|MedlineCitation|"
                     r"PubmedBookArticle|DeleteCitation)[\s>]", head):
            return "pubmed-xml"
        raise InputError(f"{path} is XML but not PubMed XML",
                         hint="kb imports PubMed XML, RIS, BibTeX, CSL-JSON, MEDLINE (nbib), "
                              "citation CSV, CSV and JSON Lines")
    if re.match(r"^TY\s{1,2}-", first):
        return "ris"
    if re.match(r"^PMID-\s*\d", first) or (
            re.match(r"^[A-Z][A-Z0-9]{1,3}\s*-\s", first)
            and any(re.match(r"^(PMID|TI|FAU)\s*- ", line) for line in lines[:40])):
        return "nbib"
    if re.match(r"^@\s*[A-Za-z]+\s*[{(]", first) or (
            first.startswith("%") and re.search(r"^\s*@\s*[A-Za-z]+\s*[{(]", head, re.M)):
        return "bibtex"
    if first.startswith("["):
        return "csljson"
    if first.startswith("{"):
        return _json_kind(path, head)
    if "," in first or "\t" in first:
        header = {c.strip().strip('"').lower() for c in re.split(r"[,\t]", first)}
        if header & {"citing", "citing_id"} and header & {"cited", "cited_id"}:
            return "citations-csv"  # kb's, OpenCitations' (oci,citing,cited,…; citing_id,…)
        if header & {"doi", "pmid", "title", "article title", "pubmed id"}:
            return "csv"
    if re.search(r"^\s*@\s*[A-Za-z]+\s*[{(]", head, re.M):
        return "bibtex"  # BibTeX with free text before the first entry
    raise InputError(f"cannot tell the format of {path}",
                     hint="kb imports PubMed XML, RIS, BibTeX, CSL-JSON, MEDLINE (nbib), citation "
                          "CSV (citing,cited), CSV with a doi/pmid/title column and JSON Lines")


def _json_kind(path: Path, head: str) -> str:
    """A file starting with ``{``: CSL-JSON (one item) or JSON Lines (kb's own keys)."""
    import json
    first_line = head.split("\n", 1)[0].strip()
    try:
        item = json.loads(first_line)
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to be a record") from None
    except ValueError:
        try:
            with open_text(path) as handle:
                item = json.loads(read_whole(handle, "JSON"))
        except RecursionError:
            raise InputError(f"{path}: JSON nested too deeply to be a record") from None
        except ValueError as exc:
            raise InputError(f"{path} starts like JSON but is not valid JSON: {exc}") from exc
    if not isinstance(item, dict):
        raise InputError(f"cannot tell the format of {path}: JSON that is not a record")
    if item.keys() & {"container-title", "issued", "DOI", "PMID", "citation-key"} or \
            any(isinstance(a, dict) and "literal" in a for a in item.get("author") or []):
        return "csljson"
    return "jsonl"


def read(path: str | Path, fmt: str | None = None, *, source: str = "import"
         ) -> Iterator[WorkRecord | LinkRecord]:
    """Yield the records in a file (``fmt`` as :func:`detect` names it; detected if None).

    Work records carry ``source`` (``"import"`` unless told otherwise); citation CSVs yield
    :class:`~kb.records.LinkRecord` edges. Identifiers are normalised with
    :mod:`kb.identifiers`; a value a record does not give is absent.

    :raises InputError: an unknown format, or ``pubmed-xml`` (read by the PubMed importer).
    :raises ParseError: the content is broken (names the file and, where known, the line).
    """
    path = Path(path)
    fmt = fmt or detect(path)
    if fmt == "pubmed-xml":
        raise InputError(f"{path} is PubMed XML: kb's PubMed importer reads it (kb import)")
    reader = _readers().get(fmt)
    if reader is None:
        raise InputError(f"unknown format {fmt!r}", hint="formats: " + ", ".join(READ_FORMATS))
    with open_text(path) as handle:
        try:
            for record in reader(handle):
                if "citing" not in record:
                    record["source"] = source
                    if fmt not in ("csv", "jsonl") and \
                            record.get("pub_date") == str(record.get("year")):
                        del record["pub_date"]  # only the year again
                yield record
        except ParseError as exc:
            raise ParseError(f"{path}: {exc.args[0]}", hint=exc.hint) from exc
        except csv.Error as exc:  # a NUL byte, an oversized field, a broken quote
            raise ParseError(f"{path}: not readable as CSV: {exc}") from exc
        except RecursionError:
            raise ParseError(f"{path}: JSON nested too deeply to be a record") from None


def write(records: Iterable[ExportRecord], fmt: str, out: TextIO) -> int:
    """Write records to a text stream in ``fmt``; returns how many were written.

    :raises InputError: an unknown format.
    """
    writer = _writers().get(fmt)
    if writer is None:
        raise InputError(f"unknown export format {fmt!r}",
                         hint="formats: " + ", ".join(WRITE_FORMATS))
    return writer(records, out)


def _readers() -> dict[str, Callable[[TextIO], Iterator]]:
    from . import bibtex, citations_csv, csljson, nbib, ris, tabular
    return {"bibtex": bibtex.read, "ris": ris.read, "csljson": csljson.read, "nbib": nbib.read,
            "citations-csv": citations_csv.read, "csv": tabular.read_csv,
            "jsonl": tabular.read_jsonl}


def _writers() -> dict[str, Callable[[Iterable[ExportRecord], TextIO], int]]:
    from . import bibtex, csljson, nbib, ris, tabular
    return {"bibtex": bibtex.write, "ris": ris.write, "csljson": csljson.write,
            "nbib": nbib.write, "csv": tabular.write_csv, "jsonl": tabular.write_jsonl}


# -- shared helpers for the format modules --------------------------------------------------

_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_TITLE_WORD = re.compile(r"[^\s\-/:]+")
_STOPWORDS = frozenset("a an the of on in for and to with at by from is are as or its".split())


def _ascii_word(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_ALNUM.sub("", text.lower())


def base_key(record: WorkRecord) -> str:
    """The citation key before clashes: first author's family name, year, first title word.

    >>> base_key({"authors": [{"family": "Amanat", "given": "M"}], "year": 2021,
    ...           "title": "Clinical and imaging outcomes after intrathecal injection"})
    'amanat2021clinical'
    >>> base_key({"title": "The Cerebral palsy"})
    'anonndcerebral'
    """
    authors = record.get("authors") or []
    first = authors[0] if authors else {}
    name = _ascii_word(first.get("family") or "") or next(
        (w for w in map(_ascii_word, (first.get("name") or "").split()) if w and w not in _STOPWORDS),
        "anon")
    year = str(record.get("year")) if record.get("year") else "nd"
    words = (_ascii_word(m.group(0)) for m in _TITLE_WORD.finditer(record.get("title") or ""))
    word = next((w for w in words if w and w not in _STOPWORDS), "")
    return f"{name}{year}{word}"


def split_name(text: str) -> AuthorRecord:
    """``Family, Given`` as a person; a name without a comma, or whose parts are too long to be
    a person's (``The Royal College of Physicians, Faculty of …``), as a collective name.

    >>> split_name("Amanat, Man"), split_name("Cerebral Palsy Alliance")
    ({'family': 'Amanat', 'given': 'Man'}, {'name': 'Cerebral Palsy Alliance'})
    """
    family, comma, given = text.partition(",")
    if not comma or len(family.split()) > 4 or len(given.split()) > 4:
        return {"name": text.strip()}
    return prune({"family": family.strip(), "given": given.strip()})  # type: ignore[return-value]


def split_pages(pages: str | None) -> tuple[str | None, str | None]:
    """First and last page of a page range.

    >>> split_pages("1075-1081"), split_pages("e12"), split_pages(None)
    (('1075', '1081'), ('e12', None), (None, None))
    """
    if not pages:
        return None, None
    parts = re.split(r"\s*(?:--|[-–—])\s*", pages.strip(), maxsplit=1)
    return parts[0] or None, (parts[1] if len(parts) > 1 and parts[1] else None)


def join_pages(first: str | None, last: str | None) -> str | None:
    """The inverse of :func:`split_pages`."""
    if first and last:
        return f"{first}-{last}"
    return first or last or None


def year_of(date: str | None) -> int | None:
    """The year at the start of an ISO (partial) date."""
    match = re.match(r"^\s*(\d{4})", date or "")
    return int(match.group(1)) if match else None


def subject_terms(record: WorkRecord) -> list[str]:
    """Keywords and MeSH descriptors as one de-duplicated, sorted list (for formats that have
    only keywords)."""
    terms: dict[str, str] = {}
    for term in list(record.get("keywords") or []) + [m["descriptor"] for m in
                                                       record.get("mesh") or []]:
        terms.setdefault(term.strip().casefold(), term.strip())
    return sorted((t for t in terms.values() if t), key=lambda t: (t.casefold(), t))


def clean(text: str | None) -> str | None:
    """Collapse whitespace (line breaks included); empty becomes None."""
    if text is None:
        return None
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text or None


def ids(doi: str | None = None, pmid: str | None = None, pmcid: str | None = None
        ) -> dict[str, str]:
    """Normalised identifiers, dropping any that do not parse."""
    from ..identifiers import normalize_doi, normalize_pmcid, normalize_pmid
    out: dict[str, str] = {}
    for name, value, normalize in (("doi", doi, normalize_doi), ("pmid", pmid, normalize_pmid),
                                   ("pmcid", pmcid, normalize_pmcid)):
        if value and normalize(str(value)):
            out[name] = normalize(str(value))  # type: ignore[assignment]
    return out


def prune(record: dict) -> WorkRecord:
    """Drop empty values so an absent field means "the file does not say"."""
    return {k: v for k, v in record.items() if v not in (None, "", [], {})}  # type: ignore[return-value]
