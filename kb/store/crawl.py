"""Writes for snowball crawls: the crawl row and its frontier (schema/0003_crawl.sql)."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from ..clock import now
from .connection import transaction
from .works import upsert_work

__all__ = ["start_crawl", "enqueue", "set_states", "drop_queued", "finish_crawl", "next_batch",
           "counts", "interrupt_crawl", "drop_crawl"]


def start_crawl(conn: sqlite3.Connection, seed: str, direction: str, max_depth: int,
                max_works: int, topic: str, *, fresh: bool = False) -> tuple[int, str]:
    """The crawl with these settings, created (with its seed queued) if new; ``fresh``
    starts a finished or interrupted one over. Returns ``(crawl_id, status)``."""
    with transaction(conn):
        row = conn.execute("SELECT id, status FROM crawls WHERE seed = ? AND direction = ? AND "
                           "max_depth = ? AND max_works = ? AND topic = ?",
                           (seed, direction, max_depth, max_works, topic)).fetchone()
        if row is not None and not fresh:
            if row["status"] == "interrupted":
                conn.execute("UPDATE crawls SET status = 'running', updated_at = ? WHERE id = ?",
                             (now(), row["id"]))
            return row["id"], row["status"]
        if row is not None:
            conn.execute("DELETE FROM crawls WHERE id = ?", (row["id"],))
        stamp = now()
        crawl_id = conn.execute(
            "INSERT INTO crawls(seed, direction, max_depth, max_works, topic, started_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (seed, direction, max_depth, max_works, topic, stamp, stamp)).fetchone()[0]
        work_id = upsert_work(conn, {"source": "reference", "status": "stub", "doi": seed}).work_id
        enqueue(conn, crawl_id, [work_id], 0)
        return crawl_id, "running"


def enqueue(conn: sqlite3.Connection, crawl_id: int, work_ids: Iterable[int], depth: int) -> int:
    """Queue works not yet in the frontier, in the given order; returns how many were new."""
    added = 0
    seq = conn.execute("SELECT coalesce(max(seq), 0) FROM crawl_frontier WHERE crawl_id = ?",
                       (crawl_id,)).fetchone()[0]
    for work_id in work_ids:
        seq += 1
        cursor = conn.execute("INSERT OR IGNORE INTO crawl_frontier(crawl_id, work_id, depth, seq) "
                              "VALUES (?, ?, ?, ?)", (crawl_id, work_id, depth, seq))
        added += cursor.rowcount
    return added


def set_states(conn: sqlite3.Connection, crawl_id: int, states: dict[int, str]) -> None:
    """Record what became of frontier works (stored, off-topic, missing, over-limit)."""
    conn.executemany("UPDATE crawl_frontier SET state = ? WHERE crawl_id = ? AND work_id = ?",
                     [(state, crawl_id, work_id) for work_id, state in states.items()])
    conn.execute("UPDATE crawls SET updated_at = ? WHERE id = ?", (now(), crawl_id))


def drop_queued(conn: sqlite3.Connection, crawl_id: int, state: str) -> int:
    """Give every still-queued work of a crawl ``state`` (e.g. over-limit); how many."""
    with transaction(conn):
        return conn.execute("UPDATE crawl_frontier SET state = ? WHERE crawl_id = ? AND "
                            "state = 'queued'", (state, crawl_id)).rowcount


def finish_crawl(conn: sqlite3.Connection, crawl_id: int) -> None:
    """Mark a crawl done."""
    with transaction(conn):
        stamp = now()
        conn.execute("UPDATE crawls SET status = 'done', updated_at = ?, finished_at = ? "
                     "WHERE id = ?", (stamp, stamp, crawl_id))


def interrupt_crawl(conn: sqlite3.Connection, crawl_id: int) -> None:
    """Mark a crawl that failed part-way ``interrupted``: the next run with the same settings
    resumes it."""
    with transaction(conn):
        conn.execute("UPDATE crawls SET status = 'interrupted', updated_at = ? WHERE id = ?",
                     (now(), crawl_id))


def drop_crawl(conn: sqlite3.Connection, crawl_id: int) -> None:
    """Forget a crawl that got nowhere (its frontier goes with it; works stay)."""
    with transaction(conn):
        conn.execute("DELETE FROM crawls WHERE id = ?", (crawl_id,))


def next_batch(conn: sqlite3.Connection, crawl_id: int, size: int) -> list[sqlite3.Row]:
    """The next queued works, breadth first, with their identifiers."""
    return conn.execute(
        "SELECT f.work_id, f.depth, w.doi, w.pmid, w.openalex_id FROM crawl_frontier f "
        "JOIN works w ON w.id = f.work_id WHERE f.crawl_id = ? AND f.state = 'queued' "
        "ORDER BY f.depth, f.seq LIMIT ?", (crawl_id, size)).fetchall()


def counts(conn: sqlite3.Connection, crawl_id: int) -> dict[str, int]:
    """Frontier works per state."""
    return {row[0]: row[1] for row in conn.execute(
        "SELECT state, count(*) FROM crawl_frontier WHERE crawl_id = ? GROUP BY state",
        (crawl_id,))}
