"""Outcomes as data: the instrument table, time frames, the curated seed through kb build,
ClinicalTrials.gov posted results, rules over PubMed abstracts, and `kb outcomes`."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from kb import store
from kb.ingest.build import build_kb
from kb.cli import cli
from kb.evidence.outcomes import (INSTRUMENTS, extract_effects, instrument_matches,
                                  normalise_instrument, parse_timeframe, read_seed_outcomes,
                                  registry_rows)
from kb.http import Client
from kb.scrapers import ctgov
from kb.store.outcomes import load_curated_outcomes
from tests.replay import Reply

POOLED = "10.22074/cellj.2024.2032098.1600"
AMANAT, ZARRABI = "10.1186/s13287-021-02513-4", "10.1186/s12883-022-02636-y"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("outcomes") / "kb.db"
    build_kb(path)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- vocabulary of instruments and time frames ---------------------------------------------

#: One phrase per INSTRUMENTS row, as pages and registries write them.
PHRASES = {
    "GMFM-66": "Change in Gross Motor Function Measure-66 (GMFM-66) score",
    "GMFM-88": "GMFM 88 total score",
    "GMFM (unspecified)": "gross motor function measure",
    "GMPM": "Gross Motor Performance Measure",
    "PEDI": "Pediatric Evaluation of Disability Inventory",
    "MAS": "Modified Ashworth Scale (elbow flexors)",
    "WeeFIM": "WeeFIM total",
    "QUEST": "Quality of Upper Extremity Skills Test",
    "PDMS-FM": "Peabody Developmental Motor Scales, fine motor quotient",
    "CFA": "Comprehensive Functional Assessment",
    "ADL": "activities of daily living",
    "FMFS": "Fine Motor Function Scale",
    "SDSC": "Sleep Disturbance Scale for Children",
}


@pytest.mark.parametrize("instrument", INSTRUMENTS, ids=lambda i: i.name)
def test_every_instrument_row_is_found_in_a_phrase(instrument) -> None:
    assert normalise_instrument(PHRASES[instrument.name]) == instrument.name


def test_a_family_matches_its_totals_not_its_dimensions() -> None:
    assert [i for i in ("GMFM-66", "GMFM-88", "GMFM (unspecified)", "GMFM-88-A",
                        "GMFM dimension: sitting", "GMPM") if instrument_matches("gmfm", i)] \
        == ["GMFM-66", "GMFM-88", "GMFM (unspecified)"]
    assert instrument_matches("PEDI", "PEDI") and not instrument_matches("PEDI", "PEDI mobility")


@pytest.mark.parametrize("text, months", [
    ("12 months", [12.0]),
    ("Baseline, 6 and 12 months post-infusion", [0.0, 6.0, 12.0]),
    ("Week 24", [5.52]),
    ("24 weeks", [5.52]),
    ("Baseline and 1 year", [0.0, 12.0]),
    ("Month 1, Month 3 and Month 6", [1.0, 3.0, 6.0]),
    ("Day 1 to Month 12", [0.03, 12.0]),
    ("two years after infusion", [24.0]),
    ("Year 1", [12.0]),
    ("at discharge", []),
])
def test_time_frames_as_months(text: str, months: list[float]) -> None:
    assert parse_timeframe(text) == months


# -- the curated seed ----------------------------------------------------------------------

def test_build_loads_every_curated_number_with_its_page(built: Path) -> None:
    conn = sqlite3.connect(built)
    total, curated, with_page = conn.execute(
        "SELECT count(*), sum(provenance = 'curated'), sum(source_url LIKE 'http%') "
        "FROM outcomes").fetchone()
    assert total == curated == with_page == len(read_seed_outcomes())
    # a number a meta-analysis table printed for another trial keeps both works
    row = conn.execute(
        "SELECT o.value, t.label, w.doi, r.doi FROM outcomes o JOIN trials t ON t.id = o.trial_id "
        "JOIN works w ON w.id = o.work_id JOIN works r ON r.id = o.reported_in_work_id "
        "WHERE o.arm = 'hUCB-MSC' AND o.timepoint_months = 12 AND o.statistic = 'sd'").fetchone()
    assert row == (2.96, "Huang 2018", "10.1177/0963689717729379", "10.4252/wjsc.v11.i10.891")
    # the two seed trials' numbers are tied to their trials, the pooled results to no trial
    labels = {r[0] for r in conn.execute(
        "SELECT t.label FROM outcomes o JOIN trials t ON t.id = o.trial_id JOIN works w ON "
        "w.id = o.work_id WHERE w.doi IN (?, ?)", (AMANAT, ZARRABI))}
    assert labels == {"Amanat 2021", "Zarrabi 2022"}
    assert conn.execute("SELECT count(*) FROM outcomes o JOIN works w ON w.id = o.work_id "
                        "WHERE w.doi = '10.4252/wjsc.v11.i10.891' AND o.trial_id IS NULL "
                        "AND o.quantity = 'smd'").fetchone()[0] == 3


def test_loading_the_curated_outcomes_again_changes_nothing(built: Path, tmp_path: Path) -> None:
    copy = tmp_path / "kb.db"
    copy.write_bytes(built.read_bytes())
    conn = store.connect(copy)
    before = [tuple(r) for r in conn.execute("SELECT * FROM outcomes ORDER BY id")]
    assert load_curated_outcomes(conn, read_seed_outcomes()).rows == len(before)
    assert [tuple(r) for r in conn.execute("SELECT * FROM outcomes ORDER BY id")] == before
    conn.close()


def test_the_effects_view_sets_estimates_beside_their_ci(built: Path) -> None:
    conn = sqlite3.connect(built)
    row = conn.execute("SELECT estimate, ci_low, ci_high, n FROM effects WHERE trial = "
                       "'Amanat 2021' AND instrument = 'GMFM-66' AND effect = "
                       "'adjusted_difference'").fetchone()
    assert row == (8.07, 1.62, 14.52, 72)


# -- ClinicalTrials.gov posted results -----------------------------------------------------

def _study_with_results() -> dict:
    """A record in the documented resultsSection shape (every number a string)."""
    return {
        "protocolSection": {
            "identificationModule": {"nctId": "NCT09000001", "briefTitle": "Cord blood for CP"},
            "armsInterventionsModule": {"armGroups": [
                {"label": "Cord blood", "type": "EXPERIMENTAL"},
                {"label": "Saline", "type": "PLACEBO_COMPARATOR"}]}},
        "hasResults": True,
        "resultsSection": {
            "participantFlowModule": {
                "groups": [{"id": "FG000", "title": "Cord blood"}, {"id": "FG001", "title": "Saline"}],
                "periods": [{"title": "Year 1", "milestones": [
                    {"type": "STARTED", "achievements": [{"groupId": "FG000", "numSubjects": "32"},
                                                         {"groupId": "FG001", "numSubjects": "31"}]},
                    {"type": "COMPLETED", "achievements": [{"groupId": "FG000", "numSubjects": "31"},
                                                           {"groupId": "FG001", "numSubjects": "30"}]}]}]},
            "outcomeMeasuresModule": {"outcomeMeasures": [
                {"type": "PRIMARY", "title": "Change in GMFM-66", "paramType": "MEAN",
                 "dispersionType": "STANDARD_DEVIATION", "timeFrame": "Baseline and 12 months",
                 "groups": [{"id": "OG000", "title": "Cord blood"}, {"id": "OG001", "title": "Saline"}],
                 "denoms": [{"units": "Participants", "counts": [
                     {"groupId": "OG000", "value": "31"}, {"groupId": "OG001", "value": "30"}]}],
                 "classes": [{"categories": [{"measurements": [
                     {"groupId": "OG000", "value": "7.5", "spread": "6.8"},
                     {"groupId": "OG001", "value": "NA", "comment": "not collected"}]}]}],
                 "analyses": [{"groupIds": ["OG000", "OG001"],
                               "paramType": "Mean Difference (Final Values)", "paramValue": "0.6",
                               "ciPctValue": "95", "ciNumSides": "TWO_SIDED",
                               "ciLowerLimit": "-2.5", "ciUpperLimit": "3.7", "pValue": "<0.001",
                               "statisticalMethod": "ANCOVA"}]},
                {"type": "SECONDARY", "title": "Modified Ashworth Scale", "paramType": "MEAN",
                 "dispersionType": "CONFIDENCE_95", "timeFrame": "Baseline, 6 and 12 months",
                 "groups": [{"id": "OG000", "title": "Cord blood"}],
                 "classes": [{"title": "Month 6", "categories": [{"measurements": [
                     {"groupId": "OG000", "value": "1.5", "lowerLimit": "1.1",
                      "upperLimit": "1.9"}]}]}]}]}}}


def test_posted_results_become_registry_rows() -> None:
    rows = registry_rows(ctgov.parse_results(_study_with_results()))
    got = {(r["arm"], r["arm_role"], r["instrument"], r["timepoint_months"], r["quantity"],
            r["statistic"], r["value"], r["n"]) for r in rows}
    assert got == {
        ("Cord blood", "intervention", "GMFM-66", 12.0, "change_from_baseline", "mean", 7.5, 31),
        ("Cord blood", "intervention", "GMFM-66", 12.0, "change_from_baseline", "sd", 6.8, 31),
        ("Cord blood vs Saline", "intervention", "GMFM-66", 12.0, "between_group_difference",
         "mean", 0.6, 61),
        ("Cord blood vs Saline", "intervention", "GMFM-66", 12.0, "between_group_difference",
         "ci_low", -2.5, 61),
        ("Cord blood vs Saline", "intervention", "GMFM-66", 12.0, "between_group_difference",
         "ci_high", 3.7, 61),
        ("Cord blood vs Saline", "intervention", "GMFM-66", 12.0, "p_value", "value", 0.001, 61),
        ("Cord blood", "intervention", "MAS", 6.0, "final", "mean", 1.5, None),
        ("Cord blood", "intervention", "MAS", 6.0, "final", "ci_low", 1.1, None),
        ("Cord blood", "intervention", "MAS", 6.0, "final", "ci_high", 1.9, None),
        ("Cord blood", "intervention", None, 12.0, "n_analysed", "value", 31, 31),
        ("Saline", "control", None, 12.0, "n_analysed", "value", 30, 30)}
    p = next(r for r in rows if r["quantity"] == "p_value")
    assert p["value_as_stated"] == "<0.001" and p["provenance"] == "registry"
    assert p["source_url"] == "https://clinicaltrials.gov/study/NCT09000001?tab=results"
    assert next(r for r in rows if r["instrument"] == "MAS")["timepoint_as_stated"] == "Month 6"
    assert ctgov.parse_results({"protocolSection": {}, "hasResults": False}) == []


def test_registry_refresh_stores_posted_results(server, config, kb_env) -> None:
    from kb.evidence.registry import refresh_registry

    server.add("GET", "/ctgov/studies", Reply(body=json.dumps(
        {"studies": [_study_with_results()]}).encode()))
    conn = store.connect(Path(kb_env["KB_DB"]))
    with Client(config, rates={}) as client:
        assert refresh_registry(conn, client, ["NCT09000001"]).stored == ("NCT09000001",)
        refresh_registry(conn, client, ["NCT09000001"])  # again: the same rows, not twice
    rows = conn.execute("SELECT count(*), count(DISTINCT trial_id), min(provenance) FROM "
                        "outcomes").fetchone()
    assert tuple(rows) == (11, 1, "registry")
    conn.close()


# -- rules over PubMed abstracts -----------------------------------------------------------

ABSTRACT = ("Children were randomised to umbilical cord tissue mesenchymal stem cells or sham "
            "(NCT09000002). At 12 months the GMFM-66 change was larger with cells (β 8.07; "
            "95%CI 1.62, 14.52; Cohen's d 0.92). The treated arm gained 10.27 ± 2.96 points "
            "in GMFM over twelve months (p = 0.045).")
PUBMED_XML = f"""<?xml version="1.0"?>
<PubmedArticleSet><PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM">
<PMID Version="1">39000001</PMID><Article PubModel="Print">
<Journal><Title>Stem Cell Research</Title><JournalIssue><PubDate><Year>2021</Year></PubDate></JournalIssue></Journal>
<ArticleTitle>Intrathecal cells in cerebral palsy: a randomized sham-controlled trial</ArticleTitle>
<Abstract><AbstractText Label="RESULTS">{ABSTRACT}</AbstractText></Abstract>
<AuthorList><Author><LastName>Tester</LastName><ForeName>A</ForeName></Author></AuthorList>
<PublicationTypeList><PublicationType>Randomized Controlled Trial</PublicationType></PublicationTypeList>
</Article></MedlineCitation></PubmedArticle></PubmedArticleSet>"""


def test_rules_read_reported_effects() -> None:
    got = [(r["quantity"], r["statistic"], r["value"], r["instrument"], r["timepoint_months"])
           for r in extract_effects(ABSTRACT)]
    assert got == [
        ("adjusted_difference", "mean", 8.07, "GMFM-66", 12.0),
        ("adjusted_difference", "ci_low", 1.62, "GMFM-66", 12.0),
        ("adjusted_difference", "ci_high", 14.52, "GMFM-66", 12.0),
        ("cohens_d", "value", 0.92, "GMFM-66", 12.0),
        ("change_from_baseline", "mean", 10.27, "GMFM (unspecified)", 12.0),
        ("change_from_baseline", "sd", 2.96, "GMFM (unspecified)", 12.0),
        ("p_value", "value", 0.045, "GMFM (unspecified)", 12.0)]
    assert extract_effects("No numbers here.") == []


def test_importing_a_pubmed_record_stores_its_rule_outcomes(runner, kb_env, tmp_path) -> None:
    xml = tmp_path / "one.xml"
    xml.write_text(PUBMED_XML, encoding="utf-8")
    assert runner.invoke(cli, ["import", str(xml)]).exit_code == 0
    result = runner.invoke(cli, ["outcomes", "--instrument", "GMFM-66", "--format", "json"])
    assert result.exit_code == 0, result.output
    trial, = json.loads(result.output)["trials"]
    assert trial["trial"] == "Tester 2021"
    assert {(o["quantity"], o["statistic"], o["value"], o["provenance"])
            for o in trial["outcomes"]} == {
        ("adjusted_difference", "mean", 8.07, "rule"), ("adjusted_difference", "ci_low", 1.62, "rule"),
        ("adjusted_difference", "ci_high", 14.52, "rule"), ("cohens_d", "value", 0.92, "rule")}
    assert trial["outcomes"][0]["source_url"].startswith("rule:work/")


# -- kb outcomes ---------------------------------------------------------------------------

def test_outcomes_of_the_pooled_study_show_both_source_trials(built: Path, runner) -> None:
    result = runner.invoke(cli, ["--db", str(built), "outcomes", "--doi", POOLED,
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    trials = {t["trial"]: t for t in json.loads(result.output)["trials"]}
    assert set(trials) == {"Amanat 2021", "Zarrabi 2022"}
    for name, doi, change, beta, ci, d in (
            ("Amanat 2021", AMANAT, 10.65, 8.07, (1.62, 14.52), 0.92),
            ("Zarrabi 2022", ZARRABI, 9.62, 7.1, (2.08, 12.76), 0.62)):
        trial = trials[name]
        assert trial["via"].startswith(f"pooled by {POOLED}")
        numbers = {(o["quantity"], o["statistic"]): o for o in trial["outcomes"]
                   if o["instrument"] == "GMFM-66" and o["timepoint_months"] == 12}
        assert numbers["change_from_baseline", "mean"]["value"] == change
        assert numbers["adjusted_difference", "mean"]["value"] == beta
        assert (numbers["adjusted_difference", "ci_low"]["value"],
                numbers["adjusted_difference", "ci_high"]["value"]) == ci
        assert numbers["cohens_d", "value"]["value"] == d
        assert all(doi in o["source_url"] and o["where"] for o in numbers.values())


def test_outcomes_table_csv_and_pictures(built: Path, runner, tmp_path: Path) -> None:
    table = runner.invoke(cli, ["--db", str(built), "outcomes", "--doi", POOLED,
                                "--instrument", "GMFM-66"])
    assert table.exit_code == 0, table.output
    assert table.output.startswith("Side by side: Amanat 2021 · UC-MSC · IT · n=72 | "
                                   "Zarrabi 2022 · UCB-MNC · IT · n=72")
    side = next(line for line in table.output.splitlines() if "adjusted difference" in line)
    assert "8.07 (95% CI 1.62, 14.52)" in side and "7.1 (95% CI 2.08, 12.76)" in side
    assert "adjusted difference" in table.output and "8.07 (95% CI 1.62, 14.52)" in table.output
    assert "Sources:" in table.output and AMANAT in table.output
    csv_out = runner.invoke(cli, ["--db", str(built), "outcomes", "Huang", "--format", "csv"])
    assert csv_out.output.splitlines()[0].startswith("trial,cell_product,route,donor,arm")
    assert all(line.startswith("Huang 2018,") for line in csv_out.output.splitlines()[1:])
    for fmt, magic in (("png", b"\x89PNG"), ("svg", b"<?xml"), ("html", b"<!DOCTYPE html>")):
        out = tmp_path / f"course.{fmt}"
        result = runner.invoke(cli, ["--db", str(built), "outcomes", "--trial", "Lv 2023",
                                     "--instrument", "GMFM-88", "--format", fmt, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_bytes().startswith(magic)
    assert b"<svg" in (tmp_path / "course.html").read_bytes()
    family = runner.invoke(cli, ["--db", str(built), "outcomes", "--doi", POOLED, "--instrument",
                                 "GMFM", "--format", "svg"])
    assert family.exit_code == 0, family.output
    assert "adjusted difference 8.07 (95% CI 1.62, 14.52)" in family.output


def test_outcomes_bad_input_says_what_exists_and_writes_nothing(built: Path, runner) -> None:
    before = _digest(built)
    unknown = runner.invoke(cli, ["--db", str(built), "outcomes", "--instrument", "Bayley"])
    assert unknown.exit_code == 2 and "GMFM-66" in unknown.output and "PEDI" in unknown.output
    missing = runner.invoke(cli, ["--db", str(built), "outcomes", "--doi", "10.9999/none"])
    assert missing.exit_code == 2 and "10.9999/none" in missing.output
    no_trial = runner.invoke(cli, ["--db", str(built), "outcomes", "--trial", "Nobody 1999"])
    assert no_trial.exit_code == 2 and "Traceback" not in no_trial.output
    assert _digest(built) == before


async def test_datasette_serves_outcomes_effects_and_the_12_month_query(built: Path) -> None:
    from kb.serve import make_datasette

    ds = make_datasette(built)
    await ds.invoke_startup()
    page = await ds.client.get("/kb/effects_at_12_months_by_cell_product.json?_shape=array")
    assert page.status_code == 200
    rows = {(r["trial"], r["instrument"], r["effect"]): r for r in page.json()}
    amanat = rows["Amanat 2021", "GMFM-66", "adjusted_difference"]
    assert (amanat["estimate"], amanat["ci_low"], amanat["ci_high"]) == (8.07, 1.62, 14.52)
    assert amanat["source_url"].endswith(AMANAT)
    side = await ds.client.get("/kb/outcomes_of_pooled_study.json", params={
        "doi": POOLED, "instrument": "GMFM-66", "_shape": "array"})
    assert {r["trial"] for r in side.json()} == {"Amanat 2021", "Zarrabi 2022"}
    facets = (await ds.client.get("/kb/outcomes.json?_size=0")).json()["facet_results"]
    assert {"instrument", "quantity", "provenance"} <= set(facets)


def test_rules_read_only_trials_and_syntheses(runner, kb_env, tmp_path) -> None:
    xml = tmp_path / "editorial.xml"
    xml.write_text(PUBMED_XML.replace("39000001", "39000002")
                   .replace("Intrathecal cells in cerebral palsy: a randomized sham-controlled "
                            "trial", "What the cell therapy trials tell us")
                   .replace("Randomized Controlled Trial", "Editorial")
                   .replace("Children were randomised to umbilical cord tissue mesenchymal stem "
                            "cells or sham (NCT09000002).", "Several groups gave cells to "
                            "children."), encoding="utf-8")
    assert runner.invoke(cli, ["import", str(xml)]).exit_code == 0
    conn = store.connect(Path(kb_env["KB_DB"]))
    assert conn.execute("SELECT study_design FROM works").fetchone()[0] not in (
        "rct", "controlled-trial", "open-label-trial")
    assert conn.execute("SELECT count(*) FROM outcomes").fetchone()[0] == 0
    conn.close()
