"""kb meta."""
from __future__ import annotations

import click

from ..cli import (Settings, format_option, kb_errors, out_option, pass_settings,
                   refuse_binary_to_terminal)
from ..render import meta as meta_render
from ..render.emit import emit
from ..render.output import check_out


@click.command()
@click.option("--instrument", required=True,
              help="An instrument or family: GMFM (66, 88 and unspecified), GMFM-66, PEDI, MAS.")
@click.option("--timepoint", required=True, type=float, help="Months after treatment (e.g. 12).")
@click.option("--measure", type=click.Choice(("md", "smd")), default="md", show_default=True,
              help="Mean difference on the instrument's scale, or Hedges' g.")
@click.option("--method", type=click.Choice(("pm", "dl")), default="pm", show_default=True,
              help="τ² estimator: Paule–Mandel or DerSimonian–Laird.")
@click.option("--by", type=click.Choice(("cell-product", "route", "donor")),
              help="Subgroups, with a test for subgroup differences.")
@format_option(*meta_render.FORMATS)
@out_option
@pass_settings
def meta(settings: Settings, instrument: str, timepoint: float, measure: str, method: str,
         by: str | None, fmt: str, out: str | None) -> None:
    """Random-effects meta-analysis of the KB's trials on one instrument at one timepoint.

    Each trial's effect (yi) and sampling variance (vi) come from what it reports — per-arm
    means and SDs (SE and CI converted by the Cochrane Handbook's rules), an adjusted
    difference with its CI, or Cohen's d with the arm sizes — oriented so that > 0 favours
    cell therapy. Pooled with statsmodels (Paule–Mandel τ² by default): estimate, 95% CI,
    prediction interval, τ², I², Q. Trials that cannot enter are listed with the reason;
    what the pool mixes (instrument versions, change vs final) is said.

    Example: kb meta --instrument GMFM --timepoint 12 --measure smd --format png --out forest.png
    """
    from ..evidence.meta import TooFewStudies, meta_analysis

    refuse_binary_to_terminal(fmt, out)
    with kb_errors(settings):
        check_out(out, settings.db_path)
        conn = settings.open(create=False)
        try:
            try:
                result = meta_analysis(conn, instrument, timepoint, measure=measure,
                                       method=method, by=by)
            except TooFewStudies as exc:
                if fmt in ("json", "csv"):
                    emit(meta_render.render(exc.result, fmt), out, settings)
                raise
        finally:
            conn.close()
        emit(meta_render.render(result, fmt), out, settings)
