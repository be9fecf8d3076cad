"""What the full-text index holds about a work (schema/0009_search.sql): its trials' facts,
normalised and as stated, their outcome instruments, the journal; on the bundled kb.db and on
a small KB whose trials change after the works were indexed."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import store
from kb.cli import cli
from kb.evidence import load
from kb.query.search import search
from kb.store import evidence as ev
from kb.store import outcomes as oc

AMANAT = "10.1186/s13287-021-02513-4"


@pytest.fixture(scope="module")
def bundled(bundled_kb: Path) -> Path:
    return bundled_kb


def _dois(db: Path, *words: str) -> list[str]:
    result = CliRunner().invoke(cli, ["--db", str(db), "search", *words, "--format", "json",
                                      "--limit", "500"])
    assert result.exit_code == 0, result.output
    return [hit["doi"] for hit in json.loads(result.stdout)] if result.stdout.strip() else []


@pytest.mark.parametrize("word, at_least", [("GMFM", 15), ("intrathecal", 12)])
def test_the_bundled_kb_finds_the_field(bundled: Path, word: str, at_least: int) -> None:
    assert len(_dois(bundled, word)) >= at_least


@pytest.mark.parametrize("query", [
    "UCT-MSC",                      # the product as the paper states it
    "UC-MSC",                       # ... and normalised
    "trial:sham",                   # the control, through the trial: field
    "Modified Ashworth Scale",      # an outcome instrument as stated (normalised: MAS)
    "trial:GMFM-66",
])
def test_a_trial_fact_finds_the_work_reporting_it(bundled: Path, query: str) -> None:
    assert AMANAT in _dois(bundled, query)


def test_the_pooled_study_finds_its_trials_facts(bundled: Path) -> None:
    """The 2025 pooled analysis pools a UC-MSC and a UCB-MNC trial: both products find it."""
    pooled = "10.22074/cellj.2024.2032098.1600"
    assert pooled in _dois(bundled, "trial:UCB-MNC") and pooled in _dois(bundled, "trial:UC-MSC")


def test_journal_is_indexed(bundled: Path) -> None:
    conn = sqlite3.connect(bundled)
    journal = conn.execute("SELECT journal FROM works WHERE doi = ?", (AMANAT,)).fetchone()[0]
    conn.close()
    assert AMANAT in _dois(bundled, f'journal:"{journal}"')


# -- the index follows the evidence ------------------------------------------------------------

CURATED = [{"doi": "10.5555/kb-index.1", "design": "rct", "cell_type": "WJ-MSC",
            "route": "lumbar puncture", "n_randomised": 40, "outcomes": ["gross motor function"],
            "sources": ["https://example.org/kb-index-1"]}]
OUTCOME = {"trial_ref": "10.5555/kb-index.1", "arm": "WJ-MSC", "arm_role": "intervention",
           "n": 20, "instrument": "PEDI", "instrument_as_stated": "Paediatric Evaluation of "
           "Disability Inventory", "timepoint_months": 6, "quantity": "final",
           "statistic": "mean", "value": 51.2, "provenance": "registry",
           "source_url": "https://example.org/kb-index-1"}


@pytest.fixture
def conn(tmp_path: Path):
    connection = store.connect(tmp_path / "kb.db")
    store.upsert_work(connection, {"source": "pubmed", "doi": "10.5555/kb-index.1",
                                   "title": "A small synthetic trial", "year": 2020})
    store.upsert_work(connection, {"source": "pubmed", "doi": "10.5555/kb-index.2",
                                   "title": "A synthetic pooled analysis", "year": 2024})
    yield connection
    connection.close()


def _found(conn: sqlite3.Connection, query: str) -> list[str | None]:
    return [hit.doi for hit in search(conn, query).hits]


def test_the_index_follows_trial_facts_outcomes_and_pooling(conn: sqlite3.Connection) -> None:
    assert _found(conn, "intrathecal") == []
    load.load_curated_trials(conn, CURATED)
    assert _found(conn, "intrathecal") == ["10.5555/kb-index.1"]   # normalised
    assert _found(conn, "lumbar puncture") == ["10.5555/kb-index.1"]  # as stated
    assert _found(conn, '"WJ-MSC"') == ["10.5555/kb-index.1"]      # as stated
    assert _found(conn, "Paediatric") == []
    trial = ev.find_trials(conn, work_ids=[store.upsert_work(
        conn, {"source": "pubmed", "doi": "10.5555/kb-index.1"}).work_id])[0]
    oc.store_registry_outcomes(conn, trial, [OUTCOME])
    assert _found(conn, "Paediatric Disability") == ["10.5555/kb-index.1"]
    assert _found(conn, "trial:PEDI") == ["10.5555/kb-index.1"]
    pooled, source = (store.upsert_work(conn, {"source": "pubmed", "doi": d}).work_id
                      for d in ("10.5555/kb-index.2", "10.5555/kb-index.1"))
    ev.add_lineage(conn, pooled, source, "pools", "test", None)
    assert set(_found(conn, "trial:PEDI")) == {"10.5555/kb-index.1", "10.5555/kb-index.2"}
    ev.delete_lineage(conn, "curated")
    assert _found(conn, "trial:PEDI") == ["10.5555/kb-index.1"]
    # every row equals what the index is made from
    assert sorted(map(tuple, conn.execute("SELECT rowid, * FROM works_fts"))) == \
        sorted(map(tuple, conn.execute("SELECT * FROM works_fts_source")))
