"""kb conflicts, kb merge, kb merges, kb unmerge: identity conflicts and the merge log."""
from __future__ import annotations

import json
import sqlite3

import click

from ..cli import Settings, format_option, kb_errors, pass_settings
from ..errors import InputError

_WORK = "coalesce('pmid:' || {0}.pmid, 'doi:' || {0}.doi, 'work:' || {0}.id)"


def _work_id(conn: sqlite3.Connection, text: str) -> int:
    """A work named by ``work:N`` (its row id) or by a DOI, PMID, PMCID, OpenAlex id or URL."""
    from ..query.graph import find_work
    if text.lower().startswith("work:"):
        row = conn.execute("SELECT id FROM works WHERE id = ?", (text[5:].strip(),)).fetchone()
        if row is None:
            raise InputError(f"no work {text} in the knowledge base")
        return int(row[0])
    return find_work(conn, text)


def _rows(settings: Settings, sql: str) -> list[dict]:
    """The rows of a read-only query, as dicts."""
    with kb_errors(settings):
        conn = settings.open()
        try:
            return [dict(r) for r in conn.execute(sql)]
        finally:
            conn.close()


def _resolve_distinct(settings: Settings, conflict_id: int) -> None:
    """Mark an open conflict resolved: the two works are distinct."""
    from ..clock import now
    from ..store import transaction
    with kb_errors(settings):
        conn = settings.open()
        try:
            with transaction(conn):
                changed = conn.execute(
                    "UPDATE identity_conflicts SET resolved_at = ?, resolution = 'distinct' "
                    "WHERE id = ? AND resolved_at IS NULL", (now(), conflict_id)).rowcount
        finally:
            conn.close()
        if not changed:
            raise InputError(f"no open conflict {conflict_id}",
                             hint="`kb conflicts` lists the open ones")
    settings.say(f"conflict {conflict_id} resolved: distinct works")


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include resolved conflicts.")
@click.option("--distinct", "distinct", type=int, metavar="ID",
              help="Resolve conflict ID as two distinct works (nothing is merged).")
@format_option("table", "json")
@pass_settings
def conflicts(settings: Settings, show_all: bool, distinct: int | None, fmt: str) -> None:
    """List identifier conflicts: a record or reference that claimed an identifier another,
    different work carries (one DOI on two PMIDs, a reference pairing one paper's DOI with
    another's PMID). Both works are kept. Resolve one with `kb merge A B` (they are the same
    work) or `kb conflicts --distinct ID` (they are not)."""
    if distinct is not None:
        _resolve_distinct(settings, distinct)
        return
    rows = _rows(settings,
                 f"SELECT c.id, c.kind, c.value, c.work_id, {_WORK.format('w')} AS work, "
                 f"c.other_id, CASE WHEN o.id IS NULL THEN NULL ELSE {_WORK.format('o')} END "
                 "AS other, c.claimed_by, c.source, c.resolution FROM identity_conflicts c "
                 "JOIN works w ON w.id = c.work_id LEFT JOIN works o ON o.id = c.other_id "
                 + ("" if show_all else "WHERE c.resolved_at IS NULL ") + "ORDER BY c.id")
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        other = f"work:{row['other_id']} ({row['other']})" if row["other_id"] else "no work"
        state = f"  [{row['resolution']}]" if row["resolution"] else ""
        click.echo(f"{row['id']:>5}  {row['kind']} {row['value']}: carried by "
                   f"work:{row['work_id']} ({row['work']}), claimed by {row['claimed_by']} "
                   f"({row['source']}) -> {other}{state}")
    settings.say(f"{len(rows)} {'conflicts' if show_all else 'open conflicts'}")


@click.command()
@click.argument("keep")
@click.argument("absorb")
@pass_settings
def merge(settings: Settings, keep: str, absorb: str) -> None:
    """Merge work ABSORB into work KEEP (each a DOI, PMID, PMCID, OpenAlex id, URL or
    work:N). KEEP keeps its identifiers; everything else follows the merge rule. The merge
    is logged; `kb unmerge MERGE_ID` undoes it."""
    from ..store import merge_works
    with kb_errors(settings):
        conn = settings.open()
        try:
            keep_id, absorb_id = _work_id(conn, keep), _work_id(conn, absorb)
            if keep_id == absorb_id:
                raise InputError(f"{keep} and {absorb} are the same work (work:{keep_id})")
            merge_id = merge_works(conn, keep_id, absorb_id, reason="by hand", source="user")
        finally:
            conn.close()
    click.echo(f"merged work:{absorb_id} into work:{keep_id} (merge {merge_id}; "
               f"undo with `kb unmerge {merge_id}`)")


@click.command()
@format_option("table", "json")
@pass_settings
def merges(settings: Settings, fmt: str) -> None:
    """List the merge log: every merge of two works (import, `kb resolve`, `kb merge`), the
    reason and who merged; undone merges are marked."""
    rows = _rows(settings,
                 "SELECT id, kept_id, absorbed_id, json_extract(absorbed, '$.work.doi') AS doi, "
                 "json_extract(absorbed, '$.work.pmid') AS pmid, reason, source, merged_at, "
                 "undone_at FROM merges ORDER BY id")
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        ids = " ".join(f"{k}:{row[k]}" for k in ("pmid", "doi") if row[k]) or "no id"
        undone = f"  [undone {row['undone_at']}]" if row["undone_at"] else ""
        click.echo(f"{row['id']:>5}  work:{row['absorbed_id']} ({ids}) -> work:{row['kept_id']}"
                   f"  {row['reason']} ({row['source']}, {row['merged_at']}){undone}")
    settings.say(f"{len(rows)} merges")


@click.command()
@click.argument("merge_id", type=int)
@pass_settings
def unmerge(settings: Settings, merge_id: int) -> None:
    """Undo merge MERGE_ID (see `kb merges`): the absorbed work comes back with its own id,
    identifiers, lists, raw records and citations; on the kept work, what the merge changed
    (and nothing changed since) goes back."""
    from ..store import unmerge as run
    with kb_errors(settings):
        conn = settings.open()
        try:
            keep_id, absorbed_id = run(conn, merge_id)
        finally:
            conn.close()
    click.echo(f"undid merge {merge_id}: work:{absorbed_id} is apart from work:{keep_id} again")
