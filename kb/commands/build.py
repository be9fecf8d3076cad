"""kb build."""
from __future__ import annotations

from pathlib import Path

import click

from ..cli import Settings, kb_errors, pass_settings


@click.command()
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the knowledge base here (default: --db, i.e. kb.db).")
@click.option("--offline", is_flag=True, envvar="KB_OFFLINE",
              help="The seed only, no network: the same KB every time (KB_OFFLINE=1).")
@click.option("--refresh", is_flag=True, help="Fetch again even when the HTTP cache has an answer.")
@click.option("--no-cache", "no_cache", is_flag=True, help="Neither read nor write the HTTP cache.")
@click.option("--force", is_flag=True,
              help="Replace the target even if it is a knowledge base kb build did not make.")
@pass_settings
def build(settings: Settings, out: Path | None, offline: bool, refresh: bool,
          no_cache: bool, force: bool) -> None:
    """Build the curated knowledge base from the seed in kb/seed/.

    Imports the seed's works, citation links, news article and trial facts through the normal
    importers, then annotates evidence and resolves references. With --offline that is all,
    and the result is the same every time (it is how the bundled kb.db is made). Without
    --offline it also refreshes the seed works from Crossref, PubMed and OpenAlex and crawls
    one level of references and citing works.

    The new file replaces the old one only when the build has finished, and a knowledge base
    that a build did not make (your own imports) only with --force.
    """
    from contextlib import nullcontext

    from ..ingest.build import build_kb
    from ..config import load_config
    from ..http import Client

    target = out or settings.db_path
    with kb_errors(settings):
        online = None if offline else Client(
            load_config().with_options(use_cache=not no_cache, refresh=refresh))
        with online or nullcontext():
            report = build_kb(target, client=online, say=lambda m: settings.say(m, level=1),
                              force=force)
    summary = ", ".join(f"{k} {v}" for k, v in report.steps.items() if isinstance(v, int))
    settings.say(f"Built {target}: {summary}")
    if report.failures:
        for failure in report.failures:
            settings.say(f"failed: {failure}")
        settings.say(f"{len(report.failures)} online steps failed; the KB holds the seed and "
                     "whatever was fetched")
        raise click.exceptions.Exit(1)
