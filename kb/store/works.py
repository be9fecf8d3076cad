"""Works: identity planning, the merge rule (:data:`PRECEDENCE`; stated in :mod:`kb.store`),
lists, provenance and the upserts; raw records, study designs and deletion."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from ..clock import now
from ..errors import InputError
from ..identifiers import classify
from ..records import SOURCES, ReferenceRecord, WorkRecord, WorkRef
from .connection import sync_fts, transaction
from .mesh import insert_mesh

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


class UpsertResult(NamedTuple):
    """What :func:`upsert_work` did: ``action`` is added, updated or unchanged."""

    work_id: int
    action: str
    merged: tuple[int, ...] = ()


def _rank(field: str, source: str | None) -> int:
    order = PRECEDENCE.get(field, SOURCES)
    return order.index(source) if source in order else len(order)


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
        conn.execute("DELETE FROM work_mesh WHERE work_id = ?", (work_id,))
        insert_mesh(conn, [(work_id, items)])
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
            "ORDER BY position", (work_id,))]
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
    from .citations import _add_references  # they store works: a cycle
    from .merges import merge_works
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
