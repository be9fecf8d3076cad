"""Ways to show a citation neighbourhood: a terminal view grouped by role, networkx node-link
JSON, GraphML, GEXF, Graphviz DOT, a drawn PNG / SVG, and one self-contained HTML page.

Every renderer takes the graph from :func:`kb.query.graph.neighbourhood` and its focus, and returns
``str`` (text formats) or ``bytes`` (PNG). networkx and matplotlib are imported inside.

DOT is written here rather than by ``networkx.nx_pydot.to_pydot``: pydot (4.0) escapes the
double quotes in a value but not its backslashes, so a title ending in ``\\`` yields DOT
that neither Graphviz nor pydot can parse; it would also make pydot a dependency for one
format. :func:`_dot_id` escapes both, and the tests parse the DOT back with pydot.
"""
from __future__ import annotations

import functools
import json
import math
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from ..query.graph import (REVIEW_DESIGNS, ROLES, TRIAL_DESIGNS, Graph, co_cited, links,
                           roles)

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["FORMATS", "BINARY_FORMATS", "DESIGN_COLOURS", "render", "annotate", "layout",
           "render_text", "render_path_text", "work_ident", "render_json", "render_graphml",
           "render_gexf", "render_dot",
           "render_image", "render_html"]

BINARY_FORMATS = frozenset({"png"})

#: Node colour per study design (trials blue, syntheses warm, observational green).
DESIGN_COLOURS: dict[str, str] = {
    "rct": "#1f4e99",
    "controlled-trial": "#3b7dd8",
    "open-label-trial": "#8cbcf0",
    "pooled-analysis": "#7b3fa0",
    "meta-analysis": "#c0392b",
    "systematic-review": "#e67e22",
    "review": "#f4c542",
    "cohort": "#1e8449",
    "case-series": "#52be80",
    "case-report": "#a9dfbf",
    "preclinical": "#8d6e63",
    "protocol": "#45b5aa",
    "web-article": "#95a5a6",
    "other": "#d5d8dc",
}
UNKNOWN_COLOUR = "#f2f2f2"
#: Drawing style per edge relation: (colour, width, line style).
EDGE_STYLES: dict[str, tuple[str, float, Literal["solid", "dashed", "dotted"]]] = {
    "pools": ("#7b3fa0", 2.8, "solid"),
    "follow_up_of": ("#1e8449", 2.0, "dashed"),
    "same_trial": ("#1e8449", 2.0, "dotted"),
    "cites": ("#8a8f94", 1.0, "solid"),
}
_ROLE_ORDER = {name: i for i, name in enumerate(("focus",) + ROLES)}


def _colour(design: str | None) -> str:
    return DESIGN_COLOURS.get(design or "", UNKNOWN_COLOUR)


def annotate(G: Graph, focus: int) -> dict[str, list[int]]:
    """Set each node's ``role`` (see :func:`kb.query.graph.roles`; the focus gets ``focus``) and
    return the groups."""
    groups = roles(G, focus)
    G.nodes[focus]["role"] = "focus"
    for name, members in groups.items():
        for node in members:
            G.nodes[node]["role"] = name
    return groups


# -- terminal view --------------------------------------------------------------------------

def work_ident(attrs: dict[str, Any]) -> str:
    """The DOI, else "PMID n", else the URL: what a reader can look a work up by."""
    if attrs.get("doi"):
        return attrs["doi"]
    if attrs.get("pmid"):
        return f"PMID {attrs['pmid']}"
    return attrs.get("url") or f"work {attrs.get('id')}"


def _marks(attrs: dict[str, Any]) -> list[str]:
    marks = []
    if attrs.get("mark"):
        marks.append(attrs["mark"])
    if attrs.get("status") == "stub":
        marks.append("stub")
    if attrs.get("unverified"):
        marks.append("unverified")
    return marks


def _how(G: Graph, focus: int, node: int,
         around: tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]) -> str:
    """How a neighbour relates to the focus, in a word or two (``around``: the focus's
    :func:`~kb.query.graph.links`)."""
    refs, citers = around
    if node in refs:
        relation = refs[node]["relation"]
        return "cited" if relation == "cites" else relation.replace("_", " ")
    if node in citers:
        relation = citers[node]["relation"]
        return {"cites": "cites it", "pools": "pools it", "follow_up_of": "follows it up",
                "same_trial": "same trial"}.get(relation, relation)
    if co_cited(G, citers, node):
        return "co-cited"
    shared = [ref for ref in refs if (node, ref) in G.edges]
    if shared:
        trials = any(G.nodes[r].get("study_design") in TRIAL_DESIGNS for r in shared)
        return "same trials" if trials else "same refs"
    steps = int(G.nodes[node].get("distance") or 0)
    return f"{steps} steps" if steps > 1 else ""


def render_text(G: Graph, focus: int, *, width: int = 120, limit: int | None = 25) -> str:
    """The terminal view: the focus, then its neighbours grouped by role, one work a line:
    first author and year, design, how it relates (cited, pools, cites it, co-cited …),
    title with [RETRACTED] / [stub] / [unverified] marks, and DOI (else PMID, else URL)."""
    groups = annotate(G, focus)
    attrs = G.nodes[focus]
    lines = [f"{attrs['label']} · {attrs.get('title') or '(no title)'}"]
    facts = [attrs.get("study_design") or "design unknown", attrs.get("journal"),
             work_ident(attrs)] + _marks(attrs)
    lines.append(" · ".join(f for f in facts if f))
    depth, direction = G.graph.get("depth", 1), G.graph.get("direction", "both")
    summary = (f"depth {depth}, {'both directions' if direction == 'both' else direction}: "
               f"{len(G.nodes) - 1} related works, {len(G.edges)} edges")
    if G.graph.get("unresolved_references"):
        summary += (f"; {G.graph['unresolved_references']} of its references not linked to a "
                    "work yet")
    lines.append(summary)
    if G.graph.get("truncated"):
        lines.append("(neighbourhood truncated: too many works; lower --depth)")
    shown = {name: members[:limit] if limit else members for name, members in groups.items()}
    around = links(G, focus)
    rows = [(n, _how(G, focus, n, around)) for members in shown.values() for n in members]
    widths = [max([len(text) for text in column] + [1]) for column in zip(*(
        ((G.nodes[n].get("label") or "")[:24], G.nodes[n].get("study_design") or "design ?",
         how, work_ident(G.nodes[n])) for n, how in rows))] or [1, 1, 1, 1]
    ident_width = min(widths[3], 32)
    room = max(30, width - 2 - (widths[0] + 1) - (widths[1] + 1) - (widths[2] + 1)
               - 2 - ident_width)
    how = dict(rows)
    synthesis = attrs.get("study_design") in REVIEW_DESIGNS
    for name in ROLES:
        members = groups[name]
        if not members and not (name == "source trials" and synthesis):
            continue
        lines += ["", f"{name.capitalize()} ({len(members)})"]
        if not members:
            lines.append("  none in the knowledge base")
        for node in shown[name]:
            data = G.nodes[node]
            title = "".join(f"[{m}] " for m in _marks(data)) + (data.get("title") or "(no title)")
            if len(title) > room:
                title = title[:room - 1].rsplit(" ", 1)[0].rstrip(" ,;:-") + "…"
            lines.append(f"  {(data.get('label') or '')[:24]:<{widths[0]}} "
                         f"{data.get('study_design') or 'design ?':<{widths[1]}} "
                         f"{how[node]:<{widths[2]}} {title:<{room}}  {work_ident(data)}")
        if len(shown[name]) < len(members):
            lines.append(f"  … {len(members) - len(shown[name])} more (--limit 0 shows all)")
    return "\n".join(lines) + "\n"


def render_path_text(P: nx.DiGraph) -> str:
    """A citation path (from :func:`kb.query.graph.path_graph`) as one work a line, with arrows."""
    found = P.graph["path"]
    lines = [f"{len(found) - 1} step{'' if len(found) == 2 else 's'} from "
             f"{P.nodes[found[0]]['label']} to {P.nodes[found[-1]]['label']}:"]
    for i, node in enumerate(found):
        if i:
            prev = found[i - 1]
            if P.has_edge(prev, node):
                lines.append(f"    ↓ {P.edges[prev, node]['relation']}")
            else:
                relation = P.edges[node, prev]["relation"]
                lines.append(f"    ↑ {relation} (the work below {relation} the one above)")
        attrs = P.nodes[node]
        lines.append(f"  {attrs['label']}  {attrs['short_title'] or '(no title)'}  "
                     f"{work_ident(attrs)}")
    return "\n".join(lines) + "\n"


# -- interchange formats --------------------------------------------------------------------

def render_json(G: Graph, focus: int) -> str:
    """networkx node-link JSON (``nodes``, ``edges``; what ``networkx.node_link_graph`` reads),
    each node with its ``role``. Written from the graph's dicts, so a
    :class:`~kb.query.graph.Neighbourhood` needs no networkx (its import is half of a
    ``kb graph`` run). Edges are listed by their citing work, in node order, as networkx does."""
    annotate(G, focus)
    position = {n: i for i, n in enumerate(G.nodes)}
    data = {"directed": True, "multigraph": False, "graph": G.graph,
            "nodes": [{**G.nodes[n], "id": n} for n in G.nodes],
            "edges": [{**G.edges[u, v], "source": u, "target": v}
                      for u, v in sorted(G.edges, key=lambda edge: position[edge[0]])]}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _flat(G: nx.DiGraph, focus: int) -> nx.DiGraph:
    """A copy with only scalar attributes (lists joined by "; ", None dropped), for XML."""
    annotate(G, focus)
    H = G.__class__()

    def clean(data: dict[str, Any]) -> dict[str, Any]:
        return {k: "; ".join(map(str, v)) if isinstance(v, list) else v
                for k, v in data.items() if v is not None and v != []}

    H.graph.update(clean(G.graph))

    H.add_nodes_from((n, clean(d)) for n, d in G.nodes(data=True))
    H.add_edges_from((u, v, clean(d)) for u, v, d in G.edges(data=True))
    return H


def render_graphml(G: nx.DiGraph, focus: int) -> str:
    """GraphML (yEd, Cytoscape, networkx.read_graphml)."""
    import networkx as nx
    return "\n".join(nx.generate_graphml(_flat(G, focus), named_key_ids=True)) + "\n"


def render_gexf(G: nx.DiGraph, focus: int) -> str:
    """GEXF 1.2 for Gephi, with colours, sizes and positions from the drawn layout."""
    import networkx as nx
    H = _flat(G, focus)
    positions = layout(G, focus)
    for node, (x, y) in positions.items():
        rgb = _colour(H.nodes[node].get("study_design")).lstrip("#")
        H.nodes[node]["viz"] = {
            "color": {"r": int(rgb[0:2], 16), "g": int(rgb[2:4], 16), "b": int(rgb[4:6], 16),
                      "a": 1.0},
            "size": 20.0 if node == focus else 10.0,
            "position": {"x": float(x * 200), "y": float(y * 100), "z": 0.0}}
    H.graph.pop("truncated", None)
    return "\n".join(nx.generate_gexf(H, version="1.2draft")) + "\n"


def _dot_id(value: Any) -> str:
    """A DOT double-quoted string.

    >>> _dot_id('Say "hi"\\\\')
    '"Say \\\\"hi\\\\"\\\\\\\\"'
    """
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def _dot_attrs(attrs: dict[str, Any]) -> str:
    return ", ".join(f"{key}={_dot_id(value)}" for key, value in attrs.items()
                     if value is not None and value != "")


def render_dot(G: nx.DiGraph, focus: int) -> str:
    """Graphviz DOT: nodes labelled "Author Year", filled by design; ``pools`` edges bold."""
    H = _flat(G, focus)
    lines = ["digraph kb {", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
             '  edge [color="#8a8f94"];']
    for node, data in H.nodes(data=True):
        design = data.get("study_design")
        style = "rounded,filled" + (",dashed" if data.get("status") == "stub" else "")
        label = data.get("caption") or data.get("label") or str(node)
        if data.get("mark"):
            label += f"\n{data['mark']}"
        attrs = {"label": label, "tooltip": data.get("title"), "fillcolor": _colour(design),
                 "fontcolor": "white" if design in _DARK else "black", "style": style,
                 "penwidth": 3 if node == focus else None,
                 "color": "#b00020" if data.get("mark") == "RETRACTED" else None,
                 "URL": f"https://doi.org/{data['doi']}" if data.get("doi") else data.get("url"),
                 "doi": data.get("doi"), "pmid": data.get("pmid"), "design": design,
                 "year": data.get("year"), "role": data.get("role")}
        lines.append(f"  {_dot_id(node)} [{_dot_attrs(attrs)}];")
    for u, v, data in H.edges(data=True):
        colour, width, style = EDGE_STYLES.get(data.get("relation"), EDGE_STYLES["cites"])
        attrs = {"relation": data.get("relation"), "color": colour, "penwidth": width,
                 "style": style, "sources": data.get("sources")}
        lines.append(f"  {_dot_id(u)} -> {_dot_id(v)} [{_dot_attrs(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


_DARK = {"rct", "controlled-trial", "pooled-analysis", "meta-analysis", "cohort", "preclinical"}


# -- layout ---------------------------------------------------------------------------------

def layout(G: nx.DiGraph, focus: int, *, per_column: int = 50) -> dict[int, tuple[float, float]]:
    """Columns by citation level: citing works on the left, the focus (and the reviews
    co-cited with it) in the middle, references on the right; within a column, grouped by
    role then year. Tall columns wrap into several."""
    if "role" not in G.nodes[focus]:
        annotate(G, focus)
    columns: dict[int, list[int]] = {}
    for node, data in G.nodes(data=True):
        columns.setdefault(int(data.get("level", 0)), []).append(node)
    positions: dict[int, tuple[float, float]] = {}
    x = 0.0
    tallest = max(min(len(m), per_column) for m in columns.values())
    for lvl in sorted(columns):
        members = sorted(columns[lvl], key=lambda n: (
            n != focus, _ROLE_ORDER.get(G.nodes[n].get("role"), 99),
            G.nodes[n].get("year") or 9999, str(G.nodes[n].get("label")), n))
        if lvl == 0 and len(members) > 1:  # the focus in the middle of its column
            rest = members[1:]
            members = rest[:len(rest) // 2] + [focus] + rest[len(rest) // 2:]
        wraps = math.ceil(len(members) / per_column)
        for i, node in enumerate(members):
            col, row = divmod(i, per_column)
            count = min(per_column, len(members) - col * per_column)
            y = (count - 1) / 2 - row if count > 1 else 0.0
            positions[node] = (x + col * 1.0, y * (tallest / max(count, 1)) ** 0.5)
        x += wraps * 1.0 + 0.6
    return positions


#: Pictures show at most this many works: the focus, its direct neighbours, then the
#: best-connected of the rest (the title says how many were left out).
MAX_DRAWN = 300


def _trim(G: nx.DiGraph, focus: int, cap: int = MAX_DRAWN) -> nx.DiGraph:
    """``G`` itself when small enough, else the subgraph of the works a picture can show."""
    if G.number_of_nodes() <= cap:
        return G
    ranked = sorted((n for n in G if n != focus), key=lambda n: (
        G.nodes[n].get("distance", 1) > 1, -G.degree(n), n))
    H = G.subgraph([focus] + ranked[:cap - 1]).copy()
    H.graph["left_out"] = G.number_of_nodes() - H.number_of_nodes()
    return H


# -- pictures -------------------------------------------------------------------------------

def render_image(G: nx.DiGraph, focus: int, fmt: str = "png") -> bytes:
    """A drawn picture (``png`` or ``svg``): nodes coloured by design and labelled "Author
    Year", the focus ringed, stubs hollow, retracted works crossed, ``pools`` edges bold,
    and a legend of the designs and relations shown."""
    import matplotlib

    annotate(G, focus)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "kb"}):
        return _draw(_trim(G, focus), focus, fmt)


def _draw(G: nx.DiGraph, focus: int, fmt: str) -> bytes:
    import io

    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    import networkx as nx

    pos = layout(G, focus)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
    many = G.number_of_nodes() > 60
    # no wide strip: at most about 2:1, columns closer together, rows spread to fill
    fig_w = min(26.0, max(8.0, 2.1 * (span_x + 1) + 3.0))
    fig_h = min(26.0, max(5.0, 0.6 * (span_y + 1) + 2.2, fig_w / 2.0))
    fig = Figure(figsize=(fig_w, fig_h), dpi=110)  # no pyplot: no global state touched
    ax = fig.subplots()
    node_size = 260 if many else 620
    sizes = {n: node_size * (2.6 if n == focus else 1.0) for n in G}
    nodelist = list(G)
    # tall columns: labels beside the works (outside the focus column), straight edges
    tallest = max(Counter(round(x, 3) for x in xs).values())
    beside = tallest > 12
    limits = ((min(xs) - (0.95 if beside else 0.35), max(xs) + 0.85),
              (min(ys) - 0.6, max(ys) + (1.0 if len(set(xs)) > 1 else 0.6)))
    scale = (0.8 * fig_w / (limits[0][1] - limits[0][0]),
             0.75 * fig_h / (limits[1][1] - limits[1][0]))
    inches = {n: (pos[n][0] * scale[0], pos[n][1] * scale[1]) for n in G}
    radius = {n: sizes[n] ** 0.5 / 2 / 72 + 0.06 for n in G}
    batches: dict[tuple[str, float], list[tuple[int, int]]] = {}
    for u, v, d in G.edges(data=True):
        bend = 0.06 if many or beside else _bend(u, v, inches, radius, 0.12)
        batches.setdefault((d.get("relation") or "cites", bend), []).append((u, v))
    for (relation, bend), edges in sorted(batches.items()):
        colour, width, style = EDGE_STYLES.get(relation, EDGE_STYLES["cites"])
        nx.draw_networkx_edges(
            G, pos, edgelist=edges, ax=ax, edge_color=colour,
            width=width if not many else width * 0.6, style=style, arrows=True,
            arrowstyle="-|>", arrowsize=14, nodelist=nodelist,
            node_size=[sizes[n] for n in nodelist], alpha=0.85,
            connectionstyle=f"arc3,rad={bend}")
    full = [n for n in G if G.nodes[n].get("status") != "stub"]
    stubs = [n for n in G if G.nodes[n].get("status") == "stub"]
    nx.draw_networkx_nodes(G, pos, nodelist=full, ax=ax, node_size=node_size,
                           node_color=[_colour(G.nodes[n].get("study_design")) for n in full],
                           edgecolors="#333333", linewidths=0.8)
    if stubs:
        nx.draw_networkx_nodes(G, pos, nodelist=stubs, ax=ax, node_size=node_size,
                               node_color="white", linewidths=2.0,
                               edgecolors=[_colour(G.nodes[n].get("study_design"))
                                           if G.nodes[n].get("study_design") else "#777777"
                                           for n in stubs])
    focus_stub = G.nodes[focus].get("status") == "stub"
    nx.draw_networkx_nodes(G, pos, nodelist=[focus], ax=ax, node_size=sizes[focus],
                           node_color="white" if focus_stub else _colour(
                               G.nodes[focus].get("study_design")),
                           edgecolors="black", linewidths=3.0)
    retracted = [n for n in G if G.nodes[n].get("mark") == "RETRACTED"]
    if retracted:
        ax.scatter([pos[n][0] for n in retracted], [pos[n][1] for n in retracted], marker="x",
                   s=node_size * 0.9, c="#b00020", linewidths=3, zorder=5)
    labelled = set(G) if not many else {focus} | set(
        sorted(G, key=lambda n: -G.degree(n))[:40])
    for node in labelled:
        data = G.nodes[node]
        text = data.get("caption") or data.get("label") or str(node)
        if data.get("mark"):
            text += f" ({data['mark']})"
        elif data.get("status") == "stub":
            text += " (stub)"
        x, y = pos[node]
        size = (sizes[node] ** 0.5) / 2
        side = 0 if not beside or node == focus else (-1 if x < pos[focus][0] else 1)
        ax.annotate(text, (x, y), xytext=(side * (size + 4), 0 if side else size + 3),
                    textcoords="offset points", va="center" if side else "bottom",
                    ha={-1: "right", 0: "center", 1: "left"}[side],
                    fontsize=12 if node == focus else (8 if many else 10),
                    fontweight="bold" if node == focus else "normal",
                    color="#b00020" if data.get("mark") == "RETRACTED" else "#111111",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                          "alpha": 0.75})
    focus_attrs = G.nodes[focus]
    title = f"{focus_attrs.get('label')}: {focus_attrs.get('short_title') or ''}".strip(": ")
    subtitle = " · ".join(str(f) for f in (focus_attrs.get("study_design"), work_ident(
        focus_attrs), *_marks(focus_attrs)) if f)
    if G.graph.get("path"):
        path = G.graph["path"]
        title = (f"Citation path from {G.nodes[path[0]].get('label')} to "
                 f"{G.nodes[path[-1]].get('label')}: {len(path) - 1} steps")
        subtitle = {"cites": "each work cites the next", "cited-by": "each work is cited by "
                    "the next", "linked": "citations running either way"}.get(
                        G.graph.get("how"), "")
    if G.graph.get("left_out"):
        subtitle += (f" · showing {G.number_of_nodes()} of "
                     f"{G.number_of_nodes() + G.graph['left_out']} works")
    ax.set_title(f"{title}\n{subtitle}", fontsize=12, loc="left")
    shown_designs = {G.nodes[n].get("study_design") for n in full} | {
        G.nodes[n].get("study_design") for n in stubs if G.nodes[n].get("study_design")}
    handles = [Line2D([], [], marker="o", linestyle="", markersize=9,
                      markerfacecolor=_colour(d), markeredgecolor="#333333",
                      label=d or "design unknown")
               for d in sorted(shown_designs,
                               key=lambda d: list(DESIGN_COLOURS).index(d)
                               if d in DESIGN_COLOURS else 99)]
    if stubs:
        handles.append(Line2D([], [], marker="o", linestyle="", markersize=9,
                              markerfacecolor="white", markeredgecolor="#777777",
                              label="stub (not yet in KB)"))
    if retracted:
        handles.append(Line2D([], [], marker="x", linestyle="", markersize=9, color="#b00020",
                              markeredgewidth=2.5, label="retracted"))
    for relation in sorted({d.get("relation") for *_, d in G.edges(data=True)},
                           key=lambda r: list(EDGE_STYLES).index(r) if r in EDGE_STYLES else 9):
        colour, width, style = EDGE_STYLES.get(relation, EDGE_STYLES["cites"])
        handles.append(Line2D([], [], color=colour, linewidth=width, linestyle=style,
                              label=f"{relation} →"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9,
              frameon=False, title="design / relation", title_fontsize=9)
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.axis("off")
    if len(set(xs)) > 1:
        for label_x, text in _column_captions(G, pos):
            ax.text(label_x, max(ys) + 0.65, text, ha="center", fontsize=9, color="#555555",
                    style="italic")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def _bend(u: int, v: int, centres: dict[int, tuple[float, float]],
          radius: dict[int, float], label_above: float) -> float:
    """The curvature (matplotlib ``arc3`` rad; the HTML page uses the same formula) that keeps
    edge u→v clear of other works and their labels: the slightest of a few candidates whose
    curve passes no other node, else the one that passes fewest. ``label_above`` is the
    signed vertical offset of a label's centre from its node's, in the units of ``centres``."""
    (x1, y1), (x2, y2) = centres[u], centres[v]
    dx, dy = x2 - x1, y2 - y1
    obstacles = []
    for n in centres:
        x, y = centres[n]
        r = radius[n]
        offset = label_above + math.copysign(r, label_above)
        # every work's label, the edge's own two included (an arrowhead must not run into
        # its target's label); the circles of works other than the two
        obstacles += [(x + k * r, y + offset, r * 0.8) for k in (-2.5, -1.25, 0, 1.25, 2.5)]
        if n not in (u, v):
            obstacles.append((x, y, r))
    best, fewest = 0.06, None
    for rad in (0.06, -0.2, 0.2, -0.35, 0.35, -0.5, 0.5):
        cx, cy = (x1 + x2) / 2 + rad * dy, (y1 + y2) / 2 - rad * dx
        hits = 0
        for step in range(1, 24):
            t = step / 24
            px = (1 - t) ** 2 * x1 + 2 * (1 - t) * t * cx + t * t * x2
            py = (1 - t) ** 2 * y1 + 2 * (1 - t) * t * cy + t * t * y2
            hits += sum(1 for x, y, r in obstacles if math.hypot(px - x, py - y) < r)
        if hits == 0:
            return rad
        if fewest is None or hits < fewest:
            best, fewest = rad, hits
    return best


def _column_captions(G: nx.DiGraph, pos: dict[int, tuple[float, float]]
                     ) -> list[tuple[float, str]]:
    if G.graph.get("path"):
        return []
    by_level: dict[int, list[float]] = {}
    for node, (x, _) in pos.items():
        by_level.setdefault(int(G.nodes[node].get("level", 0)), []).append(x)
    names = {0: "focus" if len(by_level[0]) == 1 else "focus and works cited beside it",
             1: "cited by the focus", -1: "citing the focus"}
    out = []
    for lvl, xs in by_level.items():
        text = names.get(lvl) or (f"references, {lvl} generations on" if lvl > 0
                                  else f"citing works, {-lvl} generations back")
        out.append(((min(xs) + max(xs)) / 2, text))
    return out


# -- one self-contained HTML page -----------------------------------------------------------

#: The page forbids everything but its own inline script (by hash) and styles: no inline
#: event handlers, nothing fetched, no plugins, no forms.
_CSP = ("default-src 'none'; script-src '{script_hash}'; style-src 'unsafe-inline'; "
        "img-src data:; base-uri 'none'; form-action 'none'")


def _link(attrs: dict[str, Any]) -> str | None:
    """The work's web address, only ever an http(s) URL: doi.org for a DOI, else its URL."""
    from urllib.parse import quote, urlsplit
    if attrs.get("doi"):
        return "https://doi.org/" + quote(str(attrs["doi"]), safe="/")
    url = str(attrs.get("url") or "")
    return url if urlsplit(url).scheme.lower() in ("http", "https") else None


@functools.cache
def _page_template() -> tuple[Any, str, str]:
    """The jinja2 page template (autoescaped), its script and the script's CSP hash."""
    import base64
    import hashlib
    from importlib.resources import files

    import jinja2
    folder = files("kb.render") / "templates"
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}
    script = (folder / "graph.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return env.from_string((folder / "graph.html").read_text(encoding="utf-8")), script, \
        f"sha256-{digest}"




def render_html(G: nx.DiGraph, focus: int) -> str:
    """One self-contained interactive page (inline SVG and JavaScript, nothing fetched):
    pan, zoom, drag, hover for titles, click for details, a search box and a legend."""
    annotate(G, focus)
    G = _trim(G, focus)
    pos = layout(G, focus)
    keep = ("label", "title", "study_design", "year", "journal", "doi", "pmid", "status",
            "mark", "role")
    nodes = [{"id": n, **{k: d.get(k) for k in keep}, "label": d.get("caption") or d.get("label"),
              "link": _link(d), "marks": _marks(d),
              "x": pos[n][0], "y": pos[n][1],
              "colour": _colour(d.get("study_design")), "focus": n == focus,
              "stub": d.get("status") == "stub"} for n, d in G.nodes(data=True)]
    svg_xy = {n: (x * 2.4 * 90, -y * 1.3 * 90) for n, (x, y) in pos.items()}
    radius = {n: 24.0 if n == focus else 14.0 for n in G}
    few = G.number_of_nodes() <= 60  # routing around nodes costs edges x nodes
    edges = [{"source": u, "target": v, "relation": d.get("relation"),
              "sources": d.get("sources") or [], "reason": d.get("reason"),
              "bend": _bend(u, v, svg_xy, radius, -14.0) if few else 0.06}
             for u, v, d in G.edges(data=True)]
    designs = sorted({d.get("study_design") for _, d in G.nodes(data=True)},
                     key=lambda d: list(DESIGN_COLOURS).index(d) if d in DESIGN_COLOURS else 99)
    payload = {"focus": focus, "nodes": nodes, "edges": edges,
               "legend": [[d or "design unknown", _colour(d)] for d in designs],
               "edge_styles": {k: list(v) for k, v in EDGE_STYLES.items()}}
    title = f"{G.nodes[focus].get('label')}: {G.nodes[focus].get('short_title') or ''}"
    title = title.strip(": ")
    if G.graph.get("left_out"):
        title += (f" (showing {G.number_of_nodes()} of "
                  f"{G.number_of_nodes() + G.graph['left_out']} works)")
    template, script, script_hash = _page_template()
    return template.render(title=title, payload=payload, script=script,
                           csp=_CSP.format(script_hash=script_hash))


# -- dispatch -------------------------------------------------------------------------------

_RENDERERS: dict[str, Callable[[nx.DiGraph, int], str | bytes]] = {
    "text": render_text, "json": render_json, "graphml": render_graphml, "gexf": render_gexf,
    "dot": render_dot, "png": lambda G, focus: render_image(G, focus, "png"),
    "svg": lambda G, focus: render_image(G, focus, "svg"), "html": render_html,
}
#: The formats of ``kb graph``, the default first.
FORMATS = tuple(_RENDERERS)


def render(G: nx.DiGraph, focus: int, fmt: str) -> bytes:
    """The neighbourhood as a document in ``fmt`` (one of :data:`FORMATS`), as bytes (text
    formats in UTF-8). The ``render_*`` functions give text formats as ``str``."""
    if fmt not in _RENDERERS:
        raise ValueError(f"unknown graph format {fmt!r}")
    out = _RENDERERS[fmt](G, focus)
    return out.encode("utf-8") if isinstance(out, str) else out

