"""Works stored by kb import (and add, pubmed, crawl) get their evidence annotated."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from kb.cli import cli

ARTICLES = Path(__file__).parent / "fixtures" / "pubmed" / "articles.xml"
CASE_REPORT = "32773712"  # PubMed publication types: Case Reports, Journal Article
REVIEW = "20301546"       # PubMed publication type: Review


def designs(db: Path) -> dict[str, tuple[str | None, str | None]]:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT pmid, study_design, design_source FROM works WHERE pmid IN (?, ?)",
                        (CASE_REPORT, REVIEW)).fetchall()
    conn.close()
    return {pmid: (design, source) for pmid, design, source in rows}


def test_import_annotates_the_imported_works(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    result = runner.invoke(cli, ["-v", "--db", str(db), "import", str(ARTICLES)])
    assert result.exit_code == 0, result.output
    assert "annotated" in result.output
    assert designs(db) == {CASE_REPORT: ("case-report", "pubtype"), REVIEW: ("review", "pubtype")}


def test_no_annotate_then_evidence_annotate(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    result = runner.invoke(cli, ["--db", str(db), "import", "--no-annotate", str(ARTICLES)])
    assert result.exit_code == 0, result.output
    assert designs(db) == {CASE_REPORT: (None, None), REVIEW: (None, None)}
    result = runner.invoke(cli, ["--db", str(db), "evidence", "--annotate", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert designs(db) == {CASE_REPORT: ("case-report", "pubtype"), REVIEW: ("review", "pubtype")}


def test_reimport_of_unchanged_works_annotates_nothing(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    assert runner.invoke(cli, ["--db", str(db), "import", str(ARTICLES)]).exit_code == 0
    result = runner.invoke(cli, ["-v", "--db", str(db), "import", str(ARTICLES)])
    assert result.exit_code == 0 and "annotated 0 works" in result.output


def test_skipped_annotation_is_caught_up_by_the_next_storing_command(runner: CliRunner,
                                                                    tmp_path: Path) -> None:
    # works stored without annotation (a killed run, or --no-annotate) stay due until a
    # later command that stores works annotates them
    db = tmp_path / "kb.db"
    assert runner.invoke(cli, ["--db", str(db), "import", "--no-annotate", str(ARTICLES)]).exit_code == 0
    conn = sqlite3.connect(db)
    due = conn.execute("SELECT count(*) FROM works WHERE annotated_at IS NULL").fetchone()[0]
    conn.close()
    assert due > 0
    other = tmp_path / "one.ris"
    other.write_text("TY  - JOUR\nTI  - Umbilical cord blood for cerebral palsy\nPY  - 2013\n"
                     "DO  - 10.5555/annotation-catch-up\nER  - \n", encoding="utf-8")
    result = runner.invoke(cli, ["-v", "--db", str(db), "import", str(other)])
    assert result.exit_code == 0, result.output
    assert f"annotated {due + 1} works" in result.output
    assert designs(db) == {CASE_REPORT: ("case-report", "pubtype"), REVIEW: ("review", "pubtype")}


def test_refused_input_leaves_due_works_alone(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "kb.db"
    assert runner.invoke(cli, ["--db", str(db), "import", "--no-annotate", str(ARTICLES)]).exit_code == 0
    before = db.read_bytes()
    empty = tmp_path / "empty.xml"
    empty.write_text("")
    result = runner.invoke(cli, ["--db", str(db), "import", str(empty)])
    assert result.exit_code == 2
    assert designs(db) == {CASE_REPORT: (None, None), REVIEW: (None, None)}
    assert db.read_bytes() == before


_RESULTS = ("Seventy-two patients were randomly assigned. The primary score improved more in the "
            "treatment group (mean difference 2.1, 95% CI 0.5 to 3.7; p = 0.01). {registry}")
_FIELD_WORKS = {  # DOI: (title, registry id); each a randomised trial naming its registry id
    "10.5555/oncology": ("Nivolumab versus docetaxel in advanced lung cancer: a randomized "
                         "controlled trial", "NCT01642004"),
    "10.5555/cp-botulinum": ("Botulinum toxin in children with cerebral palsy: a randomized "
                             "controlled trial", "NCT01147653"),
    "10.5555/cells-stroke": ("Bone marrow mononuclear cells after stroke: a randomized "
                             "controlled trial", "NCT02345678"),
}


def test_only_works_of_the_field_make_trials_and_rule_outcomes(runner: CliRunner,
                                                                 tmp_path: Path) -> None:
    # a registry id in an oncology abstract makes no trial of cell therapy in cerebral palsy, and
    # its numbers are no outcome of the field; cerebral palsy or a cell product makes both
    ris = tmp_path / "trials.ris"
    ris.write_text("".join(
        f"TY  - JOUR\nTI  - {title}\nAB  - {_RESULTS.format(registry=f'Registered: {nct}.')}\n"
        f"PY  - 2020\nDO  - {doi}\nER  - \n" for doi, (title, nct) in _FIELD_WORKS.items()),
        encoding="utf-8")
    result = runner.invoke(cli, ["--db", str(tmp_path / "kb.db"), "import", str(ris)])
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(tmp_path / "kb.db")
    trials = dict(conn.execute(
        "SELECT w.doi, i.registry_id FROM trial_reports r JOIN works w ON w.id = r.work_id "
        "JOIN trial_registry_ids i ON i.trial_id = r.trial_id"))
    outcomes = {r[0] for r in conn.execute(
        "SELECT DISTINCT w.doi FROM outcomes o JOIN works w ON w.id = o.work_id")}
    designs = {r[0] for r in conn.execute("SELECT study_design FROM works")}
    conn.close()
    assert designs == {"rct"}
    assert trials == {"10.5555/cp-botulinum": "NCT01147653", "10.5555/cells-stroke": "NCT02345678"}
    assert outcomes == {"10.5555/cp-botulinum", "10.5555/cells-stroke"}



def _imported(db: Path, designs: bool) -> sqlite3.Connection:
    from kb import store
    from kb.ingest.files import import_pubmed_xml

    conn = store.connect(db)
    report = import_pubmed_xml(conn, ARTICLES, background=designs, designs=designs)
    assert report.error is None and report.added == 8
    return conn


def test_designs_given_at_insert_are_those_the_annotation_gives(tmp_path: Path) -> None:
    """With ``designs`` the parser process designs the new works (none of the field here), the
    annotation does not read them again, and every design ends up the same as without."""
    from kb.evidence import annotate_due
    from kb.store.evidence import PREANNOTATED

    dumps = []
    for designs in (True, False):
        conn = _imported(tmp_path / f"{designs}.db", designs)
        marked = conn.execute("SELECT count(*) FROM works WHERE annotated_at LIKE ?",
                              (PREANNOTATED + "%",)).fetchone()[0]
        assert marked == (8 if designs else 0)
        assert annotate_due(conn)["designs_changed"] == (0 if designs else 8)
        dumps.append([tuple(r) for r in conn.execute(
            "SELECT id, study_design, design_source, annotated_at < updated_at FROM works "
            "ORDER BY id")])
        conn.close()
    assert dumps[0] == dumps[1]


def test_design_at_insert_leaves_works_of_the_field_to_the_annotation() -> None:
    from kb.evidence.pipeline import design_at_insert

    record = {"source": "pubmed", "pmid": "1", "publication_types": ["Journal Article"],
              "title": "Gait in children with cerebral palsy"}
    assert design_at_insert(record) is None  # type: ignore[arg-type]
    record["title"] = "Gait in children with asthma"
    assert design_at_insert(record) == ("other", "rule")  # type: ignore[arg-type]


def test_a_work_changed_after_its_design_at_insert_is_read_again(tmp_path: Path) -> None:
    from kb import store
    from kb.evidence import annotate_due

    conn = _imported(tmp_path / "kb.db", True)
    with conn:
        conn.execute("UPDATE works SET abstract = 'This randomized controlled trial enrolled "
                     "40 women.', updated_at = ? WHERE pmid = '39345789'", (store.now(),))
    annotate_due(conn)
    assert tuple(conn.execute("SELECT study_design, design_source FROM works WHERE pmid = "
                              "'39345789'").fetchone()) == ("rct", "rule")
    conn.close()
