"""Writes for the evidence tables (schema 0002): trials, their facts, arms, reports, lineage and
retraction flags.

Every fact keeps its provenance: ``curated`` (a person read it on the pages in ``sources``),
``registry`` (a trial registry record) or ``rule`` (kb.evidence.extract read it in a work's text).
The ``trials`` columns show, per field, the value of the highest provenance in
:data:`PROVENANCE` order, so a curated value overrides a registry or rule value without
erasing it. Lineage edges are ``pools``, ``follow_up_of`` or ``same_trial``, each with a reason.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..clock import now
from ..errors import InputError
from ..identifiers import registry_of
from ..records import WorkRef
from ..vocabulary import Term, normalise_trial
from .citations import stub_record
from .connection import chunked, sync_fts, sync_fts_of_trials, transaction
from .works import upsert_work

__all__ = ["due_for_annotation", "mark_annotated", "PREANNOTATED", "PROVENANCE", "RELATIONS", "REPORT_ROLES",
           "TRIAL_COLUMNS", "ensure_trial", "find_trials", "set_fact", "has_fact",
           "delete_facts", "set_arms", "add_registry_id", "add_report", "add_lineage",
           "delete_lineage", "replace_flags", "refresh_trial", "merge_trials", "registry_sort",
           "work_id_for", "ensure_corpus_work", "store_synonyms", "refresh_trials",
           "delete_rule_evidence",
           "refresh_or_drop_trials"]

#: provenances, highest first.
PROVENANCE = ("curated", "registry", "rule")
RELATIONS = ("pools", "follow_up_of", "same_trial")
REPORT_ROLES = ("results", "protocol", "follow-up", "secondary", "pooled-analysis",
                "registry-record")
#: trials columns filled from the best fact of the same name.
TRIAL_COLUMNS = ("design", "phase", "status", "cell_type", "origin", "route", "dose",
                 "age_range", "blinding", "control", "outcomes", "follow_up_months", "country")
_N_FIELDS = ("n_randomised", "n_treated", "n_enrolled", "enrollment")


def _rank(provenance: str) -> int:
    if provenance not in PROVENANCE:
        raise InputError(f"unknown provenance {provenance!r} (one of {', '.join(PROVENANCE)})")
    return PROVENANCE.index(provenance)


def _display(value: Any) -> str:
    """A fact as one line of text: lists joined with "; ", whole floats without ".0"."""
    if isinstance(value, (list, tuple)):
        return "; ".join(_display(v) for v in value)
    if isinstance(value, dict):
        return f"{value.get('name', '')}" + (f" (n={value['n']})" if value.get("n") else "")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def registry_sort(ids: Iterable[str]) -> list[str]:
    """Registry ids without repeats, NCT ids first."""
    return sorted(set(ids), key=lambda i: (not i.startswith("NCT"), i))


# -- trials -------------------------------------------------------------------------------------

def find_trials(conn: sqlite3.Connection, *, registry_ids: Iterable[str] = (),
                work_ids: Iterable[int] = (), key: str | None = None) -> list[int]:
    """Ids of the trials that carry any of these registry ids, are reported by any of these
    works (pooled analyses aside), or have this key; oldest first."""
    found: set[int] = set()
    for registry_id in registry_ids:
        row = conn.execute("SELECT trial_id FROM trial_registry_ids WHERE registry_id = ?",
                           (registry_id,)).fetchone()
        if row:
            found.add(row[0])
    for work_id in work_ids:
        found.update(r[0] for r in conn.execute(
            "SELECT trial_id FROM trial_reports WHERE work_id = ? AND role != 'pooled-analysis'",
            (work_id,)))
    if key:
        row = conn.execute("SELECT id FROM trials WHERE key = ?", (key,)).fetchone()
        if row:
            found.add(row[0])
    return sorted(found)


def ensure_trial(conn: sqlite3.Connection, key: str, *, registry_ids: Iterable[str] = (),
                 work_ids: Iterable[int] = ()) -> int:
    """The trial these registry ids, report works or key identify; created when there is none,
    and two or more found are merged into the oldest."""
    registry_ids, work_ids = list(registry_ids), list(work_ids)
    with transaction(conn):
        found = find_trials(conn, registry_ids=registry_ids, work_ids=work_ids, key=key)
        if not found:
            stamp = now()
            return conn.execute("INSERT INTO trials(key, created_at, updated_at) VALUES (?, ?, ?) "
                                "RETURNING id", (key, stamp, stamp)).fetchone()[0]
        for other in found[1:]:
            merge_trials(conn, found[0], other)
        return found[0]


def _has_publication(conn: sqlite3.Connection, trial_id: int) -> bool:
    return conn.execute("SELECT 1 FROM trial_reports WHERE trial_id = ? AND role IN "
                        "('results', 'protocol', 'follow-up', 'secondary')",
                        (trial_id,)).fetchone() is not None


def merge_trials(conn: sqlite3.Connection, keep_id: int, drop_id: int) -> None:
    """Fold trial ``drop_id`` into ``keep_id`` with its registry ids, reports and outcomes.
    Where both give a field at the same provenance, the trial with a published report wins over
    a registry-only one (else the kept trial does); arms likewise."""
    if keep_id == drop_id:
        return
    with transaction(conn):
        if _has_publication(conn, drop_id) and not _has_publication(conn, keep_id):
            conn.execute("DELETE FROM trial_facts WHERE trial_id = ? AND EXISTS (SELECT 1 FROM "
                         "trial_facts d WHERE d.trial_id = ? AND d.provenance = "
                         "trial_facts.provenance AND d.field = trial_facts.field)",
                         (keep_id, drop_id))
            conn.execute("DELETE FROM trial_arms WHERE trial_id = ? AND EXISTS (SELECT 1 FROM "
                         "trial_arms d WHERE d.trial_id = ? AND d.provenance = "
                         "trial_arms.provenance)", (keep_id, drop_id))
        for table in ("trial_facts", "trial_arms", "trial_reports"):
            conn.execute(f"UPDATE OR IGNORE {table} SET trial_id = ? WHERE trial_id = ?",
                         (keep_id, drop_id))
        for table in ("trial_registry_ids", "outcomes"):
            conn.execute(f"UPDATE {table} SET trial_id = ? WHERE trial_id = ?", (keep_id, drop_id))
        conn.execute("DELETE FROM trials WHERE id = ?", (drop_id,))
        refresh_trial(conn, keep_id)


def set_fact(conn: sqlite3.Connection, trial_id: int, field: str, value: Any, provenance: str,
             *, source_url: str | None = None, sources: Sequence[str] | None = None,
             work_id: int | None = None) -> bool:
    """Store one value of ``field`` at ``provenance`` (replacing that provenance's value).
    ``None`` or an empty list deletes it. Returns True if the database changed."""
    _rank(provenance)
    if value is None or value == [] or value == "":
        return bool(conn.execute("DELETE FROM trial_facts WHERE trial_id = ? AND field = ? AND "
                                 "provenance = ?", (trial_id, field, provenance)).rowcount)
    sources = list(sources or ([source_url] if source_url else []))
    row = (_display(value), json.dumps(value, ensure_ascii=False), source_url or
           (sources[0] if sources else None), json.dumps(sources, ensure_ascii=False), work_id)
    old = conn.execute("SELECT value, data, source_url, sources, work_id FROM trial_facts WHERE "
                       "trial_id = ? AND field = ? AND provenance = ?",
                       (trial_id, field, provenance)).fetchone()
    if old is not None and tuple(old) == row:
        return False
    conn.execute("INSERT INTO trial_facts(trial_id, field, provenance, value, data, source_url, "
                 "sources, work_id, updated_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(trial_id, "
                 "field, provenance) DO UPDATE SET value = excluded.value, data = excluded.data, "
                 "source_url = excluded.source_url, sources = excluded.sources, "
                 "work_id = excluded.work_id, updated_at = excluded.updated_at",
                 (trial_id, field, provenance, *row, now()))
    return True


def delete_facts(conn: sqlite3.Connection, trial_id: int, provenance: str, *,
                 keep: Iterable[str] = (), work_id: int | None = None) -> int:
    """Delete a trial's facts of one provenance except the fields in ``keep`` (only those
    ``work_id`` gave, when given)."""
    keep = list(keep)
    marks = ",".join("?" * len(keep))
    where = f" AND field NOT IN ({marks})" if keep else ""
    if work_id is not None:
        where += " AND work_id = ?"
    return conn.execute(f"DELETE FROM trial_facts WHERE trial_id = ? AND provenance = ?{where}",
                        (trial_id, provenance, *keep,
                         *([] if work_id is None else [work_id]))).rowcount


def delete_rule_evidence(conn: sqlite3.Connection, work_ids: Sequence[int]) -> set[int]:
    """Delete the rule facts, reports and registry ids these works gave; returns the trials
    that had any (to refresh, or drop when nothing is left: :func:`refresh_or_drop_trials`)."""
    touched: set[int] = set()
    with transaction(conn):
        for chunk in chunked(list(work_ids)):
            marks = ",".join("?" * len(chunk))
            rule = f"provenance = 'rule' AND work_id IN ({marks})"
            touched.update(r[0] for r in conn.execute(
                f"SELECT trial_id FROM trial_facts WHERE {rule} "
                f"UNION SELECT trial_id FROM trial_reports WHERE {rule}", chunk + chunk))
            conn.execute(f"DELETE FROM trial_facts WHERE {rule}", chunk)
            conn.execute(f"DELETE FROM trial_reports WHERE {rule}", chunk)
            conn.execute(f"DELETE FROM trial_registry_ids WHERE provenance = 'rule' AND "
                         f"source_url IN ({marks})", [f"rule:work/{i}" for i in chunk])
    return touched


def set_arms(conn: sqlite3.Connection, trial_id: int, provenance: str,
             arms: Sequence[Mapping[str, Any]], source_url: str | None = None) -> bool:
    """Replace the arms a provenance gives for a trial; True if they changed."""
    _rank(provenance)
    new = [(i + 1, str(a.get("name") or f"arm {i + 1}"), a.get("n"), a.get("arm_type"),
            a.get("description"), source_url) for i, a in enumerate(arms)]
    old = [tuple(r) for r in conn.execute(
        "SELECT position, name, n, arm_type, description, source_url FROM trial_arms "
        "WHERE trial_id = ? AND provenance = ? ORDER BY position", (trial_id, provenance))]
    if old == new:
        return False
    conn.execute("DELETE FROM trial_arms WHERE trial_id = ? AND provenance = ?",
                 (trial_id, provenance))
    conn.executemany("INSERT INTO trial_arms(trial_id, provenance, position, name, n, arm_type, "
                     "description, source_url) VALUES (?,?,?,?,?,?,?,?)",
                     [(trial_id, provenance, *row) for row in new])
    return True


def add_registry_id(conn: sqlite3.Connection, trial_id: int, registry_id: str, provenance: str,
                    source_url: str | None = None) -> bool:
    """Attach a registry id to a trial (a higher provenance takes over an existing row).

    :raises InputError: ``registry_id`` is not a known registry's id form.
    """
    registry = registry_of(registry_id)
    if registry is None:
        raise InputError(f"not a trial registry id: {registry_id!r}")
    row = conn.execute("SELECT trial_id, provenance FROM trial_registry_ids WHERE "
                       "registry_id = ?", (registry_id,)).fetchone()
    if row is None:
        conn.execute("INSERT INTO trial_registry_ids(registry_id, trial_id, registry, provenance, "
                     "source_url) VALUES (?,?,?,?,?)",
                     (registry_id, trial_id, registry, provenance, source_url))
        return True
    if row["trial_id"] != trial_id:
        merge_trials(conn, min(row["trial_id"], trial_id), max(row["trial_id"], trial_id))
        return True
    if _rank(provenance) < _rank(row["provenance"]):
        conn.execute("UPDATE trial_registry_ids SET provenance = ?, source_url = ? WHERE "
                     "registry_id = ?", (provenance, source_url, registry_id))
        return True
    return False


def add_report(conn: sqlite3.Connection, trial_id: int, work_id: int, role: str,
               provenance: str, reason: str | None = None, source_url: str | None = None) -> bool:
    """Record that ``work_id`` reports ``trial_id`` in ``role``; a lower provenance never
    overrides a higher one's role."""
    if role not in REPORT_ROLES:
        raise InputError(f"unknown report role {role!r} (one of {', '.join(REPORT_ROLES)})")
    row = conn.execute("SELECT role, provenance, reason, source_url FROM trial_reports WHERE "
                       "trial_id = ? AND work_id = ?", (trial_id, work_id)).fetchone()
    if row is not None:
        if _rank(provenance) > _rank(row["provenance"]) or \
                tuple(row) == (role, provenance, reason, source_url):
            return False
        conn.execute("UPDATE trial_reports SET role = ?, provenance = ?, reason = ?, "
                     "source_url = ? WHERE trial_id = ? AND work_id = ?",
                     (role, provenance, reason, source_url, trial_id, work_id))
        return True
    conn.execute("INSERT INTO trial_reports(trial_id, work_id, role, provenance, reason, "
                 "source_url) VALUES (?,?,?,?,?,?)",
                 (trial_id, work_id, role, provenance, reason, source_url))
    return True


def refresh_trial(conn: sqlite3.Connection, trial_id: int) -> None:
    """Recompute a trial's columns from its best facts, registry ids and reports: the cell
    product, donor, route, control and blinding normalised by :mod:`kb.vocabulary`,
    beside the text as stated (``cell_type``, ``origin``, ``…_as_stated``)."""
    best: dict[str, tuple[int, Any]] = {}
    for row in conn.execute("SELECT field, provenance, value, data FROM trial_facts WHERE "
                            "trial_id = ?", (trial_id,)):
        current = best.get(row["field"])
        if current is None or _rank(row["provenance"]) < current[0]:
            best[row["field"]] = (_rank(row["provenance"]), (row["value"], json.loads(row["data"])))
    value = {field: entry[1][0] for field, entry in best.items()}
    data = {field: entry[1][1] for field, entry in best.items()}
    n = next((data[f] for f in _N_FIELDS if isinstance(data.get(f), int)), None)
    enrollment = data.get("enrollment") if isinstance(data.get("enrollment"), int) else None
    registry_ids = registry_sort(r[0] for r in conn.execute(
        "SELECT registry_id FROM trial_registry_ids WHERE trial_id = ?", (trial_id,)))
    report = conn.execute(
        "SELECT l.label, w.title FROM trial_reports r JOIN works w ON w.id = r.work_id "
        "JOIN work_labels l ON l.work_id = w.id WHERE r.trial_id = ? "
        "ORDER BY r.role = 'pooled-analysis', r.role != 'results', w.year, w.id LIMIT 1",
        (trial_id,)).fetchone()
    title = value.get("title") or value.get("official_title") or (
        report["title"] if report else None)
    label = report["label"] if report else (registry_ids[0] if registry_ids else title)
    columns = {c: value.get(c) for c in TRIAL_COLUMNS}
    columns.update(label=label, title=title, registry_ids="; ".join(registry_ids) or None,
                   n=n, enrollment=enrollment)
    normal = normalise_trial(value)
    columns.update({c: "; ".join(normal[c]) for c in ("cell_product", "donor", "route")})
    columns.update({c: normal[c] for c in ("control", "blinding", "route_as_stated",
                                           "control_as_stated", "blinding_as_stated")})
    old = conn.execute(f"SELECT {', '.join(columns)} FROM trials WHERE id = ?",
                       (trial_id,)).fetchone()
    if old is None or tuple(old) != tuple(columns.values()):
        assignments = ", ".join(f"{c} = ?" for c in columns)
        conn.execute(f"UPDATE trials SET {assignments}, updated_at = ? WHERE id = ?",
                     (*columns.values(), now(), trial_id))
    sync_fts_of_trials(conn, [trial_id])  # its facts, or the works reporting it, changed


def refresh_or_drop_trials(conn: sqlite3.Connection, trial_ids: Iterable[int]) -> None:
    """Recompute these trials' columns; a trial left with no fact, report or registry id is
    deleted (ids no longer in the KB, merged away, are skipped)."""
    with transaction(conn):
        for trial_id in trial_ids:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM trial_facts WHERE trial_id = ?1) "
                "OR EXISTS (SELECT 1 FROM trial_reports WHERE trial_id = ?1) "
                "OR EXISTS (SELECT 1 FROM trial_registry_ids WHERE trial_id = ?1)",
                (trial_id,)).fetchone()
            if row[0]:
                if conn.execute("SELECT 1 FROM trials WHERE id = ?", (trial_id,)).fetchone():
                    refresh_trial(conn, trial_id)
            else:
                conn.execute("DELETE FROM trials WHERE id = ?", (trial_id,))


def refresh_trials(conn: sqlite3.Connection) -> int:
    """Recompute every trial's columns (after the vocabulary changed, or a KB from before
    schema 7); returns how many trials there are."""
    ids = [r[0] for r in conn.execute("SELECT id FROM trials ORDER BY id")]
    with transaction(conn):
        for trial_id in ids:
            refresh_trial(conn, trial_id)
    return len(ids)


def store_synonyms(conn: sqlite3.Connection, terms: Iterable[Term]) -> int:
    """Replace the ``synonyms`` table's rows with these (kb.vocabulary's data file);
    returns how many there are."""
    rows = [(t.kind, t.term, t.normalised, t.pattern or None, i + 1) for i, t in enumerate(terms)]
    with transaction(conn):
        conn.execute("DELETE FROM synonyms")
        conn.executemany("INSERT INTO synonyms(kind, term, normalised, pattern, position) "
                         "VALUES (?,?,?,?,?)", rows)
    return len(rows)


# -- lineage and flags ----------------------------------------------------------------------

def add_lineage(conn: sqlite3.Connection, from_work_id: int, to_work_id: int, relation: str,
                reason: str, source: str | None, provenance: str = "curated") -> bool:
    """Record a typed lineage edge: ``from_work_id`` pools / is a follow-up of / reports the
    same trial as ``to_work_id``. A curated edge replaces a rule edge, never the reverse.
    Returns True if the database changed.

    :raises InputError: unknown relation, or an edge from a work to itself.
    """
    if relation not in RELATIONS:
        raise InputError(f"unknown lineage relation {relation!r} (one of {', '.join(RELATIONS)})")
    if from_work_id == to_work_id:
        raise InputError("a lineage edge needs two different works")
    _rank(provenance)
    with transaction(conn):
        row = conn.execute("SELECT id, provenance, reason, source FROM lineage WHERE "
                           "from_work_id = ? AND to_work_id = ? AND relation = ?",
                           (from_work_id, to_work_id, relation)).fetchone()
        if row is None:
            conn.execute("INSERT INTO lineage(from_work_id, to_work_id, relation, provenance, "
                         "reason, source, created_at) VALUES (?,?,?,?,?,?,?)",
                         (from_work_id, to_work_id, relation, provenance, reason, source, now()))
            if relation == "pools":  # the pooled trials' facts join the pooling work's index row
                sync_fts(conn, [from_work_id])
            return True
        if _rank(provenance) > _rank(row["provenance"]) or \
                (row["provenance"], row["reason"], row["source"]) == (provenance, reason, source):
            return False
        conn.execute("UPDATE lineage SET provenance = ?, reason = ?, source = ? WHERE id = ?",
                     (provenance, reason, source, row["id"]))
        return True


def delete_lineage(conn: sqlite3.Connection, provenance: str = "rule",
                   work_ids: Iterable[int] | None = None) -> int:
    """Delete lineage edges of one provenance (touching ``work_ids`` when given)."""
    if work_ids is None:
        pooling = [r[0] for r in conn.execute("SELECT from_work_id FROM lineage WHERE "
                                              "provenance = ? AND relation = 'pools'", (provenance,))]
        deleted = conn.execute("DELETE FROM lineage WHERE provenance = ?", (provenance,)).rowcount
        sync_fts(conn, pooling)
        return deleted
    ids = sorted(set(work_ids))
    deleted = 0
    for chunk in chunked(ids):
        marks = ",".join("?" * len(chunk))
        where = (f"provenance = ? AND (from_work_id IN ({marks}) OR to_work_id IN ({marks}))",
                 (provenance, *chunk, *chunk))
        pooling = [r[0] for r in conn.execute(
            f"SELECT from_work_id FROM lineage WHERE relation = 'pools' AND {where[0]}", where[1])]
        deleted += conn.execute(f"DELETE FROM lineage WHERE {where[0]}", where[1]).rowcount
        sync_fts(conn, pooling)
    return deleted


def replace_flags(conn: sqlite3.Connection, flags: Iterable[Mapping[str, Any]]) -> int:
    """Replace every work flag (retracted, corrected, expression-of-concern,
    depends-on-retracted) and sync ``works.is_retracted``; returns the number of flags."""
    rows = {(f["work_id"], f["flag"], f["reason"]): (f.get("other_work_id"), f.get("source"))
            for f in flags}
    with transaction(conn):
        conn.execute("DELETE FROM work_flags")
        conn.executemany("INSERT INTO work_flags(work_id, flag, reason, other_work_id, source) "
                         "VALUES (?,?,?,?,?)", [(*k, *v) for k, v in rows.items()])
        retracted = {k[0] for k in rows if k[1] == "retracted"}
        stamp = now()
        for work_id in retracted:
            conn.execute("UPDATE works SET is_retracted = 1, updated_at = ? WHERE id = ? AND "
                         "is_retracted = 0", (stamp, work_id))
    return len(rows)


#: The start of ``annotated_at`` for a work the bulk importer gave its design at insert, from
#: its record alone (:func:`kb.evidence.pipeline.design_at_insert`), followed by the work's
#: ``updated_at``: still due (it sorts before every time), so the global steps run as for
#: any new work, but the annotation does not read it again while it is unchanged.
PREANNOTATED = "!"


def due_for_annotation(conn: sqlite3.Connection) -> list[int]:
    """Works never annotated, or changed since they last were (schema 5)."""
    return [r[0] for r in conn.execute(
        "SELECT id FROM works WHERE annotated_at IS NULL OR annotated_at < updated_at")]


def mark_annotated(conn: sqlite3.Connection, work_ids: Iterable[int]) -> None:
    """Record that these works' evidence was derived just now."""
    stamp = now()
    ids = list(work_ids)
    with transaction(conn):
        for chunk in chunked(ids):
            conn.execute(f"UPDATE works SET annotated_at = ? WHERE id IN "
                         f"({','.join('?' * len(chunk))})", [stamp, *chunk])


# -- reads for the loaders (kb.evidence.load) ------------------------------------------------

def work_id_for(conn: sqlite3.Connection, ref: str) -> int | None:
    """The work a corpus id names: a DOI (``10.…``), ``url:<URL>`` or ``pmid:<PMID>``."""
    if ref.startswith("url:"):
        row = conn.execute("SELECT id FROM works WHERE url = ? ORDER BY id LIMIT 1",
                           (ref[4:],)).fetchone()
    elif ref.startswith("pmid:"):
        row = conn.execute("SELECT id FROM works WHERE pmid = ?", (ref[5:],)).fetchone()
    else:
        row = conn.execute("SELECT id FROM works WHERE doi = ?", (ref.lower(),)).fetchone()
    return row[0] if row else None


def ensure_corpus_work(conn: sqlite3.Connection, ref: str) -> int:
    """The work a corpus id names (:func:`work_id_for`); a stub credited to the corpus
    (:func:`kb.store.stub_record`) when the KB has none."""
    work_id = work_id_for(conn, ref)
    if work_id is not None:
        return work_id
    named: WorkRef = {"url": ref[4:]} if ref.startswith("url:") else {"doi": ref.lower()}
    return upsert_work(conn, stub_record(named, "corpus")).work_id


def has_fact(conn: sqlite3.Connection, trial_id: int, field: str, provenance: str) -> bool:
    """Whether the trial has a value of ``field`` at ``provenance``."""
    return conn.execute("SELECT 1 FROM trial_facts WHERE trial_id = ? AND field = ? AND "
                        "provenance = ?", (trial_id, field, provenance)).fetchone() is not None
