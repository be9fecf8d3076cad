"""kb build: the embedded KB from the seed, deterministic, atomic, and equal to the committed kb.db."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import seed_reader
from kb.build import build_kb
from kb.cli import cli

REPO_DB = Path(__file__).resolve().parent.parent / "kb.db"
POOLED = "10.22074/cellj.2024.2032098.1600"
AMANAT = "10.1186/s13287-021-02513-4"
ZARRABI = "10.1186/s12883-022-02636-y"
META = "10.3389/fbioe.2022.1006845"  # Qu 2022, the meta-analysis the article cites
ARTICLE = seed_reader.SEED_ARTICLE_URL
PARENTS_GUIDE = ("https://parentsguidecordblood.org/en/news/"
                 "cerebral-palsy-response-cell-therapy-function-time")


def content(path: Path) -> dict[str, list[tuple]]:
    """Every table's rows, sorted, without timestamp columns (what "same KB" means)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE 'works_fts_%' ORDER BY name")]
    dump: dict[str, list[tuple]] = {}
    for table in tables:
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")
                   if not r[1].endswith("_at")]
        if table == "works_fts":
            columns = ["rowid"] + columns
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
        dump[table] = sorted(rows, key=repr)
    dump["schema"] = sorted(conn.execute("SELECT type, name, sql FROM sqlite_master "
                                         "WHERE name NOT LIKE 'sqlite_%'").fetchall(), key=repr)
    dump["user_version"] = [conn.execute("PRAGMA user_version").fetchone()]
    conn.close()
    return dump


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("build") / "kb.db"
    build_kb(path)
    return path


def work(conn: sqlite3.Connection, **where: str) -> sqlite3.Row:
    (column, value), = where.items()
    conn.row_factory = sqlite3.Row
    row = conn.execute(f"SELECT * FROM works WHERE {column} = ?", (value,)).fetchone()
    assert row is not None, f"no work with {column} = {value}"
    return row


def test_the_seed_picture_is_there_with_correct_ids(built: Path) -> None:
    conn = sqlite3.connect(built)
    pooled = work(conn, doi=POOLED)
    assert pooled["study_design"] == "pooled-analysis" and pooled["design_source"] == "curated"
    assert pooled["unverified"] == 1  # its own page was not seen: the article's list is the source
    amanat, zarrabi = work(conn, doi=AMANAT), work(conn, doi=ZARRABI)
    assert (amanat["pmid"], amanat["pmcid"], amanat["study_design"]) == ("34362453",
                                                                        "PMC8343813", "rct")
    assert zarrabi["study_design"] == "rct" and zarrabi["journal"] == "BMC Neurology"
    assert work(conn, doi=META)["study_design"] == "meta-analysis"
    article = work(conn, url=ARTICLE)
    assert (article["type"], article["title"], article["journal"], article["pub_date"],
            article["doi"]) == ("web-article", "Fresh insights: cell therapy for cerebral palsy",
                                "Cells4Life", "2025-03", None)
    # the article cites its five references, in its own order, each a work of the KB
    cited = conn.execute(
        "SELECT c.position, coalesce(w.doi, w.url), c.resolved_by, c.sources FROM citations c "
        "JOIN works w ON w.id = c.cited_id WHERE c.citing_id = ? ORDER BY c.position",
        (article["id"],)).fetchall()
    assert [(p, i, r) for p, i, r, _ in cited] == [
        (1, PARENTS_GUIDE, "url"), (2, META, "doi"), (3, POOLED, "doi"), (4, AMANAT, "doi"),
        (5, ZARRABI, "doi")]
    assert all(set(json.loads(s)) == {"webpage", "corpus"} for *_, s in cited)
    # the pooled study pools both trials (curated lineage, with the page it was read from)
    pools = conn.execute(
        "SELECT t.doi, l.provenance, l.source FROM lineage l JOIN works f ON f.id = l.from_work_id "
        "JOIN works t ON t.id = l.to_work_id WHERE f.doi = ? AND l.relation = 'pools' "
        "ORDER BY t.doi", (POOLED,)).fetchall()
    assert [tuple(r) for r in pools] == [(ZARRABI, "curated", ARTICLE), (AMANAT, "curated", ARTICLE)]


def test_every_seed_work_edge_and_trial_is_imported(built: Path) -> None:
    conn = sqlite3.connect(built)
    works = seed_reader.read_works()
    links, lineage = seed_reader.read_links()
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == len(works) == 79
    for record in works:
        column = "doi" if record.get("doi") else ("pmid" if record.get("pmid") else "url")
        assert conn.execute(f"SELECT count(*) FROM works WHERE {column} = ?",
                            (record[column],)).fetchone()[0] == 1, record["source_id"]
    # every cites row is a resolved citation edge; provenance is kept per work
    assert conn.execute("SELECT count(*) FROM citations WHERE cited_id IS NOT NULL "
                        "AND sources LIKE '%corpus%' AND resolved_by != 'fuzzy'"
                        ).fetchone()[0] == len(links) == 23
    # the meta-analysis's included trials, printed without ids, are resolved where the KB
    # holds exactly one work by that first author in that year
    included = conn.execute(
        "SELECT c.position, w.doi, CASE WHEN w.doi IS NULL THEN w.url END, c.resolved_by FROM citations c JOIN works f "
        "ON f.id = c.citing_id LEFT JOIN works w ON w.id = c.cited_id WHERE f.doi = ? "
        "ORDER BY c.position", ("10.4252/wjsc.v11.i10.891",)).fetchall()
    assert [tuple(r) for r in included] == [
        (39, "10.1002/stem.1304", None, "fuzzy"),
        (40, "10.1186/s12967-017-1149-0", None, "fuzzy"),
        (41, None, "https://dukespace.lib.duke.edu/dspace/handle/10161/24589", "fuzzy"),
        (42, None, None, None), (44, None, None, None),
        (45, "10.1186/1479-5876-11-21", None, "fuzzy"),
        (46, "10.1177/0963689717729379", None, "fuzzy"), (47, None, None, None)]
    raw = json.loads(conn.execute("SELECT body FROM records WHERE source = 'corpus' AND "
                                  "source_id = ?", (AMANAT,)).fetchone()[0])
    assert raw["custom"]["sources"] and "abstract" not in raw
    assert conn.execute("SELECT count(*) FROM lineage WHERE provenance = 'curated'"
                        ).fetchone()[0] == len(lineage) == 2
    trials = {r[0]: r[1:] for r in conn.execute(
        "SELECT label, cell_type, route, n FROM trials WHERE label IN ('Amanat 2021', 'Zarrabi 2022')")}
    assert trials == {"Amanat 2021": ("UCT-MSC", "intrathecal", 72),
                      "Zarrabi 2022": ("UCB-MNC", "intrathecal", 72)}
    assert conn.execute("SELECT count(*) FROM works WHERE abstract IS NOT NULL").fetchone()[0] == 0


def test_build_is_deterministic(built: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.db"
    build_kb(again)
    assert content(again) == content(built)


def test_committed_kb_db_equals_a_fresh_offline_build(built: Path) -> None:
    committed, rebuilt = content(REPO_DB), content(built)
    for table in sorted(set(committed) | set(rebuilt)):
        assert committed.get(table) == rebuilt.get(table), (
            f"kb.db differs from `kb build --offline` in {table}: rebuild it with "
            "`kb build --offline --out kb.db` and commit it")


def test_failed_build_leaves_the_old_file_alone(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "kb.db"
    target.write_bytes(b"")
    build_kb(target)
    before = target.read_bytes()

    def broken(*args: object) -> list:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(seed_reader, "read_trials", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        build_kb(target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb.db"]  # no temp files left


def test_cli_build_then_stats_and_search_offline(tmp_path: Path, runner: CliRunner,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_CACHE_DIR", str(tmp_path / "cache"))
    db = tmp_path / "kb.db"
    result = runner.invoke(cli, ["--db", str(db), "build", "--offline"])
    assert result.exit_code == 0, result.output
    assert "corpus works 79" in result.output and "curated trials" in result.output
    stats = runner.invoke(cli, ["--db", str(db), "stats", "--format", "json"])
    assert stats.exit_code == 0, stats.output
    report = json.loads(stats.output)
    included_trials = sum(len(w.get("references") or []) for w in seed_reader.read_works())
    assert report["works"] == 79 and report["citations"] == 23 + included_trials == 31
    assert report["works_by_design"]["pooled-analysis"] == 1
    assert report["works_by_type"]["web-article"] == 3
    table = runner.invoke(cli, ["--db", str(db), "stats"])
    assert "works           79" in table.output and "28 resolved, 3 unresolved" in table.output
    found = runner.invoke(cli, ["--db", str(db), "search", "mesenchymal", "--format", "json"])
    assert found.exit_code == 0, found.output
    assert AMANAT in [row["doi"] for row in json.loads(found.output)]


def test_readme_main_command_on_the_committed_kb(tmp_path: Path, runner: CliRunner,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`kb search "mesenchymal"` in a fresh clone: the bundled kb.db, no network, no set-up."""
    shutil.copy(REPO_DB, tmp_path / "kb.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KB_DB", raising=False)
    monkeypatch.setenv("KB_CACHE_DIR", str(tmp_path / "cache"))
    result = runner.invoke(cli, ["search", "mesenchymal", "--format", "json"])
    assert result.exit_code == 0, result.output
    titles = [row["title"] for row in json.loads(result.output)]
    assert titles and all("esenchymal" in t for t in titles[:3])


def test_build_into_a_folder_is_a_clear_error(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["build", "--offline", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "folder" in result.output or "directory" in result.output


def test_online_build_refreshes_the_seed_and_lists_what_failed(server, config,
                                                                tmp_path: Path) -> None:
    """Crossref answers for four seed works (real-shaped batch); every other service says 404.
    The build still finishes, the four are refreshed from Crossref, and each failure is named."""
    from kb.http import Client
    from tests.replay import Reply, fixture_json

    batch = fixture_json("crossref", "batch.json")

    def crossref_batch(request) -> Reply:
        wanted = {part[4:] for part in request.query["filter"][0].split(",")}
        items = [i for i in batch["message"]["items"] if i["DOI"].lower() in wanted]
        return Reply(200, {**batch, "message": {**batch["message"], "items": items,
                                                "total-results": len(items)}})

    server.add("GET", "/crossref/works", crossref_batch)
    out = tmp_path / "kb.db"
    with Client(config, rates={}) as client:
        report = build_kb(out, client=client)
    conn = sqlite3.connect(out)
    assert conn.execute("SELECT count(*) FROM works WHERE status = 'full'").fetchone()[0] >= 75
    refreshed = {r[0] for r in conn.execute("SELECT w.doi FROM records r JOIN works w "
                                            "ON w.id = r.work_id WHERE r.source = 'crossref'")}
    assert {AMANAT, ZARRABI} <= refreshed and len(refreshed) == 4
    assert report.steps["refreshed"] == 4
    # the curated design survives the refresh; the seed picture is intact
    assert conn.execute("SELECT study_design, design_source FROM works WHERE doi = ?",
                        (AMANAT,)).fetchone() == ("rct", "curated")
    assert conn.execute("SELECT count(*) FROM lineage WHERE relation = 'pools' "
                        "AND provenance = 'curated'").fetchone()[0] == 2
    failed = "\n".join(report.failures)
    assert "10.1001/archpedi.161.11.1075" in failed and "crawl " in failed
    assert server.count("/openalex/.*") > 0  # the one-level crawl asked OpenAlex


def test_online_build_with_every_service_down_skips_the_crawl(server, config,
                                                              tmp_path: Path) -> None:
    from kb.http import Client

    out = tmp_path / "kb.db"
    with Client(config, rates={}) as client:
        report = build_kb(out, client=client)
    assert report.steps["refreshed"] == 0
    assert "skipped the one-level crawl" in report.failures[-1]
    assert server.count("/openalex/.*") == 0
    assert content(out)["lineage"]  # the seed is built all the same


def test_stats_show_trials_and_lineage(built: Path, runner: CliRunner) -> None:
    report = json.loads(runner.invoke(cli, ["--db", str(built), "stats", "--format", "json"]).output)
    # 2 curated (the pooled study) + 5 inferred (the meta-analysis citing resolved trials)
    assert report["trials"] >= 40 and report["lineage"]["pools"] == 7
    table = runner.invoke(cli, ["--db", str(built), "stats"]).output
    assert "pools 7" in table and "trials" in table


def test_build_into_a_missing_folder_is_a_clear_error(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["build", "--offline", "--out", str(tmp_path / "no" / "kb.db")])
    assert result.exit_code == 2 and "does not exist" in result.output
