"""kb meta."""
from __future__ import annotations

from typing import Any

import click

from ..cli import (Settings, format_option, kb_errors, out_option, pass_settings,
                   refuse_binary_to_terminal)
from ..render.emit import csv_text, emit, json_text
from ..render.output import check_out

FORMATS = ("table", "json", "csv", "png", "svg", "html")
CSV_COLUMNS = ("label", "caption", "cell_product", "route", "donor", "yi", "vi", "se", "ci_low",
               "ci_high",
               "n_intervention", "n_control", "instrument", "basis", "computed_from", "sources",
               "reason")


def _table(result: Any) -> str:
    lines = [f"{result.instrument} at {result.timepoint_months:g} months — "
             f"{'mean difference' if result.measure == 'md' else 'standardised mean difference'}"
             f" (> 0 favours cell therapy)"]
    rows = [s.as_dict() for s in result.studies]
    labels = [r["caption"] for r in rows]
    width = max([len(x) for x in labels] + [20])
    lines.append(f"  {'study':<{width}}  {'yi':>7}  {'95% CI':<17} {'vi':>8}  computed from")
    for label, r in zip(labels, rows):
        lines.append(f"  {label:<{width}}  {r['yi']:7.2f}  "
                     f"[{r['ci_low']:6.2f}, {r['ci_high']:6.2f}]"
                     f" {r['vi']:8.3f}  {r['computed_from']}")
    p = result.pooled
    if p is not None:
        lines.append(f"  {'pooled (' + p.method + ', k=' + str(p.k) + ')':<{width}}  "
                     f"{p.estimate:7.2f}  [{p.ci_low:6.2f}, {p.ci_high:6.2f}]  se {p.se:.3f}")
        lines.append(f"  prediction interval [{p.pi_low:.2f}, {p.pi_high:.2f}]; τ² = {p.tau2:.4f}, "
                     f"I² = {p.i2:.1f}%, Q = {p.q:.2f} (df {p.q_df}, p = {p.q_p:.3g})")
    if result.subgroup_test:
        t = result.subgroup_test
        lines.append(f"Subgroups by {result.by}:")
        for name, group in result.subgroups.items():
            if hasattr(group, "estimate"):
                lines.append(f"  {name}: {group.estimate:.2f} [{group.ci_low:.2f}, "
                             f"{group.ci_high:.2f}], k={group.k}, τ²={group.tau2:.3f}")
            else:
                lines.append(f"  {name}: {group.effect.yi:.2f} (one study: {group.label})")
        lines.append(f"  test for subgroup differences: Q = {t['q_between']:.2f}, df = {t['df']},"
                     f" p = {t['p']:.3g}")
    for note in result.mixes:
        lines.append(f"Mixes: {note}")
    for s in result.excluded:
        lines.append(f"Not pooled: {s.label} — {s.excluded}")
    lines.append("Sources:")
    for r in rows:
        lines.append(f"  {r['label']}: {' '.join(r['sources'])}")
    return "\n".join(lines) + "\n"


def _csv(result: Any) -> str:
    rows = [s.as_dict() for s in result.studies + result.excluded]
    if result.pooled is not None:
        p = result.pooled
        rows.append({"label": f"pooled ({p.method}, k={p.k}, tau2={p.tau2:.6g}, "
                              f"I2={p.i2:.1f}%)", "yi": p.estimate, "vi": p.se ** 2, "se": p.se,
                     "ci_low": p.ci_low, "ci_high": p.ci_high})
    return csv_text(CSV_COLUMNS, rows, neutralise=False)


def _html(result: Any) -> str:
    from ..render import plots

    rows = [(s["caption"], f"{s['yi']:.3f}",
             f"{s['vi']:.4f}", f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}]", s["computed_from"],
             " ".join(s["sources"])) for s in (x.as_dict() for x in result.studies)]
    rows += [(s.label, "", "", "", f"not pooled: {s.excluded}",
              " ".join(s.sources)) for s in result.excluded]
    return plots.html_page(f"{result.instrument} at {result.timepoint_months:g} months: "
                           "forest plot", plots.forest(result, "svg"), rows,
                           ("study · cell product · route · n", "yi", "vi", "95% CI",
                            "computed from", "sources"))


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
@format_option(*FORMATS)
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
    from ..render import plots
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
                    emit(json_text(exc.result.as_dict()) if fmt == "json" else _csv(exc.result),
                         out, settings)
                raise
        finally:
            conn.close()
        if fmt == "table":
            payload: str | bytes = _table(result)
        elif fmt == "json":
            payload = json_text(result.as_dict())
        elif fmt == "csv":
            payload = _csv(result)
        elif fmt == "html":
            payload = _html(result)
        else:
            payload = plots.forest(result, fmt)
        emit(payload, out, settings)
