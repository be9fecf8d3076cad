"""kb build: the embedded KB from the seed, deterministic, atomic, and equal to the committed kb.db."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.ingest import seed as seed_reader
from kb.ingest.build import build_kb
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
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == len(works) == 88
    for record in works:
        column = "doi" if record.get("doi") else ("pmid" if record.get("pmid") else "url")
        assert conn.execute(f"SELECT count(*) FROM works WHERE {column} = ?",
                            (record[column],)).fetchone()[0] == 1, record["source_id"]
    # every cites row is a resolved citation edge; provenance is kept per work
    assert conn.execute("SELECT count(*) FROM citations WHERE cited_id IS NOT NULL "
                        "AND sources LIKE '%corpus%' AND resolved_by != 'fuzzy'"
                        ).fetchone()[0] == len(links) == 30
    # the meta-analysis's included trials, printed without ids, are resolved where the KB
    # holds exactly one work by that first author in that year; where the corpus's cites row
    # names the same work, the two are one edge that keeps the printed position and text
    included = conn.execute(
        "SELECT c.position, w.doi, c.unstructured IS NOT NULL FROM citations c JOIN works f "
        "ON f.id = c.citing_id LEFT JOIN works w ON w.id = c.cited_id WHERE f.doi = ? "
        "AND c.position IS NOT NULL ORDER BY c.position",
        ("10.4252/wjsc.v11.i10.891",)).fetchall()
    assert [tuple(r) for r in included] == [
        (39, "10.1002/stem.1304", 1), (40, "10.1186/s12967-017-1149-0", 1),
        (41, "10.1002/sctm.17-0102", 1), (42, "10.1186/s12967-017-1120-0", 1),
        (44, None, 1), (45, "10.1186/1479-5876-11-21", 1), (46, "10.1177/0963689717729379", 1),
        (47, None, 1)]
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
    assert "corpus works 88" in result.output and "curated trials 58" in result.output
    stats = runner.invoke(cli, ["--db", str(db), "stats", "--format", "json"])
    assert stats.exit_code == 0, stats.output
    report = json.loads(stats.output)
    included_trials = sum(len(w.get("references") or []) for w in seed_reader.read_works())
    # the meta-analysis's printed included trials fold into its cites rows where they resolve
    assert report["works"] == 88 and included_trials == 8 and report["citations"] == 32
    assert report["works_by_design"]["pooled-analysis"] == 1
    assert report["works_by_type"]["web-article"] == 3
    table = runner.invoke(cli, ["--db", str(db), "stats"])
    assert "works           88" in table.output and "30 resolved, 2 unresolved" in table.output
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
    # 2 curated (the pooled study) + 7 inferred (the meta-analysis citing resolved trials)
    assert report["trials"] == 58 and report["lineage"]["pools"] == 9
    table = runner.invoke(cli, ["--db", str(built), "stats"]).output
    assert "pools 9" in table and "trials" in table


def test_build_into_a_missing_folder_is_a_clear_error(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["build", "--offline", "--out", str(tmp_path / "no" / "kb.db")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_committed_kb_evidence_is_normalised(tmp_path: Path, runner: CliRunner) -> None:
    """Every trial of the bundled KB has a cell product and a route from the vocabulary, the
    field has at most 20 products and 8 routes, and every fact keeps its text as stated."""
    from kb import vocabulary
    db = tmp_path / "kb.db"
    shutil.copy(REPO_DB, db)
    result = runner.invoke(cli, ["--db", str(db), "evidence", "--format", "json"])
    assert result.exit_code == 0, result.output
    trials = json.loads(result.output)
    known = {kind: set(vocabulary.values(kind)) | {vocabulary.NOT_REPORTED, vocabulary.OTHER}
             for kind in vocabulary.KINDS}
    for trial in trials:
        for name, kind in (("cell_product", "product"), ("donor", "donor"), ("route", "route")):
            assert trial[name] and set(trial[name]) <= known[kind], (trial["label"], name)
            assert f"{name}_as_stated" in trial
        for name in ("control", "blinding"):
            assert trial[name] is None or trial[name] in known[name], (trial["label"], name)
            assert trial[name] is None or trial[f"{name}_as_stated"], (trial["label"], name)
    products = {p for t in trials for p in t["cell_product"]}
    routes = {r for t in trials for r in t["route"]}
    assert len(trials) == 58 and len(products) <= 20 and len(routes) <= 8
    assert vocabulary.OTHER not in products | routes  # every stated text is in the vocabulary
    amanat = next(t for t in trials if t["label"] == "Amanat 2021")
    assert (amanat["cell_product"], amanat["cell_product_as_stated"], amanat["route"]) == \
        (["UC-MSC"], "UCT-MSC", ["intrathecal"])


def test_same_as_links_make_one_trial_and_keep_both_works(built: Path) -> None:
    conn = sqlite3.connect(built)
    pairs = [(t.get("doi") or t.get("work_id"), target) for t in seed_reader.read_trials()
             for target in t.get("same_as") or [] if t.get("doi") or t.get("work_id")]
    assert len(pairs) == 5
    for work, registry_id in pairs:
        trial = conn.execute(
            "SELECT t.id, t.registry_ids FROM trials t JOIN trial_reports r ON r.trial_id = t.id "
            "JOIN works w ON w.id = r.work_id WHERE coalesce(w.doi, 'url:' || w.url) = ?",
            (work,)).fetchone()
        assert registry_id in trial[1].split("; "), work
        link, note = (conn.execute("SELECT value FROM trial_facts WHERE trial_id = ? AND "
                                   "field = ?", (trial[0], f)).fetchone()[0]
                      for f in ("same_as", "note"))
        assert f"{registry_id} = {work}" in link or f"{work} = {registry_id}" in link
        # every linked entry's note is kept (it says whether a page states the link)
        assert all(t["note"] in note for t in seed_reader.read_trials()
                   if t.get("note") and registry_id in (t.get("registry_ids") or []))
        assert conn.execute("SELECT count(*) FROM trial_registry_ids WHERE registry_id = ?",
                            (registry_id,)).fetchone()[0] == 1
    # the works stay apart: one row per corpus work
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == 88


def test_seed_mesh_headings_are_loaded(built: Path) -> None:
    conn = sqlite3.connect(built)
    rows = conn.execute("SELECT m.descriptor, m.qualifier, m.major FROM mesh m JOIN works w "
                        "ON w.id = m.work_id WHERE w.doi = ?", (AMANAT,)).fetchall()
    headings = [h for w in seed_reader.read_works() if w["source_id"] == AMANAT
                for h in w.get("mesh") or []]
    assert headings and len(rows) == len(headings)
    assert conn.execute("SELECT count(DISTINCT work_id) FROM mesh").fetchone()[0] == 5


def test_graph_trial_nodes_carry_product_route_and_n(built: Path, runner: CliRunner) -> None:
    as_json = runner.invoke(cli, ["--db", str(built), "graph", "--doi", POOLED,
                                  "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    nodes = {n.get("doi"): n for n in json.loads(as_json.output)["nodes"]}
    assert nodes[AMANAT]["caption"] == "Amanat 2021 · UC-MSC · IT · n=72"
    assert (nodes[AMANAT]["cell_product"], nodes[AMANAT]["route"], nodes[AMANAT]["n"]) == \
        ("UC-MSC", "intrathecal", 72)
    assert nodes[ZARRABI]["caption"] == "Zarrabi 2022 · UCB-MNC · IT · n=72"
    assert nodes[META]["caption"] == nodes[META]["label"]  # not a trial's report
    for fmt in ("dot", "html"):
        picture = runner.invoke(cli, ["--db", str(built), "graph", "--doi", POOLED,
                                      "--format", fmt])
        assert picture.exit_code == 0 and "Zarrabi 2022 · UCB-MNC · IT · n=72" in picture.output
