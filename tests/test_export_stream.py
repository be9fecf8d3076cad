"""`kb export --format citations-csv` of the whole KB streams every edge from one statement (no
search, nothing held in memory), with the same pairs as the search path gives."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from kb.query import export, search
from kb.formats.citations_csv import cell
from tests import graph_kb


@pytest.mark.parametrize("stubs", [False, True])
def test_whole_kb_edge_export_streams_the_same_pairs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stubs: bool) -> None:
    conn = graph_kb.build(tmp_path / "kb.db")
    hits = search.search(conn, None, limit=None, stubs=stubs).hits
    expected = []
    for hit in hits:  # the works as kb search lists them, each work's references in order
        expected += [(cell(*row[:3]), cell(*row[3:])) for row in conn.execute(
                         "SELECT f.doi, f.pmid, f.url, t.doi, t.pmid, t.url FROM citations c "
                         "JOIN works f ON f.id = c.citing_id JOIN works t ON t.id = c.cited_id "
                         "WHERE c.citing_id = ? ORDER BY c.position IS NULL, c.position, c.id",
                         (hit.id,))]

    def no_search(*args: object, **kwargs: object) -> None:
        raise AssertionError("the whole-KB export must not go through search")

    monkeypatch.setattr(search, "search", no_search)
    out = io.StringIO()
    count = export.export_citations(conn, None, out, stubs=stubs)
    lines = out.getvalue().splitlines()
    assert lines[0] == "citing,cited" and count == len(expected) == len(lines) - 1 > 5
    assert [tuple(line.split(",", 1)) for line in lines[1:]] == expected
    conn.close()
