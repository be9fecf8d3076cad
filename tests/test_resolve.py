"""Reference resolution: ids printed in references, fuzzy links on real reference strings
(precision measured on a labelled set), duplicate merges, multi-source edge dedup, the CLI."""
from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from kb import store
from kb.cli import cli
from kb.ingest.resolve import (THRESHOLD, Candidate, normalize_reference, normalize_text, resolve,
                              score)
from tests.replay import fixture_json

_IDS = re.compile(r"(?:doi\s*:\s*)?(?:https?://(?:dx\.)?doi\.org/)?\b10\.\d{4,9}/\S+"
                  r"|\bPMID\s*:?\s*\d+\.?|\bPMCID\s*:?\s*(?:PMC)?\d+\.?|https?://\S+|\bDOI\s*:",
                  re.I)


def _strip_ids(text: str) -> str:
    """The reference with every DOI, PMID, PMCID and URL removed (forces a fuzzy match)."""
    return " ".join(_IDS.sub(" ", text).split())


def _corpus_kb(path: Path, held_out: set[str] = frozenset()) -> tuple[sqlite3.Connection,
                                                                       dict[int, str]]:
    """A KB of the curated corpus works (title, year, first author, ids); work id -> corpus id."""
    conn = store.connect(path)
    keys = {}
    for work in fixture_json("resolve", "works.json"):
        if work["id"] in held_out:
            continue
        record = {"source": "corpus", "title": work["title"], "year": work["year"]}
        record.update({k: work[k] for k in ("doi", "pmid", "url") if work[k]})
        if work["first_author"]:
            record["authors"] = [work["first_author"]]
        keys[store.upsert_work(conn, record).work_id] = work["id"]
    return conn, keys


def _labelled() -> tuple[list[tuple[str, str | None, str]], set[str]]:
    data = fixture_json("resolve", "references.json")
    labelled = [(r["text"], r["expected"], r["style"]) for r in data["references"]]
    labelled += [(c["citation"], None, "pubmed-citation")
                 for c in fixture_json("resolve", "pubmed_citations.json")]
    return labelled, set(data["held_out"])


def _cite_each(conn: sqlite3.Connection, texts: list[str]) -> list[int]:
    """One synthetic citing work per reference (so equal edges never fold); citation ids."""
    ids = []
    for number, text in enumerate(texts, 1):
        citing = store.upsert_work(conn, {
            "source": "import", "doi": f"10.5555/kb.resolve.{number}",
            "title": f"Synthetic citing work {number}",
            "references": [{"position": 1, "unstructured": text}]}).work_id
        ids.append(conn.execute("SELECT id FROM citations WHERE citing_id = ?",
                                (citing,)).fetchone()[0])
    return ids


def test_fuzzy_link_precision_on_real_reference_strings(tmp_path: Path) -> None:
    labelled, held_out = _labelled()
    conn, keys = _corpus_kb(tmp_path / "kb.db", held_out)
    citation_ids = _cite_each(conn, [_strip_ids(text) for text, _, _ in labelled])
    report = resolve(conn)

    linked = correct = missed = 0
    wrong = []
    for citation_id, (text, expected, style) in zip(citation_ids, labelled):
        row = conn.execute("SELECT cited_id, resolved_by, match_score FROM citations "
                           "WHERE id = ?", (citation_id,)).fetchone()
        got = keys.get(row["cited_id"]) if row["cited_id"] else None
        if got is not None:
            linked += 1
            assert row["resolved_by"] == "fuzzy" and row["match_score"] >= THRESHOLD * 0.9
            if got == expected:
                correct += 1
            else:
                wrong.append((style, text[:80], got))
        elif expected is not None:
            missed += 1
    positives = sum(1 for _, expected, _ in labelled if expected)
    precision = correct / linked
    recall = correct / positives
    print(f"\nfuzzy links on {len(labelled)} real reference strings ({positives} with the cited "
          f"work in the KB): {linked} linked, {correct} correct, precision {precision:.3f}, "
          f"recall {recall:.3f}")
    assert not wrong, wrong
    assert precision == 1.0
    # the three misses are author-year strings whose work has no author in the corpus
    assert missed <= 3 and recall >= 0.83
    assert len(report.fuzzy) == linked


def test_fuzzy_link_precision_on_real_pubmed_citations(tmp_path: Path) -> None:
    """PubMed <Citation> strings whose PMID is known, against their works and hard distractors
    (same journal, mostly the same volume, other pages)."""
    data = fixture_json("resolve", "pubmed_labelled.json")
    conn = store.connect(tmp_path / "kb.db")
    by_pmid = {}
    for work in data["works"]:
        record = {"source": "pubmed", **{k: work[k] for k in (
            "pmid", "doi", "title", "year", "journal", "journal_abbrev", "volume", "pages")
            if work[k]}}
        if work["first_author"]:
            record["authors"] = [work["first_author"]]
        by_pmid[store.upsert_work(conn, record).work_id] = work["pmid"]
    texts = [_strip_ids(ref["citation"]) for ref in data["references"]]
    citation_ids = _cite_each(conn, texts)
    resolve(conn)
    linked = correct = 0
    for citation_id, ref in zip(citation_ids, data["references"]):
        cited = conn.execute("SELECT cited_id FROM citations WHERE id = ?",
                             (citation_id,)).fetchone()[0]
        if cited is not None:
            linked += 1
            correct += by_pmid[cited] == ref["pmid"]
    precision, recall = correct / linked, correct / len(texts)
    print(f"\nfuzzy links on {len(texts)} real PubMed citations with a known PMID among "
          f"{len(by_pmid)} works: {linked} linked, precision {precision:.3f}, recall {recall:.3f}")
    assert precision == 1.0 and recall >= 0.9


def test_identifiers_printed_in_references_link_by_id(tmp_path: Path) -> None:
    labelled, held_out = _labelled()
    conn, keys = _corpus_kb(tmp_path / "kb.db", held_out)
    printed = [(t, e) for t, e, s in labelled if s in ("vancouver", "web-numbered")]
    citation_ids = _cite_each(conn, [t for t, _ in printed])
    works_before = conn.execute("SELECT count(*) FROM works").fetchone()[0]
    report = resolve(conn)
    for citation_id, (text, expected) in zip(citation_ids, printed):
        row = conn.execute("SELECT c.cited_id, c.resolved_by, w.doi, w.pmid, w.status FROM citations c "
                           "JOIN works w ON w.id = c.cited_id WHERE c.id = ?",
                           (citation_id,)).fetchone()
        assert row is not None, text  # every one of these prints a DOI, PMID or URL
        if expected:
            assert keys[row["cited_id"]] == expected
            assert row["resolved_by"] in ("doi", "pmid", "url")
        else:
            assert row["status"] == "stub"
            assert (row["doi"] or row["pmid"]) in text.lower()
    assert report.stubs_created == conn.execute(
        "SELECT count(*) FROM works").fetchone()[0] - works_before
    assert not report.fuzzy


def test_parse_reference_forms() -> None:
    ref = normalize_reference(unstructured="Mancías-Guerra C, Marroquín-Escamilla AR, et al. "
                                       "Safety and tolerability. Cytotherapy. 2014;16:810-20.")
    assert ref.first_author == "mancias guerra" and ref.years == {2014}
    assert normalize_reference(unstructured="Abi Chahine NH, Wehbe TW. Treatment of cerebral "
                                        "palsy with stem cells. 2016").first_author == "abi chahine"
    assert not normalize_reference(unstructured="Kang XQ, Zang WJ (2006) Differentiating cells in "
                                            "vitro").author_year_only
    structured = normalize_reference(title="Stem cells therapy in cerebral palsy: A systematic "
                                       "review", year=2016, first_author="Shroff")
    assert structured.title == "stem cells therapy in cerebral palsy a systematic review"


def test_score_rules() -> None:
    title = normalize_text("Clinical and imaging outcomes after intrathecal injection of "
                           "umbilical cord tissue mesenchymal stem cells in cerebral palsy")
    work = Candidate(1, title, 2021, "amanat")
    printed = "Amanat M, et al. " + title + ". Stem Cell Res Ther. 2021;12:439."
    assert score(normalize_reference(unstructured=printed), work) == 100.0
    # one year off (online vs print) costs a little, two years rejects
    assert score(normalize_reference(unstructured=printed.replace("2021", "2022")), work) == 97.0
    assert score(normalize_reference(unstructured=printed.replace("2021", "2023")), work) is None
    # another first author costs 12 points: an exact long title still just reaches the
    # threshold (a mis-parsed or group author), anything less does not
    other = normalize_reference(unstructured=printed.replace("Amanat M", "Zarrabi M"))
    assert score(other, work) == THRESHOLD
    assert score(other, Candidate(1, title.replace("tissue", "blood"), 2021, "amanat")) < THRESHOLD
    # a correction notice is not the paper it corrects
    notice = score(normalize_reference(unstructured="Amanat M. Correction to: " + title + ". 2021"),
                   work)
    assert notice is not None and notice < THRESHOLD
    # printed in another volume at another page: an erratum or a reprint, not this paper
    located = Candidate(3, title, 2021, "amanat", volume="12", first_page="439")
    assert score(normalize_reference(unstructured=printed), located) == 100.0
    moved = printed.replace("12:439", "13:88")
    assert score(normalize_reference(unstructured=moved), located) is None
    page = printed.replace("12:439", "12:88")
    assert score(normalize_reference(unstructured=page), located) == 90.0
    # a reply to the paper is not the paper
    reply = Candidate(4, normalize_text("Response to: ") + " " + title, 2021, "amanat")
    assert score(normalize_reference(unstructured=printed), reply) < THRESHOLD
    # short titles need the same author and year
    short = Candidate(2, normalize_text("Cerebral palsy"), 2009, "pakula")
    assert score(normalize_reference(unstructured="Smith J. Cerebral palsy. Lancet. 2009"),
                 short) is None


def test_dry_run_writes_nothing_and_predicts_the_real_run(tmp_path: Path) -> None:
    labelled, held_out = _labelled()
    conn, _ = _corpus_kb(tmp_path / "kb.db", held_out)
    _cite_each(conn, [_strip_ids(t) for t, e, s in labelled if s != "pubmed-citation"])
    before = list(conn.iterdump())
    dry = resolve(conn, dry_run=True)
    assert list(conn.iterdump()) == before
    real = resolve(conn)
    assert [(f.citation_id, f.work_id, f.score) for f in dry.fuzzy] == \
        [(f.citation_id, f.work_id, f.score) for f in real.fuzzy]
    assert dry.fuzzy and resolve(conn).linked == 0  # a second run has nothing left to link


def _work(conn: sqlite3.Connection, **fields: object) -> int:
    return store.upsert_work(conn, fields).work_id  # type: ignore[arg-type]


def test_duplicate_works_merge_and_conflicting_ids_do_not(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "kb.db")
    title = ("Safety and tolerability of intrathecal delivery of autologous bone marrow "
             "nucleated cells in children with cerebral palsy: an open-label phase I trial")
    full = _work(conn, source="crossref", doi="10.1016/j.jcyt.2014.01.008", title=title,
                 year=2014, authors=[{"family": "Mancías-Guerra", "given": "C"}])
    stub = _work(conn, source="reference", status="stub", title=title.upper(), year=2014,
                 authors=[{"family": "Mancias-Guerra"}], pmid="24642016")
    clash = _work(conn, source="crossref", doi="10.5555/kb.same-title", title=title, year=2014,
                  authors=[{"family": "Mancías-Guerra"}])
    citing = _work(conn, source="import", doi="10.5555/kb.citing", title="A citing work",
                   references=[{"pmid": "24642016"}])
    dry = resolve(conn, dry_run=True)
    assert [(m.keep_id, m.drop_id) for m in dry.merges] == [(full, stub)]
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == 4
    report = resolve(conn)
    assert [(m.keep_id, m.drop_id) for m in report.merges] == [(full, stub)]
    row = conn.execute("SELECT doi, pmid, status FROM works WHERE id = ?", (full,)).fetchone()
    assert tuple(row) == ("10.1016/j.jcyt.2014.01.008", "24642016", "full")
    assert conn.execute("SELECT cited_id FROM citations WHERE citing_id = ?",
                        (citing,)).fetchone()[0] == full
    assert conn.execute("SELECT 1 FROM works WHERE id = ?", (clash,)).fetchone()


def test_numbered_parts_are_not_duplicates(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "kb.db")
    title = "Inheritance of antibody specificity. {}. Control of related molecular species"
    _work(conn, source="pubmed", pmid="1000001", title=title.format("IV"), year=1977,
          authors=[{"family": "Eichmann", "given": "K"}])
    _work(conn, source="reference", status="stub", title=title.format("V"), year=1977,
          authors=[{"family": "Eichmann"}])
    assert resolve(conn, dry_run=True).merges == []


def test_the_same_edge_from_several_sources_is_one_edge(tmp_path: Path) -> None:
    """Crossref prints the reference, OpenAlex and OpenCitations give the DOI: one edge."""
    conn = store.connect(tmp_path / "kb.db")
    amanat = _work(conn, source="crossref", doi="10.1186/s13287-021-02513-4", year=2021,
                   title="Clinical and imaging outcomes after intrathecal injection of umbilical "
                         "cord tissue mesenchymal stem cells in cerebral palsy: a randomized "
                         "double-blind sham-controlled clinical trial",
                   authors=[{"family": "Amanat", "given": "Man"}])
    pooled = _work(conn, source="crossref", doi="10.22074/cellj.2024.2032098.1600", year=2025,
                   title="Cell-Based Therapy for Cerebral Palsy: A Puzzle in Progress",
                   references=[{"position": 4, "unstructured":
                                "Amanat M, Majmaa A, Zarrabi M, et al. Clinical and imaging "
                                "outcomes after intrathecal injection of umbilical cord tissue "
                                "mesenchymal stem cells in cerebral palsy: a randomized "
                                "double-blind sham-controlled clinical trial. Stem Cell Res "
                                "Ther. 2021;12:439."}])
    link = {"citing": {"doi": "10.22074/cellj.2024.2032098.1600"},
            "cited": {"doi": "10.1186/s13287-021-02513-4"}}
    store.add_links(conn, [{**link, "source": "openalex"}])
    store.add_links(conn, [{**link, "source": "opencitations"}, {**link, "source": "openalex"}])
    assert conn.execute("SELECT count(*) FROM citations").fetchone()[0] == 2
    report = resolve(conn)
    assert len(report.fuzzy) == 1 and report.fuzzy[0].work_id == amanat
    rows = conn.execute("SELECT cited_id, sources, resolved_by FROM citations "
                        "WHERE citing_id = ?", (pooled,)).fetchall()
    assert len(rows) == 1 and rows[0]["cited_id"] == amanat
    assert sorted(json.loads(rows[0]["sources"])) == ["crossref", "openalex", "opencitations"]


def test_cli_resolve_dry_run_then_link(tmp_path: Path, runner, monkeypatch) -> None:
    db = tmp_path / "kb.db"
    labelled, held_out = _labelled()
    conn, _ = _corpus_kb(db, held_out)
    _cite_each(conn, [_strip_ids(t) for t, e, s in labelled if s in ("web-numbered",
                                                                       "author-year")])
    conn.close()
    result = runner.invoke(cli, ["--db", str(db), "resolve", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "100.0" in result.stdout and "Amanat" in result.stdout
    assert "would link" in result.stderr
    conn = store.connect(db)
    assert conn.execute("SELECT count(*) FROM citations WHERE resolved_by = 'fuzzy'"
                        ).fetchone()[0] == 0
    conn.close()
    result = runner.invoke(cli, ["--db", str(db), "resolve", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["fuzzy"]) == 10 and all(f["score"] >= 80 for f in data["fuzzy"])
    conn = store.connect(db)
    assert conn.execute("SELECT count(*) FROM citations WHERE resolved_by = 'fuzzy'"
                        ).fetchone()[0] == 10


def test_cli_resolve_on_a_missing_database(tmp_path: Path, runner) -> None:
    result = runner.invoke(cli, ["--db", str(tmp_path / "none.db"), "resolve"])
    assert result.exit_code == 2 and "no knowledge base" in result.output


@pytest.mark.parametrize("text", ["", "   ", "[12]"])
def test_empty_references_do_not_match(text: str) -> None:
    """A reference that prints nothing (or only its number) matches no work: not one a
    real reference matches, not a title-less stub, not a work titled by a number."""
    title = "a title long enough to be matched on its own words"
    works = [Candidate(1, title, 2020, "smith"), Candidate(2, "", None, None, status="stub"),
             Candidate(3, "12", None, None)]
    assert score(normalize_reference(unstructured=f"Smith J. {title}. 2020"), works[0]) >= THRESHOLD
    ref = normalize_reference(unstructured=text)
    assert [score(ref, work) or 0.0 for work in works] == [0.0, 0.0, 0.0]


def test_journal_only_pubmed_citations_match_on_their_locator() -> None:
    """PubMed stores many references as journal, date, volume and pages only."""
    work = Candidate(1, normalize_text("Responses of macaque lateral geniculate cells to "
                                       "luminance and color figures."), 1977, "kruger",
                     journals=("sens processes",), volume="1", first_page="244")
    ref = normalize_reference(unstructured="Sens Processes. 1977 May;1(3):244-59")
    assert (ref.volume, ref.first_page, ref.author_year_only) == ("1", "244", False)
    assert score(ref, work) == 95.0
    # same volume and page in another journal, or another page: no match
    for other in ("J Mol Biol. 1977 May;1(3):244-59", "Sens Processes. 1977;1(3):245-59"):
        assert (score(normalize_reference(unstructured=other), work) or 0) < THRESHOLD
    # a journal-only string is never read as "author and year"
    assert not normalize_reference(unstructured="Gastroenterology. 1990 Mar;98(3):639-46"
                               ).author_year_only
    springer = normalize_reference(unstructured="Kurtzberg J, Laughlin M (1996) Placental blood. "
                                            "N Engl J Med 335:157–166")
    assert (springer.volume, springer.first_page) == ("335", "157")
