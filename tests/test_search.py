"""kb search: ranking, the query language, filters, did-you-mean, --fuzzy, output formats and
start-up imports, on a KB holding the curated CP corpus."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import store
from kb.cli import cli
from kb.errors import InputError
from kb.query.search import parse_years, quote, search, translate
from kb.ingest.seed import read_works

AMANAT = "10.1186/s13287-021-02513-4"
ZARRABI = "10.1186/s12883-022-02636-y"
#: A synthetic record (example DOI prefix) carrying an abstract and MeSH, which the corpus lacks.
SYNTHETIC = {
    "source": "pubmed", "doi": "10.5555/kb-search-test.1", "pmid": "99999911",
    "title": "Rehabilitation schedules after cell therapy: a synthetic test record",
    "abstract": "Synthetic abstract: gross motor function was scored with GMFM-88 after "
                "intrathecal administration of UC-MSC in children with cerebral palsy.",
    "authors": [{"family": "Testperson", "given": "Ada"}], "year": 2012,
    "mesh": [{"descriptor": "Cerebral Palsy", "qualifier": "rehabilitation", "major": True}],
    "is_retracted": True,
}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "kb.db"
    conn = store.connect(path)
    store.upsert_works(conn, read_works())
    store.upsert_works(conn, [SYNTHETIC])
    store.upsert_works(conn, [{"source": "reference", "status": "stub",
                               "doi": "10.5555/kb-search-stub.1",
                               "title": "Mesenchymal stub known only from a reference list"}])
    conn.close()
    return path


@pytest.fixture
def conn(db: Path):
    connection = store.connect(db)
    yield connection
    connection.close()


def _dois(result) -> list[str | None]:
    return [hit.doi for hit in result.hits]


# -- the query language ---------------------------------------------------------------------

def test_translate_fields_phrases_and_unsafe_words() -> None:
    assert translate("author:Zarrabi mesh:\"Cerebral Palsy\"")[0] == \
        'authors:Zarrabi AND mesh:"Cerebral Palsy"'
    assert translate("au:amanat ti:(stem OR stromal)")[0] == \
        "authors:amanat AND title:( stem OR stromal )"
    assert translate("UC-MSC GMFM-88 CD34+")[0] == '"UC-MSC" AND "GMFM-88" AND "CD34+"'
    assert translate("cord -autism")[0] == "cord NOT autism"
    assert translate("mesenchym*")[0] == "mesenchym*"
    assert quote('say "hi" AND') == '"say" """hi""" "AND"'


@pytest.mark.parametrize("query, message", [
    ("foo:bar", "unknown search field 'foo'"),
    ('"stem cells', "unclosed double quote"),
    ("title:", "has nothing after it"),
])
def test_translate_rejects_with_plain_messages(query: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        translate(query)


@pytest.mark.parametrize("text, expected", [
    ("2015-2025", (2015, 2025)), ("2021", (2021, 2021)), ("2015-", (2015, None)),
    ("-2020", (None, 2020)), ("2015..2025", (2015, 2025)), (None, (None, None)),
])
def test_parse_years(text: str | None, expected: tuple) -> None:
    assert parse_years(text) == expected


@pytest.mark.parametrize("text", ["20x5", "2025-2015", "twenty", "2015-2016-2017"])
def test_parse_years_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_years(text)


# -- ranking and fields ---------------------------------------------------------------------

def test_title_outranks_abstract(conn) -> None:
    # a corpus meta-analysis has GMFM in its title; the synthetic record only in its abstract
    assert _dois(search(conn, "GMFM")) == ["10.35841/2471-1786.9.3.78", "10.5555/kb-search-test.1"]
    ranked = _dois(search(conn, "rehabilitation", limit=50))
    # works with the word in their title beat Okur 2018, which has it only as a keyword
    assert ranked.index("10.5555/kb-search-test.1") < ranked.index("10.15283/ijsc17077")
    assert ranked.index(None) < ranked.index("10.15283/ijsc17077")  # the AFRM statement (no DOI)


def test_phrase_field_and_boolean_queries(conn) -> None:
    both = _dois(search(conn, '"sham-controlled" AND "cord blood"', limit=50))
    assert ZARRABI in both and AMANAT not in both
    either = _dois(search(conn, 'title:("umbilical cord blood" OR "cord tissue") '
                                'AND "sham-controlled"', limit=50))
    assert set(either) >= {AMANAT, ZARRABI}
    not_blood = _dois(search(conn, '"sham-controlled" NOT blood', limit=50))
    assert AMANAT in not_blood and ZARRABI not in not_blood
    by_author = _dois(search(conn, "author:Zarrabi", limit=50))
    assert set(by_author) >= {AMANAT, ZARRABI}
    assert all("Zarrabi" in hit.authors for hit in search(conn, "author:Zarrabi").hits)
    assert _dois(search(conn, 'mesh:"cerebral palsy" AND schedules')) == [
        "10.5555/kb-search-test.1"]


def test_pubmed_style_author_names(conn) -> None:
    assert set(_dois(search(conn, 'author:"Amanat M"'))) == {AMANAT, ZARRABI}
    assert set(_dois(search(conn, 'au:"Akbari MG"'))) == {AMANAT, ZARRABI}
    assert _dois(search(conn, 'author:"Okur SC"')) == ["10.15283/ijsc17077"]  # Sibel Çağlar Okur
    assert _dois(search(conn, 'author:"Majmaa M"')) == []  # Anahita Majmaa: wrong initial


def test_words_fts5_would_misread_are_searched_as_written(conn) -> None:
    assert _dois(search(conn, "UC-MSC")) == ["10.5555/kb-search-test.1"]
    assert _dois(search(conn, "GMFM-88 intrathecal")) == ["10.5555/kb-search-test.1"]


def test_rows_carry_the_documented_fields(conn) -> None:
    hit = next(h for h in search(conn, "intrathecal umbilical").hits if h.doi == AMANAT)
    row = hit.to_dict()
    for key in ("doi", "pmid", "title", "year", "journal", "authors", "study_design", "score",
                "is_retracted", "status", "snippet"):
        assert key in row
    assert (row["pmid"], row["year"], row["journal"], row["study_design"]) == (
        "34362453", 2021, "Stem Cell Research & Therapy", "rct")
    assert row["authors"].startswith("Man Amanat; Anahita Majmaa")
    assert "\x02" in hit.snippet and "\x02" not in row["snippet"]


def test_retracted_and_stub_works_are_marked(conn) -> None:
    retracted = search(conn, "rehabilitation schedules").hits[0]
    assert retracted.is_retracted is True
    stub = next(h for h in search(conn, "mesenchymal", limit=100).hits if h.status == "stub")
    assert stub.doi == "10.5555/kb-search-stub.1"


# -- filters --------------------------------------------------------------------------------

def test_filters_year_design_mesh(conn) -> None:
    rcts = search(conn, "cerebral palsy", design="rct", year="2020-2025", limit=100).hits
    assert rcts and all(h.study_design == "rct" and 2020 <= h.year <= 2025 for h in rcts)
    assert {AMANAT, ZARRABI} <= {h.doi for h in rcts}
    several = search(conn, "cerebral palsy", design="rct,meta-analysis", limit=100).hits
    assert {h.study_design for h in several} == {"rct", "meta-analysis"}
    mesh_hits = _dois(search(conn, "therapy", mesh="cerebral palsy"))
    # the test work, and seed works whose MeSH headings the corpus carries
    assert {"10.5555/kb-search-test.1", "10.1016/j.braindev.2016.03.002"} <= set(mesh_hits)
    listing = search(conn, None, design="rct", limit=100).hits
    years = [h.year for h in listing if h.year]
    assert years == sorted(years, reverse=True) and len(listing) > 5


def test_filter_values_are_parameters_not_sql(conn) -> None:
    assert search(conn, None, mesh="x' OR 1=1 --").hits == []
    with pytest.raises(InputError, match="unknown study design"):
        search(conn, "cells", design="rct' OR '1'='1")


def test_cell_type_uses_the_lexicon(conn) -> None:
    hits = _dois(search(conn, None, cell_type="UCB-MNC", limit=200))
    assert ZARRABI in hits and AMANAT not in hits
    wj = _dois(search(conn, None, cell_type="WJ-MSC", limit=200))  # a synonym of UC-MSC
    assert AMANAT in wj and ZARRABI not in wj
    with pytest.raises(InputError, match="unknown cell type"):
        search(conn, None, cell_type="banana")


def test_cell_type_reads_trial_facts_when_the_evidence_layer_has_them(conn) -> None:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'trial_reports'").fetchone():
        pytest.skip("no evidence schema in this kb")
    work = conn.execute("SELECT id FROM works WHERE doi = '10.1001/archpedi.161.11.1075'"
                        ).fetchone()[0]  # an exercise trial: its title names no cell type
    assert work not in [h.id for h in search(conn, None, cell_type="BM-MNC", limit=500).hits]
    conn.execute("INSERT INTO trials(key, cell_type, created_at, updated_at) "
                 "VALUES ('test:1', 'autologous BMMNC', '2025', '2025')")
    conn.execute("INSERT INTO trial_reports(trial_id, work_id, role, provenance) "
                 "VALUES (last_insert_rowid(), ?, 'results', 'curated')", (work,))
    assert work in [h.id for h in search(conn, None, cell_type="BM-MNC", limit=500).hits]


# -- did you mean / fuzzy -------------------------------------------------------------------

def test_zero_hits_suggest_the_kbs_own_words(conn) -> None:
    result = search(conn, "mesenchimal")
    assert result.hits == []
    assert result.suggestions[0] == "mesenchymal"
    assert "intrathecal" in search(conn, "intratecal").suggestions
    assert search(conn, "zzzzqqqq").suggestions == []


def test_fuzzy_widens_misspelled_words(conn) -> None:
    result = search(conn, "intratecal umbilical", fuzzy=True)
    assert AMANAT in _dois(result)
    assert "intratecal" in result.widened
    assert search(conn, "intrathecal umbilical", fuzzy=True).widened == {}  # nothing to widen
    assert set(_dois(search(conn, "author:Zarabi", fuzzy=True))) >= {AMANAT, ZARRABI}
    phrase = search(conn, '"umbilical cord tisue" OR intratecal', fuzzy=True)  # phrases stay exact
    assert list(phrase.widened) == ["intratecal"] and AMANAT in _dois(phrase)


def test_vocabulary_table_is_temporary(db: Path) -> None:
    conn = store.connect(db)
    search(conn, "mesenchimal")
    conn.close()
    conn = store.connect(db)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert not any("vocab" in name for name in names)
    conn.close()


# -- the command ----------------------------------------------------------------------------

def _kb(db: Path, *args: str):
    return CliRunner().invoke(cli, ["--db", str(db), "search", *args])


def test_cli_table_json_csv(db: Path) -> None:
    table = _kb(db, "intrathecal umbilical", "--limit", "3")
    assert table.exit_code == 0, table.output
    assert "Clinical and imaging outcomes after intrathecal" in table.output
    assert "doi:10.1186/s13287-021-02513-4" in table.output
    assert "\x1b[" not in table.output  # plain when not a terminal
    rows = json.loads(_kb(db, "author:Zarrabi", "--format", "json").output)
    assert {r["doi"] for r in rows} >= {AMANAT, ZARRABI}
    csv_out = _kb(db, "GMFM-88", "--format", "csv").output.splitlines()
    assert csv_out[0] == ("doi,pmid,title,year,journal,authors,study_design,score,is_retracted,"
                          "mark,status,unverified,snippet")
    assert csv_out[1].startswith("10.5555/kb-search-test.1,99999911,")


def test_cli_marks_retracted_stubs_and_unverified(db: Path) -> None:
    out = _kb(db, "rehabilitation schedules").output
    assert "[RETRACTED]" in out
    assert "[stub]" in _kb(db, "stub known only").output
    # the pooled analysis rests on a news article's reference list (unverified in the corpus)
    pooled = _kb(db, "puzzle", "--format", "json")
    assert json.loads(pooled.output)[0]["unverified"] is True
    assert "[unverified]" in _kb(db, "puzzle").output


def test_evidence_marks_show_in_search(db: Path) -> None:
    conn = store.connect(db)
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'work_marks'").fetchone():
        pytest.skip("no evidence schema in this kb")
    pooled, trial = (conn.execute("SELECT id FROM works WHERE doi = ?", (doi,)).fetchone()[0]
                     for doi in ("10.22074/cellj.2024.2032098.1600", AMANAT))
    conn.execute("INSERT INTO work_flags(work_id, flag, reason, other_work_id) VALUES "
                 "(?, 'depends-on-retracted', 'pools a retracted trial (test)', ?)",
                 (pooled, trial))
    conn.close()
    conn = store.connect(db)
    hit = next(h for h in search(conn, "puzzle").hits if h.id == pooled)
    assert hit.mark == "DEPENDS ON RETRACTED" and not hit.is_retracted
    conn.close()
    assert "[DEPENDS ON RETRACTED]" in _kb(db, "puzzle").output
    assert json.loads(_kb(db, "puzzle", "--format", "json").output)[0]["mark"] == \
        "DEPENDS ON RETRACTED"


def test_cli_bibtex_and_ris(db: Path) -> None:
    import bibtexparser
    import rispy
    bib = _kb(db, "sham-controlled", "--format", "bibtex")
    assert bib.exit_code == 0
    keys = {e["ID"] for e in bibtexparser.parse_string(bib.output).entries}
    assert {"amanat2021clinical", "zarrabi2022safety"} <= keys
    ris = rispy.loads(_kb(db, "sham-controlled", "--format", "ris").output)
    assert {e["doi"] for e in ris} >= {AMANAT, ZARRABI}


def test_cli_zero_hits_and_suggestions(db: Path) -> None:
    result = _kb(db, "mesenchimal")
    assert result.exit_code == 0
    assert "No works match 'mesenchimal'" in result.output
    assert "Did you mean: mesenchymal" in result.output
    assert _kb(db, "mesenchimal", "--format", "json").stdout.strip() == "[]"


@pytest.mark.parametrize("args, message", [
    (["cells AND"], "cannot read the search query"),
    (["NOT cells"], "NOT needs a word before it"),
    (["(cells"], "cannot read the search query"),
    (["foo:bar"], "unknown search field"),
    (["cells", "--year", "20x5"], "cannot read the year"),
    (["cells", "--design", "anecdote"], "unknown study design"),
    (["cells", "--limit", "0"], "Invalid value"),
])
def test_cli_bad_input_exits_2_without_traceback(db: Path, args: list[str], message: str) -> None:
    result = _kb(db, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_missing_database(tmp_path: Path) -> None:
    result = _kb(tmp_path / "none.db", "cells")
    assert result.exit_code != 0 and "no knowledge base" in result.output


def test_search_does_not_import_heavy_modules(db: Path) -> None:
    """`kb search` starts fast: no networkx, bs4, requests, lxml or datasette on its path."""
    script = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from kb.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['--db', {str(db)!r}, 'search', 'mesenchimal', "
        "'--format', 'json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = ('networkx', 'bs4', 'requests', 'lxml', 'datasette', 'requests_cache')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
