"""Annotation reads only what can change its answer: lineage for the annotated works' citations,
retraction flags for what can raise one. Same results as reading the whole KB."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from kb import store
from kb.evidence import pipeline
from kb.evidence.lineage import infer_lineage
from kb.evidence.retractions import compute_flags
from tests import graph_kb

BUNDLED = Path(__file__).resolve().parent.parent / "kb.db"


def _all_flags(conn: sqlite3.Connection) -> list[dict[str, object]]:
    """compute_flags over the whole KB, as flag_retractions read it before."""
    works = {r["id"]: dict(r) for r in conn.execute(
        "SELECT w.id, w.study_design AS design, w.is_retracted, l.label FROM works w "
        "JOIN work_labels l ON l.work_id = w.id")}
    find = {}
    for row in conn.execute("SELECT id, doi, pmid FROM works "
                            "WHERE doi IS NOT NULL OR pmid IS NOT NULL"):
        if row["doi"]:
            find[f"doi:{row['doi']}"] = row["id"]
        if row["pmid"]:
            find[f"pmid:{row['pmid']}"] = row["id"]
    return compute_flags(
        works, [dict(r) for r in conn.execute("SELECT * FROM updates")],
        [tuple(r) for r in conn.execute("SELECT work_id, type FROM publication_types")],
        [tuple(r) for r in conn.execute("SELECT from_work_id, to_work_id, relation FROM lineage")],
        [tuple(r) for r in conn.execute(
            "SELECT citing_id, cited_id FROM citations WHERE cited_id IS NOT NULL")], find)


def _flags(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute("SELECT * FROM work_flags ORDER BY 1, 2, 3")]


def _check_flags(conn: sqlite3.Connection) -> None:
    expected = sorted((f["work_id"], f["flag"], f["reason"], f["other_work_id"], f["source"])
                      for f in _all_flags(conn))
    pipeline.flag_retractions(conn)
    assert _flags(conn) == expected


def test_retraction_flags_equal_those_read_from_the_whole_kb(tmp_path: Path) -> None:
    conn = graph_kb.build(tmp_path / "graph.db")
    ids = graph_kb.work_ids(conn)
    _check_flags(conn)
    assert any(f[1] == "depends-on-retracted" for f in _flags(conn))  # the meta-analysis
    # a notice of retraction for a work the KB holds by PMID, stored as PubMed gives it
    conn.execute("UPDATE works SET pmid = '31000001' WHERE id = ?", (ids[graph_kb.AMANAT],))
    conn.execute("INSERT INTO updates(work_id, kind, direction, other_pmid, label, source) "
                 "VALUES (?, 'RetractionOf', 'update-to', '31000001', 'Retraction', 'pubmed')",
                 (ids[graph_kb.ALONE],))
    _check_flags(conn)
    assert ("retracted" in {f[1] for f in _flags(conn) if f[0] == ids[graph_kb.AMANAT]})
    conn.close()
    shutil.copy(BUNDLED, tmp_path / "kb.db")
    bundled = store.connect(tmp_path / "kb.db")
    _check_flags(bundled)
    bundled.close()


def test_lineage_of_some_works_equals_the_whole_kb_recompute(tmp_path: Path) -> None:
    shutil.copy(BUNDLED, tmp_path / "kb.db")
    conn = store.connect(tmp_path / "kb.db")
    pipeline.infer_edges(conn, None)
    everything = [tuple(r) for r in conn.execute(
        "SELECT from_work_id, to_work_id, relation, reason, source FROM lineage "
        "WHERE provenance = 'rule' ORDER BY 1, 2, 3")]
    assert len(everything) > 5
    # the rules over every work and every citation of the KB, as infer_edges read them before
    curated = {tuple(r) for r in conn.execute(
        "SELECT from_work_id, to_work_id, relation FROM lineage WHERE provenance != 'rule'")}
    whole = infer_lineage(
        {r["id"]: dict(r) for r in conn.execute(
            "SELECT w.id, w.study_design AS design, w.year, w.title, l.label FROM works w "
            "JOIN work_labels l ON l.work_id = w.id")},
        [tuple(r) for r in conn.execute("SELECT trial_id, work_id, role FROM trial_reports")],
        {r[0]: r[1] for r in conn.execute(
            "SELECT id, coalesce(registry_ids, label, key) FROM trials")},
        [tuple(r) for r in conn.execute(
            "SELECT citing_id, cited_id FROM citations WHERE cited_id IS NOT NULL")])
    assert sorted((e.source, e.target, e.relation, e.reason, e.rule) for e in whole
                  if (e.source, e.target, e.relation) not in curated) == everything
    some = sorted({e[0] for e in everything[::2]})
    conn.execute("DELETE FROM lineage WHERE provenance = 'rule'")
    pipeline.infer_edges(conn, some)
    touching = [e for e in everything if e[0] in some or e[1] in some]
    assert [tuple(r) for r in conn.execute(
        "SELECT from_work_id, to_work_id, relation, reason, source FROM lineage "
        "WHERE provenance = 'rule' ORDER BY 1, 2, 3")] == touching
    conn.close()
