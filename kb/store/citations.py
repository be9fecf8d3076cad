"""Citations: reference keys, stubs for the works references name, links and edges."""
from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable
from typing import Any, cast

from ..errors import InputError
from ..records import LinkRecord, ReferenceRecord, WorkRecord, WorkRef
from .connection import sync_fts, transaction
from .works import (_ID_ROW, ID_FIELDS, _apply, _new_work, _record_conflicts, _shared_id,
                    plan_identity, record_label)

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


def stub_record(ref: ReferenceRecord | WorkRef, source: str = "reference") -> WorkRecord:
    """The stub work a reference that names an unknown work becomes: its identifiers,
    title, year, journal, URL, volume and first author, credited to ``source`` (a reference
    list's, or the corpus's for a work only the curated seed names)."""
    stub: dict[str, Any] = {"source": source, "status": "stub",
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
    from .merges import merge_works  # merging moves citations: a cycle
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
