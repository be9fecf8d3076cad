"""kb.formats: detection from content, readers on files as other tools write them, writers that
the reference libraries accept, and export → import round trips on the curated CP corpus."""
from __future__ import annotations

import gzip
import io
import json
import shutil
from pathlib import Path

import pytest

from kb import store
from kb.errors import InputError, ParseError
from kb.query.export import citation_keys, load_records
from kb.formats import base_key, detect, read, write
from kb.ingest.seed import read_works

FIXTURES = Path(__file__).parent / "fixtures" / "formats"

#: A synthetic record (not a real paper: example DOI prefix 10.5555) exercising the fields the
#: corpus lacks: abstract, MeSH with qualifiers, ORCID, affiliation, LaTeX-special characters,
#: a collective author and a retraction flag.
SYNTHETIC = {
    "source": "pubmed", "doi": "10.5555/kb-format-test.1", "pmid": "99999901",
    "title": "Format test: 50% of {braces} & $pecial_chars #1 ~ in UC-MSC trials",
    "abstract": "Synthetic abstract for kb's format tests. It mentions GMFM-88 & 100% "
                "of \"quoted\" words, a backslash \\ and Ünïcödé.",
    "authors": [{"family": "Testperson", "given": "Ada B", "orcid": "0000-0002-1825-0097",
                 "affiliation": "Example Institute, Nowhere"},
                {"name": "The kb Format Testing Group"}],
    "journal": "Journal of Format Tests", "journal_abbrev": "J Format Tests", "year": 2024,
    "pub_date": "2024-08-06", "volume": "3", "issue": "2", "pages": "e101-e109",
    "issn": "0000-0019", "language": "eng",
    "mesh": [{"descriptor": "Cerebral Palsy", "qualifier": "therapy", "major": True},
             {"descriptor": "Humans", "major": False}],
    "keywords": ["cell therapy", "Child, Preschool"],
    "publication_types": ["Journal Article", "Retracted Publication"],
    "type": "journal-article", "is_retracted": True,
}
AMANAT_DOI = "10.1186/s13287-021-02513-4"
EXPORTS = ("bibtex", "ris", "csljson", "nbib", "csv", "jsonl")


@pytest.fixture
def corpus_db(tmp_path: Path):
    """A KB holding the curated CP corpus (real titles, authors, DOIs) and the synthetic record."""
    conn = store.connect(tmp_path / "corpus.db")
    store.upsert_works(conn, read_works())
    store.upsert_works(conn, [SYNTHETIC])
    yield conn
    conn.close()


def _export(conn, fmt: str) -> str:
    ids = [r[0] for r in conn.execute("SELECT id FROM works ORDER BY id")]
    out = io.StringIO()
    write(load_records(conn, ids), fmt, out)
    return out.getvalue()


# -- detection ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, fmt", [
    ("okur2018_jabref.bib", "bibtex"), ("zarrabi_endnote.ris", "ris"),
    ("amanat2021_pubmed.nbib", "nbib"), ("opencitations.csv", "citations-csv"),
    ("pairs.csv", "citations-csv"), ("pubmed_head.xml", "pubmed-xml"),
    ("pubmed_save.csv", "csv"),
])
def test_detect_fixtures(name: str, fmt: str) -> None:
    assert detect(FIXTURES / name) == fmt


def test_detect_reads_content_not_the_extension(tmp_path: Path) -> None:
    misnamed = tmp_path / "export.txt"
    shutil.copy(FIXTURES / "zarrabi_endnote.ris", misnamed)
    assert detect(misnamed) == "ris"
    nbib_as_txt = tmp_path / "pubmed-cerebralpa-set.txt"
    shutil.copy(FIXTURES / "amanat2021_pubmed.nbib", nbib_as_txt)
    assert detect(nbib_as_txt) == "nbib"
    gz = tmp_path / "refs.bib.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "okur2018_jabref.bib").read_bytes()))
    assert detect(gz) == "bibtex"
    assert [r["doi"] for r in read(gz)] == ["10.15283/ijsc17077", "10.1177/0963689717729379"]


def test_detect_corpus_files_and_kb_outputs(corpus_db, tmp_path: Path) -> None:
    seed = Path(__file__).resolve().parents[1] / "kb" / "seed"
    assert detect(seed / "works.json") == "csljson"
    assert detect(seed / "citations.csv") == "citations-csv"
    for fmt in EXPORTS:
        path = tmp_path / f"out.{fmt}"
        path.write_text(_export(corpus_db, fmt), encoding="utf-8")
        assert detect(path) == fmt


@pytest.mark.parametrize("content, message", [
    ("", "is empty"), ("hello world\nthis is prose\n", "cannot tell the format"),
    ("<html><body>not a list</body></html>", "not PubMed XML"),
])
def test_detect_unknown_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "mystery.dat"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as error:
        detect(path)
    assert "mystery.dat" in str(error.value)


def test_detect_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        detect(tmp_path / "nope.ris")


# -- readers on other tools' files ----------------------------------------------------------

def test_read_bibtex_with_latex_macros_and_concatenation() -> None:
    okur, huang = list(read(FIXTURES / "okur2018_jabref.bib"))
    assert okur["source"] == "import"
    assert okur["title"].startswith("The Effect of Umbilical Cord-derived Mesenchymal")
    assert [a["family"] for a in okur["authors"]] == ["Okur", "Erdoğan", "Demir", "Günel",
                                                      "Karaöz"]
    assert okur["authors"][0]["given"] == "Sibel Çağlar"
    assert okur["authors"][2]["given"] == "Cansu Subaşı"
    assert okur["journal"] == "International Journal of Stem Cells"
    assert (okur["year"], okur["pages"], okur["pmid"], okur["pmcid"]) == (
        2018, "141-147", "29699386", "PMC5984068")
    assert okur["keywords"] == ["Cerebral palsy", "Mesenchymal stem cell", "Rehabilitation"]
    assert huang["doi"] == "10.1177/0963689717729379"  # resolver prefix dropped
    assert huang["authors"][0] == {"family": "Huang", "given": "Li"}  # "Given Family" form


def test_read_ris_old_tags_and_continuation_lines() -> None:
    zarrabi, amanat = list(read(FIXTURES / "zarrabi_endnote.ris"))
    assert zarrabi["title"].startswith("The safety and efficacy of umbilical cord blood")
    assert zarrabi["authors"][1] == {"family": "Akbari", "given": "Masood Ghahvechi"}
    assert (zarrabi["journal"], zarrabi["year"], zarrabi["pub_date"], zarrabi["pages"]) == (
        "BMC Neurology", 2022, "2022-03", "1-13")
    assert amanat["title"].endswith("mesenchymal stem cells in cerebral palsy: a randomized "
                                    "double-blind sham-controlled clinical trial")
    assert (amanat["pmid"], amanat["pmcid"], amanat["journal_abbrev"]) == (
        "34362453", "PMC8343813", "Stem Cell Res Ther")


def test_read_nbib_medline_export() -> None:
    amanat, okur = list(read(FIXTURES / "amanat2021_pubmed.nbib"))
    assert amanat["pmid"] == "34362453" and amanat["doi"] == "10.1186/s13287-021-02513-4"
    assert amanat["title"].startswith("Clinical and imaging outcomes after intrathecal "
                                      "injection of umbilical cord tissue mesenchymal")
    assert amanat["authors"] == [{"family": "Amanat", "given": "Man"},
                                 {"family": "Majmaa", "given": "Anahita"},
                                 {"family": "Zarrabi", "given": "Morteza"}]
    assert {"descriptor": "Cerebral Palsy", "qualifier": "therapy", "major": False} in amanat["mesh"]
    assert {"descriptor": "Cerebral Palsy", "major": True} in amanat["mesh"]
    assert {"descriptor": "Mesenchymal Stem Cells", "major": True} in amanat["mesh"]
    assert amanat["publication_types"] == ["Journal Article", "Randomized Controlled Trial"]
    assert (amanat["journal"], amanat["journal_abbrev"], amanat["pmcid"]) == (
        "Stem cell research & therapy", "Stem Cell Res Ther", "PMC8343813")
    assert okur["pub_date"] == "2018-04-30" and okur["authors"][0]["given"] == "Sibel Çağlar"


def test_read_pubmed_csv_export() -> None:
    amanat, okur = list(read(FIXTURES / "pubmed_save.csv"))
    assert (amanat["pmid"], amanat["pmcid"], amanat["doi"], amanat["year"]) == (
        "34362453", "PMC8343813", AMANAT_DOI, 2021)
    assert amanat["journal"] == "Stem Cell Res Ther"
    assert amanat["authors"] == [{"family": "Amanat", "given": "M"},
                                 {"family": "Majmaa", "given": "A"},
                                 {"family": "Zarrabi", "given": "M"}]
    assert okur["authors"][0] == {"family": "Okur", "given": "SÇ"}
    assert [a["family"] for a in okur["authors"]][-1] == "Karaöz"


def test_read_citation_csvs() -> None:
    links = list(read(FIXTURES / "opencitations.csv"))
    assert links[0] == {"citing": {"doi": "10.1007/s11010-024-05072-3", "pmid": "39033213"},
                        "cited": {"doi": "10.1016/j.ridd.2010.12.042"}, "source": "import"}
    pairs = list(read(FIXTURES / "pairs.csv"))
    assert pairs[1]["cited"] == {"doi": "10.1186/s12883-022-02636-y"}
    seed = list(read(Path(__file__).resolve().parents[1] / "kb" / "seed" / "citations.csv"))
    assert any(link["citing"].get("url", "").startswith("https://cells4life.com/") for link in seed)


def test_import_links_into_the_store(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "kb.db")
    store.upsert_works(conn, read_works())
    assert store.add_links(conn, read(FIXTURES / "pairs.csv")) == 2
    citing = conn.execute("SELECT id FROM works WHERE doi = '10.22074/cellj.2024.2032098.1600'"
                          ).fetchone()[0]
    cited = {r[0] for r in conn.execute(
        "SELECT w.doi FROM citations c JOIN works w ON w.id = c.cited_id WHERE c.citing_id = ?",
        (citing,))}
    assert {"10.1186/s13287-021-02513-4", "10.1186/s12883-022-02636-y"} <= cited


@pytest.mark.parametrize("name, text, where", [
    ("broken.bib", "@article{x,\n  title = {unclosed\n", "never closed"),
    ("cut.ris", "TY  - JOUR\nTI  - A title\n", "no ER line"),
    ("bad.jsonl", '{"doi": "10.1/x"}\n{not json}\n', "line 2"),
    ("bad.csv", "citing,cited\n10.1186/s13287-021-02513-4,not-an-id\n", "line 2"),
])
def test_broken_files_raise_parse_errors_naming_the_file(tmp_path: Path, name: str, text: str,
                                                         where: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ParseError, match=where) as error:
        list(read(path))
    assert name in str(error.value)


def test_read_refuses_pubmed_xml_and_unknown_formats() -> None:
    with pytest.raises(InputError, match="PubMed importer"):
        list(read(FIXTURES / "pubmed_head.xml"))
    with pytest.raises(InputError, match="unknown format"):
        list(read(FIXTURES / "pairs.csv", "endnote-xml"))


# -- writers, checked by the reference libraries --------------------------------------------

def test_bibtex_output_is_read_by_bibtexparser(corpus_db) -> None:
    import bibtexparser
    text = _export(corpus_db, "bibtex")
    entries = bibtexparser.parse_string(text).entries
    assert len(entries) == corpus_db.execute("SELECT count(*) FROM works").fetchone()[0]
    amanat = next(e for e in entries if "doi" in e and e["doi"] == "10.1186/s13287-021-02513-4")
    assert amanat["ID"] == "amanat2021clinical"
    assert amanat["author"].startswith("Amanat, Man and Majmaa, Anahita and Zarrabi, Morteza")
    assert amanat["pmid"] == "34362453" and amanat["pages"] == "439"
    synthetic = next(e for e in entries if "doi" in e and e["doi"] == "10.5555/kb-format-test.1")
    assert r"50\% of \{braces\} \& \$pecial\_chars \#1" in synthetic["title"]
    assert "{The kb Format Testing Group}" in synthetic["author"]
    assert synthetic["pages"] == "e101--e109"


def test_ris_output_is_read_by_rispy(corpus_db) -> None:
    import rispy
    entries = rispy.loads(_export(corpus_db, "ris"))
    amanat = next(e for e in entries if "doi" in e and e["doi"] == "10.1186/s13287-021-02513-4")
    assert amanat["type_of_reference"] == "JOUR"
    assert amanat["authors"][:2] == ["Amanat, Man", "Majmaa, Anahita"]
    assert (amanat["accession_number"], amanat["custom2"]) == ("34362453", "PMC8343813")
    assert amanat["secondary_title"] == "Stem Cell Research & Therapy"
    web = next(e for e in entries if e.get("title") == "Fresh insights: cell therapy for "
                                                      "cerebral palsy")
    assert web["type_of_reference"] == "ELEC"


def test_csljson_output_is_accepted_by_citeproc(corpus_db) -> None:
    from citeproc import (Citation, CitationItem, CitationStylesBibliography,
                          CitationStylesStyle, formatter)
    from citeproc.source.json import CiteProcJSON
    items = json.loads(_export(corpus_db, "csljson"))
    source = CiteProcJSON(items)
    style = CitationStylesStyle("harvard-cite-them-right", validate=False)
    bibliography = CitationStylesBibliography(style, source, formatter.plain)
    keys = ["amanat2021clinical", "zarrabi2022safety"]
    for key in keys:
        bibliography.register(Citation([CitationItem(key)]))
    rendered = [str(entry) for entry in bibliography.bibliography()]
    assert any("Amanat, M." in line and "2021" in line and "Clinical and imaging outcomes" in line
               for line in rendered)
    assert any("Zarrabi" in line and "BMC Neurology" in line for line in rendered)


# -- citation keys --------------------------------------------------------------------------

def test_citation_keys_are_stable_and_disambiguated(corpus_db, tmp_path: Path) -> None:
    first = citation_keys(corpus_db)
    assert len(set(first.values())) == len(first)
    some = [r[0] for r in corpus_db.execute("SELECT id FROM works WHERE year = 2021")]
    assert {i: citation_keys(corpus_db, some)[i] for i in some} == {i: first[i] for i in some}
    assert citation_keys(corpus_db) == first
    assert _export(corpus_db, "bibtex") == _export(corpus_db, "bibtex")
    # a new work with the same base key gets the next suffix; existing keys do not move
    twin = {"source": "import", "doi": "10.5555/kb-format-test.2", "year": 2021,
            "title": "Clinical notes on a second Amanat paper",
            "authors": [{"family": "Amanat", "given": "M"}]}
    store.upsert_works(corpus_db, [twin])
    second = citation_keys(corpus_db)
    assert {k: second[k] for k in first} == first
    assert sorted(k for k in second.values() if k.startswith("amanat2021clinical")) == [
        "amanat2021clinical", "amanat2021clinicala"]


def test_base_key_folds_accents_and_skips_stopwords() -> None:
    assert base_key({"authors": [{"family": "Karaöz", "given": "E"}], "year": 2024,
                     "title": "A systematic review of cell therapy"}) == "karaoz2024systematic"
    assert base_key({"authors": [{"name": "The Royal Australasian College of Physicians"}],
                     "title": "Position statement"}) == "royalndposition"


# -- export -> import round trips, one per format -------------------------------------------

@pytest.mark.parametrize("fmt", EXPORTS)
def test_export_import_round_trip(corpus_db, tmp_path: Path, fmt: str) -> None:
    """Exported text, imported into an empty KB and exported again, is identical: no exported
    field is lost or changed on the way."""
    text = _export(corpus_db, fmt)
    path = tmp_path / f"export.{fmt}"
    path.write_text(text, encoding="utf-8")
    fresh = store.connect(tmp_path / "fresh.db")
    records = list(read(path))
    assert {r["source"] for r in records} == {"import"}
    store.upsert_works(fresh, records)
    assert _export(fresh, fmt) == text
    row = fresh.execute("SELECT * FROM works WHERE doi = '10.5555/kb-format-test.1'").fetchone()
    assert row["title"] == SYNTHETIC["title"]
    assert row["is_retracted"] == 1
    assert row["pages"] == "e101-e109" and row["year"] == 2024
    okur = fresh.execute("SELECT id FROM works WHERE doi = '10.15283/ijsc17077'").fetchone()[0]
    names = [r[0] for r in fresh.execute(
        "SELECT a.family FROM work_authors wa JOIN authors a ON a.id = wa.author_id "
        "WHERE wa.work_id = ? ORDER BY wa.position", (okur,))]
    assert names == ["Okur", "Erdoğan", "Demir", "Günel", "Karaöz"]


def test_crlf_bom_and_bibtex_variants(tmp_path: Path) -> None:
    ris = tmp_path / "windows.ris"
    ris.write_bytes(b"\xef\xbb\xbf" + (FIXTURES / "zarrabi_endnote.ris").read_bytes()
                    .replace(b"\n", b"\r\n"))
    assert detect(ris) == "ris"
    assert [r["doi"] for r in read(ris)] == ["10.1186/s12883-022-02636-y", AMANAT_DOI]
    bib = tmp_path / "variants.bib"
    bib.write_text('@STRING(cpj = "Cell Journal")\n'
                   "@Article(nouri2025,\n"
                   '  Title = "Cell-Based Therapy for Cerebral Palsy: {A Puzzle in Progress}",\n'
                   "  Author = {Nouri, M.},\n  Journal = CPJ,\n  Year = {2025},\n"
                   "  DOI = {10.22074/cellj.2024.2032098.1600}\n)\n", encoding="utf-8")
    (record,) = read(bib)
    assert record["title"] == "Cell-Based Therapy for Cerebral Palsy: A Puzzle in Progress"
    assert (record["journal"], record["year"]) == ("Cell Journal", 2025)
    assert record["authors"] == [{"family": "Nouri", "given": "M."}]
