"""Search hits (:func:`kb.query.search.search`) as a terminal list, JSON, CSV, BibTeX or RIS."""
from __future__ import annotations

import io
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from .emit import csv_text, json_text, terminal_width

if TYPE_CHECKING:
    from ..formats import ExportRecord
    from ..query.search import Hit

__all__ = ["FORMATS", "render"]

_CSV_COLUMNS = ("doi", "pmid", "title", "year", "journal", "authors", "study_design", "score",
                "is_retracted", "mark", "status", "unverified", "snippet")


def _table(hits: Sequence[Hit], *, color: bool) -> str:
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


def _citations(records: Sequence[ExportRecord], fmt: str) -> str:
    from ..formats import write
    buffer = io.StringIO()
    write(records, fmt, buffer)
    return buffer.getvalue()


Writer = Callable[[Sequence["Hit"], Sequence["ExportRecord"], bool], str]
_WRITERS: dict[str, Writer] = {
    "table": lambda hits, records, color: _table(hits, color=color),
    "json": lambda hits, records, color: json_text([hit.to_dict() for hit in hits]),
    "csv": lambda hits, records, color: csv_text(_CSV_COLUMNS, (hit.to_dict() for hit in hits)),
    "bibtex": lambda hits, records, color: _citations(records, "bibtex"),
    "ris": lambda hits, records, color: _citations(records, "ris"),
}
#: The formats of ``kb search``, the default first.
FORMATS = tuple(_WRITERS)


def render(hits: Sequence[Hit], fmt: str, *, records: Sequence[ExportRecord] = (),
           color: bool = False) -> str:
    """The hits as a document in ``fmt`` (one of :data:`FORMATS`): BibTeX and RIS are written
    from ``records`` (the hits' full records), the table is styled only when ``color``."""
    return _WRITERS[fmt](hits, records, color)
