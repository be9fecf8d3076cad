"""The evidence layer: study designs, trial facts, registry links, lineage and retractions.

``annotate(conn, work_ids=None)`` recomputes what the rules infer for some works (all when
None); ``annotate_since(conn, stamp)`` does it for the works stored or changed since ``stamp``
(what ``kb add``, ``kb pubmed``, ``kb import`` and ``kb crawl`` call after they store). Submodules: :mod:`.design` and :mod:`.extract` (pure rules),
:mod:`.lineage` and :mod:`.retractions` (pure inference), :mod:`.table` (the evidence table).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable

__all__ = ["annotate", "annotate_since"]


def annotate(conn: sqlite3.Connection, work_ids: Iterable[int] | None = None) -> dict[str, int]:
    """(Re)compute designs, rule facts, lineage and retraction flags (see
    :func:`kb.evidence.pipeline.annotate`)."""
    from .pipeline import annotate as run
    return run(conn, work_ids)


def annotate_since(conn: sqlite3.Connection, stamp: str) -> dict[str, int]:
    """Annotate the works added or changed at or after ``stamp`` (a :func:`kb.store.now` value
    taken before the run), in one transaction."""
    from .. import store

    ids = [r[0] for r in conn.execute("SELECT id FROM works WHERE updated_at >= ?", (stamp,))]
    if not ids:
        return {"works": 0}
    with store.transaction(conn):
        return annotate(conn, ids)
