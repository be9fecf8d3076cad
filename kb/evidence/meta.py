"""Pooling: random-effects meta-analysis of the KB's trials for one instrument and timepoint.

:func:`meta_analysis` reads the outcome rows (schema 0008), computes each trial's effect with
:mod:`kb.evidence.effects`, and pools them with ``statsmodels.stats.meta_analysis.combine_effects``
(Paule–Mandel by default, DerSimonian–Laird on request; a negative τ² is clamped at 0, which
makes the random-effects estimate the fixed-effect one). The result carries, per study, ``yi``,
``vi``, the 95% CI, the arm sizes, what the effect was computed from and its source pages; pooled,
the estimate, SE, 95% CI, prediction interval, τ², I² (metafor's definition), Q; and, with
``by``, the subgroups (cell product, route, donor) and a test of subgroup differences. Trials
that cannot enter are listed with the reason. Nothing here writes.
"""
from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from ..errors import InputError, KBError
from .effects import MEASURES, Effect, Exclusion, study_effect
from .outcomes import higher_is_better, instrument_matches

__all__ = ["Pooled", "Study", "MetaResult", "TooFewStudies", "pool", "meta_analysis",
           "METHODS", "GROUPINGS", "trial_facts"]

#: --method names -> statsmodels ``method_re``.
METHODS = {"pm": "iterated", "dl": "dl"}
#: --by names -> the trial fact each subgroup is read from.
GROUPINGS = {"cell-product": "cell_product", "route": "route", "donor": "donor"}
_POOLED_DESIGNS = ("pooled-analysis", "meta-analysis", "systematic-review", "review")
#: Sources of a trial's numbers, most trusted first: the report itself, then another work's table.
_PROVENANCE_ORDER = {"curated": 0, "registry": 1, "rule": 2}


class TooFewStudies(KBError):
    """Fewer than two studies can enter the pool (exit 1); the result is attached."""

    def __init__(self, message: str, result: MetaResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class Pooled:
    """A random-effects pooled estimate."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    pi_low: float
    pi_high: float
    tau2: float
    i2: float
    q: float
    q_df: int
    q_p: float | None
    k: int
    method: str


@dataclass
class Study:
    """One trial in (or out of) the pool."""

    trial_id: int
    label: str
    cell_product: list[str]
    route: list[str]
    donor: list[str]
    n: int | None
    reports: list[str]
    effect: Effect | None = None
    excluded: str | None = None
    sources: list[str] = field(default_factory=list)

    def caption(self) -> str:
        """ "Author Year · product · route · n" (n analysed when the effect gives it)."""
        from ..vocabulary import trial_caption
        n = self.n
        if self.effect is not None and self.effect.n_intervention and self.effect.n_control:
            n = self.effect.n_intervention + self.effect.n_control
        return trial_caption(self.label, self.cell_product, self.route, n)

    @property
    def pooled_effect(self) -> Effect:
        """The effect of a study in the pool (each of :attr:`MetaResult.studies` has one)."""
        if self.effect is None:
            raise ValueError(f"{self.label} has no effect to pool")
        return self.effect

    def group(self, attribute: str) -> str:
        """This study's subgroup for ``attribute`` (cell_product, route or donor)."""
        return " + ".join(getattr(self, attribute)) or "not reported"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"trial_id": self.trial_id, "label": self.label,
                               "caption": self.caption(),
                               "cell_product": self.cell_product, "route": self.route,
                               "donor": self.donor, "reports": self.reports}
        if self.effect is None:
            return dict(out, n=self.n, reason=self.excluded, sources=self.sources)
        e = self.effect
        return dict(out, yi=e.yi, vi=e.vi, se=math.sqrt(e.vi), ci_low=e.ci_low,
                    ci_high=e.ci_high, n_intervention=e.n_intervention, n_control=e.n_control,
                    n=(e.n_intervention or 0) + (e.n_control or 0) or self.n,
                    instrument=e.instrument, basis=e.basis, computed_from=e.computed_from,
                    notes=e.notes, sources=e.sources)


@dataclass
class MetaResult:
    """Everything ``kb meta`` shows."""

    instrument: str
    timepoint_months: float
    measure: str
    studies: list[Study]
    excluded: list[Study]
    pooled: Pooled | None
    mixes: list[str]
    by: str | None = None
    subgroups: dict[str, Pooled | Study] = field(default_factory=dict)
    subgroup_test: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "instrument": self.instrument, "timepoint_months": self.timepoint_months,
            "measure": self.measure,
            "direction": "yi > 0 favours the intervention (cell therapy) arm",
            "mixes": self.mixes, "pooled": asdict(self.pooled) if self.pooled else None,
            "studies": [s.as_dict() for s in self.studies],
            "excluded": [s.as_dict() for s in self.excluded], "by": self.by,
            "subgroups": {name: (asdict(g) if isinstance(g, Pooled) else
                                 {"k": 1, "estimate": g.effect.yi if g.effect else None,
                                  "study": g.label})
                          for name, g in self.subgroups.items()},
            "subgroup_test": self.subgroup_test}


def pool(yi: Sequence[float], vi: Sequence[float], method: str = "pm") -> Pooled:
    """Random-effects pooling of ``yi`` with sampling variances ``vi`` (at least two).

    The 95% CI is normal-based (as metafor's ``rma`` by default); the prediction interval is
    estimate ± 1.96·√(SE² + τ²) (metafor's ``predict``); I² = 100·τ² / (τ² + s²) with s² the
    typical within-study variance (metafor's definition).
    """
    from statsmodels.stats.meta_analysis import combine_effects

    y, v = np.asarray(yi, dtype=float), np.asarray(vi, dtype=float)
    if len(y) < 2:
        raise ValueError("pooling needs at least two studies")
    with np.errstate(invalid="ignore"):  # its unused HKSJ SE takes √ of a negative DL τ²
        result = combine_effects(y, v, method_re=METHODS[method],
                                 **({"atol": 1e-8, "maxiter": 200} if method == "pm" else {}))
        if method == "pm" and result.tau2 == 0 and result.q > len(y) - 1:
            # statsmodels' iteration sets τ² to 0 when rounding puts it a hair past the root;
            # Q > df means the root is positive, so stop earlier (its default tolerance)
            result = combine_effects(y, v, method_re=METHODS[method])
    tau2 = float(result.tau2)
    if tau2 > 0:
        estimate, se = float(result.mean_effect_re), float(result.sd_eff_w_re)
    else:  # clamped: with τ² = 0 the random-effects weights are the fixed-effect ones
        tau2 = 0.0
        estimate, se = float(result.mean_effect_fe), float(result.sd_eff_w_fe)
    z = stats.norm.ppf(0.975)
    w = 1 / v
    typical = (len(y) - 1) * w.sum() / (w.sum() ** 2 - (w ** 2).sum())
    q, df = float(result.q), len(y) - 1
    spread = math.sqrt(se ** 2 + tau2)
    return Pooled(estimate, se, float(estimate - z * se), float(estimate + z * se),
                  float(estimate - z * spread), float(estimate + z * spread), tau2,
                  float(100 * tau2 / (tau2 + typical)), q, df, float(stats.chi2.sf(q, df)),
                  len(y), {"pm": "Paule-Mandel", "dl": "DerSimonian-Laird"}[method])


def _subgroup_test(groups: Mapping[str, tuple[float, float]]) -> dict[str, float] | None:
    """Q between subgroups from each subgroup's estimate and SE (df = groups − 1)."""
    if len(groups) < 2:
        return None
    est = np.array([g[0] for g in groups.values()])
    w = 1 / np.array([g[1] ** 2 for g in groups.values()])
    mean = (w * est).sum() / w.sum()
    q = float((w * (est - mean) ** 2).sum())
    df = len(groups) - 1
    return {"q_between": q, "df": df, "p": float(stats.chi2.sf(q, df))}


# -- reading the KB -------------------------------------------------------------------------

def trial_facts(conn: sqlite3.Connection, trial_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Per trial: label, caption ("Amanat 2021 · UC-MSC · IT · n=72"), its normalised cell
    products, routes and donors (lists, as :mod:`kb.vocabulary` stored them), n,
    design, arms and report DOIs."""
    from ..vocabulary import NOT_REPORTED, trial_caption

    out: dict[int, dict[str, Any]] = {}
    for trial_id in trial_ids:
        row = conn.execute("SELECT id, label, cell_product, route, donor, n, design FROM trials "
                           "WHERE id = ?", (trial_id,)).fetchone()
        if row is None:
            continue
        facts = dict(row)
        for name in ("cell_product", "route", "donor"):
            facts[name] = [v for v in (row[name] or "").split("; ") if v and v != NOT_REPORTED]
        facts["caption"] = trial_caption(facts["label"], facts["cell_product"], facts["route"],
                                         facts["n"])
        best = conn.execute("SELECT provenance FROM trial_arms WHERE trial_id = ? ORDER BY "
                            "CASE provenance WHEN 'curated' THEN 0 WHEN 'registry' THEN 1 "
                            "ELSE 2 END LIMIT 1", (trial_id,)).fetchone()
        facts["arms"] = [dict(a) for a in conn.execute(
            "SELECT name, n FROM trial_arms WHERE trial_id = ? AND provenance = ? ORDER BY "
            "position", (trial_id, best[0]))] if best else []
        facts["reports"] = [r[0] for r in conn.execute(
            "SELECT coalesce(w.doi, w.url) FROM trial_reports r JOIN works w ON w.id = r.work_id "
            "WHERE r.trial_id = ? AND r.role != 'pooled-analysis' ORDER BY w.year, w.id",
            (trial_id,))]
        out[trial_id] = facts
    return out


def _available(conn: sqlite3.Connection) -> dict[str, list[float]]:
    found: dict[str, set[float]] = {}
    for instrument, timepoint in conn.execute(
            "SELECT DISTINCT instrument, timepoint_months FROM outcomes WHERE instrument IS NOT "
            "NULL AND quantity NOT IN ('p_value', 'n_analysed')"):
        found.setdefault(instrument, set())
        if timepoint is not None:
            found[instrument].add(timepoint)
    return {k: sorted(v) for k, v in sorted(found.items())}


def _months(value: float) -> str:
    return f"{value:g}"


def _choose(rows: list[dict[str, Any]], measure: str, higher: bool,
            counts: list[dict[str, Any]], arms: list[dict[str, Any]], total: int | None
            ) -> Effect | Exclusion:
    """The first source and instrument of a trial that gives an effect (the report's own
    numbers before another work's table; a named version before "unspecified")."""
    keyed: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        key = (_PROVENANCE_ORDER[row["provenance"]], row["reported_in"] is not None,
               "unspecified" in row["instrument"], row["instrument"], row["reported_in"] or "")
        keyed.setdefault(key, []).append(row)
    reasons: list[Exclusion] = []
    for key in sorted(keyed):
        effect = study_effect(keyed[key], measure=measure, higher_is_better=higher,
                              counts=counts, arms=arms, total=total)
        if isinstance(effect, Effect):
            return effect
        reasons.append(effect)
    return Exclusion("; ".join(dict.fromkeys(e.reason for e in reasons)),
                     list(dict.fromkeys(s for e in reasons for s in e.sources)))


def meta_analysis(conn: sqlite3.Connection, instrument: str, timepoint: float, *,
                  measure: str = "md", method: str = "pm", by: str | None = None) -> MetaResult:
    """Pool every trial's effect on ``instrument`` (a name or a family, see
    :func:`kb.evidence.outcomes.instrument_matches`) at ``timepoint`` months.

    :raises InputError: unknown instrument, timepoint, measure, method or grouping (the
        message says what exists).
    :raises TooFewStudies: fewer than two trials can enter (the result lists them).
    """
    if measure not in MEASURES or method not in METHODS or (by and by not in GROUPINGS):
        raise InputError(f"unknown option: measure {measure!r} (md, smd), method {method!r} "
                         f"(pm, dl), by {by!r} ({', '.join(GROUPINGS)})")
    available = _available(conn)
    names = [name for name in available if instrument_matches(instrument, name)]
    if not names:
        raise InputError(f"no outcomes for instrument {instrument!r}; the KB has: "
                         f"{', '.join(available) or 'none (run kb build)'}")
    timepoints = sorted({t for name in names for t in available[name]})
    if timepoint not in timepoints:
        raise InputError(f"no {instrument} outcomes at {_months(timepoint)} months; "
                         f"timepoints with {instrument}: "
                         f"{', '.join(_months(t) for t in timepoints)} months")
    marks = ",".join("?" * len(names))
    rows = [dict(r) for r in conn.execute(
        f"SELECT * FROM outcomes WHERE instrument IN ({marks}) AND timepoint_months = ? "
        f"AND quantity NOT IN ('p_value', 'n_analysed') ORDER BY id", (*names, timepoint))]
    pooled_results = [r for r in rows if r["trial_id"] is None]
    rows = [r for r in rows if r["trial_id"] is not None]
    trial_ids = sorted({r["trial_id"] for r in rows})
    facts = trial_facts(conn, trial_ids)
    studies: list[Study] = []
    excluded: list[Study] = []
    for trial_id in trial_ids:
        info = facts[trial_id]
        own = [r for r in rows if r["trial_id"] == trial_id]
        study = Study(trial_id, info["label"] or f"trial {trial_id}", info["cell_product"],
                      info["route"], info["donor"], info["n"], info["reports"])
        if info["design"] in _POOLED_DESIGNS:
            study.excluded = "a pooled analysis of other trials (they enter on their own)"
            study.sources = list(dict.fromkeys(r["source_url"] for r in own if r["source_url"]))
            excluded.append(study)
            continue
        counts = [dict(r) for r in conn.execute(
            "SELECT arm, arm_role, value FROM outcomes WHERE trial_id = ? AND quantity = "
            "'n_analysed' AND (timepoint_months = ? OR timepoint_months IS NULL) ORDER BY "
            "timepoint_months IS NULL, id", (trial_id, timepoint))]
        counts = list({c["arm"]: c for c in reversed(counts)}.values())
        effect = _choose(own, measure, higher_is_better(own[0]["instrument"]), counts,
                         info["arms"], info["n"])
        if isinstance(effect, Effect):
            study.effect = effect
            studies.append(study)
        else:
            study.excluded, study.sources = effect.reason, effect.sources
            excluded.append(study)
    for ref in dict.fromkeys(r["trial_ref"] for r in pooled_results):
        work = conn.execute("SELECT l.label, w.study_design FROM outcomes o JOIN works w ON "
                            "w.id = o.work_id JOIN work_labels l ON l.work_id = w.id WHERE "
                            "o.trial_ref = ? LIMIT 1", (ref,)).fetchone()
        pooled_work = work is not None and work["study_design"] in _POOLED_DESIGNS
        excluded.append(Study(0, work["label"] if work else ref, [], [], [], None, [ref],
                              excluded="a pooled result of other trials, not a trial"
                              if pooled_work else "no trial in the KB for this report",
                              sources=list(dict.fromkeys(
                                  r["source_url"] for r in pooled_results
                                  if r["trial_ref"] == ref and r["source_url"]))))
    result = MetaResult(instrument, timepoint, measure, studies, excluded, None,
                        _mixes(studies, measure), by)
    if len(studies) < 2:
        listed = "; ".join(f"{s.label}: {s.excluded}" for s in excluded) or "none"
        raise TooFewStudies(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} of "
                            f"{instrument} at {_months(timepoint)} months can be pooled (at least "
                            f"2 needed); in: {', '.join(s.label for s in studies) or 'none'}; "
                            f"out: {listed}", result)
    result.pooled = pool([s.pooled_effect.yi for s in studies],
                         [s.pooled_effect.vi for s in studies],
                         method)
    if by:
        _add_subgroups(result, GROUPINGS[by], method)
    return result


def _mixes(studies: list[Study], measure: str) -> list[str]:
    """What the pool mixes, said plainly."""
    notes = []
    instruments = sorted({s.effect.instrument for s in studies if s.effect})
    if len(instruments) > 1:
        notes.append(f"instruments: {', '.join(instruments)}"
                     + (" — mean differences on different scales (use --measure smd)"
                        if measure == "md" else ""))
    bases = sorted({s.effect.basis for s in studies if s.effect})
    if "final" in bases and any(b != "final" for b in bases):
        notes.append("final values pooled with changes from baseline / adjusted differences: "
                     + ", ".join(bases))
    elif len(bases) > 1:
        notes.append(f"effects computed from: {', '.join(bases)}")
    return notes


def _add_subgroups(result: MetaResult, attribute: str, method: str) -> None:
    groups: dict[str, list[Study]] = {}
    for study in result.studies:
        groups.setdefault(study.group(attribute), []).append(study)
    estimates = {}
    for name, members in sorted(groups.items()):
        if len(members) == 1:
            result.subgroups[name] = members[0]
            effect = members[0].pooled_effect
            estimates[name] = (effect.yi, math.sqrt(effect.vi))
        else:
            pooled = pool([s.pooled_effect.yi for s in members],
                          [s.pooled_effect.vi for s in members], method)
            result.subgroups[name] = pooled
            estimates[name] = (pooled.estimate, pooled.se)
    result.subgroup_test = _subgroup_test(estimates)
