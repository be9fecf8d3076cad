"""kb add."""
from __future__ import annotations

import sys
import click

from ..cli import Settings, annotate_stored, kb_errors, network_options, pass_settings
from ..config import Config


@click.command()
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--from-file", "from_file", type=click.Path(dir_okay=False, allow_dash=True),
              help="Read identifiers from FILE, one per line ('#' starts a comment; - for "
                   "stdin; at most 16 MB).")
@click.option("--refs", is_flag=True,
              help="Also fetch full metadata of every DOI the added works cite (batched).")
@network_options
@pass_settings
def add(settings: Settings, ids: tuple[str, ...], from_file: str | None, refs: bool,
        config: Config) -> None:
    """Fetch works and store them in the knowledge base.

    ID is a DOI in any pasted form (10.1186/…, doi:…, https://doi.org/…), a PMID, a PMCID, an
    OpenAlex id (W…), a web page URL, or a saved .html page. DOIs come from Crossref (many per
    request), then DataCite, and are matched with PubMed; PMIDs and PMCIDs from PubMed. Each work's
    references become citations, and cited works not yet in the knowledge base become stubs.

    Prints one line per input (added / updated / unchanged) and exits with status 1, listing
    the failures, if any input could not be fetched.

    Example: kb add 10.1186/s13287-021-02513-4 PMID:34085782 --refs
    """
    from ..ingest import add as ingest
    from ..http import Client

    with kb_errors(settings):
        values = list(ids) + (ingest.read_id_path(from_file) if from_file else [])
        if not values:
            raise click.UsageError("give at least one DOI, PMID, PMCID or URL, or --from-file")
        idents = ingest.parse_inputs(values)
        conn = settings.open(create=True)
        bar = None
        if settings.verbosity >= 0 and sys.stderr.isatty() and len(idents) > 1:
            from tqdm import tqdm
            bar = tqdm(total=len(idents), unit="id", desc="kb add", leave=False, file=sys.stderr)
        try:
            with Client(config) as client:
                report = ingest.add(conn, client, idents, fetch_refs=refs,
                                    progress=bar.update if bar else None)
            annotate_stored(settings, conn, bool(report.added or report.updated or report.refs["added"]
                                                or report.refs["updated"]))
        finally:
            if bar is not None:
                bar.close()
            conn.close()
        for action in ("added", "updated", "unchanged"):
            for label in getattr(report, action):
                click.echo(f"{action}\t{label}")
        for note in report.notes:
            settings.say(f"warning: {note}")
        for doi, reason in report.ref_failures.items():
            settings.say(f"reference not fetched: {doi}: {reason}", level=1)
        if report.failed:
            from ..errors import KBError
            raise KBError(report.summary())
        settings.say(report.summary())
