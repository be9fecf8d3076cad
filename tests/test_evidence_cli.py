"""ClinicalTrials.gov over real HTTP (replay server) and `kb evidence` as a user runs it."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from kb import store
from kb.cli import cli
from kb.errors import InputError
from kb.evidence import annotate
from kb.evidence import load
from kb.vocabulary import normalise_trial
from kb.http import Client
from kb.scrapers import ctgov
from kb.store import evidence as ev
from tests.replay import Reply, fixture_json


def _serve_ctgov(server) -> None:
    server.add("GET", "/ctgov/studies", Reply(body=fixture_json("ctgov", "studies_page2.json")),
               query={"pageToken": "NF0g5JGBlPMuwQY"})
    server.add("GET", "/ctgov/studies", Reply(body=fixture_json("ctgov", "studies_page1.json")))
    server.add("GET", "/ctgov/studies/NCT01147653",
               Reply(body=fixture_json("ctgov", "NCT01147653.json")))
    server.add("GET", "/ctgov/studies/NCT09999999", Reply(404, "Study not found"))


def test_fetch_studies_pages_and_reports_unknown_ids(server, config) -> None:
    _serve_ctgov(server)
    with Client(config, rates={}) as client:
        studies, missing = ctgov.fetch_studies(client, ["nct03473301", "NCT01147653",
                                                        "NCT09999999"])
    assert [ctgov.to_trial(s)["registry_id"] for s in studies] == ["NCT03473301", "NCT01147653"]
    assert missing == ["NCT09999999"]
    first = server.requests[0]
    assert first.query["filter.ids"] == ["NCT03473301,NCT01147653,NCT09999999"]
    assert server.requests[1].query["pageToken"] == ["NF0g5JGBlPMuwQY"]
    assert server.count("/ctgov/studies/NCT09999999") == 1
    with pytest.raises(InputError):
        ctgov.fetch_studies(client, ["NCT123"])


def test_to_trial_reads_design_masking_arms_and_ages() -> None:
    trial = ctgov.to_trial(fixture_json("ctgov", "NCT03473301.json"))
    assert trial["phase"] == "1/2" and trial["design"] == "rct"
    assert trial["blinding"] == "single (outcomes assessor)"
    assert trial["control"] == "no-treatment"
    assert trial["age_range"] == "24-60 months"
    # the record's own words; kb.vocabulary normalises them when they are stored
    assert trial["cell_type"] == "AlloCB; hCT-MSC" and trial["origin"] == "AlloCB"
    assert trial["route"] == ("Allogeneic umbilical cord blood, intravenous infusion.; "
                              "Three intravenous infusions of 2 x 10^6 cells/kg.")
    assert normalise_trial(trial)["cell_product"] == ["UCB", "UC-MSC"]
    assert normalise_trial(trial)["donor"] == ["allogeneic"]
    assert [a["arm_type"] for a in trial["arms"]] == ["EXPERIMENTAL", "EXPERIMENTAL",
                                                      "NO_INTERVENTION"]
    assert "enrollment" in trial and trial["enrollment"] == 91


@pytest.fixture
def seeded(kb_env) -> Path:
    """A small KB: two intrathecal RCTs, a pooled analysis of both, a registry-only trial."""
    path = Path(kb_env["KB_DB"])
    conn = store.connect(path)
    ids = {}
    for doi, family, year, title in (
            ("10.1000/amanat", "Amanat", 2021, "Intrathecal umbilical cord tissue mesenchymal "
             "stem cells in cerebral palsy: a randomized double-blind sham-controlled trial"),
            ("10.1000/zarrabi", "Zarrabi", 2022, "Umbilical cord blood mononuclear cells in "
             "spastic cerebral palsy: a randomized double-blind sham-controlled trial"),
            ("10.1000/pooled", "Nouri", 2025, "Cell-based therapy for cerebral palsy")):
        ids[doi] = store.upsert_work(conn, {"source": "crossref", "doi": doi, "title": title,
                                            "year": year, "authors": [{"family": family}]}).work_id
    load.load_curated_trials(conn, [
        {"doi": "10.1000/amanat", "design": "rct", "cell_type": "UCT-MSC", "route": "intrathecal",
         "n_randomised": 72, "sources": ["https://example.org/a"]},
        {"doi": "10.1000/zarrabi", "design": "rct", "cell_type": "UCB-MNC", "route": "intrathecal",
         "n_randomised": 72, "sources": ["https://example.org/z"]},
        {"doi": "10.1000/pooled", "design": "pooled-analysis", "cell_type": "UCB-MNC; UCT-MSC",
         "sources": ["https://example.org/p"]},
        {"doi": None, "registry_ids": ["NCT01147653"], "record_type": "registry",
         "cell_type": "autologous UCB", "sources": ["https://example.org/r"]}])
    for trial in ("10.1000/amanat", "10.1000/zarrabi"):
        ev.add_lineage(conn, ids["10.1000/pooled"], ids[trial], "pools",
                       "pools the trial's participants", "https://example.org/news")
    store.set_study_design(conn, ids["10.1000/pooled"], "pooled-analysis", "curated")
    annotate(conn)
    conn.close()
    return path


def test_evidence_table_lists_trials_with_reports_and_pools(runner, seeded) -> None:
    result = runner.invoke(cli, ["evidence"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Amanat 2021 — rct" in out and "Zarrabi 2022 — rct" in out
    assert "Nouri 2025 (pooled-analysis) 10.1000/pooled" in out
    assert "pools     Amanat 2021; Zarrabi 2022" in out
    assert out.rstrip().endswith("4 trials")


def test_evidence_query_csv_and_json(runner, seeded, tmp_path) -> None:
    result = runner.invoke(cli, ["evidence", "UC-MSC", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["label"] for r in rows] == ["Amanat 2021", "Nouri 2025"]
    assert rows[0]["route"] == "intrathecal" and rows[0]["n"] == "72"
    out = tmp_path / "ev.json"
    result = runner.invoke(cli, ["evidence", "zarrabi", "--format", "json", "--out", str(out)])
    assert result.exit_code == 0 and result.output == ""
    data = json.loads(out.read_text())
    assert (data[0]["cell_product"], data[0]["cell_product_as_stated"]) == (["UCB-MNC"], "UCB-MNC")
    assert (data[0]["route"], data[0]["route_as_stated"]) == (["intrathecal"], "intrathecal")
    assert (data[0]["donor"], data[0]["donor_as_stated"]) == (["not reported"], None)
    assert data[0]["provenance"]["cell_type"] == {"provenance": "curated",
                                                  "source": "https://example.org/z",
                                                  "sources": ["https://example.org/z"]}
    assert [r["role"] for r in data[0]["reports"]] == ["results", "pooled-analysis"]


def test_evidence_refresh_registry_over_http(runner, seeded, server) -> None:
    server.add("GET", "/ctgov/studies", Reply(body={"studies": [fixture_json("ctgov", "NCT01147653.json")]}))
    result = runner.invoke(cli, ["evidence", "NCT01147653", "--refresh-registry", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data[0]["status"] == "Completed" and data[0]["enrollment"] == 63
    assert data[0]["cell_product_as_stated"] == "autologous UCB"  # curated still wins
    assert data[0]["route"] == ["intravenous"]  # the registry's words, normalised
    assert data[0]["route_as_stated"].startswith("Single intravenous infusion")
    assert data[0]["provenance"]["phase"]["provenance"] == "registry"
    assert server.count("/ctgov/studies") == 1


def test_evidence_refresh_registry_reports_unknown_ids(runner, seeded, server) -> None:
    server.add("GET", "/ctgov/studies", Reply(body={"studies": []}))
    server.add("GET", "/ctgov/studies/NCT01147653", Reply(404, "not found"))
    result = runner.invoke(cli, ["evidence", "NCT01147653", "--refresh-registry"])
    assert result.exit_code == 1
    assert "NCT01147653: not found on ClinicalTrials.gov" in result.output


def test_refresh_registry_library_takes_every_nct_id_of_the_kb(seeded, server, config) -> None:
    from kb.evidence.registry import refresh_registry
    server.add("GET", "/ctgov/studies", Reply(body={"studies": [fixture_json("ctgov", "NCT01147653.json")]}))
    conn = store.connect(seeded)
    with Client(config, rates={}) as client:
        result = refresh_registry(conn, client)
    assert result == (("NCT01147653",), ())
    assert server.requests[0].query["filter.ids"] == ["NCT01147653"]
    row = conn.execute("SELECT phase, status, enrollment FROM trials WHERE key = 'NCT01147653'").fetchone()
    assert tuple(row) == ("2", "Completed", 63)
    conn.close()


def test_evidence_on_empty_and_missing_kb(runner, kb_env, tmp_path) -> None:
    runner.invoke(cli, ["init"])
    result = runner.invoke(cli, ["evidence"])
    assert result.exit_code == 0 and "0 trials" in result.output
    result = runner.invoke(cli, ["--db", str(tmp_path / "nope.db"), "evidence"])
    assert result.exit_code == 2 and "no knowledge base" in result.output


def test_evidence_marks_a_retracted_report_and_the_pooled_study_on_it(runner, seeded) -> None:
    conn = store.connect(seeded)
    store.upsert_work(conn, {"source": "crossref", "doi": "10.1000/amanat", "updates": [
        {"kind": "retraction", "direction": "updated-by", "doi": "10.1000/notice"}]})
    annotate(conn)
    conn.close()
    result = runner.invoke(cli, ["evidence"])
    assert result.exit_code == 0, result.output
    assert "Amanat 2021 [RETRACTED] — rct" in result.output
    assert "report    Amanat 2021 (results) [RETRACTED] 10.1000/amanat" in result.output
    assert "pools     Amanat 2021 [RETRACTED]; Zarrabi 2022" in result.output
    assert "Nouri 2025 (pooled-analysis) [DEPENDS ON RETRACTED] 10.1000/pooled" in result.output
    assert "Nouri 2025 [DEPENDS ON RETRACTED] — pooled-analysis" in result.output
    assert "Zarrabi 2022 — rct" in result.output


def test_a_kb_from_before_the_vocabulary_is_normalised_by_annotate(runner, tmp_path) -> None:
    import sqlite3
    db = tmp_path / "old.db"
    old = sqlite3.connect(db, isolation_level=None)
    old.row_factory = sqlite3.Row
    store.migrate(old, target=5)
    old.execute("INSERT INTO trials(key, label, cell_type, route, control, created_at, "
                "updated_at) VALUES ('NCT01147653', 'Sun 2017', 'ACB', "
                "'intrathecal (lumbar puncture)', 'saline placebo', 'x', 'x')")
    trial_id = old.execute("SELECT id FROM trials").fetchone()[0]
    for field, value in (("cell_type", "ACB"), ("route", "intrathecal (lumbar puncture)"),
                         ("control", "saline placebo")):
        old.execute("INSERT INTO trial_facts(trial_id, field, provenance, value, data, "
                    "updated_at) VALUES (?, ?, 'curated', ?, ?, 'x')",
                    (trial_id, field, value, json.dumps(value)))
    old.close()
    before = json.loads(runner.invoke(cli, ["--db", str(db), "evidence", "--format", "json"]
                                      ).output)[0]
    assert before["route_as_stated"] == "intrathecal (lumbar puncture)"  # kept by migration 7
    result = runner.invoke(cli, ["--db", str(db), "evidence", "--annotate", "--format", "json"])
    assert result.exit_code == 0, result.output
    trial = json.loads(result.output)[0]
    assert (trial["cell_product"], trial["donor"], trial["route"], trial["control"]) == \
        (["UCB"], ["autologous"], ["intrathecal"], "placebo")
    assert (trial["cell_product_as_stated"], trial["control_as_stated"]) == \
        ("ACB", "saline placebo")
