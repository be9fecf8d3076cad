"""kb init, kb stats."""
from __future__ import annotations

import json

import click

from ..cli import Settings, format_option, kb_errors, pass_settings


@click.command()
@pass_settings
def init(settings: Settings) -> None:
    """Create an empty knowledge base (or bring an old one up to the current schema)."""
    from .. import store
    with kb_errors(settings):
        existed = settings.db_path.exists()
        conn = settings.open(create=True)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.close()
    settings.say(f"{'Checked' if existed else 'Created'} {settings.db_path} "
                 f"(schema {version} of {store.latest_version()})")


@click.command()
@format_option("table", "json")
@pass_settings
def stats(settings: Settings, fmt: str) -> None:
    """Count works by status, type and design, citations, and sources."""
    from ..query.stats import collect_stats
    with kb_errors(settings):
        conn = settings.open()
        report = collect_stats(conn)
        conn.close()
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"works           {report['works']}")
    for title, key in (("by status", "works_by_status"), ("by type", "works_by_type"),
                       ("by design", "works_by_design")):
        click.echo(f"  {title}: " + ", ".join(f"{k} {v}" for k, v in report[key].items()))
    click.echo(f"retracted       {report['retracted']}")
    click.echo(f"authors         {report['authors']}")
    click.echo(f"citations       {report['citations']} ({report['citations_resolved']} resolved, "
               f"{report['citations_unresolved']} unresolved)")
    click.echo(f"conflicts       {report['identity_conflicts']} open (kb conflicts), "
               f"{report['merges']} merges (kb merges)")
    click.echo(f"trials          {report['trials']}")
    click.echo("lineage         " + (", ".join(f"{k} {v}" for k, v in report["lineage"].items())
                                    or "none"))
    for source, info in report["sources"].items():
        click.echo(f"source {source:<9} {info['records']} records, last fetch {info['last_fetch']}")
