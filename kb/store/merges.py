"""Merging works (and undoing it): folding one work into another, with a snapshot of the
absorbed work that :func:`unmerge` restores."""
from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..clock import now
from ..errors import InputError
from .citations import _fold_citation, link_citation
from .connection import sync_fts, transaction
from .works import (_ID_ROW, ID_FIELDS, LIST_FIELDS, SCALAR_FIELDS, _apply, _author_ids,
                    _drop_orphan_authors, _rank, _read_list, _write_list, set_study_design)

def _referencing_columns(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every (table, column) with a foreign key to works.id, outside the ones merged by hand."""
    handled = {"citations", "work_authors", "work_mesh", "keywords", "publication_types",
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
    for field, table in (("authors", "work_authors"), ("mesh", "work_mesh")):
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
