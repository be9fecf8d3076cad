"""The evidence table (:func:`kb.evidence.table.evidence_rows`) as a text table, CSV or JSON."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..vocabulary import NOT_REPORTED
from .emit import csv_text, json_text

__all__ = ["FORMATS", "render"]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value)
    return str(value)


def _arms(arms: list[dict[str, Any]]) -> str:
    return "; ".join(f"{a['name']}" + (f" ({a['n']})" if a.get("n") else "") for a in arms)


def _report(report: dict[str, Any]) -> str:
    ident = report.get("doi") or (f"PMID {report['pmid']}" if report.get("pmid") else None) \
        or report.get("url") or ""
    mark = f" [{report['mark']}]" if report.get("mark") else ""
    if report.get("unverified"):
        mark += " [unverified]"
    return f"{report['label']} ({report['role']}){mark} {ident}".strip()


def _flat(row: dict[str, Any]) -> dict[str, str]:
    """A row as the strings the table and CSV print."""
    from ..evidence.table import COLUMNS
    flat = {key: _text(row.get(key)) for key in COLUMNS if key not in ("arms", "pools", "reports")}
    flat["arms"] = _arms(row["arms"])
    flat["pools"] = "; ".join(p["label"] + (f" [{p['mark']}]" if p.get("mark") else "")
                              for p in row["pools"])
    flat["reports"] = " | ".join(_report(r) for r in row["reports"])
    if row["marks"]:
        flat["label"] = f"{flat['label']} [{', '.join(row['marks'])}]"
    return flat


def _stated(flat: dict[str, str], name: str) -> str:
    """A normalised fact with its text as stated when that differs: "UC-MSC (as stated: UCT-MSC)"."""
    value, stated = flat[name], flat[f"{name}_as_stated"]
    return f"{value} (as stated: {stated})" if stated and stated != value else value


def _table(rows: list[dict[str, Any]], width: int | None) -> str:
    """One block per trial; lines are cut at ``width`` (a terminal) or kept whole (a pipe)."""
    lines = []
    for row in rows:
        flat = _flat(row)
        head = f"{flat['label']} — {flat['design'] or 'design ?'}"
        if flat["registry_ids"]:
            head += f" — {flat['registry_ids']}"
        lines.append(head)
        cells = [("cells", _stated(flat, "cell_product") + (
                     f"; donor {_stated(flat, 'donor')}" if row["donor"] != [NOT_REPORTED]
                     else "")),
                 ("route", _stated(flat, "route")), ("dose", flat["dose"]),
                 ("N", flat["n"] + (f" ({flat['arms']})" if flat["arms"] else "")),
                 ("ages", flat["age_range"]), ("blinding", _stated(flat, "blinding")),
                 ("control", _stated(flat, "control")), ("outcomes", flat["outcomes"]),
                 ("follow-up", flat["follow_up_months"] and flat["follow_up_months"] + " months"),
                 ("registry", " ".join(v for v in (flat["phase"] and f"phase {flat['phase']}",
                                                   flat["status"]) if v)),
                 ("pools", flat["pools"]), ("same as", row.get("same_as") or "")]
        for name, value in cells:
            if value:
                lines.append(f"  {name:<10}{value}"[:width])
        for report in row["reports"]:
            lines.append(f"  {'report':<10}{_report(report)}"[:width])
        lines.append("")
    lines.append(f"{len(rows)} trial{'s' if len(rows) != 1 else ''}")
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict[str, Any]]) -> str:
    from ..evidence.table import COLUMNS
    return csv_text(COLUMNS, (_flat(row) for row in rows))


def _json(rows: list[dict[str, Any]]) -> str:
    keep = ("id", "key", "label", "title", "design", "cell_product", "cell_product_as_stated",
            "donor", "donor_as_stated", "route", "route_as_stated", "dose", "n", "enrollment",
            "age_range", "blinding", "blinding_as_stated", "control", "control_as_stated",
            "outcomes", "follow_up_months", "registry_ids", "phase", "status", "country", "arms",
            "reports", "pools", "marks", "note", "same_as", "provenance")
    return json_text([{k: row.get(k) for k in keep} for row in rows])


_WRITERS: dict[str, Callable[[list[dict[str, Any]], int | None], str]] = {
    "table": _table, "csv": lambda rows, width: _csv(rows), "json": lambda rows, width: _json(rows),
}
#: The formats of ``kb evidence``, the default first.
FORMATS = tuple(_WRITERS)


def render(rows: list[dict[str, Any]], fmt: str, *, width: int | None = None) -> str:
    """The trials as a document in ``fmt`` (one of :data:`FORMATS`); the table's lines are
    cut at ``width`` (a terminal) or kept whole (``None``: a pipe or a file)."""
    return _WRITERS[fmt](rows, width)
