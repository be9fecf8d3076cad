"""Real-file robustness and hostile files for `kb import` (issues 14 and 16): every record of
the shapes real exports take lands, every bad file is refused with one line naming it (exit 2,
or 1 when other files were imported) and the knowledge base unchanged, and no file can make an
import block, recurse or take unbounded memory."""
from __future__ import annotations

import bz2
import gzip
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kb import store
from kb.cli import cli

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args])


def works(db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM works WHERE status != 'stub' ORDER BY id").fetchall()
    finally:
        conn.close()


def snapshot(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A KB holding one work, so "unchanged" means something."""
    path = tmp_path / "kb.db"
    conn = store.connect(path)
    store.upsert_works(conn, [{"source": "crossref", "doi": "10.5555/kept.1",
                               "title": "A work already in the knowledge base", "year": 2019}])
    conn.close()
    return path


def refused(db: Path, path: Path, *words: str, code: int = 2) -> Result:
    """`kb import path` fails cleanly: exit ``code``, the file and ``words`` named, no
    traceback, the KB as it was."""
    before = snapshot(db)
    result = run(db, "import", "--no-annotate", str(path))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output
    assert not result.exception or isinstance(result.exception, SystemExit), result.exception
    failed = [line for line in result.output.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and path.name in failed[0], result.output
    for word in words:
        assert word.lower() in failed[0].lower(), result.output
    assert snapshot(db) == before
    return result


# -- real-file shapes ---------------------------------------------------------------------------

def test_ovid_ris_numbered_records_and_nl_after_er_all_land(db: Path) -> None:
    result = run(db, "import", "--no-annotate", str(FIXTURES / "ovid.ris"))
    assert result.exit_code == 0, result.output
    rows = {r["title"]: r for r in works(db)}
    cord = rows["Umbilical cord blood cells in children with cerebral palsy"]
    assert cord["doi"] == "10.5555/ovid.1" and cord["journal_abbrev"] == "J Cell Ther"
    assert cord["year"] == 2019 and cord["pages"] == "11-19"
    assert rows["Bone marrow mononuclear cells in spastic diplegia: a pilot study"][
        "journal_abbrev"] == "Cell Transplant"
    assert len(rows) == 3


def test_bibtex_leading_text_control_entry_noopsort_and_tex_logo(db: Path) -> None:
    result = run(db, "import", "--no-annotate", str(FIXTURES / "ieeetran_style.bib"))
    assert result.exit_code == 0, result.output
    assert "2 records" in result.output  # the @IEEEtranBSTCTL entry is not a work
    rows = {r["title"]: r for r in works(db)}
    assert rows["TeXarcana: stem cells in cerebral palsy"]["year"] == 1981
    assert "Intrathecal UC-MSC in 50% of children" in rows
    conn = sqlite3.connect(db)
    names = {r[0] for r in conn.execute("SELECT family FROM authors")}
    conn.close()
    assert {"Müller", "École", "Knuth"} <= names


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16", "utf-8-sig", "utf-8"])
def test_encodings_are_read_without_mojibake(db: Path, tmp_path: Path, encoding: str) -> None:
    path = tmp_path / f"{encoding}.ris"
    path.write_bytes("TY  - JOUR\nTI  - Café résumé – Müller’s cells\nER  - \n".encode(encoding)
                     if encoding != "latin-1" else
                     "TY  - JOUR\nTI  - Café résumé\nER  - \n".encode(encoding))
    result = run(db, "import", "--no-annotate", str(path))
    assert result.exit_code == 0, result.output
    titles = {r["title"] for r in works(db)}
    assert ("Café résumé" if encoding == "latin-1" else "Café résumé – Müller’s cells") in titles


def test_text_in_no_known_encoding_is_refused(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "odd.ris"
    path.write_bytes(b"TY  - JOUR\nTI  - Caf\xe9 \x81\x8d\nER  - \n")  # not UTF-8, not cp1252
    refused(db, path, "neither UTF-8")


def test_a_multibyte_encoding_is_refused_not_garbled(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "gbk.bib"
    path.write_bytes("@article{kai2013, author = {凯瑞}, title = {测试标题}, journal = {测试期刊},"
                     " year = {2013}}\n".encode("gbk"))
    refused(db, path, "multi-byte encoding")


def test_opencitations_cits_csv_layouts_are_read(db: Path) -> None:
    for name, links in (("opencitations_cits.csv", 2), ("opencitations_ids.csv", 1)):
        result = run(db, "import", "--no-annotate", str(FIXTURES / name))
        assert result.exit_code == 0, result.output
        assert f"{links} citation links" in result.output
    conn = sqlite3.connect(db)
    pairs = set(conn.execute("SELECT f.doi, coalesce(t.doi, t.pmid) FROM citations c "
                             "JOIN works f ON f.id = c.citing_id JOIN works t ON t.id = c.cited_id"))
    conn.close()
    assert {("10.5555/citing.1", "10.5555/cited.1"), ("10.5555/citing.1", "9000002"),
            ("10.5555/citing.2", "10.5555/cited.2")} <= pairs


# -- truncated files ------------------------------------------------------------------------------

RIS = (FIXTURES / "ovid.ris").read_text()


@pytest.mark.parametrize("suffix, compress", [(".ris.gz", gzip.compress),
                                              (".ris.bz2", bz2.compress)])
def test_a_truncated_compressed_file_is_named_and_the_others_still_import(
        db: Path, tmp_path: Path, suffix: str, compress) -> None:  # type: ignore[no-untyped-def]
    data = compress(RIS.encode() * 20)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[:len(data) // 2])
    good = tmp_path / "good.nbib"
    good.write_text("PMID- 9100001\nTI  - A record in a good file\nDP  - 2020\n\n")
    result = run(db, "import", "--no-annotate", str(cut), str(good))
    assert result.exit_code == 1, result.output
    assert "Aborted" not in result.output and "Traceback" not in result.output
    assert f"{cut}: FAILED" in result.output and "cut short" in result.output
    assert "A record in a good file" in {r["title"] for r in works(db)}
    assert len(works(db)) == 2


@pytest.mark.parametrize("tail", ['"A title cut sh', '10.5555/x2,A title'],
                         ids=["open-quote", "missing-columns"])
def test_a_csv_cut_mid_record_is_refused(db: Path, tmp_path: Path, tail: str) -> None:
    path = tmp_path / "cut.csv"
    path.write_text(f'doi,title,year\n10.5555/x1,"A whole title",2020\n{tail}')
    refused(db, path, "cut short" if "missing" in tail else "")


# -- bounds -------------------------------------------------------------------------------------

def _bomb(path: Path, head: bytes, compress, mib: int = 300) -> Path:  # type: ignore[no-untyped-def]
    """A small compressed file that inflates to ``mib`` MiB (members of one compressed MiB)."""
    member = compress(b"a" * (1 << 20))
    with path.open("wb") as out:
        out.write(compress(head))
        for _ in range(mib):
            out.write(member)
    return path


@pytest.mark.parametrize("name, head, compress", [
    ("bomb.ris.gz", b"TY  - JOUR\nTI  - ", gzip.compress),
    ("bomb.bib.gz", b"@article{a, title={", gzip.compress),
    ("bomb.json.bz2", b'[{"title": "', bz2.compress)])
def test_a_decompression_bomb_is_refused(db: Path, tmp_path: Path, name: str, head: bytes,
                                         compress) -> None:  # type: ignore[no-untyped-def]
    path = _bomb(tmp_path / name, head, compress)
    assert path.stat().st_size < 4 << 20
    refused(db, path, "decompression bomb")


def test_a_pubmed_element_bomb_is_refused_before_it_is_built(db: Path, tmp_path: Path) -> None:
    head = (b'<?xml version="1.0"?>\n<PubmedArticleSet><PubmedArticle><MedlineCitation>'
            b'<PMID Version="1">1</PMID><Article><ArticleTitle>')
    member = gzip.compress(b"<i>a</i>" * 100_000)
    path = tmp_path / "elements.xml.gz"
    with path.open("wb") as out:
        out.write(gzip.compress(head))
        for _ in range(12):
            out.write(member)
        out.write(gzip.compress(b"</ArticleTitle></Article></MedlineCitation></PubmedArticle>"
                                b"</PubmedArticleSet>"))
    refused(db, path, "record 1", "tags")


@pytest.mark.parametrize("suffix, template", [
    (".ris", "TY  - JOUR\nTI  - {}\nER  - \n"),
    (".bib", "@article{{a, title = {{{}}}, year = 2020}}\n"),
    (".json", '[{{"type": "article-journal", "title": "{}"}}]\n'),
    (".nbib", "PMID- 9100002\nTI  - {}\nDP  - 2020\n\n")])
def test_a_huge_title_is_cut_with_a_warning_naming_the_record(
        db: Path, tmp_path: Path, suffix: str, template: str) -> None:
    path = tmp_path / f"long{suffix}"
    path.write_text(template.format("Cells " * 400_000))  # 2.4 MB
    result = run(db, "import", "--no-annotate", str(path))
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.output.splitlines() if line.startswith("warning"))
    assert path.name in warning and "title cut" in warning
    assert ("PMID 9100002" if suffix == ".nbib" else "record 1") in warning
    assert max(len(r["title"]) for r in works(db)) == 4096


def test_a_pubmed_title_past_the_bound_is_cut_with_a_warning(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "long.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<PubmedArticleSet><PubmedArticle><MedlineCitation>'
        '<PMID Version="1">9100003</PMID><Article><ArticleTitle>'
        + "Cells <i>in vivo</i> " * 2000 + "</ArticleTitle></Article></MedlineCitation>"
        "</PubmedArticle></PubmedArticleSet>\n")
    result = run(db, "import", "--no-annotate", str(path))
    assert result.exit_code == 0, result.output
    assert "PMID 9100003: title cut" in result.output
    assert max(len(r["title"]) for r in works(db)) == 4096


def test_a_csl_date_without_a_plausible_year_gives_no_year(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "dates.json"
    path.write_text(json.dumps([{"type": "article-journal", "title": "Odd date one",
                                 "issued": {"date-parts": [[None, 99]]}},
                                {"type": "article-journal", "title": "Odd date two",
                                 "issued": {"date-parts": [[99]]}}]))
    assert run(db, "import", "--no-annotate", str(path)).exit_code == 0
    assert {r["year"] for r in works(db) if r["title"].startswith("Odd")} == {None}


def test_a_jsonl_line_past_the_line_bound_is_refused(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"doi": "10.5555/long", "title": "x" * (2 << 20)}) + "\n")
    refused(db, path, "line 1", "longer than")


@pytest.mark.parametrize("name, text", [("deep.json", "[" * 100_000),
                                        ("deep.jsonl", '{"title": ' + "[" * 100_000 + "\n"),
                                        ("deep-item.json", '[{"title": ' + "[" * 100_000)])
def test_deeply_nested_json_is_a_clear_error(db: Path, tmp_path: Path, name: str,
                                             text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    refused(db, path, "nested too deeply")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_importing_a_fifo_is_refused_without_blocking(db: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "library.ris"
    os.mkfifo(fifo)
    # in a subprocess: a regression would block on open() forever
    done = subprocess.run([sys.executable, "-m", "kb.cli", "--db", str(db), "import",
                           "--no-annotate", str(fifo)], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=str(Path.cwd())))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not a regular file" in done.stdout + done.stderr


# -- CSV formula injection ------------------------------------------------------------------------

HOSTILE = ["=HYPERLINK(\"http://evil.example/\",\"click\")", "+cmd|' /C calc'!A0",
           "@SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0"]


@pytest.fixture
def hostile_db(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.db"
    conn = store.connect(path)
    store.upsert_works(conn, [{"source": "crossref", "doi": f"10.5555/csv.{i}", "title": title,
                               "year": 2020, "journal": "=1+1",
                               "authors": [{"family": "@Evil", "given": "Eve"}]}
                              for i, title in enumerate(HOSTILE)])
    conn.close()
    return path


def test_csv_exports_neutralise_formulas_and_import_restores_them(hostile_db: Path,
                                                                  tmp_path: Path) -> None:
    import csv
    out = tmp_path / "works.csv"
    assert run(hostile_db, "export", "--format", "csv", "--out", str(out)).exit_code == 0
    searched = run(hostile_db, "search", "--format", "csv")
    assert searched.exit_code == 0, searched.output
    for text in (out.read_text(), searched.output):
        cells = [cell for row in csv.reader(text.splitlines()) for cell in row]
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
        assert "'" + HOSTILE[0] in cells
    fresh = tmp_path / "fresh.db"
    assert run(fresh, "import", "--no-annotate", str(out)).exit_code == 0
    assert {r["title"] for r in works(fresh)} == set(HOSTILE)
    assert {r["journal"] for r in works(fresh)} == {"=1+1"}


def test_evidence_and_gaps_csv_neutralise_formulas(tmp_path: Path) -> None:
    import csv
    db = tmp_path / "gaps.db"
    conn = store.connect(db)
    refs = [{"doi": "10.5555/gap.1", "title": "=HYPERLINK(\"http://evil.example/\")",
             "year": 2001}]
    store.upsert_works(conn, [{"source": "crossref", "doi": f"10.5555/citer.{i}",
                               "title": f"Citing work {i}", "references": refs}
                              for i in range(3)])
    conn.close()
    result = run(db, "gaps", "--format", "csv")
    assert result.exit_code == 0, result.output
    cells = [cell for row in csv.reader(result.output.splitlines()) for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells), cells


def test_help_says_csv_cells_are_neutralised() -> None:
    for command in ("export", "search", "evidence", "gaps"):
        text = " ".join(CliRunner().invoke(cli, [command, "--help"]).output.split())
        assert "formula" in text and "OWASP" in text
