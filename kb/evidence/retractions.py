"""Retraction and correction flags, and the works that stand on a retracted report.

Pure functions, no I/O. A work is *retracted* when a source says so: Crossref ``updated-by``
(or a notice's ``update-to``) of type retraction, PubMed ``RetractionIn`` / ``RetractionOf``,
the PubMed type "Retracted Publication", or a source's ``is_retracted``. A pooled analysis,
meta-analysis or review that pools or cites a retracted report, and a follow-up or companion
report of it, *depends on* it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .design import SYNTHESIS_DESIGNS

__all__ = ["compute_flags"]

def _kind(kind: str) -> str | None:
    """The flag an update kind raises (retraction, RetractionIn, erratum, ...), or None."""
    kind = kind.strip().lower().replace(" ", "-").replace("_", "-")
    if kind.startswith(("retract", "withdraw", "removal")):
        return "retracted"
    if kind.startswith(("correct", "errat", "corrigend")):
        return "corrected"
    if kind.startswith("expression-of-concern"):
        return "expression-of-concern"
    return None


def compute_flags(works: Mapping[int, Mapping[str, Any]],
                  updates: Iterable[Mapping[str, Any]],
                  publication_types: Iterable[tuple[int, str]],
                  lineage: Iterable[tuple[int, int, str]],
                  citations: Iterable[tuple[int, int]],
                  find_work: Mapping[str, int]) -> list[dict[str, Any]]:
    """Every flag, as dicts with work_id, flag, reason, other_work_id, source.

    :param works: id -> {label, design, is_retracted}.
    :param updates: rows of the ``updates`` table (work_id, kind, direction, other_doi,
        other_pmid, label, source).
    :param publication_types: (work id, PubMed type) pairs.
    :param lineage: (from work, to work, relation) edges.
    :param citations: resolved (citing, cited) pairs.
    :param find_work: ``doi:<doi>`` / ``pmid:<pmid>`` -> work id, to place a notice's target.
    """
    flags: dict[tuple[int, str, str], dict[str, Any]] = {}

    def flag(work_id: int, kind: str, reason: str, other: int | None = None,
             source: str | None = None) -> None:
        flags.setdefault((work_id, kind, reason), {"work_id": work_id, "flag": kind,
                                                   "reason": reason, "other_work_id": other,
                                                   "source": source})

    for work_id, work in works.items():
        if work.get("is_retracted"):
            flag(work_id, "retracted", "a source marks it retracted")
    for work_id, name in publication_types:
        if work_id in works and name.strip().lower() == "retracted publication":
            flag(work_id, "retracted", "PubMed type: Retracted Publication", source="pubmed")
    for row in updates:
        kind = _kind(row["kind"])
        if kind is None:
            continue
        label = row.get("label") or row["kind"]
        notice = None
        if row.get("other_doi"):
            notice = find_work.get(f"doi:{row['other_doi']}")
        if notice is None and row.get("other_pmid"):
            notice = find_work.get(f"pmid:{row['other_pmid']}")
        if row["direction"] == "updated-by":
            named = row.get("other_doi") or (f"PMID {row['other_pmid']}" if row.get("other_pmid")
                                              else "a notice")
            flag(row["work_id"], kind, f"{label} ({named}) per {row['source']}", notice,
                 row["source"])
        elif notice is not None:  # this work is the notice; the target is the other work
            name = works.get(row["work_id"], {}).get("label") or row["work_id"]
            flag(notice, kind, f"{label} notice {name} per {row['source']}", row["work_id"],
                 row["source"])
    retracted = {w for (w, kind, _) in flags if kind == "retracted"}
    for source, target, relation in lineage:
        if target in retracted and source in works and source not in retracted:
            flag(source, "depends-on-retracted",
                 f"{relation.replace('_', ' ')} {works[target].get('label') or target}, "
                 "which is retracted", target)
    for citing, cited in citations:
        if cited in retracted and citing in works and citing not in retracted \
                and works[citing].get("design") in SYNTHESIS_DESIGNS:
            flag(citing, "depends-on-retracted",
                 f"{works[citing]['design']} cites {works[cited].get('label') or cited}, "
                 "which is retracted", cited)
    return list(flags.values())
