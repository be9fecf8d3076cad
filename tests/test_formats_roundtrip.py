"""Round trips (issue 14): importing kb's own export of any format into the same KB changes
nothing; into an empty KB it gives the same works (count, identifiers, types)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import store
from kb.cli import cli
from kb.formats import WRITE_FORMATS
from tests.test_formats_robust import snapshot

WORKS = [
    {"source": "pubmed", "pmid": "9200001", "doi": "10.5555/rt.1", "type": "journal-article",
     "title": "Umbilical cord blood for cerebral palsy: a randomised trial", "year": 2021,
     "pub_date": "2021-08-06", "journal": "Stem Cells Transl Med", "volume": "10",
     "issue": "8", "pages": "1075-1081", "authors": [{"family": "Müller", "given": "Jörg"},
                                                     {"name": "CP Cell Therapy Group"}],
     "keywords": ["cerebral palsy"], "mesh": [{"descriptor": "Cerebral Palsy", "major": True}],
     "abstract": "Children received cells; 50% improved."},
    {"source": "crossref", "doi": "10.5555/rt.2", "type": "journal-article",
     "title": "A journal article whose journal is not known", "year": 2016},
    {"source": "webpage", "url": "https://cells.example.org/2025/03/fresh-insights",
     "type": "web-article", "journal": "Cells Example Blog",
     "title": "Fresh insights: cell therapy for cerebral palsy", "year": 2025},
    {"source": "webpage", "url": "https://guide.example.org/news/cp-response-over-time",
     "type": "web-article", "title": "Cerebral palsy response to cell therapy over time"},
    {"source": "webpage", "url": "https://repository.example.edu/handle/10161/24589",
     "type": "report", "title": "Position statement on stem cell therapy", "year": 2019},
    {"source": "webpage", "url": "https://proceedings.example.org/neuroregenerative-1191.html",
     "type": "proceedings-article", "title": "Neuro-regenerative effect of MSC", "year": 2018},
    {"source": "pubmed", "pmid": "9200002", "type": "journal-article", "journal": "Zhongguo",
     "title": "[Treatment of cerebral palsy with neural progenitor cells].", "year": 2012},
    {"source": "crossref", "doi": "10.5555/rt.3", "type": "book", "publisher": "Springer",
     "title": "Stem cells in neurology", "year": 2010},
]


def run(db: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--db", str(db), *args])
    assert result.exit_code == 0, result.output
    return result.output


def identities(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT doi, pmid, url, type, title, year FROM works "
                            "ORDER BY title").fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("roundtrip")
    db = folder / "kb.db"
    conn = store.connect(db)
    store.upsert_works(conn, WORKS)
    conn.close()
    files = {}
    for fmt in WRITE_FORMATS:
        files[fmt] = folder / f"works.{fmt}"
        run(db, "export", "--format", fmt, "--out", str(files[fmt]))
    return db, files


@pytest.mark.parametrize("fmt", WRITE_FORMATS)
def test_importing_an_export_into_the_same_kb_changes_nothing(
        exported: tuple[Path, dict[str, Path]], tmp_path: Path, fmt: str) -> None:
    source, files = exported
    db = tmp_path / "same.db"
    db.write_bytes(source.read_bytes())
    before = snapshot(db)
    output = run(db, "import", "--no-annotate", str(files[fmt]))
    assert f"{len(WORKS)} unchanged" in output, output
    assert snapshot(db) == before


@pytest.mark.parametrize("fmt", WRITE_FORMATS)
def test_importing_an_export_into_an_empty_kb_gives_the_same_works(
        exported: tuple[Path, dict[str, Path]], tmp_path: Path, fmt: str) -> None:
    source, files = exported
    db = tmp_path / "empty.db"
    run(db, "import", "--no-annotate", str(files[fmt]))
    assert identities(db) == identities(source)
