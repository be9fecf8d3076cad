"""Lists of works with their figures: the graph command's --similar and --rank tables, and the
works ``kb gaps`` finds missing (a table, JSON or CSV)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..query.graph import short_title
from .emit import csv_text, json_text, terminal_width
from .graph import work_ident

__all__ = ["works_table", "GAPS_FORMATS", "render_gaps"]


def works_table(works: dict[int, dict[str, Any]], rows: list[dict[str, Any]],
                columns: list[tuple[str, str]],
                title: str) -> str:
    """``title``, then one line per row: its ``columns`` (key, heading) of figures, then the
    work's label, design, title and identifier from ``works``."""
    lines = [title, ""]
    cells = [[f"{row[key]:.4f}" if isinstance(row[key], float) else str(row[key])
              for key, _name in columns] for row in rows]
    widths = [max((len(cell[i]) for cell in cells), default=0) for i in range(len(columns))]
    for row, cell in zip(rows, cells):
        attrs = works[row["id"]]
        figures = "  ".join(f"{name} {value:>{width}}"
                            for (_key, name), value, width in zip(columns, cell, widths))
        mark = f"[{attrs['mark']}] " if attrs.get("mark") else ""
        title = short_title(mark + (attrs.get("title") or "(no title)"), 50)
        lines.append(f"  {figures}  {attrs['label'][:22]:<22} "
                     f"{(attrs.get('study_design') or 'design ?'):<17} "
                     f"{title:<50}  {work_ident(attrs)}")
    if not rows:
        lines.append("  (none)")
    return "\n".join(lines) + "\n"


_GAPS_COLUMNS = ("n_citers", "status", "doi", "pmid", "first_author", "year", "title", "journal",
                 "reference", "cited_by")


def _gaps_table(rows: list[dict[str, Any]]) -> str:
    width = terminal_width()
    lines = []
    for row in rows:
        title = row["title"] or row["reference"] or "(title not known yet)"
        label = row["label"] if row["first_author"] or row["journal"] else "(author unknown)"
        where = work_ident(row) if row["id"] else "(not linked)"
        head = f"{row['n_citers']:>4}  {label[:24]:<24}  {where}"
        room = max(20, width - len(head) - 2)
        lines.append(f"{head}  {title[:room - 1] + '…' if len(title) > room else title}")
        names = [c["label"] for c in row["citers"]]
        lines.append(f"      cited by: {', '.join(names[:6])}"
                     f"{f' and {len(names) - 6} more' if len(names) > 6 else ''}")
    return "\n".join(lines) + ("\n" if lines else "")


def _gaps_csv(rows: list[dict[str, Any]]) -> str:
    return csv_text(_GAPS_COLUMNS, (
        {**row, "cited_by": "; ".join(c["doi"] or c["label"] for c in row["citers"])}
        for row in rows))


_GAPS_WRITERS: dict[str, Callable[[list[dict[str, Any]]], str]] = {
    "table": _gaps_table, "json": json_text, "csv": _gaps_csv,
}
#: The formats of ``kb gaps``, the default first.
GAPS_FORMATS = tuple(_GAPS_WRITERS)


def render_gaps(rows: list[dict[str, Any]], fmt: str) -> str:
    """The missing works (:func:`kb.query.gaps.gaps`) as a document in ``fmt`` (one of
    :data:`GAPS_FORMATS`)."""
    return _GAPS_WRITERS[fmt](rows)
