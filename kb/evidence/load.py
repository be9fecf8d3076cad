"""Loading evidence into the store: the curated trial entries of the seed, a registry's record
of a trial, the facts the rules read in a work. The policy lives here — which entries are one
trial (shared registry ids or works, ``same_as`` links), which facts a source replaces, which
works become reports —; every write goes through :mod:`kb.store.evidence`.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ..errors import InputError
from ..identifiers import registry_of
from ..store import transaction
from ..store.evidence import (add_registry_id, add_report, delete_facts, ensure_corpus_work,
                              ensure_trial, find_trials, has_fact, refresh_trial, registry_sort,
                              set_arms, set_fact, work_id_for)

__all__ = ["CuratedLoad", "load_curated_trials", "store_registry_trial", "store_rule_trial",
           "store_rule_pooled"]

#: fields of a curated entry that are not trial facts.
_NOT_FACTS = {"doi", "work_id", "registry_ids", "sources", "arms", "linked_publication",
              "same_as", "note"}


class CuratedLoad(NamedTuple):
    """What :func:`load_curated_trials` stored."""

    trials: int
    facts: int
    reports: int
    stub_works: tuple[str, ...]


def _same_as(entry: Mapping[str, Any]) -> list[str]:
    """The ids an entry's ``same_as`` names (registry ids, DOIs lower-cased, ``url:`` ids)."""
    return [ref if registry_of(ref) or ref.startswith("url:") else ref.lower()
            for ref in entry.get("same_as") or []]


def _groups(entries: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Entries that share a registry id or a work, or that a ``same_as`` link joins, grouped
    (union-find), in input order."""
    parent = list(range(len(entries)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, entry in enumerate(entries):
        keys = list(entry.get("registry_ids") or []) + _same_as(entry)
        for ref in (entry.get("doi") or entry.get("work_id"), entry.get("linked_publication")):
            if ref:
                keys.append(ref.lower() if not ref.startswith("url:") else ref)
        for key in keys:
            if key in owner:
                parent[root(i)] = root(owner[key])
            else:
                owner[key] = i
    groups: dict[int, list[Mapping[str, Any]]] = {}
    for i, entry in enumerate(entries):
        groups.setdefault(root(i), []).append(entry)
    return list(groups.values())


def _ref(entry: Mapping[str, Any]) -> str:
    """What a curated entry is: its work, else its registry ids."""
    return entry.get("doi") or entry.get("work_id") or ", ".join(entry.get("registry_ids") or [])


def load_curated_trials(conn: sqlite3.Connection,
                        entries: Sequence[Mapping[str, Any]]) -> CuratedLoad:
    """Store curated trial entries shaped like the corpus ``trials.json``.

    Entries sharing a registry id or report work, or joined by a ``same_as`` link, are one
    trial: it carries the registry ids the link names, a ``same_as`` fact listing the links
    ("10.1002/stem.1304 = NCT01193660") and every entry's ``note`` (which says whether a page
    states the link or it is inferred); the works stay distinct, each a report of the trial.
    A publication's entry is read before a registry-only entry of the same trial, so per field
    its value wins; the other fills gaps. Each fact keeps the entry's ``sources``. A report work
    missing from the KB is added as a stub (listed in the result). Loading the same entries
    twice changes nothing.

    :raises InputError: an entry names neither a work nor a registry id, or a registry id is
        malformed (nothing is stored).
    """
    for entry in entries:
        if not (entry.get("doi") or entry.get("work_id") or entry.get("registry_ids")):
            raise InputError("a curated trial entry needs a doi, a work_id or registry_ids: "
                             f"{dict(entry)!r:.120}")
    trials = facts = reports = 0
    stubs: list[str] = []
    with transaction(conn):
        for group in _groups(entries):
            group = sorted(group, key=lambda e: not (e.get("doi") or e.get("work_id")))
            registry_ids = registry_sort([r for e in group for r in e.get("registry_ids") or []]
                                          + [r for e in group for r in _same_as(e)
                                             if registry_of(r)])
            refs = [r for e in group if (r := e.get("doi") or e.get("work_id"))]
            linked = [e["linked_publication"] for e in group if e.get("linked_publication")]
            same = [r for e in group for r in _same_as(e) if not registry_of(r)]
            linked += [r for r in same if r not in {x.lower() for x in refs}]
            work_ids: dict[str, int] = {}
            for ref in dict.fromkeys(refs + linked):
                if work_id_for(conn, ref) is None:
                    stubs.append(ref)
                work_ids[ref] = ensure_corpus_work(conn, ref)
            key = registry_ids[0] if registry_ids else (
                f"doi:{refs[0].lower()}" if not refs[0].startswith("url:") else refs[0])
            trial_id = ensure_trial(conn, key, registry_ids=registry_ids,
                                    work_ids=work_ids.values())
            trials += 1
            merged: dict[str, tuple[Any, list[str]]] = {}
            arms: tuple[list[Any], list[str]] | None = None
            for entry in group:
                for field, value in entry.items():
                    if field in _NOT_FACTS or field in merged or value is None:
                        continue
                    merged[field] = (value, list(entry.get("sources") or []))
                if entry.get("arms") and arms is None:
                    arms = (list(entry["arms"]), list(entry.get("sources") or []))
                for registry_id in entry.get("registry_ids") or []:
                    add_registry_id(conn, trial_id, registry_id, "curated",
                                    (entry.get("sources") or [None])[0])
            links = [" = ".join(sorted((_ref(e), target))) for e in group
                     for target in e.get("same_as") or []]
            for field, values in (("same_as", links),
                                  ("note", [e["note"] for e in group if e.get("note")])):
                values = list(dict.fromkeys(values))
                if values:
                    merged[field] = (values[0] if len(values) == 1 else values, list(
                        dict.fromkeys(u for e in group if e.get(field) for u in e.get("sources")
                                      or [])))
            delete_facts(conn, trial_id, "curated", keep=merged)
            for field, (value, sources) in merged.items():
                facts += set_fact(conn, trial_id, field, value, "curated", sources=sources)
            if arms is not None:
                set_arms(conn, trial_id, "curated", arms[0], arms[1][0] if arms[1] else None)
            for entry in group:
                ref = entry.get("doi") or entry.get("work_id")
                own_role = "protocol" if entry.get("design") == "protocol" else "results"
                targets = [(ref, own_role, "curated trial entry"),
                           (entry.get("linked_publication"), "results", "curated trial entry")]
                targets += [(r, "results", "curated same_as link") for r in _same_as(entry)
                            if r in linked]
                for target, role, reason in targets:
                    if target:
                        reports += add_report(conn, trial_id, work_ids[target], role, "curated",
                                              reason, (entry.get("sources") or [None])[0])
            refresh_trial(conn, trial_id)
    return CuratedLoad(trials, facts, reports, tuple(stubs))


def store_registry_trial(conn: sqlite3.Connection, trial: Mapping[str, Any]) -> int:
    """Store what a registry record says of a trial (``kb.scrapers.ctgov.to_trial`` output:
    ``registry_id``, ``source_url``, facts, ``arms``, ``secondary_ids``, ``references``).
    Works the record lists as results publications (by PMID) become reports. Returns the
    trial id."""
    registry_id = trial["registry_id"]
    source_url = trial.get("source_url")
    with transaction(conn):
        trial_id = ensure_trial(conn, registry_id, registry_ids=[registry_id])
        add_registry_id(conn, trial_id, registry_id, "registry", source_url)
        fields = {k: v for k, v in trial.items()
                  if k not in ("registry_id", "source_url", "arms", "secondary_ids", "references")}
        delete_facts(conn, trial_id, "registry", keep=fields)
        for field, value in fields.items():
            set_fact(conn, trial_id, field, value, "registry", source_url=source_url)
        set_arms(conn, trial_id, "registry", trial.get("arms") or [], source_url)
        for other in trial.get("secondary_ids") or []:
            if registry_of(other):
                add_registry_id(conn, trial_id, other, "registry", source_url)
        for reference in trial.get("references") or []:
            work_id = work_id_for(conn, f"pmid:{reference['pmid']}")
            if work_id is not None and reference.get("type") in ("RESULT", "DERIVED"):
                add_report(conn, trial_id, work_id, "results", "registry",
                           f"the {registry_id} record lists it as a {reference['type'].lower()} "
                           "publication", source_url)
        refresh_trial(conn, trial_id)
    return trial_id


def store_rule_trial(conn: sqlite3.Connection, work_id: int, facts: Mapping[str, Any], *,
                     key: str, role: str, reason: str) -> int:
    """Store the facts the rules read in one work as that work's trial (found by registry id,
    report or ``key``); replaces the rule facts that work gave before. Returns the trial id."""
    registry_ids = list(facts.get("registry_ids") or [])
    with transaction(conn):
        trial_id = ensure_trial(conn, registry_ids[0] if registry_ids else key,
                                registry_ids=registry_ids, work_ids=[work_id])
        for registry_id in registry_ids:
            add_registry_id(conn, trial_id, registry_id, "rule", f"rule:work/{work_id}")
        add_report(conn, trial_id, work_id, role, "rule", reason)
        fields = {k: v for k, v in facts.items() if k not in ("registry_ids", "arms")}
        delete_facts(conn, trial_id, "rule", work_id=work_id)
        for field, value in fields.items():
            if not has_fact(conn, trial_id, field, "rule"):
                set_fact(conn, trial_id, field, value, "rule", source_url=f"rule:work/{work_id}",
                         work_id=work_id)
        if facts.get("arms"):
            set_arms(conn, trial_id, "rule", facts["arms"], f"rule:work/{work_id}")
        refresh_trial(conn, trial_id)
    return trial_id


def store_rule_pooled(conn: sqlite3.Connection, work_id: int, registry_ids: Sequence[str],
                      reason: str) -> list[int]:
    """Record a synthesis work (pooled analysis, meta-analysis, review) that names these trials'
    registry ids as a ``pooled-analysis`` report of each, without merging the trials; a trial
    not yet in the KB is added under its registry id. Returns the trial ids."""
    trial_ids = []
    with transaction(conn):
        for registry_id in registry_ids:
            found = find_trials(conn, registry_ids=[registry_id])
            trial_id = found[0] if found else ensure_trial(conn, registry_id,
                                                           registry_ids=[registry_id])
            add_registry_id(conn, trial_id, registry_id, "rule", f"rule:work/{work_id}")
            add_report(conn, trial_id, work_id, "pooled-analysis", "rule",
                       f"{reason} names {registry_id}")
            refresh_trial(conn, trial_id)
            trial_ids.append(trial_id)
    return trial_ids
