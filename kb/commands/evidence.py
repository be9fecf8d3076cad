"""kb evidence."""
from __future__ import annotations

import sys
from typing import Any

import click

from ..cli import Settings, format_option, kb_errors, network_options, out_option, pass_settings
from ..config import Config
from ..errors import KBError
from ..render import evidence as evidence_render
from ..render.emit import emit, terminal_width


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
@format_option(*evidence_render.FORMATS)
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
        tty = out is None and sys.stdout.isatty()
        emit(evidence_render.render(rows, fmt, width=terminal_width(80) if tty else None),
             out, settings)
        if failures:
            raise KBError("; ".join(failures))
