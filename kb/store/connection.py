"""Opening, migrating and transactions: the connection the rest of the store writes
through, and the full-text index kept in step with ``works``."""
from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import DatabaseError

_SQLITE_HEADER = b"SQLite format 3\x00"


# -- opening and migrating ------------------------------------------------------------------

def _scripts() -> list[tuple[int, str]]:
    scripts = []
    for entry in resources.files("kb.schema").iterdir():
        match = re.match(r"^(\d{4})_\w+\.sql$", entry.name)
        if match:
            scripts.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(scripts)


def latest_version() -> int:
    """The schema version this kb writes (the highest ``schema/NNNN_*.sql``)."""
    return _scripts()[-1][0]


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise DatabaseError(f"{path} is a folder, not a kb database")
    if path.exists() and path.stat().st_size:
        with path.open("rb") as handle:
            if handle.read(16) != _SQLITE_HEADER:
                raise DatabaseError(f"{path} is not a SQLite database",
                                    hint="pass --db with a kb database, or a new file name")


def connect(path: str | Path, *, create: bool = True, migrate_schema: bool = True,
            readonly: bool = False) -> sqlite3.Connection:
    """Open (and by default create and migrate) the knowledge base at ``path``.

    :param create: make a new database when ``path`` does not exist; otherwise raise.
    :param migrate_schema: apply pending migrations (off for callers that only inspect).
    :param readonly: open it for reading only (no migration), immutable when even that
        fails, as in a read-only folder or mount where SQLite cannot make its -shm file.
    :raises DatabaseError: the file is not SQLite, or was written by a newer kb.
    """
    path = Path(path)
    _check_file(path)
    if (readonly or not create) and not path.exists():
        raise DatabaseError(f"no knowledge base at {path}",
                            hint="run `kb init` (empty) or `kb build` (the curated KB), or pass --db")
    if readonly:
        return _connect_readonly(path)
    try:
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a damaged file fails here
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path} cannot be opened as a kb database: {exc}") from exc
    if version > latest_version():
        conn.close()
        raise DatabaseError(
            f"{path} was written by a newer kb (schema {version}; this kb knows {latest_version()})",
            hint="upgrade kb: pip install -U kb-cp")
    if migrate_schema and version < latest_version():
        migrate(conn)
    if migrate_schema and conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _connect_readonly(path: Path) -> sqlite3.Connection:
    error: sqlite3.Error | None = None
    for mode in ("mode=ro", "immutable=1"):
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=30,
                                   isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            error = exc
            continue
        if version > latest_version():
            conn.close()
            raise DatabaseError(f"{path} was written by a newer kb (schema {version}; this kb "
                                f"knows {latest_version()})", hint="upgrade kb: pip install -U kb-cp")
        return conn
    raise DatabaseError(f"{path} cannot be opened as a kb database: {error}")


def migrate(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Apply every ``schema/NNNN_*.sql`` newer than the file's ``user_version`` (up to
    ``target``, default the latest).

    Each script runs in its own transaction together with its ``user_version`` bump, so a
    failing step leaves the file at the previous version. Returns the new version.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, sql in _scripts():
        if number <= version or (target is not None and number > target):
            continue
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise DatabaseError(f"schema migration {number} failed: {exc}") from exc
        version = number
    return version


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``); nested calls become savepoints."""
    if conn.in_transaction:
        name = f"sp{id(object())}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def chunked(values: Sequence[Any], size: int = 500) -> Iterator[list[Any]]:
    """``values`` in lists of at most ``size``, for ``IN (?, …)`` queries.

    >>> list(chunked([1, 2, 3, 4, 5], 2))
    [[1, 2], [3, 4], [5]]
    """
    for start in range(0, len(values), size):
        yield list(values[start:start + size])


# -- full-text index ------------------------------------------------------------------------

def fts_insert(conn: sqlite3.Connection) -> str:
    """The statement that refills ``works_fts`` rows from ``works_fts_source``, for the KB's
    schema (schema 9 added the journal and trials columns)."""
    columns = ", ".join(r[1] for r in conn.execute("PRAGMA table_info(works_fts)"))
    return f"INSERT INTO works_fts(rowid, {columns}) SELECT * FROM works_fts_source"


def sync_fts(conn: sqlite3.Connection, work_ids: Iterable[int]) -> None:
    """Recompute the ``works_fts`` rows of these works (deleted works lose theirs)."""
    ids = sorted(set(work_ids))
    insert = fts_insert(conn) if ids else ""
    for chunk in chunked(ids):
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM works_fts WHERE rowid IN ({marks})", chunk)
        conn.execute(f"{insert} WHERE rowid IN ({marks})", chunk)


def sync_fts_of_trials(conn: sqlite3.Connection, trial_ids: Iterable[int]) -> None:
    """Recompute the ``works_fts`` rows of the works that report or pool these trials (their
    facts and outcome instruments are part of each work's row), where they changed."""
    stale: list[int] = []
    works: set[int] = set()
    for chunk in chunked(sorted(set(trial_ids))):
        works.update(r[0] for r in conn.execute(
            "SELECT work_id FROM trial_reports_all WHERE trial_id IN "
            f"({','.join('?' * len(chunk))})", chunk))
    for chunk in chunked(sorted(works)):
        marks = ",".join("?" * len(chunk))
        indexed = {r[0]: tuple(r[1:]) for r in conn.execute(
            f"SELECT rowid, * FROM works_fts WHERE rowid IN ({marks})", chunk)}
        stale.extend(r[0] for r in conn.execute(
            f"SELECT * FROM works_fts_source WHERE rowid IN ({marks})", chunk)
            if indexed.get(r[0]) != tuple(r[1:]))
    sync_fts(conn, stale)


def rebuild_fts(conn: sqlite3.Connection) -> None:
    """Refill ``works_fts`` from scratch (after a bulk import)."""
    with transaction(conn):
        conn.execute("DELETE FROM works_fts")
        conn.execute(fts_insert(conn))
