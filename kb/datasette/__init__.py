"""kb's Datasette plugin: a home page for the field, identifiers as links, relevance-ranked
full-text search, internal columns hidden, a work's marks at the top of its page, tables in a
reading order and a chart of works per year by design.

:func:`options` gives :class:`datasette.app.Datasette` the templates and static files and
registers this module's hooks (``render_cell``, ``extra_template_vars``, ``prepare_connection``,
``canned_queries``, ``register_routes``, ``asgi_wrapper``); ``kb serve`` calls it. Everything
applies to the database served as ``kb`` only.
"""
from __future__ import annotations

import re
import sqlite3
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from datasette import hookimpl

from ..identifiers import registry_url

__all__ = ["options", "identifier_links", "TABLE_ORDER", "HIDDEN_COLUMNS", "POOLED_DOI"]

DB_NAME = "kb"
#: The seed: the 2025 pooled analysis of two intrathecal trials.
POOLED_DOI = "10.22074/cellj.2024.2032098.1600"
#: Tables and views in reading order (the rest follow, by name; empty tables last).
TABLE_ORDER = ("works", "evidence", "trials", "outcomes", "effects", "outcome_rows",
               "lineage_edges", "citation_edges", "works_with_first_author", "authors",
               "trial_reports", "trial_facts", "trial_arms", "trial_registry_ids", "lineage",
               "citations", "mesh", "keywords", "publication_types", "work_flags", "synonyms",
               "updates", "accessions", "records")
#: The JSON-array copies of the multi-valued trial facts (schema 10), there for the facets.
_ARRAYS = ("cell_products", "donors", "routes")
#: Columns a table page leaves out unless asked (?_col= / ?_nocol=, or the column menu):
#: bookkeeping, JSON provenance and long text that squeezes the titles.
HIDDEN_COLUMNS: dict[str, tuple[str, ...]] = {
    "works": ("subtitle", "abstract", "journal_abbrev", "issn", "publisher", "pub_date",
              "volume", "issue", "pages", "language", "design_source", "license", "note",
              "provenance", "created_at", "updated_at", "annotated_at"),
    "trials": ("key", "created_at", "updated_at", *_ARRAYS),
    "evidence": _ARRAYS, "outcome_rows": _ARRAYS, "effects": _ARRAYS,
    "trial_facts": ("data", "sources", "updated_at"),
    "citations": ("ref_key", "sources", "created_at", "updated_at"),
    "records": ("body",),
    "authors": ("created_at",),
    "lineage": ("created_at",),
}
_PAGE_SUFFIX = re.compile(r"\.(json|csv|tsv|db)$")


def options() -> dict[str, Any]:
    """Keyword arguments for ``Datasette(...)``: kb's templates and static files (this module's
    hooks are registered once per process)."""
    from datasette.plugins import pm

    import kb.datasette as plugin
    if not pm.is_registered(plugin):
        pm.register(plugin, name="kb")
    folder = resources.files("kb.datasette")
    return {"template_dir": str(folder / "templates"),
            "static_mounts": [("kb-static", str(folder / "static"))]}


# -- identifiers as links -------------------------------------------------------------------

def _url(column: str, value: str) -> str | None:
    """The page an identifier in ``column`` names, or None."""
    name = column.lower()
    if name == "doi" or name.endswith("_doi"):
        return "https://doi.org/" + quote(value, safe="/:;()")
    if name == "pmid" or name.endswith("_pmid"):
        return f"https://pubmed.ncbi.nlm.nih.gov/{quote(value)}/" if value.isdigit() else None
    if name == "pmcid" or name.endswith("_pmcid"):
        return f"https://pmc.ncbi.nlm.nih.gov/articles/{quote(value)}/" \
            if re.fullmatch(r"PMC\d+", value) else None
    if name in ("url", "source_url", "source", "reported_in", "work_url") or name.endswith("_url"):
        return value if re.match(r"https?://", value) else None
    return registry_url(value)


def identifier_links(column: str, value: Any) -> str | None:
    """HTML linking each identifier in a cell (``; ``-joined lists too) to its page: doi.org,
    PubMed, PMC, ClinicalTrials.gov and the other trial registries, http(s) pages. None when
    the cell holds no identifier.

    >>> identifier_links("registry_ids", "NCT01234567; IRCT20200101046000N1")
    '<a href="https://clinicaltrials.gov/study/NCT01234567">NCT01234567</a>; <a href="https://irct.behdasht.gov.ir/search/result?query=IRCT20200101046000N1">IRCT20200101046000N1</a>'
    >>> identifier_links("doi", "10.1/x<y>") is None, identifier_links("title", "NCT01234567")
    (False, None)
    """
    from markupsafe import escape

    if not isinstance(value, str) or not value.strip() or column.lower() in (
            "title", "label", "name", "reference", "unstructured", "description", "note"):
        return None
    parts = [p.strip() for p in value.split(";")]
    urls = [_url(column, p) for p in parts]
    if not any(urls):
        return None
    return "; ".join(f'<a href="{escape(u)}">{escape(p)}</a>' if u else str(escape(p))
                     for p, u in zip(parts, urls))


@hookimpl
def render_cell(row: Any, value: Any, column: str, table: str | None, database: str) -> Any:
    """Identifiers as links; a query's work label as a link to the work's page; search
    snippets with their matches marked; flags as badges."""
    from markupsafe import Markup, escape

    if database != DB_NAME:
        return None
    if column == "snippet" and isinstance(value, str):
        return Markup(str(escape(value)).replace("\x02", "<mark>").replace("\x03", "</mark>"))
    if column in ("unverified", "is_retracted") and value == 1 or column == "marks" and value:
        label = {"unverified": "unverified", "is_retracted": "RETRACTED"}.get(column, value)
        kind = "kb-unverified" if label == "unverified" else "kb-is_retracted"
        return Markup(f'<span class="kb-badge {kind}">{escape(label)}</span>')
    if column == "label" and table is None and "work_id" in _keys(row) and value:
        return Markup(f'<a href="/{DB_NAME}/works/{int(row["work_id"])}">{escape(value)}</a>')
    html = identifier_links(column, value)
    return Markup(html) if html else None


def _keys(row: Any) -> list[str]:
    try:
        return list(row.keys())
    except AttributeError:
        return []


# -- relevance-ranked search --------------------------------------------------------------

def _fts_query(text: str | None) -> str:
    """kb search's reading of a query, as FTS5 syntax (plain quoted words when unreadable)."""
    from kb.errors import InputError
    from kb.query.search import quote as quote_words
    from kb.query.search import translate
    try:
        return translate(text or "")[0] or '""'
    except InputError:
        return quote_words(text or "") or '""'


@hookimpl
def prepare_connection(conn: sqlite3.Connection, database: str) -> None:
    if database == DB_NAME:
        conn.create_function("kb_fts_query", 1, _fts_query, deterministic=True)


@hookimpl
def canned_queries(database: str) -> dict[str, Any] | None:
    """``search_works``: kb search's ranking (bm25 with kb's column weights, scaled by each
    record's completeness) over the full-text index, with a snippet of where it matched."""
    if database != DB_NAME:
        return None
    from kb.query.search import _COMPLETENESS, _COMPLETENESS_SCALE, WEIGHTS
    weights = ", ".join(str(w) for w in WEIGHTS)
    return {"search_works": {
        "title": "Search works (best matches first)",
        "hide_sql": True,
        "description_html": (
            "<p>Full-text search over what the KB knows about each work: title, abstract, "
            "keywords, MeSH, authors, journal, and its trials' facts and outcome instruments "
            "— the same reading and ranking as <code>kb search</code>: words (all must match), "
            "\"phrases\", OR, NOT, prefix*, and fields such as <code>title:</code> or "
            "<code>trial:</code>. Try <a href=\"?q=GMFM\">GMFM</a>, "
            "<a href=\"?q=intrathecal\">intrathecal</a> or "
            "<a href=\"?q=cord+blood\">cord blood</a>.</p>"),
        "sql": (
            "SELECT wl.label, w.title, w.year, w.study_design, w.doi, "
            "snippet(works_fts, -1, char(2), char(3), '…', 16) AS snippet, "
            "CASE WHEN w.is_retracted THEN 'RETRACTED' WHEN w.unverified THEN 'unverified' "
            "END AS marks, "
            f"round(-bm25(works_fts, {weights}) * (1 + {_COMPLETENESS} / {_COMPLETENESS_SCALE}), 2)"
            " AS relevance, w.id AS work_id "
            "FROM works_fts JOIN works w ON w.id = works_fts.rowid "
            "JOIN work_labels wl ON wl.work_id = w.id "
            "WHERE works_fts MATCH kb_fts_query(:q) ORDER BY relevance DESC, w.id LIMIT 200"),
    }}


# -- pages ----------------------------------------------------------------------------------

#: What the works table's own form sends with a search when nothing else was chosen.
_FORM_DEFAULTS = {("_sort_desc", "year"), ("_sort", "year"), ("_sort_by_desc", "on"),
                  ("_filter_column", ""), ("_filter_op", "exact"), ("_filter_value", ""),
                  ("_search_mode", "")}


def _rewrite(scope: dict[str, Any]) -> str | None:
    """Where a request goes instead: a full-text search of the works table (with no filter,
    facet, sort or choice of columns of its own) to the relevance-ranked ``search_works``
    query."""
    path = scope.get("path", "")
    if scope.get("type") != "http" or path != f"/{DB_NAME}/works":
        return None
    args = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    search = [v for k, v in args if k == "_search"]
    if len(search) != 1 or not search[0].strip() or \
            any(k != "_search" and (k, v) not in _FORM_DEFAULTS
                and not (k == "_nocol" and v in HIDDEN_COLUMNS["works"]) for k, v in args):
        return None
    return f"/{DB_NAME}/search_works?" + urlencode({"q": search[0]})


@hookimpl
def asgi_wrapper() -> Any:
    def wrap(app: Any) -> Any:
        async def kb_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            target = _rewrite(scope)
            if target:
                await send({"type": "http.response.start", "status": 302,
                            "headers": [(b"location", target.encode("utf-8")),
                                        (b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b""})
                return
            await app(_hide_columns(scope), receive, send)
        return kb_app
    return wrap


def _hide_columns(scope: dict[str, Any]) -> dict[str, Any]:
    """A table's HTML page without its hidden columns, unless the request picks columns."""
    match = re.fullmatch(rf"/{DB_NAME}/([A-Za-z_]+)", scope.get("path", ""))
    if scope.get("type") != "http" or not match or match.group(1) not in HIDDEN_COLUMNS:
        return scope
    query = scope.get("query_string", b"").decode("latin-1")
    names = {k for k, _ in parse_qsl(query, keep_blank_values=True)}
    if names & {"_col", "_nocol", "_nohide"}:
        return scope
    hidden = urlencode([("_nocol", c) for c in HIDDEN_COLUMNS[match.group(1)]])
    return {**scope, "query_string": (query + "&" if query else "").encode("latin-1")
            + hidden.encode("latin-1")}


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [(r"^/-/kb/works-per-year\.svg$", _chart_route),
            (r"^/-/kb/seed\.svg$", _seed_route)]


async def _chart_route(datasette: Any) -> Any:
    from datasette.utils.asgi import Response
    svg = await datasette.get_database(DB_NAME).execute_fn(_chart_svg)
    return Response(svg, content_type="image/svg+xml; charset=utf-8",
                    headers={"cache-control": "max-age=60"})


async def _seed_route(datasette: Any) -> Any:
    from datasette.utils.asgi import Response
    svg = await datasette.get_database(DB_NAME).execute_fn(_seed_svg)
    if svg is None:
        return Response.text("the seed's pooled study is not in this KB", status=404)
    return Response(svg, content_type="image/svg+xml; charset=utf-8",
                    headers={"cache-control": "max-age=60"})


def _chart_svg(conn: sqlite3.Connection) -> str:
    """Works per year, stacked by study design (matplotlib, SVG)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = conn.execute("SELECT year, coalesce(study_design, 'unknown'), count(*) FROM works "
                        "WHERE year IS NOT NULL AND status = 'full' GROUP BY 1, 2").fetchall()
    years = list(range(min((r[0] for r in rows), default=2000),
                       max((r[0] for r in rows), default=2000) + 1))
    totals: dict[str, int] = {}
    for _, design, count in rows:
        totals[design] = totals.get(design, 0) + count
    designs = sorted(totals, key=lambda d: -totals[d])
    counts = {(y, d): c for y, d, c in rows}
    fig, ax = plt.subplots(figsize=(9, 3.4), dpi=100)
    bottom = [0] * len(years)
    colours = plt.get_cmap("tab20")
    for i, design in enumerate(designs):
        heights = [counts.get((y, design), 0) for y in years]
        ax.bar(years, heights, bottom=bottom, label=design, color=colours(i % colours.N),
               width=0.8)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_ylabel("works")
    ax.set_title("Works per year by study design", loc="left", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    locator = ax.yaxis.get_major_locator()
    if isinstance(locator, MaxNLocator):
        locator.set_params(integer=True)
    ax.legend(fontsize=8, frameon=False, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    return out.getvalue()


def _seed_svg(conn: sqlite3.Connection) -> str | None:
    """The seed's picture: the pooled study's citation neighbourhood, as ``kb graph`` draws it."""
    from kb.query import graph
    from kb.render import graph as graph_render

    row_factory, conn.row_factory = conn.row_factory, sqlite3.Row
    try:
        row = conn.execute("SELECT id FROM works WHERE doi = ?", (POOLED_DOI,)).fetchone()
        if row is None:
            return None
        G = graph.neighbourhood(conn, row[0])
        return graph_render.render(G, row[0], "svg").decode("utf-8")
    finally:
        conn.row_factory = row_factory


# -- template variables ---------------------------------------------------------------------

def _home(conn: sqlite3.Connection) -> dict[str, Any]:
    """What the home page shows: counts, works by design, trials by cell product."""
    def one(sql: str) -> Any:
        return conn.execute(sql).fetchone()[0]

    return {
        "works": one("SELECT count(*) FROM works WHERE status = 'full'"),
        "stubs": one("SELECT count(*) FROM works WHERE status = 'stub'"),
        "trials": one("SELECT count(*) FROM trials"),
        "outcomes": one("SELECT count(*) FROM outcomes"),
        "links": one("SELECT count(*) FROM (SELECT DISTINCT citing_id, cited_id FROM citations "
                     "WHERE cited_id IS NOT NULL)"),
        "pooled": one("SELECT count(DISTINCT from_work_id) FROM lineage WHERE relation = 'pools'"),
        "by_design": conn.execute(
            "SELECT coalesce(study_design, 'unknown'), count(*), min(year), max(year) "
            "FROM works WHERE status = 'full' GROUP BY 1 ORDER BY 2 DESC, 1").fetchall(),
        "by_product": [(product, count, people, ", ".join(sorted(
            {r.strip() for r in (routes or "").replace(",", ";").split(";") if r.strip()})))
            for product, count, people, routes in conn.execute(
                "SELECT coalesce(nullif(cell_product, ''), 'not reported') AS product, "
                "count(*), sum(n), group_concat(route, '; ') FROM trials GROUP BY 1 "
                "ORDER BY 2 DESC, 1")],
    }


def _marks(conn: sqlite3.Connection, work_id: Any) -> dict[str, Any] | None:
    """A work's marks for the top of its page: unverified (with the curator's note) and the
    evidence layer's flags (retracted, depends on a retracted report, …)."""
    row = conn.execute("SELECT unverified, note, is_retracted FROM works WHERE id = ?",
                       (work_id,)).fetchone()
    if row is None:
        return None
    flags = conn.execute("SELECT flag, reason FROM work_flags WHERE work_id = ? ORDER BY flag",
                         (work_id,)).fetchall()
    return {"unverified": bool(row[0]), "note": row[1], "retracted": bool(row[2]),
            "flags": [(f.replace("_", " "), r) for f, r in flags]}


def _ordered(tables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {name: i for i, name in enumerate(TABLE_ORDER)}
    return sorted(tables, key=lambda t: (t.get("hidden", False), not t.get("count"),
                                         rank.get(t["name"], len(rank)), t["name"]))


@hookimpl
def extra_template_vars(template: str, database: str | None, table: str | None,
                        view_name: str, request: Any, datasette: Any) -> Any:
    async def variables() -> dict[str, Any]:
        out: dict[str, Any] = {"kb_order_tables": _ordered, "kb_pooled_doi": POOLED_DOI}
        if DB_NAME not in datasette.databases:
            return out
        db = datasette.get_database(DB_NAME)
        if view_name == "index":
            out["kb_home"] = await db.execute_fn(_home)
            out["kb_queries"] = await datasette.get_canned_queries(DB_NAME, None)
        if view_name == "row" and database == DB_NAME and table == "works" and request:
            work_id = request.url_vars.get("pks", "").split(",")[0]
            out["kb_marks"] = await db.execute_fn(lambda conn: _marks(conn, work_id))
        if view_name == "table" and database == DB_NAME and table in HIDDEN_COLUMNS:
            out["kb_hidden"] = HIDDEN_COLUMNS[table]
        return out
    return variables


@hookimpl
def extra_css_urls(database: str | None) -> list[str]:
    return ["/kb-static/kb.css"]
