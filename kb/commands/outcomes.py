"""kb outcomes."""
from __future__ import annotations

import click

from ..cli import (Settings, format_option, kb_errors, out_option, pass_settings,
                   refuse_binary_to_terminal)
from ..errors import InputError
from ..render import outcomes as outcomes_render
from ..render.emit import emit
from ..render.output import check_out

FORMATS = ("table", "json", "csv", "png", "svg", "html")
@click.command()
@click.argument("query", required=False)
@click.option("--doi", help="The trials this work reports — or, for a pooled study, the trials "
                            "it pools — side by side.")
@click.option("--trial", help="One trial: a registry id, a report DOI or a label "
                              "('Amanat 2021').")
@click.option("--instrument", help="An instrument or family: GMFM (66, 88 and unspecified), "
                                   "GMFM-66, PEDI, MAS, ...")
@format_option(*outcomes_render.FORMATS)
@out_option
@pass_settings
def outcomes(settings: Settings, query: str | None, doi: str | None, trial: str | None,
             instrument: str | None, fmt: str, out: str | None) -> None:
    """Reported outcome numbers per trial, arm, instrument and timepoint, each with its page.

    The table is a data-extraction form (arms × timepoints; numbers in brackets point to the
    source pages listed underneath); json and csv hold every number with its provenance and
    page; png / svg / html draw the time course (months after treatment against the change from
    baseline, one line per arm, coloured by cell product, controls dashed). QUERY keeps rows
    whose trial, cell product, route, instrument or arm contain every word.

    Example: kb outcomes --doi 10.22074/cellj.2024.2032098.1600 --instrument GMFM-66
    """
    from ..evidence.outcomes import select_outcomes

    refuse_binary_to_terminal(fmt, out)
    with kb_errors(settings):
        check_out(out, settings.db_path)
        conn = settings.open(create=False)
        try:
            rows = select_outcomes(conn, query=query, doi=doi, trial=trial,
                                   instrument=instrument)
            if not rows and instrument:
                known = sorted({r[0] for r in conn.execute(
                    "SELECT DISTINCT instrument FROM outcomes WHERE instrument IS NOT NULL")})
                raise InputError(f"no outcomes for instrument {instrument!r} here; the KB has: "
                                 f"{', '.join(known) or 'none'}")
        finally:
            conn.close()
        if not rows:
            settings.say("no outcome numbers match (run `kb build` for the curated outcomes)")
        emit(outcomes_render.render(rows, fmt, query={"query": query, "doi": doi, "trial": trial,
                                                      "instrument": instrument}),
             out, settings)
