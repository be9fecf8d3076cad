"""Where every command's output goes: :func:`emit` writes a finished payload to standard output
or ``--out`` (through :func:`kb.render.output.write_output`), :func:`terminal_width` is the one
reading of the terminal's width, and :func:`json_text` / :func:`csv_text` are the JSON and CSV
documents the commands print."""
from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..formats.tabular import SafeWriter
from .output import write_output

if TYPE_CHECKING:
    from ..cli import Settings

__all__ = ["emit", "terminal_width", "json_text", "csv_text"]


def emit(payload: str | bytes, out: str | None, settings: Settings) -> None:
    """Write ``payload`` to ``out`` (``None`` or ``-``: standard output), never onto the KB.

    :raises InputError: ``out`` is refused (see :func:`kb.render.output.write_output`).
    :raises KBError: writing failed.
    """
    if isinstance(payload, bytes):
        data = payload
        write_output(out, lambda handle: handle.write(data), db_path=settings.db_path,
                     binary=True)
    else:
        text = payload
        write_output(out, lambda handle: handle.write(text), db_path=settings.db_path)


def terminal_width(fallback: int = 120, *, least: int = 80, most: int | None = None) -> int:
    """The terminal's width in columns (``$COLUMNS`` first; ``fallback`` when there is no
    terminal), kept between ``least`` and ``most``."""
    width = max(least, shutil.get_terminal_size((fallback, 24)).columns)
    return width if most is None else min(width, most)


def json_text(data: Any) -> str:
    """``data`` as indented JSON, non-ASCII kept, with a final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], *,
             neutralise: bool = True) -> str:
    """A header row, then one line per row with these columns (other keys ignored; a missing
    key or ``None`` is an empty cell, a list is joined with "; "). Cells that a spreadsheet
    would run as a formula get a leading ' (:class:`kb.formats.tabular.SafeWriter`) unless
    ``neutralise`` is false."""
    buffer = io.StringIO()
    writer = SafeWriter(buffer) if neutralise else csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    return "; ".join(map(str, value)) if isinstance(value, list) else value
