"""Counts that describe a knowledge base (read-only)."""
from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["collect_stats"]


def _counts(conn: sqlite3.Connection, sql: str) -> dict[str, int]:
    return {str(key): count for key, count in conn.execute(sql)}


def collect_stats(conn: sqlite3.Connection) -> dict[str, Any]:
    """Works by status, type and design; citations resolved and not; open identity conflicts
    and merges in force; trials and typed lineage edges; sources and last fetch."""
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    return {
        "schema_version": one("PRAGMA user_version"),
        "works": one("SELECT count(*) FROM works"),
        "works_by_status": _counts(conn, "SELECT status, count(*) FROM works GROUP BY 1 ORDER BY 2 DESC"),
        "works_by_type": _counts(conn, "SELECT coalesce(type, 'unknown'), count(*) FROM works "
                                       "GROUP BY 1 ORDER BY 2 DESC, 1"),
        "works_by_design": _counts(conn, "SELECT coalesce(study_design, 'unknown'), count(*) "
                                         "FROM works GROUP BY 1 ORDER BY 2 DESC, 1"),
        "retracted": one("SELECT count(*) FROM works WHERE is_retracted"),
        "authors": one("SELECT count(*) FROM authors"),
        "citations": one("SELECT count(*) FROM citations"),
        "citations_resolved": one("SELECT count(*) FROM citations WHERE cited_id IS NOT NULL"),
        "citations_unresolved": one("SELECT count(*) FROM citations WHERE cited_id IS NULL"),
        "identity_conflicts": one("SELECT count(*) FROM identity_conflicts "
                                  "WHERE resolved_at IS NULL"),
        "merges": one("SELECT count(*) FROM merges WHERE undone_at IS NULL"),
        "trials": one("SELECT count(*) FROM trials"),
        "lineage": _counts(conn, "SELECT relation, count(*) FROM lineage GROUP BY 1 ORDER BY 1"),
        "sources": {row[0]: {"records": row[1], "last_fetch": row[2]} for row in conn.execute(
            "SELECT source, count(*), max(fetched_at) FROM records GROUP BY 1 ORDER BY 1")},
    }
