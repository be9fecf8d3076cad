"""Recompute what the rules know: designs, rule facts and trials, lineage, retraction flags."""
from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from typing import Any

from ..records import WorkRecord

from .. import store
from ..store import evidence as ev
from .design import PRIMARY_DESIGNS, SYNTHESIS_DESIGNS, WEB_TYPES, classify_design
from .extract import extract_facts, facts_implied_by_design, screen
from .lineage import CITED_DESIGNS, CITING_DESIGNS, infer_lineage, is_follow_up
from .load import store_rule_pooled, store_rule_trial
from .screen import may_name_cell_product, may_name_registry_id, of_the_field
from .retractions import compute_flags

__all__ = ["annotate", "assign_designs", "design_at_insert", "extract_trials", "link_registry_titles", "infer_edges",
           "extract_outcomes", "flag_retractions"]


def _grouped(conn: sqlite3.Connection, sql: str, ids: list[int]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: hundreds of thousands of MeSH rows
    for chunk in store.chunked(ids):
        marks = ",".join("?" * len(chunk))
        for work_id, value in cursor.execute(sql.format(marks=marks), chunk):
            out.setdefault(work_id, []).append(value)
    return out


#: A work with none of these is a bare stub (a reference's identifiers): no rule can give it a
#: design, trial fact or outcome, so the annotation does not read it.
_HAS_TEXT = ("w.title IS NOT NULL OR w.abstract IS NOT NULL OR w.type IN ({web}) OR "
             + " OR ".join(f"EXISTS (SELECT 1 FROM {table} x WHERE x.work_id = w.id)"
                           for table in ("publication_types", "work_mesh", "keywords", "accessions"))
             ).format(web=", ".join(f"'{t}'" for t in WEB_TYPES))


def design_at_insert(record: WorkRecord) -> tuple[str | None, str | None] | None:
    """``(design, source)`` (or ``(None, None)``) that annotating a new work of ``record``
    would give it, when the record alone shows that is all it would read the work for: the
    work is not of the field (:func:`kb.evidence.screen.of_the_field`), so it can give no
    trial, pooled report or rule outcome. None when the annotation must read it. Pure: the
    PubMed parser process computes it beside the record (:mod:`kb.ingest.files`)."""
    if record.get("study_design"):
        return None  # a design of its own: the annotation decides between them
    row = store.new_work_row(record, "")
    mesh = [m["descriptor"] for m in record.get("mesh") or []]
    keywords = [k for k in record.get("keywords") or [] if k]
    if of_the_field(row["title"], row["abstract"], mesh, keywords):
        return None
    types = [t for t in record.get("publication_types") or [] if t]
    return classify_design(row["title"], row["abstract"], types, mesh, row["type"]) or (None, None)


def _texts(conn: sqlite3.Connection, ids: list[int]) -> list[dict[str, Any]]:
    """What the rules read of the works among ``ids`` that have any text, in id order. Left
    out: bare stubs, and works given their design at insert
    (:data:`kb.store.evidence.PREANNOTATED`) and unchanged since."""
    table = _id_table(conn, ids)
    rows = [dict(r) for r in conn.execute(
        "SELECT id, doi, url, title, abstract, type, year, study_design, design_source "
        f"FROM works w WHERE w.id IN (SELECT id FROM {table}) AND ({_HAS_TEXT}) "
        f"AND w.annotated_at IS NOT '{ev.PREANNOTATED}' || w.updated_at ORDER BY w.id")]
    read = [r["id"] for r in rows]
    lists = {name: _grouped(conn, f"SELECT DISTINCT work_id, {column} FROM {table} "
                                  "WHERE work_id IN ({marks})", read)
             for name, table, column in (("publication_types", "publication_types", "type"),
                                         ("mesh", "mesh", "descriptor"),
                                         ("keywords", "keywords", "keyword"),
                                         ("accessions", "accessions", "accession"))}
    for row in rows:
        for name, values in lists.items():
            row[name] = values.get(row["id"], [])
    return rows


def assign_designs(conn: sqlite3.Connection, works: list[dict[str, Any]]) -> int:
    """Set each work's design from publication types / MeSH, then text rules (a curated design
    stays). Returns how many changed; ``works`` get their new ``study_design``."""
    designs = []
    for work in works:
        result = classify_design(work["title"], work["abstract"], work["publication_types"],
                                 work["mesh"], work["type"])
        if result is None or work["design_source"] == "curated":
            continue
        designs.append((work["id"], *result))
        work["study_design"], work["design_source"] = result
    return store.set_study_designs(conn, designs)


def _key(work: dict[str, Any]) -> str:
    if work["doi"]:
        return f"doi:{work['doi']}"
    return f"url:{work['url']}" if work["url"] else f"work:{work['id']}"


def _of_the_field(work: dict[str, Any]) -> bool:
    """:func:`kb.evidence.screen.of_the_field` of a work from :func:`_texts` (kept on it)."""
    if "field" not in work:
        work["field"] = of_the_field(work["title"], work["abstract"], work["mesh"],
                                     work["keywords"])
    return bool(work["field"])


def extract_trials(conn: sqlite3.Connection, works: list[dict[str, Any]],
                   work_ids: Iterable[int] | None = None) -> int:
    """Replace the rule facts these works give (and those ``work_ids`` gave, when it names more
    works); a work of the field (:func:`kb.evidence.screen.of_the_field`) that names a
    registry id, or a primary study that names a cell type, becomes (or joins) a trial. A
    pooled analysis, meta-analysis or review of the field that names registry ids becomes a
    pooled-analysis report of each of those trials instead (never merging them). Returns the
    trials touched."""
    ids = [w["id"] for w in works] if work_ids is None else list(work_ids)
    touched: set[int] = set()
    with store.transaction(conn):
        touched.update(ev.delete_rule_evidence(conn, ids))
        for work in works:
            text = (work["title"], work["abstract"], work["mesh"], work["keywords"])
            design = work["study_design"]
            if not (may_name_registry_id(*text, work["accessions"])
                    or design in PRIMARY_DESIGNS and may_name_cell_product(*text)):
                continue  # no registry id, and no cell type that could make it a trial
            if not _of_the_field(work):
                continue  # neither a cell product nor cerebral palsy: no trial of the field
            registry_ids, cell_types = screen(*text, work["accessions"])
            if design in SYNTHESIS_DESIGNS:
                if registry_ids:
                    touched.update(store_rule_pooled(conn, work["id"], registry_ids,
                                                     f"this {design}"))
                continue
            if not registry_ids and not (design in PRIMARY_DESIGNS and cell_types):
                continue
            facts = extract_facts(*text, work["accessions"])
            facts = facts_implied_by_design(facts, design)
            if design:
                facts["design"] = design
            role = ("protocol" if design == "protocol" else
                    "follow-up" if is_follow_up(work["title"]) else "results")
            reason = ("names registry id " + ", ".join(facts["registry_ids"])
                      if facts.get("registry_ids")
                      else f"{design} naming {', '.join(cell_types)}")
            touched.add(store_rule_trial(conn, work["id"], facts, key=_key(work), role=role,
                                         reason=reason))
        ev.refresh_or_drop_trials(conn, sorted(touched))
    return len(touched)


def _norm_title(title: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", " ", (title or "").lower()).strip()


def link_registry_titles(conn: sqlite3.Connection) -> int:
    """A trial known only from a registry record whose title (or official title), word for word,
    is a work's title or begins it (at least 40 letters, one such work only) is reported by that
    work: link and merge them. Returns how many trials were linked."""
    linked = 0
    with store.transaction(conn):
        orphans = conn.execute(
            "SELECT t.id, f.value, f.provenance, f.source_url FROM trials t "
            "JOIN trial_facts f ON f.trial_id = t.id AND f.field IN ('title', 'official_title') "
            "WHERE NOT EXISTS (SELECT 1 FROM trial_reports r WHERE r.trial_id = t.id)").fetchall()
        titles = [(r[0], _norm_title(r[1])) for r in conn.execute(
            "SELECT id, title FROM works WHERE title IS NOT NULL")] if orphans else []
        done: set[int] = set()
        for trial_id, title, provenance, source in orphans:
            if trial_id in done:
                continue
            wanted = _norm_title(title)
            works = {w for w, t in titles if len(wanted) >= 40 and (t == wanted or
                                                                   t.startswith(wanted + " "))}
            if len(works) != 1 or not conn.execute("SELECT 1 FROM trials WHERE id = ?",
                                                   (trial_id,)).fetchone():
                continue
            work_id = works.pop()
            reason = f"the {provenance} registry record's title begins this work's title"
            for other in ev.find_trials(conn, work_ids=[work_id]):
                ev.merge_trials(conn, trial_id, other)
            ev.add_report(conn, trial_id, work_id, "results", "rule", reason, source)
            ev.set_fact(conn, trial_id, "linked_report", f"work {work_id}: {reason}", "rule",
                        source_url=source)
            ev.refresh_trial(conn, trial_id)
            done.add(trial_id)
            linked += 1
    return linked


def _id_table(conn: sqlite3.Connection, ids: Iterable[int]) -> str:
    """A temporary table holding ``ids`` (emptied first), for joins on large id sets."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS annotate_ids (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM temp.annotate_ids")
    conn.execute("INSERT OR IGNORE INTO temp.annotate_ids SELECT value FROM json_each(?)",
                 (json.dumps(list(ids)),))  # one statement for 100,000 ids
    return "temp.annotate_ids"


_LINEAGE_WORKS = ("SELECT w.id, w.study_design AS design, w.year, w.title, l.label FROM works w "
                  "JOIN work_labels l ON l.work_id = w.id")


def infer_edges(conn: sqlite3.Connection, work_ids: list[int] | None) -> int:
    """Recompute the rule lineage edges touching ``work_ids`` (all when None). Only the
    citations they take part in between designs an edge can join (:data:`CITING_DESIGNS` to
    :data:`CITED_DESIGNS`) are read, and only the works at their ends or reporting a trial, so
    the cost follows the works annotated, not the size of the KB."""
    reports = [tuple(r) for r in conn.execute("SELECT trial_id, work_id, role FROM trial_reports")]
    labels = {r[0]: r[1] for r in conn.execute(
        "SELECT id, coalesce(registry_ids, label, key) FROM trials")}
    citing, cited = (", ".join(f"'{d}'" for d in designs)
                     for designs in (CITING_DESIGNS, CITED_DESIGNS))
    cites = ("SELECT DISTINCT c.citing_id, c.cited_id FROM citations c "
             f"JOIN works f ON f.id = c.citing_id AND f.study_design IN ({citing}) "
             f"JOIN works t ON t.id = c.cited_id AND t.study_design IN ({cited}) "
             "WHERE c.cited_id IS NOT NULL")
    if work_ids is None:
        citations = [tuple(r) for r in conn.execute(f"{cites} ORDER BY c.citing_id, c.cited_id")]
    else:
        table = _id_table(conn, work_ids)
        citations = [tuple(r) for r in conn.execute(
            f"{cites} AND (c.citing_id IN (SELECT id FROM {table}) OR c.cited_id IN "
            f"(SELECT id FROM {table})) ORDER BY c.citing_id, c.cited_id")]
    table = _id_table(conn, {w for _, w, _ in reports} | {w for c in citations for w in c})
    works = {r["id"]: dict(r) for r in conn.execute(
        f"{_LINEAGE_WORKS} WHERE w.id IN (SELECT id FROM {table}) ORDER BY w.id")}
    wanted = None if work_ids is None else set(work_ids)
    added = 0
    with store.transaction(conn):
        ev.delete_lineage(conn, "rule", work_ids)
        for edge in infer_lineage(works, reports, labels, citations):
            if wanted is not None and edge.source not in wanted and edge.target not in wanted:
                continue
            if conn.execute("SELECT 1 FROM lineage WHERE from_work_id = ? AND to_work_id = ? AND "
                            "relation = ?", (edge.source, edge.target, edge.relation)).fetchone():
                continue
            added += ev.add_lineage(conn, edge.source, edge.target, edge.relation, edge.reason,
                                    edge.rule, provenance="rule")
    return added


def extract_outcomes(conn: sqlite3.Connection, works: list[dict[str, Any]],
                     work_ids: Iterable[int] | None = None) -> int:
    """Replace the outcome numbers the rules read in the abstracts of these works' trials and
    syntheses of the field (:func:`kb.evidence.outcomes.rule_rows`), each tied to the trial the
    work reports; other works (and ``work_ids`` not among them) keep none. Returns how many
    numbers there are."""
    from ..store.outcomes import delete_rule_outcomes, store_rule_outcomes
    from .outcomes import rule_rows

    studies = [w for w in works if w["abstract"]
               and w["study_design"] in PRIMARY_DESIGNS + SYNTHESIS_DESIGNS and _of_the_field(w)]
    ids = {w["id"] for w in works} if work_ids is None else set(work_ids)
    stored = 0
    with store.transaction(conn):
        delete_rule_outcomes(conn, ids - {w["id"] for w in studies})
        for work in studies:
            rows = rule_rows(work["abstract"], _key(work), f"rule:work/{work['id']}")
            trials = ev.find_trials(conn, work_ids=[work["id"]])
            stored += store_rule_outcomes(conn, work["id"], trials[0] if trials else None, rows)
    return stored


def flag_retractions(conn: sqlite3.Connection) -> int:
    """Recompute every retraction / correction flag; returns how many there are. Reads only
    what can raise a flag (notices, retracted types and works, lineage, and the citations of
    retracted works), so the cost does not grow with the KB."""
    updates = [dict(r) for r in conn.execute("SELECT * FROM updates")]
    types = [tuple(r) for r in conn.execute(
        "SELECT work_id, type FROM publication_types WHERE type LIKE '%retracted publication%' "
        "ORDER BY work_id, type")]
    lineage = [tuple(r) for r in conn.execute(
        "SELECT from_work_id, to_work_id, relation FROM lineage")]
    find = {}
    wanted = {(column, row[column]) for row in updates
              for column in ("other_doi", "other_pmid") if row[column]}
    table = _id_table(conn, [r[0] for r in conn.execute(
        "SELECT id FROM works WHERE doi IN (SELECT other_doi FROM updates) "
        "OR pmid IN (SELECT other_pmid FROM updates)")])
    for row in conn.execute(f"SELECT id, doi, pmid FROM works WHERE id IN "
                            f"(SELECT id FROM {table}) ORDER BY id"):
        if row["doi"] and ("other_doi", row["doi"]) in wanted:
            find[f"doi:{row['doi']}"] = row["id"]
        if row["pmid"] and ("other_pmid", row["pmid"]) in wanted:
            find[f"pmid:{row['pmid']}"] = row["id"]

    def works(ids: set[int]) -> dict[int, dict[str, Any]]:
        table = _id_table(conn, ids)
        return {r["id"]: dict(r) for r in conn.execute(
            "SELECT w.id, w.study_design AS design, w.is_retracted, l.label FROM works w "
            f"JOIN work_labels l ON l.work_id = w.id WHERE w.is_retracted OR w.id IN "
            f"(SELECT id FROM {table}) ORDER BY w.id")}

    named = ({w for w, _ in types} | {r["work_id"] for r in updates} | set(find.values())
             | {w for edge in lineage for w in edge[:2]})
    retracted = {f["work_id"] for f in compute_flags(works(named), updates, types, lineage, [],
                                                     find) if f["flag"] == "retracted"}
    table = _id_table(conn, retracted)
    citations = [tuple(r) for r in conn.execute(
        f"SELECT DISTINCT citing_id, cited_id FROM citations "
        f"WHERE cited_id IN (SELECT id FROM {table}) "
        "ORDER BY citing_id, cited_id")]
    flags = compute_flags(works(named | {w for c in citations for w in c}), updates, types,
                          lineage, citations, find)
    return ev.replace_flags(conn, flags)


def annotate(conn: sqlite3.Connection, work_ids: Iterable[int] | None = None) -> dict[str, int]:
    """(Re)compute designs, rule facts and trials, lineage and retraction flags for these works
    (all when None). Curated designs, facts and edges are never replaced. Returns counts."""
    ids = sorted({r[0] for r in conn.execute("SELECT id FROM works")} if work_ids is None
                 else set(work_ids))
    works = _texts(conn, ids)
    designs = assign_designs(conn, works)
    trials = extract_trials(conn, works, ids)
    trials += link_registry_titles(conn)
    outcomes = extract_outcomes(conn, works, ids)
    edges = infer_edges(conn, None if work_ids is None else ids)
    flags = flag_retractions(conn)
    ev.mark_annotated(conn, ids)
    return {"works": len(ids), "designs_changed": designs, "trials_touched": trials,
            "rule_edges": edges, "flags": flags, "rule_outcomes": outcomes}
