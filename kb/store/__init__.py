"""The one module that writes to the knowledge base.

Opening (:func:`connect`) applies the SQL migrations in ``schema/`` (``PRAGMA user_version``),
turns on WAL, foreign keys and a busy timeout. Every write takes the connection first and runs
in one transaction (:func:`transaction`).

Merge rule (:func:`upsert_work`): a record is matched to stored works by DOI, PMID, PMCID or
OpenAlex id (by URL only when it has none of these). A record that matches two rows merges them
into the older one, moving citations, authors and everything else that points at the younger.
Per field, the stored value is replaced when the field is empty, or when the new source ranks at
least as high as the source that gave the stored value (a source refreshing its own value counts
as "as high"). Ranks follow :data:`PRECEDENCE` (default :data:`kb.records.SOURCES`:
crossref > pubmed > datacite > doi.org > openalex > corpus > webpage > import > reference),
with a few fields ranked per field (PubMed's abstract, language and ISO abbreviation; OpenAlex's
cited-by count). Lists (authors, MeSH, keywords, publication types) are replaced as a whole
by the same rule; accessions and updates accumulate. Nothing is written when nothing changes, so
upserting the same record twice leaves the database, ``updated_at`` included, as it was.
"""
from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import DatabaseError, InputError
from ..records import SOURCES, LinkRecord, ReferenceRecord, WorkRecord, WorkRef

__all__ = ["chunked", "connect", "migrate", "latest_version", "transaction", "upsert_work", "upsert_works",
           "add_links", "delete_works", "merge_works", "link_citation", "set_study_design",
           "set_study_designs",
           "rebuild_fts", "sync_fts", "sync_fts_of_trials", "fts_insert", "UpsertResult",
           "PRECEDENCE", "now"]

ID_FIELDS = ("doi", "pmid", "pmcid", "openalex_id")
SCALAR_FIELDS = ("title", "subtitle", "abstract", "journal", "journal_abbrev", "issn",
                 "publisher", "year", "pub_date", "volume", "issue", "pages", "language",
                 "type", "url", "license", "cited_by_count", "note")
LIST_FIELDS = ("authors", "mesh", "keywords", "publication_types")

#: Per-field source order where it differs from :data:`kb.records.SOURCES`.
PRECEDENCE: dict[str, tuple[str, ...]] = {
    "abstract": ("pubmed", "crossref", "datacite", "doi.org", "openalex", "corpus", "webpage",
                 "import", "reference"),
    "journal_abbrev": ("pubmed", "crossref", "corpus", "openalex", "datacite", "doi.org",
                       "webpage", "import", "reference"),
    "language": ("pubmed", "crossref", "datacite", "doi.org", "openalex", "corpus", "webpage",
                 "import", "reference"),
    "mesh": ("pubmed", "corpus", "import", "crossref", "datacite", "doi.org", "openalex",
             "webpage", "reference"),
    "cited_by_count": ("openalex", "crossref", "datacite", "doi.org", "pubmed", "corpus",
                       "webpage", "import", "reference"),
}
_SQLITE_HEADER = b"SQLite format 3\x00"


class UpsertResult(NamedTuple):
    """What :func:`upsert_work` did: ``action`` is added, updated or unchanged."""

    work_id: int
    action: str
    merged: tuple[int, ...] = ()


def now() -> str:
    """The current UTC time, ISO 8601 to the millisecond (fine enough for "changed since")."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rank(field: str, source: str | None) -> int:
    order = PRECEDENCE.get(field, SOURCES)
    return order.index(source) if source in order else len(order)


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


def connect(path: str | Path, *, create: bool = True, migrate_schema: bool = True
            ) -> sqlite3.Connection:
    """Open (and by default create and migrate) the knowledge base at ``path``.

    :param create: make a new database when ``path`` does not exist; otherwise raise.
    :param migrate_schema: apply pending migrations (off for callers that only inspect).
    :raises DatabaseError: the file is not SQLite, or was written by a newer kb.
    """
    path = Path(path)
    _check_file(path)
    if not create and not path.exists():
        raise DatabaseError(f"no knowledge base at {path}",
                            hint="run `kb init` (empty) or `kb build` (the curated KB), or pass --db")
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


# -- finding works --------------------------------------------------------------------------

def _matches(conn: sqlite3.Connection, ids: dict[str, Any], url: str | None) -> list[int]:
    found: set[int] = set()
    for field in ID_FIELDS:
        if ids.get(field):
            row = conn.execute(f"SELECT id FROM works WHERE {field} = ?", (ids[field],)).fetchone()
            if row:
                found.add(row[0])
    if not found and not any(ids.get(f) for f in ID_FIELDS) and url:
        row = conn.execute("SELECT id FROM works WHERE url = ? ORDER BY id LIMIT 1",
                           (url,)).fetchone()
        if row:
            found.add(row[0])
    return sorted(found)


# -- the merge rule -------------------------------------------------------------------------

def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _wins(field: str, new_source: str, old_value: Any, old_source: str | None) -> bool:
    """True when a non-empty value from ``new_source`` should replace the stored one."""
    if _empty(old_value):
        return True
    return _rank(field, new_source) <= _rank(field, old_source)


def _author_key(author: dict[str, Any]) -> str:
    if author.get("orcid"):
        return f"orcid:{author['orcid']}"
    if author.get("family"):
        return f"name:{author['family'].strip().lower()}|{(author.get('given') or '').strip().lower()}"
    return f"name:{(author.get('name') or '').strip().lower()}"


def _author_name(author: dict[str, Any]) -> str:
    if author.get("family"):
        return " ".join(p for p in (author.get("given"), author["family"]) if p).strip()
    return (author.get("name") or "").strip()


def _write_list(conn: sqlite3.Connection, work_id: int, field: str, items: list) -> None:
    if field == "authors":
        previous = _author_ids(conn, work_id)
        conn.execute("DELETE FROM work_authors WHERE work_id = ?", (work_id,))
        position = 0
        for author in items:
            name = _author_name(author)
            if not name:
                continue
            position += 1
            author_id = conn.execute(
                "INSERT INTO authors(key, family, given, name, orcid) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET key = excluded.key RETURNING id",
                (_author_key(author), author.get("family"), author.get("given"), name,
                 author.get("orcid"))).fetchone()[0]
            conn.execute("INSERT INTO work_authors(work_id, position, author_id, affiliation) "
                         "VALUES (?, ?, ?, ?)", (work_id, position, author_id,
                                                 author.get("affiliation")))
        _drop_orphan_authors(conn, previous)
    elif field == "mesh":
        conn.execute("DELETE FROM mesh WHERE work_id = ?", (work_id,))
        conn.executemany(
            "INSERT INTO mesh(work_id, descriptor, descriptor_ui, qualifier, major) "
            "VALUES (?, ?, ?, ?, ?)",
            [(work_id, m["descriptor"], m.get("descriptor_ui"), m.get("qualifier"),
              int(bool(m.get("major")))) for m in items])
    elif field == "keywords":
        conn.execute("DELETE FROM keywords WHERE work_id = ?", (work_id,))
        conn.executemany("INSERT OR IGNORE INTO keywords(work_id, keyword) VALUES (?, ?)",
                         [(work_id, k) for k in items if k])
    elif field == "publication_types":
        conn.execute("DELETE FROM publication_types WHERE work_id = ?", (work_id,))
        conn.executemany("INSERT OR IGNORE INTO publication_types(work_id, type) VALUES (?, ?)",
                         [(work_id, t) for t in items if t])


def _author_ids(conn: sqlite3.Connection, work_id: int) -> set[int]:
    return {r[0] for r in conn.execute("SELECT author_id FROM work_authors WHERE work_id = ?",
                                       (work_id,))}


def _drop_orphan_authors(conn: sqlite3.Connection, author_ids: Iterable[int]) -> None:
    """Delete these authors if no work names them any more (a replaced list, a merge)."""
    conn.executemany("DELETE FROM authors WHERE id = ?1 AND NOT EXISTS "
                     "(SELECT 1 FROM work_authors WHERE author_id = ?1)",
                     [(a,) for a in author_ids])


def _read_list(conn: sqlite3.Connection, work_id: int, field: str) -> list:
    if field == "authors":
        rows = conn.execute(
            "SELECT a.family, a.given, a.name, a.orcid, wa.affiliation FROM work_authors wa "
            "JOIN authors a ON a.id = wa.author_id WHERE wa.work_id = ? ORDER BY wa.position",
            (work_id,))
        return [{"family": r[0], "given": r[1], "name": None if r[0] else r[2], "orcid": r[3],
                 "affiliation": r[4]} for r in rows]
    if field == "mesh":
        return [dict(r) for r in conn.execute(
            "SELECT descriptor, descriptor_ui, qualifier, major FROM mesh WHERE work_id = ? "
            "ORDER BY rowid", (work_id,))]
    table, column = {"keywords": ("keywords", "keyword"),
                     "publication_types": ("publication_types", "type")}[field]
    return [r[0] for r in conn.execute(f"SELECT {column} FROM {table} WHERE work_id = ?",
                                       (work_id,))]


def _normalized_list(field: str, items: list) -> list:
    """The list as it would read back from the database, for change detection."""
    if field == "authors":
        out = []
        for a in items:
            if not _author_name(a):
                continue
            out.append({"family": a.get("family"), "given": a.get("given"),
                        "name": None if a.get("family") else _author_name(a),
                        "orcid": a.get("orcid"), "affiliation": a.get("affiliation")})
        return out
    if field == "mesh":
        return [{"descriptor": m["descriptor"], "descriptor_ui": m.get("descriptor_ui"),
                 "qualifier": m.get("qualifier"), "major": int(bool(m.get("major")))}
                for m in items]
    return sorted(set(i for i in items if i))


def _list_changed(conn: sqlite3.Connection, work_id: int, field: str, items: list) -> bool:
    current = _read_list(conn, work_id, field)
    if field in ("keywords", "publication_types"):
        current = sorted(current)
    if field == "authors":  # by identity: an author found by ORCID keeps its first name form
        return [(_author_key(a), a["affiliation"]) for a in current] != \
            [(_author_key(a), a["affiliation"]) for a in _normalized_list(field, items)]
    return current != _normalized_list(field, items)


def _insert_row(conn: sqlite3.Connection, values: dict[str, Any]) -> int:
    stamp = now()
    values = {**values, "created_at": stamp, "updated_at": stamp}
    columns = ", ".join(values)
    marks = ", ".join("?" * len(values))
    return conn.execute(f"INSERT INTO works({columns}) VALUES ({marks}) RETURNING id",
                        list(values.values())).fetchone()[0]


def _apply(conn: sqlite3.Connection, work_id: int, record: WorkRecord) -> bool:
    """Merge ``record`` into the stored work ``work_id``; return True if anything changed."""
    source = record["source"]
    row = dict(conn.execute("SELECT * FROM works WHERE id = ?", (work_id,)).fetchone())
    provenance = json.loads(row["provenance"])
    changes: dict[str, Any] = {}
    vouched = False  # a stronger source now gives a value already stored
    for field in ID_FIELDS + SCALAR_FIELDS:
        value = record.get(field)
        if _empty(value):
            continue
        if value == row[field]:
            if _rank(field, source) < _rank(field, provenance.get(field)):
                provenance[field] = source
                vouched = True
            continue
        if _wins(field, source, row[field], provenance.get(field)):
            changes[field] = value
            provenance[field] = source
    if record.get("study_design"):
        design_source = "curated" if source == "corpus" else source
        if row["design_source"] != "curated" or design_source == "curated":
            if (row["study_design"], row["design_source"]) != (record["study_design"], design_source):
                changes["study_design"] = record["study_design"]
                changes["design_source"] = design_source
    is_retracted = int(bool(row["is_retracted"] or record.get("is_retracted") or any(
        u.get("kind") == "retraction" and u.get("direction") == "updated-by"
        for u in record.get("updates") or [])))
    if is_retracted != row["is_retracted"]:
        changes["is_retracted"] = is_retracted
    status = record.get("status") or "full"
    if row["status"] == "stub" and status == "full":
        changes["status"] = "full"
    strong = _rank("title", source) < _rank("title", "corpus") and status == "full"
    unverified = 0 if strong else int(bool(row["unverified"] or record.get("unverified")))
    if unverified != row["unverified"]:
        changes["unverified"] = unverified

    lists_changed = False
    for field in LIST_FIELDS:
        items = record.get(field)
        if not items:
            continue
        current_source = provenance.get(field)
        has_current = current_source is not None
        if has_current and _rank(field, source) > _rank(field, current_source):
            continue
        if _list_changed(conn, work_id, field, items):
            _write_list(conn, work_id, field, items)
            lists_changed = True
        if provenance.get(field) != source:
            provenance[field] = source
            lists_changed = True
    extras_changed = _add_extras(conn, work_id, record)
    if changes or lists_changed or vouched:
        changes["provenance"] = json.dumps(provenance, sort_keys=True)
    if not changes and not extras_changed:
        return False
    changes["updated_at"] = now()
    assignments = ", ".join(f"{k} = ?" for k in changes)
    conn.execute(f"UPDATE works SET {assignments} WHERE id = ?", [*changes.values(), work_id])
    return True


#: Add an update unless the same one is stored (UNIQUE cannot see it: NULLs are distinct).
UPDATES_INSERT = (
    "INSERT INTO updates(work_id, kind, direction, other_doi, other_pmid, label, source) "
    "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE NOT EXISTS (SELECT 1 FROM updates WHERE "
    "work_id = ?1 AND kind = ?2 AND direction = ?3 AND other_doi IS ?4 AND other_pmid IS ?5 "
    "AND source = ?7)")


def _add_extras(conn: sqlite3.Connection, work_id: int, record: WorkRecord) -> bool:
    """Accumulate accessions and updates; True if a row was added."""
    before = conn.total_changes
    conn.executemany(
        "INSERT OR IGNORE INTO accessions(work_id, bank, accession) VALUES (?, ?, ?)",
        [(work_id, a["bank"], a["accession"]) for a in record.get("accessions") or []])
    conn.executemany(
        UPDATES_INSERT,
        [(work_id, u["kind"], u.get("direction", "updated-by"), u.get("doi"), u.get("pmid"),
          u.get("label"), u.get("source") or record["source"])
         for u in record.get("updates") or []])
    return conn.total_changes != before


def _new_work(conn: sqlite3.Connection, record: WorkRecord) -> int:
    ids = {f: record.get(f) for f in ID_FIELDS if record.get(f)}
    status = record.get("status") or "full"
    work_id = _insert_row(conn, {**ids, "status": status, "provenance": "{}"})
    _apply(conn, work_id, record)
    conn.execute("UPDATE works SET updated_at = created_at WHERE id = ?", (work_id,))
    return work_id


def _store_raw(conn: sqlite3.Connection, work_id: int, record: WorkRecord) -> None:
    if record.get("raw") is None or not record.get("source_id"):
        return
    conn.execute(
        "INSERT INTO records(source, source_id, work_id, url, fetched_at, body) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(source, source_id) DO UPDATE SET "
        "work_id = excluded.work_id, url = excluded.url, fetched_at = excluded.fetched_at, "
        "body = excluded.body WHERE body IS NOT excluded.body OR work_id IS NOT excluded.work_id",
        (record["source"], record["source_id"], work_id, record.get("source_url"),
         record.get("fetched_at") or now(), record["raw"]))


def upsert_work(conn: sqlite3.Connection, record: WorkRecord) -> UpsertResult:
    """Store one record, merging it with the works it identifies (see the module docstring).

    :raises InputError: the record names no source.
    """
    with transaction(conn):
        return _upsert(conn, record)


def upsert_works(conn: sqlite3.Connection, records: Iterable[WorkRecord]) -> list[UpsertResult]:
    """Store many records in one transaction."""
    with transaction(conn):
        return [_upsert(conn, record) for record in records]


def _upsert(conn: sqlite3.Connection, record: WorkRecord) -> UpsertResult:
    if record.get("source") not in SOURCES:
        raise InputError(f"record has an unknown source: {record.get('source')!r}")
    matches = _matches(conn, record, record.get("url"))
    merged: tuple[int, ...] = ()
    if not matches:
        work_id, action = _new_work(conn, record), "added"
    else:
        work_id = matches[0]
        for other in matches[1:]:
            merge_works(conn, work_id, other)
        merged = tuple(matches[1:])
        changed = _apply(conn, work_id, record)
        action = "updated" if changed or merged else "unchanged"
    _store_raw(conn, work_id, record)
    touched = {work_id}
    if record.get("references"):
        if _add_references(conn, work_id, record["references"], record["source"]):
            action = "updated" if action == "unchanged" else action
    if action != "unchanged":
        sync_fts(conn, touched | set(merged))
    return UpsertResult(work_id, action, merged)


# -- citations ------------------------------------------------------------------------------

def _ref_key(ref: ReferenceRecord | WorkRef) -> str:
    for field, prefix in (("doi", "doi"), ("pmid", "pmid"), ("pmcid", "pmcid"),
                          ("openalex_id", "openalex")):
        if ref.get(field):
            return f"{prefix}:{ref[field]}"
    text = ref.get("unstructured") or " ".join(
        str(ref.get(f) or "") for f in ("first_author", "year", "title", "journal", "volume",
                                        "first_page"))
    text = _NON_WORD.sub(" ", text.lower()).strip()
    return "text:" + hashlib.sha1(text.encode()).hexdigest()[:16]


_NON_WORD = re.compile(r"\W+")


def _ensure_work(conn: sqlite3.Connection, ref: ReferenceRecord | WorkRef) -> int | None:
    """The id of the work a reference names by identifier, creating a stub if needed."""
    ids = {f: ref.get(f) for f in ID_FIELDS if ref.get(f)}
    if not ids and not ref.get("url"):
        return None
    matches = _matches(conn, ids, ref.get("url"))
    if matches:
        for other in matches[1:]:
            merge_works(conn, matches[0], other)
        row = conn.execute("SELECT doi, pmid, pmcid, openalex_id FROM works WHERE id = ?",
                           (matches[0],)).fetchone()
        if any(ids[f] and not row[f] for f in ids):  # as if the stub had been made first
            _apply(conn, matches[0], {"source": "reference", "status": "stub",  # type: ignore[typeddict-item]
                                      **ids})
        return matches[0]
    stub: WorkRecord = {"source": "reference", "status": "stub", **ids,  # type: ignore[typeddict-item]
                        "title": ref.get("title"), "year": ref.get("year"),
                        "journal": ref.get("journal"), "url": ref.get("url"),
                        "volume": ref.get("volume")}
    if ref.get("first_author"):
        stub["authors"] = [{"family": ref["first_author"]}]
    work_id = _new_work(conn, stub)
    sync_fts(conn, [work_id])
    return work_id


def _credit_source(conn: sqlite3.Connection, row: sqlite3.Row, source: str) -> bool:
    """Add ``source`` to a stored citation row's sources; True if it was not there yet."""
    if source in json.loads(row["sources"]):
        return False
    conn.execute("UPDATE citations SET sources = ? WHERE id = ?",
                 (_merge_sources(row["sources"], source), row["id"]))
    return True


def _merge_sources(current: str, source: str) -> str:
    sources = json.loads(current)
    if source not in sources:
        sources.append(source)
    return json.dumps(sources)


def link_citation(conn: sqlite3.Connection, citation_id: int, cited_id: int, how: str,
                  score: float | None = None) -> int:
    """Point a citation row at ``cited_id``; if that edge already exists, fold this row into it.

    Returns the id of the row that now carries the edge.
    """
    row = conn.execute("SELECT id, citing_id, sources FROM citations WHERE id = ?",
                       (citation_id,)).fetchone()
    existing = conn.execute(
        "SELECT id, sources FROM citations WHERE citing_id = ? AND cited_id = ? AND id != ?",
        (row["citing_id"], cited_id, citation_id)).fetchone()
    if row["citing_id"] == cited_id:
        conn.execute("DELETE FROM citations WHERE id = ?", (citation_id,))
        return citation_id
    if existing is None:
        conn.execute("UPDATE citations SET cited_id = ?, resolved_by = ?, match_score = ? "
                     "WHERE id = ?", (cited_id, how, score, citation_id))
        return citation_id
    _fold_citation(conn, row, existing)
    return existing["id"]


#: what a reference list printed of a citation, kept when a twin row absorbs it.
_PRINTED = ("position", "unstructured", "title", "journal", "year", "first_author", "volume",
            "first_page")


def _fold_citation(conn: sqlite3.Connection, row: sqlite3.Row, into: sqlite3.Row) -> None:
    """Delete citation ``row``, its sources added to those of ``into`` (the same reference
    or edge, stored twice), and what it printed (position, text) where ``into`` has none."""
    sources = json.loads(into["sources"])
    sources += [s for s in json.loads(row["sources"]) if s not in sources]
    printed = conn.execute(f"SELECT {', '.join(_PRINTED)} FROM citations WHERE id = ?",
                           (row["id"],)).fetchone()
    conn.execute("DELETE FROM citations WHERE id = ?", (row["id"],))
    conn.execute(f"UPDATE citations SET sources = ?, "
                 f"{', '.join(f'{c} = coalesce({c}, ?)' for c in _PRINTED)} WHERE id = ?",
                 (json.dumps(sources), *printed, into["id"]))


def _add_citation(conn: sqlite3.Connection, citing_id: int, ref: ReferenceRecord,
                  source: str) -> bool:
    """Insert or update one citation row; True if the database changed."""
    key = _ref_key(ref)
    existing = conn.execute("SELECT id, sources, cited_id FROM citations "
                            "WHERE citing_id = ? AND ref_key = ?", (citing_id, key)).fetchone()
    if existing is not None:
        return _credit_source(conn, existing, source)
    cited_id = _ensure_work(conn, ref)
    if cited_id is not None:
        edge = conn.execute("SELECT id, sources FROM citations WHERE citing_id = ? "
                            "AND cited_id = ?", (citing_id, cited_id)).fetchone()
        if edge is not None:
            return _credit_source(conn, edge, source)
    if cited_id == citing_id:
        return False
    how = next((f for f in ("doi", "pmid", "pmcid", "openalex_id", "url") if ref.get(f)), None)
    conn.execute(
        "INSERT INTO citations(citing_id, cited_id, ref_key, position, cited_doi, cited_pmid, "
        "cited_pmcid, cited_openalex, title, journal, year, first_author, volume, first_page, "
        "unstructured, sources, resolved_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (citing_id, cited_id, key, ref.get("position"), ref.get("doi"), ref.get("pmid"),
         ref.get("pmcid"), ref.get("openalex_id"), ref.get("title"), ref.get("journal"),
         ref.get("year"), ref.get("first_author"), ref.get("volume"), ref.get("first_page"),
         ref.get("unstructured"), json.dumps([source]),
         ("openalex" if how == "openalex_id" else how) if cited_id else None))
    return True


def _add_references(conn: sqlite3.Connection, citing_id: int, refs: list[ReferenceRecord],
                    source: str) -> bool:
    changed = False
    for ref in refs:
        changed = _add_citation(conn, citing_id, ref, source) or changed
    return changed


def add_links(conn: sqlite3.Connection, links: Iterable[LinkRecord]) -> int:
    """Store citation edges from a references / cited-by service; returns edges added or
    given a new source. Works named only by an edge become stubs."""
    changed = 0
    with transaction(conn):
        for link in links:
            citing_id = _ensure_work(conn, link["citing"])
            if citing_id is None:
                raise InputError("a citation link needs an identifier for its citing work")
            if _add_citation(conn, citing_id, dict(link["cited"]), link["source"]):
                changed += 1
    return changed


# -- merging and deleting -------------------------------------------------------------------

def _referencing_columns(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every (table, column) with a foreign key to works.id, outside the ones merged by hand."""
    handled = {"citations", "work_authors", "mesh", "keywords", "publication_types",
               "accessions", "updates", "records"}
    pairs = []
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        if table in handled or table.startswith(("works_fts", "sqlite_")):
            continue
        for fk in conn.execute(f"PRAGMA foreign_key_list({table})"):
            if fk["table"] == "works":
                pairs.append((table, fk["from"]))
    return pairs


def merge_works(conn: sqlite3.Connection, keep_id: int, drop_id: int) -> None:
    """Fold work ``drop_id`` into ``keep_id``: fields by the merge rule, then every row that
    points at ``drop_id`` (citations both ways, authors, terms, raw records, later tables)."""
    if keep_id == drop_id:
        return
    with transaction(conn):
        drop = dict(conn.execute("SELECT * FROM works WHERE id = ?", (drop_id,)).fetchone())
        drop_provenance = json.loads(drop["provenance"])
        named = _author_ids(conn, keep_id) | _author_ids(conn, drop_id)
        for table in ("keywords", "publication_types", "accessions", "updates"):
            conn.execute(f"UPDATE OR IGNORE {table} SET work_id = ? WHERE work_id = ?",
                         (keep_id, drop_id))
        for field, table in (("authors", "work_authors"), ("mesh", "mesh")):
            has = conn.execute(f"SELECT 1 FROM {table} WHERE work_id = ?", (keep_id,)).fetchone()
            keep_prov = json.loads(conn.execute("SELECT provenance FROM works WHERE id = ?",
                                                (keep_id,)).fetchone()[0])
            theirs = conn.execute(f"SELECT 1 FROM {table} WHERE work_id = ?",
                                  (drop_id,)).fetchone()
            if theirs and (not has or _rank(field, drop_provenance.get(field))
                           < _rank(field, keep_prov.get(field))):
                conn.execute(f"DELETE FROM {table} WHERE work_id = ?", (keep_id,))
                conn.execute(f"UPDATE {table} SET work_id = ? WHERE work_id = ?",
                             (keep_id, drop_id))
                keep_prov[field] = drop_provenance.get(field)
                conn.execute("UPDATE works SET provenance = ? WHERE id = ?",
                             (json.dumps(keep_prov, sort_keys=True), keep_id))
        conn.execute("UPDATE records SET work_id = ? WHERE work_id = ?", (keep_id, drop_id))
        for table, column in _referencing_columns(conn):
            conn.execute(f"UPDATE OR IGNORE {table} SET {column} = ? WHERE {column} = ?",
                         (keep_id, drop_id))
        _move_citations(conn, keep_id, drop_id)
        conn.execute("DELETE FROM works WHERE id = ?", (drop_id,))
        conn.execute("DELETE FROM works_fts WHERE rowid = ?", (drop_id,))
        _drop_orphan_authors(conn, named)
        for source in sorted({s for s in drop_provenance.values() if s},
                             key=lambda s: -_rank("title", s)):
            fields = {f: drop[f] for f in ID_FIELDS + SCALAR_FIELDS
                      if drop_provenance.get(f) == source or (f in ID_FIELDS and drop[f])}
            _apply(conn, keep_id, {"source": source, **fields,  # type: ignore[typeddict-item]
                                   "status": drop["status"]})
        leftovers = {f: drop[f] for f in ID_FIELDS + SCALAR_FIELDS
                     if drop[f] is not None and f not in drop_provenance}
        if leftovers:
            _apply(conn, keep_id, {"source": "reference", **leftovers})  # type: ignore[typeddict-item]
        extra = {"is_retracted": bool(drop["is_retracted"]), "status": drop["status"]}
        if drop["study_design"] and drop["design_source"] == "curated":
            set_study_design(conn, keep_id, drop["study_design"], "curated")
        _apply(conn, keep_id, {"source": "reference", **extra})  # type: ignore[typeddict-item]
        if drop["status"] == "full":
            conn.execute("UPDATE works SET status = 'full' WHERE id = ?", (keep_id,))
        sync_fts(conn, [keep_id])


def _move_citations(conn: sqlite3.Connection, keep_id: int, drop_id: int) -> None:
    for row in conn.execute("SELECT id, ref_key, sources FROM citations WHERE citing_id = ?",
                            (drop_id,)).fetchall():
        twin = conn.execute("SELECT id, sources FROM citations WHERE citing_id = ? AND "
                            "ref_key = ?", (keep_id, row["ref_key"])).fetchone()
        if twin:
            _fold_citation(conn, row, twin)
        else:
            cited = conn.execute("SELECT cited_id FROM citations WHERE id = ?",
                                 (row["id"],)).fetchone()[0]
            conn.execute("UPDATE citations SET citing_id = ?, cited_id = NULL WHERE id = ?",
                         (keep_id, row["id"]))
            if cited is not None:
                link_citation(conn, row["id"], cited, "merge")
    for (citation_id,) in conn.execute("SELECT id FROM citations WHERE cited_id = ?",
                                       (drop_id,)).fetchall():
        conn.execute("UPDATE citations SET cited_id = NULL WHERE id = ?", (citation_id,))
        link_citation(conn, citation_id, keep_id, "merge")


def delete_works(conn: sqlite3.Connection, pmids: Iterable[str]) -> int:
    """Delete the works with these PMIDs (PubMed DeleteCitation); returns how many went."""
    deleted = 0
    with transaction(conn):
        for pmid in pmids:
            row = conn.execute("SELECT id FROM works WHERE pmid = ?", (pmid,)).fetchone()
            if row:
                named = _author_ids(conn, row[0])
                conn.execute("DELETE FROM works WHERE id = ?", (row[0],))
                conn.execute("DELETE FROM works_fts WHERE rowid = ?", (row[0],))
                _drop_orphan_authors(conn, named)
                deleted += 1
    return deleted


def set_study_design(conn: sqlite3.Connection, work_id: int, design: str, source: str) -> bool:
    """Set a work's study design unless a curated design is already there (``source``:
    curated | pubtype | rule). Returns True if it changed."""
    return set_study_designs(conn, [(work_id, design, source)]) == 1


def set_study_designs(conn: sqlite3.Connection,
                      designs: Iterable[tuple[int, str, str]]) -> int:
    """:func:`set_study_design` for many ``(work id, design, source)`` at once, in one
    statement run per work; returns how many works changed."""
    stamp = now()
    with transaction(conn):
        cursor = conn.executemany(
            "UPDATE works SET study_design = ?2, design_source = ?3, updated_at = ?4 "
            "WHERE id = ?1 AND (design_source IS NOT 'curated' OR ?3 = 'curated') "
            "AND (study_design IS NOT ?2 OR design_source IS NOT ?3)",
            ((work_id, design, source, stamp) for work_id, design, source in designs))
        return max(cursor.rowcount, 0)
