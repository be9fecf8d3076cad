"""Datasette on a knowledge base: read-only, with kb's metadata, facets, search and queries.

The database is always served as ``kb`` (whatever the file is called) so the metadata in
``schema/metadata.yaml`` applies. By default the file is opened *immutable*: Datasette never
writes and SQLite takes no locks, right for the bundled ``kb.db``. ``live=True`` opens it with
read-only connections that see what other ``kb`` commands write meanwhile.

Every connection is guarded (:class:`Guard`, a Datasette plugin): no value over
:data:`MAX_VALUE_BYTES` (``randomblob(1e9)`` fails at once), no dangerous SQL function
(``fts3_tokenizer``, ``load_extension``, …), and a watchdog interrupts the running queries
when the server's memory grows :data:`QUERY_MEMORY_BUDGET` over its size at start. On
loopback, only requests naming a loopback host are answered (no DNS rebinding).
"""
from __future__ import annotations

import ipaddress
import os
import sqlite3
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

from datasette import hookimpl

from .errors import DatabaseError

__all__ = ["load_metadata", "make_datasette", "schema_version", "is_loopback", "DB_NAME",
           "SETTINGS", "Guard", "MAX_VALUE_BYTES", "QUERY_MEMORY_BUDGET", "DENIED_FUNCTIONS"]

#: The name (and URL path) of the database in Datasette.
DB_NAME = "kb"
SETTINGS: dict[str, Any] = {"sql_time_limit_ms": 3000, "max_returned_rows": 2000,
                            "default_page_size": 50, "facet_time_limit_ms": 500}


#: No string or blob a query makes or reads may be larger (SQLITE_LIMIT_LENGTH).
MAX_VALUE_BYTES = 32 * 2**20
#: Queries are interrupted while the server holds this much more memory than at start.
QUERY_MEMORY_BUDGET = 300 * 2**20
DENIED_FUNCTIONS = frozenset({"fts3_tokenizer", "load_extension", "readfile", "writefile",
                              "edit", "fts5_source_id"})


def _rss() -> int:
    """This process's resident memory in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Guard:
    """The Datasette plugin that guards kb's served connections and requests."""

    __name__ = "kb_guard"  # Datasette lists plugins by name

    def __init__(self, *, loopback_only: bool, budget: int = QUERY_MEMORY_BUDGET) -> None:
        self.loopback_only = loopback_only
        self.budget = budget
        self._connections: list[sqlite3.Connection] = []  # Datasette keeps them open
        self._lock = threading.Lock()
        self._watching = False

    @hookimpl
    def prepare_connection(self, conn: sqlite3.Connection) -> None:
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.set_authorizer(_authorize)
        with self._lock:
            self._connections.append(conn)
            if not self._watching:
                self._watching = True
                threading.Thread(target=self._watch, args=(_rss(),), daemon=True,
                                 name="kb-memory-watchdog").start()

    def _watch(self, baseline: int) -> None:
        """Interrupt every connection's query while memory is over budget."""
        while True:
            time.sleep(0.05)
            if _rss() - baseline > self.budget:
                with self._lock:
                    connections = list(self._connections)
                for conn in connections:
                    conn.interrupt()

    @hookimpl
    def asgi_wrapper(self, datasette: Any) -> Any:
        def wrap(app: Any) -> Any:
            async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
                if scope.get("type") == "http" and self.loopback_only \
                        and not _loopback_host(dict(scope.get("headers") or []).get(b"host")):
                    await _refuse(send, b"kb serve answers only requests for 127.0.0.1, "
                                        b"localhost or [::1] (a foreign Host header)\n")
                    return
                await app(scope, receive, send)
            return guarded
        return wrap


def _authorize(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _loopback_host(header: bytes | None) -> bool:
    """Whether a Host header names this machine: 127.x, localhost or [::1], any port.

    >>> [_loopback_host(h) for h in (b"127.0.0.1:8001", b"localhost", b"[::1]:80", b"evil.com")]
    [True, True, True, False]
    """
    host = (header or b"").decode("latin-1").strip().lower()
    host = host[1:host.index("]")] if host.startswith("[") and "]" in host \
        else host.rpartition(":")[0] if host.count(":") == 1 else host
    return is_loopback(host) or host.endswith(".localhost")


async def _refuse(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def load_metadata() -> dict[str, Any]:
    """kb's Datasette metadata (``schema/metadata.yaml``)."""
    from datasette.utils import parse_metadata

    return parse_metadata(resources.files("kb.schema").joinpath("metadata.yaml")
                          .read_text(encoding="utf-8"))


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def schema_version(path: str | Path) -> int:
    """The schema version of the KB at ``path`` (nothing is written).

    :raises DatabaseError: ``path`` is missing or not a kb database.
    """
    from . import store

    path = Path(path)
    if not path.is_file():
        raise DatabaseError(f"no knowledge base at {path}",
                            hint="run `kb build --offline` (the curated KB) or pass --db")
    conn = store.connect(path, readonly=True)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def make_datasette(path: str | Path, *, live: bool = False, loopback_only: bool = True) -> Any:
    """A :class:`datasette.app.Datasette` serving the KB at ``path`` read-only as ``kb``,
    guarded by :class:`Guard` (``loopback_only``: answer only loopback Host headers).

    :raises DatabaseError: ``path`` is missing or not a kb database.
    """
    from datasette.app import Datasette
    from datasette.database import Database
    from datasette.plugins import pm

    path = Path(path)
    schema_version(path)  # is it a kb database?
    if pm.get_plugin("kb-guard") is not None:
        pm.unregister(name="kb-guard")
    pm.register(Guard(loopback_only=loopback_only), name="kb-guard")
    from .datasette import options

    ds = Datasette(metadata=load_metadata(), settings=SETTINGS, **options())
    if "_memory" in ds.databases:
        ds.remove_database("_memory")  # no scratch database next to the KB
    ds.add_database(Database(ds, path=str(path.resolve()), is_mutable=live), name=DB_NAME)
    return ds
