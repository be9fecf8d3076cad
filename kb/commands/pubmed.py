"""kb pubmed."""
from __future__ import annotations

import sys

import click

from ..cli import Settings, annotate_stored, kb_errors, network_options, pass_settings
from ..config import Config


@click.command()
@click.argument("query")
@click.option("--max", "max_results", type=click.IntRange(1, 10_000), default=100,
              show_default=True, help="Fetch at most N records (E-utilities stops at 10,000).")
@network_options
@pass_settings
def pubmed(settings: Settings, query: str, max_results: int, config: Config) -> None:
    """Search PubMed and store the records found.

    QUERY is PubMed search syntax, as on pubmed.ncbi.nlm.nih.gov. Each record brings its
    abstract, authors, MeSH terms, publication types, trial registry numbers, corrections and
    retractions, and its reference list (as citations). Prints the PMIDs stored.

    Example: kb pubmed '"cerebral palsy"[mh] AND (stem cell* OR cord blood)' --max 500
    """
    from ..errors import KBError
    from ..http import Client
    from ..ingest.files import import_pubmed_query

    with kb_errors(settings):
        conn = settings.open(create=True)
        bar = None
        if settings.verbosity >= 0 and sys.stderr.isatty():
            from tqdm import tqdm
            bar = tqdm(unit="rec", desc="kb pubmed", leave=False, file=sys.stderr)
        try:
            with Client(config) as client:
                report = import_pubmed_query(conn, client, query, max_results=max_results,
                                             progress=bar.update if bar else None)
            annotate_stored(settings, conn, bool(report.added or report.updated))
        finally:
            if bar is not None:
                bar.close()
            conn.close()
        for warning in report.warnings:
            settings.say(f"warning: {warning}")
        missing = set(report.missing)
        for pmid in report.pmids:
            if pmid not in missing:
                click.echo(pmid)
        if report.missing:
            raise KBError(report.summary() + "\n  not returned: " + ", ".join(report.missing))
        settings.say(report.summary())
