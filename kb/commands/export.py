"""kb export."""
from __future__ import annotations

from typing import TextIO

import click

from ..cli import Settings, format_option, kb_errors, out_option, pass_settings
from .search import filter_options


@click.command()
@click.argument("query", required=False)
@filter_options
@click.option("--stubs", is_flag=True,
              help="Also export works known only from reference lists (stubs).")
@format_option("bibtex", "ris", "csljson", "nbib", "csv", "jsonl", "citations-csv")
@out_option
@pass_settings
def export(settings: Settings, query: str | None, year: str | None, design: str | None,
           mesh: tuple[str, ...], cell_type: str | None, stubs: bool, fmt: str,
           out: str | None) -> None:
    """Export works for a reference manager or a spreadsheet (all works without QUERY).

    QUERY and the filters work as in `kb search`. Citation keys (familyYEARword, with a, b, …
    for works that share one) stay the same for the same KB. citations-csv writes the
    `citing,cited` pairs of the selected works' resolved references (as OpenCitations does),
    which `kb import` reads back. In --format csv, a cell starting with = + - @ or a tab /
    carriage return gets a leading ' so that spreadsheets do not run it as a formula (OWASP);
    `kb import` drops it again.

    \b
      kb export 'mesenchymal' --design rct --format bibtex --out trials.bib
      kb export --format ris --out everything.ris
      kb export --year 2020- --format csljson > recent.json
    """
    from ..query.export import export_citations, export_works
    from ..render.output import check_out, write_output
    with kb_errors(settings):
        check_out(out, settings.db_path)
        conn = settings.open()
        try:
            def produce(handle: TextIO) -> int:
                if fmt == "citations-csv":
                    return export_citations(conn, query, handle, year=year, design=design,
                                            mesh=mesh, cell_type=cell_type, stubs=stubs)
                return export_works(conn, query, fmt, handle, year=year, design=design,
                                    mesh=mesh, cell_type=cell_type, stubs=stubs)
            count = write_output(out, produce, db_path=settings.db_path)
        finally:
            conn.close()
    noun = "citation" if fmt == "citations-csv" else "work"
    if not count:
        settings.say(f"No {noun}s match" + (f" {query!r}" if query else "") + "; nothing exported.")
    else:
        settings.say(f"Exported {count} {noun}{'s' if count != 1 else ''}"
                     + (f" to {out}" if out else ""))
