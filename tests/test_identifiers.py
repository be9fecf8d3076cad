"""Identifier normalisation on the forms people really paste, and rejection of look-alikes."""
from __future__ import annotations


import pytest

from kb import identifiers
from kb.errors import InputError
from kb.identifiers import classify, find_dois, normalize_doi, parse_identifier

DOI_FORMS = [
    ("10.1186/s13287-021-02513-4", "10.1186/s13287-021-02513-4"),
    ("10.1186/S13287-021-02513-4", "10.1186/s13287-021-02513-4"),
    ("https://doi.org/10.1186/s12883-022-02636-y", "10.1186/s12883-022-02636-y"),
    ("http://doi.org/10.1186/s12883-022-02636-y", "10.1186/s12883-022-02636-y"),
    ("http://dx.doi.org/10.3389/fbioe.2022.1006845", "10.3389/fbioe.2022.1006845"),
    ("https://www.doi.org/10.3389/fbioe.2022.1006845", "10.3389/fbioe.2022.1006845"),
    ("doi:10.22074/cellj.2024.2032098.1600", "10.22074/cellj.2024.2032098.1600"),
    ("DOI: 10.22074/cellj.2024.2032098.1600", "10.22074/cellj.2024.2032098.1600"),
    ("doi 10.4252/wjsc.v11.i10.891", "10.4252/wjsc.v11.i10.891"),
    ("  10.4252/wjsc.v11.i10.891.  ", "10.4252/wjsc.v11.i10.891"),
    ("10.4252/wjsc.v11.i10.891,", "10.4252/wjsc.v11.i10.891"),
    ("(10.1001/archpedi.161.11.1075)", None),  # a leading bracket is not a DOI
    ("https://doi.org/10.22074%2Fcellj.2024.2032098.1600", "10.22074/cellj.2024.2032098.1600"),
    ("10.1002/(SICI)1097-4636(199706)35:4<491::AID-JBM9>3.0.CO;2-E",
     "10.1002/(sici)1097-4636(199706)35:4<491::aid-jbm9>3.0.co;2-e"),
    ("doi:10.1002/(SICI)1522-2594(199911)42:5<952::AID-MRM16>3.0.CO;2-S).",
     "10.1002/(sici)1522-2594(199911)42:5<952::aid-mrm16>3.0.co;2-s"),
    ("urn:doi:10.1016/j.jcyt.2022.01.003", "10.1016/j.jcyt.2022.01.003"),
    ("info:doi/10.1016/j.jcyt.2022.01.003", "10.1016/j.jcyt.2022.01.003"),
    ("10.1016/S0140-6736(20)30183-5", "10.1016/s0140-6736(20)30183-5"),
]


@pytest.mark.parametrize(("text", "expected"), DOI_FORMS)
def test_doi_forms(text: str, expected: str | None) -> None:
    assert normalize_doi(text) == expected


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("34362453", "pmid", "34362453"),
    ("PMID: 34362453", "pmid", "34362453"),
    ("pmid:36588957", "pmid", "36588957"),
    ("https://pubmed.ncbi.nlm.nih.gov/36588957/", "pmid", "36588957"),
    ("https://www.ncbi.nlm.nih.gov/pubmed/36588957", "pmid", "36588957"),
    ("PMC8343813", "pmcid", "PMC8343813"),
    ("pmc8343813", "pmcid", "PMC8343813"),
    ("https://www.ncbi.nlm.nih.gov/pmc/articles/PMC9794999/", "pmcid", "PMC9794999"),
    ("https://pmc.ncbi.nlm.nih.gov/articles/PMC9794999/", "pmcid", "PMC9794999"),
    ("W2741809807", "openalex", "W2741809807"),
    ("https://openalex.org/W2741809807", "openalex", "W2741809807"),
    ("https://doi.org/10.3389/fbioe.2022.1006845", "doi", "10.3389/fbioe.2022.1006845"),
    ("https://cells4life.com/2025/03/fresh-insights-cell-therapy-cerebral-palsy", "url",
     "https://cells4life.com/2025/03/fresh-insights-cell-therapy-cerebral-palsy"),
])
def test_classify(text: str, kind: str, value: str) -> None:
    assert classify(text) == (kind, value)


@pytest.mark.parametrize("text", [
    "", "   ", "10.1234", "10.12/abc", "11.1186/s13287-021-02513-4", "doi:", "0", "PMC0",
    "1234567890", "pmid:abc", "ftp://example.org/x", "W12x", "cerebral palsy", "10.1186 /s1",
])
def test_look_alikes_are_rejected(text: str) -> None:
    assert classify(text) is None
    with pytest.raises(InputError, match="not a DOI"):
        parse_identifier(text)


def test_find_dois_in_a_reference_list() -> None:
    text = ("[4] Amanat, M., et al. (2021). Stem Cell Research & Therapy, 12(1). "
            "doi:https://doi.org/10.1186/s13287-021-02513-4.\n"
            "[5] Zarrabi, M., et al. (2022). BMC Neurology, 22(1). "
            "doi:https://doi.org/10.1186/s12883-022-02636-y.")
    assert find_dois(text) == ["10.1186/s13287-021-02513-4", "10.1186/s12883-022-02636-y"]
