"""Citation pairs as CSV: OpenCitations' CITS-CSV (``oci,citing,cited,creation,timespan,
journal_sc,author_sc``, or ``citing_id,…,cited_id,…``; ids such as ``doi:10.…``, or several
space-separated: ``omid:br/… doi:10.… pmid:123``), bare DOIs, and kb's corpus file
``citing,cited,relation,source`` (ids are DOIs or ``url:…``)."""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from typing import TextIO

from ..errors import ParseError
from ..records import LinkRecord, WorkRef
from . import ids

__all__ = ["read", "write", "parse_ids", "cell"]


def parse_ids(cell: str) -> WorkRef:
    """The work a citation cell names.

    >>> parse_ids("omid:br/0612058700 doi:10.1186/S13287-021-02513-4 pmid:34362453")
    {'doi': '10.1186/s13287-021-02513-4', 'pmid': '34362453'}
    >>> parse_ids("url:https://cells4life.com/2025/03/x")
    {'url': 'https://cells4life.com/2025/03/x'}
    """
    from ..identifiers import normalize_openalex
    ref: WorkRef = {}
    for token in cell.split():
        scheme, sep, value = token.partition(":")
        scheme = scheme.lower() if sep else ""
        if scheme == "url":
            ref["url"] = value
        elif scheme in ("http", "https") and re.match(r"^https?://(dx\.)?doi\.org/", token, re.I):
            ref.update(ids(doi=token))  # type: ignore[typeddict-item]
        elif scheme in ("http", "https"):
            ref["url"] = token
        elif scheme == "doi":
            ref.update(ids(doi=value))  # type: ignore[typeddict-item]
        elif scheme == "pmid":
            ref.update(ids(pmid=value))  # type: ignore[typeddict-item]
        elif scheme in ("pmcid", "pmc"):
            ref.update(ids(pmcid=value))  # type: ignore[typeddict-item]
        elif scheme == "openalex" and normalize_openalex(value):
            ref["openalex_id"] = normalize_openalex(value)
        elif not scheme or scheme.startswith("10."):
            found = ids(doi=token) or ids(pmid=token) or ids(pmcid=token)
            ref.update(found)  # type: ignore[typeddict-item]
    return ref


def read(handle: TextIO) -> Iterator[LinkRecord]:
    """Yield one citation edge per row (``source="import"``; a ``relation`` column such as the
    corpus's ``pools`` is a citation too).

    :raises ParseError: a row whose citing or cited id cannot be read (with its line number).
    """
    reader = csv.DictReader(handle, strict=True)
    names = {name.strip().lower(): name for name in reader.fieldnames or []}
    fields = {side: next((names[n] for n in (side, f"{side}_id") if n in names), None)
              for side in ("citing", "cited")}
    if not fields["citing"] or not fields["cited"]:
        raise ParseError("a citation CSV needs 'citing' and 'cited' (or OpenCitations' "
                         "'citing_id' and 'cited_id') columns")
    for row in reader:
        if None in row.values():
            raise ParseError(f"line {reader.line_num}: the row has fewer columns than the "
                             "header (is the file cut short?)")
        citing = parse_ids(row[fields["citing"]] or "")
        cited = parse_ids(row[fields["cited"]] or "")
        if not citing or not cited:
            side = "citing" if not citing else "cited"
            raise ParseError(f"line {reader.line_num}: cannot read the {side} id "
                             f"{row[fields[side]]!r}",
                             hint="ids look like 10.1186/… , doi:10.… , pmid:123 or url:https://…")
        yield {"citing": citing, "cited": cited, "source": "import"}


def cell(doi: str | None, pmid: str | None, url: str | None) -> str | None:
    """The id a citation CSV names a work by: its DOI, else ``pmid:…``, else ``url:…``.

    >>> cell("10.1186/s13287-021-02513-4", "34362453", None), cell(None, "34362453", None)
    ('10.1186/s13287-021-02513-4', 'pmid:34362453')
    """
    if doi:
        return doi
    if pmid:
        return f"pmid:{pmid}"
    return f"url:{url}" if url else None


def write(pairs: Iterable[tuple[str, str]], out: TextIO) -> int:
    """Write ``citing,cited`` rows (ids as :func:`cell` makes them); returns the row count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("citing", "cited"))
    count = 0
    for citing, cited in pairs:
        writer.writerow((citing, cited))
        count += 1
    return count
