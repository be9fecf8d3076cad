"""Bulk writes for large imports (PubMed baseline and update files).

:class:`BulkWriter` stores records with the same outcome as :func:`kb.store.upsert_work` called
on each in turn, but set-based: a batch's identifiers are looked up in a few ``IN`` queries, new
works, their authors, terms and citations go in with ``executemany``, and the full-text index
can be filled once at the end. Records that meet a stored work, or another record of the batch,
go through the store's own merge (:func:`kb.store.upsert_work`'s code path), so the merge rule
lives in one place. The caller owns the transaction (one per file).
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from typing import Any

from ..clock import now
from ..records import MeshRecord, ReferenceRecord, WorkRecord
from .citations import (INSERT_CITATION, STUB_FIELDS, _add_citation, _ensure_work, citation_row,
                        occurrence, ref_keys, stub_record)
from .connection import chunked, fts_insert, sync_fts
from .evidence import PREANNOTATED
from .works import (ID_FIELDS, RECORDS_UPSERT, SCALAR_FIELDS, UPDATES_INSERT, _author_key,
                    _author_name, _upsert, delete_works, new_work_row, provenance_json, raw_row)
from .mesh import insert_mesh

__all__ = ["BulkWriter", "BulkStats", "indexes_rebuilt_after"]


@dataclass
class BulkStats:
    """What a :class:`BulkWriter` did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    deleted: int = 0
    citations: int = 0
    stubs: int = 0
    fts: str = ""
    touched: set[int] = field(default_factory=set, repr=False)


def _lookup(conn: sqlite3.Connection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Map (id field, value) to the stored work carrying it, in one query per field and chunk."""
    by_field: dict[str, set[str]] = {}
    for name, value in pairs:
        by_field.setdefault(name, set()).add(value)
    found: dict[tuple[str, str], int] = {}
    for name, values in by_field.items():
        for chunk in chunked(sorted(values)):
            marks = ",".join("?" * len(chunk))
            for work_id, value in conn.execute(
                    f"SELECT id, {name} FROM works WHERE {name} IN ({marks})", chunk):
                found[(name, value)] = work_id
    return found


def _id_pairs(record: WorkRecord | ReferenceRecord) -> list[tuple[str, str]]:
    return [(name, record[name]) for name in ID_FIELDS if record.get(name)]  # type: ignore[literal-required]


_WORK_COLUMNS = ("id",) + ID_FIELDS + SCALAR_FIELDS + (
    "status", "provenance", "study_design", "design_source", "is_retracted", "unverified",
    "created_at", "updated_at", "annotated_at")
_work_values = itemgetter(*_WORK_COLUMNS)
_INSERT_WORK = (f"INSERT INTO works({', '.join(_WORK_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_WORK_COLUMNS))})")


#: Secondary indexes no write of an import reads (browsing and search use them): an import
#: into a small KB drops them and builds each once, sorted, at the end.
REBUILT_INDEXES = ("work_mesh_term", "works_year", "works_design", "works_status",
                   "accessions_accession")


@contextmanager
def indexes_rebuilt_after(conn: sqlite3.Connection) -> Iterator[None]:
    """Inside the caller's transaction: drop :data:`REBUILT_INDEXES`, and create them again
    from their own SQL when the block succeeds (a failure rolls the drop back with the rest).
    One sorted build is cheaper than keeping them up to date row by row."""
    marks = ",".join("?" * len(REBUILT_INDEXES))
    saved = conn.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                         f"AND name IN ({marks})", REBUILT_INDEXES).fetchall()
    for name, _ in saved:
        conn.execute(f"DROP INDEX {name}")
    yield
    for _, sql in saved:
        conn.execute(sql)


class BulkWriter:
    """Buffer records and write them in set-based batches; call :meth:`finish` at the end.

    :param defer_fts: leave the full-text index of new works to :meth:`finish`, which refills
        the whole index when the import is large next to the table, or syncs the new rows.
    """

    def __init__(self, conn: sqlite3.Connection, *, batch_size: int = 2000,
                 defer_fts: bool = True) -> None:
        self.conn = conn
        self.batch_size = batch_size
        self.defer_fts = defer_fts
        self.stats = BulkStats()
        self._pending: list[WorkRecord] = []
        self._ref_keys: dict[int, list[str]] = {}  # id(record) -> its references' _ref_key
        self._designs: dict[int, tuple[str | None, str | None]] = {}  # id(record) -> design
        #: works in the KB before this writer's first write
        self.rows_before: int = conn.execute("SELECT count(*) FROM works").fetchone()[0]

    # -- public API -----------------------------------------------------------------------

    def add(self, record: WorkRecord, ref_keys: list[str] | None = None,
            design: tuple[str | None, str | None] | None = None) -> None:
        """Queue one record (written when the batch is full, or by :meth:`flush`).

        :param ref_keys: ``_ref_key`` of each of its references, when already computed.
        :param design: :func:`kb.evidence.pipeline.design_at_insert` of the record, when
            computed: a new work gets it at insert and is marked
            :data:`kb.store.evidence.PREANNOTATED` (a work it updates or merges is annotated
            as usual).
        """
        self._pending.append(record)
        if ref_keys is not None:
            self._ref_keys[id(record)] = ref_keys
        if design is not None:
            self._designs[id(record)] = design
        if len(self._pending) >= self.batch_size:
            self.flush()

    def delete(self, pmids: Iterable[str]) -> int:
        """Delete the works with these PMIDs (after writing everything queued before)."""
        self.flush()
        deleted = delete_works(self.conn, pmids)
        self.stats.deleted += deleted
        return deleted

    def flush(self) -> None:
        """Write the queued records."""
        records, self._pending = self._pending, []
        if records:
            self._write(records)
        self._ref_keys.clear()
        self._designs.clear()

    def finish(self) -> BulkStats:
        """Flush, then bring the full-text index up to date."""
        self.flush()
        touched = sorted(self.stats.touched)
        if not touched:
            self.stats.fts = "unchanged"
        elif len(touched) * 2 >= self.rows_before:
            self.conn.execute("DELETE FROM works_fts")
            self.conn.execute(fts_insert(self.conn))
            self.stats.fts = "rebuilt"
        else:
            sync_fts(self.conn, touched)
            self.stats.fts = "synced"
        return self.stats

    # -- one batch ------------------------------------------------------------------------

    def _write(self, records: list[WorkRecord]) -> None:
        pairs = [pair for record in records for pair in _id_pairs(record)]
        stored = _lookup(self.conn, pairs)
        seen: dict[tuple[str, str], int] = {}
        for pair in pairs:
            seen[pair] = seen.get(pair, 0) + 1
        fresh: list[WorkRecord] = []
        known: list[WorkRecord] = []
        later: list[WorkRecord] = []
        described: set[tuple[str, str]] = set()  # ids named by a reference that describes
        for record in records:
            ids = _id_pairs(record)
            if not ids or any(p in stored or seen[p] > 1 for p in ids):
                known.append(record)
            elif any(p in described for p in ids):
                # an earlier record cites this one with a title, year or author: in file
                # order the store would make that stub first and merge this record into it
                later.append(record)
            else:
                fresh.append(record)
            for ref in record.get("references") or []:
                if not _DESCRIBING.isdisjoint(ref) and any(ref.get(f) for f in _DESCRIBING):
                    described.update(_id_pairs(ref))
        new_ids = self._insert_new(fresh)
        for record in known:
            self._upsert(record)
        self._add_references([(work_id, record) for work_id, record in zip(new_ids, fresh)
                              if record.get("references")])
        for record in later:
            self._upsert(record)

    def _upsert(self, record: WorkRecord) -> None:
        """One record through the store's own merge (it matches something stored)."""
        result = _upsert(self.conn, record)
        setattr(self.stats, result.action, getattr(self.stats, result.action) + 1)
        self.stats.merged += len(result.merged)

    def _next_id(self) -> int:
        return (self.conn.execute("SELECT max(id) FROM works").fetchone()[0] or 0) + 1

    def _insert_new(self, records: list[WorkRecord], *, count: bool = True,
                    ids: list[int] | None = None) -> list[int]:
        """Insert works that match nothing stored, with their lists and extras."""
        if not records:
            return []
        conn, stamp = self.conn, now()
        if ids is None:
            first = self._next_id()
            ids = list(range(first, first + len(records)))
        conn.executemany(_INSERT_WORK, [self._work_row(r, i, stamp) for r, i in zip(records, ids)])
        authors: dict[str, tuple] = {}
        links: list[tuple[int, int, str, str | None]] = []
        headings: list[tuple[int, list[MeshRecord]]] = []
        keywords, types, accessions, updates, raws = [], [], [], [], []
        for work_id, record in zip(ids, records):
            source = record["source"]
            position = 0
            for author in record.get("authors") or []:
                name = _author_name(author)
                if not name:
                    continue
                position += 1
                key = _author_key(author)
                authors.setdefault(key, (key, author.get("family"), author.get("given"), name,
                                         author.get("orcid")))
                links.append((work_id, position, key, author.get("affiliation")))
            headings.append((work_id, record.get("mesh") or []))
            keywords += [(work_id, k) for k in record.get("keywords") or [] if k]
            types += [(work_id, t) for t in record.get("publication_types") or [] if t]
            accessions += [(work_id, a["bank"], a["accession"])
                           for a in record.get("accessions") or []]
            updates += [(work_id, u["kind"], u.get("direction", "updated-by"), u.get("doi"),
                         u.get("pmid"), u.get("label"), u.get("source") or source)
                        for u in record.get("updates") or []]
            raw = raw_row(work_id, record, stamp)
            if raw is not None:
                raws.append(raw)
        if authors:
            conn.executemany("INSERT OR IGNORE INTO authors(key, family, given, name, orcid) "
                             "VALUES (?, ?, ?, ?, ?)", list(authors.values()))
            author_ids: dict[str, int] = {}
            for chunk in chunked(list(authors)):
                marks = ",".join("?" * len(chunk))
                author_ids.update(conn.execute(
                    f"SELECT key, id FROM authors WHERE key IN ({marks})", chunk).fetchall())
            conn.executemany("INSERT INTO work_authors(work_id, position, author_id, affiliation) "
                             "VALUES (?, ?, ?, ?)",
                             [(w, p, author_ids[k], a) for w, p, k, a in links])
        insert_mesh(conn, headings)
        conn.executemany("INSERT OR IGNORE INTO keywords(work_id, keyword) VALUES (?, ?)",
                         keywords)
        conn.executemany("INSERT OR IGNORE INTO publication_types(work_id, type) VALUES (?, ?)",
                         types)
        conn.executemany("INSERT OR IGNORE INTO accessions(work_id, bank, accession) "
                         "VALUES (?, ?, ?)", accessions)
        conn.executemany(UPDATES_INSERT, updates)
        conn.executemany(RECORDS_UPSERT, raws)
        if count:
            self.stats.added += len(records)
        self._touch(ids)
        return ids

    def _work_row(self, record: WorkRecord, work_id: int, stamp: str) -> tuple:
        row = {**new_work_row(record, stamp), "id": work_id, "annotated_at": None}
        design = self._designs.get(id(record))
        if design is not None:
            row.update(study_design=design[0], design_source=design[1],
                       annotated_at=PREANNOTATED + stamp)
        return _work_values(row)

    def _touch(self, ids: Iterable[int]) -> None:
        if self.defer_fts:
            self.stats.touched.update(ids)
        else:
            sync_fts(self.conn, ids)

    # -- references -----------------------------------------------------------------------

    def _add_references(self, citing: list[tuple[int, WorkRecord]]) -> None:
        """Citation rows (and stub works) for new works, as ``_add_citation`` makes them.

        References are resolved against an in-memory map of the batch's identifiers; the rare
        reference that names two stored works (which the store then merges) goes through the
        store's own functions, and so does the rest of a citing work merged away that way.
        """
        if not citing:
            return
        conn = self.conn
        id_pairs = [[_id_pairs(ref) for ref in record["references"]] for _, record in citing]
        pairs = [p for ref_pairs in id_pairs for ids in ref_pairs for p in ids]
        works = _lookup(conn, pairs)
        state = {"next": self._next_id()}
        stubs: list[ReferenceRecord] = []  # references that make a stub work
        stub_ids: list[int] = []
        rows: list[tuple] = []
        moved: dict[int, int] = {}  # works merged away by a reference -> the work kept

        def follow(work_id: int) -> int:
            while work_id in moved:
                work_id = moved[work_id]
            return work_id

        def slow(citing_id: int, refs: list[ReferenceRecord], keys_of: list[str],
                 source: str) -> None:
            nonlocal works
            self._flush_refs(rows, stubs, stub_ids)
            before = conn.execute("SELECT count(*) FROM citations").fetchone()[0]
            for ref, key in zip(refs, keys_of):
                _add_citation(conn, citing_id, ref, source, key)
            self.stats.citations += conn.execute(
                "SELECT count(*) FROM citations").fetchone()[0] - before
            works = _lookup(conn, pairs)
            state["next"] = self._next_id()

        for (citing_id, record), ref_pairs in zip(citing, id_pairs):
            source = record["source"]
            sources = json.dumps([source])
            refs = record["references"]
            keys_of = self._ref_keys.get(id(record)) or ref_keys(refs)
            if citing_id in moved:
                slow(follow(citing_id), refs, keys_of, source)
                continue
            keys: set[str] = set()
            edges: set[tuple[int, int]] = set()  # (cited id, occurrence)
            for index, ref in enumerate(refs):
                key = keys_of[index]
                if key in keys:
                    continue
                ids = ref_pairs[index]
                matches = sorted({works[p] for p in ids if p in works})
                adds = bool(matches) and any(p not in works for p in ids)
                if adds and len(matches) == 1 and self._agrees(
                        matches[0], ids, stub_ids[0] if stub_ids else state["next"]):
                    # new identifiers for a written work that has none of its own there
                    cited_id = _ensure_work(conn, ref, (key, citing_id))
                    if cited_id is not None:
                        works.update({p: cited_id for p in ids})
                elif (not ids and ref.get("url")) or len(matches) > 1 or adds:
                    # a URL-only reference, one naming two stored works, or one adding an
                    # identifier to a stored work: the store's identity rule decides
                    self._flush_refs(rows, stubs, stub_ids)
                    cited_id = _ensure_work(conn, ref, (key, citing_id))
                    alive = {r[0] for r in conn.execute(
                        f"SELECT id FROM works WHERE id IN ({','.join('?' * len(matches))})",
                        matches)} if matches else set()
                    if cited_id is not None:  # works merged away were merged into it
                        moved.update({m: cited_id for m in matches if m not in alive})
                    if citing_id in moved:  # this citing work was merged into an older one
                        slow(follow(citing_id), refs[index:], keys_of[index:], source)
                        break
                    if alive != set(matches):
                        works = {p: w for p, w in works.items() if w in alive or w not in matches}
                    for row in conn.execute(
                            "SELECT id, doi, pmid, pmcid, openalex_id FROM works WHERE id IN "
                            f"({','.join('?' * (len(matches) + 1))})", [*matches, cited_id]):
                        works.update({(f, row[f]): row["id"] for f in ID_FIELDS if row[f]})
                    state["next"] = self._next_id()
                    keys, edges = self._citations_of(citing_id)
                    if key in keys:
                        continue
                elif matches:
                    cited_id = matches[0]
                elif ids:
                    cited_id = state["next"]
                    state["next"] += 1
                    stubs.append(ref)
                    stub_ids.append(cited_id)
                    works.update({p: cited_id for p in ids})
                else:
                    cited_id = None
                edge = (cited_id, occurrence(key))
                if edge in edges:
                    continue
                if cited_id == citing_id:
                    continue
                keys.add(key)
                if cited_id is not None:
                    edges.add((cited_id, edge[1]))
                rows.append(citation_row(citing_id, cited_id, key, ref, sources))
        self._flush_refs(rows, stubs, stub_ids)

    def _agrees(self, work_id: int, ids: list[tuple[str, str]], pending: int) -> bool:
        """The written work (ids below ``pending`` are) carries no other value for ``ids``."""
        if work_id >= pending:
            return False
        row = self.conn.execute("SELECT doi, pmid, pmcid, openalex_id FROM works WHERE id = ?",
                                (work_id,)).fetchone()
        return all(not row[name] or row[name] == value for name, value in ids)

    def _citations_of(self, citing_id: int) -> tuple[set[str], set[tuple[int, int]]]:
        rows = self.conn.execute("SELECT ref_key, cited_id, occurrence FROM citations "
                                 "WHERE citing_id = ?", (citing_id,)).fetchall()
        return {r[0] for r in rows}, {(r[1], r[2]) for r in rows if r[1] is not None}

    def _flush_refs(self, rows: list[tuple], stubs: list[ReferenceRecord],
                    stub_ids: list[int]) -> None:
        if stubs:
            if self._next_id() != stub_ids[0]:  # ids are handed out in order; a gap is a bug
                raise RuntimeError("stub ids out of step with the works table")
            # a stub named only by ids and a few fields: its row directly (what new_work_row
            # gives for it, without the general path's cost); stubs with an author the
            # general way
            records = [stub_record(r) for r in stubs]
            plain = [(r, i) for r, i in zip(records, stub_ids) if not r.get("authors")]
            _insert_stubs(self.conn, plain, now())
            self._touch(i for _, i in plain)
            rich = [(r, i) for r, i in zip(records, stub_ids) if r.get("authors")]
            if rich:
                self._insert_new([s for s, _ in rich], count=False, ids=[i for _, i in rich])
            self.stats.stubs += len(stubs)
        if rows:
            self.conn.executemany(INSERT_CITATION, rows)
            self.stats.citations += len(rows)
        rows.clear()
        stubs.clear()
        stub_ids.clear()


_DESCRIBING = frozenset((*STUB_FIELDS, "first_author"))


def _insert_stubs(conn: sqlite3.Connection, stubs: list[tuple[WorkRecord, int]],
                  stamp: str) -> None:
    """The works rows :func:`kb.store.new_work_row` gives stub records without authors
    (:func:`kb.store.stub_record`): their identifiers and stub fields, credited to
    ``reference``. One INSERT per
    shape (the fields present) binds only those values: references are mostly one or two
    identifiers, and binding the other twenty-odd NULLs cost more than the insert itself."""
    shapes: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for stub, work_id in stubs:
        names = tuple(n for n in _STUB_NAMES if stub.get(n) is not None and stub.get(n) != "")
        shapes.setdefault(names, []).append((work_id, *map(stub.__getitem__, names), stamp))
    for names, rows in shapes.items():
        conn.executemany(_stub_insert(names), rows)


_STUB_NAMES = ID_FIELDS + STUB_FIELDS


@lru_cache(maxsize=None)
def _stub_insert(names: tuple[str, ...]) -> str:
    """The INSERT for stubs with these fields: values bound, the rest constants of the shape
    (row (id, *values, stamp); the stamp is both created_at and updated_at)."""
    columns = ", ".join(("id",) + names + ("status", "provenance", "created_at", "updated_at"))
    provenance = provenance_json({name: "reference" for name in names})
    stamp = f"?{len(names) + 2}"
    values = ", ".join("?" * (len(names) + 1))
    return (f"INSERT INTO works({columns}) "
            f"VALUES ({values}, 'stub', '{provenance}', {stamp}, {stamp})")
