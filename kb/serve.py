"""Datasette on a knowledge base: read-only, with kb's metadata, facets, search and queries.

The database is always served as ``kb`` (whatever the file is called) so the metadata in
``schema/metadata.yaml`` applies. By default the file is opened *immutable*: Datasette never
writes and SQLite takes no locks, right for the bundled ``kb.db``. ``live=True`` opens it with
read-only connections that see what other ``kb`` commands write meanwhile.
"""
from __future__ import annotations

import ipaddress
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import DatabaseError

__all__ = ["load_metadata", "make_datasette", "schema_version", "is_loopback", "DB_NAME",
           "SETTINGS"]

#: The name (and URL path) of the database in Datasette.
DB_NAME = "kb"
#: Datasette settings for kb.
SETTINGS: dict[str, Any] = {"sql_time_limit_ms": 3000, "max_returned_rows": 2000,
                            "default_page_size": 50, "facet_time_limit_ms": 500}


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
    conn = store.connect(path, create=False, migrate_schema=False)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def make_datasette(path: str | Path, *, live: bool = False) -> Any:
    """A :class:`datasette.app.Datasette` serving the KB at ``path`` read-only as ``kb``.

    :raises DatabaseError: ``path`` is missing or not a kb database.
    """
    from datasette.app import Datasette
    from datasette.database import Database

    path = Path(path)
    schema_version(path)  # is it a kb database?
    from .datasette import options

    ds = Datasette(metadata=load_metadata(), settings=SETTINGS, **options())
    if "_memory" in ds.databases:
        ds.remove_database("_memory")  # no scratch database next to the KB
    ds.add_database(Database(ds, path=str(path.resolve()), is_mutable=live), name=DB_NAME)
    return ds
