"""Pictures of outcomes: a time course per arm and a forest plot (PNG / SVG bytes, HTML page).

:func:`time_course` draws months after treatment against the change from baseline (or the
reported measure), one line per arm with its interval, coloured by cell product, controls dashed.
:func:`forest` draws each study's effect and 95% CI (squares sized by weight), the pooled diamond
and the prediction interval. :func:`html_page` wraps a picture's SVG with its numbers.
matplotlib is imported inside, so importing this module is cheap.
"""
from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..evidence.meta import MetaResult, Pooled

__all__ = ["time_course", "forest", "html_page", "PALETTE"]

#: Colours for cell products, in the order they first appear (colour-blind safe, Okabe–Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C564B",
           "#000000")
_MARKERS = "osD^vP*X"


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), dpi=110)


def _save(fig: Any, fmt: str) -> bytes:
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "kb"}):
        fig.savefig(buffer, format=fmt, bbox_inches="tight",
                    metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


# -- time course ----------------------------------------------------------------------------

def _interval(cell: Mapping[str, float], n: int | None) -> tuple[float, float, str] | None:
    """An arm's interval at one timepoint: its 95% CI, else ±1.96 SE, else ±SD."""
    mean = cell["mean"]
    if "ci_low" in cell and "ci_high" in cell:
        return cell["ci_low"], cell["ci_high"], "95% CI"
    if "se" in cell:
        return mean - 1.96 * cell["se"], mean + 1.96 * cell["se"], "95% CI from SE"
    if "sd" in cell:
        return mean - cell["sd"], mean + cell["sd"], "± SD"
    return None


def _series(rows: Sequence[Mapping[str, Any]], quantity: str
            ) -> dict[tuple[str, str], dict[float, dict[str, float]]]:
    series: dict[tuple[str, str], dict[float, dict[str, float]]] = {}
    for row in rows:
        if row["quantity"] != quantity or row["timepoint_months"] is None or " vs " in row["arm"]:
            continue
        key = (row["label"], row["arm"])
        series.setdefault(key, {}).setdefault(row["timepoint_months"], {})[row["statistic"]] = \
            row["value"]
    return {k: {t: c for t, c in v.items() if "mean" in c} for k, v in series.items()}


def _effects_text(rows: Sequence[Mapping[str, Any]], months: Sequence[float]) -> list[str]:
    """ "Amanat 2021, 12 mo, UCT-MSC vs sham: adjusted difference 8.07 (1.62, 14.52); Cohen's
    d 0.92" per comparison reported at a drawn timepoint."""
    names = {"adjusted_difference": "adjusted difference", "between_group_difference":
             "difference", "smd": "SMD", "cohens_d": "Cohen's d"}
    found: dict[tuple[str, float, str], dict[str, dict[str, float]]] = {}
    for r in rows:
        if r["quantity"] in names and r["timepoint_months"] in months:
            key = (r["label"], r["timepoint_months"], r["arm"])
            found.setdefault(key, {}).setdefault(r["quantity"], {})[r["statistic"]] = r["value"]
    lines = []
    for (label, month, arm), by_kind in found.items():
        parts = []
        for kind, stats in by_kind.items():
            text = f"{names[kind]} {stats.get('mean', stats.get('value', float('nan'))):g}"
            if "ci_low" in stats and "ci_high" in stats:
                text += f" (95% CI {stats['ci_low']:g}, {stats['ci_high']:g})"
            parts.append(text)
        lines.append(f"{label}, {month:g} mo, {arm}: " + "; ".join(parts))
    return lines


def time_course(rows: Sequence[Mapping[str, Any]], instrument: str, fmt: str = "png") -> bytes:
    """Arms' time courses for one instrument (rows from
    :func:`kb.evidence.outcomes.select_outcomes` of that instrument), with the between-arm
    effects reported at the drawn timepoints in a box."""
    quantity = "change_from_baseline" if any(
        r["quantity"] == "change_from_baseline" for r in rows) else "final"
    series = _series(rows, quantity)
    product_of = {r["label"]: " + ".join(r["cell_product"]) or "not reported" for r in rows}
    products = list(dict.fromkeys(product_of.values()))
    colours = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(products)}
    trials = list(dict.fromkeys(k[0] for k in series))
    roles = {(r["label"], r["arm"]): r["arm_role"] for r in rows}
    caption_of = {r["label"]: r["caption"] for r in rows}
    fig = _figure(9.5, 5.6)
    ax = fig.add_subplot()
    count = max(len(series), 1)
    kinds = set()
    joined_baseline = False
    for i, ((label, arm), points) in enumerate(sorted(series.items(),
                                                      key=lambda kv: trials.index(kv[0][0]))):
        times = sorted(points)
        offset = (i - (count - 1) / 2) * 0.12  # side by side where arms share a timepoint
        xs = [t + offset if t else t for t in times]
        ys = [points[t]["mean"] for t in times]
        control = roles.get((label, arm)) == "control"
        colour = colours[product_of[label]]
        marker = _MARKERS[trials.index(label) % len(_MARKERS)]
        n = next((r["n"] for r in rows if r["label"] == label and r["arm"] == arm and r["n"]), None)
        name = f"{label} · {arm}" + (f" (n={n})" if n else "") + (
            " [control]" if control and "control" not in arm.lower() else "")
        ax.plot(xs, ys, linestyle="--" if control else "-", color=colour, marker=marker,
                markersize=6, linewidth=1.8, markerfacecolor="white" if control else colour,
                label=name)
        if quantity == "change_from_baseline" and times[0] > 0:  # no change at baseline
            ax.plot([0, xs[0]], [0, ys[0]], color=colour, linewidth=1, linestyle=":")
            joined_baseline = True
        for x, t in zip(xs, times):
            interval = _interval(points[t], n)
            if interval:
                kinds.add(interval[2])
                ax.plot([x, x], interval[:2], color=colour, linewidth=1.2, alpha=0.75,
                        linestyle=(0, (2, 2)) if control else "-")
                ax.plot([x - 0.08, x + 0.08], [interval[0]] * 2, color=colour, linewidth=1)
                ax.plot([x - 0.08, x + 0.08], [interval[1]] * 2, color=colour, linewidth=1)
    if quantity == "change_from_baseline":
        ax.axhline(0, color="#999999", linewidth=0.8)
    ax.set_xlabel("Months after treatment")
    what = "Change from baseline" if quantity == "change_from_baseline" else "Score"
    ax.set_ylabel(f"{what} — {instrument} (mean)")
    points_x = sorted({t for p in series.values() for t in p} | (
        {0.0} if quantity == "change_from_baseline" else set()))
    if points_x:
        ax.set_xticks(points_x)
        ax.set_xlim(min(points_x) - 0.6, max(points_x) + 0.6)
    title = f"{instrument}: {what.lower()} per arm"
    if len(trials) <= 2:
        title += "\n" + "   vs   ".join(caption_of[t] for t in trials)
    ax.set_title(title, fontsize=10.5)
    ax.grid(axis="y", color="#eeeeee")
    ax.spines[["top", "right"]].set_visible(False)
    from matplotlib.lines import Line2D
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color=colours[p], linewidth=6, label=f"cell product: {p}")
                for p in products if any(product_of[t] == p for t in trials)]
    effects = _effects_text(rows, sorted({t for p in series.values() for t in p}))
    if effects:
        corner = (0.01, 0.98, "left", "top") if quantity == "change_from_baseline" else \
            (0.99, 0.02, "right", "bottom")  # where the lines leave room
        ax.text(corner[0], corner[1], "\n".join(effects), transform=ax.transAxes, ha=corner[2],
                va=corner[3], fontsize=8, bbox={"boxstyle": "round", "facecolor": "white",
                                                "edgecolor": "#cccccc"})
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    notes = ["Intervals: " + ", ".join(sorted(kinds)) + "." if kinds else "",
             "Solid: cell-therapy arms; dashed, open markers: controls.",
             "Dotted: from baseline (no change) to the first reported timepoint; nothing was "
             "reported in between." if joined_baseline else "",
             "Arms at the same month are drawn slightly apart." if len(series) > 1 else ""]
    fig.text(0.01, -0.02, " ".join(n for n in notes if n), fontsize=7.5, color="#555555")
    return _save(fig, fmt)


# -- forest plot ----------------------------------------------------------------------------

def _p(value: float) -> str:
    return "p<0.001" if value < 0.001 else f"p={value:.3f}"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _diamond(ax: Any, pooled: Pooled, y: float, colour: str) -> None:
    ax.fill([pooled.ci_low, pooled.estimate, pooled.ci_high, pooled.estimate],
            [y, y + 0.32, y, y - 0.32], color=colour, zorder=3)


def forest(result: MetaResult, fmt: str = "png") -> bytes:
    """A forest plot of ``result``: one row per study (labelled "Author Year · product · route
    · n"), subgroups with their own diamonds when grouped, the pooled diamond and its
    prediction interval, and the excluded studies listed underneath."""
    pooled = result.pooled
    assert pooled is not None
    weights = {id(s): 1 / (s.effect.vi + pooled.tau2) for s in result.studies if s.effect}
    total = sum(weights.values())
    attribute = {"cell-product": "cell_product", "route": "route", "donor": "donor"}.get(
        result.by or "")
    groups: dict[str, list[Any]] = {}
    for study in result.studies:
        key = study.group(attribute) if attribute else ""
        groups.setdefault(key, []).append(study)
    lines: list[tuple[str, Any]] = []
    for name, members in sorted(groups.items()):
        if attribute:
            lines.append(("heading", name))
        lines += [("study", s) for s in sorted(members, key=lambda s: s.label)]
        if attribute and isinstance(result.subgroups.get(name), Pooled):
            lines.append(("subgroup", result.subgroups[name]))
    lines.append(("pooled", pooled))
    height = 1.6 + 0.36 * len(lines) + 0.22 * len(result.excluded)
    fig = _figure(11, height)
    ax = fig.add_axes((0.42, 0.0, 0.33, 1.0))
    y = len(lines)
    lows = [min(s.pooled_effect.ci_low for s in result.studies), pooled.pi_low]
    highs = [max(s.pooled_effect.ci_high for s in result.studies), pooled.pi_high]
    span = max(highs) - min(lows)
    left, right = min(lows + [0]) - 0.05 * span, max(highs + [0]) + 0.05 * span
    colours: dict[str, str] = {}
    for kind, item in lines:
        if kind == "heading":
            ax.text(-1.28, y, item, transform=ax.get_yaxis_transform(), fontsize=9,
                    fontweight="bold")
        elif kind == "study":
            e = item.effect
            colour = colours.setdefault(item.group("cell_product"),
                                        PALETTE[len(colours) % len(PALETTE)])
            size = 4 + 10 * math.sqrt(weights[id(item)] / total)
            ax.plot([e.ci_low, e.ci_high], [y, y], color=colour, linewidth=1.4)
            ax.plot([e.yi], [y], marker="s", markersize=size, color=colour)
            ax.text(-1.28, y, _short(item.caption(), 62),
                    transform=ax.get_yaxis_transform(), fontsize=8.5, va="center")
            ax.text(1.03, y, f"{e.yi:7.2f} [{e.ci_low:.2f}, {e.ci_high:.2f}]   "
                    f"{100 * weights[id(item)] / total:4.1f}%",
                    transform=ax.get_yaxis_transform(), fontsize=8.5, va="center",
                    family="monospace")
        else:
            bold = kind == "pooled"
            _diamond(ax, item, y, "#333333" if bold else "#888888")
            if bold:
                ax.plot([item.pi_low, item.pi_high], [y - 0.45] * 2, color="#333333",
                        linewidth=1, linestyle=(0, (4, 2)))
            text = (f"Random effects ({item.method}), k={item.k}: τ²={item.tau2:.2f}, "
                    f"I²={item.i2:.0f}%" if bold else f"  subgroup, k={item.k}: I²={item.i2:.0f}%")
            ax.text(-1.28, y, text, transform=ax.get_yaxis_transform(), fontsize=8.5,
                    va="center", fontweight="bold" if bold else "normal")
            ax.text(1.03, y, f"{item.estimate:7.2f} [{item.ci_low:.2f}, {item.ci_high:.2f}]",
                    transform=ax.get_yaxis_transform(), fontsize=8.5, va="center",
                    family="monospace", fontweight="bold" if bold else "normal")
            if bold:
                ax.text(1.03, y - 0.5, f"prediction [{item.pi_low:.2f}, {item.pi_high:.2f}]",
                        transform=ax.get_yaxis_transform(), fontsize=7.5, va="center",
                        family="monospace", color="#555555")
        y -= 1
    ax.axvline(0, color="#777777", linewidth=0.9)
    ax.set_xlim(left, right)
    ax.set_ylim(0.2 - 0.6, len(lines) + 1.2)
    ax.set_yticks([])
    ax.spines[["top", "right", "left"]].set_visible(False)
    measure = "Mean difference" if result.measure == "md" else "Standardised mean difference (g)"
    ax.set_xlabel(f"{measure}\n← favours control     favours cell therapy →", fontsize=9)
    top = len(lines) + 0.8
    ax.text(-1.28, top, "Study · cell product · route · n", transform=ax.get_yaxis_transform(),
            fontsize=9, fontweight="bold")
    ax.text(1.03, top, "Effect [95% CI]       Weight", transform=ax.get_yaxis_transform(),
            fontsize=9, fontweight="bold")
    tp = f"{result.timepoint_months:g}"
    title = f"{result.instrument} at {tp} months — {measure.lower()}"
    if result.subgroup_test:
        t = result.subgroup_test
        title += (f"\nTest for subgroup differences ({result.by}): Q={t['q_between']:.2f}, "
                  f"df={t['df']}, {_p(t['p'])}")
    ax.set_title(title, fontsize=10.5, x=0.1)
    notes = list(result.mixes) + [f"Not pooled: {s.label} — {s.excluded}"
                                  for s in result.excluded]
    for i, note in enumerate(notes):
        fig.text(0.02, -0.08 - 0.045 * i * 5 / max(height, 1), note[:170], fontsize=7.5,
                 color="#555555")
    return _save(fig, fmt)


def html_page(title: str, svg: bytes, table_rows: Sequence[Sequence[Any]],
              header: Sequence[str]) -> str:
    """A self-contained HTML page: the picture (inline SVG) above its numbers."""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c if c is not None else ''))}</td>"
                                     for c in row) + "</tr>" for row in table_rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    picture = svg.decode("utf-8")
    picture = picture[picture.find("<svg"):]
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;"
            f"margin:1.5em;color:#222}}svg{{max-width:100%;height:auto}}table{{border-collapse:"
            f"collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;"
            f"text-align:left;vertical-align:top}}th{{background:#f4f4f4}}</style></head><body>"
            f"<h1 style=\"font-size:1.3em\">{html.escape(title)}</h1>{picture}"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>\n")
