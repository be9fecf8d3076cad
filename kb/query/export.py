"""Read works out of the knowledge base for export, with stable citation keys."""
from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import TextIO

from ..store import chunked
from ..formats import ExportRecord, base_key, write

__all__ = ["citation_keys", "load_records", "export_works", "export_citations"]

_SCALARS = ("doi", "pmid", "pmcid", "openalex_id", "url", "title", "subtitle", "abstract",
            "journal", "journal_abbrev", "issn", "publisher", "year", "pub_date", "volume",
            "issue", "pages", "language", "type", "license", "cited_by_count", "is_retracted",
            "study_design", "status", "unverified", "note")


def _suffix(index: int) -> str:
    """'', 'a', 'b', … 'z', 'aa', … for the 1st, 2nd, 3rd … work sharing a key."""
    if index == 0:
        return ""
    letters = ""
    index -= 1
    while True:
        letters = chr(ord("a") + index % 26) + letters
        index = index // 26 - 1
        if index < 0:
            return letters


def citation_keys(conn: sqlite3.Connection, work_ids: Sequence[int] | None = None
                  ) -> dict[int, str]:
    """Citation keys: ``familyYEARword``; works sharing one get ``a``, ``b``, … in the order
    they entered the KB (the first keeps the bare key), so keys do not move when works are
    added. With ``work_ids``, only works of those works' years are read (a clash needs the
    same year), and the result covers at least those works."""
    sql = ("SELECT w.id, w.title, w.year, a.family, a.name FROM works w "
           "LEFT JOIN work_authors wa ON wa.work_id = w.id AND wa.position = 1 "
           "LEFT JOIN authors a ON a.id = wa.author_id")
    params: list[object] = []
    if work_ids is not None:
        years: set[int | None] = set()
        for chunk in chunked(work_ids):
            years.update(r[0] for r in conn.execute(
                f"SELECT DISTINCT year FROM works WHERE id IN ({','.join('?' * len(chunk))})",
                chunk))
        known = sorted(y for y in years if y is not None)
        clauses = [f"w.year IN ({','.join('?' * len(known))})"] if known else []
        if None in years:
            clauses.append("w.year IS NULL")
        if not clauses:
            return {}
        sql += " WHERE " + " OR ".join(clauses)
        params = list(known)
    groups: dict[str, list[int]] = defaultdict(list)
    for work_id, title, year, family, name in conn.execute(sql + " ORDER BY w.id", params):
        key = base_key({"title": title, "year": year,
                        "authors": [{"family": family, "name": name}]})
        groups[key].append(work_id)
    return {work_id: key + _suffix(index) for key, members in groups.items()
            for index, work_id in enumerate(members)}


def load_records(conn: sqlite3.Connection, work_ids: Sequence[int]) -> list[ExportRecord]:
    """The works with these ids as export records (lists included), in the order given."""
    keys = citation_keys(conn, work_ids)
    records: list[ExportRecord] = []
    for chunk in chunked(work_ids):
        marks = ",".join("?" * len(chunk))
        rows = {r["id"]: r for r in conn.execute(
            f"SELECT id, {', '.join(_SCALARS)} FROM works WHERE id IN ({marks})", chunk)}
        lists = _lists(conn, chunk, marks)
        for work_id in chunk:
            row = rows.get(work_id)
            if row is None:
                continue
            record: ExportRecord = {k: row[k] for k in _SCALARS  # type: ignore[assignment]
                                    if row[k] not in (None, "")}
            record["is_retracted"] = bool(row["is_retracted"])
            record["unverified"] = bool(row["unverified"])
            record["key"] = keys[work_id]
            for field, values in lists.items():
                if values.get(work_id):
                    record[field] = values[work_id]  # type: ignore[literal-required]
            records.append(record)
    return records


def _lists(conn: sqlite3.Connection, chunk: list[int], marks: str) -> dict[str, dict[int, list]]:
    out: dict[str, dict[int, list]] = {f: defaultdict(list) for f in
                                       ("authors", "mesh", "keywords", "publication_types",
                                        "accessions")}
    for r in conn.execute(
            "SELECT wa.work_id, a.family, a.given, a.name, a.orcid, wa.affiliation "
            f"FROM work_authors wa JOIN authors a ON a.id = wa.author_id "
            f"WHERE wa.work_id IN ({marks}) ORDER BY wa.work_id, wa.position", chunk):
        author = {"family": r[1], "given": r[2], "orcid": r[4], "affiliation": r[5]} if r[1] \
            else {"name": r[3], "orcid": r[4], "affiliation": r[5]}
        out["authors"][r[0]].append({k: v for k, v in author.items() if v})
    for r in conn.execute("SELECT work_id, descriptor, descriptor_ui, qualifier, major FROM mesh "
                          f"WHERE work_id IN ({marks}) ORDER BY work_id, position", chunk):
        out["mesh"][r[0]].append({k: v for k, v in {
            "descriptor": r[1], "descriptor_ui": r[2], "qualifier": r[3]}.items() if v}
            | {"major": bool(r[4])})
    for table, column, field in (("keywords", "keyword", "keywords"),
                                 ("publication_types", "type", "publication_types")):
        for r in conn.execute(f"SELECT work_id, {column} FROM {table} WHERE work_id IN ({marks}) "
                              f"ORDER BY work_id, {column}", chunk):
            out[field][r[0]].append(r[1])
    for r in conn.execute("SELECT work_id, bank, accession FROM accessions "
                          f"WHERE work_id IN ({marks}) ORDER BY work_id, accession", chunk):
        out["accessions"][r[0]].append({"bank": r[1], "accession": r[2]})
    return out


def export_works(conn: sqlite3.Connection, query: str | None, fmt: str, out: TextIO, *,
                 year: str | None = None, design: str | None = None,
                 mesh: Iterable[str] | None = None, cell_type: str | None = None,
                 stubs: bool = False) -> int:
    """Write the works matching ``query`` and the filters (all works if no query) to ``out``;
    stubs (works known only from reference lists) only when asked. Returns how many were
    written."""
    from .search import search
    result = search(conn, query, year=year, design=design, mesh=list(mesh or []) or None,
                    cell_type=cell_type, limit=None, stubs=stubs)
    return write(load_records(conn, [hit.id for hit in result.hits]), fmt, out)


def export_citations(conn: sqlite3.Connection, query: str | None, out: TextIO, *,
                     year: str | None = None, design: str | None = None,
                     mesh: Iterable[str] | None = None, cell_type: str | None = None,
                     stubs: bool = False) -> int:
    """Write ``citing,cited`` pairs for the resolved references of the works matching
    ``query`` and the filters (ids: DOI, else ``pmid:…``, else ``url:…``); returns the number
    of pairs."""
    from ..formats.citations_csv import cell, write as write_pairs
    pairs = ((cell(*row[1:4]), cell(*row[4:])) for row in _citation_rows(
        conn, query, year=year, design=design, mesh=mesh, cell_type=cell_type, stubs=stubs))
    return write_pairs(((a, b) for a, b in pairs if a and b), out)


#: one pair per edge: a list naming a work twice holds two rows, the first of them stands
_PAIR = ("SELECT c.citing_id, f.doi, f.pmid, f.url, t.doi, t.pmid, t.url FROM citations c "
         "JOIN works f ON f.id = c.citing_id JOIN works t ON t.id = c.cited_id "
         "AND NOT EXISTS (SELECT 1 FROM citations d WHERE d.citing_id = c.citing_id "
         "AND d.cited_id = c.cited_id AND d.occurrence < c.occurrence) ")


def _citation_rows(conn: sqlite3.Connection, query: str | None, *, year: str | None,
                   design: str | None, mesh: Iterable[str] | None, cell_type: str | None,
                   stubs: bool) -> Iterator[sqlite3.Row]:
    """The resolved references of the selected works: the works in ``kb search``'s order, each
    work's references in their printed order. The whole KB (no query, no filter) streams from
    one statement, so an export of every edge (to DuckDB, a graph database) holds none in
    memory."""
    if not (query or year or design or mesh or cell_type):
        yield from conn.execute(
            _PAIR + ("" if stubs else "WHERE f.status = 'full' ")
            + "ORDER BY f.year IS NULL, f.year DESC, f.title COLLATE NOCASE, f.id, "
              "c.position IS NULL, c.position, c.id")
        return
    from .search import search
    result = search(conn, query, year=year, design=design, mesh=list(mesh or []) or None,
                    cell_type=cell_type, limit=None, stubs=stubs)
    ids = [hit.id for hit in result.hits]
    order = {work_id: index for index, work_id in enumerate(ids)}
    for chunk in chunked(ids):
        rows = conn.execute(
            _PAIR + f"WHERE c.citing_id IN ({','.join('?' * len(chunk))}) "
            "ORDER BY c.citing_id, c.position IS NULL, c.position, c.id", chunk).fetchall()
        yield from sorted(rows, key=lambda row: order[row[0]])  # stable: positions kept
