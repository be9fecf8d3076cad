"""The one module that writes to the knowledge base.

Opening (:func:`connect`) applies the SQL migrations in ``schema/`` (``PRAGMA user_version``),
turns on WAL, foreign keys and a busy timeout. Every write takes the connection first and runs
in one transaction (:func:`transaction`).

Identity (:func:`plan_identity`): a record is matched to stored works by DOI, PMID, PMCID or
OpenAlex id (by its own page's URL only when it has none of these), as evidence: a work that
disagrees with it on an identifier is another work (kept, with an ``identity_conflicts`` row),
and a reference's pairing of identifiers never merges two full works. A record whose own
identifiers name two agreeing rows merges them into the older full one (logged in ``merges``,
undone by :func:`unmerge`), moving citations, authors and everything else that points at the
other.

Merge rule (:func:`upsert_work`): per field, the stored value is replaced when the field is empty, or when the new source ranks at
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast
from urllib.parse import urlsplit

from ..errors import DatabaseError, InputError
from ..identifiers import classify
from ..records import SOURCES, LinkRecord, ReferenceRecord, WorkRecord, WorkRef

__all__ = ["chunked", "connect", "migrate", "latest_version", "transaction", "upsert_work", "upsert_works",
           "add_links", "delete_works", "merge_works", "unmerge", "plan_identity",
           "link_citation", "set_study_design", "set_study_designs",
           "rebuild_fts", "sync_fts", "sync_fts_of_trials", "fts_insert", "UpsertResult",
           "PRECEDENCE", "now"]

ID_FIELDS = ("doi", "pmid", "pmcid", "openalex_id")
SCALAR_FIELDS = ("title", "subtitle", "abstract", "journal", "journal_abbrev", "issn",
                 "publisher", "year", "pub_date", "volume", "issue", "pages", "language",
                 "type", "url", "license", "cited_by_count", "note", "curation_note")
LIST_FIELDS: tuple[Literal["authors", "mesh", "keywords", "publication_types"], ...] = (
    "authors", "mesh", "keywords", "publication_types")

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


# -- identity -------------------------------------------------------------------------------

_ID_ROW = "SELECT id, doi, pmid, pmcid, openalex_id, status, provenance FROM works WHERE "


class IdentityPlan(NamedTuple):
    """Where a record or reference lands (:func:`plan_identity`)."""

    keep: int | None                  # the stored work it is; None: a new work
    absorb: tuple[int, ...]           # other stored works its own identifiers show are the same
    withheld: tuple[str, ...]         # its id fields another, different work carries
    conflicts: tuple[tuple[str, str, int], ...]  # (id field, value, the work carrying it)
    reclaimed: tuple[tuple[str, int], ...] = ()  # (id field, work): a reference's claim it takes


#: The identifier a source keys its own records by.
PRIMARY_ID = {"pubmed": "pmid", "crossref": "doi", "datacite": "doi", "doi.org": "doi",
              "openalex": "openalex_id"}


#: Record types whose URL is often not the work's own page: a journal article's is often its
#: journal's home page, an untyped or "other" record's may be anything.
_URL_BLIND = (None, "journal-article", "other")


def identifying_url(record: WorkRecord | ReferenceRecord | WorkRef) -> str | None:
    """The URL that identifies this record, if any: the page of a web article, report,
    proceedings paper, … (not of a journal article or an untyped record), or a URL-only
    reference's; never a site's home page or a directory (a path ending in /). DOI, PubMed,
    PMC and OpenAlex URLs identify through the identifier they carry (:func:`_url_ids`)."""
    url = record.get("url")
    if not url or ("source" in record and record.get("status") != "stub"
                   and record.get("type") in _URL_BLIND):
        return None
    path = urlsplit(url).path
    return None if not path.strip("/") or path.endswith("/") else url


def _url_ids(url: str | None) -> dict[str, str]:
    """The identifier a DOI / PubMed / PMC / OpenAlex URL carries, as an id field."""
    ident = classify(url) if url else None
    if ident is None or ident.kind == "url":
        return {}
    return {"openalex_id" if ident.kind == "openalex" else ident.kind: ident.value}


def _agree(row: sqlite3.Row | dict[str, Any], ids: dict[str, Any]) -> bool:
    """No identifier field on which both carry a value and the values differ."""
    return all(not row[f] or not ids.get(f) or row[f] == ids[f] for f in ID_FIELDS)


def plan_identity(conn: sqlite3.Connection, record: WorkRecord | ReferenceRecord | WorkRef, *,
                  own: bool) -> IdentityPlan:
    """Decide which stored work ``record`` is, by identifiers as evidence.

    A stored work is the record's when they disagree on no identifier (two works with
    different PMIDs, or different DOIs, are never merged). ``own``: the identifiers are the
    record's own (a PubMed record's PMID and DOI); then every agreeing work it names is the
    same and is merged. A reference's pairing (``own=False``) never merges two full works.
    The work carrying a record's :data:`PRIMARY_ID` is its own (a later version of the same
    PubMed record, or Crossref work, updates it even when another identifier changed).
    Identifiers a disagreeing work carries are withheld from the record and reported as
    conflicts, unless only a reference gave it to that work: a record's own identifier is
    stronger evidence, and takes it back (``reclaimed``; the conflict is still recorded).
    Without identifiers, :func:`identifying_url` matches a web article or stub.
    """
    ids = {f: record[f] for f in ID_FIELDS if record.get(f)}  # type: ignore[literal-required]
    found: dict[int, sqlite3.Row] = {}
    for name, value in (ids or _url_ids(record.get("url"))).items():
        row = conn.execute(_ID_ROW + f"{name} = ?", (value,)).fetchone()
        if row:
            found[row["id"]] = row
    url = None if ids or found else identifying_url(record)
    if url:  # a web article by a web article's URL; else a work with no identifier but
        # this URL, of the record's type (or a stub); a reference's URL: any such work
        kind = record.get("type") or "web-article"
        same = "type IS ?2 OR status = 'stub'" if "source" in record else "1"
        row = conn.execute(
            _ID_ROW + f"url = ?1 AND ((type = 'web-article' AND ?2 = 'web-article') OR (({same}) "
            "AND doi IS NULL AND pmid IS NULL AND pmcid IS NULL AND openalex_id IS NULL)) "
            "ORDER BY id LIMIT 1", (url, kind)).fetchone()
        if row:
            found[row["id"]] = row
    primary = PRIMARY_ID.get(record.get("source", "")) if own else None  # type: ignore[call-overload]
    first = next((w for w, row in found.items() if primary and row[primary] == ids.get(primary)
                  and not _weak(row, primary)), None)
    chosen: list[int] = []
    known = dict(ids)
    full = False
    rejected = []
    for work_id in sorted(found, key=lambda w: (w != first, w)):
        row = found[work_id]
        if work_id == first or (_agree(row, known)
                                and (own or not (full and row["status"] == "full"))):
            chosen.append(work_id)
            known.update({f: row[f] for f in ID_FIELDS if row[f]})
            full = full or row["status"] == "full"
        else:
            rejected.append(row)
    chosen.sort(key=lambda w: (found[w]["status"] != "full", w))  # the oldest full work is kept
    conflicts = tuple((f, ids[f], row["id"]) for row in rejected for f in ID_FIELDS
                      if ids.get(f) and row[f] == ids[f])
    reclaimed = tuple((f, w) for f, _, w in conflicts if own and _weak(found[w], f))
    withheld = {f for f, _, w in conflicts if (f, w) not in reclaimed}
    return IdentityPlan(chosen[0] if chosen else None, tuple(chosen[1:]),
                        tuple(sorted(withheld)), conflicts, reclaimed)


def _weak(row: sqlite3.Row, field: str) -> bool:
    """The work carries this identifier only because a reference said so."""
    return json.loads(row["provenance"]).get(field) == "reference"


def _reclaim(conn: sqlite3.Connection, plan: IdentityPlan) -> None:
    """Take the identifiers a record reclaims off the works a reference gave them to."""
    for field, work_id in plan.reclaimed:
        conn.execute(f"UPDATE works SET {field} = NULL, provenance = json_remove(provenance, "
                     f"'$.{field}'), updated_at = ? WHERE id = ?", (now(), work_id))


def _record_conflicts(conn: sqlite3.Connection, plan: IdentityPlan, other_id: int | None,
                      claimed_by: str, source: str) -> None:
    if not plan.conflicts:
        return
    conn.executemany(
        "INSERT OR IGNORE INTO identity_conflicts(kind, value, work_id, other_id, claimed_by, "
        "source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(kind, value, work_id, other_id, claimed_by, source, now())
         for kind, value, work_id in plan.conflicts if work_id != other_id])


def record_label(record: Mapping[str, Any]) -> str:
    """How a conflict names the record that claimed an identifier: its first own id."""
    for name in (PRIMARY_ID.get(record.get("source", ""), "doi"), *ID_FIELDS, "url", "title"):
        if value := record.get(name):
            return f"{name}:{value}"
    return "a record without identifiers"


# -- the merge rule -------------------------------------------------------------------------

def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _wins(field: str, new_source: str, old_value: Any, old_source: str | None) -> bool:
    """True when a non-empty value from ``new_source`` should replace the stored one."""
    if _empty(old_value):
        return True
    return _rank(field, new_source) <= _rank(field, old_source)


def _author_key(author: Mapping[str, Any]) -> str:
    if author.get("orcid"):
        return f"orcid:{author['orcid']}"
    if author.get("family"):
        return f"name:{author['family'].strip().lower()}|{(author.get('given') or '').strip().lower()}"
    return f"name:{(author.get('name') or '').strip().lower()}"


def _author_name(author: Mapping[str, Any]) -> str:
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


def _retracted(record: WorkRecord) -> bool:
    """The record says the work is retracted (a flag, or a retraction notice updating it)."""
    return bool(record.get("is_retracted") or any(
        u.get("kind") == "retraction" and u.get("direction") == "updated-by"
        for u in record.get("updates") or []))


def _design_source(source: str) -> str:
    """A study design from the corpus is curated; from another source, that source's."""
    return "curated" if source == "corpus" else source


def _unverified(record: WorkRecord, status: str, stored: bool) -> int:
    """A full record from a source above the corpus verifies a work; else flags add up."""
    if _rank("title", record["source"]) < _rank("title", "corpus") and status == "full":
        return 0
    return int(stored or bool(record.get("unverified")))


def new_work_row(record: WorkRecord, stamp: str) -> dict[str, Any]:
    """The works row for a record that matches nothing stored (what :func:`_apply` makes of
    an empty row): every non-empty identifier, scalar and list field credited to the
    record's source. Both the per-record and the bulk path insert this row."""
    source = record["source"]
    row: dict[str, Any] = {name: record.get(name) or None for name in ID_FIELDS}
    provenance = {name: source for name in ID_FIELDS if row[name]}
    for name in SCALAR_FIELDS:
        value = record.get(name)
        if _empty(value):
            row[name] = None
            continue
        row[name] = value
        provenance[name] = source
    for name in LIST_FIELDS:
        if record.get(name):
            provenance[name] = source
    status = record.get("status") or "full"
    design = record.get("study_design")
    row.update(status=status, provenance=provenance_json(provenance),
               study_design=design or None, design_source=_design_source(source) if design else None,
               is_retracted=int(_retracted(record)), unverified=_unverified(record, status, False),
               created_at=stamp, updated_at=stamp)
    return row


@lru_cache(maxsize=4096)
def _provenance_text(items: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(dict(items), sort_keys=True)


def provenance_json(provenance: dict[str, str]) -> str:
    """``json.dumps(provenance, sort_keys=True)``, cached: a batch repeats a few shapes."""
    return _provenance_text(tuple(provenance.items()))


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
        design_source = _design_source(source)
        if row["design_source"] != "curated" or design_source == "curated":
            if (row["study_design"], row["design_source"]) != (record["study_design"], design_source):
                changes["study_design"] = record["study_design"]
                changes["design_source"] = design_source
    is_retracted = int(bool(row["is_retracted"] or _retracted(record)))
    if is_retracted != row["is_retracted"]:
        changes["is_retracted"] = is_retracted
    status = record.get("status") or "full"
    if row["status"] == "stub" and status == "full":
        changes["status"] = "full"
    unverified = _unverified(record, status, bool(row["unverified"]))
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
    row = {k: v for k, v in new_work_row(record, now()).items() if v is not None}
    work_id = conn.execute(f"INSERT INTO works({', '.join(row)}) VALUES "
                           f"({', '.join('?' * len(row))}) RETURNING id",
                           list(row.values())).fetchone()[0]
    for field in LIST_FIELDS:
        if record.get(field):
            _write_list(conn, work_id, field, record[field])
    _add_extras(conn, work_id, record)
    return work_id


#: Store a raw payload (a new source id, or a changed body or work).
RECORDS_UPSERT = (
    "INSERT INTO records(source, source_id, work_id, url, fetched_at, body) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(source, source_id) DO UPDATE SET "
    "work_id = excluded.work_id, url = excluded.url, fetched_at = excluded.fetched_at, "
    "body = excluded.body WHERE body IS NOT excluded.body OR work_id IS NOT excluded.work_id")


def raw_row(work_id: int, record: WorkRecord, stamp: str) -> tuple[Any, ...] | None:
    """The values of :data:`RECORDS_UPSERT` for a record's raw payload, if it has one."""
    if record.get("raw") is None or not record.get("source_id"):
        return None
    return (record["source"], record["source_id"], work_id, record.get("source_url"),
            record.get("fetched_at") or stamp, record["raw"])


def _store_raw(conn: sqlite3.Connection, work_id: int, record: WorkRecord) -> None:
    row = raw_row(work_id, record, now())
    if row is not None:
        conn.execute(RECORDS_UPSERT, row)


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
    plan = plan_identity(conn, record, own=True)
    _reclaim(conn, plan)
    if plan.withheld:
        record = {**record, **{f: None for f in plan.withheld}}  # type: ignore[typeddict-item]
    merged: tuple[int, ...] = ()
    if plan.keep is None:
        work_id, action = _new_work(conn, record), "added"
    else:
        work_id = plan.keep
        for other in plan.absorb:
            merge_works(conn, work_id, other, reason=_shared_id(conn, work_id, other, record),
                        source=record["source"])
        merged = plan.absorb
        changed = _apply(conn, work_id, record)
        action = "updated" if changed or merged else "unchanged"
    _record_conflicts(conn, plan, work_id, record_label(record), record["source"])
    _store_raw(conn, work_id, record)
    touched = {work_id}
    if record.get("references"):
        if _add_references(conn, work_id, record["references"], record["source"]):
            action = "updated" if action == "unchanged" else action
    if action != "unchanged":
        sync_fts(conn, touched | set(merged))
    return UpsertResult(work_id, action, merged)


def _shared_id(conn: sqlite3.Connection, keep_id: int, other_id: int,
               record: WorkRecord | ReferenceRecord | WorkRef) -> str:
    """Why a record merges two works: the identifier of its that the absorbed one carries."""
    row = conn.execute(_ID_ROW + "id = ?", (other_id,)).fetchone()
    return next((f"same {f}" for f in ID_FIELDS if record.get(f) and row[f] == record.get(f)),
                "same url")


# -- citations ------------------------------------------------------------------------------

def _ref_key(ref: ReferenceRecord | WorkRef) -> str:
    for field, prefix in (("doi", "doi"), ("pmid", "pmid"), ("pmcid", "pmcid"),
                          ("openalex_id", "openalex")):
        if value := ref.get(field):
            return f"{prefix}:{value}"
    text = str(ref.get("unstructured") or "") or " ".join(
        str(ref.get(f) or "") for f in ("first_author", "year", "title", "journal", "volume",
                                        "first_page"))
    text = _NON_WORD.sub(" ", text.lower()).strip()
    return "text:" + hashlib.sha1(text.encode()).hexdigest()[:16]


_NON_WORD = re.compile(r"\W+")


def ref_keys(refs: Iterable[ReferenceRecord]) -> list[str]:
    """Each reference's key within its citing work's list: by identifier or text, the n-th
    repeat of a key suffixed ``#n`` (two references printed alike are two rows, by position).

    >>> ref_keys([{"first_author": "Matsui"}, {"doi": "10.1/x"}, {"first_author": "Matsui"}])
    ['text:220ba535cc142462', 'doi:10.1/x', 'text:220ba535cc142462#2']
    """
    seen: dict[str, int] = {}
    keys = []
    for ref in refs:
        key = _ref_key(ref)
        seen[key] = seen.get(key, 0) + 1
        keys.append(key if seen[key] == 1 else f"{key}#{seen[key]}")
    return keys


def occurrence(key: str) -> int:
    """The n of a :func:`ref_keys` key: the n-th time it comes up in its list (1 unsuffixed).

    >>> occurrence("doi:10.1/x"), occurrence("doi:10.1/x#2")
    (1, 2)
    """
    match = _REPEAT.search(key)
    return int(match[1]) if match else 1


_REPEAT = re.compile(r"#(\d+)$")


def stub_record(ref: ReferenceRecord | WorkRef) -> WorkRecord:
    """The stub work a reference that names an unknown work becomes: its identifiers,
    title, year, journal, URL, volume and first author, credited to ``reference``."""
    stub: dict[str, Any] = {"source": "reference", "status": "stub",
                            **{f: ref.get(f) for f in ID_FIELDS if ref.get(f)},
                            **{f: ref.get(f) for f in STUB_FIELDS}}
    if first_author := ref.get("first_author"):
        stub["authors"] = [{"family": first_author}]
    return cast(WorkRecord, stub)


STUB_FIELDS = ("title", "year", "journal", "url", "volume")


def _ensure_work(conn: sqlite3.Connection, ref: ReferenceRecord | WorkRef,
                 claimed_by: str | tuple[str, int] = "a reference") -> int | None:
    """The id of the work a reference names by identifier (or identifying URL), creating a
    stub if needed. It merges only what :func:`plan_identity` allows; the identifiers it
    adds to a work count as the reference's (a record's own identifier takes them back); when
    its identifiers point at different works it is left unresolved and the conflict
    recorded, as claimed by ``claimed_by`` (or, given
    as (key, citing work id), by :func:`reference_label`)."""
    if not any(ref.get(f) for f in ID_FIELDS) and not ref.get("url"):
        return None
    plan = plan_identity(conn, ref, own=False)
    if plan.conflicts:
        label = claimed_by if isinstance(claimed_by, str) else \
            reference_label(conn, ref, *claimed_by)
        _record_conflicts(conn, plan, plan.keep, label, "reference")
    ids = {f: ref.get(f) for f in ID_FIELDS if ref.get(f) and f not in plan.withheld}
    if plan.keep is not None:
        for other in plan.absorb:
            merge_works(conn, plan.keep, other, reason=_shared_id(conn, plan.keep, other, ref),
                        source="reference")
        row = conn.execute(_ID_ROW + "id = ?", (plan.keep,)).fetchone()
        if any(not row[f] for f in ids):
            _apply(conn, plan.keep, cast(WorkRecord, {"source": "reference", "status": "stub",
                                                      **ids}))
        return plan.keep
    if plan.withheld and not ids:
        return None
    work_id = _new_work(conn, stub_record({**ref, **{f: None for f in plan.withheld}}))  # type: ignore[arg-type]
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
    row = conn.execute("SELECT id, citing_id, sources, occurrence FROM citations WHERE id = ?",
                       (citation_id,)).fetchone()
    existing = conn.execute(
        "SELECT id, sources FROM citations WHERE citing_id = ? AND cited_id = ? "
        "AND occurrence = ? AND id != ?",
        (row["citing_id"], cited_id, row["occurrence"], citation_id)).fetchone()
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


INSERT_CITATION = (
    "INSERT INTO citations(citing_id, cited_id, ref_key, position, cited_doi, cited_pmid, "
    "cited_pmcid, cited_openalex, title, journal, year, first_author, volume, first_page, "
    "unstructured, sources, resolved_by, occurrence) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_HOW = (*ID_FIELDS, "url")


def citation_row(citing_id: int, cited_id: int | None, key: str,
                 ref: ReferenceRecord | WorkRef,
                 sources: str) -> tuple[Any, ...]:
    """The values of :data:`INSERT_CITATION` for one reference (``sources``: a JSON list)."""
    how = next((f for f in _HOW if ref.get(f)), None)
    return (citing_id, cited_id, key, ref.get("position"), ref.get("doi"), ref.get("pmid"),
            ref.get("pmcid"), ref.get("openalex_id"), ref.get("title"), ref.get("journal"),
            ref.get("year"), ref.get("first_author"), ref.get("volume"), ref.get("first_page"),
            ref.get("unstructured"), sources,
            ("openalex" if how == "openalex_id" else how) if cited_id else None,
            occurrence(key))


def reference_label(conn: sqlite3.Connection, ref: ReferenceRecord | WorkRef, key: str,
                    citing_id: int) -> str:
    """How a conflict names a reference that claimed an identifier: its position and the
    citing work's own identifier."""
    citing = conn.execute("SELECT * FROM works WHERE id = ?", (citing_id,)).fetchone()
    return f"reference {ref.get('position') or key} of {record_label(dict(citing))}"


def _add_citation(conn: sqlite3.Connection, citing_id: int, ref: ReferenceRecord | WorkRef,
                  source: str, key: str | None = None) -> bool:
    """Insert or update one citation row (``key``: its :func:`ref_keys` entry); True if the
    database changed."""
    key = key or _ref_key(ref)
    existing = conn.execute("SELECT id, sources, cited_id FROM citations "
                            "WHERE citing_id = ? AND ref_key = ?", (citing_id, key)).fetchone()
    if existing is not None:
        return _credit_source(conn, existing, source)
    cited_id = _ensure_work(conn, ref, (key, citing_id))
    if cited_id is not None:
        edge = conn.execute("SELECT id, sources FROM citations WHERE citing_id = ? "
                            "AND cited_id = ? AND occurrence = ?",
                            (citing_id, cited_id, occurrence(key))).fetchone()
        if edge is not None:
            return _credit_source(conn, edge, source)
    if cited_id == citing_id:
        return False
    conn.execute(INSERT_CITATION, citation_row(citing_id, cited_id, key, ref,
                                               json.dumps([source])))
    return True


def _add_references(conn: sqlite3.Connection, citing_id: int, refs: list[ReferenceRecord],
                    source: str) -> bool:
    changed = False
    for ref, key in zip(refs, ref_keys(refs)):
        changed = _add_citation(conn, citing_id, ref, source, key) or changed
    return changed


def add_links(conn: sqlite3.Connection, links: Iterable[LinkRecord]) -> int:
    """Store citation edges from a references / cited-by service; returns edges added or
    given a new source. Works named only by an edge become stubs."""
    changed = 0
    with transaction(conn):
        for link in links:
            citing_id = _ensure_work(conn, link["citing"], f"the citing work of a {link['source']} link")
            if citing_id is None:
                raise InputError("a citation link needs an identifier for its citing work")
            if _add_citation(conn, citing_id, link["cited"], link["source"]):
                changed += 1
    return changed


# -- merging and deleting -------------------------------------------------------------------

def _referencing_columns(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every (table, column) with a foreign key to works.id, outside the ones merged by hand."""
    handled = {"citations", "work_authors", "mesh", "keywords", "publication_types",
               "accessions", "updates", "records", "identity_conflicts"}
    pairs = []
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        if table in handled or table.startswith(("works_fts", "sqlite_")):
            continue
        for fk in conn.execute(f"PRAGMA foreign_key_list({table})"):
            if fk["table"] == "works":
                pairs.append((table, fk["from"]))
    return pairs


_SET_TABLES = ("accessions", "updates")


def _work_state(conn: sqlite3.Connection, work_id: int, *, linked: bool) -> dict[str, Any]:
    """A work's row, lists and extras as JSON-able data; ``linked``: also every row that
    points at it (raw records, citations both ways, conflicts, later tables)."""
    state: dict[str, Any] = {
        "work": dict(conn.execute("SELECT * FROM works WHERE id = ?", (work_id,)).fetchone())}
    for field in LIST_FIELDS:
        state[field] = _read_list(conn, work_id, field)
    for table in _SET_TABLES:
        state[table] = [{k: r[k] for k in r.keys() if k != "work_id"} for r in conn.execute(
            f"SELECT * FROM {table} WHERE work_id = ?", (work_id,))]
    if linked:
        state["records"] = [r[0] for r in conn.execute("SELECT id FROM records WHERE work_id = ?",
                                                       (work_id,))]
        state["citations"] = [dict(r) for r in conn.execute(
            "SELECT * FROM citations WHERE citing_id = ?1 OR cited_id = ?1", (work_id,))]
        state["conflicts"] = [dict(r) for r in conn.execute(
            "SELECT * FROM identity_conflicts WHERE work_id = ?1 OR other_id = ?1", (work_id,))]
        state["linked"] = {f"{t}.{c}": [dict(r) for r in conn.execute(
            f"SELECT * FROM {t} WHERE {c} = ?", (work_id,))] for t, c in _referencing_columns(conn)}
    return state


def merge_works(conn: sqlite3.Connection, keep_id: int, drop_id: int, *, reason: str = "by hand",
                source: str = "user") -> int | None:
    """Fold work ``drop_id`` into ``keep_id``: fields by the merge rule (identifiers only
    where the kept work has none), then every row that points at ``drop_id`` (citations both
    ways, authors, terms, raw records, later tables). The merge is logged in ``merges`` with
    what :func:`unmerge` needs; returns its id (None when the two are one work)."""
    if keep_id == drop_id:
        return None
    with transaction(conn):
        absorbed = _work_state(conn, drop_id, linked=True)
        kept_before = _work_state(conn, keep_id, linked=False)
        named = _author_ids(conn, keep_id) | _author_ids(conn, drop_id)
        _fold_work(conn, keep_id, drop_id)
        conn.execute(
            "UPDATE identity_conflicts SET resolved_at = ?3, resolution = 'merged' WHERE "
            "resolved_at IS NULL AND ((work_id = ?1 AND other_id = ?2) OR (work_id = ?2 AND "
            "other_id = ?1))", (keep_id, drop_id, now()))
        for column in ("work_id", "other_id"):
            conn.execute(f"UPDATE OR IGNORE identity_conflicts SET {column} = ? "
                         f"WHERE {column} = ?", (keep_id, drop_id))
        conn.execute("DELETE FROM works WHERE id = ?", (drop_id,))
        conn.execute("DELETE FROM works_fts WHERE rowid = ?", (drop_id,))
        _drop_orphan_authors(conn, named)
        _absorb_fields(conn, keep_id, absorbed["work"])
        sync_fts(conn, [keep_id])
        return conn.execute(
            "INSERT INTO merges(kept_id, absorbed_id, absorbed, kept_before, kept_after, reason, "
            "source, merged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (keep_id, drop_id, json.dumps(absorbed), json.dumps(kept_before),
             json.dumps(_work_state(conn, keep_id, linked=False)), reason, source,
             now())).fetchone()[0]


def _fold_work(conn: sqlite3.Connection, keep_id: int, drop_id: int) -> None:
    """Move the rows that point at ``drop_id`` onto ``keep_id`` (lists by the merge rule)."""
    drop_provenance = json.loads(conn.execute("SELECT provenance FROM works WHERE id = ?",
                                              (drop_id,)).fetchone()[0])
    for table in ("keywords", "publication_types", "accessions", "updates"):
        conn.execute(f"UPDATE OR IGNORE {table} SET work_id = ? WHERE work_id = ?",
                     (keep_id, drop_id))
    for field, table in (("authors", "work_authors"), ("mesh", "mesh")):
        has = conn.execute(f"SELECT 1 FROM {table} WHERE work_id = ?", (keep_id,)).fetchone()
        keep_prov = json.loads(conn.execute("SELECT provenance FROM works WHERE id = ?",
                                            (keep_id,)).fetchone()[0])
        theirs = conn.execute(f"SELECT 1 FROM {table} WHERE work_id = ?", (drop_id,)).fetchone()
        if theirs and (not has or _rank(field, drop_provenance.get(field))
                       < _rank(field, keep_prov.get(field))):
            conn.execute(f"DELETE FROM {table} WHERE work_id = ?", (keep_id,))
            conn.execute(f"UPDATE {table} SET work_id = ? WHERE work_id = ?", (keep_id, drop_id))
            keep_prov[field] = drop_provenance.get(field)
            conn.execute("UPDATE works SET provenance = ? WHERE id = ?",
                         (json.dumps(keep_prov, sort_keys=True), keep_id))
    conn.execute("UPDATE records SET work_id = ? WHERE work_id = ?", (keep_id, drop_id))
    for table, column in _referencing_columns(conn):
        conn.execute(f"UPDATE OR IGNORE {table} SET {column} = ? WHERE {column} = ?",
                     (keep_id, drop_id))
    _move_citations(conn, keep_id, drop_id)


def _absorb_fields(conn: sqlite3.Connection, keep_id: int, drop: dict[str, Any]) -> None:
    """Apply the absorbed work's fields to the kept one, each as from the source that gave
    it; identifiers only where the kept work has none."""
    drop_provenance = json.loads(drop["provenance"])
    keep = conn.execute(_ID_ROW + "id = ?", (keep_id,)).fetchone()
    for source in sorted({s for s in drop_provenance.values() if s},
                         key=lambda s: -_rank("title", s)):
        fields = {f: drop[f] for f in SCALAR_FIELDS if drop_provenance.get(f) == source}
        fields.update({f: drop[f] for f in ID_FIELDS if drop[f] and not keep[f]
                       and drop_provenance.get(f, source) == source})
        _apply(conn, keep_id, {"source": source, **fields,  # type: ignore[typeddict-item]
                               "status": drop["status"]})
    leftovers = {f: drop[f] for f in ID_FIELDS + SCALAR_FIELDS
                 if drop[f] is not None and f not in drop_provenance
                 and (f not in ID_FIELDS or not keep[f])}
    if leftovers:
        _apply(conn, keep_id, {"source": "reference", **leftovers})  # type: ignore[typeddict-item]
    extra = {"is_retracted": bool(drop["is_retracted"]), "status": drop["status"]}
    if drop["study_design"] and drop["design_source"] == "curated":
        set_study_design(conn, keep_id, drop["study_design"], "curated")
    _apply(conn, keep_id, {"source": "reference", **extra})  # type: ignore[typeddict-item]
    if drop["status"] == "full":
        conn.execute("UPDATE works SET status = 'full' WHERE id = ?", (keep_id,))


def unmerge(conn: sqlite3.Connection, merge_id: int) -> tuple[int, int]:
    """Undo merge ``merge_id``: the absorbed work comes back under its own id with its rows
    (raw records, citations both ways, lists, conflicts, later tables); on the kept work,
    every field and list the merge changed and nothing changed since goes back to what it
    was. Returns (kept id, absorbed id).

    :raises InputError: no such merge, already undone, or the kept work is gone (undo the
        later merge that absorbed it first).
    """
    with transaction(conn):
        merge = conn.execute("SELECT * FROM merges WHERE id = ?", (merge_id,)).fetchone()
        if merge is None:
            raise InputError(f"no merge {merge_id}", hint="`kb merges` lists them")
        if merge["undone_at"]:
            raise InputError(f"merge {merge_id} was undone at {merge['undone_at']}")
        keep_id, drop_id = merge["kept_id"], merge["absorbed_id"]
        if not conn.execute("SELECT 1 FROM works WHERE id = ?", (keep_id,)).fetchone():
            later = conn.execute("SELECT id FROM merges WHERE absorbed_id = ? AND undone_at IS "
                                 "NULL ORDER BY id DESC", (keep_id,)).fetchone()
            raise InputError(f"work {keep_id}, kept by merge {merge_id}, is gone",
                             hint=f"undo merge {later[0]} first" if later else None)
        absorbed = json.loads(merge["absorbed"])
        before, after = json.loads(merge["kept_before"]), json.loads(merge["kept_after"])
        _restore_kept(conn, keep_id, before, after)
        row = {**absorbed["work"], "updated_at": now()}
        conn.execute(f"INSERT INTO works({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     list(row.values()))
        for field in LIST_FIELDS:
            if absorbed[field]:
                _write_list(conn, drop_id, field, absorbed[field])
        for table in _SET_TABLES:
            for item in absorbed[table]:
                _insert_or_ignore(conn, table, {**item, "work_id": drop_id})
        conn.executemany("UPDATE records SET work_id = ? WHERE id = ?",
                         [(drop_id, record_id) for record_id in absorbed["records"]])
        for citation in absorbed["citations"]:
            conn.execute("DELETE FROM citations WHERE id = ?", (citation["id"],))
            _insert_or_ignore(conn, "citations", citation)
        for conflict in absorbed["conflicts"]:
            conn.execute("DELETE FROM identity_conflicts WHERE id = ?", (conflict["id"],))
            _insert_or_ignore(conn, "identity_conflicts", conflict)
        for key, rows in absorbed["linked"].items():
            table, column = key.split(".")
            for item in rows:
                others = [k for k in item if k != column]
                same = "".join(f" AND {k} IS ?" for k in others)
                moved = conn.execute(
                    f"UPDATE OR IGNORE {table} SET {column} = ? WHERE {column} = ?{same}",
                    [drop_id, keep_id, *(item[k] for k in others)]).rowcount
                if not moved:
                    _insert_or_ignore(conn, table, item)
        conn.execute("UPDATE merges SET undone_at = ? WHERE id = ?", (now(), merge_id))
        sync_fts(conn, [keep_id, drop_id])
        return keep_id, drop_id


def _insert_or_ignore(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    conn.execute(f"INSERT OR IGNORE INTO {table}({', '.join(row)}) "
                 f"VALUES ({', '.join('?' * len(row))})", list(row.values()))


def _restore_kept(conn: sqlite3.Connection, keep_id: int, before: dict[str, Any],
                  after: dict[str, Any]) -> None:
    """Three-way: what the merge changed on the kept work (``before`` -> ``after``) and is
    still as the merge left it goes back; later changes stay."""
    current = _work_state(conn, keep_id, linked=False)
    old, new, now_row = before["work"], after["work"], current["work"]
    changes = {c: old[c] for c in old if c not in ("id", "provenance", "created_at",
                                                   "updated_at", "annotated_at")
               and now_row[c] == new[c] != old[c]}
    provenance = json.loads(now_row["provenance"])
    old_prov, new_prov = json.loads(old["provenance"]), json.loads(new["provenance"])
    for key in set(old_prov) | set(new_prov):
        if provenance.get(key) == new_prov.get(key) != old_prov.get(key):
            if key in old_prov:
                provenance[key] = old_prov[key]
            else:
                provenance.pop(key, None)
    changes.update(provenance=json.dumps(provenance, sort_keys=True), updated_at=now())
    conn.execute(f"UPDATE works SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
                 [*changes.values(), keep_id])
    for field in LIST_FIELDS:
        if current[field] == after[field] != before[field]:
            _write_list(conn, keep_id, field, before[field])
    for table in _SET_TABLES:
        for item in after[table]:
            if item not in before[table]:
                conn.execute(f"DELETE FROM {table} WHERE work_id = ? AND "
                             + " AND ".join(f"{k} IS ?" for k in item),
                             [keep_id, *item.values()])


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
