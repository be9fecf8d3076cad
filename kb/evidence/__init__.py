"""The evidence layer: study designs, trial facts, registry links, lineage and retractions.

``annotate(conn, work_ids=None)`` recomputes what the rules infer for some works (all when
None); ``annotate_due(conn)`` does it for every work stored or changed since it was last
annotated (what ``kb add``, ``kb pubmed``, ``kb import`` and ``kb crawl`` call after they store). Submodules: :mod:`.design` and :mod:`.extract` (pure rules),
:mod:`.lineage` and :mod:`.retractions` (pure inference), :mod:`.table` (the evidence table).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable

__all__ = ["annotate", "annotate_due"]


def annotate(conn: sqlite3.Connection, work_ids: Iterable[int] | None = None) -> dict[str, int]:
    """(Re)compute designs, rule facts, lineage and retraction flags (see
    :func:`kb.evidence.pipeline.annotate`)."""
    from .pipeline import annotate as run
    return run(conn, work_ids)



def annotate_due(conn: sqlite3.Connection) -> dict[str, int]:
    """Annotate every work stored or changed since it was last annotated (including what a
    killed run stored), in one transaction."""
    from .. import store
    from ..store.evidence import due_for_annotation

    with store.transaction(conn):
        ids = due_for_annotation(conn)
        return annotate(conn, ids) if ids else {"works": 0}
