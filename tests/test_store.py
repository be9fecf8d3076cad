"""The store: migrations, merge by identity, source precedence, idempotence, edges."""
from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from kb import store
from kb.errors import DatabaseError, InputError
from kb.records import WorkRecord
from kb.store import connection

AMANAT_DOI = "10.1186/s13287-021-02513-4"
ZARRABI_DOI = "10.1186/s12883-022-02636-y"
POOLED_DOI = "10.22074/cellj.2024.2032098.1600"


def crossref_amanat() -> WorkRecord:
    return {
        "source": "crossref", "source_id": AMANAT_DOI, "raw": '{"DOI": "10.1186/s13287-021-02513-4"}',
        "doi": AMANAT_DOI,
        "title": "Clinical and imaging outcomes after intrathecal injection of umbilical cord tissue "
                 "mesenchymal stem cells in cerebral palsy: a randomized double-blind "
                 "sham-controlled clinical trial",
        "journal": "Stem Cell Research & Therapy", "journal_abbrev": "Stem Cell Res Ther",
        "year": 2021, "pub_date": "2021-08-06", "volume": "12", "pages": "439",
        "type": "journal-article",
        "authors": [{"family": "Amanat", "given": "Man"}, {"family": "Majmaa", "given": "Anahita"},
                    {"family": "Zarrabi", "given": "Morteza"}],
        "references": [{"position": 1, "doi": ZARRABI_DOI, "title": "The safety and efficacy of "
                        "umbilical cord blood mononuclear cells", "year": 2022,
                        "first_author": "Zarrabi"},
                       {"position": 2, "unstructured": "Novak I, et al. State of the evidence "
                        "traffic lights 2019. Curr Neurol Neurosci Rep. 2020;20:3."}],
    }


def pubmed_amanat() -> WorkRecord:
    return {
        "source": "pubmed", "source_id": "34362453", "raw": "<PubmedArticle/>",
        "pmid": "34362453", "pmcid": "PMC8343813",
        "title": "Clinical and imaging outcomes after intrathecal injection of umbilical cord tissue "
                 "mesenchymal stem cells in cerebral palsy: a randomized double-blind "
                 "sham-controlled clinical trial.",
        "abstract": "BACKGROUND: (test abstract written for this test)",
        "journal": "Stem cell research & therapy", "journal_abbrev": "Stem Cell Res Ther",
        "year": 2021, "language": "eng",
        "mesh": [{"descriptor": "Cerebral Palsy", "qualifier": "therapy", "major": True},
                 {"descriptor": "Mesenchymal Stem Cells", "major": False}],
        "publication_types": ["Randomized Controlled Trial", "Journal Article"],
    }


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    connection = store.connect(tmp_path / "kb.db")
    yield connection
    connection.close()


def snapshot(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'works_fts_%' "
        "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {t: [tuple(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1")] for t in tables}


def work(conn: sqlite3.Connection, **where: str) -> sqlite3.Row:
    (field, value), = where.items()
    return conn.execute(f"SELECT * FROM works WHERE {field} = ?", (value,)).fetchone()


# -- migrations ----------------------------------------------------------------------------

def test_new_file_gets_latest_schema_wal_and_foreign_keys(conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.latest_version()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def _schema(conn: sqlite3.Connection) -> list[tuple]:
    return sorted(tuple(r) for r in conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))


def test_empty_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    conn = store.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.latest_version()
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == 0


@pytest.mark.parametrize("previous", [n for n, _ in connection._scripts()][:-1])  # numbers in use
def test_file_at_previous_version_is_migrated_with_its_data(tmp_path: Path, previous: int) -> None:
    old = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    store.migrate(old, target=previous)
    assert old.execute("PRAGMA user_version").fetchone()[0] == previous
    old.execute("INSERT INTO works(doi, title, created_at, updated_at) VALUES "
                "('10.1186/s13287-021-02513-4', 'Amanat 2021', '2024-01-01', '2024-01-01')")
    old.close()
    conn = store.connect(tmp_path / "old.db")
    fresh = store.connect(tmp_path / "fresh.db")
    assert _schema(conn) == _schema(fresh)
    assert work(conn, doi=AMANAT_DOI)["title"] == "Amanat 2021"


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("CREATE TABLE works(id INTEGER PRIMARY KEY)")  # collides with schema 1
    with pytest.raises(DatabaseError, match="migration 1 failed"):
        store.migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["works"]


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {store.latest_version() + 1}")
    with pytest.raises(DatabaseError, match="newer kb"):
        store.connect(path)


def test_non_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes\n")
    with pytest.raises(DatabaseError, match="not a SQLite database"):
        store.connect(path)
    assert path.read_text() == "these are my notes\n"


# -- merge rule ----------------------------------------------------------------------------

def test_same_record_twice_changes_nothing(conn: sqlite3.Connection) -> None:
    first = store.upsert_work(conn, crossref_amanat())
    before = snapshot(conn)
    second = store.upsert_work(conn, crossref_amanat())
    assert first.action == "added" and second == (first.work_id, "unchanged", ())
    assert snapshot(conn) == before  # updated_at included


def test_doi_plus_pmid_record_merges_two_rows_and_their_edges(conn: sqlite3.Connection) -> None:
    by_doi = store.upsert_work(conn, crossref_amanat()).work_id
    pubmed = pubmed_amanat()
    by_pmid = store.upsert_work(conn, pubmed).work_id
    assert by_doi != by_pmid
    # another work cites the PubMed-only row; the PubMed row also has its own citation
    citer = store.upsert_work(conn, {"source": "crossref", "doi": POOLED_DOI, "title": "Pooled",
                                     "references": [{"position": 1, "pmid": "34362453"}]}).work_id
    store.add_links(conn, [{"citing": {"pmid": "34362453"}, "cited": {"doi": ZARRABI_DOI},
                            "source": "openalex"}])
    result = store.upsert_work(conn, {**pubmed, "doi": AMANAT_DOI})
    assert result == (by_doi, "updated", (by_pmid,))
    assert conn.execute("SELECT count(*) FROM works WHERE id = ?", (by_pmid,)).fetchone()[0] == 0
    merged = work(conn, id=str(by_doi))
    assert (merged["doi"], merged["pmid"], merged["pmcid"]) == (AMANAT_DOI, "34362453", "PMC8343813")
    # crossref outranks pubmed for the title; pubmed outranks crossref for the abstract
    assert not merged["title"].endswith(".")
    assert merged["abstract"].startswith("BACKGROUND")
    assert [r[0] for r in conn.execute("SELECT descriptor FROM mesh WHERE work_id = ?",
                                       (by_doi,))] == ["Cerebral Palsy", "Mesenchymal Stem Cells"]
    # the incoming edge now points at the merged work
    assert conn.execute("SELECT cited_id FROM citations WHERE citing_id = ?",
                        (citer,)).fetchone()[0] == by_doi
    # the two sources' edge to Zarrabi is one edge with both sources
    rows = conn.execute("SELECT c.sources FROM citations c JOIN works w ON w.id = c.cited_id "
                        "WHERE c.citing_id = ? AND w.doi = ?", (by_doi, ZARRABI_DOI)).fetchall()
    assert [r[0] for r in rows] == ['["crossref", "openalex"]']
    assert conn.execute("SELECT count(*) FROM records WHERE work_id = ?", (by_doi,)).fetchone()[0] == 2
    # authors from crossref survive (pubmed record had none)
    assert conn.execute("SELECT count(*) FROM work_authors WHERE work_id = ?",
                        (by_doi,)).fetchone()[0] == 3
    fts = conn.execute("SELECT rowid FROM works_fts WHERE works_fts MATCH 'mesenchymal'").fetchall()
    assert [r[0] for r in fts] == [by_doi]


def test_lower_precedence_source_does_not_overwrite(conn: sqlite3.Connection) -> None:
    work_id = store.upsert_work(conn, crossref_amanat()).work_id
    result = store.upsert_work(conn, {"source": "openalex", "doi": AMANAT_DOI, "title": "Other",
                                      "cited_by_count": 40})
    row = work(conn, id=str(work_id))
    assert result.action == "updated"
    assert row["title"].startswith("Clinical and imaging") and row["cited_by_count"] == 40
    assert '"cited_by_count": "openalex"' in row["provenance"]


def test_reference_becomes_stub_and_full_record_upgrades_it(conn: sqlite3.Connection) -> None:
    store.upsert_work(conn, crossref_amanat())
    stub = work(conn, doi=ZARRABI_DOI)
    assert stub["status"] == "stub" and stub["year"] == 2022
    full = store.upsert_work(conn, {"source": "crossref", "doi": ZARRABI_DOI, "title":
                                    "The safety and efficacy of umbilical cord blood mononuclear "
                                    "cells in individuals with spastic cerebral palsy", "year": 2022,
                                    "authors": [{"family": "Zarrabi", "given": "Morteza"}]})
    assert full.work_id == stub["id"]
    assert work(conn, doi=ZARRABI_DOI)["status"] == "full"
    unresolved = conn.execute("SELECT count(*) FROM citations WHERE cited_id IS NULL").fetchone()[0]
    assert unresolved == 1  # the unstructured reference waits for resolution


def test_stub_record_never_downgrades_a_full_work(conn: sqlite3.Connection) -> None:
    store.upsert_work(conn, crossref_amanat())
    store.upsert_work(conn, {"source": "reference", "status": "stub", "doi": AMANAT_DOI,
                             "title": "Amanat et al"})
    row = work(conn, doi=AMANAT_DOI)
    assert row["status"] == "full" and row["title"].startswith("Clinical")


def test_retraction_is_sticky(conn: sqlite3.Connection) -> None:
    store.upsert_work(conn, {"source": "pubmed", "pmid": "111", "title": "Retracted trial",
                             "updates": [{"kind": "retraction", "direction": "updated-by",
                                          "pmid": "222"}]})
    store.upsert_work(conn, {"source": "crossref", "pmid": "111", "doi": "10.5555/retracted"})
    assert work(conn, pmid="111")["is_retracted"] == 1


def test_unknown_source_is_rejected_and_nothing_written(conn: sqlite3.Connection) -> None:
    before = snapshot(conn)
    with pytest.raises(InputError):
        store.upsert_works(conn, [crossref_amanat(), {"source": "wikipedia", "doi": "10.5555/x"}])
    assert snapshot(conn) == before


def test_same_edge_from_two_sources_is_one_edge(conn: sqlite3.Connection) -> None:
    store.upsert_work(conn, crossref_amanat())
    link = {"citing": {"doi": AMANAT_DOI}, "cited": {"doi": ZARRABI_DOI}, "source": "opencitations"}
    assert store.add_links(conn, [link]) == 1
    assert store.add_links(conn, [link]) == 0
    rows = conn.execute("SELECT sources FROM citations WHERE cited_doi = ?", (ZARRABI_DOI,)).fetchall()
    assert [r[0] for r in rows] == ['["crossref", "opencitations"]']


def test_curated_design_wins_over_rules(conn: sqlite3.Connection) -> None:
    work_id = store.upsert_work(conn, {"source": "corpus", "doi": POOLED_DOI, "title": "Pooled",
                                       "study_design": "pooled-analysis"}).work_id
    assert not store.set_study_design(conn, work_id, "review", "rule")
    row = work(conn, id=str(work_id))
    assert (row["study_design"], row["design_source"]) == ("pooled-analysis", "curated")


def test_delete_works_removes_rows_and_index(conn: sqlite3.Connection) -> None:
    store.upsert_work(conn, pubmed_amanat())
    assert store.delete_works(conn, ["34362453", "999"]) == 1
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM works_fts").fetchone()[0] == 0


def test_no_scraper_imports_the_store() -> None:
    """Scrapers fetch and parse; only the store writes (their clock is kb.clock)."""
    root = Path(__file__).parent.parent / "scrapers"
    offenders = [p.name for p in sorted(root.glob("*.py"))
                 if re.search(r"^\s*(from kb(\.store| import store)|import kb\.store)",
                              p.read_text(encoding="utf-8"), re.M)]
    assert offenders == []
