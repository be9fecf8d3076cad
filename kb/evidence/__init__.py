"""The evidence layer: study designs, trial facts, registry links, lineage and retractions.

``annotate(conn, work_ids=None)`` recomputes what the rules infer for some works (all when
None); call it after imports. Submodules: :mod:`.design` and :mod:`.extract` (pure rules),
:mod:`.lineage` and :mod:`.retractions` (pure inference), :mod:`.table` (the evidence table).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable

__all__ = ["annotate"]


def annotate(conn: sqlite3.Connection, work_ids: Iterable[int] | None = None) -> dict[str, int]:
    """(Re)compute designs, rule facts, lineage and retraction flags (see
    :func:`kb.evidence.pipeline.annotate`)."""
    from .pipeline import annotate as run
    return run(conn, work_ids)
