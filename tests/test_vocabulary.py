"""The controlled vocabulary: every synonym row of its data file, and every fact as the curated
corpus states it, normalised one by one."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kb.ingest import seed as seed_reader
from kb import vocabulary as v

_TERMS = v.terms()
BUNDLED = Path(__file__).resolve().parent.parent / "kb.db"


@pytest.mark.parametrize("term", _TERMS, ids=[f"{t.kind}:{t.term}" for t in _TERMS])
def test_each_synonym_means_its_value(term: v.Term) -> None:
    assert v.normalise(term.kind, term.term) == [term.normalised]


@pytest.mark.parametrize("term", _TERMS, ids=[f"{t.kind}:{t.term}" for t in _TERMS])
def test_each_synonym_is_found_with_words_that_read_as_its_value(term: v.Term) -> None:
    """What a rule stores as stated: the words of the text (here the term), read back as the
    value when its trial is refreshed."""
    found = v.mentions(term.kind, term.term)
    assert [m.value for m in found] == [term.normalised]
    assert found[0].stated in term.term
    assert v.normalise(term.kind, found[0].stated) == [term.normalised]


RECORD = ("Intrathecal autologous umbilical cord blood mononuclear cells in spastic cerebral "
          "palsy: a randomized, double-blind, placebo-controlled trial. Cells were given by "
          "lumbar puncture; the control group received saline. Another 10 children had an IV "
          "infusion of HLA-matched sibling cord blood and usual care.")


@pytest.mark.parametrize("kind, stated", [
    ("product", ["umbilical cord blood mononuclear cells"]),
    ("route", ["Intrathecal", "IV infusion"]),
    ("donor", ["autologous", "sibling"]),
    ("control", ["placebo"]),
    ("blinding", ["double-blind"]),
])
def test_mentions_keep_the_words_of_the_text(kind: str, stated: list[str]) -> None:
    found = v.mentions(kind, RECORD)
    assert [m.stated for m in found] == stated
    assert [m.value for m in found] == v.normalise(kind, RECORD)
    assert v.normalise(kind, "; ".join(stated)) == v.normalise(kind, RECORD)


def test_mentions_in_the_bundled_works_read_back_as_the_same_values() -> None:
    conn = sqlite3.connect(f"file:{BUNDLED}?mode=ro", uri=True)
    texts = [r[0] for r in conn.execute(
        "SELECT coalesce(title, '') || ' ' || coalesce(abstract, '') || ' ' || coalesce("
        "(SELECT group_concat(descriptor, '; ') FROM mesh WHERE work_id = works.id), '') "
        "FROM works")]
    conn.close()
    found = 0
    for text in texts:
        for kind in v.KINDS:
            mentions = v.mentions(kind, text)
            found += len(mentions)
            assert all(m.stated in text for m in mentions), (kind, mentions)
            assert v.normalise(kind, "; ".join(m.stated for m in mentions)) == \
                [m.value for m in mentions], (kind, mentions)
    assert found > 80


@pytest.mark.parametrize("kind, value", [(k, x) for k in v.KINDS for x in v.values(k)])
def test_each_normalised_value_reads_as_itself(kind: str, value: str) -> None:
    """Rule facts are stored normalised, and are normalised again when a trial is refreshed."""
    assert v.normalise(kind, value) == [value]


#: every distinct text of the curated trials (cell_type, cell_type_long, origin, route, control,
#: blinding) as the pages state it, and what it means.
AS_STATED = [
    ('product', 'UCB', ['UCB']),
    ('product', 'NPCs', ['NSC/NPC']),
    ('product', 'hNPCs', ['NSC/NPC']),
    ('product', 'sibling CB', ['UCB']),
    ('product', 'BM-MSC', ['BM-MSC']),
    ('product', 'hWJSC', ['UC-MSC']),
    ('product', 'hESC', ['ESC']),
    ('product', 'FSCs', ['fetal']),
    ('product', 'autologous UCB', ['UCB']),
    ('product', 'donated UCB', ['UCB']),
    ('product', 'autologous UCB or BMMNC', ['UCB', 'BM-MNC']),
    ('product', 'autologous cord blood (red-cell depleted, MNC enriched)', ['UCB-MNC']),
    ('product', 'AlloCB; hCT-MSC', ['UCB', 'UC-MSC']),
    ('product', 'autologous UCB-MNC', ['UCB-MNC']),
    ('product', 'mPBMC', ['PB-MNC']),
    ('product', 'BM-TNC', ['BM-TNC']),
    ('product', 'BM-MNC', ['BM-MNC']),
    ('product', 'CB-MNC', ['UCB-MNC']),
    ('product', 'BM-MSC; BM-MNC', ['BM-MSC', 'BM-MNC']),
    ('product', 'UC-MSC', ['UC-MSC']),
    ('product', 'NSCs', ['NSC/NPC']),
    ('product', 'BMMNC', ['BM-MNC']),
    ('product', 'AD-MSC', ['AD-MSC']),
    ('product', 'ACB', ['UCB']),
    ('product', 'pUCB', ['UCB']),
    ('product', 'CB', ['UCB']),
    ('product', 'UCBSCs', ['UCB']),
    ('product', 'WJ-MSC', ['UC-MSC']),
    ('product', 'hUCB-MSC', ['UCB-MSC']),
    ('product', 'BMSC', ['BM-MSC']),
    ('product', 'NSC-like cells', ['NSC/NPC']),
    ('product', 'UCB-MNC', ['UCB-MNC']),
    ('product', 'BMMC', ['BM-MNC']),
    ('product', 'BMMSC; BMMNC', ['BM-MSC', 'BM-MNC']),
    ('product', 'hUC-MSC', ['UC-MSC']),
    ('product', 'UCT-MSC', ['UC-MSC']),
    ('product', 'UCB-MNC; UCT-MSC', ['UCB-MNC', 'UC-MSC']),
    ('product', 'NS/PCs', ['NSC/NPC']),
    ('product', 'hNSC', ['NSC/NPC']),
    ('product', 'BM + adipose stem cells', ['BM', 'AD-MSC']),
    ('product', 'umbilical cord blood cells', ['UCB']),
    ('product', 'neural progenitor cells derived from aborted fetal tissue', ['NSC/NPC']),
    ('product', 'human neural progenitor cells from 10-12-week fetal forebrain', ['NSC/NPC']),
    ('product', '12/12 HLA-matched sibling cord blood cells, no immune suppression', ['UCB']),
    ('product', 'autologous bone marrow-derived mesenchymal stem cells', ['BM-MSC']),
    ('product', "human Wharton's jelly stem cells", ['UC-MSC']),
    ('product', 'human embryonic stem cells', ['ESC']),
    ('product', 'fetal stem cells', ['fetal']),
    ('product', 'allogeneic umbilical cord blood; human umbilical cord tissue-derived mesenchymal stromal cells', ['UCB', 'UC-MSC']),
    ('product', 'neural stem cell preparation', ['NSC/NPC']),
    ('product', 'autologous bone marrow mononuclear cells', ['BM-MNC']),
    ('product', 'autologous umbilical cord blood (total nucleated cells)', ['UCB-TNC']),
    ('product', 'allogeneic HLA-matched or partially matched sibling umbilical cord blood', ['UCB']),
    ('product', 'allogeneic umbilical cord blood potentiated with recombinant human erythropoietin', ['UCB']),
    ('product', 'autologous bone marrow total nucleated cells after G-CSF stimulation', ['BM-TNC']),
    ('product', 'allogeneic HLA-unmatched AB0/Rh-identical red-cell-depleted umbilical cord blood cells', ['UCB']),
    ('product', '12/12 HLA-matched sibling umbilical cord blood cells', ['UCB']),
    ('product', "umbilical cord mesenchymal stromal cells from the patient's younger sister", ['UC-MSC']),
    ('product', 'autologous cryopreserved cord blood mononuclear cells', ['UCB-MNC']),
    ('product', 'allogeneic umbilical cord blood stem cells', ['UCB']),
    ('product', "allogenic Wharton's jelly mesenchymal stem cells", ['UC-MSC']),
    ('product', 'human umbilical cord blood mesenchymal stem cells', ['UCB-MSC']),
    ('product', 'autologous bone marrow mesenchymal stem cells', ['BM-MSC']),
    ('product', 'autologous umbilical cord blood (cryopreserved units)', ['UCB']),
    ('product', 'neural stem cell-like cells derived from autologous bone marrow mesenchymal stem cells', ['NSC/NPC']),
    ('product', 'umbilical cord blood mononuclear cells', ['UCB-MNC']),
    ('product', 'G-CSF-mobilized autologous peripheral blood mononuclear cells', ['PB-MNC']),
    ('product', 'bone marrow mesenchymal stem cells; bone marrow mononuclear cells', ['BM-MSC', 'BM-MNC']),
    ('product', 'human umbilical cord mesenchymal stem cells', ['UC-MSC']),
    ('product', 'allogeneic umbilical cord blood (HLA >=4/6 matched at A, B, DRB1)', ['UCB']),
    ('product', 'umbilical cord tissue mesenchymal stem cells', ['UC-MSC']),
    ('product', 'neural stem cells loaded on nasal patches', ['NSC/NPC']),
    ('product', 'allogeneic umbilical cord-derived mesenchymal stem cells', ['UC-MSC']),
    ('product', 'bone marrow mononuclear cells', ['BM-MNC']),
    ('product', 'allogenic umbilical cord-derived mesenchymal stem cells', ['UC-MSC']),
    ('product', 'human neural stem/progenitor cells', ['NSC/NPC']),
    ('product', 'human neural stem cells from 10-12-week fetal forebrain', ['NSC/NPC']),
    ('product', 'autologous adult stem cells from bone marrow and fat', ['BM']),
    ('product', 'G-CSF-mobilized peripheral blood mononuclear cells', ['PB-MNC']),
    ('donor', 'allogeneic', ['allogeneic']),
    ('donor', 'autologous', ['autologous']),
    ('route', 'intravenous/intraarterial', ['intravenous', 'intra-arterial']),
    ('route', 'intracerebroventricular (lateral ventricle)', ['intracerebroventricular']),
    ('route', 'intracerebroventricular (ultrasound-guided)', ['intracerebroventricular']),
    ('route', 'intravenous', ['intravenous']),
    ('route', 'intrathecal', ['intrathecal']),
    ('route', 'intrathecal (lumbar puncture)', ['intrathecal']),
    ('route', 'intravenous (infusion)', ['intravenous']),
    ('route', 'intranasal', ['intranasal']),
    ('route', 'intrathecal + intravenous', ['intrathecal', 'intravenous']),
    ('route', 'intravenous + intrathecal', ['intravenous', 'intrathecal']),
    ('route', 'intrathecal (among routes used; others not stated in excerpt)', ['intrathecal']),
    ('route', 'intrathecal (subarachnoid)', ['intrathecal']),
    ('route', 'intrathecal + intravenous + intramuscular', ['intrathecal', 'intravenous', 'intramuscular']),
    ('route', 'intracerebroventricular', ['intracerebroventricular']),
    ('control', 'placebo', ['placebo']),
    ('control', 'control group (not described)', ['unspecified']),
    ('control', 'none', ['none']),
    ('control', 'no cell therapy (control group)', ['no-treatment']),
    ('control', 'one course vs two courses', ['active']),
    ('control', 'conventional treatment only', ['rehabilitation']),
    ('control', 'placebo UCB + placebo EPO + rehabilitation', ['placebo']),
    ('control', 'rehabilitation + injection without cord blood', ['placebo']),
    ('control', 'saline placebo, then cross-over to cells at 1 year', ['placebo']),
    ('control', 'sham (5% dextrose, 1/4 normal saline IV)', ['sham']),
    ('control', 'natural history (AlloCB after 12 months)', ['no-treatment']),
    ('control', '0.9% sodium chloride', ['placebo']),
    ('control', 'no intervention, then cross-over to cells', ['no-treatment']),
    ('control', 'none (single group)', ['none']),
    ('control', 'none (single arm)', ['none']),
    ('control', 'standard therapy', ['rehabilitation']),
    ('control', 'conventional treatment', ['rehabilitation']),
    ('control', 'placebo + routine rehabilitation', ['placebo']),
    ('control', 'placebo (placebo UCB + placebo rhEPO) with rehabilitation', ['placebo']),
    ('control', 'none (daily rehabilitation)', ['none']),
    ('control', 'none (all received rehabilitation)', ['none']),
    ('control', 'placebo (0.9% normal saline) + basic rehabilitation', ['placebo']),
    ('control', 'rehabilitation only', ['rehabilitation']),
    ('control', 'sham', ['sham']),
    ('control', 'placebo infusion (cross-over at 7 months)', ['placebo']),
    ('control', 'Bobath therapy', ['rehabilitation']),
    ('control', 'placebo + rehabilitation', ['placebo']),
    ('control', 'placebo UCB + placebo EPO', ['placebo']),
    ('control', 'Bobath therapy (twice a day for 3 weeks)', ['rehabilitation']),
    ('control', 'normal saline placebo (groups switched after 6 months)', ['placebo']),
    ('blinding', 'double-blind', ['double-blind']),
    ('blinding', 'quadruple (participant, care provider, investigator, outcomes assessor)', ['quadruple']),
    ('blinding', 'blinded (patients, caregivers, researchers)', ['blinded']),
    ('blinding', 'triple (participant, care provider, outcomes assessor)', ['triple']),
    ('blinding', 'quadruple', ['quadruple']),
    ('blinding', 'single (outcomes assessor)', ['single']),
    ('blinding', 'single', ['single']),
    ('blinding', 'none', ['open-label']),
    ('blinding', 'open-label', ['open-label']),
    ('blinding', 'observer-blinded (open-label)', ['single']),
    ('blinding', 'blinded (level not stated in abstract)', ['blinded']),
]


@pytest.mark.parametrize("kind, text, expected", AS_STATED)
def test_corpus_texts_as_stated(kind: str, text: str, expected: list[str]) -> None:
    assert v.normalise(kind, text) == expected


def test_every_seed_fact_is_in_the_vocabulary() -> None:
    """A curated text the vocabulary cannot read fails here, naming it."""
    fields = {"cell_type": "product", "cell_type_long": "product", "origin": "donor",
              "route": "route", "control": "control", "blinding": "blinding"}
    unread = [(field, entry[field]) for entry in seed_reader.read_trials()
              for field, kind in fields.items()
              if entry.get(field) and not v.normalise(kind, entry[field])]
    assert unread == []


def test_trial_facts_refine_a_generic_product_and_read_the_donor_from_the_cell_text() -> None:
    facts = v.normalise_trial({"cell_type": "sibling CB", "origin": "allogeneic",
                               "cell_type_long": "12/12 HLA-matched sibling umbilical cord "
                                                 "blood cells", "route": "intravenous"})
    assert (facts["cell_product"], facts["donor"], facts["route"]) == \
        (["UCB"], ["sibling"], ["intravenous"])
    assert facts["donor_as_stated"] == "allogeneic"
    refined = v.normalise_trial({"cell_type": "autologous UCB",
                                 "cell_type_long": "autologous umbilical cord blood (total "
                                                   "nucleated cells)"})
    assert refined["cell_product"] == ["UCB-TNC"] and refined["route"] == [v.NOT_REPORTED]
    assert refined["route_as_stated"] is None and refined["control"] is None
    unknown = v.normalise_trial({"cell_type": "dendritic cells", "route": "subcutaneous"})
    assert unknown["cell_product"] == [v.OTHER] and unknown["route"] == [v.OTHER]


def test_a_curator_row_without_a_pattern_matches_its_words_loosely() -> None:
    term = v.Term("product", "UCB-MNC", "cord blood MNC", "")
    import re
    pattern = re.compile(term.regex, re.I)
    assert pattern.search("the Cord-Blood MNCs were thawed")
    assert not pattern.search("cord bloodMNCx")


def test_screening_pattern_finds_every_synonym() -> None:
    import re
    pattern = re.compile(v.screening_pattern("product"), re.I)
    assert all(pattern.search(t.term) for t in _TERMS if t.kind == "product")
    assert not pattern.search("stem cell therapy for cerebral palsy")


def test_bad_rows_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fake:
        def __init__(self, text: str) -> None:
            self.text = text

        def joinpath(self, _: str) -> "Fake":
            return self

        def read_text(self, encoding: str) -> str:
            return self.text

    for text, message in (("kind,normalised,term,pattern\ncell,UCB,cord blood,\n", "kind"),
                          ("kind,normalised,term,pattern\nproduct,UCB,cord blood,(\n", "pattern"),
                          ("kind,normalised,term,pattern\nroute,intrathecal,IT,\n"
                           "route,intravenous,IT,\n", "twice")):
        monkeypatch.setattr(v.resources, "files", lambda _: Fake(text))
        v.terms.cache_clear()
        try:
            with pytest.raises(ValueError, match=message):
                v.terms()
        finally:
            monkeypatch.undo()
            v.terms.cache_clear()


def test_caption() -> None:
    assert v.trial_caption("Zarrabi 2022", ["UCB-MNC"], ["intrathecal", "intravenous"], 72) == \
        "Zarrabi 2022 · UCB-MNC · IT+IV · n=72"
