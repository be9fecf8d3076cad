"""Outcome numbers (:func:`kb.evidence.outcomes.select_outcomes`) as a data-extraction form,
JSON, CSV, or a drawn time course (PNG, SVG, or an HTML page with its table)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InputError
from .emit import csv_text, json_text

__all__ = ["FORMATS", "render"]

_QUANTITY = {"final": "final", "change_from_baseline": "change from baseline",
             "between_group_difference": "difference", "adjusted_difference": "adjusted difference",
             "smd": "SMD", "cohens_d": "Cohen's d", "p_value": "p", "n_analysed": "n analysed"}
_CSV_COLUMNS = ("trial", "cell_product", "route", "donor", "arm", "arm_role", "n", "instrument",
               "instrument_as_stated", "timepoint_months", "quantity", "statistic", "value",
               "value_as_stated", "provenance", "source_url", "where", "reported_in", "note",
               "report_doi", "via")


def _cell(stats: dict[str, Any]) -> str:
    """One cell of the extraction form: "10.65 (95% CI 5.39, 15.91)", "7.5 ± 6.8 SD", ..."""
    centre = stats.get("mean", stats.get("value", stats.get("median")))
    text = f"{centre:g}" if centre is not None else "?"
    if "median" in stats and "mean" not in stats:
        text += " (median)"
    if "sd" in stats:
        text += f" ± {stats['sd']:g} SD"
    if "se" in stats:
        text += f" ± {stats['se']:g} SE"
    if "ci_low" in stats and "ci_high" in stats:
        text += f" (95% CI {stats['ci_low']:g}, {stats['ci_high']:g})"
    return text


def _month(value: float | None) -> str:
    return "time ?" if value is None else f"{value:g} mo"


def _side_by_side(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Trials as columns (a pooled study's source trials): per instrument and timepoint, the
    cell arm's and the control arm's numbers and the between-arm effects."""
    trials = list(dict.fromkeys(r["label"] for r in rows))
    grid: dict[tuple[str, float, int, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r["instrument"] is None or r["timepoint_months"] is None:
            continue
        side = 1 if " vs " in r["arm"] else (2 if r["arm_role"] == "control" else 0)
        key = (r["instrument"], r["timepoint_months"], side, _QUANTITY[r["quantity"]])
        grid.setdefault(key, {}).setdefault(r["label"], {})[r["statistic"]] = r["value"]
    captions = {r["label"]: r["caption"] for r in rows}
    names = {key: f"{key[0]} {key[1]:g} mo · {('cell arm', 'vs control', 'control arm')[key[2]]}"
                  f" · {key[3]}" for key in grid}
    first, width = max(map(len, names.values()), default=0) + 2, 34
    lines = ["Side by side: " + " | ".join(captions[t] for t in trials),
             (f"  {'':<{first}}" + "".join(f"{t:<{width}}" for t in trials)).rstrip()]
    for key, cells in sorted(grid.items()):
        lines.append(f"  {names[key]:<{first}}" + "".join(
            f"{_cell(cells[t]) if t in cells else '—':<{width}}" for t in trials).rstrip())
    return lines + [""]


def _table(rows: Sequence[dict[str, Any]]) -> str:
    """A data-extraction form: per trial and instrument, arms (and comparisons) × timepoints;
    a pooled study's source trials first side by side."""
    lines: list[str] = []
    if len({r["label"] for r in rows if r["via"]}) > 1:
        lines += _side_by_side([r for r in rows if r["via"]])
    sources: dict[str, int] = {}
    trials = list(dict.fromkeys(r["label"] for r in rows))
    for trial in trials:
        mine = [r for r in rows if r["label"] == trial]
        first = mine[0]
        doi = f" — {first['report_doi']}" if first["report_doi"] else ""
        lines.append(first["caption"] + doi)
        if first["via"]:
            lines.append(f"  ({first['via']})")
        for instrument in dict.fromkeys(r["instrument"] for r in mine):
            cells = [r for r in mine if r["instrument"] == instrument]
            stated = cells[0]["instrument_as_stated"]
            lines.append(f"  {instrument or 'participants'}"
                         + (f" (as stated: {stated})" if stated and stated != instrument else ""))
            times = sorted({r["timepoint_months"] for r in cells},
                           key=lambda t: (t is None, t or 0))
            grid: dict[tuple[str, str], dict[Any, dict[str, Any]]] = {}
            for r in cells:
                key = (r["arm"] + (" [control]" if r["arm_role"] == "control" else ""),
                       _QUANTITY[r["quantity"]])
                cell = grid.setdefault(key, {}).setdefault(r["timepoint_months"], {})
                cell[r["statistic"]] = r["value"]
                ref = sources.setdefault(r["source_url"] or "(no page)", len(sources) + 1)
                cell.setdefault("refs", set()).add(ref)
            width = max(len(a) + len(q) + 5 for a, q in grid)
            lines.append("    " + " " * width + "".join(f"{_month(t):<34}" for t in times))
            for (arm, quantity), by_time in grid.items():
                texts = []
                for t in times:
                    found = by_time.get(t)
                    texts.append("" if found is None else _cell(found) + " [" + ",".join(
                        str(x) for x in sorted(found["refs"])) + "]")
                lines.append(f"    {arm + ' · ' + quantity:<{width}}"
                             + "".join(f"{t:<34}" for t in texts).rstrip())
        lines.append("")
    lines.append("Sources:")
    lines += [f"  [{i}] {url}" for url, i in sources.items()]
    return "\n".join(lines) + "\n"


def _json(rows: Sequence[dict[str, Any]], query: dict[str, Any]) -> str:
    trials: dict[str, dict[str, Any]] = {}
    for r in rows:
        trial = trials.setdefault(r["label"], {
            "trial": r["label"], "caption": r["caption"], "trial_id": r["trial_id"],
            "cell_product": r["cell_product"],
            "route": r["route"], "donor": r["donor"], "n": r["trial_n"], "via": r["via"],
            "outcomes": []})
        trial["outcomes"].append({k: r[k] for k in (
            "arm", "arm_role", "n", "instrument", "instrument_as_stated", "timepoint_months",
            "quantity", "statistic", "value", "value_as_stated", "provenance", "source_url",
            "location", "reported_in", "note", "report_doi")})
    for trial in trials.values():
        for outcome in trial["outcomes"]:
            outcome["where"] = outcome.pop("location")
    return json_text({"query": query, "trials": list(trials.values())})


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    return csv_text(_CSV_COLUMNS, (dict(r, trial=r["label"], where=r["location"]) for r in rows),
                    neutralise=False)


def _picture(rows: Sequence[dict[str, Any]], fmt: str) -> bytes | str:
    """The time course of the instrument with the most per-arm numbers among ``rows`` (already
    narrowed to an instrument or family by --instrument)."""
    from ..render import plots

    drawable = [r for r in rows if r["instrument"] and r["quantity"] in
                ("final", "change_from_baseline") and r["timepoint_months"] is not None]
    if not drawable:
        raise InputError("nothing to draw: these outcomes have no per-arm values over time "
                         "(try --format table)")
    counts: dict[str, int] = {}
    for r in drawable:
        counts[r["instrument"]] = counts.get(r["instrument"], 0) + 1
    name = max(counts, key=lambda k: (counts[k], k))
    shown = [r for r in rows if r["instrument"] == name]
    if fmt != "html":
        return plots.time_course(shown, name, fmt)
    svg = plots.time_course(shown, name, "svg")
    table = [(r["label"], r["arm"], r["arm_role"], r["timepoint_months"],
              _QUANTITY[r["quantity"]], r["statistic"], r["value"], r["n"], r["source_url"])
             for r in rows if r["instrument"] == name]
    return plots.html_page(f"{name}: outcomes per arm over time", svg, table,
                           ("trial", "arm", "role", "months", "quantity", "statistic", "value",
                            "n", "source"))


Rows = Sequence[dict[str, Any]]
_WRITERS: dict[str, Callable[[Rows, dict[str, Any]], str | bytes]] = {
    "table": lambda rows, query: _table(rows) if rows else "", "json": _json,
    "csv": lambda rows, query: _csv(rows), "png": lambda rows, query: _picture(rows, "png"),
    "svg": lambda rows, query: _picture(rows, "svg"),
    "html": lambda rows, query: _picture(rows, "html"),
}
#: The formats of ``kb outcomes``, the default first.
FORMATS = tuple(_WRITERS)


def render(rows: Rows, fmt: str, *, query: dict[str, Any]) -> str | bytes:
    """The outcome rows as a document in ``fmt`` (one of :data:`FORMATS`); ``query`` (the
    options that selected them) heads the JSON.

    :raises InputError: a picture was asked for rows with nothing to draw.
    """
    return _WRITERS[fmt](rows, query)
