"""kb crawl: snowball the citation neighbourhood of a DOI into the knowledge base."""
from __future__ import annotations

import sys
from collections.abc import Callable

import click

from ..cli import Settings, annotate_stored, kb_errors, network_options, pass_settings
from ..config import Config
from ..records import DIRECTIONS


@click.command()
@click.option("--doi", "seed", required=True, help="The DOI to start from.")
@click.option("--depth", type=click.IntRange(0, 5), default=1, show_default=True,
              help="Citation steps from the seed to store.")
@click.option("--direction", type=click.Choice(DIRECTIONS), default="both",
              show_default=True, help="Follow references, citing works, or both.")
@click.option("--max-works", type=click.IntRange(1), default=None,
              help="Stop after storing this many works (the seed included).")
@click.option("--topic", default=None, metavar="TEXT",
              help='Keep only works whose title, abstract, keywords or MeSH mention it, e.g. '
                   '"cerebral palsy" ("A|B" for either); the seed is always kept.')
@click.option("--source", "sources", multiple=True,
              type=click.Choice(["openalex", "crossref", "opencitations", "pubmed"]),
              help="Sources to ask (repeatable; default: all four): openalex (works, "
                   "references, citing works), crossref (works and their printed reference "
                   "lists), opencitations and pubmed (references and citing works).")
@click.option("--fresh", is_flag=True,
              help="Start over even if this crawl finished or was interrupted.")
@network_options
@pass_settings
def crawl(settings: Settings, seed: str, depth: int, direction: str, max_works: int | None,
          topic: str | None, sources: tuple[str, ...], fresh: bool,
          config: Config) -> None:
    """Snowball from a DOI: store the works it cites and/or that cite it, then theirs.

    Works come from OpenAlex (100 to a request) and Crossref; edges from OpenAlex,
    OpenCitations and PubMed, each edge once with all its sources. The frontier is kept in the knowledge base:
    an interrupted crawl picks up where it stopped when run again with the same options, and
    a finished one is not repeated.

    Example: kb crawl --doi 10.22074/cellj.2024.2032098.1600 --depth 2 --topic "cerebral palsy"
    """
    from ..ingest.crawl import SOURCES, crawl as run
    from ..http import Client
    with kb_errors(settings):
        conn = settings.open(create=True)
        try:
            with Client(config) as client:
                report = run(conn, client, seed, depth=depth, direction=direction,
                             max_works=max_works, topic=topic, sources=sources or SOURCES,
                             fresh=fresh, progress=_progress(settings))
                annotate_stored(settings, conn, bool(report.stored or report.edges))
                stats = client.stats
                settings.say(f"{stats['requests']} requests, {stats['cache_hits']} from the cache"
                             + (f", {stats['retries']} retried" if stats["retries"] else ""),
                             level=0 if stats["retries"] else 1)
        finally:
            conn.close()
    settings.say(report.summary())
    for failure in report.failures:
        settings.say(f"  failed: {failure}")
    if report.failures:
        raise click.exceptions.Exit(1)


def _progress(settings: Settings) -> Callable[[int, int], None] | None:
    """A tqdm bar on a terminal (not with --quiet)."""
    if settings.verbosity < 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    bar = tqdm(desc="crawl", unit="work")

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
    return update
