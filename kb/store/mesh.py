"""MeSH headings: each (descriptor, descriptor UI, qualifier) stored once in ``mesh_terms``, a
work's headings in ``work_mesh`` by position and term id (schema 13). The ``mesh`` view joins
them back into the old one-row-per-heading shape that every reader uses."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Optional

from ..records import MeshRecord

__all__ = ["insert_mesh"]

Term = tuple[str, Optional[str], Optional[str]]


def insert_mesh(conn: sqlite3.Connection,
                headings: Iterable[tuple[int, Sequence[MeshRecord]]]) -> None:
    """Store each work's headings in their order (the caller has deleted any old ones),
    adding the terms the dictionary lacks."""
    rows = [(work_id, position, _term(m), int(bool(m.get("major"))))
            for work_id, items in headings for position, m in enumerate(items, 1)]
    ids = _term_ids(conn, {row[2] for row in rows})
    conn.executemany("INSERT INTO work_mesh(work_id, position, term_id, major) "
                     "VALUES (?, ?, ?, ?)", [(w, p, ids[t], major) for w, p, t, major in rows])


def _term(heading: MeshRecord) -> Term:
    return heading["descriptor"], heading.get("descriptor_ui"), heading.get("qualifier")


def _term_ids(conn: sqlite3.Connection, terms: set[Term]) -> dict[Term, int]:
    """The id of each term, the missing ones inserted (in a fixed order)."""
    ids = _known(conn, terms) if terms else {}
    for term in sorted((t for t in terms if t not in ids),
                       key=lambda t: (t[0], t[1] or "", t[2] or "")):
        ids[term] = conn.execute("INSERT INTO mesh_terms(descriptor, descriptor_ui, qualifier) "
                                 "VALUES (?, ?, ?) RETURNING id", term).fetchone()[0]
    return ids


def _known(conn: sqlite3.Connection, terms: set[Term]) -> dict[Term, int]:
    """The stored ones of ``terms``, found through the case-blind descriptor index."""
    descriptors = json.dumps(sorted({t[0] for t in terms}))
    rows = conn.execute("SELECT descriptor, descriptor_ui, qualifier, id FROM mesh_terms "
                        "WHERE descriptor COLLATE NOCASE IN (SELECT value FROM json_each(?))",
                        (descriptors,))
    return {(d, u, q): i for d, u, q, i in rows if (d, u, q) in terms}
