"""The bad-input matrix: every case goes through the CLI and must end in a clear one-line error,
exit status 2, no traceback, and the knowledge base exactly as it was.

Unknown (well-formed but non-existent) identifiers are the one exception to "exit 2": they are a lookup that failed, exit 1 by the HTTP / Crossref contract
(issue 4: "a DOI neither knows → a clear per-DOI error … exit status 1 with a summary").
"""
from __future__ import annotations

import gzip
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kb import store
from kb.cli import cli
from kb.evidence import annotate_due
from tests.faults import SyntheticCorpus
from tests.replay import ReplayServer

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID Version="1">1</PMID><Article>
<ArticleTitle>&lol9;</ArticleTitle></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE PubmedArticleSet [ <!ENTITY xxe SYSTEM "file://{secret}"> ]>
<PubmedArticleSet><PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM">
<PMID Version="1">424242</PMID><Article PubModel="Print"><Journal><Title>J</Title></Journal>
<ArticleTitle>Leak &xxe;</ArticleTitle></Article></MedlineCitation>
<PubmedData><ArticleIdList><ArticleId IdType="pubmed">424242</ArticleId></ArticleIdList>
</PubmedData></PubmedArticle></PubmedArticleSet>
"""

SECRET_TEXT = "TOP-SECRET-LOCAL-FILE-CONTENT-8c1f"




# -- the knowledge base and its snapshot -----------------------------------------------------

def _make_kb(path: Path) -> Path:
    conn = store.connect(path)
    store.upsert_works(conn, [
        {"source": "crossref", "doi": "10.1186/s13287-021-02513-4", "pmid": "34362453",
         "title": "Clinical and imaging outcomes of mesenchymal stromal cells in cerebral palsy",
         "abstract": "Umbilical cord mesenchymal stromal cells given intrathecally.",
         "year": 2021, "journal": "Stem Cell Res Ther", "type": "journal-article",
         "authors": [{"family": "Amanat", "given": "Man"}], "keywords": ["cerebral palsy"],
         "mesh": [{"descriptor": "Cerebral Palsy", "major": True}],
         "references": [{"doi": "10.1186/s12883-022-02636-y"}]},
        {"source": "pubmed", "pmid": "36588957", "doi": "10.1186/s12883-022-02636-y",
         "title": "Umbilical cord blood mononuclear cells in children with cerebral palsy",
         "year": 2022, "journal": "BMC Neurol", "type": "journal-article",
         "authors": [{"family": "Zarrabi", "given": "Morteza"}]},
        {"source": "crossref", "doi": "10.5555/kb.9999", "title": "A third work", "year": 2010},
    ])
    annotate_due(conn)  # as the commands that store works leave a KB
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def snapshot(path: Path) -> str:
    """The whole database as SQL text (schema, every row, user_version)."""
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return f"user_version={version}\n" + "\n".join(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def kb_db(kb_env: dict[str, str], server: ReplayServer) -> Path:
    SyntheticCorpus(n=10, pubmed_only=2).install(server)
    return _make_kb(Path(kb_env["KB_DB"]))


def run(db: Path, *args: str, stdin: bytes | str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args], input=stdin)


def assert_clean_error(result: Result, *, code: int = 2, mentions: str | None = None) -> None:
    """Exit ``code``, a single ``Error:`` line (plus at most a hint / usage), no traceback."""
    text = result.output
    assert "No such command" not in text, text
    assert result.exit_code == code, f"exit {result.exit_code}, wanted {code}:\n{text}"
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), \
        f"uncaught {result.exception!r}"
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("Error")]
    assert errors, f"no error message:\n{text}"
    assert len(errors[0]) < 400, errors[0]
    if mentions:
        assert mentions.lower() in text.lower(), f"{mentions!r} not in:\n{text}"


def check(kb_db: Path, *args: str, code: int = 2, mentions: str | None = None,
          stdin: bytes | str | None = None) -> Result:
    before = snapshot(kb_db)
    result = run(kb_db, *args, stdin=stdin)
    assert_clean_error(result, code=code, mentions=mentions)
    assert snapshot(kb_db) == before, "the command changed the knowledge base"
    return result


# -- identifiers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["10.12/too-short-prefix", "hello world", "pmid:abc", "0",
                                   "doi:", "PMC", "ftp://example.org/paper.pdf",
                                   "10.1186/s13287\x00-021"],
                         ids=["doi-short-prefix", "words", "pmid-letters", "pmid-zero",
                              "doi-empty", "pmcid-empty", "ftp-url", "nul-byte"])
def test_add_malformed_identifier(kb_db: Path, value: str) -> None:
    check(kb_db, "add", value)


def test_add_unknown_doi_is_a_runtime_failure_listed_by_name(kb_db: Path) -> None:
    result = check(kb_db, "add", "10.5555/does-not-exist.1", code=1,
                   mentions="10.5555/does-not-exist.1")
    assert "not found" in result.output.lower() or "unknown" in result.output.lower()


def test_add_unknown_pmid_is_a_runtime_failure_listed_by_name(kb_db: Path) -> None:
    check(kb_db, "add", "99999999", code=1, mentions="99999999")


def test_add_from_empty_file(kb_db: Path, tmp_path: Path) -> None:
    empty = tmp_path / "ids.txt"
    empty.write_text("# only a comment\n\n")
    check(kb_db, "add", "--from-file", str(empty))


def test_add_from_binary_file(kb_db: Path, tmp_path: Path) -> None:
    binary = tmp_path / "ids.txt"
    binary.write_bytes(bytes(range(256)) * 8)
    check(kb_db, "add", "--from-file", str(binary))


def test_add_from_file_with_invalid_utf8(kb_db: Path, tmp_path: Path) -> None:
    bad = tmp_path / "ids.txt"
    bad.write_bytes(b"10.5555/kb.0001\n10.5555/\xff\xfe\xfa.2\n")
    check(kb_db, "add", "--from-file", str(bad))


# -- files for kb import -------------------------------------------------------------------------

def test_import_empty_file(kb_db: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.xml").write_bytes(b"")
    check(kb_db, "import", str(tmp_path / "empty.xml"))


def test_import_binary_file(kb_db: Path, tmp_path: Path) -> None:
    png = tmp_path / "figure.xml"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64)
    check(kb_db, "import", str(png))


def test_import_wrong_format_json(kb_db: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "records.json"
    wrong.write_text('{"this": "is json", "but": ["not", "CSL-JSON"]}')
    check(kb_db, "import", str(wrong))


def test_import_xml_that_is_not_pubmed(kb_db: Path, tmp_path: Path) -> None:
    svg = tmp_path / "drawing.xml"
    svg.write_text('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>')
    check(kb_db, "import", str(svg))


def test_import_invalid_utf8_in_pubmed_xml(kb_db: Path, tmp_path: Path) -> None:
    corpus = SyntheticCorpus(n=3, pubmed_only=0)
    text = corpus.efetch_xml([corpus.works[0].pmid]).encode()
    bad = text.replace(b"synthetic study", b"synthetic \xff\xfe study")
    (tmp_path / "bad.xml").write_bytes(bad)
    check(kb_db, "import", str(tmp_path / "bad.xml"))


def test_import_truncated_pubmed_xml_imports_nothing(kb_db: Path, tmp_path: Path) -> None:
    corpus = SyntheticCorpus(n=8, pubmed_only=0)
    text = corpus.efetch_xml([w.pmid for w in corpus.works if w.pmid])
    cut = tmp_path / "cut.xml"
    cut.write_text(text[: int(len(text) * 0.7)])
    check(kb_db, "import", str(cut))


def test_import_truncated_gzip(kb_db: Path, tmp_path: Path) -> None:
    corpus = SyntheticCorpus(n=8, pubmed_only=0)
    data = gzip.compress(corpus.efetch_xml([w.pmid for w in corpus.works if w.pmid]).encode())
    (tmp_path / "cut.xml.gz").write_bytes(data[: len(data) // 2])
    check(kb_db, "import", str(tmp_path / "cut.xml.gz"))


def test_import_billion_laughs_is_refused(kb_db: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(BILLION_LAUGHS)
    check(kb_db, "import", str(bomb))


def test_import_external_entity_is_refused_and_not_read(kb_db: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_TEXT)
    xxe = tmp_path / "xxe.xml"
    xxe.write_text(EXTERNAL_ENTITY.format(secret=secret))
    result = check(kb_db, "import", str(xxe))
    assert SECRET_TEXT not in result.output
    assert SECRET_TEXT.encode() not in kb_db.read_bytes()


def test_import_huge_file_of_zeros_is_refused_quickly(kb_db: Path, tmp_path: Path) -> None:
    import time
    huge = tmp_path / "huge.xml"
    with huge.open("wb") as handle:  # sparse: 4 GiB of zeros on no disk
        handle.truncate(4 * 2**30)
    start = time.perf_counter()
    check(kb_db, "import", str(huge))
    assert time.perf_counter() - start < 20, "kb import read a 4 GiB file of zeros to refuse it"


def test_import_missing_file(kb_db: Path, tmp_path: Path) -> None:
    check(kb_db, "import", str(tmp_path / "nope.xml"))


def test_import_a_directory(kb_db: Path, tmp_path: Path) -> None:
    (tmp_path / "folder.xml").mkdir()
    check(kb_db, "import", str(tmp_path / "folder.xml"))


# -- search queries and filters ------------------------------------------------------------------

@pytest.mark.parametrize("query", ['"unbalanced quote', "AND OR NOT", "title:", "NEAR(", "*",
                                   "(mesenchymal", "nosuchcolumn:cells", "^"],
                         ids=["open-quote", "bare-operators", "empty-column", "open-near",
                              "lone-star", "open-paren", "unknown-column", "caret"])
def test_search_fts_syntax_error_is_explained(kb_db: Path, query: str) -> None:
    """FTS5 rejects these: exit 2 with a plain explanation (or 0 if kb escapes them)."""
    before = snapshot(kb_db)
    result = run(kb_db, "search", query)
    assert "No such command" not in result.output
    assert "Traceback" not in result.output and result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert_clean_error(result)
    assert snapshot(kb_db) == before


@pytest.mark.parametrize("query", ["'; DROP TABLE works; --", "x\" OR 1=1 --",
                                   "mesenchymal') UNION SELECT sql FROM sqlite_master --"],
                         ids=["drop-table", "or-1-1", "union-select"])
def test_search_sql_injection_in_query_changes_and_leaks_nothing(kb_db: Path, query: str
                                                                 ) -> None:
    before = snapshot(kb_db)
    result = run(kb_db, "search", query, "--format", "json")
    assert "No such command" not in result.output
    assert result.exit_code in (0, 2) and "Traceback" not in result.output, result.output
    assert "CREATE TABLE" not in result.output
    assert snapshot(kb_db) == before


@pytest.mark.parametrize("option,value", [
    ("--year", "2015; DROP TABLE works"), ("--year", "2025-2015x"), ("--year", "' OR 1=1 --"),
    ("--limit", "-5"), ("--limit", "ten"), ("--design", "rct' OR '1'='1"),
], ids=["year-drop", "year-garbage", "year-or", "limit-negative", "limit-word", "design-or"])
def test_search_bad_filter_values(kb_db: Path, option: str, value: str) -> None:
    check(kb_db, "search", "cerebral", option, value)


def test_search_mesh_filter_injection_matches_nothing(kb_db: Path) -> None:
    """A filter value is data, never SQL: a tautology must not return every work."""
    before = snapshot(kb_db)
    result = run(kb_db, "search", "cerebral", "--mesh", "x' OR '1'='1", "--format", "json")
    assert "No such command" not in result.output
    assert result.exit_code in (0, 1, 2) and "Traceback" not in result.output, result.output
    assert "10.1186/s13287-021-02513-4" not in result.stdout
    assert snapshot(kb_db) == before


# -- outputs -------------------------------------------------------------------------------------

def _unwritable(tmp_path: Path) -> list[str]:
    blocked = tmp_path / "ro"
    blocked.mkdir()
    blocked.chmod(0o500)
    return [str(tmp_path / "no-such-dir" / "out.bib"), str(tmp_path), "/proc/kb-test/out.bib",
            str(blocked / "out.bib")]


@pytest.mark.parametrize("which", [0, 1, 2, 3], ids=["missing-dir", "a-directory", "proc",
                                                     "read-only-dir"])
def test_export_out_path_that_cannot_be_written(kb_db: Path, tmp_path: Path, which: int) -> None:
    import os
    target = _unwritable(tmp_path)[which]
    if which == 3 and os.geteuid() == 0:
        target = "/proc/version"  # root ignores directory modes; a file no one may write
    check(kb_db, "export", "--format", "bibtex", "--out", target)


def test_graph_out_path_that_cannot_be_written(kb_db: Path, tmp_path: Path) -> None:
    check(kb_db, "graph", "--doi", "10.1186/s13287-021-02513-4", "--format", "json",
          "--out", str(tmp_path / "no-such-dir" / "g.json"))


def test_graph_malformed_doi(kb_db: Path) -> None:
    check(kb_db, "graph", "--doi", "not-a-doi")


@pytest.mark.parametrize("args", [["--doi", "not-a-doi"], ["--doi", "10.5555/kb.0001",
                                                           "--depth", "-1"],
                                  ["--doi", "10.5555/kb.0001", "--max-works", "0"]],
                         ids=["bad-doi", "negative-depth", "zero-max-works"])
def test_crawl_bad_arguments(kb_db: Path, args: list[str]) -> None:
    check(kb_db, "crawl", *args)


def test_pubmed_empty_query(kb_db: Path) -> None:
    check(kb_db, "pubmed", "  ")


# -- the database file itself --------------------------------------------------------------------

COMMANDS_ON_DB: list[tuple[str, list[str]]] = [
    ("stats", ["stats"]), ("search", ["search", "cerebral"]),
    ("add", ["add", "10.5555/kb.0001"]), ("import", ["import", "{file}"]),
    ("export", ["export", "--format", "ris"]), ("graph", ["graph", "--doi", "10.5555/kb.0001"]),
]


def _db_cases() -> list:
    cases = []
    for name, args in COMMANDS_ON_DB:
        cases.append(pytest.param(name, args, id=name))
    return cases


def _pubmed_file(tmp_path: Path) -> str:
    corpus = SyntheticCorpus(n=3, pubmed_only=0)
    path = tmp_path / "one.xml"
    path.write_text(corpus.efetch_xml([corpus.works[0].pmid]))
    return str(path)


def _bad_dbs(tmp_path: Path) -> dict[str, Callable[[], Path]]:
    def not_sqlite() -> Path:
        path = tmp_path / "paper.db"
        path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 4)
        return path

    def newer() -> Path:
        path = _make_kb(tmp_path / "future.db")
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version = {store.latest_version() + 1}")
        conn.close()
        return path

    def corrupt() -> Path:
        path = _make_kb(tmp_path / "corrupt.db")
        data = bytearray(path.read_bytes())
        data[100:len(data)] = b"\x00\xff" * ((len(data) - 100) // 2) + b"\x00" * (len(data) % 2)
        path.write_bytes(bytes(data))
        return path

    return {"not-sqlite": not_sqlite, "newer-kb": newer, "corrupt": corrupt}


@pytest.mark.parametrize("kind", ["not-sqlite", "newer-kb", "corrupt"])
@pytest.mark.parametrize("name,args", _db_cases())
def test_unusable_database_file(kb_env: dict[str, str], tmp_path: Path, kind: str, name: str,
                                args: list[str]) -> None:
    db = _bad_dbs(tmp_path)[kind]()
    before = db.read_bytes()
    args = [a.replace("{file}", _pubmed_file(tmp_path)) for a in args]
    result = run(db, *args)
    assert_clean_error(result, code=2)
    assert db.read_bytes() == before, "the unusable database file was modified"
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0


@pytest.mark.parametrize("name,args", _db_cases())
def test_database_path_is_a_directory(kb_env: dict[str, str], tmp_path: Path, name: str,
                                      args: list[str]) -> None:
    folder = tmp_path / "kb.db.d"
    folder.mkdir()
    args = [a.replace("{file}", _pubmed_file(tmp_path)) for a in args]
    assert_clean_error(run(folder, *args), code=2)
    assert list(folder.iterdir()) == []
