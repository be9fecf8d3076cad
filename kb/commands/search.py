"""kb search."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from ..cli import Settings, format_option, kb_errors, pass_settings
from ..render import search as search_render
from ..render.emit import emit


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--year, --design, --mesh, --cell-type: the filters search and export share."""
    func = click.option("--cell-type", "cell_type", metavar="TYPE",
                        help="Only works about this cell type (UCB-MNC, UC-MSC, BM-MNC, …).")(func)
    func = click.option("--mesh", multiple=True, metavar="TERM",
                        help="Only works indexed with this MeSH heading (repeat to need all).")(func)
    func = click.option("--design", metavar="DESIGN",
                        help="Only these study designs, comma-separated (rct, meta-analysis, …).")(func)
    func = click.option("--year", metavar="RANGE",
                        help="Only works from this year or range: 2021, 2015-2025, 2015-, -2020.")(func)
    return func


@click.command()
@click.argument("words", nargs=-1)
@filter_options
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Show at most this many works.")
@click.option("--fuzzy", is_flag=True,
              help="Also match words of the KB spelled like the query's words.")
@format_option(*search_render.FORMATS)
@pass_settings
def search(settings: Settings, words: tuple[str, ...], year: str | None, design: str | None,
           mesh: tuple[str, ...], cell_type: str | None, limit: int, fuzzy: bool,
           fmt: str) -> None:
    """Search what the KB knows about each work — title, abstract, keywords, MeSH, authors,
    journal, and its trials' facts and outcome measures — best matches first.

    QUERY takes words (all must match: kb search cord blood), "exact phrases", AND / OR / NOT,
    brackets, prefix* and the fields title:, abstract:, author:, mesh:, keyword:, journal:,
    trial: — or one DOI, PMID or PMCID, which finds that work. For example

    \b
      kb search 'title:"cerebral palsy" AND (mesenchymal OR "cord blood")'
      kb search 'author:"Zarrabi M"' --design rct --year 2015-2025
      kb search intrathecal --design rct --format bibtex > trials.bib
      kb search 10.1186/s13287-021-02513-4

    Retracted works are marked; so are stubs (works known only from a reference list).
    In --format csv, a cell starting with = + - @ or a tab / carriage return gets a leading '
    so that spreadsheets do not run it as a formula (OWASP).
    Without QUERY, the works passing the filters are listed, newest first.
    """
    from ..identifiers import classify
    from ..query.search import search as run_search
    query = _join(words)
    with kb_errors(settings):
        conn = settings.open()
        try:
            result = run_search(conn, query, year=year, design=design, mesh=list(mesh) or None,
                                cell_type=cell_type, limit=limit, fuzzy=fuzzy)
            records = None
            if fmt in ("bibtex", "ris") and result.hits:
                from ..query.export import load_records
                records = load_records(conn, [hit.id for hit in result.hits])
        finally:
            conn.close()
    for word, alternatives in result.widened.items():
        settings.say(f"also searching {', '.join(alternatives)} for {word}", level=0)
    for note in result.notes:
        settings.say(f"note: {note}")
    if not result.hits:
        # on stderr, so a redirected --format bibtex / csv / json does not pass in silence
        settings.say("No works match" + (f" {query!r}" if query else "")
                     + (" with these filters" if year or design or mesh or cell_type else "")
                     + "." + (f" The {fmt} output is empty." if fmt != "table" else ""))
        ident = classify(query) if query else None
        if ident is not None and ident.kind in ("doi", "pmid", "pmcid", "openalex"):
            settings.say(f"No work in this KB has the {ident.kind.upper()} {ident.value}; "
                         f"`kb add {ident.value}` fetches it.")
        if result.suggestions:
            settings.say("Did you mean: " + ", ".join(result.suggestions) + "?"
                         + ("" if fuzzy else "  (or try --fuzzy)"))
        if fmt == "json":
            emit(search_render.render([], fmt), None, settings)
        return
    emit(search_render.render(result.hits, fmt, records=records or [],
                              color=sys.stdout.isatty()), None, settings)
    if fmt == "table":
        if len(result.hits) == limit:
            settings.say(f"Showing the best {_works(limit)} (--limit for more)." if limit > 1
                         else "Showing the best match (--limit for more).")
        else:
            settings.say(f"{_works(len(result.hits))}.", level=1)


def _works(count: int) -> str:
    return f"{count} work" + ("s" if count != 1 else "")


def _join(words: tuple[str, ...]) -> str | None:
    """The command line's words as one query, as the user means them: ``kb search cord blood``
    is ``cord blood``; a word the shell kept whole (``'a OR b' c``) stays a group."""
    if len(words) <= 1:
        return words[0] if words else None
    return " ".join(f"({w})" if any(c.isspace() for c in w.strip()) else w for w in words)
