"""kb resolve: link unresolved references to works, merge duplicate works."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict

import click

from ..cli import Settings, format_option, kb_errors, pass_settings


@click.command()
@click.option("--dry-run", is_flag=True,
              help="Show what would be linked and merged, with scores; change nothing.")
@format_option("table", "json")
@pass_settings
def resolve(settings: Settings, dry_run: bool, fmt: str) -> None:
    """Link references that name no known work, and merge duplicate works.

    References are matched by DOI, PMID, PMCID or OpenAlex id (also when printed inside the
    reference text), then by a fuzzy match of title, year and first author (or journal, volume
    and first page, for citations printed without a title) against the works in the knowledge
    base. Every fuzzy link keeps its score (0-100; links need 88, or a unique
    first author and year for "Min et al, 2013"-style references). Works with the same title,
    year and first author and no conflicting identifier are merged.
    """
    from ..ingest.resolve import resolve as run
    with kb_errors(settings):
        conn = settings.open()
        try:
            report = run(conn, dry_run=dry_run, progress=_progress(settings))
        finally:
            conn.close()
    if fmt == "json":
        click.echo(json.dumps({
            "dry_run": report.dry_run, "examined": report.examined,
            "linked_by_id": dict(report.by_id), "stubs_created": report.stubs_created,
            "fuzzy": [asdict(f) for f in report.fuzzy],
            "ambiguous": [{"citation_id": c, "reference": r,
                           "candidates": [{"work_id": w, "score": s} for w, s in cands]}
                          for c, r, cands in report.ambiguous],
            "merges": [asdict(m) for m in report.merges],
            "unresolved": report.unresolved,
            "left_unresolved": [{"citation_id": c, "reference": r, "best_work_id": w,
                                 "best_score": s} for c, r, w, s in report.left]}, indent=2))
    else:
        for merge in report.merges:
            click.echo(f"merge  {merge.drop_id} -> {merge.keep_id}  {merge.year}  "
                       f"{merge.first_author or '?'}  {_short(merge.title)}")
        for link in report.fuzzy:
            click.echo(f"{link.score:5.1f}  {_short(link.reference, 70)}\n"
                       f"       -> {link.work_id} {link.work_doi or ''} {_short(link.work_title)}")
        for citation_id, reference, candidates in report.ambiguous:
            shown = ", ".join(f"{w} ({s:.1f})" for w, s in candidates)
            click.echo(f"  ?    {_short(reference, 70)}\n       -> one of {shown}")
        if dry_run:
            for citation_id, reference, work_id, score in report.left[:_LISTED]:
                best = f"best {work_id} ({score:.1f}), below the threshold" if work_id else \
                    "no candidate"
                click.echo(f"  -    {_short(reference, 70)}\n       -> {best}")
            if len(report.left) > _LISTED:
                click.echo(f"  … and {len(report.left) - _LISTED} more unresolved "
                           "(--format json lists them all)")
    settings.say(report.summary())


#: How many unresolved references --dry-run lists in the table.
_LISTED = 50


def _short(text: str | None, width: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _progress(settings: Settings) -> Callable[[int, int], None] | None:
    """A tqdm callback on a terminal (not with --quiet), else None."""
    import sys
    if settings.verbosity < 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    bar = tqdm(desc="references", unit="ref", leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()
    return update
