"""kb export: every format through the CLI, query and filters, --out written whole or not at
all, and kb import of what kb export wrote."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import store
from kb.cli import cli
from kb.ingest.seed import read_works

AMANAT = "10.1186/s13287-021-02513-4"
ZARRABI = "10.1186/s12883-022-02636-y"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "kb.db"
    conn = store.connect(path)
    store.upsert_works(conn, read_works())
    conn.close()
    return path


def _kb(db: Path, *args: str):
    return CliRunner().invoke(cli, ["--db", str(db), *args])


@pytest.mark.parametrize("fmt", ["bibtex", "ris", "csljson", "nbib", "csv", "jsonl"])
def test_export_everything_to_a_file(db: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"all.{fmt}"
    result = _kb(db, "export", "--format", fmt, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Exported 84 works" in result.output  # the corpus's 88 works less its 4 stubs
    text = out.read_text(encoding="utf-8")
    assert AMANAT in text.lower() and ZARRABI in text.lower()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".all.")]  # no temp left


def test_stubs_only_on_request(db: Path) -> None:
    conn = store.connect(db)
    store.upsert_works(conn, [{"source": "reference", "status": "stub",
                               "doi": "10.5555/kb-export-stub.1", "title": "A cited work"}])
    conn.close()
    assert "10.5555/kb-export-stub.1" not in _kb(db, "export", "--format", "csv").stdout
    with_stubs = _kb(db, "export", "--stubs", "--format", "csv")
    assert "10.5555/kb-export-stub.1" in with_stubs.stdout and "Exported 89 works" in \
        with_stubs.stderr


def test_export_query_and_filters(db: Path) -> None:
    result = _kb(db, "export", "sham-controlled", "--design", "rct", "--format", "jsonl")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["doi"] for r in rows} == {AMANAT, ZARRABI}
    assert {r["key"] for r in rows} == {"amanat2021clinical", "zarrabi2022safety"}
    amanat = next(r for r in rows if r["doi"] == AMANAT)
    assert amanat["authors"][0] == {"family": "Amanat", "given": "Man"}
    assert amanat["study_design"] == "rct" and amanat["pmcid"] == "PMC8343813"
    none = _kb(db, "export", "sham-controlled", "--year", "1990-1995", "--format", "csv")
    assert none.exit_code == 0 and "nothing exported" in none.output


def test_keys_are_the_same_across_runs_and_subsets(db: Path) -> None:
    import bibtexparser
    everything = {e["doi"]: e["ID"] for e in bibtexparser.parse_string(
        _kb(db, "export", "--format", "bibtex").stdout).entries if "doi" in e}
    subset = {e["doi"]: e["ID"] for e in bibtexparser.parse_string(
        _kb(db, "export", "cord blood", "--format", "bibtex").stdout).entries if "doi" in e}
    assert subset and all(everything[doi] == key for doi, key in subset.items())
    assert _kb(db, "export", "--format", "bibtex").stdout == \
        _kb(db, "export", "--format", "bibtex").stdout


def test_unwritable_out_is_a_clean_error(db: Path, tmp_path: Path) -> None:
    missing = _kb(db, "export", "--out", str(tmp_path / "no" / "such" / "dir.bib"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert "Traceback" not in missing.output
    folder = _kb(db, "export", "--out", str(tmp_path))
    assert folder.exit_code == 2
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        result = _kb(db, "export", "--out", str(locked / "x.bib"))
        assert result.exit_code == 2 and not (locked / "x.bib").exists()


def test_failed_export_leaves_the_old_file(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "refs.bib"
    out.write_text("previous export\n")
    bad = _kb(db, "export", "cells AND", "--out", str(out))
    assert bad.exit_code == 2 and "cannot read the search query" in bad.output
    assert out.read_text() == "previous export\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".refs.bib.")]


@pytest.mark.parametrize("fmt", ["bibtex", "ris", "csljson", "nbib", "csv", "jsonl"])
def test_kb_import_reads_kb_export(db: Path, tmp_path: Path, fmt: str) -> None:
    """What `kb export` writes, `kb import` (the PubMed engineer's command, through
    kb.formats.detect/read) loads into an empty KB with the same works."""
    if _kb(db, "import", "--help").exit_code != 0:
        pytest.skip("kb import is not in this build")
    out = tmp_path / f"refs.{fmt}"
    assert _kb(db, "export", "mesenchymal", "--format", fmt, "--out", str(out)).exit_code == 0
    fresh = tmp_path / "fresh.db"
    result = _kb(fresh, "import", str(out))
    assert result.exit_code == 0, result.output
    conn = store.connect(fresh)
    source = store.connect(db)
    from kb.query.search import search
    expected = {h.doi for h in search(source, "mesenchymal", limit=None, stubs=False).hits}
    assert {r[0] for r in conn.execute("SELECT doi FROM works")} == expected


def test_citation_pairs_round_trip(db: Path, tmp_path: Path) -> None:
    conn = store.connect(db)
    from kb.ingest.seed import read_links
    links, _lineage = read_links()
    store.add_links(conn, links)
    expected = {(r[0] or f"url:{r[1]}", r[2] or f"url:{r[3]}") for r in conn.execute(
        "SELECT f.doi, f.url, t.doi, t.url FROM citations c JOIN works f ON f.id = c.citing_id "
        "JOIN works t ON t.id = c.cited_id WHERE f.status = 'full'")}
    conn.close()
    out = tmp_path / "edges.csv"
    result = _kb(db, "export", "--format", "citations-csv", "--out", str(out))
    assert result.exit_code == 0 and f"Exported {len(expected)} citations" in result.output
    text = out.read_text()
    assert text.startswith("citing,cited\n")
    assert "10.1007/s11010-024-05072-3,10.1016/j.ridd.2010.12.042" in text
    assert {tuple(line.split(",")) for line in text.splitlines()[1:]} == expected
    fresh = tmp_path / "fresh.db"
    if _kb(fresh, "import", "--help").exit_code == 0:
        assert _kb(fresh, "import", str(out)).exit_code == 0
        again = _kb(fresh, "export", "--stubs", "--format", "citations-csv")
        assert set(again.stdout.splitlines()[1:]) == set(text.splitlines()[1:])
