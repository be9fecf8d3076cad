"""Effect sizes: one study's effect ``yi`` and sampling variance ``vi`` from what it reports.

Pure functions over outcome rows (dicts shaped like the ``outcomes`` table). The measure is the
mean difference (``md``, intervention minus control, on the instrument's scale) or the
standardised mean difference (``smd``, Hedges' g, as metafor's ``escalc(measure="SMD")``).
Every effect is oriented so that **yi > 0 favours the intervention**: for an instrument where a
lower score is better (MAS) the sign is flipped, and the study says so.

What a study can enter with, in the order tried (the first that works wins):

- ``md``: a reported adjusted difference with its 95% CI; a reported between-group difference
  with its 95% CI; per-arm means with SD / SE / CI (changes from baseline before final values).
- ``smd``: per-arm means with dispersion (Hedges' g); a reported Cohen's d with the arm sizes;
  a reported SMD with its CI; a reported (adjusted) difference with its CI, standardised by the
  SD its standard error implies.

Rules (Cochrane Handbook, chapter 6): SD = SE·√n; a 95% CI gives SE = width / (2·t) with t the
97.5% quantile of Student's t on the study's degrees of freedom when a group has fewer than 60
participants, else width / 3.92; SD of one arm from its CI = √n · SE. A study that cannot enter
gets a reason (:class:`Exclusion`).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scipy import stats

__all__ = ["Effect", "Exclusion", "study_effect", "hedges_correction", "se_from_ci",
           "smd_from_means", "MEASURES", "SMALL_GROUP"]

MEASURES = ("md", "smd")
#: Below this many participants per group a CI is turned into an SE with Student's t.
SMALL_GROUP = 60
_CONTROL = re.compile(r"^\s*(?:placebo|sham|control|saline|usual care|rehabilitation only|no )"
                      r"|\bcontrol\b", re.IGNORECASE)


@dataclass
class Effect:
    """A study's effect: ``yi`` and ``vi`` (metafor's names), its 95% CI, arm sizes, the basis
    (change_from_baseline, final, adjusted_difference, ...), what it was computed from, the
    instrument it used and the pages its numbers came from."""

    yi: float
    vi: float
    n_intervention: int | None
    n_control: int | None
    basis: str
    computed_from: str
    instrument: str
    sources: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def ci_low(self) -> float:
        return self.yi - 1.959963984540054 * math.sqrt(self.vi)

    @property
    def ci_high(self) -> float:
        return self.yi + 1.959963984540054 * math.sqrt(self.vi)


@dataclass
class Exclusion:
    """A study that cannot enter, and why."""

    reason: str
    sources: list[str] = field(default_factory=list)


def hedges_correction(df: float) -> float:
    """metafor's exact small-sample correction J(m) = Γ(m/2) / (√(m/2) Γ((m−1)/2)).

    >>> round(hedges_correction(70), 5)
    0.98924
    """
    return math.exp(math.lgamma(df / 2) - 0.5 * math.log(df / 2) - math.lgamma((df - 1) / 2))


def se_from_ci(low: float, high: float, df: float | None) -> float:
    """The SE a 95% CI implies: t-based for small samples (``df`` given), else width / 3.92.

    >>> round(se_from_ci(1.62, 14.52, 70), 3), round(se_from_ci(1.62, 14.52, None), 3)
    (3.234, 3.291)
    """
    crit = stats.t.ppf(0.975, df) if df else stats.norm.ppf(0.975)
    return float((high - low) / (2 * crit))


def smd_from_means(m1: float, sd1: float, n1: int, m2: float, sd2: float, n2: int
                   ) -> tuple[float, float]:
    """Hedges' g and its variance from per-arm means and SDs (metafor ``escalc("SMD")``)."""
    pooled = math.sqrt(((n1 - 1) * sd1 ** 2 + (n2 - 1) * sd2 ** 2) / (n1 + n2 - 2))
    return _g(((m1 - m2) / pooled), n1, n2)


def _g(d: float, n1: int, n2: int) -> tuple[float, float]:
    g = hedges_correction(n1 + n2 - 2) * d
    return g, 1 / n1 + 1 / n2 + g ** 2 / (2 * (n1 + n2))


def _df(n1: int | None, n2: int | None) -> float | None:
    """Degrees of freedom for a between-group CI when a group is small, else None (normal)."""
    if n1 and n2 and min(n1, n2) < SMALL_GROUP:
        return n1 + n2 - 2
    return None


# -- gathering a study's numbers ------------------------------------------------------------

def _stats(rows: Sequence[Mapping[str, Any]], arm: str, quantity: str) -> dict[str, float]:
    return {r["statistic"]: r["value"] for r in rows
            if r["arm"] == arm and r["quantity"] == quantity}


def _between(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["arm"] for r in rows if " vs " in r["arm"]))


def _arms(rows: Sequence[Mapping[str, Any]], role: str) -> list[str]:
    return list(dict.fromkeys(r["arm"] for r in rows if r["arm_role"] == role
                              and " vs " not in r["arm"]
                              and r["quantity"] in ("change_from_baseline", "final")))


def arm_size(name: str, role: str, rows: Sequence[Mapping[str, Any]],
             counts: Sequence[Mapping[str, Any]], arms: Sequence[Mapping[str, Any]]
             ) -> tuple[int | None, str | None]:
    """An arm's n: on its own rows; else the one ``n_analysed`` row of its role; else the trial's
    arm of that name (or, in a two-arm trial, the arm whose name says control or not)."""
    own = [r["n"] for r in rows if r["arm"] == name and r.get("n")]
    if own:
        return int(own[0]), None
    same_role = [c for c in counts if c["arm_role"] == role and " vs " not in c["arm"]]
    if len(same_role) == 1:
        return int(same_role[0]["value"]), f"n of {name!r} from the participant count of " \
                                           f"{same_role[0]['arm']!r}"
    sized = [a for a in arms if a.get("n")]
    named = [a for a in sized if a["name"].lower().startswith(name.lower())
             or name.lower().startswith(a["name"].lower())]
    if len(named) != 1 and len(sized) == 2:
        named = [a for a in sized if bool(_CONTROL.search(a["name"])) == (role == "control")]
    if len(named) == 1:
        return int(named[0]["n"]), f"n of {name!r} from the trial's arm {named[0]['name']!r}"
    return None, None


def _sd(values: Mapping[str, float], n: int | None) -> tuple[float | None, str | None]:
    if "sd" in values:
        return values["sd"], None
    if n and "se" in values:
        return values["se"] * math.sqrt(n), "SD = SE·√n"
    if n and "ci_low" in values and "ci_high" in values:
        df = n - 1 if n < SMALL_GROUP else None
        return (se_from_ci(values["ci_low"], values["ci_high"], df) * math.sqrt(n),
                "SD from the arm's 95% CI" + (" (t-based)" if df else ""))
    return None, None


# -- one study ------------------------------------------------------------------------------

def study_effect(rows: Sequence[Mapping[str, Any]], *, measure: str, higher_is_better: bool,
                 counts: Sequence[Mapping[str, Any]] = (),
                 arms: Sequence[Mapping[str, Any]] = (), total: int | None = None
                 ) -> Effect | Exclusion:
    """The effect of one study from its rows for one instrument and timepoint.

    :param rows: the study's outcome rows (one instrument, one timepoint, one source).
    :param counts: its ``n_analysed`` rows (participant counts per arm).
    :param arms: the trial's arms (``name``, ``n``), for arm sizes the rows do not give.
    :param total: the trial's n, split in equal halves when nothing gives the arm sizes.
    """
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}")
    sources = list(dict.fromkeys(r["source_url"] for r in rows if r.get("source_url")))
    instrument = rows[0]["instrument"] if rows else ""
    sign = 1.0 if higher_is_better else -1.0
    tried = (_per_arm, _cohens_d, _reported_smd, _adjusted) if measure == "smd" else \
        (_adjusted, _per_arm)
    reasons = []
    for attempt in tried:
        result = attempt(rows, measure, counts, arms, total)
        if isinstance(result, str):
            reasons.append(result)
            continue
        yi, vi, n1, n2, basis, how, notes = result
        if sign < 0:
            notes.append(f"{instrument}: a lower score is better; sign flipped so > 0 favours "
                         "the intervention")
        return Effect(sign * yi if basis != "cohens_d" else yi, vi, n1, n2, basis, how,
                      instrument, sources, notes)
    return Exclusion("; ".join(dict.fromkeys(r for r in reasons if r)) or "no usable numbers",
                     sources)


_Result = tuple[float, float, int | None, int | None, str, str, list[str]]


_PLACEBO_OF = re.compile(r"\bplacebo\s+\S+", re.IGNORECASE)


def _cell_arms(names: list[str]) -> tuple[list[str], list[str]]:
    """Of several intervention arms, those that give cells (a product named outside "placebo
    X"), and the others (e.g. "EPO (rhEPO + placebo UCB)")."""
    from ..vocabulary import cell_products

    cells = [n for n in names if cell_products(_PLACEBO_OF.sub("", n))]
    return cells, [n for n in names if n not in cells]


def _per_arm(rows: Sequence[Mapping[str, Any]], measure: str,
             counts: Sequence[Mapping[str, Any]], arms: Sequence[Mapping[str, Any]],
             total: int | None = None) -> _Result | str:
    treated, controls = _arms(rows, "intervention"), _arms(rows, "control")
    if not treated or not controls:
        return "no per-arm numbers for both an intervention and a control arm" \
            if treated or controls else ""
    left_out: list[str] = []
    if len(treated) > 1:
        cells, others = _cell_arms(treated)
        if len(cells) == 1:
            treated, left_out = cells, [f"arm {o!r} left out: it gives no cells" for o in others]
    if len(treated) > 1 or len(controls) > 1:
        spread = any(_sd(_stats(rows, arm, q), 1)[0] is not None for arm in treated + controls
                     for q in ("change_from_baseline", "final"))
        return f"{len(treated)} intervention arms and {len(controls)} control arm(s) share a " \
               "control (a multi-arm trial; not split)" if spread else \
               "per-arm means without SD, SE or CI"
    missing = ""
    for basis in ("change_from_baseline", "final"):
        one, two = _stats(rows, treated[0], basis), _stats(rows, controls[0], basis)
        if "mean" not in one or "mean" not in two:
            continue
        (n1, how1), (n2, how2) = (arm_size(treated[0], "intervention", rows, counts, arms),
                                  arm_size(controls[0], "control", rows, counts, arms))
        (sd1, sd_how1), (sd2, sd_how2) = _sd(one, n1), _sd(two, n2)
        if sd1 is None or sd2 is None:
            missing = f"per-arm means without SD, SE or CI ({basis.replace('_', ' ')})"
            continue
        if (not n1 or not n2) and total:
            n1, n2 = total - total // 2, total // 2
            how1, how2 = f"arm sizes taken as equal halves of the trial's n={total}", None
            (sd1, sd_how1), (sd2, sd_how2) = _sd(one, n1), _sd(two, n2)
        if not n1 or not n2 or sd1 is None or sd2 is None:  # (halves keep an SD found)
            missing = "per-arm means and dispersion, but no arm sizes"
            continue
        notes = left_out + [h for h in (how1, how2, sd_how1, sd_how2) if h]
        if measure == "md":
            yi, vi = one["mean"] - two["mean"], sd1 ** 2 / n1 + sd2 ** 2 / n2
        else:
            yi, vi = smd_from_means(one["mean"], sd1, n1, two["mean"], sd2, n2)
        label = "change from baseline" if basis == "change_from_baseline" else "final value"
        how = (f"{treated[0]} vs {controls[0]}: {label} mean ± "
               f"{'SD' if 'sd' in one and 'sd' in two else 'SD derived'} per arm "
               f"({one['mean']:g}, n={n1} vs {two['mean']:g}, n={n2})")
        return yi, vi, n1, n2, basis, how, notes
    return missing or "per-arm means without SD, SE or CI"


def _pair_sizes(rows: Sequence[Mapping[str, Any]], arm: str,
                counts: Sequence[Mapping[str, Any]], arms: Sequence[Mapping[str, Any]],
                trial_total: int | None) -> tuple[int | None, int | None, list[str]]:
    """The two arm sizes behind a between-arm number ("X vs Y"): each arm's own count, else
    equal halves of the number's n (or the trial's)."""
    treated, _, control = arm.partition(" vs ")
    n1, how1 = arm_size(treated, "intervention", [], counts, arms)
    n2, how2 = arm_size(control, "control", [], counts, arms)
    notes = [h for h in (how1, how2) if h]
    total = next((int(r["n"]) for r in rows if r["arm"] == arm and r.get("n")), trial_total)
    if (not n1 or not n2) and total:
        n1, n2 = total - total // 2, total // 2
        notes.append(f"arm sizes taken as equal halves of n={total}")
    return n1, n2, notes


def _adjusted(rows: Sequence[Mapping[str, Any]], measure: str,
              counts: Sequence[Mapping[str, Any]], arms: Sequence[Mapping[str, Any]],
              total: int | None = None) -> _Result | str:
    for quantity in ("adjusted_difference", "between_group_difference"):
        for arm in _between(rows):
            values = _stats(rows, arm, quantity)
            if "mean" not in values or not ({"ci_low", "ci_high"} <= set(values) or "se" in values):
                continue
            n1, n2, notes = _pair_sizes(rows, arm, counts, arms, total)
            if "se" in values:
                se, how_se = values["se"], "its SE"
            else:
                df = _df(n1, n2)
                se = se_from_ci(values["ci_low"], values["ci_high"], df)
                how_se = f"SE from its 95% CI ({'t, df=' + str(df) if df else 'z'})"
                middle = (values["ci_low"] + values["ci_high"]) / 2
                if abs(middle - values["mean"]) > 0.05 * (values["ci_high"] - values["ci_low"]):
                    notes.append(f"the CI is not symmetric about {values['mean']:g} (midpoint "
                                 f"{middle:.2f}); SE from its width")
            kind = "adjusted difference" if quantity == "adjusted_difference" else \
                "between-group difference"
            if measure == "md":
                return (values["mean"], se ** 2, n1, n2, quantity,
                        f"{arm}: {kind} {values['mean']:g} with {how_se}", notes)
            if not n1 or not n2:
                return f"a {kind} without arm sizes cannot be standardised"
            sd = se / math.sqrt(1 / n1 + 1 / n2)
            yi, vi = _g(values["mean"] / sd, n1, n2)
            return (yi, vi, n1, n2, quantity, f"{arm}: {kind} {values['mean']:g} / SD {sd:.2f} "
                    f"implied by {how_se} (Hedges' g)", notes)
    return "no between-group difference with a CI or SE"


def _cohens_d(rows: Sequence[Mapping[str, Any]], measure: str,
              counts: Sequence[Mapping[str, Any]], arms: Sequence[Mapping[str, Any]],
              total: int | None = None) -> _Result | str:
    for arm in _between(rows):
        values = _stats(rows, arm, "cohens_d")
        if "value" not in values:
            continue
        n1, n2, notes = _pair_sizes(rows, arm, counts, arms, total)
        if not n1 or not n2:
            return "a Cohen's d without arm sizes"
        d = values["value"]
        difference = next((r["value"] for r in rows if r["arm"] == arm and r["statistic"] == "mean"
                           and r["quantity"] in ("adjusted_difference",
                                                 "between_group_difference")), None)
        if difference is not None:
            favours = difference > 0 if _higher(rows) else difference < 0
            if (d > 0) != favours:
                notes.append(f"Cohen's d printed as {d:g}; signed by the reported difference "
                             f"{difference:g}")
            d = abs(d) if favours else -abs(d)
        else:
            notes.append("Cohen's d taken as printed (> 0 read as favouring the intervention)")
        yi, vi = _g(d, n1, n2)
        return yi, vi, n1, n2, "cohens_d", f"{arm}: Cohen's d {values['value']:g} " \
                                           f"with n={n1}+{n2} (Hedges' g)", notes
    return "no Cohen's d"


def _higher(rows: Sequence[Mapping[str, Any]]) -> bool:
    from .outcomes import higher_is_better
    return higher_is_better(rows[0]["instrument"] if rows else None)


def _reported_smd(rows: Sequence[Mapping[str, Any]], measure: str,
                  counts: Sequence[Mapping[str, Any]], arms: Sequence[Mapping[str, Any]],
                  total: int | None = None) -> _Result | str:
    for arm in _between(rows):
        values = _stats(rows, arm, "smd")
        if {"value", "ci_low", "ci_high"} <= set(values):
            se = se_from_ci(values["ci_low"], values["ci_high"], None)
            n1, n2, notes = _pair_sizes(rows, arm, counts, arms, total)
            return values["value"], se ** 2, n1, n2, "smd", \
                f"{arm}: reported SMD {values['value']:g} with SE from its 95% CI", notes
    return "no reported SMD with a CI"
