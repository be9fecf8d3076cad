"""Typed lineage between works, inferred where the evidence allows. Pure functions, no I/O.

- ``same_trial``: two works report one trial (they share a registry id, or a curated entry
  groups them); each report is linked to the trial's first report, not every pair.
- ``follow_up_of``: a later report of the same trial that calls itself a follow-up, or a work
  that calls itself a follow-up and cites a trial report (design + citation).
- ``pools``: a pooled analysis or meta-analysis that cites a trial report (design + citation),
  or a synthesis that names a trial's registry id (it is that trial's pooled-analysis report).

Curated edges (the corpus's ``pools`` rows) are stored directly through
:func:`kb.store.evidence.add_lineage`; the rules never replace them.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from .design import TRIAL_DESIGNS

__all__ = ["Edge", "infer_lineage", "is_follow_up", "CITING_DESIGNS", "CITED_DESIGNS"]

_FOLLOW_UP = re.compile(r"follow[- ]?up|long[- ]term (?:outcomes?|results?|effects?|safety)|"
                        r"\b\w+[- ]years? (?:after|outcomes?|results?)|extension (?:study|phase)",
                        re.I)
_POOLING = ("pooled-analysis", "meta-analysis")
_POOLED_DESIGNS = ("rct", "controlled-trial", "open-label-trial")
_FOLLOWING = TRIAL_DESIGNS + ("cohort", "case-series")
#: the designs a citation can give an edge from / to (any other citation gives none).
CITING_DESIGNS = tuple(dict.fromkeys(_POOLING + _FOLLOWING))
CITED_DESIGNS = tuple(dict.fromkeys(_POOLED_DESIGNS + TRIAL_DESIGNS))


class Edge(NamedTuple):
    """A lineage edge: ``source`` pools / follows up / reports the same trial as ``target``."""

    source: int
    target: int
    relation: str
    reason: str
    rule: str


def is_follow_up(title: str | None) -> bool:
    """True when a title presents the work as a follow-up of an earlier report.

    >>> is_follow_up("Long-term outcomes of cord blood infusion: a 5-year follow-up")
    True
    >>> is_follow_up("Safety of sibling cord blood infusion")
    False
    """
    return bool(_FOLLOW_UP.search(title or ""))


def _order(work: Mapping[str, Any]) -> tuple[int, int]:
    return (work.get("year") or 9999, work["id"])


def infer_lineage(works: Mapping[int, Mapping[str, Any]],
                  trial_reports: Iterable[tuple[int, int, str]],
                  trial_labels: Mapping[int, str],
                  citations: Iterable[tuple[int, int]]) -> list[Edge]:
    """Infer edges among ``works`` (id -> {id, design, year, title, label}).

    :param trial_reports: (trial id, work id, role) rows; a pooled-analysis row makes its work
        pool the trial's other reports.
    :param trial_labels: trial id -> how a reason names the trial (its registry id or label).
    :param citations: resolved (citing work id, cited work id) pairs.
    """
    edges: dict[tuple[int, int, str], Edge] = {}

    def add(edge: Edge) -> None:
        key = (edge.source, edge.target, edge.relation)
        if key not in edges and edge.source != edge.target:
            edges[key] = edge

    by_trial: dict[int, list[int]] = {}
    roles: dict[tuple[int, int], str] = {}
    pooling: list[tuple[int, int]] = []
    for trial_id, work_id, role in trial_reports:
        if work_id not in works:
            continue
        if role == "pooled-analysis":
            pooling.append((trial_id, work_id))
        else:
            by_trial.setdefault(trial_id, []).append(work_id)
            roles[(trial_id, work_id)] = role
    for trial_id, work_id in pooling:
        name = trial_labels.get(trial_id, f"trial {trial_id}")
        for member in by_trial.get(trial_id, []):
            add(Edge(work_id, member, "pools",
                     f"{works[work_id].get('design') or 'it'} names {name}, which "
                     f"{works[member].get('label') or member} reports", "rule:registry-id"))
    same: set[frozenset[int]] = set()
    for trial_id, members in by_trial.items():
        members = sorted(set(members), key=lambda w: _order(works[w]))
        if len(members) < 2:
            continue
        name = trial_labels.get(trial_id, f"trial {trial_id}")
        # a star around the trial's first results report that is not itself a follow-up
        anchor = min(members, key=lambda m: (roles.get((trial_id, m)) != "results",
                                             is_follow_up(works[m].get("title")),
                                             _order(works[m])))
        for member in members:
            if member == anchor:
                continue
            same.add(frozenset((anchor, member)))
            work = works[member]
            later, earlier = ((member, anchor) if _order(work) > _order(works[anchor])
                              else (anchor, member))
            if later == member and is_follow_up(work.get("title")):
                add(Edge(member, anchor, "follow_up_of",
                         f"later report of {name} that presents itself as a follow-up",
                         "rule:same-trial+follow-up-title"))
            else:
                add(Edge(later, earlier, "same_trial", f"both report {name}",
                         "rule:shared-trial"))
    for citing, cited in citations:
        if citing not in works or cited not in works or frozenset((citing, cited)) in same:
            continue
        source, target = works[citing], works[cited]
        if source.get("design") in _POOLING and target.get("design") in _POOLED_DESIGNS:
            add(Edge(citing, cited, "pools",
                     f"{source['design']} cites the {target['design']} report "
                     f"{target.get('label') or cited}", "rule:design+citation"))
        elif (source.get("design") in _FOLLOWING and target.get("design") in TRIAL_DESIGNS and _order(source) > _order(target)
              and is_follow_up(source.get("title"))):
            add(Edge(citing, cited, "follow_up_of",
                     f"follow-up study cites the {target['design']} report "
                     f"{target.get('label') or cited}", "rule:design+citation"))
    return list(edges.values())
