"""Evidence store, annotate, lineage and retraction propagation on small KBs built through kb.store."""
from __future__ import annotations

from pathlib import Path

import pytest

from kb import store
from kb.errors import InputError
from kb.evidence import annotate
from kb.evidence import load
from kb.evidence.table import evidence_rows
from kb.store import evidence as ev


@pytest.fixture
def conn(tmp_path: Path):
    connection = store.connect(tmp_path / "kb.db")
    yield connection
    connection.close()


def _work(conn, **fields) -> int:
    record = {"source": "pubmed", **fields}
    return store.upsert_work(conn, record).work_id


def _trial(conn, label: str) -> dict:
    rows = [r for r in evidence_rows(conn) if r["label"] == label]
    assert len(rows) == 1, [r["label"] for r in evidence_rows(conn)]
    return rows[0]


CURATED = [
    {"doi": "10.1000/trial-a", "registry_ids": ["NCT00000001"], "design": "rct",
     "cell_type": "UCT-MSC", "route": "intrathecal", "n_randomised": 72,
     "arms": [{"name": "UCT-MSC", "n": 36}, {"name": "sham", "n": 36}],
     "outcomes": ["GMFM-66 (primary)", "PEDI"], "follow_up_months": [12],
     "sources": ["https://example.org/trial-a"]},
    {"doi": None, "registry_ids": ["NCT00000001"], "record_type": "registry", "design": "rct",
     "status": "Completed", "enrollment": 74, "route": "intravenous", "phase": "2",
     "sources": ["https://clinicaltrials.gov/study/NCT00000001"]},
]


def test_curated_trials_group_by_registry_id_and_keep_sources(conn) -> None:
    work = _work(conn, doi="10.1000/trial-a", title="A trial", year=2021,
                 authors=[{"family": "Amanat", "given": "M"}])
    loaded = load.load_curated_trials(conn, CURATED)
    assert loaded.trials == 1 and loaded.stub_works == ()
    row = _trial(conn, "Amanat 2021")
    assert (row["cell_product_as_stated"], row["route"], row["n"], row["enrollment"]) == \
        ("UCT-MSC", ["intrathecal"], 72, 74)
    assert row["cell_product"] == ["UC-MSC"] and row["route_as_stated"] == "intrathecal"
    assert (row["status"], row["phase"], row["registry_ids"]) == ("Completed", "2", "NCT00000001")
    assert [a["n"] for a in row["arms"]] == [36, 36]
    assert row["provenance"]["route"]["source"] == "https://example.org/trial-a"
    assert row["provenance"]["status"]["source"] == "https://clinicaltrials.gov/study/NCT00000001"
    assert [(r["work_id"], r["role"]) for r in row["reports"]] == [(work, "results")]
    before = conn.total_changes
    again = load.load_curated_trials(conn, CURATED)
    assert again.facts == 0 and conn.total_changes == before


def test_bad_curated_entries_are_refused_whole(conn) -> None:
    with pytest.raises(InputError, match="needs a doi"):
        load.load_curated_trials(conn, [{"design": "rct", "sources": []}])
    with pytest.raises(InputError, match="not a trial registry id"):
        load.load_curated_trials(conn, [{"doi": "10.1000/x", "sources": []},
                                      {"doi": "10.1000/y", "registry_ids": ["NCT12"]}])
    assert conn.execute("SELECT count(*) FROM trials").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == 0


def test_missing_report_work_becomes_a_stub(conn) -> None:
    loaded = load.load_curated_trials(conn, [{"work_id": "url:https://example.org/abstract",
                                            "design": "controlled-trial", "cell_type": "NPCs",
                                            "sources": ["https://example.org/abstract"]}])
    assert loaded.stub_works == ("url:https://example.org/abstract",)
    status = conn.execute("SELECT status FROM works WHERE url = ?",
                          ("https://example.org/abstract",)).fetchone()[0]
    assert status == "stub"


def test_curated_value_overrides_rule_value_and_both_are_kept(conn) -> None:
    work = _work(conn, doi="10.1000/trial-b", year=2022, authors=[{"family": "Zarrabi"}],
                 title="Umbilical cord blood mononuclear cells given intravenously in cerebral "
                       "palsy: a randomized sham-controlled trial",
                 abstract="Sixty children were randomized. Follow-up lasted 6 months.",
                 publication_types=["Randomized Controlled Trial"])
    annotate(conn)
    row = _trial(conn, "Zarrabi 2022")
    assert (row["route"], row["n"], row["design"]) == (["intravenous"], 60, "rct")
    assert row["provenance"]["route"]["provenance"] == "rule"
    load.load_curated_trials(conn, [{"doi": "10.1000/trial-b", "route": "intrathecal",
                                   "n_randomised": 72, "sources": ["https://example.org/b"]}])
    annotate(conn, [work])
    row = _trial(conn, "Zarrabi 2022")
    assert (row["route"], row["n"], row["cell_product"]) == (["intrathecal"], 72, ["UCB-MNC"])
    assert row["provenance"]["route"]["provenance"] == "curated"
    kept = {tuple(r) for r in conn.execute(
        "SELECT provenance, value FROM trial_facts WHERE field = 'route'")}
    assert kept == {("rule", "intravenously"), ("curated", "intrathecal")}  # as stated


def test_curated_design_is_never_overridden(conn) -> None:
    work = _work(conn, title="A randomized controlled trial of cord blood")
    store.set_study_design(conn, work, "pooled-analysis", "curated")
    annotate(conn)
    assert tuple(conn.execute("SELECT study_design, design_source FROM works").fetchone()) == \
        ("pooled-analysis", "curated")


def test_shared_registry_id_groups_reports_and_infers_follow_up(conn) -> None:
    first = _work(conn, pmid="101", year=2017, authors=[{"family": "Sun"}],
                  title="Autologous cord blood infusion in cerebral palsy: a randomized, "
                        "placebo-controlled trial",
                  accessions=[{"bank": "ClinicalTrials.gov", "accession": "NCT00000002"}])
    later = _work(conn, pmid="102", year=2020, authors=[{"family": "Sun"}],
                  title="Long-term outcomes of autologous cord blood infusion in cerebral palsy: "
                        "a 3-year follow-up", abstract="Registered as NCT00000002.")
    protocol = _work(conn, pmid="103", year=2015, authors=[{"family": "Sun"}],
                     title="Autologous cord blood for cerebral palsy: study protocol",
                     abstract="ClinicalTrials.gov NCT00000002.")
    annotate(conn)
    trials = conn.execute("SELECT count(*) FROM trials").fetchone()[0]
    assert trials == 1
    roles = dict(conn.execute("SELECT work_id, role FROM trial_reports"))
    assert roles == {first: "results", later: "follow-up", protocol: "protocol"}
    edges = {(r["from_work_id"], r["to_work_id"], r["relation"]) for r in
             conn.execute("SELECT * FROM lineage")}
    assert (later, first, "follow_up_of") in edges
    assert (first, protocol, "same_trial") in edges
    reason = conn.execute("SELECT reason FROM lineage WHERE relation = 'same_trial'").fetchone()[0]
    assert "NCT00000002" in reason


def test_pooled_analysis_pools_cited_trials_and_add_lineage(conn) -> None:
    trial = _work(conn, doi="10.1000/t1", year=2021, authors=[{"family": "Amanat"}],
                  title="Intrathecal umbilical cord mesenchymal stem cells: a randomized "
                        "double-blind trial")
    pooled = _work(conn, doi="10.1000/pool", year=2024, authors=[{"family": "Nouri"}],
                   title="Pooled analysis of two trials of cord cells in cerebral palsy",
                   references=[{"doi": "10.1000/t1"}])
    annotate(conn)
    row = conn.execute("SELECT relation, provenance, reason FROM lineage").fetchone()
    assert (row["relation"], row["provenance"]) == ("pools", "rule")
    assert "pooled-analysis cites the rct report Amanat 2021" == row["reason"]
    assert ev.add_lineage(conn, pooled, trial, "pools", "pools the trial's participants",
                          "https://example.org/news") is True
    annotate(conn)  # a rule run never replaces the curated edge
    assert tuple(conn.execute("SELECT provenance, source FROM lineage").fetchone()) == \
        ("curated", "https://example.org/news")
    assert ev.add_lineage(conn, pooled, trial, "pools", "rule again", "rule:x", "rule") is False
    reports = _trial(conn, "Amanat 2021")["reports"]
    assert [(r["label"], r["role"]) for r in reports] == [("Amanat 2021", "results"),
                                                          ("Nouri 2024", "pooled-analysis")]
    view = conn.execute("SELECT from_label, to_label, relation FROM lineage_edges").fetchone()
    assert tuple(view) == ("Nouri 2024", "Amanat 2021", "pools")
    with pytest.raises(InputError):
        ev.add_lineage(conn, pooled, trial, "extends", "x", None)
    with pytest.raises(InputError):
        ev.add_lineage(conn, pooled, pooled, "pools", "x", None)


def test_retraction_flags_propagate_to_pooled_analyses_and_reviews(conn) -> None:
    retracted = _work(conn, doi="10.1000/bad", year=2019, authors=[{"family": "Doe"}],
                      title="Cord blood for cerebral palsy: a randomized controlled trial",
                      updates=[{"kind": "retraction", "direction": "updated-by",
                                "doi": "10.1000/notice", "source": "crossref"}])
    pubmed_retracted = _work(conn, pmid="555", title="Bone marrow cells in CP: an open-label trial",
                             publication_types=["Journal Article", "Retracted Publication"])
    target = _work(conn, doi="10.1000/target", title="Adipose stem cells in CP: a case series")
    _work(conn, doi="10.1000/notice2", title="Retraction notice",
          updates=[{"kind": "retraction", "direction": "update-to", "doi": "10.1000/target",
                    "source": "crossref"}])
    corrected = _work(conn, doi="10.1000/fixed", title="A cohort study",
                      updates=[{"kind": "correction", "direction": "updated-by",
                                "doi": "10.1000/erratum", "source": "crossref"}])
    pooled = _work(conn, doi="10.1000/pool2", title="A pooled analysis of cord blood trials")
    review = _work(conn, doi="10.1000/review", title="Stem cells in cerebral palsy: a review",
                   references=[{"pmid": "555"}])
    ev.add_lineage(conn, pooled, retracted, "pools", "pools it", "https://example.org")
    annotate(conn)
    flags = {(r["work_id"], r["flag"]) for r in conn.execute("SELECT * FROM work_flags")}
    assert flags == {(retracted, "retracted"), (pubmed_retracted, "retracted"),
                     (target, "retracted"), (corrected, "corrected"),
                     (pooled, "depends-on-retracted"), (review, "depends-on-retracted")}
    assert conn.execute("SELECT is_retracted FROM works WHERE id = ?", (target,)).fetchone()[0] == 1
    marks = dict(conn.execute("SELECT work_id, mark FROM work_marks"))
    assert marks[pooled] == "DEPENDS ON RETRACTED" and marks[retracted] == "RETRACTED"


def test_merging_works_moves_evidence_rows(conn) -> None:
    load.load_curated_trials(conn, [{"doi": "10.1000/m", "design": "rct", "cell_type": "UCB",
                                   "sources": ["https://example.org/m"]}])
    other = _work(conn, pmid="777", title="Same paper seen by PubMed")
    keep = ev.work_id_for(conn, "10.1000/m")
    store.merge_works(conn, keep, other)
    assert conn.execute("SELECT work_id FROM trial_reports").fetchone()[0] == keep
    _work(conn, doi="10.1000/m", pmid="777")
    assert conn.execute("SELECT count(*) FROM trial_reports").fetchone()[0] == 1


def test_registry_trial_merges_with_curated_and_links_results_pmid(conn) -> None:
    work = _work(conn, pmid="99999901", title="Results", year=2017, authors=[{"family": "Sun"}])
    load.load_curated_trials(conn, [{"doi": None, "registry_ids": ["NCT01147653"],
                                   "record_type": "registry", "cell_type": "autologous UCB",
                                   "sources": ["https://example.org/reg"]}])
    from tests.replay import fixture_json
    from kb.scrapers.ctgov import to_trial
    trial_id = load.store_registry_trial(conn, to_trial(fixture_json("ctgov", "NCT01147653.json")))
    assert conn.execute("SELECT count(*) FROM trials").fetchone()[0] == 1
    row = _trial(conn, "Sun 2017")
    assert row["id"] == trial_id
    assert (row["cell_product_as_stated"], row["enrollment"], row["status"],
            row["blinding_as_stated"]) == \
        ("autologous UCB", 63, "Completed", "quadruple (participant, care provider, "
                                            "investigator, outcomes assessor)")
    assert (row["cell_product"], row["donor"], row["blinding"]) == \
        (["UCB"], ["autologous"], "quadruple")
    assert row["provenance"]["status"]["source"] == "https://clinicaltrials.gov/study/NCT01147653"
    assert [(r["work_id"], r["provenance"]) for r in row["reports"]] == [(work, "registry")]
    assert [a["type"] for a in row["arms"]] == ["EXPERIMENTAL", "PLACEBO_COMPARATOR"]


def test_registry_only_trial_joins_the_paper_its_title_begins(conn) -> None:
    paper = _work(conn, doi="10.1000/g-csf", year=2017, authors=[{"family": "Rah"}],
                  title="Neuroregenerative potential of intravenous G-CSF and autologous "
                        "peripheral blood stem cells in children with cerebral palsy: a "
                        "randomized, double-blind, cross-over study")
    _work(conn, doi="10.1000/other", title="Neuroregenerative potential of exercise")
    load.load_curated_trials(conn, [
        {"doi": None, "registry_ids": ["NCT00000003"], "record_type": "registry",
         "title": "Neuroregenerative Potential of Intravenous G-CSF and Autologous Peripheral "
                  "Blood Stem Cells", "status": "Completed", "blinding": "quadruple",
         "sources": ["https://example.org/registry"]},
        {"doi": "10.1000/g-csf", "design": "rct", "blinding": "double-blind",
         "sources": ["https://example.org/paper"]}])
    assert conn.execute("SELECT count(*) FROM trials").fetchone()[0] == 2
    annotate(conn)
    assert conn.execute("SELECT count(*) FROM trials").fetchone()[0] == 1
    row = _trial(conn, "Rah 2017")
    assert (row["registry_ids"], row["status"], row["blinding"]) == \
        ("NCT00000003", "Completed", "double-blind")
    assert [(r["work_id"], r["provenance"]) for r in row["reports"]] == [(paper, "curated")]
    annotate(conn)
    assert conn.execute("SELECT count(*) FROM trials").fetchone()[0] == 1


def test_meta_analysis_naming_registry_ids_pools_without_merging_trials(conn) -> None:
    one = _work(conn, pmid="201", year=2013, authors=[{"family": "Min"}],
                title="Cord blood for cerebral palsy: a randomized placebo-controlled trial",
                accessions=[{"bank": "ClinicalTrials.gov", "accession": "NCT00000011"}])
    two = _work(conn, pmid="202", year=2017, authors=[{"family": "Liu"}],
                title="Bone marrow mononuclear cells in cerebral palsy: a randomized trial",
                abstract="Registered at ChiCTR-TRC-12002568.")
    meta = _work(conn, pmid="203", year=2020, authors=[{"family": "Eggenberger"}],
                 title="Stem cells in cerebral palsy: a systematic review and meta-analysis",
                 abstract="We included NCT00000011, ChiCTR-TRC-12002568 and NCT00000099.")
    annotate(conn)
    trials = dict(conn.execute("SELECT key, id FROM trials"))
    assert set(trials) == {"NCT00000011", "ChiCTR-TRC-12002568", "NCT00000099"}
    roles = {(r[0], r[1]) for r in conn.execute("SELECT work_id, role FROM trial_reports")}
    assert roles == {(one, "results"), (two, "results"), (meta, "pooled-analysis")}
    assert conn.execute("SELECT count(*) FROM trial_reports WHERE work_id = ?",
                        (meta,)).fetchone()[0] == 3
    edges = {(r[0], r[1], r[2]) for r in conn.execute(
        "SELECT from_work_id, to_work_id, relation FROM lineage")}
    assert edges == {(meta, one, "pools"), (meta, two, "pools")}


def test_real_pubmed_records_give_retraction_flags_and_no_trial_outside_the_field(runner,
                                                                                 kb_env) -> None:
    """Real efetch XML (tests/fixtures/pubmed/articles.xml) imported as a user would. PMID
    31719001 (coronary angiography) names NCT03935542 in its data-bank list: not a trial of the
    field (no cell product, no cerebral palsy), so no trial."""
    from kb.cli import cli
    from tests.replay import FIXTURES
    result = runner.invoke(cli, ["import", str(FIXTURES / "pubmed" / "articles.xml")])
    assert result.exit_code == 0, result.output
    conn = store.connect(kb_env["KB_DB"])
    annotate(conn)
    flags = {(r[0], r[1]) for r in conn.execute(
        "SELECT w.pmid, f.flag FROM work_flags f JOIN works w ON w.id = f.work_id")}
    assert ("33104149", "retracted") in flags
    reasons = {r[0] for r in conn.execute("SELECT reason FROM work_flags")}
    assert "PubMed type: Retracted Publication" in reasons
    assert "RetractionIn (PMID 34095918) per pubmed" in reasons
    trial = conn.execute("SELECT t.key, w.pmid, r.role, r.reason FROM trials t "
                         "JOIN trial_reports r ON r.trial_id = t.id "
                         "JOIN works w ON w.id = r.work_id").fetchall()
    assert [tuple(t) for t in trial] == []
    assert conn.execute("SELECT accession FROM accessions a JOIN works w ON w.id = a.work_id "
                        "WHERE w.pmid = '31719001'").fetchone()[0] == "NCT03935542"
    designs = dict(conn.execute("SELECT pmid, design_source FROM works WHERE status = 'full'"))
    assert set(designs.values()) <= {"pubtype", "rule"} and None not in designs.values()
    conn.close()


def test_follow_up_by_design_and_citation_and_its_retraction_mark(conn) -> None:
    trial = _work(conn, doi="10.1000/rct", year=2016, authors=[{"family": "Kang"}],
                  title="Umbilical cord blood in cerebral palsy: a randomized placebo-controlled "
                        "trial", updates=[{"kind": "retraction", "direction": "updated-by",
                                           "doi": "10.1000/rct-notice", "source": "crossref"}])
    later = _work(conn, doi="10.1000/fu", year=2021, authors=[{"family": "Kang"}],
                  title="Cord blood infusion for cerebral palsy: 5-year follow-up of an "
                        "open-label extension", references=[{"doi": "10.1000/rct"}])
    unrelated = _work(conn, doi="10.1000/x", year=2022, title="Rehabilitation in cerebral palsy: "
                      "a cohort study", references=[{"doi": "10.1000/rct"}])
    annotate(conn)
    edges = [tuple(r) for r in conn.execute(
        "SELECT from_work_id, to_work_id, relation, reason FROM lineage")]
    assert edges == [(later, trial, "follow_up_of",
                      "follow-up study cites the rct report Kang 2016")]
    marks = dict(conn.execute("SELECT work_id, mark FROM work_marks"))
    assert marks == {trial: "RETRACTED", later: "DEPENDS ON RETRACTED"}
    assert unrelated not in marks


def test_the_store_imports_nothing_of_the_layers_above_it() -> None:
    """The store writes, the evidence layer decides: no module of kb/store imports kb.evidence
    (nor the commands, search or graph that read the store)."""
    import ast

    above = ("kb.evidence", "kb.commands", "kb.query.search", "kb.query.graph", "kb.cli")
    imported = []
    for path in sorted((Path(store.__file__).parent).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = "kb.store" if node.level == 1 else "kb" if node.level == 2 else ""
                name = ".".join(p for p in (base, node.module or "") if p)
                imported += [f"{name}.{a.name}" for a in node.names] if node.module is None \
                    else [name]
            elif isinstance(node, ast.Import):
                imported += [a.name for a in node.names]
    assert imported and not [m for m in imported if m.startswith(above)]
