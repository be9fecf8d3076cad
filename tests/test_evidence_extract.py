"""The rule extractor and design classifier on PubMed-shaped records written for these tests.

The records imitate how cell-therapy-for-CP abstracts are worded; they are not the curated
corpus answers (the benchmark in bench/bench_extraction.py measures against those).
"""
from __future__ import annotations

import json

import pytest

from kb.evidence.design import classify_design, design_from_text
from kb.evidence.extract import (canonical_age_range, canonical_blinding, canonical_cell_types,
                                 canonical_control, canonical_outcomes, canonical_routes,
                                 extract_facts, find_doses, find_follow_up, find_n)
from kb.identifiers import find_registry_ids, registry_of

RCT = {
    "title": "Intrathecal Wharton's jelly mesenchymal stem cells for children with spastic "
             "cerebral palsy: a randomised, double-blind, sham-controlled trial",
    "abstract": (
        "BACKGROUND: Cell therapy is a candidate treatment for cerebral palsy (CP). "
        "METHODS: Eighty-four children aged 3 to 12 years with spastic CP were randomly assigned "
        "to the WJ-MSC group (n = 42) or the sham group (n = 42). Patients received a single "
        "intrathecal injection of 1 × 10^6 cells/kg by lumbar puncture or a sham procedure, in "
        "addition to rehabilitation. Outcomes were the Gross Motor Function Measure-66 "
        "(GMFM-66), the Pediatric Evaluation of Disability Inventory (PEDI), the Modified "
        "Ashworth Scale and fractional anisotropy on diffusion tensor imaging. Children were "
        "followed up at 1, 3, 6 and 12 months. Adverse events were recorded. "
        "Trial registration: IRCT20200217046526N2; ClinicalTrials.gov NCT04314687."),
    "mesh": ["Cerebral Palsy", "Child", "Child, Preschool", "Humans", "Injections, Spinal",
             "Mesenchymal Stem Cell Transplantation", "Wharton Jelly"],
    "publication_types": ["Journal Article", "Randomized Controlled Trial"],
}
OPEN_LABEL = {
    "title": "Autologous bone marrow mononuclear cells in cerebral palsy: an open-label, "
             "single-arm phase I study",
    "abstract": ("Twenty-five patients with cerebral palsy were enrolled. Autologous BMMNCs were "
                 "injected intrathecally; patients were evaluated after 6 months with GMFM-88 and "
                 "WeeFIM. Registered with the Clinical Trials Registry-India (CTRI/2014/05/004611)."),
    "mesh": ["Bone Marrow Transplantation", "Cerebral Palsy", "Humans", "Transplantation, Autologous"],
    "publication_types": ["Clinical Trial, Phase I", "Journal Article"],
}
CASE_SERIES = {
    "title": "Allogeneic umbilical cord blood infusions in 14 children with dyskinetic cerebral "
             "palsy: a case series",
    "abstract": ("A total of 14 children (2-8 years old) received intravenous infusions of HLA-matched "
                 "sibling cord blood. CP-QoL and GMFCS levels were recorded over a 24-month "
                 "follow-up."),
    "mesh": ["Cerebral Palsy", "Cord Blood Stem Cell Transplantation", "Humans"],
    "publication_types": ["Journal Article"],
}


def _facts(record: dict) -> dict:
    return extract_facts(record["title"], record["abstract"], record["mesh"])


def test_rct_abstract_gives_every_field() -> None:
    facts = _facts(RCT)
    assert facts["registry_ids"] == ["IRCT20200217046526N2", "NCT04314687"]
    assert facts["cell_type"] == ["Wharton's jelly mesenchymal stem cells"]
    assert facts["route"] == ["Intrathecal"]
    assert facts["n_randomised"] == 84
    assert facts["arms"] == [{"name": "WJ-MSC", "n": 42}, {"name": "sham", "n": 42}]
    assert facts["age_range"] == "3-12 years"
    assert facts["blinding"] == "double-blind"
    assert facts["control"] == "sham"
    assert facts["outcomes"] == ["GMFM-66", "PEDI", "MAS", "DTI", "adverse events"]
    assert facts["follow_up_months"] == [1.0, 3.0, 6.0, 12.0]
    assert facts["dose"].startswith("1 × 10^6 cells/kg")
    assert "origin" not in facts


def test_open_label_trial_with_ctri_id() -> None:
    facts = _facts(OPEN_LABEL)
    assert facts["registry_ids"] == ["CTRI/2014/05/004611"]
    assert facts["cell_type"] == ["bone marrow mononuclear cells"]
    assert facts["origin"] == "Autologous"
    assert facts["route"] == ["intrathecally"]
    assert facts["n_treated"] == 25
    assert facts["outcomes"] == ["GMFM-88", "WeeFIM"]
    assert facts["follow_up_months"] == [6.0]
    assert facts["blinding"] == "open-label"
    assert facts["control"] == "single-arm"


def test_case_series_sibling_cord_blood() -> None:
    facts = _facts(CASE_SERIES)
    assert facts["cell_type"] == ["umbilical cord blood"]
    assert facts["origin"] == "sibling"
    assert facts["route"] == ["intravenous"]
    assert facts["n_treated"] == 14
    assert facts["age_range"] == "2-8 years"
    assert facts["follow_up_months"] == [24.0]
    assert facts["outcomes"] == ["CP-QoL", "GMFCS"]


def test_text_without_trial_facts_gives_nothing_false() -> None:
    facts = extract_facts("Cerebral palsy: classification and epidemiology",
                          "We review how cerebral palsy is defined, classified and counted in "
                          "population registers across Europe.", ["Cerebral Palsy", "Humans"])
    assert facts == {}


@pytest.mark.parametrize("text, expected", [
    ("human umbilical cord blood mononuclear cells (hUCB-MNC)", ["UCB-MNC"]),
    ("umbilical cord tissue-derived mesenchymal stromal cells (hCT-MSC)", ["UC-MSC"]),
    ("UCT-MSCs were thawed", ["UC-MSC"]),
    ("bone marrow-derived mesenchymal stem cells and bone marrow mononuclear cells",
     ["BM-MSC", "BM-MNC"]),
    ("adipose-derived stromal cells", ["AD-MSC"]),
    ("olfactory ensheathing cells", ["OEC"]),
    ("neural progenitor cells from fetal tissue", ["NSC/NPC"]),
    ("G-CSF mobilized peripheral blood mononuclear cells (mPBMC)", ["PB-MNC"]),
    ("CD34+ selected cells", ["CD34+"]),
    ("mesenchymal stem cells", ["MSC"]),
    ("stem cell therapy for cerebral palsy", []),
    ("the MSCs of umbilical cord origin: umbilical cord mesenchymal stem cells", ["UC-MSC"]),
])
def test_cell_type_lexicon(text: str, expected: list[str]) -> None:
    assert canonical_cell_types(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("injected into the lateral ventricle under ultrasound guidance", ["intracerebroventricular"]),
    ("intranasal administration of neural stem cells", ["intranasal"]),
    ("intra-arterial infusion", ["intra-arterial"]),
    ("stereotactic intracerebral implantation", ["intracerebral"]),
    ("intrathecal injection plus intramuscular injections", ["intrathecal", "intramuscular"]),
    ("the intrathecal infusion", ["intrathecal"]),
    ("no route named here", []),
])
def test_routes(text: str, expected: list[str]) -> None:
    assert canonical_routes(text) == expected


def test_blinding_control_and_outcome_forms() -> None:
    assert canonical_blinding("a randomized, triple-blind trial") == "triple"
    assert canonical_blinding("assessor-blinded outcome measurement") == "single"
    assert canonical_blinding("an open label study") == "open-label"
    assert canonical_control("placebo-controlled") == "placebo"
    assert canonical_control("compared with rehabilitation alone") == "rehabilitation"
    assert canonical_control("an uncontrolled study") == "none"
    assert canonical_outcomes("GMFM-88 and Wee-FIM; Bayley scales; the Peabody scales") == \
        ["GMFM-88", "WeeFIM", "BSID", "PDMS"]


def test_numbers_ages_and_follow_up() -> None:
    assert find_n("One hundred and five patients were randomized into three groups") == \
        {"n_randomised": 105}
    assert find_n("We report 3 patients.") == {}
    assert canonical_age_range("children between 2 and 10 years of age") == "2-10 years"
    assert canonical_age_range("aged 6 months to 20 years") == "6 months-20 years"
    assert find_follow_up("with a 2-year follow-up") == [24.0]
    assert find_follow_up("Follow-up lasted for 18 months") == [18.0]


def test_registry_ids() -> None:
    text = ("ChiCTR-TRC-12002568, ISRCTN12345678, KCT0001234, ACTRN12616000403437 and "
            "nct01147653; not NCT123 or IRCT")
    assert find_registry_ids(text) == ["ChiCTR-TRC-12002568", "ISRCTN12345678", "KCT0001234",
                                       "ACTRN12616000403437", "NCT01147653"]
    assert registry_of("KCT0001234") == "CRiS"
    assert registry_of("ACTRN12616000403437") == "ANZCTR"
    assert extract_facts("A trial", accessions=["NCT01147653"])["registry_ids"] == ["NCT01147653"]


def test_data_bank_accessions_that_are_not_trials_are_ignored() -> None:
    # PubMed's DataBankList also carries GenBank, PDB, ... accessions (seen in pubmed20n0014)
    facts = extract_facts("Sequence of a gene", accessions=["J02203", "1ABC", "NCT01147653"])
    assert facts["registry_ids"] == ["NCT01147653"]
    assert "registry_ids" not in extract_facts("Sequence of a gene", accessions=["J02203"])


@pytest.mark.parametrize("record, expected", [
    (RCT, ("rct", "pubtype")),
    (OPEN_LABEL, ("open-label-trial", "pubtype")),
    (CASE_SERIES, ("case-series", "rule")),
])
def test_design_from_records(record: dict, expected: tuple[str, str]) -> None:
    assert classify_design(record["title"], record["abstract"], record["publication_types"],
                           record["mesh"]) == expected


def test_design_rules_and_sources() -> None:
    assert classify_design("Cord blood cells in a neonatal rat model of hypoxic-ischemic injury",
                           None, ["Journal Article"], ["Animals", "Rats"]) == ("preclinical", "pubtype")
    assert classify_design("Stem cells for CP", None, ["Journal Article", "Meta-Analysis",
                                                       "Systematic Review"]) == ("meta-analysis", "pubtype")
    assert classify_design("Fresh insights: cell therapy for cerebral palsy",
                           work_type="web-article") == ("web-article", "rule")
    assert classify_design(None) is None
    assert design_from_text("Single group multisite safety trial of sibling cord blood cell "
                            "infusion: study protocol and rationale") == "protocol"
    assert design_from_text("Pooled analysis of two randomized trials of cord blood") == \
        "pooled-analysis"
    assert design_from_text("Therapeutic potential of umbilical cord mesenchymal stromal cells "
                            "transplantation for cerebral palsy: a case report") == "case-report"
    assert design_from_text("Effect of X: A Randomized, Placebo-Controlled Trial") == "rct"


@pytest.mark.parametrize("text, n, age, dose, follow_up", [
    ("A total of 105 patients with spastic CP were randomly divided into three groups.",
     {"n_randomised": 105}, None, [], []),
    ("Seventy-two children (36 in the UCB-MNC group and 36 in the control group) were enrolled.",
     {"n_treated": 72}, None, [], []),
    ("54 children with CP were enrolled and randomly allocated to two arms.",
     {"n_randomised": 54}, None, [], []),
    ("Patients (age range, 2-10 years) received 2 × 10(7) cells intrathecally.",
     {}, "2-10 years", [(2e7, False)], []),
    ("Assessments were performed at baseline, 1, 3, 6 and 12 months after treatment.",
     {}, None, [], [1.0, 3.0, 6.0, 12.0]),
    ("Cord blood was collected 9 weeks after the injury; the trial enrolled 63 children.",
     {"n_treated": 63}, None, [], []),
])
def test_abstract_phrasings(text: str, n: dict, age: str | None, dose: list, follow_up: list) -> None:
    assert find_n(text) == n
    assert canonical_age_range(text) == age
    assert find_doses(text) == dose
    assert find_follow_up(text) == follow_up


PUBMED_RCT = """<?xml version="1.0" encoding="utf-8"?>
<PubmedArticleSet><PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM">
<PMID Version="1">39990001</PMID><Article PubModel="Print"><Journal><JournalIssue>
<PubDate><Year>2024</Year></PubDate></JournalIssue><Title>Stem cell research</Title></Journal>
<ArticleTitle>Umbilical cord blood mononuclear cells for spastic cerebral palsy: a randomized,
double-blind, sham-controlled trial.</ArticleTitle>
<Abstract><AbstractText>Seventy-two children aged 4 to 14 years were randomly assigned to the
UCB-MNC group (n = 36) or the sham group (n = 36). Allogeneic cells from unrelated donors were
given by lumbar puncture. GMFM-66 was assessed at 12 months.</AbstractText></Abstract>
<ELocationID EIdType="doi" ValidYN="Y">10.5555/as-stated.rct</ELocationID>
<PublicationTypeList><PublicationType UI="D016449">Randomized Controlled Trial
</PublicationType></PublicationTypeList></Article></MedlineCitation></PubmedArticle>
</PubmedArticleSet>
"""


def test_rule_facts_keep_the_words_the_record_states(runner, tmp_path) -> None:
    from kb.cli import cli

    records = tmp_path / "records.xml"
    records.write_text(PUBMED_RCT, encoding="utf-8")
    db = str(tmp_path / "kb.db")
    assert runner.invoke(cli, ["--db", db, "import", str(records)]).exit_code == 0
    result = runner.invoke(cli, ["--db", db, "evidence", "--format", "json"])
    assert result.exit_code == 0, result.output
    [trial] = json.loads(result.output)
    assert (trial["cell_product"], trial["cell_product_as_stated"]) == \
        (["UCB-MNC"], "Umbilical cord blood mononuclear cells")
    assert (trial["route"], trial["route_as_stated"]) == (["intrathecal"], "lumbar puncture")
    assert (trial["donor"], trial["donor_as_stated"]) == (["allogeneic"], "Allogeneic")
    assert (trial["control"], trial["control_as_stated"]) == ("sham", "sham")
    assert (trial["blinding"], trial["blinding_as_stated"]) == ("double-blind", "double-blind")
