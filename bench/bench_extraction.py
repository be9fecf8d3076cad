"""Rule extraction measured against the curated trial facts, curated overrides switched off.

For every curated trial entry in kb/seed/trials.json the extractor sees only the text a user
would have for it: the report's title, its keywords / MeSH terms and PubMed publication types
from kb/seed/works.json, or for a registry-only entry the registry title(s). The corpus has no
abstracts, so most numeric facts (N, ages, follow-up, dose) cannot be read from it; recall on
those fields measures that gap, not the rules on abstracts (tests/test_evidence_extract.py
covers abstracts). Both sides go through the same canonical vocabulary (kb.evidence.extract).

Precision = correct / values extracted; recall = correct / curated values. Set-valued fields
(cell type, route, outcomes, follow-up months, registry ids) count items. A value extracted for
a field the entry does not curate cannot be checked and is counted apart ("unchecked"), not as
wrong. Blinding is compared at the level papers and registries share (open / single / double or
more / blinded, unspecified), since a paper's "double-blind" is a registry's "quadruple". The
design rules' fallback "other" (no rule matched) counts as no answer. For a registry-only entry
its registry id is the input, not a finding, so it is not scored. There is no external anchor
for this task, so the anchor column is "—".

    python bench/bench_extraction.py          # the table, then every miss
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from kb.evidence.design import classify_design
from kb.evidence.extract import (canonical_age_range, canonical_blinding, canonical_cell_types,
                                 canonical_control, canonical_origin, canonical_outcomes,
                                 canonical_routes, extract_facts, facts_implied_by_design,
                                 find_doses)
from kb.ingest.seed import seed_files

GOAL_P, GOAL_R = 0.9, 0.8
SET_FIELDS = ("registry_ids", "cell_type", "route", "outcomes", "follow_up_months")
SCALAR_FIELDS = ("design", "origin", "n", "age_range", "blinding", "control", "dose")


def _load() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    folder = seed_files()
    trials = json.loads(folder.joinpath("trials.json").read_text(encoding="utf-8"))
    works = {w["id"]: w for w in json.loads(folder.joinpath("works.json").read_text(encoding="utf-8"))}
    return trials, works


def _terms(work: dict[str, Any]) -> list[str]:
    text = (work.get("keyword") or "").replace("MeSH:", ";")
    return [t.strip().rstrip("*").strip() for t in text.split(";") if t.strip()]


def _text_for(entry: dict[str, Any], works: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """What a user has for this entry: title, terms, publication types, work type."""
    ref = entry.get("doi") or entry.get("work_id") or entry.get("linked_publication")
    work = works.get(ref) if ref else None
    if work is not None and work.get("title"):
        return {"title": work["title"], "terms": _terms(work),
                "publication_types": work["custom"].get("publication_types") or [],
                "type": "web-article" if work["type"] == "webpage" else work["type"],
                "source": ref}
    titles = [entry.get(k) for k in ("title", "official_title") if entry.get(k)]
    if titles:
        return {"title": ". ".join(titles), "terms": [], "publication_types": [], "type": None,
                "source": f"registry {', '.join(entry.get('registry_ids') or [])}"}
    return None


def _blinding_level(value: str | None) -> str | None:
    return {"triple": "double+", "quadruple": "double+", "double-blind": "double+"}.get(
        value or "", value)


def _gold(entry: dict[str, Any]) -> dict[str, Any]:
    gold: dict[str, Any] = {}
    if entry.get("registry_ids") and (entry.get("doi") or entry.get("work_id")):
        gold["registry_ids"] = set(entry["registry_ids"])
    if entry.get("cell_type"):
        gold["cell_type"] = set(canonical_cell_types(entry["cell_type"])) or {f"?{entry['cell_type']}"}
    if entry.get("route"):
        gold["route"] = {r for r in ("intrathecal", "intravenous", "intra-arterial",
                                     "intracerebroventricular", "intracerebral", "intranasal",
                                     "intramuscular") if r in entry["route"]}
    if entry.get("outcomes"):
        gold["outcomes"] = {o for text in entry["outcomes"] for o in canonical_outcomes(text)}
        gold["_unmapped_outcomes"] = [t for t in entry["outcomes"] if not canonical_outcomes(t)]
    if entry.get("follow_up_months"):
        gold["follow_up_months"] = {float(m) for m in entry["follow_up_months"]}
    if entry.get("design"):
        gold["design"] = entry["design"]
    if entry.get("origin"):
        gold["origin"] = entry["origin"]
    n = entry.get("n_randomised") or entry.get("n_treated")
    if n:
        gold["n"] = n
    if entry.get("age_range"):
        gold["age_range"] = canonical_age_range(entry["age_range"]) or f"?{entry['age_range']}"
    if entry.get("blinding"):
        gold["blinding"] = _blinding_level(canonical_blinding(entry["blinding"])) \
            or f"?{entry['blinding']}"
    if entry.get("control"):
        gold["control"] = canonical_control(entry["control"]) or f"?{entry['control']}"
    if entry.get("dose") and find_doses(entry["dose"]):
        gold["dose"] = find_doses(entry["dose"])[0]
    return gold


def _predict(text: dict[str, Any]) -> dict[str, Any]:
    facts = extract_facts(text["title"], None, text["terms"], [])
    pred: dict[str, Any] = {}
    design = classify_design(text["title"], None, text["publication_types"], text["terms"],
                             text["type"])
    if design and design != ("other", "rule"):
        pred["design"] = design[0]
    facts = facts_implied_by_design(facts, pred.get("design"))
    for field, normalise in (("cell_type", canonical_cell_types), ("route", canonical_routes),
                             ("control", canonical_control), ("blinding", canonical_blinding)):
        if facts.get(field):  # the rules keep the words as stated
            facts[field] = normalise("; ".join(facts[field]) if field in ("cell_type", "route")
                                     else facts[field])
    for field in SET_FIELDS:
        if facts.get(field):
            pred[field] = set(facts[field])
    origin = canonical_origin(text["title"])
    if len(origin) == 1:
        pred["origin"] = origin[0]
    n = facts.get("n_randomised") or facts.get("n_treated")
    if n:
        pred["n"] = n
    for field in ("age_range", "control"):
        if facts.get(field):
            pred[field] = facts[field]
    if facts.get("blinding"):
        pred["blinding"] = _blinding_level(facts["blinding"])
    if facts.get("dose") and find_doses(facts["dose"]):
        pred["dose"] = find_doses(facts["dose"])[0]
    return pred


def measure() -> tuple[dict[str, dict[str, int]], list[str], dict[str, int]]:
    """Counts per field (tp, fp, fn), the misses as lines, and coverage counts."""
    trials, works = _load()
    counts = {f: {"tp": 0, "fp": 0, "fn": 0} for f in SET_FIELDS + SCALAR_FIELDS}
    misses: list[str] = []
    coverage = {"entries": len(trials), "with_text": 0, "unmapped_outcomes": 0, "unchecked": 0}
    for entry in trials:
        name = entry.get("doi") or entry.get("work_id") or ", ".join(entry.get("registry_ids") or [])
        gold = _gold(entry)
        text = _text_for(entry, works)
        coverage["unmapped_outcomes"] += len(gold.get("_unmapped_outcomes", []))
        pred = _predict(text) if text else {}
        coverage["with_text"] += text is not None
        for field in SET_FIELDS:
            want, got = gold.get(field, set()), pred.get(field, set())
            if field not in gold:
                coverage["unchecked"] += len(got)
                continue
            tp = len(want & got)
            counts[field]["tp"] += tp
            counts[field]["fp"] += len(got - want)
            counts[field]["fn"] += len(want - got)
            if want != got and (want or got):
                misses.append(f"{field}: {name}: curated {sorted(map(str, want))} "
                              f"extracted {sorted(map(str, got))}")
        for field in SCALAR_FIELDS:
            want, got = gold.get(field), pred.get(field)
            if want is None:
                coverage["unchecked"] += got is not None
                continue
            if got == want:
                counts[field]["tp"] += 1
                continue
            counts[field]["fp"] += got is not None
            counts[field]["fn"] += 1
            misses.append(f"{field}: {name}: curated {want!r} extracted {got!r}")
    return counts, misses, coverage


def measure_designs() -> tuple[int, int, int, list[str]]:
    """Designs of every curated work (works.json) from title, MeSH / keywords and PubMed types:
    (correct, answered, curated, misses); the rules' fallback "other" counts as no answer."""
    _, works = _load()
    correct = answered = wanted = 0
    misses = []
    for work in works.values():
        gold = work["custom"].get("design")
        if not gold:
            continue
        wanted += 1
        result = classify_design(work.get("title"), None,
                                 work["custom"].get("publication_types") or [], _terms(work),
                                 "web-article" if work["type"] == "webpage" else work["type"])
        got = result[0] if result and result != ("other", "rule") else None
        answered += got is not None
        correct += got == gold
        if got != gold:
            misses.append(f"design (all works): {work['id']}: curated {gold!r} extracted {got!r}")
    return correct, answered, wanted, misses


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


def run() -> list[dict[str, Any]]:
    """Rows {measure, kb, anchor, ratio, goal}: precision and recall per field."""
    counts, _, coverage = measure()
    rows: list[dict[str, Any]] = [
        {"measure": "curated trial entries with user-visible text (title / MeSH / registry "
                    "title)", "kb": f"{coverage['with_text']}/{coverage['entries']}",
         "anchor": "—", "ratio": "—", "goal": "—"},
        {"measure": "values extracted for fields the entry does not curate (unchecked)",
         "kb": coverage["unchecked"], "anchor": "—", "ratio": "—", "goal": "—"}]
    for field, c in counts.items():
        found, wanted = c["tp"] + c["fp"], c["tp"] + c["fn"]
        rows.append({"measure": f"{field} precision ({c['tp']}/{found})",
                     "kb": _ratio(c["tp"], found), "anchor": "—", "ratio": "—",
                     "goal": f">= {GOAL_P}"})
        rows.append({"measure": f"{field} recall ({c['tp']}/{wanted})",
                     "kb": _ratio(c["tp"], wanted), "anchor": "—", "ratio": "—",
                     "goal": f">= {GOAL_R}"})
    correct, answered, wanted, _ = measure_designs()
    rows.append({"measure": f"design of every curated work, precision ({correct}/{answered})",
                 "kb": _ratio(correct, answered), "anchor": "—", "ratio": "—",
                 "goal": f">= {GOAL_P}"})
    rows.append({"measure": f"design of every curated work, recall ({correct}/{wanted})",
                 "kb": _ratio(correct, wanted), "anchor": "—", "ratio": "—",
                 "goal": f">= {GOAL_R}"})
    return rows


def _print(rows: Iterable[dict[str, Any]]) -> None:
    for row in rows:
        print(f"{row['measure']:<70} {row['kb']!s:>8}  goal {row['goal']}")


if __name__ == "__main__":
    _print(run())
    _, misses, coverage = measure()
    print(f"\n{coverage['unmapped_outcomes']} curated outcomes are not instruments in the lexicon "
          "(e.g. 'motor function') and are left out of outcome recall.")
    misses += measure_designs()[3]
    print(f"\nMisses ({len(misses)}):")
    for line in misses:
        print("  " + line)
    sys.exit(0)
