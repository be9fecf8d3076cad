"""`kb import`: PubMed XML through the bulk writer, other formats through kb.formats."""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kb import store
from kb.cli import cli
from kb.ingest.files import import_pubmed_xml
from kb.scrapers.pubmed_xml import parse_pubmed_xml
from tests.replay import FIXTURES

PUBMED = FIXTURES / "pubmed"


def _import(runner: CliRunner, db: Path, *files: Path | str) -> object:
    return runner.invoke(cli, ["--db", str(db), "import", *map(str, files)])


def _snapshot(db: Path) -> dict[str, list]:
    """Every table's rows, ids replaced by the work's PMID/DOI so two databases compare."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    ident = {r["id"]: r["pmid"] or r["doi"] or r["pmcid"] for r in conn.execute("SELECT * FROM works")}
    snap: dict[str, list] = {}
    rows = []
    for r in conn.execute("SELECT * FROM works"):
        row = {k: r[k] for k in r.keys() if k not in ("id", "created_at", "updated_at")}
        rows.append(json.dumps(row, sort_keys=True))
    snap["works"] = sorted(rows)
    snap["work_authors"] = sorted(json.dumps([ident[r[0]], *r[1:]]) for r in conn.execute(
        "SELECT wa.work_id, wa.position, a.key, a.family, a.given, a.name, a.orcid, "
        "wa.affiliation FROM work_authors wa JOIN authors a ON a.id = wa.author_id"))
    for table in ("mesh", "keywords", "publication_types", "accessions", "updates"):
        snap[table] = sorted(json.dumps([ident[r[0]], *r[1:]]) for r in conn.execute(
            f"SELECT * FROM {table}"))
    snap["citations"] = sorted(json.dumps([ident[r["citing_id"]], ident.get(r["cited_id"]),
                                           *[r[k] for k in r.keys()[3:]]])
                               for r in conn.execute("SELECT * FROM citations"))
    snap["fts"] = sorted(json.dumps([ident[r[0]], *r[1:]]) for r in conn.execute(
        "SELECT rowid, * FROM works_fts"))
    conn.close()
    return snap


def test_import_pubmed_xml(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    result = _import(runner, db, PUBMED / "articles.xml")
    assert result.exit_code == 0, result.output
    assert "8 records, 8 added" in result.output
    conn = store.connect(db)
    work = conn.execute("SELECT * FROM works WHERE pmid = '39345789'").fetchone()
    assert (work["doi"], work["pmcid"], work["status"]) == ("10.1093/jamiaopen/ooae099",
                                                            "PMC11430916", "full")
    assert json.loads(work["provenance"])["title"] == "pubmed"
    names = [r[0] for r in conn.execute(
        "SELECT a.name FROM work_authors wa JOIN authors a ON a.id = wa.author_id "
        "WHERE wa.work_id = ? ORDER BY wa.position", (work["id"],))]
    assert names[0] == "Antonio Parraga-Leo"
    cited = conn.execute("SELECT c.position, w.pmid, w.status FROM citations c JOIN works w "
                         "ON w.id = c.cited_id WHERE c.citing_id = ? ORDER BY c.position",
                         (work["id"],)).fetchall()
    assert len(cited) == 18 and tuple(cited[0]) == (1, "23715799", "stub")
    assert conn.execute("SELECT is_retracted FROM works WHERE pmid = '33104149'").fetchone()[0]
    assert conn.execute("SELECT accession FROM accessions").fetchall()[0][0] == "NCT03935542"
    hits = conn.execute("SELECT rowid FROM works_fts WHERE works_fts MATCH 'sesquiterpene'")
    assert [r[0] for r in hits] == [conn.execute(
        "SELECT id FROM works WHERE pmid = '31359772'").fetchone()[0]]
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 0
    conn.close()


def test_bulk_import_matches_upsert_works(tmp_path: Path) -> None:
    """The bulk path stores exactly what kb.store.upsert_work stores, record by record."""
    bulk, plain = tmp_path / "bulk.db", tmp_path / "plain.db"
    conn = store.connect(bulk)
    report = import_pubmed_xml(conn, PUBMED / "articles.xml", batch_size=3)
    conn.close()
    assert report.error is None and report.added == 8
    conn = store.connect(plain)
    store.upsert_works(conn, list(parse_pubmed_xml(PUBMED / "articles.xml")))
    conn.close()
    assert _snapshot(bulk) == _snapshot(plain)


def test_reimport_changes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    assert _import(runner, db, PUBMED / "articles.xml").exit_code == 0
    before = _snapshot(db)
    stamps = sqlite3.connect(db).execute("SELECT id, updated_at FROM works").fetchall()
    result = _import(runner, db, PUBMED / "articles.xml")
    assert result.exit_code == 0
    assert "0 added, 0 updated, 8 unchanged" in result.output
    assert _snapshot(db) == before
    assert sqlite3.connect(db).execute("SELECT id, updated_at FROM works").fetchall() == stamps


def test_update_file_deletes_and_adds(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    assert _import(runner, db, PUBMED / "articles.xml").exit_code == 0
    result = _import(runner, db, PUBMED / "update.xml.gz")
    assert result.exit_code == 0, result.output
    assert "2 records, 2 added" in result.output and "1 deleted" in result.output
    conn = store.connect(db)
    pmids = {r[0] for r in conn.execute("SELECT pmid FROM works WHERE status = 'full'")}
    assert "34843274" not in pmids and {"34017925", "38534005", "39345789"} <= pmids
    assert conn.execute("SELECT count(*) FROM works_fts WHERE rowid NOT IN "
                        "(SELECT id FROM works)").fetchone()[0] == 0
    # the update was small next to the table: its rows were synced, not the index rebuilt
    assert sorted(map(tuple, conn.execute("SELECT rowid, * FROM works_fts"))) == \
        sorted(map(tuple, conn.execute("SELECT * FROM works_fts_source")))


@pytest.mark.parametrize("name", ["malformed.xml", "truncated.xml", "truncated.xml.gz",
                                  "billion_laughs.xml"])
def test_broken_file_imports_nothing(runner: CliRunner, tmp_path: Path, name: str) -> None:
    db = tmp_path / "kb.db"
    result = _import(runner, db, PUBMED / name)
    assert result.exit_code == 2  # bad input
    assert f"{name}: FAILED, nothing imported" in result.output
    assert "Traceback" not in result.output
    conn = store.connect(db)
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM citations").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM authors").fetchone()[0] == 0
    assert _indexes(conn) == _indexes(store.connect(tmp_path / "fresh.db"))  # drop undone


def _indexes(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    return set(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))


def test_browsing_indexes_are_rebuilt_after_an_import(runner: CliRunner, tmp_path: Path) -> None:
    """An import into a small KB drops the indexes it never reads and builds them at the end:
    the same definitions after it, and the planner uses them again."""
    db = tmp_path / "kb.db"
    assert _import(runner, db, PUBMED / "efetch.xml").exit_code == 0
    conn = store.connect(db)
    assert _indexes(conn) == _indexes(store.connect(tmp_path / "fresh.db"))
    plan = " ".join(row[3] for row in conn.execute(
        "EXPLAIN QUERY PLAN SELECT work_id FROM mesh WHERE descriptor = 'Cerebral Palsy' "
        "COLLATE NOCASE"))
    assert "INDEX mesh_descriptor" in plan and "INDEX work_mesh_term" in plan
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_good_files_stay_when_another_fails(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    result = _import(runner, db, PUBMED / "efetch.xml", PUBMED / "truncated.xml.gz")
    assert result.exit_code == 1
    assert "1 of 2 files failed" in result.output
    conn = store.connect(db)
    assert {r[0] for r in conn.execute("SELECT pmid FROM works WHERE status = 'full'")} == \
        {"39345789", "34843274"}


def test_import_merges_with_stored_works(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    conn = store.connect(db)
    store.upsert_work(conn, {"source": "crossref", "doi": "10.1093/jamiaopen/ooae099",
                             "title": "VMAP: Vaginal Microbiome Atlas during Pregnancy",
                             "journal": "JAMIA Open", "year": 2024})
    store.upsert_work(conn, {"source": "reference", "status": "stub", "pmid": "34843274"})
    conn.close()
    result = _import(runner, db, PUBMED / "efetch.xml")
    assert result.exit_code == 0, result.output
    assert "2 updated" in result.output
    conn = store.connect(db)
    rows = conn.execute("SELECT * FROM works WHERE pmid IN ('39345789', '34843274') "
                        "OR doi = '10.1093/jamiaopen/ooae099' ORDER BY id").fetchall()
    assert len(rows) == 2
    vmap, guideline = rows
    assert vmap["pmid"] == "39345789"
    assert vmap["title"] == "VMAP: Vaginal Microbiome Atlas during Pregnancy"  # Crossref ranks first
    assert vmap["journal_abbrev"] == "JAMIA Open"
    assert vmap["abstract"].startswith("OBJECTIVES:")  # PubMed's abstract
    assert guideline["status"] == "full" and guideline["doi"] == "10.1037/amp0000904"


def test_keep_raw_stores_record_xml(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    result = runner.invoke(cli, ["--db", str(db), "import", "--keep-raw",
                                 str(PUBMED / "efetch.xml")])
    assert result.exit_code == 0, result.output
    conn = store.connect(db)
    rows = conn.execute("SELECT source, source_id, body FROM records ORDER BY source_id").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("pubmed", "34843274"), ("pubmed", "39345789")]
    assert rows[1][2].startswith("<PubmedArticle>")


def test_other_formats_go_through_kb_formats(runner: CliRunner, tmp_path: Path) -> None:
    ris = tmp_path / "library.ris"
    ris.write_text("TY  - JOUR\nTI  - VMAP: Vaginal Microbiome Atlas during Pregnancy\n"
                   "DO  - 10.1093/jamiaopen/ooae099\nPY  - 2024\nER  - \n", encoding="utf-8")
    db = tmp_path / "kb.db"
    result = _import(runner, db, ris, PUBMED / "efetch.xml")
    assert result.exit_code == 0, result.output
    assert "[ris]" in result.output and "[pubmed-xml]" in result.output
    conn = store.connect(db)
    work = conn.execute("SELECT * FROM works WHERE doi = '10.1093/jamiaopen/ooae099'").fetchone()
    assert work["pmid"] == "39345789"  # the RIS work and the PubMed record are one work
    assert conn.execute("SELECT count(*) FROM works WHERE status = 'full'").fetchone()[0] == 2


def test_unreadable_and_unknown_files(runner: CliRunner, tmp_path: Path) -> None:
    odd = tmp_path / "notes.bin"
    odd.write_bytes(b"\x00\x01\x02 not a bibliography")
    result = _import(runner, tmp_path / "kb.db", odd)
    assert result.exit_code == 2
    assert "notes.bin: FAILED, nothing imported" in result.output
    missing = _import(runner, tmp_path / "kb.db", tmp_path / "nope.xml")
    assert missing.exit_code == 2


def test_gzip_update_file_named_like_baseline(runner: CliRunner, tmp_path: Path) -> None:
    """Format comes from content, not the name: a gzip without .gz is still read."""
    copy = tmp_path / "pubmed25n1300"
    shutil.copy(PUBMED / "update.xml.gz", copy)
    result = _import(runner, tmp_path / "kb.db", copy)
    assert result.exit_code == 0, result.output
    assert "[pubmed-xml]: 2 records" in result.output


def test_parsing_in_a_helper_process_gives_the_same_kb(tmp_path: Path) -> None:
    """Big files are parsed by a helper process; the result and the all-or-nothing rule hold."""
    here, there = tmp_path / "here.db", tmp_path / "there.db"
    for db, background in ((here, False), (there, True)):
        conn = store.connect(db)
        report = import_pubmed_xml(conn, PUBMED / "articles.xml", batch_size=3,
                                   background=background)
        conn.close()
        assert report.error is None and report.records == 8
    assert _snapshot(here) == _snapshot(there)
    conn = store.connect(tmp_path / "broken.db")
    report = import_pubmed_xml(conn, PUBMED / "malformed.xml", batch_size=2, background=True)
    assert report.error_code == 2 and "malformed.xml: not well-formed" in report.error
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == 0


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="the broken parser reaches the helper process by fork")
@pytest.mark.parametrize("failure, message", [
    (lambda: 1 / 0, "the PubMed parser failed: ZeroDivisionError"),
    (lambda: os._exit(3), "the PubMed parser process stopped (exit code 3)"),
])
def test_a_parser_process_that_fails_is_named_and_stores_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Callable[[], Any],
        message: str) -> None:
    """An unexpected error, or the helper process dying, is one message naming the file."""
    from kb.ingest import files

    def broken(path: Path, raw: bool, size: int, designs: bool) -> Iterator[Any]:
        yield [], [], [], 0
        failure()
    monkeypatch.setattr(files, "_parse_here", broken)  # the fork-started helper inherits it
    conn = store.connect(tmp_path / "kb.db")
    report = import_pubmed_xml(conn, PUBMED / "articles.xml", background=True)
    assert report.error is not None and message in report.error, report.error
    assert str(PUBMED / "articles.xml") in report.error
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == 0


@pytest.mark.parametrize("defer_fts", [True, False])
def test_bulk_writer_matches_upsert_for_rich_references(tmp_path: Path, defer_fts: bool) -> None:
    """References with titles, years, first authors and URLs (other sources' shape) make
    the same stubs and citation rows through BulkWriter as through upsert_works."""
    from kb.store.bulk import BulkWriter
    records = [
        {"source": "crossref", "doi": "10.1186/s13287-021-02513-4", "title": "Amanat et al.",
         "year": 2021, "authors": [{"family": "Amanat", "given": "Man"}],
         "references": [
             {"position": 1, "doi": "10.1002/stem.1234", "title": "Cord blood in CP",
              "year": 2015, "first_author": "Min", "journal": "Stem Cells", "volume": "33"},
             {"position": 2, "pmid": "34362453", "first_author": "Sun"},
             {"position": 3, "unstructured": "Novak I. Cerebral palsy. 2017."},
             {"position": 4, "url": "https://cells4life.com/2025/03/x", "title": "Web"},
             {"position": 5, "doi": "10.1002/stem.1234"}]},
        {"source": "pubmed", "pmid": "34362453", "title": "Sun et al.",
         "references": [{"position": 1, "doi": "10.1186/s13287-021-02513-4"},
                        {"position": 2, "pmid": "11111111", "doi": "10.1002/stem.1234"}]},
    ]
    bulk, plain = tmp_path / "bulk.db", tmp_path / "plain.db"
    conn = store.connect(bulk)
    with store.transaction(conn):
        writer = BulkWriter(conn, defer_fts=defer_fts)
        for record in records:
            writer.add(json.loads(json.dumps(record)))
        writer.finish()
    conn.close()
    conn = store.connect(plain)
    store.upsert_works(conn, json.loads(json.dumps(records)))
    conn.close()
    assert _snapshot(bulk) == _snapshot(plain)
