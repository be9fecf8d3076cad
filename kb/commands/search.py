"""kb search."""
from __future__ import annotations

import io
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import click

from ..cli import Settings, format_option, kb_errors, pass_settings
from ..render.emit import csv_text, emit, json_text, terminal_width

_CSV_COLUMNS = ("doi", "pmid", "title", "year", "journal", "authors", "study_design", "score",
                "is_retracted", "mark", "status", "unverified", "snippet")


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
@format_option("table", "json", "csv", "bibtex", "ris")
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
            emit(json_text([]), None, settings)
        return
    if fmt == "json":
        payload = json_text([h.to_dict() for h in result.hits])
    elif fmt == "csv":
        payload = csv_text(_CSV_COLUMNS, (hit.to_dict() for hit in result.hits))
    elif fmt in ("bibtex", "ris"):
        from ..formats import write
        buffer = io.StringIO()
        write(records or [], fmt, buffer)
        payload = buffer.getvalue()
    else:
        payload = _table(result.hits, color=sys.stdout.isatty())
    emit(payload, None, settings)
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


def _table(hits: list, *, color: bool) -> str:
    """One block per hit: rank, tags, authors and year, title, ids, snippet (styled only when
    ``color``)."""
    width = terminal_width(100, least=60, most=120)
    indent = "     "
    lines = []
    for rank, hit in enumerate(hits, 1):
        tags = []
        if hit.mark and hit.mark != "RETRACTED":
            tags.append(click.style(hit.mark, fg="red" if "RETRACT" in hit.mark else "yellow",
                                    bold=True))
        if hit.is_retracted or hit.mark == "RETRACTED":
            tags.append(click.style("RETRACTED", fg="red", bold=True))
        if hit.status == "stub":
            tags.append(click.style("stub", fg="yellow"))
        if hit.unverified:
            tags.append(click.style("unverified", fg="yellow"))
        if hit.study_design:
            tags.append(click.style(hit.study_design, fg="cyan"))
        authors = hit.authors.split("; ")
        byline = ", ".join(authors[:3]) + (" et al." if len(authors) > 3 else "")
        source = " · ".join(str(p) for p in (byline or None, hit.year, hit.journal) if p)
        lines.append(f"{rank:>3}. " + " ".join(f"[{t}]" for t in tags) + (" " if tags else "")
                     + source)
        title = hit.title or "(untitled)"
        marked = hit.title_marked if hit.title_marked.replace("\x02", "").replace(
            "\x03", "") == title else title
        for line in _marked_lines(marked, width - len(indent), "\x1b[33m", "\x1b[39m"):
            lines.append(indent + click.style(line, bold=True))
        ids = "  ".join(p for p in (f"doi:{hit.doi}" if hit.doi else "",
                                    f"pmid:{hit.pmid}" if hit.pmid else "",
                                    f"score {hit.score:.1f}" if hit.score else "") if p)
        if ids:
            lines.append(indent + click.style(ids, dim=True))
        snippet = hit.snippet_text("\x02", "\x03")
        plain = hit.snippet_text().strip("… ")
        if plain and plain not in title:
            for line in _marked_lines(snippet, width - len(indent)):
                lines.append(indent + line)
        lines.append("")
    text = "".join(line + "\n" for line in lines)
    return text if color else click.unstyle(text)


def _marked_lines(text: str, width: int, on: str = "\x1b[1;33m", off: str = "\x1b[22;39m"
                  ) -> list[str]:
    """Wrap text whose matches sit between \x02 and \x03, which become ``on`` / ``off`` (ANSI,
    which click drops when the output is not a terminal)."""
    lines = []
    open_mark = False
    for line in textwrap.wrap(text, width) or [text]:
        line = ("\x02" if open_mark else "") + line
        open_mark = line.count("\x02") > line.count("\x03")
        line += "\x03" if open_mark else ""
        lines.append(line.replace("\x02", on).replace("\x03", off))
    return lines
