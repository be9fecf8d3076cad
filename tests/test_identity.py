"""Identity as evidence: what may merge two works, conflicts kept and shown, every merge
logged and reversible, references kept by position, the user's note apart from curation's."""
from __future__ import annotations

import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.query import graph
from kb import store
from kb.cli import cli
from kb.query.export import export_citations
from kb.scrapers.crossref import to_record
from tests.test_import import _snapshot

REPO = Path(__file__).resolve().parents[1]


def _article(pmid: str, doi: str | None, title: str, refs: str = "") -> str:
    doi_id = f'<ArticleId IdType="doi">{doi}</ArticleId>' if doi else ""
    return (f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">'
            f'{pmid}</PMID><Article PubModel="Print"><Journal><Title>Journal</Title>'
            f'<JournalIssue><PubDate><Year>2020</Year></PubDate></JournalIssue></Journal>'
            f'<ArticleTitle>{title}</ArticleTitle><AuthorList><Author><LastName>Author{pmid}'
            f'</LastName><ForeName>A</ForeName></Author></AuthorList></Article></MedlineCitation>'
            f'<PubmedData><ArticleIdList><ArticleId IdType="pubmed">{pmid}</ArticleId>{doi_id}'
            f'</ArticleIdList>{refs}</PubmedData></PubmedArticle>')


def _pubmed(path: Path, *articles: str) -> Path:
    path.write_text(f'<?xml version="1.0"?><PubmedArticleSet>{"".join(articles)}'
                    '</PubmedArticleSet>', encoding="utf-8")
    return path


def _kb(db: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--db", str(db), *map(str, args)])


def _works(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT pmid, doi, title FROM works WHERE status = 'full' "
                        "ORDER BY pmid").fetchall()
    conn.close()
    return rows


A_AND_B = ("1", "10.1000/a", "Paper A"), ("2", "10.1000/b", "Paper B")


def test_a_citation_row_pairing_two_works_ids_merges_nothing(tmp_path: Path) -> None:
    """The issue's minimal reproduction: `doi:10.1000/c,doi:10.1000/a pmid:2` after A and B."""
    db = tmp_path / "kb.db"
    xml = _pubmed(tmp_path / "ab.xml", *(_article(*a) for a in A_AND_B))
    assert _kb(db, "import", "--no-annotate", xml).exit_code == 0
    csv = tmp_path / "pairs.csv"
    csv.write_text("citing,cited\ndoi:10.1000/c,doi:10.1000/a pmid:2\n", encoding="utf-8")
    result = _kb(db, "import", "--no-annotate", csv)
    assert result.exit_code == 0, result.output
    assert _works(db) == [("1", "10.1000/a", "Paper A"), ("2", "10.1000/b", "Paper B")]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM merges").fetchone()[0] == 0
    citation = conn.execute("SELECT cited_id, cited_doi, cited_pmid FROM citations").fetchone()
    assert citation == (None, "10.1000/a", "2")  # left unresolved, as printed
    conflicts = conn.execute("SELECT kind, value, source FROM identity_conflicts "
                             "ORDER BY kind").fetchall()
    assert conflicts == [("doi", "10.1000/a", "reference"), ("pmid", "2", "reference")]
    listed = _kb(db, "conflicts").output
    assert "doi 10.1000/a" in listed and "pmid 2" in listed
    assert "conflicts       2 open" in _kb(db, "stats").output


def test_same_doi_on_two_pubmed_records_keeps_both_and_a_conflict(tmp_path: Path) -> None:
    """A publisher's error (PMIDs 420122 and 420123 in pubmed20n0014 share a DOI)."""
    db = tmp_path / "kb.db"
    xml = _pubmed(tmp_path / "two.xml", _article("420122", "10.1000/same", "First"),
                  _article("420123", "10.1000/same", "Second"))
    for _ in range(2):  # the second import changes nothing
        result = _kb(db, "import", "--no-annotate", xml)
        assert result.exit_code == 0, result.output
    assert _works(db) == [("420122", "10.1000/same", "First"), ("420123", None, "Second")]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT kind, value, claimed_by, source FROM identity_conflicts"
                        ).fetchall() == [("doi", "10.1000/same", "pmid:420123", "pubmed")]
    row = conn.execute("SELECT * FROM open_identity_conflicts").fetchone()
    assert row is not None and "Second" in row and "First" in row
    conn.close()
    # resolved by hand: they are distinct
    assert _kb(db, "conflicts", "--distinct", "1").exit_code == 0
    assert "0 open" in _kb(db, "conflicts").output
    assert _kb(db, "conflicts", "--distinct", "1").exit_code == 2


def test_a_record_takes_back_its_pmid_from_a_reference_that_misplaced_it(tmp_path: Path) -> None:
    """pubmed21n1298, PMID 33934180's references: one paper's DOI paired with another's PMID.
    The work the reference named keeps its DOI and title; the PubMed record keeps its PMID."""
    conn = store.connect(tmp_path / "kb.db")
    work = store.upsert_work(conn, {"source": "crossref", "doi": "10.1000/w", "title": "W",
                                    "authors": [{"family": "Wu", "given": "W"}]}).work_id
    store.upsert_work(conn, {"source": "pubmed", "pmid": "33934180", "title": "Citing",
                             "references": [{"position": 1, "doi": "10.1000/w", "pmid": "77"}]})
    assert conn.execute("SELECT pmid FROM works WHERE id = ?", (work,)).fetchone()[0] == "77"
    paper = store.upsert_work(conn, {"source": "pubmed", "pmid": "77", "doi": "10.1000/p",
                                     "title": "P", "authors": [{"family": "Po", "given": "P"}]})
    assert paper.action == "added" and paper.work_id != work
    rows = conn.execute("SELECT pmid, doi, title FROM works WHERE status = 'full' ORDER BY id")
    assert [tuple(r) for r in rows] == [(None, "10.1000/w", "W"), ("33934180", None, "Citing"),
                                        ("77", "10.1000/p", "P")]
    assert [tuple(r) for r in conn.execute("SELECT kind, value, work_id, other_id FROM "
                                           "identity_conflicts")] == [("pmid", "77", work, paper.work_id)]
    assert conn.execute("SELECT count(*) FROM merges").fetchone()[0] == 0


def test_two_misc_entries_sharing_a_url_stay_two_works(tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    bib = tmp_path / "refs.bib"
    bib.write_text("@misc{a, title={One page}, year={2020}, url={http://example.org/d/}}\n"
                   "@misc{b, title={Another page}, year={2021}, url={http://example.org/d/}}\n",
                   encoding="utf-8")
    result = _kb(db, "import", "--no-annotate", bib)
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(db)
    assert sorted(r[0] for r in conn.execute("SELECT title FROM works")) == \
        ["Another page", "One page"]


def test_a_web_article_is_matched_by_its_own_address(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "kb.db")
    page = {"source": "webpage", "type": "web-article", "title": "Fresh insights",
            "url": "https://cells4life.com/2025/03/fresh-insights"}
    first = store.upsert_work(conn, page).work_id  # type: ignore[arg-type]
    again = store.upsert_work(conn, {**page, "source": "import"}).work_id  # type: ignore[arg-type]
    home = {"source": "import", "type": "journal-article", "title": "Something else",
            "url": "https://cells4life.com/"}
    other = store.upsert_work(conn, home).work_id  # type: ignore[arg-type]
    same_home = store.upsert_work(conn, {**home, "title": "A third"}).work_id  # type: ignore[arg-type]
    # RIS journal articles whose UR is their journal's page
    journal = {"source": "import", "type": "journal-article", "title": "Article one",
               "url": "https://journals.example.org/stem-cells-int"}
    one = store.upsert_work(conn, journal).work_id  # type: ignore[arg-type]
    two = store.upsert_work(conn, {**journal, "title": "Article two"}).work_id  # type: ignore[arg-type]
    assert first == again and len({first, other, same_home, one, two}) == 5


def test_duplicate_crossref_references_are_kept_by_position(tmp_path: Path) -> None:
    """10.1136/esmoopen-2020-000776 lists "Matsui" twice (author-only, different keys)."""
    refs = [{"key": f"ref{n}", "author": name, "year": "2019"}
            for n, name in enumerate(["Matsui", "Van Cutsem", "Matsui", "Van Cutsem", "Other"])]
    record = to_record({"DOI": "10.1136/esmoopen-2020-000776", "title": ["ESMO Open"],
                        "type": "journal-article", "reference": refs})
    conn = store.connect(tmp_path / "kb.db")
    store.upsert_work(conn, record)
    rows = conn.execute("SELECT position, first_author FROM citations ORDER BY position")
    assert [tuple(r) for r in rows] == [(1, "Matsui"), (2, "Van Cutsem"), (3, "Matsui"),
                                        (4, "Van Cutsem"), (5, "Other")]
    before = _snapshot(tmp_path / "kb.db")
    assert store.upsert_work(conn, record).action == "unchanged"
    assert _snapshot(tmp_path / "kb.db") == before


def test_one_list_naming_a_doi_twice_keeps_two_rows(tmp_path: Path) -> None:
    """10.1371/journal.pone.0033693 lists 70 references, one DOI twice: two rows, both linked;
    another source's edge for the same pair folds into the first, both sources credited."""
    refs = [{"key": "ref1", "DOI": "10.1000/twice"}, {"key": "ref2", "DOI": "10.1000/other"},
            {"key": "ref3", "DOI": "10.1000/TWICE", "unstructured": "Same paper, cited again."}]
    record = to_record({"DOI": "10.1371/journal.pone.0033693", "title": ["PLoS ONE"],
                        "type": "journal-article", "reference": refs})
    db = tmp_path / "kb.db"
    conn = store.connect(db)
    store.upsert_work(conn, record)
    store.add_links(conn, [{"citing": {"doi": "10.1371/journal.pone.0033693"},
                            "cited": {"doi": "10.1000/twice"}, "source": "openalex"}])
    rows = conn.execute("SELECT c.position, w.doi, c.sources FROM citations c "
                        "JOIN works w ON w.id = c.cited_id ORDER BY c.position").fetchall()
    assert [tuple(r) for r in rows] == [(1, "10.1000/twice", '["crossref", "openalex"]'),
                                        (2, "10.1000/other", '["crossref"]'),
                                        (3, "10.1000/twice", '["crossref"]')]
    edges = conn.execute("SELECT count(*) FROM (SELECT DISTINCT citing_id, cited_id "
                         "FROM citations)").fetchone()[0]
    cited_in_kb = conn.execute("SELECT cited_in_kb FROM works_with_first_author "
                               "WHERE doi = '10.1000/twice'").fetchone()[0]
    assert (edges, cited_in_kb) == (2, 1)
    out = io.StringIO()
    assert export_citations(conn, None, out) == 2  # one pair per edge
    citing, cited = conn.execute("SELECT citing_id, cited_id FROM citations").fetchone()
    G = graph.neighbourhood(conn, citing)
    assert (G.number_of_edges(), G.edges[citing, cited]["sources"]) == (2, ["crossref", "openalex"])
    before = _snapshot(db)
    assert store.upsert_work(conn, record).action == "unchanged"
    assert _snapshot(db) == before


def _same_records() -> list[dict]:
    """Records whose identifiers meet in every way: a merge by own ids, a DOI shared by two
    PMIDs, a reference pairing two works' ids, duplicate references, a URL-only page."""
    return [
        {"source": "pubmed", "pmid": "1", "doi": "10.1000/a", "title": "A",
         "authors": [{"family": "Alpha", "given": "A"}], "mesh": [{"descriptor": "Stem Cells"}],
         "references": [{"position": 1, "doi": "10.1000/x", "first_author": "Xu", "year": 2001},
                        {"position": 2, "pmid": "9"},
                        {"position": 3, "unstructured": "Matsui T. 2019."},
                        {"position": 4, "unstructured": "Matsui T. 2019."},
                        {"position": 5, "pmid": "11"},
                        {"position": 6, "doi": "10.1000/x"}]},
        {"source": "crossref", "doi": "10.1000/eleven", "title": "Eleven"},
        {"source": "pubmed", "pmid": "2", "doi": "10.1000/b", "title": "B",
         "references": [{"position": 1, "doi": "10.1000/a", "pmid": "2"},
                        {"position": 2, "doi": "10.1000/x", "pmid": "7"},
                        {"position": 3, "url": "https://example.org/page"}]},
        {"source": "pubmed", "pmid": "3", "doi": "10.1000/a", "title": "C shares A's DOI",
         "publication_types": ["Retracted Publication"], "is_retracted": True},
        {"source": "crossref", "doi": "10.1000/x", "title": "X", "year": 2001,
         "references": [{"position": 1, "pmid": "9", "doi": "10.1000/nine"}]},
        {"source": "pubmed", "pmid": "9", "title": "Nine", "study_design": "rct"},
        {"source": "pubmed", "pmid": "11", "doi": "10.1000/eleven", "title": "Eleven."},
    ]


def test_bulk_and_per_record_paths_store_the_same_rows(tmp_path: Path) -> None:
    """One merge rule: the same records through BulkWriter and through upsert_works give
    the same rows in every table (conflicts and the merge log included)."""
    from kb.store.bulk import BulkWriter
    bulk, plain = tmp_path / "bulk.db", tmp_path / "plain.db"
    conn = store.connect(bulk)
    with store.transaction(conn):
        writer = BulkWriter(conn, batch_size=2)
        for record in _same_records():
            writer.add(record)  # type: ignore[arg-type]
        writer.finish()
    conn.close()
    conn = store.connect(plain)
    store.upsert_works(conn, _same_records())  # type: ignore[arg-type]
    conn.close()
    snaps = []
    for db in (bulk, plain):
        snap = _snapshot(db)
        conn = sqlite3.connect(db)
        for table, sql in (
                ("records", "SELECT source, source_id, url, body FROM records"),
                ("conflicts", "SELECT c.kind, c.value, w.pmid, w.doi, o.pmid, c.claimed_by, "
                              "c.source FROM identity_conflicts c JOIN works w ON w.id = "
                              "c.work_id LEFT JOIN works o ON o.id = c.other_id"),
                ("merges", "SELECT k.pmid, k.doi, json_extract(m.absorbed, '$.work.pmid'), "
                           "json_extract(m.absorbed, '$.work.doi'), reason, source "
                           "FROM merges m JOIN works k ON k.id = m.kept_id")):
            snap[table] = sorted(json.dumps(list(r)) for r in conn.execute(sql))
        conn.close()
        snaps.append(snap)
    assert snaps[0] == snaps[1]
    assert len(snaps[1]["conflicts"]) >= 2 and snaps[1]["merges"]


def test_merge_then_unmerge_restores_both_works(tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    conn = store.connect(db)
    for record in _same_records():
        store.upsert_work(conn, record)  # type: ignore[arg-type]
    conn.close()
    before = _snapshot(db)
    result = _kb(db, "merge", "pmid:1", "pmid:3")
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM works WHERE pmid = '3'").fetchone()[0] == 0
    merge_id = conn.execute("SELECT id FROM merges WHERE reason = 'by hand'").fetchone()[0]
    assert conn.execute("SELECT resolution FROM identity_conflicts WHERE kind = 'doi' AND "
                        "value = '10.1000/a' AND claimed_by = 'pmid:3'").fetchone()[0] == "merged"
    conn.close()
    assert "by hand (user" in _kb(db, "merges").output
    result = _kb(db, "unmerge", str(merge_id))
    assert result.exit_code == 0, result.output
    after = _snapshot(db)
    assert after == before
    assert _kb(db, "unmerge", str(merge_id)).exit_code == 2  # already undone
    assert _kb(db, "unmerge", "999").exit_code == 2


def test_import_merges_are_logged_and_reversible(tmp_path: Path) -> None:
    """A PubMed record naming a DOI-only work and a PMID-only stub merges them (its own ids),
    logged; unmerge brings the stub back with its citation."""
    db = tmp_path / "kb.db"
    conn = store.connect(db)
    store.upsert_work(conn, {"source": "crossref", "doi": "10.1000/z", "title": "Zed"})
    store.upsert_work(conn, {"source": "crossref", "doi": "10.1000/citer", "title": "Citer",
                             "references": [{"position": 1, "pmid": "5"}]})
    before = _snapshot(db)
    result = store.upsert_work(conn, {"source": "pubmed", "pmid": "5", "doi": "10.1000/z",
                                      "title": "Zed."})
    assert result.merged
    merge = conn.execute("SELECT id, reason, source FROM merges").fetchone()
    assert (merge["reason"], merge["source"]) == ("same pmid", "pubmed")
    store.unmerge(conn, merge["id"])
    conn.close()
    restored = _snapshot(db)
    # the stub is back with its citation; the kept work keeps the PubMed record's own fields
    assert restored["citations"] == before["citations"]
    assert sorted(json.loads(w)["pmid"] or "" for w in restored["works"]) == ["", "", "5"]


def test_curation_notes_are_not_exported(tmp_path: Path) -> None:
    """The bundled KB's curation caveats stay out of every export; a user's note goes out."""
    db = tmp_path / "kb.db"
    shutil.copy(REPO / "kb.db", db)
    conn = sqlite3.connect(db)
    caveats = [r[0] for r in conn.execute("SELECT curation_note FROM works "
                                          "WHERE curation_note IS NOT NULL")]
    assert len(caveats) > 20
    assert conn.execute("SELECT count(*) FROM works WHERE note IS NOT NULL").fetchone()[0] == 0
    conn.execute("UPDATE works SET note = 'my own reading note' WHERE id = 1")
    conn.commit()
    conn.close()
    for fmt in ("bibtex", "ris", "nbib", "csljson"):
        out = _kb(db, "export", "--format", fmt).output
        assert "my own reading note" in out, fmt
        assert not any(caveat[:40] in out for caveat in caveats), fmt


@pytest.mark.parametrize("relation", ["same doi", "same pmid"])
def test_plan_identity_never_merges_works_with_different_ids(tmp_path: Path,
                                                            relation: str) -> None:
    conn = store.connect(tmp_path / "kb.db")
    a = store.upsert_work(conn, {"source": "pubmed", "pmid": "1", "doi": "10.1000/a"}).work_id
    b = store.upsert_work(conn, {"source": "pubmed", "pmid": "2", "doi": "10.1000/b"}).work_id
    record = ({"source": "crossref", "doi": "10.1000/a", "pmid": "2"} if relation == "same doi"
              else {"source": "import", "pmid": "1", "doi": "10.1000/b"})
    plan = store.plan_identity(conn, record, own=True)  # type: ignore[arg-type]
    assert plan.absorb == () and {w for _, _, w in plan.conflicts} <= {a, b}
    assert plan.conflicts


def test_merged_and_unmerged_works_are_due_for_annotation(tmp_path: Path) -> None:
    """What a merge or an unmerge changes is annotated again by the next storing command."""
    db = tmp_path / "kb.db"
    xml = _pubmed(tmp_path / "ab.xml", *(_article(*a) for a in A_AND_B))
    assert _kb(db, "import", xml).exit_code == 0  # annotated
    due = "SELECT pmid FROM works WHERE annotated_at IS NULL OR annotated_at < updated_at"
    conn = sqlite3.connect(db)
    assert conn.execute(due).fetchall() == []
    assert _kb(db, "merge", "pmid:1", "pmid:2").exit_code == 0
    assert conn.execute(due).fetchall() == [("1",)]
    assert _kb(db, "unmerge", "1").exit_code == 0
    assert sorted(conn.execute(due).fetchall()) == [("1",), ("2",)]
