"""Writes for the outcomes table (schema 0008): reported numbers per trial, arm, instrument,
timepoint and statistic, each with its provenance (``curated`` / ``registry`` / ``rule``) and page.

Each source replaces only its own rows: the curated seed all curated rows, a registry record its
trial's registry rows, the abstract rules one work's rule rows. A replacement that changes
nothing writes nothing. Rows come from :mod:`kb.evidence.outcomes`.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ..errors import InputError
from .connection import chunked, sync_fts_of_trials, transaction
from .evidence import find_trials, work_id_for

__all__ = ["COLUMNS", "OutcomeLoad", "load_curated_outcomes", "store_registry_outcomes",
           "store_rule_outcomes", "delete_rule_outcomes", "trial_for_ref"]

COLUMNS = ("trial_id", "trial_ref", "work_id", "arm", "arm_role", "n", "instrument",
           "instrument_as_stated", "timepoint_months", "timepoint_as_stated", "quantity",
           "statistic", "value", "value_as_stated", "provenance", "source_url", "location",
           "note", "reported_in_work_id", "reported_in")


class OutcomeLoad(NamedTuple):
    """What a load stored: rows, and the trial references no trial in the KB answers (their
    rows are kept with an empty ``trial_id``, e.g. a meta-analysis's pooled result)."""

    rows: int
    without_trial: tuple[str, ...]


def trial_for_ref(conn: sqlite3.Connection, ref: str) -> int | None:
    """The trial a source's reference names: a registry id, or a work (DOI / ``url:``) that
    reports it (a pooled analysis's own work names no trial)."""
    found = find_trials(conn, registry_ids=[ref])
    if not found:
        work_id = work_id_for(conn, ref)
        found = find_trials(conn, work_ids=[work_id]) if work_id is not None else []
    return found[0] if found else None


def _resolved(conn: sqlite3.Connection, rows: Iterable[Mapping[str, Any]],
              trial_id: int | None = None, work_id: int | None = None) -> list[tuple[Any, ...]]:
    out = []
    for row in rows:
        if row.get("arm_role") not in ("intervention", "control"):
            raise InputError(f"outcome of {row.get('trial_ref')!r} arm {row.get('arm')!r}: "
                             f"arm_role must be intervention or control")
        values = dict(row)
        values["trial_id"] = trial_id if trial_id is not None else trial_for_ref(
            conn, row["trial_ref"])
        values["work_id"] = work_id if work_id is not None else (
            work_id_for(conn, row["work_ref"]) if row.get("work_ref") else None)
        values["reported_in_work_id"] = (work_id_for(conn, row["reported_in"])
                                         if row.get("reported_in") else None)
        out.append(tuple(values.get(c) for c in COLUMNS))
    return out


def _replace(conn: sqlite3.Connection, where: str, params: Sequence[Any],
             rows: list[tuple[Any, ...]]) -> int:
    """Make the rows matching ``where`` exactly ``rows``; returns how many there are."""
    columns = ", ".join(COLUMNS)
    with transaction(conn):
        old = [tuple(r) for r in conn.execute(
            f"SELECT {columns} FROM outcomes WHERE {where} ORDER BY id", params)]
        if old != rows:
            conn.execute(f"DELETE FROM outcomes WHERE {where}", params)
            conn.executemany(f"INSERT INTO outcomes({columns}) VALUES "
                             f"({','.join('?' * len(COLUMNS))})", rows)
            at = COLUMNS.index("trial_id")  # their instruments are in the reports' index rows
            sync_fts_of_trials(conn, {r[at] for r in old + rows if r[at] is not None})
    return len(rows)


def load_curated_outcomes(conn: sqlite3.Connection,
                          rows: Sequence[Mapping[str, Any]]) -> OutcomeLoad:
    """Replace every curated outcome row with ``rows`` (:func:`kb.evidence.outcomes.curated_rows`
    output), each linked to its trial and report. Loading the same rows twice changes nothing."""
    resolved = _resolved(conn, rows)
    stored = _replace(conn, "provenance = 'curated'", (), resolved)
    refs = dict.fromkeys(r[1] for r in resolved if r[0] is None)
    return OutcomeLoad(stored, tuple(refs))


def store_registry_outcomes(conn: sqlite3.Connection, trial_id: int,
                            rows: Sequence[Mapping[str, Any]]) -> int:
    """Replace a trial's registry outcome rows (:func:`kb.evidence.outcomes.registry_rows`)."""
    return _replace(conn, "provenance = 'registry' AND trial_id = ?", (trial_id,),
                    _resolved(conn, rows, trial_id=trial_id))


def store_rule_outcomes(conn: sqlite3.Connection, work_id: int, trial_id: int | None,
                        rows: Sequence[Mapping[str, Any]]) -> int:
    """Replace the rule outcome rows read from one work's abstract."""
    return _replace(conn, "provenance = 'rule' AND work_id = ?", (work_id,),
                    _resolved(conn, rows, trial_id=trial_id, work_id=work_id))


def delete_rule_outcomes(conn: sqlite3.Connection, work_ids: Iterable[int]) -> int:
    """Delete the rule outcome rows these works gave (works the rules no longer read)."""
    deleted = 0
    with transaction(conn):
        for chunk in chunked(sorted(work_ids)):
            deleted += conn.execute(
                f"DELETE FROM outcomes WHERE provenance = 'rule' AND work_id IN "
                f"({','.join('?' * len(chunk))})", chunk).rowcount
    return deleted
