"""kb.query.graph and `kb graph` / `kb gaps` on a small KB of real CP cell-therapy works."""
from __future__ import annotations

import csv
import io
import json
import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from click.testing import CliRunner

from kb.query import gaps, graph
from kb import store
from kb.cli import cli
from kb.errors import InputError, KBError
from tests import graph_kb
from tests.graph_kb import (AKAT, ALONE, AMANAT, C4L, DEFINITION, KIASAT, PARENTS, POOLED,
                            QU, RETRACTED, ZARRABI)


@pytest.fixture
def kb(tmp_path: Path) -> tuple[sqlite3.Connection, dict[str, int], Path]:
    path = tmp_path / "kb.db"
    conn = graph_kb.build(path)
    yield conn, graph_kb.work_ids(conn), path
    conn.close()


# -- neighbourhood ----------------------------------------------------------------------------

def test_neighbourhood_of_the_pooled_study(kb) -> None:
    conn, ids, _ = kb
    G = graph.neighbourhood(conn, ids[POOLED])
    # the review citing Amanat 2021 comes in as a review sharing the pooled study's trials
    assert set(G) == {ids[POOLED], ids[AMANAT], ids[ZARRABI], ids[C4L], ids[QU], ids[KIASAT]}
    assert G.graph["co_cited"] == [ids[QU]] and G.graph["coupled"] == [ids[KIASAT]]
    assert G.nodes[ids[KIASAT]]["level"] == 0 and G.nodes[ids[QU]]["distance"] == 2
    assert G.nodes[ids[AMANAT]]["label"] == "Amanat 2021"
    assert G.nodes[ids[AMANAT]]["study_design"] == "rct"
    assert G.nodes[ids[AMANAT]]["doi"] == AMANAT
    assert G.nodes[ids[AMANAT]]["pmid"] == "34362453"
    assert G.nodes[ids[POOLED]]["unverified"] is True
    assert G.nodes[ids[C4L]]["label"] == "Cells4Life 2025"
    assert G.nodes[ids[C4L]]["level"] == -1 and G.nodes[ids[ZARRABI]]["level"] == 1
    # pools and cites between the same pair are one edge; both services kept as sources
    edge = G.edges[ids[POOLED], ids[AMANAT]]
    assert edge["relation"] == "pools"
    assert edge["relations"] == ["pools", "cites"]
    assert {"openalex", "opencitations", C4L} <= set(edge["sources"])
    assert G.edges[ids[POOLED], ids[ZARRABI]]["relations"] == ["pools"]
    assert edge["reason"] == "pools: pools the trial's participants"
    assert edge["resolved_by"] == "doi"
    assert G.edges[ids[POOLED], ids[ZARRABI]]["resolved_by"] is None
    # edges among the neighbours are there too (the news article cites the trials)
    assert G.edges[ids[C4L], ids[ZARRABI]]["relation"] == "cites"
    assert G.edges[ids[C4L], ids[QU]]["resolved_by"] == "doi"
    assert G.edges[ids[KIASAT], ids[AMANAT]]["relation"] == "cites"
    assert G.number_of_edges() == 7


def test_directions_depth_and_co_citation_switch(kb) -> None:
    conn, ids, _ = kb
    refs = graph.neighbourhood(conn, ids[POOLED], direction="refs", reviews=False)
    assert set(refs) == {ids[POOLED], ids[AMANAT], ids[ZARRABI]}
    assert set(graph.neighbourhood(conn, ids[POOLED], direction="refs")) == set(refs) | {
        ids[KIASAT]}
    citers = graph.neighbourhood(conn, ids[POOLED], direction="cited-by", reviews=False)
    assert set(citers) == {ids[POOLED], ids[C4L]}
    assert set(graph.neighbourhood(conn, ids[POOLED], depth=0)) == {ids[POOLED]}
    deep = graph.neighbourhood(conn, ids[AMANAT], depth=2, direction="cited-by")
    assert deep.nodes[ids[C4L]]["level"] == -1 and deep.nodes[ids[KIASAT]]["level"] == -1
    assert deep.nodes[ids[POOLED]]["level"] == -1  # pools Amanat, cited by Cells4Life
    with pytest.raises(InputError):
        graph.neighbourhood(conn, ids[POOLED], direction="sideways")


def test_neighbourhood_counts_unresolved_references_and_truncates(kb) -> None:
    conn, ids, _ = kb
    G = graph.neighbourhood(conn, ids[AKAT])
    assert G.graph["unresolved_references"] == 1   # the Novak 2016 string without an id
    small = graph.neighbourhood(conn, ids[AKAT], depth=2, max_nodes=3)
    assert small.graph["truncated"] is True


def test_neighbourhood_uses_indexes_only(kb) -> None:
    """Every statement neighbourhood() runs on citations / lineage is an index search."""
    conn, ids, _ = kb
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    graph.neighbourhood(conn, ids[POOLED], depth=2)
    conn.set_trace_callback(None)
    checked = 0
    for sql in statements:
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        for table in ("citations", "lineage", "works"):
            assert f"SCAN {table}" not in plan.replace(" AS ", " "), (sql, plan)
        checked += 1
    assert checked >= 5


def test_neighbourhood_without_the_evidence_tables(tmp_path: Path) -> None:
    """A KB at schema 1 (no lineage table yet) still gives a graph from citations alone."""
    new = store.connect(tmp_path / "new.db")
    store.upsert_works(new, [record for record, _ in graph_kb.WORKS])
    new.close()
    conn = store.connect(tmp_path / "old.db", migrate_schema=False)
    store.migrate(conn, target=1)
    conn.execute("ATTACH ? AS new", (str(tmp_path / "new.db"),))
    for (table,) in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table' "
                                 "AND name NOT LIKE 'works_fts%'").fetchall():
        columns = ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))
        conn.execute(f"INSERT INTO main.{table}({columns}) SELECT {columns} FROM new.{table}")
    ids = graph_kb.work_ids(conn)
    G = graph.neighbourhood(conn, ids[C4L])
    assert {ids[POOLED], ids[AMANAT], ids[ZARRABI], ids[QU], ids[PARENTS]} <= set(G)
    assert all(d["relation"] == "cites" for *_, d in G.edges(data=True))
    assert graph.full_graph(conn).number_of_edges() == conn.execute(
        "SELECT count(*) FROM citations WHERE cited_id IS NOT NULL").fetchone()[0]


# -- roles ------------------------------------------------------------------------------------

def test_roles_of_the_pooled_study(kb) -> None:
    conn, ids, _ = kb
    G = graph.neighbourhood(conn, ids[POOLED])
    groups = graph.roles(G, ids[POOLED])
    assert groups["source trials"] == [ids[AMANAT], ids[ZARRABI]]
    assert groups["reviews"] == [ids[KIASAT], ids[QU]]   # oldest first
    assert groups["cited by"] == [ids[C4L]]
    assert groups["other references"] == [] and groups["further out"] == []


def test_roles_of_a_trial_and_of_a_review(kb) -> None:
    conn, ids, _ = kb
    G = graph.neighbourhood(conn, ids[AMANAT])
    groups = graph.roles(G, ids[AMANAT])
    # the pooled study (pools it), the review citing it, and the co-cited meta-analysis
    assert set(groups["reviews"]) == {ids[POOLED], ids[KIASAT], ids[QU]}
    assert groups["cited by"] == [ids[C4L]]
    assert groups["source trials"] == []
    R = graph.neighbourhood(conn, ids[KIASAT])
    review = graph.roles(R, ids[KIASAT])
    assert review["source trials"] == [ids[AMANAT]]   # a review's cited trial
    assert ids[DEFINITION] in review["other references"]


def test_plain_neighbourhood_reads_like_its_networkx_graph(kb) -> None:
    """The neighbourhood's plain data (what the terminal view and JSON read, without
    networkx) gives the same roles, text view and node-link JSON as its networkx graph."""
    from kb.render import graph as graph_render
    conn, ids, _ = kb
    for work_id in ids.values():
        for depth, direction in ((1, "both"), (2, "both"), (1, "refs"), (2, "cited-by")):
            P = graph.neighbourhood_data(conn, work_id, depth=depth, direction=direction)
            assert isinstance(P, graph.Neighbourhood)
            G = P.to_networkx()
            assert P.graph == G.graph and P.nodes == dict(G.nodes)
            assert graph.roles(P, work_id) == graph.roles(G, work_id)
            assert (graph_render.render_text(P, work_id, limit=None)
                    == graph_render.render_text(G, work_id, limit=None))
            graph_render.annotate(G, work_id)  # networkx's own node-link JSON, byte for byte
            networkx_json = json.dumps(nx.node_link_data(G), indent=2, ensure_ascii=False) + "\n"
            assert graph_render.render_json(P, work_id) == networkx_json
            assert graph_render.render_json(G, work_id) == networkx_json


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_cli_text_and_json_views_do_not_import_networkx(kb, fmt: str) -> None:
    _, _, path = kb
    probe = ("import sys; from kb.cli import cli\n"
             "try:\n    cli(['--db', sys.argv[1], 'graph', '--doi', sys.argv[2], '--format', "
             "sys.argv[3]])\n"
             "except SystemExit as done:\n"
             "    assert done.code == 0, done.code\n"
             "print('networkx' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", probe, str(path), POOLED, fmt],
                           capture_output=True, text=True, check=True).stdout
    assert shown.rstrip().endswith("False")
    if fmt == "text":
        assert "Source trials (2)" in shown
    else:
        data = json.loads(shown[:shown.rstrip().rindex("\n")])
        assert nx.node_link_graph(data).number_of_nodes() == len(data["nodes"]) > 5


# -- similar, rank, paths ---------------------------------------------------------------------

def test_similar_on_the_kb_matches_the_graph(kb) -> None:
    conn, ids, _ = kb
    from_sql = graph.similar(conn, ids[AMANAT], limit=0)
    from_graph = graph.similar(graph.full_graph(conn), ids[AMANAT], limit=0)
    assert from_sql == from_graph
    top = {row["id"]: row for row in from_sql}
    # Zarrabi 2022 is cited together with Amanat 2021 by the news article and the pooled study
    assert top[ids[ZARRABI]]["cocitation"] == 2
    assert from_sql[0]["id"] == ids[ZARRABI]
    assert top[ids[QU]]["cocitation"] == 1
    # the news article and the review both cite (or pool) what the pooled study pools
    coupled = {row["id"]: row["coupling"] for row in graph.similar(conn, ids[POOLED], limit=0)}
    assert coupled[ids[C4L]] == 2 and coupled[ids[KIASAT]] == 1


def test_rank_by_hand() -> None:
    """Two works citing a third, which cites nothing: its rank r3 and theirs (a) solve
    a = 0.15/3 + 0.85 r3/3 (its rank spread evenly) and 2a + r3 = 1: a = 10/47, r3 = 27/47."""
    ranked = graph.rank(nx.DiGraph([(1, 3), (2, 3)]))
    assert [(r["id"], r["in_degree"]) for r in ranked] == [(3, 2), (1, 0), (2, 0)]
    assert [r["pagerank"] for r in ranked] == pytest.approx([27 / 47, 10 / 47, 10 / 47],
                                                            abs=1e-9)
    assert graph.rank(nx.DiGraph([(1, 3), (2, 3)]), limit=1)[0]["id"] == 3


def test_rank_orders_the_kb(kb) -> None:
    conn, ids, _ = kb
    G = graph.full_graph(conn)
    ranked = graph.rank(G)
    assert len(ranked) == G.number_of_nodes()
    assert sum(r["pagerank"] for r in ranked) == pytest.approx(1.0)
    for row in ranked:
        assert row["in_degree"] == G.in_degree(row["id"])
    order = [row["id"] for row in ranked]
    # Amanat 2021 (3 citers, one of them pooling it) outranks the works that cite it
    assert order.index(ids[AMANAT]) < min(order.index(ids[POOLED]), order.index(ids[C4L]))
    assert max(ranked, key=lambda r: r["in_degree"])["id"] == ids[AMANAT]  # 3 citers
    assert [r["pagerank"] for r in ranked] == sorted((r["pagerank"] for r in ranked),
                                                     reverse=True)
    assert graph.rank(nx.DiGraph()) == []


def test_citation_paths_over_the_kb(kb) -> None:
    conn, ids, _ = kb
    assert graph.citation_path(conn, ids[C4L], ids[AMANAT]) == [ids[C4L], ids[AMANAT]]
    assert graph.citation_path(conn, ids[AMANAT], ids[C4L]) is None
    # the meta-analysis reaches the systematic review only through five links either way
    assert graph.citation_path(conn, ids[QU], ids[AKAT], directed=False, max_depth=4) is None
    assert len(graph.citation_path(conn, ids[QU], ids[AKAT], directed=False)) == 6
    linked = graph.citation_path(conn, ids[QU], ids[KIASAT], directed=False)
    assert linked == [ids[QU], ids[C4L], ids[AMANAT], ids[KIASAT]]
    G = graph.full_graph(conn)
    assert len(graph.citation_path(G, ids[QU], ids[KIASAT], directed=False)) == len(linked)
    P = graph.path_graph(conn, ids[AMANAT], ids[C4L])
    assert P.graph["how"] == "cited-by" and P.graph["path"] == [ids[AMANAT], ids[C4L]]
    assert P.has_edge(ids[C4L], ids[AMANAT])
    assert graph.path_graph(conn, ids[QU], ids[ALONE]) is None
    assert graph.citation_path(conn, ids[ALONE], ids[ALONE]) == [ids[ALONE]]


# -- gaps -------------------------------------------------------------------------------------

def test_gaps_ranks_stubs_by_citing_kb_works(kb) -> None:
    conn, ids, _ = kb
    rows = gaps.gaps(conn)
    assert [row["doi"] for row in rows] == [DEFINITION]
    row = rows[0]
    assert row["n_citers"] == 2 and row["status"] == "stub"
    assert row["title"] == "The Definition and Classification of Cerebral Palsy"
    assert [c["doi"] for c in row["citers"]] == [AKAT, KIASAT]  # newest first
    everything = gaps.gaps(conn, min_citers=1, limit=None)
    assert len(everything) == 12 and everything[0]["doi"] == DEFINITION
    assert all(r["n_citers"] >= 1 for r in everything)
    # eleven stubs, and Akat 2024's reference to Novak 2016, linked to no work
    assert [r["status"] for r in everything].count("stub") == 11
    novak = next(r for r in everything if r["status"] == "unlinked")
    assert novak["id"] is None and novak["year"] == 2016 and set(novak) == set(everything[0])
    assert novak["reference"].startswith("Novak I, et al. Concise review")
    assert [c["doi"] for c in novak["citers"]] == [AKAT]
    assert PARENTS in {r["url"] for r in everything}
    on_topic = gaps.gaps(conn, topic="systematic review", min_citers=1, limit=None)
    assert {r["id"] for r in on_topic} == {None} | {row[0] for row in conn.execute(
        "SELECT cited_id FROM citations WHERE citing_id = ? AND cited_id IS NOT NULL",
        (ids[AKAT],))}
    assert gaps.gaps(conn, topic="systematic review") == []
    with pytest.raises(InputError):
        gaps.gaps(conn, topic="***")


def test_gaps_groups_unlinked_references_naming_one_work(kb) -> None:
    """References without identifiers, as PubMed and Crossref print them, count together
    when they name the same work; one that names nothing identifiable never does."""
    conn, ids, _ = kb
    novak_2013 = ("A systematic review of interventions for children with cerebral palsy: "
                  "state of the evidence")
    cites = {
        AMANAT: [{"unstructured": "Dev Med Child Neurol. 2013 Oct;55(10):885-910."},
                 {"title": novak_2013, "year": 2013, "first_author": "Novak"},
                 {"unstructured": "Min et al [39], 2013 (South Korea, n=105)"}],
        ZARRABI: [{"unstructured": "Dev Med Child Neurol. 2013;55(10):885-910"},
                  {"title": novak_2013 + ".", "year": 2013, "first_author": "Novak I"},
                  {"unstructured": "Min et al [39], 2013 (South Korea, n=105)"}],
    }
    with store.transaction(conn):
        for doi, refs in cites.items():
            store.upsert_work(conn, {"source": "crossref", "doi": doi, "references": [
                {**ref, "position": 90 + i} for i, ref in enumerate(refs)]})
    rows = gaps.gaps(conn)  # each cited by two: newest first
    assert [r["status"] for r in rows] == ["unlinked", "unlinked", "stub"]
    assert rows[2]["doi"] == DEFINITION
    by_reference = {r["reference"]: r for r in rows[:2]}
    printed = by_reference["Dev Med Child Neurol. 2013 Oct;55(10):885-910."]
    assert printed["year"] == 2013 and printed["n_citers"] == 2
    assert {c["doi"] for c in printed["citers"]} == {AMANAT, ZARRABI}
    titled = next(r for r in rows[:2] if r["title"])
    assert titled["label"] == "Novak 2013" and titled["title"] == novak_2013
    assert not any("Min et al" in (r["reference"] or "") for r in gaps.gaps(
        conn, min_citers=1, limit=None))
    table = _run(kb[2], "gaps")
    assert "(not linked)" in table.output and "Dev Med Child Neurol. 2013" in table.output
    data = list(csv.DictReader(io.StringIO(_run(kb[2], "gaps", "--format", "csv").stdout)))
    assert [row["status"] for row in data] == ["unlinked", "unlinked", "stub"]
    ids_only = json.loads(_run(kb[2], "gaps", "--ids-only", "--format", "json").stdout)
    assert [row["doi"] for row in ids_only] == [DEFINITION]


def test_gaps_reads_citations_once(kb) -> None:
    """The ranking query walks citations and looks works up by key (never stub x full)."""
    conn, _, _ = kb
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    gaps.gaps(conn, topic="cerebral palsy")
    conn.set_trace_callback(None)
    ranking = next(s for s in statements if "GROUP BY c.cited_id" in s)
    plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {ranking}")]
    steps = [p for p in plan if p.startswith(("SCAN", "SEARCH"))]
    assert steps[0].startswith(("SCAN c", "SEARCH c"))
    lookups = [p for p in steps if p.startswith(("SEARCH s", "SEARCH k"))]
    assert len(lookups) == 2 and all("rowid=?" in p for p in lookups), plan


def test_find_work(kb) -> None:
    conn, ids, _ = kb
    assert graph.find_work(conn, f"https://doi.org/{AMANAT.upper()}") == ids[AMANAT]
    assert graph.find_work(conn, "PMID: 34362453") == ids[AMANAT]
    assert graph.find_work(conn, "PMC9794999") == ids[QU]
    assert graph.find_work(conn, C4L) == ids[C4L]
    with pytest.raises(KBError, match="10.1234/not-in-kb"):
        graph.find_work(conn, "10.1234/not-in-kb")
    with pytest.raises(InputError):
        graph.find_work(conn, "10.12")


# -- the commands -----------------------------------------------------------------------------

def _run(path: Path, *args: str) -> object:
    return CliRunner().invoke(cli, ["--db", str(path), *args], env={"COLUMNS": "200"})


def _section(text: str, name: str) -> str:
    """The lines of one group of the terminal view."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(name))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(lines[start:end])


def test_cli_graph_text_view(kb) -> None:
    _, _, path = kb
    result = _run(path, "graph", "--doi", f"doi:{POOLED.upper()}")
    assert result.exit_code == 0, result.output
    trials = _section(result.output, "Source trials (2)")
    assert "Amanat 2021" in trials and AMANAT in trials and "rct" in trials
    assert "Zarrabi 2022" in trials and ZARRABI in trials and "pools" in trials
    reviews = _section(result.output, "Reviews (2)")
    assert "Qu 2022" in reviews and "meta-analysis" in reviews and "co-cited" in reviews
    assert "Kiasatdolatabadi 2017" in reviews and "same trials" in reviews
    assert "Cells4Life 2025" in _section(result.output, "Cited by (1)")
    assert result.output.startswith("Nouri 2025 · Cell-Based Therapy for Cerebral Palsy")
    assert "unverified" in result.output.splitlines()[1]


def test_cli_graph_marks_retracted_and_stub_works(kb) -> None:
    _, _, path = kb
    result = _run(path, "graph", "--pmid", "36588957")
    assert result.exit_code == 0, result.output
    assert "[RETRACTED] A hypothetical retracted" in _section(result.output, "Source trials")
    result = _run(path, "graph", "--id", C4L, "--direction", "refs")
    assert result.exit_code == 0, result.output
    assert "[stub] Cerebral Palsy Response" in result.output


def test_cli_graph_json_matches_the_text_view(kb) -> None:
    _, ids, path = kb
    result = _run(path, "graph", "--doi", POOLED, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    G = nx.node_link_graph(data)
    roles = {G.nodes[n]["doi"] or G.nodes[n]["url"]: G.nodes[n]["role"] for n in G}
    assert roles == {POOLED: "focus", AMANAT: "source trials", ZARRABI: "source trials",
                     QU: "reviews", KIASAT: "reviews", C4L: "cited by"}
    assert G.edges[ids[POOLED], ids[ZARRABI]]["relation"] == "pools"
    assert G.graph["focus"] == ids[POOLED]


def test_cli_graph_errors(kb, tmp_path: Path) -> None:
    _, _, path = kb
    unknown = _run(path, "graph", "--doi", "10.1234/no-such-work")
    assert unknown.exit_code == 1
    assert "10.1234/no-such-work" in unknown.output and "Traceback" not in unknown.output
    malformed = _run(path, "graph", "--doi", "10.12/")
    assert malformed.exit_code == 2 and "not a DOI" in malformed.output
    assert _run(path, "graph", "--pmid", "abc").exit_code == 2
    assert _run(path, "graph").exit_code == 2
    assert _run(path, "graph", "--doi", POOLED, "--pmid", "34362453").exit_code == 2
    assert _run(path, "graph", "--doi", POOLED, "--similar", "--format", "png").exit_code == 2
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file")
    unwritable = _run(path, "graph", "--doi", POOLED, "--format", "svg", "--out",
                      str(blocked / "graph.svg"))
    assert unwritable.exit_code == 2 and "cannot write" in unwritable.output
    assert "Traceback" not in unwritable.output
    missing = _run(tmp_path / "absent.db", "graph", "--doi", POOLED)
    assert missing.exit_code != 0 and not (tmp_path / "absent.db").exists()


def test_cli_png_refuses_a_terminal_but_writes_to_a_pipe(kb, tmp_path: Path) -> None:
    _, _, path = kb
    env = {**os.environ, "KB_DB": str(path)}
    command = [sys.executable, "-m", "kb.cli", "graph", "--doi", POOLED, "--format", "png"]
    leader, follower = pty.openpty()
    try:
        tty = subprocess.run(command, stdout=follower, stderr=subprocess.PIPE, env=env,
                             timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert tty.returncode == 2 and b"--out" in tty.stderr
    piped = subprocess.run(command, capture_output=True, env=env, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith(b"\x89PNG\r\n\x1a\n")


def test_cli_similar_rank_and_path(kb) -> None:
    _, ids, path = kb
    similar = _run(path, "graph", "--doi", AMANAT, "--similar", "--format", "json")
    assert similar.exit_code == 0, similar.output
    rows = json.loads(similar.output)["similar"]
    assert {r["doi"] for r in rows} >= {ZARRABI, QU}
    text = _run(path, "graph", "--doi", AMANAT, "--similar")
    assert "Zarrabi 2022" in text.output and "co-cited 1" in text.output
    ranked = _run(path, "graph", "--rank", "--format", "json", "--limit", "3")
    assert ranked.exit_code == 0, ranked.output
    data = json.loads(ranked.output)
    assert len(data["ranked"]) == 3 and data["works_in_kb"] == 20
    assert data["ranked"][0]["pagerank"] >= data["ranked"][2]["pagerank"]
    around = _run(path, "graph", "--doi", POOLED, "--rank")
    assert around.exit_code == 0 and "Amanat 2021" in around.output
    path_text = _run(path, "graph", "--path", QU, KIASAT)
    assert path_text.exit_code == 0, path_text.output
    assert path_text.output.splitlines()[0] == "3 steps from Qu 2022 to Kiasatdolatabadi 2017:"
    as_json = _run(path, "graph", "--path", C4L, AMANAT, "--format", "json")
    assert json.loads(as_json.output)["graph"]["path"] == [ids[C4L], ids[AMANAT]]
    none = _run(path, "graph", "--path", QU, ALONE)
    assert none.exit_code == 1 and "no citation path" in none.output


def test_cli_gaps(kb, tmp_path: Path) -> None:
    _, _, path = kb
    table = _run(path, "gaps")
    assert table.exit_code == 0, table.output
    assert DEFINITION in table.output and "Akat 2024, Kiasatdolatabadi 2017" in table.output
    data = json.loads(_run(path, "gaps", "--format", "json").output)
    assert data[0]["n_citers"] == 2 and data[0]["doi"] == DEFINITION
    out = tmp_path / "gaps.csv"
    assert _run(path, "gaps", "--format", "csv", "--min-citers", "1", "--out", str(out)
                ).exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 12 and rows[0]["doi"] == DEFINITION
    assert rows[0]["cited_by"] == f"{AKAT}; {KIASAT}"
    empty = _run(path, "gaps", "--topic", "mesenchymal", "--format", "json")
    assert empty.exit_code == 0 and json.loads(empty.stdout) == []
    assert "no missing work" in empty.stderr
    assert _run(path, "gaps", "--topic", "!!!").exit_code == 2
    assert RETRACTED not in table.output


def test_evidence_flags_are_marked(kb) -> None:
    """A flag from the evidence layer (work_flags / work_marks) shows on the work's line."""
    from kb.store import evidence
    conn, ids, path = kb
    evidence.replace_flags(conn, [
        {"work_id": ids[QU], "flag": "depends-on-retracted", "other_work_id": ids[RETRACTED],
         "reason": "cites a retracted trial (test)"},
        {"work_id": ids[RETRACTED], "flag": "retracted", "reason": "test record"}])
    G = graph.neighbourhood(conn, ids[POOLED])
    assert G.nodes[ids[QU]]["mark"] == "DEPENDS ON RETRACTED"
    assert G.nodes[ids[QU]]["is_retracted"] is False
    text = _run(path, "graph", "--doi", POOLED).output
    assert "[DEPENDS ON RETRACTED] Efficacy and safety" in _section(text, "Reviews (2)")
