"""The streaming PubMed XML parser on real records (tests/fixtures/pubmed/README.md)."""
from __future__ import annotations

import gzip
import io
import time

import pytest

from kb.errors import ParseError
from kb.scrapers.pubmed_xml import Deletion, is_pubmed_xml, parse_pubmed_xml
from tests.replay import FIXTURES

PUBMED = FIXTURES / "pubmed"


@pytest.fixture(scope="module")
def records() -> dict[str, dict]:
    return {r["pmid"]: r for r in parse_pubmed_xml(PUBMED / "articles.xml")}


def test_every_record_is_read_in_order(records: dict[str, dict]) -> None:
    assert list(records) == ["39345789", "34843274", "20301546", "31359772", "32773712",
                             "31719001", "33104149", "30600808"]
    assert all(r["source"] == "pubmed" and r["source_id"] == r["pmid"] for r in records.values())
    assert all("raw" not in r for r in records.values())


def test_article_fields(records: dict[str, dict]) -> None:
    r = records["39345789"]
    assert r["doi"] == "10.1093/jamiaopen/ooae099"
    assert r["pmcid"] == "PMC11430916"
    assert r["title"] == "VMAP: Vaginal Microbiome Atlas during Pregnancy."
    assert (r["journal"], r["journal_abbrev"], r["issn"]) == ("JAMIA open", "JAMIA Open",
                                                              "2574-2531")
    assert (r["volume"], r["issue"], r["pages"]) == ("7", "3", "ooae099")
    assert (r["year"], r["pub_date"], r["language"]) == (2024, "2024-10", "eng")
    assert r["type"] == "journal-article"
    assert r["publication_types"] == ["Journal Article"]
    assert r["keywords"] == ["16S rRNA sequencing", "bioinformatics", "data integration",
                             "microbiome", "visualization"]


def test_structured_abstract_keeps_section_labels(records: dict[str, dict]) -> None:
    paragraphs = records["39345789"]["abstract"].split("\n")
    assert [p.split(":")[0] for p in paragraphs] == [
        "OBJECTIVES", "MATERIAL AND METHODS", "RESULTS", "DISCUSSION", "CONCLUSION"]
    assert paragraphs[0].startswith("OBJECTIVES: To enable interactive visualization")
    unlabelled = records["34843274"]["abstract"]
    assert unlabelled.startswith("The American Psychological Association (APA) developed")


def test_authors_orcid_affiliations_and_collective_names(records: dict[str, dict]) -> None:
    first = records["39345789"]["authors"][0]
    assert (first["family"], first["given"]) == ("Parraga-Leo", "Antonio")
    assert "orcid" not in first
    minot = next(a for a in records["39345789"]["authors"] if a["family"] == "Minot")
    assert (minot["given"], minot["orcid"]) == ("Samuel S", "0000-0003-1639-3905")
    assert first["affiliation"].count("; ") == 4  # five AffiliationInfo, in order
    assert first["affiliation"].startswith("Bakar Computational Health Sciences Institute")
    assert records["34843274"]["authors"] == [
        {"name": "Guideline Development Panel for the Treatment of Depressive Disorders"}]


def test_mesh_rows_per_descriptor_and_qualifier(records: dict[str, dict]) -> None:
    mesh = records["34843274"]["mesh"]
    assert {"descriptor": "Adolescent", "descriptor_ui": "D000293", "qualifier": None,
            "major": False} in mesh
    depression = [m for m in mesh if m["descriptor"] == "Depression"]
    assert depression == [{"descriptor": "Depression", "descriptor_ui": "D003863",
                           "qualifier": "therapy", "major": True}]


def test_references_with_article_ids(records: dict[str, dict]) -> None:
    refs = records["39345789"]["references"]
    assert len(refs) == 18
    assert [r["position"] for r in refs] == list(range(1, 19))
    assert refs[0] == {
        "unstructured": "Hyman RW, Fukushima M, Jiang H, et al.Diversity of the vaginal "
                        "microbiome correlates with preterm birth. Reprod Sci. 2014;21:32-40. "
                        "10.1177/1933719113488838",
        "doi": "10.1177/1933719113488838", "pmcid": "PMC3857766", "pmid": "23715799",
        "position": 1}
    text_only = records["32773712"]["references"][0]
    assert set(text_only) == {"unstructured", "position"}


def test_updates_retraction_and_new_version(records: dict[str, dict]) -> None:
    assert records["39345789"]["updates"] == [
        {"kind": "new-version", "direction": "update-to", "pmid": "36993193",
         "doi": "10.1101/2023.03.21.23286947", "label": "UpdateOf", "source": "pubmed"}]
    retracted = records["33104149"]
    assert retracted["is_retracted"] is True
    assert "Retracted Publication" in retracted["publication_types"]
    assert retracted["updates"][0]["kind"] == "retraction"
    assert retracted["updates"][0]["direction"] == "updated-by"
    assert retracted["updates"][0]["pmid"] == "34095918"
    assert "is_retracted" not in records["39345789"]


def test_inline_markup_medline_date_databank_vernacular(records: dict[str, dict]) -> None:
    assert records["31359772"]["title"] == ("Isolation of cytotoxic sesquiterpene lactones from "
                                            "the Tanacetopsis karataviensis (Kovalevsk.) "
                                            "Kovalevsk.")
    assert (records["32773712"]["year"], records["32773712"]["pub_date"]) == (2020, "2020-07")
    assert records["31719001"]["accessions"] == [{"bank": "ClinicalTrials.gov",
                                                  "accession": "NCT03935542"}]
    assert records["31719001"]["pub_date"] == "2020-10-09"
    assert records["30600808"]["language"] == "spa"
    assert records["30600808"]["title"].startswith("[Valor predictivo de la procalcitonina")


def test_book_article(records: dict[str, dict]) -> None:
    book = records["20301546"]
    assert book["type"] == "book-chapter"
    assert book["journal"] == "GeneReviews®"
    assert book["title"] == ("Hereditary Motor and Sensory Neuropathy with Agenesis of the "
                             "Corpus Callosum")
    assert book["publisher"] == "University of Washington, Seattle"
    assert [a["family"] for a in book["authors"]] == ["Gauvreau", "Brisson", "Dupré"]
    assert book["abstract"].startswith("CLINICAL CHARACTERISTICS: Hereditary motor")
    assert len(book["references"]) == 16
    assert book["publication_types"] == ["Review"]  # directly under BookDocument
    assert book["references"][0]["pmid"] == "26392352"


def test_update_file_yields_deletions_last() -> None:
    items = list(parse_pubmed_xml(PUBMED / "update.xml.gz"))
    assert [i["pmid"] for i in items[:2]] == ["34017925", "38534005"]
    assert items[2:] == [Deletion("34843274"), Deletion("31688362")]


def test_bytes_file_objects_and_raw() -> None:
    data = (PUBMED / "efetch.xml").read_bytes()
    from_path = list(parse_pubmed_xml(PUBMED / "efetch.xml"))
    assert list(parse_pubmed_xml(data)) == from_path
    assert list(parse_pubmed_xml(io.BytesIO(gzip.compress(data)))) == from_path
    with_raw = list(parse_pubmed_xml(data, raw=True))
    assert with_raw[0]["raw"].startswith("<PubmedArticle>")
    assert "<PMID Version=\"1\">39345789</PMID>" in with_raw[0]["raw"]
    assert with_raw[0]["raw"].rstrip().endswith("</PubmedArticle>")


@pytest.mark.parametrize("name", ["malformed.xml", "truncated.xml", "truncated.xml.gz"])
def test_broken_files_raise_parse_error(name: str) -> None:
    with pytest.raises(ParseError, match=name.replace(".", r"\.")):
        list(parse_pubmed_xml(PUBMED / name))


@pytest.mark.parametrize("name", ["billion_laughs.xml", "external_entity.xml"])
def test_entity_declarations_are_refused_quickly(name: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ParseError, match="entities"):
        next(parse_pubmed_xml(PUBMED / name))
    assert time.perf_counter() - started < 1.0


def test_long_internal_subset_is_refused() -> None:
    padding = "<!-- " + "x" * 70000 + " -->"
    doc = f'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [{padding}<!ENTITY a "b">]>' \
          "<PubmedArticleSet/>"
    with pytest.raises(ParseError, match="internal subset"):
        list(parse_pubmed_xml(doc.encode()))


def test_other_xml_is_not_pubmed() -> None:
    with pytest.raises(ParseError, match="not PubMed XML"):
        list(parse_pubmed_xml(b"<?xml version='1.0'?><eSearchResult><Count>0</Count>"
                              b"</eSearchResult>"))
    assert not is_pubmed_xml(b"<rss><channel/></rss>")
    assert is_pubmed_xml(gzip.compress((PUBMED / "efetch.xml").read_bytes()))
