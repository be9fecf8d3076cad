"""The citation graph: a work's neighbourhood from indexed SQL, and algorithms over it.

Graph queries never load the whole knowledge base: :func:`neighbourhood` walks the
``citations`` table (and the evidence layer's typed ``lineage`` edges) outward
from one work through its indexes, level by level, and returns a small :class:`networkx.DiGraph`
whose nodes are work ids. Edges point from the citing (pooling, following-up) work to the cited
one. The other functions are plain functions of such a graph, networkx style; only
:func:`full_graph` (and :func:`rank` over it) reads every edge, and only when asked.

:func:`neighbourhood_data` reads the neighbourhood as plain data (:class:`Neighbourhood`),
which `kb graph`'s terminal view and JSON use as is: importing networkx takes about as long
as the whole rest of the command (bench/bench_graph.py).
"""
from __future__ import annotations

import json
import re
import sqlite3
from collections import deque
from dataclasses import dataclass, field
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Union

from ..errors import InputError, KBError
from ..identifiers import parse_identifier
from ..records import DIRECTIONS

if TYPE_CHECKING:  # networkx is imported inside functions: `kb search` never loads it
    import networkx as nx

__all__ = ["TRIAL_DESIGNS", "REVIEW_DESIGNS", "RELATIONS", "ROLES", "Neighbourhood", "find_work",
           "work_attributes", "neighbourhood_data", "neighbourhood", "subgraph", "path_graph", "roles", "similar",
           "rank", "citation_path", "full_graph", "short_title"]

#: Designs that make a work a trial report ("source trials" of a synthesis).
TRIAL_DESIGNS = frozenset({"rct", "controlled-trial", "open-label-trial"})
#: Designs that make a work a synthesis ("reviews" around a work).
REVIEW_DESIGNS = frozenset({"review", "systematic-review", "meta-analysis", "pooled-analysis"})
#: Edge relations, strongest first: an edge that both cites and pools is shown as ``pools``.
RELATIONS = ("pools", "follow_up_of", "same_trial", "cites")
#: The groups of :func:`roles`, in display order.
ROLES = ("source trials", "same trial", "reviews", "other references", "cited by", "further out")
#: Neighbourhoods stop growing past this many works (the graph says it was truncated).
MAX_NODES = 20000

_NODE_SQL = """
SELECT w.id, w.doi, w.pmid, w.pmcid, w.title, w.year, w.journal, w.journal_abbrev,
       w.study_design, w.status, w.is_retracted, w.unverified, w.type, w.url,
       (SELECT coalesce(a.family, a.name) FROM work_authors wa JOIN authors a
         ON a.id = wa.author_id WHERE wa.work_id = w.id ORDER BY wa.position LIMIT 1)
         AS first_author
FROM works w WHERE w.id IN (SELECT value FROM json_each(?))
"""


@dataclass
class Neighbourhood:
    """A citation neighbourhood as plain data, read by SQL: ``graph`` (facts about it),
    ``nodes`` (work id -> attributes) and ``edges`` ((citing, cited) -> attributes), in the
    order found. It is read the way a :class:`networkx.DiGraph` is (``G.graph``,
    ``G.nodes[n]``, ``(u, v) in G.edges``, ``G.edges[u, v]``), so :func:`roles`, the terminal
    view and node-link JSON take either; :meth:`to_networkx` gives the graph that the other
    formats and the algorithms take.

    >>> N = Neighbourhood({"focus": 1}, {1: {}, 2: {}}, {(1, 2): {"relation": "cites"}})
    >>> G = N.to_networkx()
    >>> G.graph, list(G.edges(data=True))
    ({'focus': 1}, [(1, 2, {'relation': 'cites'})])
    """

    graph: dict[str, Any] = field(default_factory=dict)
    nodes: dict[int, dict[str, Any]] = field(default_factory=dict)
    edges: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)

    def to_networkx(self) -> nx.DiGraph:
        import networkx as nx
        G = nx.DiGraph(**self.graph)
        G.add_nodes_from(self.nodes.items())
        G.add_edges_from((u, v, attrs) for (u, v), attrs in self.edges.items())
        return G


#: What the neighbourhood functions and :func:`roles` take.
Graph = Union["nx.DiGraph", Neighbourhood]

#: The keys of :func:`work_attributes`' dicts.
NODE_COLUMNS = ("id", "doi", "pmid", "pmcid", "title", "year", "journal", "journal_abbrev",
                 "study_design", "status", "is_retracted", "unverified", "type", "url",
                 "first_author", "mark", "short_title", "label", "caption")


# -- small pure helpers ---------------------------------------------------------------------

def short_title(title: str | None, width: int = 60) -> str:
    """The main title (before a subtitle colon, when that is long enough), cut at a word.

    >>> short_title("Efficacy and safety of stem cell therapy in cerebral palsy: "
    ...             "A systematic review and meta-analysis")
    'Efficacy and safety of stem cell therapy in cerebral palsy'
    >>> short_title("Clinical and imaging outcomes after intrathecal injection of umbilical "
    ...             "cord tissue mesenchymal stem cells in cerebral palsy", 40)
    'Clinical and imaging outcomes after…'
    >>> short_title(None)
    ''
    """
    text = re.sub(r"\s+", " ", title or "").strip()
    main = re.split(r"[:.?]\s", text, maxsplit=1)[0]
    if len(main) >= 20:
        text = main
    if len(text) <= width:
        return text
    cut = text[:width - 1].rsplit(" ", 1)[0].rstrip(" ,;:-")
    return cut + "…"


def work_label(attrs: dict[str, Any]) -> str:
    """ "Author Year", else the site or journal and year, else a short title or id."""
    who = attrs.get("first_author") or attrs.get("journal")
    if not who and attrs.get("url") and not attrs.get("doi"):
        who = re.sub(r"^(?:https?://)?(?:www\.)?", "", attrs["url"]).split("/")[0]
    if not who:
        return (short_title(attrs.get("title"), 30) or attrs.get("doi")
                or (f"PMID {attrs['pmid']}" if attrs.get("pmid") else f"work {attrs['id']}"))
    return f"{who} {attrs['year']}" if attrs.get("year") else str(who)


def _is_trial(attrs: dict[str, Any]) -> bool:
    return attrs.get("study_design") in TRIAL_DESIGNS


def _is_review(attrs: dict[str, Any]) -> bool:
    return attrs.get("study_design") in REVIEW_DESIGNS


# -- reading works --------------------------------------------------------------------------

def find_work(conn: sqlite3.Connection, text: str) -> int:
    """The id of the work named by a DOI, PMID, PMCID, OpenAlex id or URL.

    :raises InputError: ``text`` is not an identifier (exit 2).
    :raises KBError: no work in the knowledge base has it (exit 1).
    """
    ident = parse_identifier(text)
    column = {"openalex": "openalex_id"}.get(ident.kind, ident.kind)
    row = conn.execute(f"SELECT id FROM works WHERE {column} = ? ORDER BY id LIMIT 1",
                       (ident.value,)).fetchone()
    if row is None:
        name = {"doi": "DOI", "pmid": "PMID", "pmcid": "PMCID", "openalex": "OpenAlex id",
                "url": "URL"}[ident.kind]
        raise KBError(f"no work with {name} {ident.value} in the knowledge base",
                      hint=f"add it first: kb add {ident.value}")
    return int(row[0])


def work_attributes(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Node attributes for these works: ids, title, short title, label ("Author Year"), year,
    first author, journal, design, status, type, the retraction / unverified marks, and the
    ``caption`` pictures show: the label, and for a trial's report its cell product, route and
    participants (also as ``cell_product``, ``route`` and ``n``)."""
    wanted = sorted(set(ids))
    marks: dict[int, str] = {}
    if wanted:
        marks = {row[0]: row[1] for row in conn.execute(
            "SELECT work_id, mark FROM work_marks WHERE work_id IN "
            "(SELECT value FROM json_each(?))", (json.dumps(wanted),))}
    out: dict[int, dict[str, Any]] = {}
    for row in conn.execute(_NODE_SQL, (json.dumps(wanted),)) if wanted else ():
        attrs = dict(row)
        attrs["is_retracted"] = bool(attrs["is_retracted"]) or marks.get(row["id"]) == "RETRACTED"
        attrs["unverified"] = bool(attrs["unverified"])
        attrs["mark"] = "RETRACTED" if attrs["is_retracted"] else marks.get(row["id"])
        attrs["short_title"] = short_title(attrs["title"])
        attrs["label"] = attrs["caption"] = work_label(attrs)
        out[row["id"]] = attrs
    _add_trial_facts(conn, out)
    return out


def _add_trial_facts(conn: sqlite3.Connection, works: dict[int, dict[str, Any]]) -> None:
    """Give each work that reports a trial (not as a pooled analysis) the trial's normalised
    cell product, route and participants, and a caption "Amanat 2021 · UC-MSC · IT · n=72"
    that every picture format shows."""
    from ..vocabulary import trial_caption

    if not works:
        return
    for row in conn.execute(
            "SELECT r.work_id, t.cell_product, t.route, t.n FROM trial_reports r "
            "JOIN trials t ON t.id = r.trial_id WHERE r.role != 'pooled-analysis' "
            "AND r.work_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY r.work_id, r.role != 'results', t.id", (json.dumps(list(works)),)):
        attrs = works[row["work_id"]]
        if "n" in attrs:  # a work reporting several trials is captioned with its first
            continue
        products = (row["cell_product"] or "").split("; ")
        routes = (row["route"] or "").split("; ")
        attrs.update(cell_product=row["cell_product"], route=row["route"], n=row["n"],
                     caption=trial_caption(attrs["label"], products, routes, row["n"]))


# -- edges ----------------------------------------------------------------------------------

_Edge = tuple[int, int, str, list[str], "str | None", "float | None", "str | None"]


def _edge_rows(conn: sqlite3.Connection, ids: Sequence[int], side: str) -> Iterable[_Edge]:
    """Resolved edges whose ``side`` end (citing | cited) is one of ``ids``: (from, to,
    relation, sources, resolved_by, score, reason), citations then lineage (whose
    ``resolved_by`` is the provenance: curated | registry | rule)."""
    if not ids:
        return
    param = (json.dumps(list(ids)),)
    column = "citing_id" if side == "citing" else "cited_id"
    for row in conn.execute(
            # one edge per pair: a list naming a work twice holds two rows (the first one's)
            "SELECT citing_id, cited_id, sources, resolved_by, match_score, min(id) "
            f"FROM citations WHERE {column} IN (SELECT value FROM json_each(?)) "
            "AND cited_id IS NOT NULL GROUP BY citing_id, cited_id",
            param):
        yield row[0], row[1], "cites", json.loads(row[2] or "[]"), row[3], row[4], None
    column = "from_work_id" if side == "citing" else "to_work_id"
    for row in conn.execute(
            "SELECT from_work_id, to_work_id, relation, provenance, source, reason "
            f"FROM lineage WHERE {column} IN (SELECT value FROM json_each(?))", param):
        sources = [s for s in (row[4],) if s]
        yield row[0], row[1], row[2], sources, row[3], None, row[5]


def _add_edge(N: Neighbourhood, u: int, v: int, relation: str, sources: list[str],
              resolved_by: str | None, score: float | None, reason: str | None) -> None:
    """Add or fold an edge: one edge per pair, all its relations, sources and reasons kept.
    ``resolved_by`` / ``score`` describe the citation link; ``reason`` the typed ones."""
    for node in (u, v):
        N.nodes.setdefault(node, {})
    data = N.edges.setdefault((u, v), {"relations": [], "sources": [], "resolved_by": None,
                                       "score": None, "reason": None})
    if relation not in data["relations"]:
        data["relations"] = sorted(data["relations"] + [relation], key=RELATIONS.index)
    data["sources"] += [s for s in sources if s not in data["sources"]]
    if relation == "cites":
        data["resolved_by"], data["score"] = resolved_by, score
    elif reason:
        data["reason"] = "; ".join(filter(None, (data["reason"], f"{relation}: {reason}")))
    data["relation"] = data["relations"][0]


# -- the neighbourhood ----------------------------------------------------------------------

def neighbourhood(conn: sqlite3.Connection, work_id: int, **options: Any) -> nx.DiGraph:
    """:func:`neighbourhood_data` as a :class:`networkx.DiGraph` (same options)."""
    return neighbourhood_data(conn, work_id, **options).to_networkx()


def neighbourhood_data(conn: sqlite3.Connection, work_id: int, *, depth: int = 1,
                       direction: str = "both", reviews: bool = True,
                       max_nodes: int = MAX_NODES) -> Neighbourhood:
    """The works within ``depth`` citation steps of ``work_id``, from indexed SQL only.

    :param direction: ``refs`` follows what works cite, ``cited-by`` who cites them,
        ``both`` either way (at each step).
    :param reviews: also bring in the reviews around the focus that are not linked to it
        directly: those its citers cite beside it (the news article citing a pooled study
        and a meta-analysis makes the meta-analysis a review "around" the pooled study), and
        those citing or pooling the trials it cites.
    :param max_nodes: stop growing past this many works; ``G.graph["truncated"]`` says so.

    Every edge among the collected works is included (the induced subgraph, like
    :func:`networkx.ego_graph`). Node attributes come from :func:`work_attributes` plus
    ``distance`` (citation steps from the focus) and ``level``, the generation: 0 for the
    focus, +1 for each step along references and -1 for each step along citers, so a
    review beside the focus (co-cited with it, or citing the same trials) is level 0 too.
    ``G.graph`` holds ``focus``, ``depth``, ``direction``, ``truncated``, ``co_cited`` and
    ``coupled`` (the reviews brought in each way) and ``unresolved_references`` (the
    focus's references not linked to any work).
    """
    if direction not in DIRECTIONS:
        raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if depth < 0:
        raise InputError("depth must be 0 or more")
    G = Neighbourhood({"focus": work_id, "depth": depth, "direction": direction,
                       "truncated": False})
    level, distance = {work_id: 0}, {work_id: 0}
    frontier = [work_id]
    sides = [s for s, d in (("citing", "refs"), ("cited", "cited-by")) if direction in (d, "both")]
    for step in range(1, depth + 1):
        found: list[int] = []
        for side in sides:
            for u, v, *_ in _edge_rows(conn, frontier, side):
                other, known = (v, u) if side == "citing" else (u, v)
                if other not in level:
                    level[other] = level[known] + (1 if side == "citing" else -1)
                    distance[other] = step
                    found.append(other)
        frontier = found
        if len(level) >= max_nodes:
            G.graph["truncated"] = True
            break
        if not frontier:
            break
    # every edge among the works found has its citing end among them: one indexed scan of
    # their references closes the graph (and shows what the focus's citers cite beside it)
    edges = list(_edge_rows(conn, list(level), "citing"))
    around = _reviews_around(conn, level, distance, edges) if reviews and depth else {}
    for kind, ids in around.items():
        level.update(dict.fromkeys(ids, 0))
        distance.update(dict.fromkeys(ids, 2))
        G.graph[kind] = sorted(ids)
        edges += _edge_rows(conn, sorted(ids), "citing")
    _close(conn, G, level, edges)
    for node, steps in distance.items():
        G.nodes[node]["distance"] = steps
    G.graph["unresolved_references"] = conn.execute(
        "SELECT count(*) FROM citations WHERE citing_id = ? AND cited_id IS NULL",
        (work_id,)).fetchone()[0]
    return G


def _with_design(conn: sqlite3.Connection, ids: Iterable[int], designs: frozenset[str]
                 ) -> set[int]:
    """Those of ``ids`` whose study design is one of ``designs`` (primary-key lookups)."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    return {row[0] for row in conn.execute(
        "SELECT id FROM works WHERE id IN (SELECT value FROM json_each(?)) AND study_design IN "
        f"({','.join('?' * len(designs))})", (json.dumps(wanted), *sorted(designs)))}


def _reviews_around(conn: sqlite3.Connection, level: dict[int, int], distance: dict[int, int],
                    edges: list[_Edge]) -> dict[str, set[int]]:
    """Reviews not yet in the neighbourhood that its citers cite (``co_cited``) or that cite
    or pool the trials the focus cites (``coupled``); ``edges`` leave the neighbourhood's
    works."""
    citers = {n for n, d in distance.items() if d == 1 and level[n] == -1}
    refs = [n for n, d in distance.items() if d == 1 and level[n] == 1]
    beside = {v for u, v, *_ in edges if u in citers} - set(level)
    co_cited = _with_design(conn, beside, REVIEW_DESIGNS)
    trials = sorted(_with_design(conn, refs, TRIAL_DESIGNS))
    sharing = {u for u, *_ in _edge_rows(conn, trials, "cited")} - set(level) - co_cited
    return {"co_cited": co_cited, "coupled": _with_design(conn, sharing, REVIEW_DESIGNS)}


def _close(conn: sqlite3.Connection, G: Neighbourhood, level: dict[int, int],
           edges: list[_Edge] | None = None) -> None:
    """Add the works of ``level`` (work id -> level) with their attributes, and every edge
    among them: each such edge has its citing end in the set, so the edges leaving the set
    (``edges``, fetched when not given) hold them all."""
    members = set(level)
    for edge in _edge_rows(conn, list(level), "citing") if edges is None else edges:
        if edge[1] in members:
            _add_edge(G, *edge)
    for node in members:
        G.nodes.setdefault(node, {})
    for node, attrs in work_attributes(conn, members).items():
        G.nodes[node].update(attrs, level=level[node])


def subgraph(conn: sqlite3.Connection, ids: Sequence[int]) -> nx.DiGraph:
    """The works ``ids`` and every edge among them (levels = their order in ``ids``)."""
    N = Neighbourhood()
    _close(conn, N, {node: i for i, node in enumerate(ids)})
    return N.to_networkx()


# -- roles ----------------------------------------------------------------------------------

def roles(G: Graph, focus: int) -> dict[str, list[int]]:
    """Group the focus's neighbours for reading, each work in one group (see :data:`ROLES`).

    For a synthesis (pooled analysis, meta-analysis, review, or any work that pools others):
    "source trials" are the works it pools, and the trials it cites. "same trial" holds
    follow-ups and other reports of the same trial (typed edges either way). "reviews" are
    syntheses around it: cited by it, citing it, co-cited with it by the same citing works,
    or citing the same works (for a synthesis: including the same trials).
    Then "other references", "cited by", and "further out" (more than one step away).
    Groups are sorted by year then label, oldest first ("cited by": newest first).

    >>> import networkx as nx
    >>> G = nx.DiGraph()
    >>> G.add_nodes_from([(1, {"study_design": "pooled-analysis"}), (2, {"study_design": "rct"}),
    ...                   (3, {"study_design": "rct"}), (4, {"study_design": "meta-analysis"}),
    ...                   (5, {"study_design": "web-article"})])
    >>> G.add_edges_from([(1, 2, {"relation": "pools"}), (1, 3, {"relation": "pools"}),
    ...                   (5, 1, {"relation": "cites"}), (5, 4, {"relation": "cites"})])
    >>> {k: v for k, v in roles(G, 1).items() if v}
    {'source trials': [2, 3], 'reviews': [4], 'cited by': [5]}
    """
    focus_attrs = G.nodes[focus]
    refs, citers = links(G, focus)
    pools = any(d.get("relation") == "pools" for d in refs.values())
    synthesis = pools or _is_review(focus_attrs)
    groups: dict[str, list[int]] = {name: [] for name in ROLES}
    for node in G.nodes:
        if node == focus:
            continue
        attrs = G.nodes[node]
        out, into = refs.get(node), citers.get(node)
        relations = {r for d in (out, into) if d for r in d.get("relations", [d.get("relation")])}
        if out and "pools" in relations or (synthesis and out and _is_trial(attrs)):
            group = "source trials"
        elif relations & {"follow_up_of", "same_trial"}:
            group = "same trial"
        elif _is_review(attrs) and (out or into or co_cited(G, citers, node)
                                    or coupled(G, refs, node)):
            group = "reviews"
        elif out:
            group = "other references"
        elif into:
            group = "cited by"
        else:
            group = "further out"
        groups[group].append(node)
    for name, members in groups.items():  # oldest first; citing works newest first
        sign = -1 if name == "cited by" else 1
        members.sort(key=lambda n: (sign * (G.nodes[n].get("year") or 9999 * sign),
                                    str(G.nodes[n].get("label") or ""), n))
    return groups


def links(G: Graph, focus: int) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """The focus's edges: (cited work -> edge attributes, citing work -> edge attributes)."""
    refs = {v: G.edges[u, v] for u, v in G.edges if u == focus}
    citers = {u: G.edges[u, v] for u, v in G.edges if v == focus}
    return refs, citers


def co_cited(G: Graph, citers: Iterable[int], node: int) -> bool:
    """Some work of ``citers`` (the focus's, :func:`links`) cites ``node`` too."""
    return any((citer, node) in G.edges for citer in citers)


def coupled(G: Graph, refs: Iterable[int], node: int) -> bool:
    """``node`` cites (or pools) one of ``refs`` (the focus's, :func:`links`) too."""
    return any((node, ref) in G.edges for ref in refs)


# -- similarity, rank, paths ----------------------------------------------------------------

def _pairs(source: sqlite3.Connection | nx.DiGraph, ids: Sequence[int], side: str
           ) -> Iterable[tuple[int, int]]:
    """The (citing, cited) edges whose ``side`` end (citing | cited) is one of ``ids``: from
    the indexed tables of a knowledge base (:func:`_edge_rows`), or from a graph."""
    if isinstance(source, sqlite3.Connection):
        return ((u, v) for u, v, *_ in _edge_rows(source, ids, side))
    return source.out_edges(ids) if side == "citing" else source.in_edges(ids)


def similar(source: sqlite3.Connection | nx.DiGraph, focus: int, *, limit: int = 20
            ) -> list[dict[str, Any]]:
    """Works most like ``focus`` by co-citation (cited together by the same works) and
    bibliographic coupling (citing the same works), best first.

    ``source`` is a knowledge base (the whole KB is ranked with indexed SQL, citations and
    lineage edges alike) or a graph: the same counts over :func:`_pairs`.
    Each row: ``id``, ``cocitation``, ``coupling``, ``score`` (their sum).

    >>> import networkx as nx
    >>> G = nx.DiGraph([(10, 1), (10, 2), (11, 1), (11, 2), (12, 1), (12, 3), (1, 5), (4, 5)])
    >>> [(r["id"], r["cocitation"], r["coupling"]) for r in similar(G, 1)]
    [(2, 2, 0), (3, 1, 0), (4, 0, 1)]
    """
    cocitation: dict[int, int] = {}
    coupling: dict[int, int] = {}
    citers = sorted({u for u, _ in _pairs(source, [focus], "cited")})
    for _, other in set(_pairs(source, citers, "citing")):
        if other != focus:
            cocitation[other] = cocitation.get(other, 0) + 1
    refs = sorted({v for _, v in _pairs(source, [focus], "citing")})
    for other, _ in set(_pairs(source, refs, "cited")):
        if other != focus:
            coupling[other] = coupling.get(other, 0) + 1
    rows = [{"id": n, "cocitation": cocitation.get(n, 0), "coupling": coupling.get(n, 0),
             "score": cocitation.get(n, 0) + coupling.get(n, 0)}
            for n in set(cocitation) | set(coupling)]
    rows.sort(key=lambda r: (-r["score"], -r["cocitation"], r["id"]))
    return rows[:limit] if limit else rows


def rank(G: nx.DiGraph, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Works by PageRank over ``G`` (citations as votes), with in-degree; best first.

    Rank within a neighbourhood, or over :func:`full_graph` for the whole KB.

    >>> import networkx as nx
    >>> G = nx.DiGraph([(1, 3), (2, 3), (4, 3), (3, 5), (4, 5)])
    >>> [(r["id"], r["in_degree"]) for r in rank(G, limit=2)]
    [(5, 2), (3, 3)]
    """
    import networkx as nx
    scores = nx.pagerank(G, tol=1.0e-10, max_iter=200)  # dangling works' rank spread evenly
    rows = [{"id": n, "pagerank": scores[n], "in_degree": G.in_degree(n)} for n in G]
    rows.sort(key=lambda r: (-r["pagerank"], -r["in_degree"], r["id"]))
    return rows[:limit] if limit else rows


def citation_path(source: sqlite3.Connection | nx.DiGraph, a: int, b: int, *,
                  directed: bool = True, max_depth: int = 8) -> list[int] | None:
    """The shortest chain of citations from ``a`` to ``b`` (``a`` cites … cites ``b``),
    or None. ``directed=False`` lets the chain run either way along each edge.

    A bidirectional breadth-first search, up to ``max_depth`` edges, over a graph or over
    the indexed ``citations`` / ``lineage`` tables of a knowledge base (nothing else loaded).

    >>> import networkx as nx
    >>> G = nx.DiGraph([(1, 2), (2, 3), (4, 3)])
    >>> citation_path(G, 1, 3), citation_path(G, 1, 4), citation_path(G, 1, 4, directed=False)
    ([1, 2, 3], None, [1, 2, 3, 4])
    """
    if a == b:
        return [a]
    def step(ids: list[int], forward: bool) -> dict[int, int]:
        """next node -> the node it was reached from, one step along (or against) citations."""
        found: dict[int, int] = {}
        sides = ["citing" if forward else "cited"] if directed else ["citing", "cited"]
        for side in sides:
            for u, v in _pairs(source, ids, side):
                nxt, prev = (v, u) if side == "citing" else (u, v)
                found.setdefault(nxt, prev)
        return found

    parents: dict[int, int | None] = {a: None}
    children: dict[int, int | None] = {b: None}
    front_a, front_b = [a], [b]
    for _ in range(max_depth):
        if not front_a or not front_b:
            return None
        forward = len(front_a) <= len(front_b)
        reached = step(front_a if forward else front_b, forward)
        seen, other = (parents, children) if forward else (children, parents)
        new = [n for n in reached if n not in seen]
        for n in new:
            seen[n] = reached[n]
        meet = next((n for n in new if n in other), None)
        if meet is not None:
            return _join(parents, children, meet)
        if forward:
            front_a = new
        else:
            front_b = new
    return None


def _join(parents: dict[int, int | None], children: dict[int, int | None], meet: int
          ) -> list[int]:
    path: deque[int] = deque([meet])
    node = parents[meet]
    while node is not None:
        path.appendleft(node)
        node = parents[node]
    node = children[meet]
    while node is not None:
        path.append(node)
        node = children[node]
    return list(path)


def path_graph(conn: sqlite3.Connection, a: int, b: int, *, max_depth: int = 8
               ) -> nx.DiGraph | None:
    """The shortest citation path between two works as a graph, or None if there is none.

    Tries ``a`` cites … ``b``, then ``b`` cites … ``a``, then a chain along edges either way.
    ``G.graph`` holds ``path`` (the works in order, from ``a``), ``how`` (cites | cited-by |
    linked) and ``focus`` (``a``).
    """
    for how, (x, y), directed in (("cites", (a, b), True), ("cited-by", (b, a), True),
                                  ("linked", (a, b), False)):
        found = citation_path(conn, x, y, directed=directed, max_depth=max_depth)
        if found is not None:
            if how == "cited-by":
                found.reverse()
            G = subgraph(conn, found)
            G.graph.update(path=found, how=how, focus=a)
            return G
    return None


# -- the whole graph (only where asked) -----------------------------------------------------

def full_graph(conn: sqlite3.Connection) -> nx.DiGraph:
    """Every resolved citation and lineage edge of the knowledge base, nodes as bare work ids.

    Whole-graph analytics only (:func:`rank` over the KB); neighbourhood questions go
    through :func:`neighbourhood`.
    """
    import networkx as nx

    G = nx.DiGraph()
    G.add_nodes_from(row[0] for row in conn.execute("SELECT id FROM works"))
    G.add_edges_from(conn.execute(
        "SELECT citing_id, cited_id FROM citations WHERE cited_id IS NOT NULL"), relation="cites")
    for u, v, relation in conn.execute("SELECT from_work_id, to_work_id, relation FROM lineage"):
        if not G.has_edge(u, v):
            G.add_edge(u, v, relation=relation)
    return G
