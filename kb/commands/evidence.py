"""kb evidence."""
from __future__ import annotations

import sys
from typing import Any

import click

from ..cli import Settings, format_option, kb_errors, network_options, out_option, pass_settings
from ..config import Config
from ..errors import KBError
from ..render.emit import csv_text, emit, json_text, terminal_width
from ..vocabulary import NOT_REPORTED


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


def _refresh_registry(settings: Settings, conn: Any, rows: list[dict[str, Any]],
                      config: Config) -> list[str]:
    """Fetch the NCT records of these trials from ClinicalTrials.gov; returns failures."""
    from ..evidence.registry import refresh_registry
    from ..http import Client

    ncts = sorted({i for r in rows for i in (r["registry_ids"] or "").split("; ")
                   if i.startswith("NCT")})
    if not ncts:
        settings.say("no ClinicalTrials.gov ids among these trials")
        return []
    from ..errors import FetchError
    with Client(config) as client:
        try:
            result = refresh_registry(conn, client, ncts)
        except FetchError as exc:  # offline, or the registry is down: the table still prints
            return [f"ClinicalTrials.gov: {exc.args[0]}"]
    settings.say(f"ClinicalTrials.gov: {len(result.stored)} of {len(ncts)} records stored")
    return [f"{nct}: not found on ClinicalTrials.gov" for nct in result.missing]


@click.command()
@click.argument("query", required=False)
@format_option("table", "csv", "json")
@click.option("--refresh-registry", is_flag=True,
              help="First fetch the listed trials' records from ClinicalTrials.gov "
                   "(enrolment, phase, status, masking, arms).")
@click.option("--annotate", is_flag=True,
              help="First recompute study designs, rule-read trial facts, lineage and "
                   "retraction flags for every work (after `kb import --no-annotate`), and "
                   "every trial's normalised facts (after the vocabulary changed).")
@network_options
@out_option
@pass_settings
def evidence(settings: Settings, query: str | None, fmt: str, refresh_registry: bool,
             annotate: bool, config: Config, out: str | None) -> None:
    """The evidence table: one row per trial, with its design, cell product, donor, route,
    dose, participants (and arms), ages, blinding, control, outcomes, follow-up, registry ids and
    every report (results, protocol, follow-up, pooled analyses), retracted reports marked.
    Cell product, donor, route, control and blinding are normalised to kb's vocabulary, each
    beside the text as stated (in JSON: ``route`` and ``route_as_stated``, …).

    QUERY keeps the trials whose facts or reports contain every word (a cell type such as
    UC-MSC also finds its synonyms, e.g. UCT-MSC or WJ-MSC). Curated facts override values
    read by rules or from a registry; --format json shows each value's provenance and source.

    In --format csv, a cell starting with = + - @ or a tab / carriage return gets a leading '
    so that spreadsheets do not run it as a formula (OWASP).

    Example: kb evidence intrathecal --format csv --out trials.csv
    """
    from ..evidence.table import evidence_rows

    from ..render.output import check_out

    with kb_errors(settings):
        check_out(out, settings.db_path)
        conn = settings.open()
        try:
            if annotate:
                from .. import store
                from ..evidence import annotate as annotate_all
                from ..store.evidence import refresh_trials
                with store.transaction(conn):
                    counts = annotate_all(conn)
                    refresh_trials(conn)
                settings.say(f"annotated {counts['works']} works", level=1)
            if conn.execute("SELECT count(*) FROM trials").fetchone()[0] == 0:
                settings.say("no trials yet: run `kb build`, or import works and their "
                             "evidence is annotated as they arrive")
            rows = evidence_rows(conn, query)
            failures: list[str] = []
            if refresh_registry and rows:
                failures = _refresh_registry(settings, conn, rows, config)
                rows = evidence_rows(conn, query)
        finally:
            conn.close()
        if fmt == "table":
            tty = out is None and sys.stdout.isatty()
            payload = _table(rows, terminal_width(80) if tty else None)
        else:
            payload = _csv(rows) if fmt == "csv" else _json(rows)
        emit(payload, out, settings)
        if failures:
            raise KBError("; ".join(failures))
