"""Flat formats: CSV (one work per row, for spreadsheets) and JSON Lines (one whole work record
per line, every field kept)."""
from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from typing import TextIO

from ..errors import ParseError
from ..records import AuthorRecord, MeshRecord, WorkRecord
from . import MAX_LINE, KB_TYPES, ExportRecord, clean, ids, lines, prune, split_name, year_of

__all__ = ["CSV_COLUMNS", "SafeWriter", "neutralise", "read_csv", "write_csv", "read_jsonl",
           "write_jsonl"]

#: CSV columns, in order. Lists are joined with "; "; authors are "Family, Given".
CSV_COLUMNS = ("key", "doi", "pmid", "pmcid", "title", "authors", "year", "pub_date", "journal",
               "journal_abbrev", "volume", "issue", "pages", "issn", "publisher", "type",
               "study_design", "is_retracted", "status", "language", "url", "keywords", "mesh",
               "publication_types", "abstract")
_JSON_FIELDS = ("key", "doi", "pmid", "pmcid", "openalex_id", "url", "title", "subtitle",
                "abstract", "journal", "journal_abbrev", "issn", "publisher", "year", "pub_date",
                "volume", "issue", "pages", "language", "type", "license", "cited_by_count",
                "is_retracted", "study_design", "status", "unverified", "note", "authors",
                "mesh", "keywords", "publication_types", "accessions", "updates")


def _author_text(author: AuthorRecord) -> str:
    if author.get("family"):
        return ", ".join(p for p in (author["family"], author.get("given")) if p)
    return author.get("name") or ""


def _mesh_text(row: MeshRecord) -> str:
    text = row["descriptor"] + (f"/{row['qualifier']}" if row.get("qualifier") else "")
    return ("*" if row.get("major") else "") + text


#: A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """A cell value a spreadsheet will not run: text starting like a formula gets a leading
    single quote, as OWASP recommends (:func:`read_csv` drops it again).

    >>> neutralise("=HYPERLINK(1)"), neutralise("-1"), neutralise("UC-MSC"), neutralise(3)
    ("'=HYPERLINK(1)", "'-1", 'UC-MSC', 3)
    """
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


class SafeWriter:
    """A :func:`csv.writer` whose cells go through :func:`neutralise` (every CSV kb writes)."""

    def __init__(self, out: TextIO) -> None:
        self._writer = csv.writer(out, lineterminator="\n")

    def writerow(self, row: Iterable[object]) -> None:
        """Write one row, cells neutralised."""
        self._writer.writerow([neutralise(cell) for cell in row])


def write_csv(records: Iterable[ExportRecord], out: TextIO) -> int:
    """Write a header row and one row per work (cells neutralised: :func:`neutralise`)."""
    writer = SafeWriter(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in records:
        row = {
            **{k: record.get(k) for k in CSV_COLUMNS},
            "authors": "; ".join(_author_text(a) for a in record.get("authors") or []),
            "keywords": "; ".join(record.get("keywords") or []),
            "mesh": "; ".join(_mesh_text(m) for m in record.get("mesh") or []),
            "publication_types": "; ".join(record.get("publication_types") or []),
            "is_retracted": "1" if record.get("is_retracted") else "0",
            "abstract": clean(record.get("abstract")),
        }
        writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
        count += 1
    return count


def _cell(value: str) -> str | None:
    """A cell as :func:`write_csv` wrote it: whitespace collapsed, :func:`neutralise` undone."""
    if value[:1] == "'" and value[1:2] in _FORMULA:
        value = value[1:]
    return clean(value)


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(";") if part.strip()]


def _csv_mesh(text: str) -> MeshRecord:
    major = text.startswith("*")
    descriptor, _, qualifier = text.lstrip("*").partition("/")
    return prune({"descriptor": descriptor.strip(), "qualifier": qualifier.strip(),  # type: ignore[return-value]
                  "major": major}) | {"major": major}


#: Other tools' column names (lower case) -> kb's: PubMed's "Save > CSV", Scopus, Lens, …
_ALIASES = {"publication year": "year", "journal/book": "journal", "source title": "journal",
            "publication title": "journal", "source": "journal", "article title": "title",
            "author": "authors", "author full names": "authors", "page": "pages",
            "author keywords": "keywords", "pubmed id": "pmid", "pmc id": "pmcid",
            "mesh terms": "mesh", "document type": "type", "abbreviated source title":
            "journal_abbrev", "link": "url", "language of original document": "language"}
_FAMILY = re.compile(r"^[^\W\d][\w'’\- ]*$")


def _pubmed_author(text: str) -> bool:
    """PubMed's short form: family name, a space, up to four capital initials."""
    family, _, initials = text.rpartition(" ")
    return bool(_FAMILY.match(family)) and initials.isalpha() and initials.isupper() \
        and len(initials) <= 4


def _authors(value: str | None) -> list[AuthorRecord]:
    """"Family, Given; …" (kb, Scopus full names), or PubMed's "Amanat M, Majmaa A, …"."""
    if not value:
        return []
    if ";" not in value and "," in value:
        parts = [p.strip().rstrip(".") for p in value.split(",") if p.strip()]
        if all(_pubmed_author(p) for p in parts):
            return [{"family": p.rsplit(" ", 1)[0], "given": p.rsplit(" ", 1)[1]} for p in parts]
    return [split_name(re.sub(r"\s*\(\d+\)$", "", a)) for a in _split(value)]


def read_csv(handle: TextIO) -> Iterator[WorkRecord]:
    """Yield one work per row of a CSV (or tab-separated) file with kb's column names, or the
    common ones of PubMed's, Scopus' and Lens' exports (case-insensitive; at least one of doi,
    pmid, title)."""
    first = handle.readline(MAX_LINE)
    handle.seek(0)
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.DictReader(handle, delimiter=delimiter, strict=True)
    names: dict[str, str] = {}
    for name in reader.fieldnames or []:
        key = name.strip().lower()
        names.setdefault(_ALIASES.get(key, key), name)
    if not names.keys() & {"doi", "pmid", "title"}:
        raise ParseError("a works CSV needs a doi, pmid or title column")
    for row in reader:
        if None in row.values():
            raise ParseError(f"line {reader.line_num}: the row has fewer columns than the "
                             "header (is the file cut short?)")
        get = {key: _cell(row[name]) for key, name in names.items()}
        year = get.get("year")
        record = {
            **ids(get.get("doi"), get.get("pmid"), get.get("pmcid")),
            **{k: get.get(k) for k in ("title", "pub_date", "journal", "journal_abbrev", "volume",
                                       "issue", "pages", "issn", "publisher", "language",
                                       "url", "abstract")},
            "type": get.get("type") if get.get("type") in KB_TYPES else None,
            "year": int(year) if year and year.isdigit() else year_of(get.get("pub_date")),
            "authors": _authors(get.get("authors")),
            "keywords": _split(get.get("keywords")),
            "mesh": [_csv_mesh(m) for m in _split(get.get("mesh"))],
            "publication_types": _split(get.get("publication_types")),
            "study_design": get.get("study_design"),
            "is_retracted": True if get.get("is_retracted") in ("1", "true", "True") else None,
            "status": get.get("status") if get.get("status") in ("full", "stub") else None,
        }
        work = prune(record)
        if not work.keys() & {"doi", "pmid", "pmcid", "title", "url"}:
            raise ParseError(f"line {reader.line_num}: the row has no doi, pmid or title")
        yield work


def write_jsonl(records: Iterable[ExportRecord], out: TextIO) -> int:
    """Write one JSON object per line with every field the work has."""
    count = 0
    for record in records:
        item = {k: record.get(k) for k in _JSON_FIELDS if record.get(k) not in (None, "", [])}
        out.write(json.dumps(item, ensure_ascii=False, sort_keys=False) + "\n")
        count += 1
    return count


def read_jsonl(handle: TextIO) -> Iterator[WorkRecord]:
    """Yield one work per non-blank line (kb's record keys; others are ignored)."""
    for number, line in enumerate(lines(handle), 1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            raise ParseError(f"line {number}: longer than {MAX_LINE >> 20} MiB, which no record "
                             "kb reads needs")
        try:
            item = json.loads(line)
        except RecursionError:
            raise ParseError(f"line {number}: JSON nested too deeply to be a record") from None
        except ValueError as exc:
            raise ParseError(f"line {number}: not valid JSON: {exc}") from exc
        if not isinstance(item, dict):
            raise ParseError(f"line {number}: not a JSON object")
        record = {k: item[k] for k in _JSON_FIELDS if k != "key" and k in item}
        record.update(ids(item.get("doi"), item.get("pmid"), item.get("pmcid")))
        if not any(record.get(k) for k in ("doi", "pmid", "pmcid", "openalex_id", "url", "title")):
            raise ParseError(f"line {number}: the record has no identifier, URL or title")
        yield prune(record)
