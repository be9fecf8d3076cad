"""PubMed's MEDLINE text format (``Send to › Citation manager``, ``.nbib``; also E-utilities
``rettype=medline``): ``TAG - value`` lines, tags padded to four characters, continuation lines
indented six spaces, records separated by a blank line.

Two tags are kb's own, so that kb reads back what it wrote: ``UR`` (the work's URL) and
``KBTY`` (kb's work type, written unless it is a journal article with a journal); MEDLINE
readers skip tags they do not know."""
from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Iterator
from typing import TextIO

from ..errors import ParseError
from ..records import AuthorRecord, MeshRecord, WorkRecord
from . import KB_TYPES, ExportRecord, clean, ids, lines, prune, year_of

__all__ = ["read", "write"]

_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_LINE = re.compile(r"^([A-Z][A-Z0-9]{0,3})\s*- ?(.*)$")
_ORCID = re.compile(r"(\d{4}-\d{4}-\d{4}-\d{3}[\dX])")


def _dp(pub_date: str | None, year: int | None) -> str | None:
    """ISO partial date → MEDLINE DP (``2021 Aug 6``)."""
    if not pub_date:
        return str(year) if year else None
    parts = pub_date.split("-")
    out = [parts[0]]
    if len(parts) > 1 and parts[1].isdigit() and 1 <= int(parts[1]) <= 12:
        out.append(_MONTHS[int(parts[1]) - 1])
        if len(parts) > 2 and parts[2].isdigit():
            out.append(str(int(parts[2])))
    return " ".join(out)


def _iso(dp: str | None) -> str | None:
    """MEDLINE DP → ISO partial date; seasons and ranges keep only what is certain.

    >>> _iso("2021 Aug 6"), _iso("2019 Nov-Dec"), _iso("2020 Spring"), _iso("2018")
    ('2021-08-06', '2019-11', '2020', '2018')
    """
    if not dp:
        return None
    match = re.match(r"^(\d{4})(?:\s+([A-Za-z]{3})[a-z]*(?:\s+(\d{1,2})(?!\d))?)?", dp.strip())
    if not match:
        return None
    out = match.group(1)
    month = match.group(2)
    if month and month.title() in _MONTHS:
        out += f"-{_MONTHS.index(month.title()) + 1:02d}"
        if match.group(3):
            out += f"-{int(match.group(3)):02d}"
    return out


def _short(author: AuthorRecord) -> str:
    initials = "".join(p[0] for p in re.split(r"[\s.\-]+", author.get("given") or "") if p)
    return f"{author['family']} {initials}".strip()


def _mesh_lines(mesh: list[MeshRecord]) -> list[str]:
    order: list[str] = []
    groups: dict[str, list[MeshRecord]] = {}
    for row in mesh:
        if row["descriptor"] not in groups:
            order.append(row["descriptor"])
        groups.setdefault(row["descriptor"], []).append(row)
    lines = []
    for descriptor in order:
        rows = groups[descriptor]
        bare_major = any(r.get("major") and not r.get("qualifier") for r in rows)
        head = ("*" if bare_major else "") + descriptor
        qualifiers = [("*" if r.get("major") else "") + q for r in rows
                      if (q := r.get("qualifier"))]
        lines.append("/".join([head] + qualifiers))
    return lines


def _lines(record: ExportRecord) -> Iterator[tuple[str, str]]:
    def tag(name: str, value: object) -> Iterator[tuple[str, str]]:
        text = clean(str(value)) if value not in (None, "") else None
        if text:
            yield name, text

    yield from tag("PMID", record.get("pmid"))
    yield from tag("IS", record.get("issn"))
    yield from tag("VI", record.get("volume"))
    yield from tag("IP", record.get("issue"))
    yield from tag("DP", _dp(record.get("pub_date"), record.get("year")))
    yield from tag("TI", record.get("title"))
    yield from tag("PG", record.get("pages"))
    yield from tag("LID", f"{record['doi']} [doi]" if record.get("doi") else None)
    yield from tag("AB", record.get("abstract"))
    for author in record.get("authors") or []:
        if author.get("family"):
            yield from tag("FAU", ", ".join(p for p in (author["family"], author.get("given")) if p))
            yield from tag("AU", _short(author))
            if author.get("orcid"):
                yield "AUID", f"ORCID: {author['orcid']}"
            yield from tag("AD", author.get("affiliation"))
        else:
            yield from tag("CN", author.get("name"))
    yield from tag("LA", record.get("language"))
    types = list(record.get("publication_types") or [])
    if record.get("is_retracted") and "Retracted Publication" not in types:
        types.append("Retracted Publication")
    for kind in types:
        yield from tag("PT", kind)
    yield from tag("TA", record.get("journal_abbrev"))
    yield from tag("JT", record.get("journal"))
    yield from tag("PB", record.get("publisher"))
    for line in _mesh_lines(record.get("mesh") or []):
        yield "MH", line
    for keyword in record.get("keywords") or []:
        yield from tag("OT", keyword)
    yield from tag("PMC", record.get("pmcid"))
    yield from tag("AID", f"{record['doi']} [doi]" if record.get("doi") else None)
    yield from tag("UR", record.get("url"))
    if record.get("type") and (record["type"] != "journal-article"
                               or not (record.get("journal") or record.get("journal_abbrev"))):
        yield "KBTY", str(record["type"])
    yield from tag("GN", record.get("note"))


def write(records: Iterable[ExportRecord], out: TextIO) -> int:
    """Write MEDLINE records, lines wrapped at 88 columns like PubMed's export (a record
    with no field MEDLINE can carry, e.g. a URL-only stub, is left out)."""
    count = 0
    for record in records:
        lines = list(_lines(record))
        if not lines:
            continue
        out.write("\n")
        for name, value in lines:
            wrapped = textwrap.wrap(value, 82, break_long_words=False, break_on_hyphens=False)
            out.write(f"{name:<4}- {wrapped[0]}\n")
            for more in wrapped[1:]:
                out.write(f"      {more}\n")
        count += 1
    return count


def _mesh(value: str) -> list[MeshRecord]:
    parts = value.split("/")
    head = parts[0].strip()
    descriptor = head.lstrip("*").strip()
    rows: list[MeshRecord] = []
    if head.startswith("*") or len(parts) == 1:
        rows.append({"descriptor": descriptor, "major": head.startswith("*")})
    for qualifier in parts[1:]:
        qualifier = qualifier.strip()
        if qualifier:
            rows.append({"descriptor": descriptor, "qualifier": qualifier.lstrip("*"),
                         "major": qualifier.startswith("*")})
    return rows


def _record(tags: list[tuple[str, str]]) -> WorkRecord:
    values: dict[str, list[str]] = {}
    authors: list[AuthorRecord] = []
    full_names = any(name == "FAU" for name, _ in tags)
    for name, value in tags:
        values.setdefault(name, []).append(value)
        if name == "FAU" or (name == "AU" and not full_names):
            if name == "FAU":
                family, _, given = value.partition(",")
            else:
                family, _, given = value.rpartition(" ")
                family, given = (family, given) if family else (given, "")
            authors.append(prune({"family": family.strip(), "given": given.strip()}))  # type: ignore[arg-type]
        elif name == "CN":
            authors.append({"name": value})
        elif name == "AUID" and authors and _ORCID.search(value):
            authors[-1]["orcid"] = _ORCID.search(value).group(1)  # type: ignore[union-attr]
        elif name == "AD" and authors:
            previous = authors[-1].get("affiliation")
            authors[-1]["affiliation"] = f"{previous}; {value}" if previous else value

    def one(name: str) -> str | None:
        return values[name][0] if values.get(name) else None

    doi = next((v.rsplit(" ", 1)[0] for v in values.get("LID", []) + values.get("AID", [])
                if v.endswith("[doi]")), None)
    pmcid = one("PMC") or next((v.rsplit(" ", 1)[0] for v in values.get("AID", [])
                                if v.endswith("[pmc]")), None)
    pub_date = _iso(one("DP"))
    types = values.get("PT", [])
    issns = [re.sub(r"\s*\(.*\)$", "", v) for v in values.get("IS", [])]
    record = {
        **ids(doi, one("PMID"), pmcid),
        "title": one("TI") or one("BTI"),
        "authors": authors,
        "journal": one("JT"),
        "journal_abbrev": one("TA"),
        "year": year_of(pub_date),
        "pub_date": pub_date,
        "volume": one("VI"),
        "issue": one("IP"),
        "pages": one("PG"),
        "issn": "; ".join(dict.fromkeys(i for i in issns if i)) or None,
        "publisher": one("PB"),
        "language": one("LA"),
        "abstract": one("AB"),
        "url": one("UR"),
        "note": one("GN"),
        "type": one("KBTY") if one("KBTY") in KB_TYPES
        else "journal-article" if one("JT") or one("TA") else None,
        "publication_types": types,
        "is_retracted": True if "Retracted Publication" in types else None,
        "mesh": [row for value in values.get("MH", []) for row in _mesh(value)],
        "keywords": [k for k in values.get("OT", []) if k],
    }
    return prune(record)


def read(handle: TextIO) -> Iterator[WorkRecord]:
    """Yield one work record per MEDLINE record."""
    tags: list[tuple[str, str]] = []
    for number, raw in enumerate(lines(handle), 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            if tags:
                yield _record(tags)
                tags = []
            continue
        if line.startswith("      ") or line.startswith("\t"):
            if not tags:
                raise ParseError(f"line {number}: a continuation line outside a record")
            tags[-1] = (tags[-1][0], f"{tags[-1][1]} {line.strip()}")
            continue
        match = _LINE.match(line)
        if not match:
            raise ParseError(f"line {number}: not a MEDLINE line: {line[:60]!r}",
                             hint="MEDLINE lines look like 'TI  - Title'")
        if match.group(1) == "PMID" and tags:
            yield _record(tags)
            tags = []
        tags.append((match.group(1), match.group(2).strip()))
    if tags:
        yield _record(tags)
