"""A meta-analysis (:func:`kb.evidence.meta.meta_analysis`) as a text table, JSON, CSV, or a
forest plot (PNG, SVG, or an HTML page with its table)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .emit import csv_text, json_text

__all__ = ["FORMATS", "render"]

_CSV_COLUMNS = ("label", "caption", "cell_product", "route", "donor", "yi", "vi", "se", "ci_low",
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
    return csv_text(_CSV_COLUMNS, rows, neutralise=False)


def _html(result: Any) -> str:
    from . import plots

    rows = [(s["caption"], f"{s['yi']:.3f}",
             f"{s['vi']:.4f}", f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}]", s["computed_from"],
             " ".join(s["sources"])) for s in (x.as_dict() for x in result.studies)]
    rows += [(s.label, "", "", "", f"not pooled: {s.excluded}",
              " ".join(s.sources)) for s in result.excluded]
    return plots.html_page(f"{result.instrument} at {result.timepoint_months:g} months: "
                           "forest plot", plots.forest(result, "svg"), rows,
                           ("study · cell product · route · n", "yi", "vi", "95% CI",
                            "computed from", "sources"))


def _forest(result: Any, fmt: str) -> bytes:
    from . import plots
    return plots.forest(result, fmt)


_WRITERS: dict[str, Callable[[Any], str | bytes]] = {
    "table": _table, "json": lambda result: json_text(result.as_dict()), "csv": _csv,
    "png": lambda result: _forest(result, "png"), "svg": lambda result: _forest(result, "svg"),
    "html": _html,
}
#: The formats of ``kb meta``, the default first.
FORMATS = tuple(_WRITERS)


def render(result: Any, fmt: str) -> str | bytes:
    """The meta-analysis ``result`` as a document in ``fmt`` (one of :data:`FORMATS`)."""
    return _WRITERS[fmt](result)
