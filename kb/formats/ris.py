"""RIS (``TY  - JOUR`` … ``ER  - ``), as Zotero, EndNote, Mendeley and publishers write it.

kb writes: TY, ID (citation key), TI, AU (``Family, Given``), T2 (journal), J2 (abbreviation),
PY, DA, VL, IS, SP, EP, SN, PB, DO, AN (PMID), C2 (PMCID), UR, LA, KW (keywords and MeSH), AB,
N1 (note), ER. The reader also accepts the older tags (T1, A1, JO, JF, JA, Y1, M3, N2) and
Ovid's exports (each record numbered ``1.``, ``NL`` after ``ER``, links between records).

kb keeps its own line reader rather than rispy (which ASReview uses): rispy returns a whole
file as one list, silently drops a last record that has no ``ER`` (a file cut short, which kb
refuses), and skips the tags Ovid writes after ``ER``. The fidelity bench
(``bench/bench_fidelity.py``) checks both agree on the records of real exports.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TextIO

from ..errors import ParseError
from ..records import AuthorRecord, WorkRecord
from . import (ExportRecord, clean, ids, join_pages, lines, prune, split_name, split_pages,
               subject_terms, year_of)

__all__ = ["read", "write"]

_TYPES = {"journal-article": "JOUR", "book": "BOOK", "book-chapter": "CHAP",
          "proceedings-article": "CPAPER", "dissertation": "THES", "report": "RPRT",
          "web-article": "ELEC", "dataset": "DATA"}
_KB_TYPES = {"JOUR": "journal-article", "JFULL": "journal-article", "MGZN": "journal-article",
             "BOOK": "book", "EBOOK": "book", "CHAP": "book-chapter", "ECHAP": "book-chapter",
             "CPAPER": "proceedings-article", "CONF": "proceedings-article",
             "THES": "dissertation", "RPRT": "report", "ELEC": "web-article",
             "WEB": "web-article", "BLOG": "web-article", "DATA": "dataset", "DBASE": "dataset",
             "GEN": "other"}
_LINE = re.compile(r"^([A-Z][A-Z0-9])  ?-(?: (.*)|\s*)$")


def _author(author: AuthorRecord) -> str | None:
    if author.get("family"):
        return f"{author['family']}, {author['given']}" if author.get("given") else author["family"]
    return author.get("name")


def _date(pub_date: str) -> str:
    """An ISO partial date as RIS ``YYYY/MM/DD/``.

    >>> _date("2021-08-06"), _date("2021-08")
    ('2021/08/06/', '2021/08//')
    """
    parts = (pub_date.split("-") + ["", ""])[:3]
    return "/".join(parts) + "/"


def _lines(record: ExportRecord) -> Iterator[str]:
    kind = _TYPES.get(record.get("type") or "", "JOUR" if record.get("journal") else "GEN")

    def tag(name: str, value: object) -> Iterator[str]:
        text = clean(str(value)) if value not in (None, "") else None
        if text:
            yield f"{name}  - {text}"

    yield f"TY  - {kind}"
    yield from tag("ID", record.get("key"))
    yield from tag("TI", record.get("title"))
    for author in record.get("authors") or []:
        yield from tag("AU", _author(author))
    yield from tag("T2", record.get("journal"))
    yield from tag("J2", record.get("journal_abbrev"))
    yield from tag("PY", record.get("year"))
    if (pub_date := record.get("pub_date")) and pub_date != str(record.get("year")):
        yield from tag("DA", _date(pub_date))
    yield from tag("VL", record.get("volume"))
    yield from tag("IS", record.get("issue"))
    first, last = split_pages(record.get("pages"))
    yield from tag("SP", first)
    yield from tag("EP", last)
    yield from tag("SN", record.get("issn"))
    yield from tag("PB", record.get("publisher"))
    yield from tag("DO", record.get("doi"))
    yield from tag("AN", record.get("pmid"))
    yield from tag("C2", record.get("pmcid"))
    yield from tag("UR", record.get("url"))
    yield from tag("LA", record.get("language"))
    for term in subject_terms(record):
        yield from tag("KW", term)
    yield from tag("AB", record.get("abstract"))
    yield from tag("N1", record.get("note"))
    if record.get("is_retracted"):
        yield "N1  - Retracted"
    yield "ER  - "


def write(records: Iterable[ExportRecord], out: TextIO) -> int:
    """Write RIS records (blank line between records)."""
    count = 0
    for record in records:
        out.write("\n".join(_lines(record)) + "\n\n")
        count += 1
    return count


def _parse_date(value: str | None) -> str | None:
    """RIS ``YYYY/MM/DD/other`` (parts optional) as an ISO partial date."""
    if not value:
        return None
    parts = [p for p in value.split("/")[:3] if p.strip()]
    if not parts or not re.fullmatch(r"\d{4}", parts[0].strip()):
        match = re.match(r"\d{4}", value.strip())
        return match.group(0) if match else None
    out = [parts[0].strip()]
    for part in parts[1:]:
        if not part.strip().isdigit():
            break
        out.append(f"{int(part):02d}")
    return "-".join(out)


def _record(tags: dict[str, list[str]]) -> WorkRecord:
    def one(*names: str) -> str | None:
        for name in names:
            if tags.get(name):
                return clean(" ".join(tags[name]) if name in ("AB", "N2") else tags[name][0])
        return None

    pmid = next((p for p in tags.get("AN", []) if re.fullmatch(r"(?i)(pmid:?\s*)?\d+", p.strip())),
                None)
    pmcid = next((p for p in tags.get("C2", []) if re.match(r"(?i)^\s*pmc\d", p)), None)
    notes = [n for n in tags.get("N1", []) if n.strip() != "Retracted"]
    pub_date = _parse_date(one("DA", "Y1", "PY"))
    year = year_of(one("PY", "Y1", "DA"))
    urls = [u for value in tags.get("UR", []) for u in re.split(r"[;\s]+", value) if u]
    record = {
        **ids(one("DO"), pmid, pmcid),
        "type": _KB_TYPES.get((one("TY") or "").upper()),
        "title": one("TI", "T1", "CT"),
        "authors": [split_name(a) for a in tags.get("AU", []) + tags.get("A1", []) if a.strip()],
        "journal": one("T2", "JF", "JO", "BT"),
        "journal_abbrev": one("J2", "JA") or (one("JO") if tags.get("JF") or tags.get("T2")
                                               else None) or one("NL"),
        "year": year,
        "pub_date": pub_date if pub_date and pub_date != str(year) else (str(year) if year else None),
        "volume": one("VL"),
        "issue": one("IS"),
        "pages": join_pages(one("SP"), one("EP")) if not (one("SP") or "").count("-")
        else one("SP"),
        "issn": one("SN"),
        "publisher": one("PB"),
        "url": urls[0] if urls else None,
        "language": one("LA"),
        "keywords": [clean(k) for k in tags.get("KW", []) if clean(k)],
        "abstract": one("AB", "N2"),
        "note": clean(" ".join(notes)) if notes else None,
        "is_retracted": True if "Retracted" in [n.strip() for n in tags.get("N1", [])] else None,
    }
    return prune(record)


def read(handle: TextIO) -> Iterator[WorkRecord]:
    """Yield one work record per ``TY`` … ``ER`` block (continuation lines are joined).

    Tags between ``ER`` and the next ``TY`` (Ovid's ``NL``) belong to the record just
    closed; other text there (Ovid's record numbers and links) is skipped.

    :raises ParseError: a tag before the first ``TY``, a ``TY`` inside a record, or a last
        record without ``ER`` (a file cut short).
    """
    tags: dict[str, list[str]] | None = None
    closed: dict[str, list[str]] | None = None
    last: str | None = None
    for number, raw in enumerate(lines(handle), 1):
        line = raw.rstrip("\r\n").lstrip("\ufeff")
        match = _LINE.match(line)
        if match:
            name, value = match.group(1), (match.group(2) or "").strip()
            if name == "TY":
                if tags is not None:
                    raise ParseError(f"line {number}: a new TY before ER closed the last record",
                                     hint="every RIS record ends with an 'ER  - ' line")
                if closed is not None:
                    yield _record(closed)
                tags, closed, last = {"TY": [value]}, None, "TY"
            elif name == "ER":
                if tags is None and closed is None:
                    raise ParseError(f"line {number}: ER without a TY")
                closed, tags, last = (tags if tags is not None else closed), None, None
            elif tags is None and closed is None:
                raise ParseError(f"line {number}: the tag {name} is outside a record",
                                 hint="every RIS record starts with a 'TY  - ' line")
            else:
                (tags if tags is not None else closed).setdefault(  # type: ignore[union-attr]
                    name, []).append(value)
                last = name
        elif line.strip() and tags is not None and last:
            tags[last][-1] = f"{tags[last][-1]} {line.strip()}"
    if tags is not None:
        raise ParseError("the last record has no ER line (is the file cut short?)")
    if closed is not None:
        yield _record(closed)
