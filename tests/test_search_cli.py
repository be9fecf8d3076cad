"""kb search as a new user meets it, on a copy of the bundled kb.db: identifiers, unquoted
words, messages on stderr, ranking ties, what the filters drop; a 390 KB title; and the
first-hour fixes of kb graph --rank and kb resolve --dry-run."""
from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import store
from kb.cli import cli
from kb.query.search import search

BUNDLED = Path(__file__).resolve().parent.parent / "kb.db"
AMANAT = "10.1186/s13287-021-02513-4"


@pytest.fixture
def kb_copy(tmp_path: Path) -> Path:
    path = tmp_path / "kb.db"
    shutil.copy(BUNDLED, path)
    return path


def run(db: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--db", str(db), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def dois(db: Path, *args: str) -> list[str | None]:
    code, out, err = run(db, "search", *args, "--format", "json", "--limit", "200")
    assert code == 0, err
    return [hit["doi"] for hit in json.loads(out)]


@pytest.mark.parametrize("ident", [AMANAT, f"https://doi.org/{AMANAT.upper()}", "34362453",
                                   "PMID:34362453", "PMC8343813"])
def test_an_identifier_finds_its_work(kb_copy: Path, ident: str) -> None:
    assert dois(kb_copy, ident) == [AMANAT]


def test_an_identifier_the_kb_lacks_says_how_to_fetch_it(kb_copy: Path) -> None:
    code, out, err = run(kb_copy, "search", "PMC8349245")
    assert code == 0 and out == ""
    assert "No work in this KB has the PMCID PMC8349245" in err and "kb add PMC8349245" in err


def test_unquoted_words_are_one_query(kb_copy: Path) -> None:
    assert dois(kb_copy, "cord", "blood") == dois(kb_copy, "cord blood")
    assert len(dois(kb_copy, "cord", "blood")) >= 5
    # a word the shell kept whole stays a group: (a OR b) AND c
    assert set(dois(kb_copy, "sibling OR autologous", "cord")) <= set(dois(kb_copy, "cord"))


def test_the_help_example_finds_works(kb_copy: Path) -> None:
    code, out, _ = run(kb_copy, "search", "--help")
    example = re.search(r"kb search (intrathecal --design rct --format bibtex)", out)
    assert example, out
    code, out, err = run(kb_copy, "search", *example.group(1).split())
    assert code == 0 and out.count("@") >= 1 and "No works match" not in err


@pytest.mark.parametrize("fmt", ["bibtex", "ris", "csv", "json"])
def test_no_hits_with_an_output_format_says_so_on_stderr(kb_copy: Path, fmt: str) -> None:
    code, out, err = run(kb_copy, "search", "xyzzyq", "--format", fmt)
    assert code == 0
    assert out.strip() in ("", "[]")
    assert "No works match 'xyzzyq'" in err and f"The {fmt} output is empty" in err


def test_ties_go_to_the_fuller_record(kb_copy: Path) -> None:
    """bm25 favours short documents: a title-only record of a work scores higher than the
    work's full record (authors, ids, MeSH); the full record is ranked first."""
    conn = store.connect(kb_copy)
    try:
        full = search(conn, "imaging", limit=1).hits[0]
        assert full.authors and full.year and full.doi
        store.upsert_works(conn, [{"source": "import", "title": full.title}])
        plain_bm25 = dict(conn.execute(
            "SELECT rowid, -bm25(works_fts) FROM works_fts WHERE works_fts MATCH 'imaging'"))
        hits = search(conn, "imaging", limit=5).hits
    finally:
        conn.close()
    thin = next(h for h in hits if h.title == full.title and h.id != full.id)
    assert plain_bm25[thin.id] > plain_bm25[full.id]  # bm25 alone puts the stub first
    assert [h.id for h in hits][:2] == [full.id, thin.id]


def test_year_says_how_many_works_without_a_year_it_left_out(kb_copy: Path) -> None:
    conn = store.connect(kb_copy)
    store.upsert_works(conn, [{"source": "import", "title": "Mesenchymal cells, year unknown"}])
    conn.close()
    _, out, err = run(kb_copy, "search", "mesenchymal", "--year", "2015-")
    conn = sqlite3.connect(kb_copy)
    no_year = conn.execute("SELECT count(*) FROM works_fts f JOIN works w ON w.id = f.rowid "
                           "WHERE works_fts MATCH 'mesenchymal' AND w.year IS NULL").fetchone()[0]
    conn.close()
    assert no_year >= 1
    assert f"--year left out {no_year} matching work" in err


def test_a_filter_with_no_data_behind_it_says_so(kb_copy: Path) -> None:
    conn = sqlite3.connect(kb_copy)
    conn.execute("DELETE FROM work_mesh")
    conn.commit()
    conn.close()
    code, out, err = run(kb_copy, "search", "--mesh", "Cerebral Palsy")
    assert code == 0 and out == ""
    assert "holds no MeSH headings" in err


def test_counts_are_grammatical(kb_copy: Path) -> None:
    _, _, err = run(kb_copy, "search", "mesenchymal", "--limit", "1")
    assert "Showing the best match (--limit for more)." in err
    _, _, err = run(kb_copy, "search", "mesenchymal", "--limit", "2")
    assert "Showing the best 2 works" in err
    assert "1 matches" not in err


def test_a_390_kb_title_is_searched_without_fts5_snippet(tmp_path: Path) -> None:
    """FTS5's snippet() is quadratic in the matches of one column (390 KB: 48 s)."""
    db = tmp_path / "kb.db"
    conn = store.connect(db)
    title = ",".join(["mesenchymal"] * 32500) + " cerebral palsy"
    store.upsert_works(conn, [{"source": "import", "title": title, "year": 2020,
                               "abstract": "Children with cerebral palsy received mesenchymal "
                                           "stromal cells intrathecally.",
                               "authors": [{"family": "Doe", "given": "J"}]}])
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    hits = search(conn, "mesenchymal").hits
    conn.close()
    assert len(hits) == 1 and len(hits[0].title) > 390_000
    assert "\x02mesenchymal\x03" in hits[0].snippet  # from the abstract
    assert not any("snippet(" in s for s in statements)


# -- kb graph --rank, kb resolve --dry-run ------------------------------------------------------

def test_graph_rank_columns_align_and_background_comes_last(kb_copy: Path) -> None:
    code, out, _ = run(kb_copy, "graph", "--rank", "--limit", "0")
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("  # ")]
    assert len(rows) > 20
    assert len({line.index("pagerank") for line in rows}) == 1
    assert len({line.index("cited by") for line in rows}) == 1
    labels = [line for line in rows if "Bax 2005" in line or "Zarrabi 2022" in line]
    assert "Zarrabi 2022" in labels[0]  # a field trial before the CP definition paper
    top = "\n".join(rows[:10])
    for generic in ("Bax 2005", "Pakula 2009", "Katz 2003", "Verschuren 2007"):
        assert generic not in top


def test_resolve_dry_run_lists_what_stays_unresolved(kb_copy: Path) -> None:
    code, out, err = run(kb_copy, "resolve", "--dry-run")
    left = int(re.search(r"(\d+) left unresolved", err).group(1))
    assert code == 0 and left >= 1
    assert out.count("  -    ") == left
    code, out, _ = run(kb_copy, "resolve", "--dry-run", "--format", "json")
    assert len(json.loads(out)["left_unresolved"]) == left
