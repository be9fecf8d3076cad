"""Every output of `kb graph` parsed back: GraphML / GEXF by networkx, JSON by json, DOT by
pydot, PNG as a PNG of sensible size, SVG as XML, HTML as one self-contained page."""
from __future__ import annotations

import io
import json
import re
import struct
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import networkx as nx
import pydot
import pytest
from click.testing import CliRunner

from kb.query import graph
from kb.render import graph as graph_render
from kb import store
from kb.cli import cli
from tests import graph_kb
from tests.graph_kb import AMANAT, C4L, KIASAT, POOLED, QU, RETRACTED, ZARRABI


@pytest.fixture
def kb(tmp_path: Path):
    path = tmp_path / "kb.db"
    conn = graph_kb.build(path)
    yield conn, graph_kb.work_ids(conn), path
    conn.close()


@pytest.fixture
def pooled(kb):
    conn, ids, _ = kb
    return graph.neighbourhood(conn, ids[POOLED]), ids


def _export(path: Path, fmt: str, out: Path, doi: str = POOLED) -> Path:
    result = CliRunner().invoke(cli, ["--db", str(path), "graph", "--doi", doi, "--format", fmt,
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _by_doi(G: nx.Graph) -> dict[str, dict]:
    return {d.get("doi") or d.get("url"): d for _, d in G.nodes(data=True)}


def test_graphml_reads_back(kb, tmp_path: Path) -> None:
    _, ids, path = kb
    G = nx.read_graphml(_export(path, "graphml", tmp_path / "g.graphml"))
    assert G.is_directed() and G.number_of_nodes() == 6 and G.number_of_edges() == 7
    nodes = _by_doi(G)
    assert nodes[AMANAT]["label"] == "Amanat 2021" and nodes[AMANAT]["role"] == "source trials"
    assert nodes[QU]["role"] == "reviews" and nodes[POOLED]["role"] == "focus"
    assert nodes[POOLED]["unverified"] is True and nodes[AMANAT]["year"] == 2021
    edge = G.edges[str(ids[POOLED]), str(ids[AMANAT])]
    assert edge["relation"] == "pools" and edge["relations"] == "pools; cites"


def test_gexf_reads_back_with_colours(kb, tmp_path: Path) -> None:
    _, ids, path = kb
    G = nx.read_gexf(_export(path, "gexf", tmp_path / "g.gexf"))
    assert G.number_of_nodes() == 6 and G.number_of_edges() == 7
    nodes = _by_doi(G)
    assert nodes[ZARRABI]["study_design"] == "rct"
    assert nodes[ZARRABI]["viz"]["color"] == {"r": 0x1f, "g": 0x4e, "b": 0x99, "a": 1.0}
    assert nodes[POOLED]["viz"]["size"] > nodes[ZARRABI]["viz"]["size"]
    assert G.edges[str(ids[POOLED]), str(ids[ZARRABI])]["relation"] == "pools"


def test_json_is_node_link(kb, tmp_path: Path) -> None:
    _, ids, path = kb
    data = json.loads(_export(path, "json", tmp_path / "g.json").read_text(encoding="utf-8"))
    assert {"nodes", "edges", "graph", "directed"} <= set(data)
    G = nx.node_link_graph(data)
    assert G.graph["focus"] == ids[POOLED] and G.graph["co_cited"] == [ids[QU]]
    assert G.nodes[ids[C4L]]["role"] == "cited by"
    assert set(G.edges[ids[POOLED], ids[AMANAT]]["sources"]) == {C4L, "openalex",
                                                                 "opencitations"}


def test_dot_parses_with_pydot(kb, tmp_path: Path) -> None:
    _, ids, path = kb
    text = _export(path, "dot", tmp_path / "g.dot").read_text(encoding="utf-8")
    (dot,) = pydot.graph_from_dot_data(text)
    nodes = {n.get_name().strip('"'): n for n in dot.get_nodes()
             if n.get_name() not in ("node", "edge", "graph")}
    assert set(nodes) == {str(i) for i in (ids[POOLED], ids[AMANAT], ids[ZARRABI], ids[QU],
                                           ids[C4L], ids[KIASAT])}
    assert nodes[str(ids[AMANAT])].get("label").strip('"') == "Amanat 2021"
    assert nodes[str(ids[AMANAT])].get("doi").strip('"') == AMANAT
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"')): e
             for e in dot.get_edges()}
    assert len(edges) == 7
    pools = edges[(str(ids[POOLED]), str(ids[ZARRABI]))]
    assert pools.get("relation").strip('"') == "pools"
    assert float(pools.get("penwidth").strip('"')) > float(
        edges[(str(ids[C4L]), str(ids[QU]))].get("penwidth").strip('"'))


def test_dot_escapes_quotes_and_backslashes(pooled) -> None:
    G, ids = pooled
    G.nodes[ids[QU]]["title"] = 'A "quoted" title \\ with a backslash, ending in one\\'
    G.nodes[ids[POOLED]]["caption"] = 'Line one\nC:\\ "two"\\'
    (dot,) = pydot.graph_from_dot_data(graph_render.render_dot(G, ids[POOLED]))
    nodes = {_dot_text(n.get_name()): n for n in dot.get_nodes()
             if n.get_name() not in ("node", "edge")}
    assert set(nodes) == {str(node) for node in G}
    assert (_dot_text(nodes[str(ids[QU])].get("tooltip"))
            == 'A "quoted" title \\ with a backslash, ending in one\\')
    assert _dot_text(nodes[str(ids[POOLED])].get("label")) == 'Line one\nC:\\ "two"\\'
    for node, data in G.nodes(data=True):
        if data.get("title") and node != ids[QU]:
            assert _dot_text(nodes[str(node)].get("tooltip")) == data["title"]


def _dot_text(quoted: str) -> str:
    """The text of a DOT double-quoted string as pydot returns it (quotes and escapes kept)."""
    assert quoted[0] == quoted[-1] == '"', quoted
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], quoted[1:-1])


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_png_is_a_readable_picture(kb, tmp_path: Path) -> None:
    _, _, path = kb
    data = _export(path, "png", tmp_path / "g.png").read_bytes()
    width, height = _png_size(data)
    assert 800 <= width <= 3000 and 400 <= height <= 3000
    from matplotlib.image import imread
    pixels = imread(io.BytesIO(data))
    colours = {tuple((pixels[y, x, :3] * 255).round().astype(int))
               for y in range(0, height, 3) for x in range(0, width, 3)}
    # the trials' blue, the pooled study's purple and the meta-analysis' red are drawn
    for hex_colour in ("#1f4e99", "#7b3fa0", "#c0392b"):
        rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        assert any(sum(abs(a - b) for a, b in zip(rgb, c)) < 12 for c in colours), hex_colour


def test_svg_keeps_labels_and_legend_as_text(pooled) -> None:
    G, ids = pooled
    svg = graph_render.render(G, ids[POOLED], "svg")
    assert isinstance(svg, bytes) and svg.startswith(b"<?xml")
    root = ET.fromstring(svg)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for label in ("Nouri 2025", "Amanat 2021", "Zarrabi 2022", "Qu 2022", "Cells4Life 2025",
                  "rct", "pooled-analysis", "meta-analysis", "pools →", "cites →"):
        assert label in texts


class _Resources(HTMLParser):
    """Collects everything in a page that would make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "img", "iframe", "embed", "source", "audio", "video") and \
                values.get("src"):
            self.fetches.append(values["src"] or "")
        if tag == "link":
            self.fetches.append(values.get("href") or "")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def test_html_is_one_self_contained_page(kb, tmp_path: Path) -> None:
    _, ids, path = kb
    page = _export(path, "html", tmp_path / "g.html").read_text(encoding="utf-8")
    parser = _Resources()
    parser.feed(page)
    assert parser.fetches == []
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page)
    code = " ".join(parser.scripts)
    assert "fetch(" not in code and "XMLHttpRequest" not in code and "import(" not in code
    data = json.loads(parser.scripts[0])
    assert data["focus"] == ids[POOLED]
    labels = {n["label"]: n for n in data["nodes"]}
    assert set(labels) == {"Nouri 2025", "Amanat 2021", "Zarrabi 2022", "Qu 2022",
                           "Cells4Life 2025", "Kiasatdolatabadi 2017"}
    assert labels["Amanat 2021"]["role"] == "source trials"
    assert {e["relation"] for e in data["edges"]} == {"pools", "cites"}
    assert "</script>" not in parser.scripts[0]


def test_html_data_cannot_break_out_of_its_script(pooled) -> None:
    G, ids = pooled
    G.nodes[ids[QU]]["title"] = "</script><script>alert(1)</script>"
    page = graph_render.render_html(G, ids[POOLED])
    assert page.count("<script") == 2 and "alert(1)</script>" not in page


def test_text_view_marks_and_limits(kb) -> None:
    conn, ids, _ = kb
    G = graph.neighbourhood(conn, ids[QU])
    text = graph_render.render_text(G, ids[QU], width=160)
    assert "[RETRACTED] A hypothetical retracted" in text
    assert RETRACTED in text
    akat = graph.neighbourhood(conn, ids[graph_kb.AKAT])
    short = graph_render.render_text(akat, ids[graph_kb.AKAT], width=100, limit=2)
    assert "Other references (6)" in short and "… 4 more (--limit 0 shows all)" in short
    assert "[stub]" in short
    assert "1 of its references not linked to a work yet" in short


def test_a_large_neighbourhood_still_draws(tmp_path: Path) -> None:
    """A review citing 120 works: the picture stays within bounds and is written."""
    conn = store.connect(tmp_path / "big.db")
    refs = [{"doi": f"10.5555/kb-test.ref{i}", "title": f"Reference {i}", "year": 2000 + i % 20,
             "first_author": f"Author{i}"} for i in range(120)]
    (result,) = store.upsert_works(conn, [{"source": "corpus", "doi": "10.5555/kb-test.review",
                                           "title": "A large review", "year": 2024,
                                           "references": refs}])
    store.set_study_design(conn, result.work_id, "review", "curated")
    G = graph.neighbourhood(conn, result.work_id)
    width, height = _png_size(graph_render.render(G, result.work_id, "png"))
    assert width <= 26 * 110 and height <= 26 * 110
    assert "A large review" in graph_render.render_html(G, result.work_id)
    conn.close()


def test_pictures_of_huge_neighbourhoods_are_capped(tmp_path: Path) -> None:
    """A review citing 400 works: the page draws 300 of them and says so."""
    conn = store.connect(tmp_path / "huge.db")
    refs = [{"doi": f"10.5555/kb-test.ref{i}"} for i in range(400)]
    (result,) = store.upsert_works(conn, [{"source": "corpus", "doi": "10.5555/kb-test.huge",
                                           "title": "A huge review", "references": refs}])
    G = graph.neighbourhood(conn, result.work_id)
    assert G.number_of_nodes() == 401
    page = graph_render.render_html(G, result.work_id)
    parser = _Resources()
    parser.feed(page)
    data = json.loads(parser.scripts[0])
    assert len(data["nodes"]) == graph_render.MAX_DRAWN
    assert any(n["focus"] for n in data["nodes"])
    assert "(showing 300 of 401 works)" in page
    conn.close()


def test_html_marks_unverified_works_as_the_other_views_do(kb, tmp_path: Path) -> None:
    _, _, path = kb
    page = _export(path, "html", tmp_path / "g.html").read_text(encoding="utf-8")
    parser = _Resources()
    parser.feed(page)
    nouri = next(n for n in json.loads(parser.scripts[0])["nodes"] if n["label"] == "Nouri 2025")
    assert nouri["marks"] == ["unverified"]
    assert "n.marks.join" in page  # the label and the details show the marks


def test_pictures_are_not_a_wide_strip(kb, tmp_path: Path) -> None:
    _, _, path = kb
    width, height = _png_size(_export(path, "png", tmp_path / "g.png").read_bytes())
    assert width / height <= 2.1, (width, height)
    svg = _export(path, "svg", tmp_path / "g.svg").read_text(encoding="utf-8")
    root = ET.fromstring(svg)
    ratio = float(root.get("width").rstrip("pt")) / float(root.get("height").rstrip("pt"))
    assert ratio <= 2.1
