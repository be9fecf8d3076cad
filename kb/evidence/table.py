"""The evidence table: one row per trial, with its best facts, arms, reports and marks."""
from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from ..vocabulary import cell_products
from .design import DESIGNS

__all__ = ["evidence_rows", "COLUMNS", "NORMALISED"]

#: normalised facts (lists where a trial can have several), each beside its text as stated.
NORMALISED = ("cell_product", "donor", "route", "control", "blinding")
_LISTS = ("cell_product", "donor", "route")
#: columns of the table and CSV output, in order.
COLUMNS = ("label", "design", "cell_product", "cell_product_as_stated", "donor",
           "donor_as_stated", "route", "route_as_stated", "dose", "n", "arms", "age_range",
           "blinding", "blinding_as_stated", "control", "control_as_stated", "outcomes",
           "follow_up_months", "registry_ids", "phase", "status", "country", "pools", "reports")
_PROVENANCE = ("curated", "registry", "rule")


def _provenance(conn: sqlite3.Connection, trial_id: int) -> dict[str, dict[str, Any]]:
    """field -> {provenance, source} of the value the trials row shows."""
    best: dict[str, dict[str, Any]] = {}
    for row in conn.execute("SELECT field, provenance, source_url, sources FROM trial_facts "
                            "WHERE trial_id = ?", (trial_id,)):
        current = best.get(row["field"])
        if current is None or _PROVENANCE.index(row["provenance"]) < \
                _PROVENANCE.index(current["provenance"]):
            best[row["field"]] = {"provenance": row["provenance"], "source": row["source_url"],
                                  "sources": json.loads(row["sources"])}
    return best


def _arms(conn: sqlite3.Connection, trial_id: int) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT provenance, name, n, arm_type FROM trial_arms WHERE trial_id = ? "
                        "ORDER BY CASE provenance WHEN 'curated' THEN 0 WHEN 'registry' THEN 1 "
                        "ELSE 2 END, position", (trial_id,)).fetchall()
    if not rows:
        return []
    first = rows[0]["provenance"]
    return [{"name": r["name"], "n": r["n"], "type": r["arm_type"], "provenance": first}
            for r in rows if r["provenance"] == first]


def _reports(conn: sqlite3.Connection, trial_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(
        "SELECT r.work_id, l.label, r.role, r.provenance, r.reason, w.doi, w.pmid, w.url, "
        "w.year, w.status, w.unverified, m.mark, m.reasons AS mark_reasons "
        "FROM trial_reports_all r "
        "JOIN works w ON w.id = r.work_id JOIN work_labels l ON l.work_id = w.id "
        "LEFT JOIN work_marks m ON m.work_id = w.id WHERE r.trial_id = ? "
        "ORDER BY r.role = 'pooled-analysis', w.year, w.id", (trial_id,))]


def _pools(conn: sqlite3.Connection, trial_id: int) -> list[dict[str, Any]]:
    """What this trial's own reports pool (for pooled analyses): the pooled works' labels."""
    return [dict(r) for r in conn.execute(
        "SELECT DISTINCT e.to_work_id AS work_id, e.to_label AS label, e.to_doi AS doi, "
        "e.provenance, e.reason, e.source, m.mark FROM trial_reports r "
        "JOIN lineage_edges e ON e.from_work_id = r.work_id AND e.relation = 'pools' "
        "LEFT JOIN work_marks m ON m.work_id = e.to_work_id "
        "WHERE r.trial_id = ? ORDER BY e.to_label", (trial_id,))]


def _matches(row: dict[str, Any], words: list[str]) -> bool:
    text = " ".join(str(row.get(c) or "") for c in (
        "label", "title", "design", "cell_product_as_stated", "donor_as_stated",
        "route_as_stated", "control_as_stated", "outcomes", "registry_ids", "country"))
    text += " " + " ".join(" ".join(row[c]) if isinstance(row[c], list) else str(row[c] or "")
                           for c in NORMALISED)
    text += " " + " ".join(cell_products(row.get("cell_product_as_stated") or ""))
    text += " " + " ".join(f"{r['label']} {r['doi'] or ''}" for r in row["reports"])
    text = text.lower()
    return all(word in text for word in words)


def evidence_rows(conn: sqlite3.Connection, query: str | None = None) -> list[dict[str, Any]]:
    """The evidence table's rows (trials whose text has every word of ``query``), by design
    (RCTs first) then label. Each row has the trial's columns — the normalised facts
    (:data:`NORMALISED`; cell product, donor and route as lists) each beside its text as stated
    (``…_as_stated``) —, ``arms``, ``reports`` (with retraction marks), ``pools``,
    ``provenance`` (field -> provenance and source), the curated ``note`` and ``same_as`` (the
    curated links that made two records one trial)."""
    words = [w.lower() for w in re.findall(r"[^\s\"']+", query or "")]
    rows = []
    for trial in conn.execute("SELECT * FROM trials"):
        row = dict(trial)
        row["cell_product_as_stated"] = row.pop("cell_type")
        row["donor_as_stated"] = row.pop("origin")
        for column in _LISTS:
            row[column] = row[column].split("; ") if row[column] else []
        row["arms"] = _arms(conn, row["id"])
        row["reports"] = _reports(conn, row["id"])
        row["pools"] = _pools(conn, row["id"])
        row["provenance"] = _provenance(conn, row["id"])
        row["marks"] = sorted({r["mark"] for r in row["reports"]
                               if r["mark"] and r["role"] != "pooled-analysis"})
        for field in ("note", "same_as"):
            fact = conn.execute("SELECT value FROM trial_facts WHERE trial_id = ? AND field = ? "
                                "ORDER BY provenance = 'curated' DESC LIMIT 1",
                                (row["id"], field)).fetchone()
            row[field] = fact[0] if fact else None
        if words and not _matches(row, words):
            continue
        rows.append(row)
    order = {d: i for i, d in enumerate(DESIGNS)}
    rows.sort(key=lambda r: (order.get(r["design"], len(order)), (r["label"] or "").lower()))
    return rows
