"""kb graph, kb gaps."""
from __future__ import annotations

import re
from typing import Any

import click

from ..cli import (Settings, format_option, kb_errors, out_option, pass_settings,
                   refuse_binary_to_terminal)
from ..errors import KBError
from ..identifiers import normalize_doi, normalize_pmid
from ..records import DIRECTIONS
from ..render.emit import emit, json_text, terminal_width
from ..render.graph import FORMATS
from ..render.lists import GAPS_FORMATS, render_gaps, works_table
from ..render.output import check_out


def _focus_text(doi: str | None, pmid: str | None, work: str | None) -> str | None:
    given = [v for v in (doi, pmid, work) if v]
    if len(given) > 1:
        raise click.UsageError("give one of --doi, --pmid, --id")
    if doi:
        if normalize_doi(doi) is None:
            raise click.BadParameter(f"not a DOI: {doi!r}", param_hint="--doi")
        return normalize_doi(doi)
    if pmid:
        if normalize_pmid(pmid) is None:
            raise click.BadParameter(f"not a PMID: {pmid!r}", param_hint="--pmid")
        return f"pmid:{normalize_pmid(pmid)}"
    return work


def _resolve(conn: Any, text: str) -> int:
    from ..query.graph import find_work
    if text.isdigit() and conn.execute("SELECT 1 FROM works WHERE id = ?",
                                       (int(text),)).fetchone():
        return int(text)
    return find_work(conn, text)


@click.command()
@click.option("--doi", help="The work's DOI (any pasted form).")
@click.option("--pmid", help="The work's PMID.")
@click.option("--id", "work", metavar="ID",
              help="A kb work id, or any identifier: PMCID, OpenAlex id, URL.")
@click.option("--depth", type=click.IntRange(0, 4), default=1, show_default=True,
              help="Citation steps to follow from the work.")
@click.option("--direction", type=click.Choice(DIRECTIONS), default="both",
              show_default=True, help="Follow references, citing works, or both.")
@format_option(*FORMATS)
@out_option
@click.option("--similar", is_flag=True,
              help="List the works most like it (co-citation and bibliographic coupling).")
@click.option("--rank", "rank_", is_flag=True,
              help="Rank by PageRank and in-degree within the whole KB (the neighbourhood, "
                   "or the top works when no work is given).")
@click.option("--path", nargs=2, metavar="A B",
              help="The shortest citation path from work A to work B (any identifiers).")
@click.option("--limit", type=click.IntRange(0), default=25, show_default=True,
              help="Lines per group or list (0: all).")
@pass_settings
def graph(settings: Settings, doi: str | None, pmid: str | None, work: str | None, depth: int,
          direction: str, fmt: str, out: str | None, similar: bool, rank_: bool,
          path: tuple[str, str] | None, limit: int) -> None:
    """Show a work's citation neighbourhood: the trials a pooled analysis or review stands on,
    the reviews around it, its other references and who cites it.

    \b
      kb graph --doi 10.22074/cellj.2024.2032098.1600
      kb graph --doi 10.22074/cellj.2024.2032098.1600 --format png --out pooled.png
      kb graph --doi 10.3389/fbioe.2022.1006845 --similar
      kb graph --path 10.22074/cellj.2024.2032098.1600 10.1186/s13287-021-02513-4

    Formats: text (grouped by role), json (networkx node-link), graphml, gexf (Gephi),
    dot (Graphviz), png / svg (a drawn picture), html (one interactive page, works offline).
    """
    focus_text = _focus_text(doi, pmid, work)
    refuse_binary_to_terminal(fmt, out)
    if (similar or rank_) and fmt not in ("text", "json"):
        raise click.UsageError("--similar and --rank print text or json")
    if similar and rank_:
        raise click.UsageError("give one of --similar, --rank")
    if path and (similar or rank_ or focus_text):
        raise click.UsageError("--path takes its two works instead of --doi/--pmid/--id")
    if not path and not focus_text and not rank_:
        raise click.UsageError("name a work: --doi, --pmid or --id (or use --path A B)")
    from ..query import graph as kbgraph
    from ..render import graph as graph_render
    with kb_errors(settings):
        check_out(out, settings.db_path)
        conn = settings.open()
        try:
            if path:
                payload = _path(conn, path, fmt)
            elif not focus_text:  # --rank over the whole KB
                payload = _rank_kb(conn, fmt, limit)
            else:
                focus = _resolve(conn, focus_text)
                if similar:
                    payload = _similar(conn, focus, fmt, limit)
                else:
                    N = kbgraph.neighbourhood_data(conn, focus, depth=depth,
                                                   direction=direction)
                    # text and json read the plain data: no networkx import
                    G = N if fmt in ("text", "json") and not rank_ else N.to_networkx()
                    if rank_:
                        payload = _rank_neighbourhood(conn, G, focus, fmt, limit)
                    elif fmt == "text":
                        payload = graph_render.render_text(G, focus, width=terminal_width(),
                                                           limit=limit or None)
                    else:
                        payload = graph_render.render(G, focus, fmt)
                    if G.graph.get("truncated"):
                        settings.say("warning: the neighbourhood was truncated; lower --depth")
        finally:
            conn.close()
        emit(payload, out, settings)
    if out:
        settings.say(f"wrote {out}", level=1)


def _similar(conn: Any, focus: int, fmt: str, limit: int) -> str:
    from ..query import graph as kbgraph
    rows = kbgraph.similar(conn, focus, limit=limit)
    attrs = kbgraph.work_attributes(conn, [focus] + [r["id"] for r in rows])
    if fmt == "json":
        return json_text({"focus": attrs[focus], "similar": [
            {**r, **{k: attrs[r["id"]][k] for k in ("doi", "pmid", "label", "title", "year",
                                                    "study_design", "status", "mark")}}
            for r in rows]})
    return works_table(attrs, rows, [("cocitation", "co-cited"), ("coupling", "coupled")],
                       f"Works like {attrs[focus]['label']} (co-cited: cited together by the "
                       "same works; coupled: shared references)")


def _rank_neighbourhood(conn: Any, G: Any, focus: int, fmt: str, limit: int) -> str:
    from ..query import graph as kbgraph
    ranked = kbgraph.rank(kbgraph.full_graph(conn))
    position = {row["id"]: i + 1 for i, row in enumerate(ranked)}
    rows = [{**row, "position": position[row["id"]]} for row in ranked if row["id"] in G]
    rows = rows[:limit] if limit else rows
    attrs = dict(G.nodes(data=True))
    if fmt == "json":
        return json_text({"works_in_kb": len(ranked), "focus": focus, "ranked": [
            {**row, **{k: attrs[row["id"]].get(k) for k in ("doi", "pmid", "label", "title",
                                                          "year", "study_design")}}
            for row in rows]})
    return works_table(attrs, rows, [("position", "#"), ("pagerank", "pagerank"),
                                     ("in_degree", "cited by")],
                       f"The neighbourhood of {attrs[focus]['label']} ranked within the KB "
                       f"({len(ranked)} works)")


#: Words of cell therapy that name no specific product (cell_products finds those).
_CELL_THERAPY = re.compile(r"\b(?:stem|stromal|progenitor|mononuclear)[- ]cells?\b|"
                           r"\bcell[- ](?:based|therap|transplant|treatment)|\bcord blood\b", re.I)


def _about_the_field(conn: Any, ids: list[int]) -> set[int]:
    """The works that are about cell therapy: they report or pool a trial, or their title,
    abstract or keywords name a cell product or cell therapy (the rest is background: CP
    definitions, epidemiology, rehabilitation)."""
    from ..vocabulary import cell_products
    from ..store import chunked
    found: set[int] = set()
    for chunk in chunked(ids):
        marks = ",".join("?" * len(chunk))
        found.update(r[0] for r in conn.execute(
            f"SELECT work_id FROM trial_reports_all WHERE work_id IN ({marks})", chunk))
        found.update(r[0] for r in conn.execute(
            f"SELECT rowid, title, abstract, keywords FROM works_fts_source WHERE rowid IN ({marks})",
            chunk) if _CELL_THERAPY.search(" ".join(r[1:])) or cell_products(" ".join(r[1:])))
    return found


def _rank_kb(conn: Any, fmt: str, limit: int) -> str:
    from ..query import graph as kbgraph
    ranked = kbgraph.rank(kbgraph.full_graph(conn))
    field = _about_the_field(conn, [row["id"] for row in ranked])
    ranked.sort(key=lambda row: row["id"] not in field)  # stable: PageRank order within each
    rows = [{**row, "position": i + 1} for i, row in enumerate(ranked[:limit or None])]
    attrs = kbgraph.work_attributes(conn, [r["id"] for r in rows])
    if fmt == "json":
        return json_text({"works_in_kb": len(ranked), "ranked": [
            {**row, **{k: attrs[row["id"]].get(k) for k in ("doi", "pmid", "label", "title",
                                                          "year", "study_design", "status")}}
            for row in rows]})
    return works_table(attrs, rows, [("position", "#"), ("pagerank", "pagerank"),
                                     ("in_degree", "cited by")],
                       f"The most central works of the KB ({len(ranked)} works; the "
                       f"{len(ranked) - len(field)} background works that name no cell "
                       "therapy come after the field's)")


def _path(conn: Any, ends: tuple[str, str], fmt: str) -> str | bytes:
    from ..query import graph as kbgraph
    from ..render import graph as graph_render
    a, b = (_resolve(conn, text) for text in ends)
    P = kbgraph.path_graph(conn, a, b)
    if P is None:
        raise KBError(f"no citation path between {ends[0]} and {ends[1]} in the KB "
                      "(within 8 steps either way)")
    if fmt == "text":
        return graph_render.render_path_text(P)
    return graph_render.render(P, a, fmt)


@click.command()
@click.option("--topic", help="Count only citing works about this (title, abstract, MeSH).")
@click.option("--min-citers", type=click.IntRange(1), default=2, show_default=True,
              help="How many KB works must cite a missing work.")
@click.option("--limit", type=click.IntRange(0), default=50, show_default=True,
              help="How many to list (0: all).")
@click.option("--ids-only", is_flag=True,
              help="Only works known by a DOI, PMID or URL (what `kb add` can fetch); skips "
                   "reading every unlinked reference, which takes seconds on a large KB.")
@format_option(*GAPS_FORMATS)
@out_option
@pass_settings
def gaps(settings: Settings, topic: str | None, min_citers: int, limit: int, ids_only: bool,
         fmt: str, out: str | None) -> None:
    """List the works that several KB works cite but the KB does not hold yet: what a
    reviewer should add next, with how many KB works cite each and which.

    Those are stubs (known by a DOI, PMID or URL from a reference) and references linked to
    no work that name the same work ("(not linked)": the same title and year, the same
    journal or author, year, volume and first page, or the same printed text). In --format
    csv, a cell starting with = + - @ or a tab / carriage return gets a leading ' so that
    spreadsheets do not run it as a formula (OWASP).

    \b
      kb gaps --topic "cerebral palsy"
      kb gaps --format csv --out to-add.csv
    """
    from ..query.gaps import gaps as find_gaps
    with kb_errors(settings):
        check_out(out, settings.db_path)
        conn = settings.open()
        try:
            rows = find_gaps(conn, topic=topic, min_citers=min_citers, limit=limit or None,
                             unlinked=not ids_only)
        finally:
            conn.close()
        emit(render_gaps(rows, fmt), out, settings)
    if not rows:
        settings.say("no missing work is cited by "
                     f"{min_citers} or more KB works{' on ' + repr(topic) if topic else ''}")
