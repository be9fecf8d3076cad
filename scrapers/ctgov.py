"""ClinicalTrials.gov API v2: fetch studies by NCT id and read them as trial facts.

``fetch_studies(client, nct_ids)`` asks ``/studies?filter.ids=…`` (pages of up to 100 ids, with
``nextPageToken``) and falls back to ``/studies/{nct}`` for an id the list does not return (an
alias the API redirects). ``to_trial(study)`` turns one study into the dict
:func:`kb.evidence.load.store_registry_trial` stores: enrolment, phase, status, masking, arms,
conditions, ages, countries, and the cell type, donor and route as the record states them (the
phrases that name them; kb.vocabulary normalises them when they are stored).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..errors import FetchError, InputError, NotFoundError
from ..vocabulary import canonical_age_range, cell_products, donors, routes

__all__ = ["fetch_studies", "fetch_study", "to_trial", "parse_results", "normalize_nct",
           "STUDY_URL", "RESULTS_URL"]

#: the public page of a study (cited as the source of its facts).
STUDY_URL = "https://clinicaltrials.gov/study/{nct}"
#: the public page of a study's posted results (cited as the source of its numbers).
RESULTS_URL = "https://clinicaltrials.gov/study/{nct}?tab=results"
_BATCH = 100
_PHASES = {"NA": "N/A", "EARLY_PHASE1": "Early 1", "PHASE1": "1", "PHASE2": "2", "PHASE3": "3",
           "PHASE4": "4"}
_MASKING = {"NONE": "open-label", "SINGLE": "single", "DOUBLE": "double-blind",
            "TRIPLE": "triple", "QUADRUPLE": "quadruple"}
_CONTROL_ARMS = (("SHAM_COMPARATOR", "sham"), ("PLACEBO_COMPARATOR", "placebo"),
                 ("NO_INTERVENTION", "no-treatment"), ("ACTIVE_COMPARATOR", "active comparator"))


def normalize_nct(text: str) -> str:
    """``nct01147653`` -> ``NCT01147653``.

    :raises InputError: not an NCT id.

    >>> normalize_nct(" nct01147653 ")
    'NCT01147653'
    """
    value = text.strip().upper()
    if not re.fullmatch(r"NCT\d{8}", value):
        raise InputError(f"not a ClinicalTrials.gov id: {text!r} (NCT followed by 8 digits)")
    return value


def fetch_study(client: Any, nct_id: str) -> dict[str, Any]:
    """One study from ``/studies/{nct}``.

    :raises NotFoundError: ClinicalTrials.gov has no such study.
    """
    nct = normalize_nct(nct_id)
    return client.get_json(client.config.url("ctgov", f"studies/{nct}"), params={"format": "json"})


def fetch_studies(client: Any, nct_ids: Iterable[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The studies for these NCT ids, and the ids ClinicalTrials.gov does not know."""
    wanted = list(dict.fromkeys(normalize_nct(i) for i in nct_ids))
    studies: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), _BATCH):
        batch = wanted[start:start + _BATCH]
        params: dict[str, Any] = {"filter.ids": ",".join(batch), "pageSize": len(batch),
                                  "format": "json"}
        while True:
            page = client.get_json(client.config.url("ctgov", "studies"), params=params)
            if not isinstance(page, dict) or not isinstance(page.get("studies"), list):
                raise FetchError("ClinicalTrials.gov answered without a studies list",
                                 url=client.config.url("ctgov", "studies"))
            for study in page["studies"]:
                nct = _nct(study)
                if nct:
                    studies[nct] = study
            token = page.get("nextPageToken")
            if not token:
                break
            params = {**params, "pageToken": token}
    missing = []
    for nct in wanted:
        if nct in studies:
            continue
        try:
            study = fetch_study(client, nct)
        except NotFoundError:
            missing.append(nct)
            continue
        studies[nct] = study
    order = {nct: i for i, nct in enumerate(wanted)}
    return sorted(studies.values(), key=lambda s: order.get(_nct(s) or "", len(order))), missing


def _nct(study: dict[str, Any]) -> str | None:
    return (study.get("protocolSection", {}).get("identificationModule", {}) or {}).get("nctId")


def _status(value: str | None) -> str | None:
    return value.replace("_", " ").capitalize() if value else None


def _age(value: str | None) -> str | None:
    match = re.fullmatch(r"(\d+) (Year|Years|Month|Months|Week|Weeks|Day|Days)", value or "")
    if not match:
        return None
    unit = match.group(2).lower().rstrip("s") + "s"
    return f"{match.group(1)} {unit}"


def _age_range(eligibility: dict[str, Any]) -> str | None:
    low, high = _age(eligibility.get("minimumAge")), _age(eligibility.get("maximumAge"))
    if low and high:
        if low.split()[1] == high.split()[1]:
            return f"{low.split()[0]}-{high}"
        return canonical_age_range(f"{low}-{high}") or f"{low}-{high}"
    if low:
        return f">= {low}"
    if high:
        return f"<= {high}"
    return None


def _blinding(masking: dict[str, Any]) -> str | None:
    """``quadruple (participant, care provider, ...)`` from a masking module."""
    level = _MASKING.get(masking.get("masking") or "")
    who = ", ".join(w.lower().replace("_", " ") for w in masking.get("whoMasked") or [])
    return f"{level} ({who})" if level and who else level


def _design(design: dict[str, Any], arms: list[dict[str, Any]]) -> str | None:
    if design.get("studyType") == "OBSERVATIONAL":
        return "cohort"
    info = design.get("designInfo") or {}
    allocation = info.get("allocation")
    comparator = any(a.get("type") not in (None, "EXPERIMENTAL") for a in arms)
    if allocation == "RANDOMIZED":
        return "rct"
    if allocation == "NON_RANDOMIZED" and (comparator or len(arms) > 1):
        return "controlled-trial"
    if info.get("interventionModel") == "SINGLE_GROUP" or len(arms) == 1:
        return "open-label-trial" if (info.get("maskingInfo") or {}).get("masking") in (
            None, "NONE") else "controlled-trial"
    return None


def _stating(finder: Any, *groups: Iterable[str | None]) -> str | None:
    """The sentences in which ``finder`` (a vocabulary reader) finds something, as stated and
    "; "-joined, from the first group of texts that has any."""
    for texts in groups:
        found = [s.strip() for text in texts if text for s in re.split(r"(?<=[.;])\s+", text)
                 if s.strip() and finder(s)]
        if found:
            return "; ".join(dict.fromkeys(found))
    return None


def to_trial(study: dict[str, Any]) -> dict[str, Any]:
    """The trial facts one study states (keys absent when the record is silent)."""
    protocol = study.get("protocolSection") or {}
    ident = protocol.get("identificationModule") or {}
    status = protocol.get("statusModule") or {}
    design = protocol.get("designModule") or {}
    arms_module = protocol.get("armsInterventionsModule") or {}
    eligibility = protocol.get("eligibilityModule") or {}
    nct = ident.get("nctId")
    if not nct:
        raise FetchError("a ClinicalTrials.gov study without an nctId")
    arm_groups = arms_module.get("armGroups") or []
    interventions = arms_module.get("interventions") or []
    masking = ((design.get("designInfo") or {}).get("maskingInfo") or {})
    enrollment = design.get("enrollmentInfo") or {}
    outcomes = protocol.get("outcomesModule") or {}
    locations = (protocol.get("contactsLocationsModule") or {}).get("locations") or []
    cells = [i for i in interventions if i.get("type") in (
        "BIOLOGICAL", "GENETIC", "PROCEDURE", "COMBINATION_PRODUCT", "OTHER", "DRUG")]
    names = [i.get("name") for i in cells]
    details = [t for i in cells for t in [*(i.get("otherNames") or []), i.get("description")]]
    titles = [ident.get("briefTitle"), ident.get("officialTitle")]
    trial: dict[str, Any] = {
        "registry_id": nct,
        "source_url": STUDY_URL.format(nct=nct),
        "title": ident.get("briefTitle"),
        "official_title": ident.get("officialTitle"),
        "status": _status(status.get("overallStatus")),
        "phase": "/".join(_PHASES.get(p, p) for p in design.get("phases") or []) or None,
        "enrollment": enrollment.get("count"),
        "enrollment_type": (enrollment.get("type") or "").lower() or None,
        "design": _design(design, arm_groups),
        "blinding": _blinding(masking),
        "control": next((name for kind, name in _CONTROL_ARMS
                         if any(a.get("type") == kind for a in arm_groups)),
                        "none" if len(arm_groups) == 1 else None),
        "conditions": (protocol.get("conditionsModule") or {}).get("conditions"),
        "outcomes": [o["measure"].strip()[:160] for kind in ("primaryOutcomes", "secondaryOutcomes")
                     for o in outcomes.get(kind) or [] if o.get("measure")] or None,
        "age_range": _age_range(eligibility),
        "country": "; ".join(dict.fromkeys(loc["country"] for loc in locations
                                           if loc.get("country"))) or None,
        "sponsor": ((protocol.get("sponsorCollaboratorsModule") or {}).get("leadSponsor")
                    or {}).get("name"),
        "start_date": (status.get("startDateStruct") or {}).get("date"),
        "completion_date": (status.get("completionDateStruct") or {}).get("date"),
        "cell_type": _stating(cell_products, names, titles),
        "cell_type_long": _stating(cell_products, details),
        "origin": _stating(donors, names, details, titles),
        "route": _stating(routes, names, details),
        "has_results": bool(study.get("hasResults") or study.get("resultsSection")),
    }
    trial = {k: v for k, v in trial.items() if v is not None}
    trial["arms"] = [{"name": a.get("label") or f"arm {i + 1}", "arm_type": a.get("type"),
                      "description": a.get("description")} for i, a in enumerate(arm_groups)]
    trial["secondary_ids"] = [s["id"] for s in (ident.get("secondaryIdInfos") or []) if s.get("id")]
    trial["references"] = [{"pmid": r["pmid"], "type": r.get("type"), "citation": r.get("citation")}
                           for r in (protocol.get("referencesModule") or {}).get("references") or []
                           if r.get("pmid")]
    return trial


# -- posted results (resultsSection) --------------------------------------------------------

_SPREAD = {"STANDARD_DEVIATION": "sd", "STANDARD_ERROR": "se"}
_CONTROL_WORDS = re.compile(r"placebo|sham|control|usual care|no (?:treatment|intervention)",
                            re.IGNORECASE)


def _float(text: Any) -> tuple[float | None, str | None]:
    """A results number (a string, maybe "<0.001" or "NA") as (value, text as stated)."""
    if text is None:
        return None, None
    match = re.search(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", str(text))
    return (float(match.group(0)) if match else None), str(text)


def _roles(study: dict[str, Any]) -> dict[str, str]:
    """Arm labels -> intervention | control, from the protocol's arm types."""
    arms = ((study.get("protocolSection") or {}).get("armsInterventionsModule") or {}).get(
        "armGroups") or []
    return {(a.get("label") or "").strip().lower():
            "intervention" if a.get("type") in ("EXPERIMENTAL", None) else "control" for a in arms}


def _role(title: str, roles: dict[str, str]) -> str:
    known = roles.get(title.strip().lower())
    return known or ("control" if _CONTROL_WORDS.search(title) else "intervention")


def parse_results(study: dict[str, Any]) -> list[dict[str, Any]]:
    """The numbers a study's posted results give (empty without a ``resultsSection``): per group
    and class of each outcome measure its central value and dispersion (``sd``/``se`` from
    ``spread``, ``ci_low``/``ci_high`` from 95% limits) and its analysed n; each analysis's
    estimate, 95% CI and p value between its groups; per period of the participant flow each
    group's completers (``n_analysed``). Timepoints stay text (``timepoint_as_stated``,
    ``class_title``) for :func:`kb.evidence.outcomes.registry_rows` to read."""
    results = study.get("resultsSection")
    nct = ((study.get("protocolSection") or {}).get("identificationModule") or {}).get("nctId")
    if not results or not nct:
        return []
    roles = _roles(study)
    base = {"registry_id": nct, "source_url": RESULTS_URL.format(nct=nct)}
    rows: list[dict[str, Any]] = []
    for measure in (results.get("outcomeMeasuresModule") or {}).get("outcomeMeasures") or []:
        rows += _measure_rows(measure, roles, base)
    flow = results.get("participantFlowModule") or {}
    titles = {g["id"]: g.get("title") or g["id"] for g in flow.get("groups") or []}
    for period in flow.get("periods") or []:
        for milestone in period.get("milestones") or []:
            if milestone.get("type") != "COMPLETED":
                continue
            for achievement in milestone.get("achievements") or []:
                n, _ = _float(achievement.get("numSubjects"))
                title = titles.get(achievement.get("groupId"), achievement.get("groupId") or "")
                if n is not None:
                    rows.append(dict(base, arm=title, arm_role=_role(title, roles), n=int(n),
                                     quantity="n_analysed", statistic="value", value=n,
                                     instrument_as_stated=None,
                                     timepoint_as_stated=period.get("title"),
                                     location=f"registry Participant Flow, period "
                                              f"'{period.get('title')}' (completed)"))
    return rows


def _measure_rows(measure: dict[str, Any], roles: dict[str, str], base: dict[str, Any]
                  ) -> list[dict[str, Any]]:
    title = (measure.get("title") or "").strip()
    quantity = "change_from_baseline" if re.search(r"\bchange", title, re.IGNORECASE) else "final"
    central = "median" if "MEDIAN" in (measure.get("paramType") or "") else "mean"
    spread = _SPREAD.get(measure.get("dispersionType") or "")
    limits = measure.get("dispersionType") == "CONFIDENCE_95"
    groups = {g["id"]: g.get("title") or g["id"] for g in measure.get("groups") or []}
    denoms = {c["groupId"]: int(_float(c.get("value"))[0] or 0)
              for d in measure.get("denoms") or [] for c in d.get("counts") or []
              if _float(c.get("value"))[0] is not None}
    common = dict(base, instrument_as_stated=title, timepoint_as_stated=measure.get("timeFrame"),
                  location=f"registry Outcome Measures: {measure.get('type', '').lower()} "
                           f"'{title}'", quantity=quantity)
    rows: list[dict[str, Any]] = []
    for klass in measure.get("classes") or []:
        for category in klass.get("categories") or []:
            class_title = klass.get("title") or category.get("title")
            for m in category.get("measurements") or []:
                arm = groups.get(m.get("groupId"), m.get("groupId") or "")
                cell = dict(common, arm=arm, arm_role=_role(arm, roles),
                            n=denoms.get(m.get("groupId")), class_title=class_title)
                value, stated = _float(m.get("value"))
                if value is None:
                    continue
                cell_rows: list[tuple[str, float | None, str | None]] = [(central, value, stated)]
                if spread and m.get("spread") is not None:
                    cell_rows.append((spread, *_float(m["spread"])))
                if limits:
                    cell_rows += [("ci_low", *_float(m.get("lowerLimit"))),
                                  ("ci_high", *_float(m.get("upperLimit")))]
                rows += [dict(cell, statistic=s, value=v, value_as_stated=t)
                         for s, v, t in cell_rows if v is not None]
    for analysis in measure.get("analyses") or []:
        ids = analysis.get("groupIds") or []
        arms = [groups.get(i, i) for i in ids]
        kind = analysis.get("paramType") or ""
        pair = dict(common, arm=" vs ".join(arms), arm_role="intervention",
                    n=sum(denoms.get(i, 0) for i in ids) or None,
                    class_title=None, note=f"{kind}; {analysis.get('statisticalMethod') or ''}"
                                           .strip("; "))
        if "difference" in kind.lower():
            adjusted = re.search(r"adjust|least squares|ls mean", kind, re.IGNORECASE)
            pair_quantity = "adjusted_difference" if adjusted else "between_group_difference"
            numbers = [("mean", analysis.get("paramValue"))]
            if analysis.get("ciPctValue") in ("95", 95):
                numbers += [("ci_low", analysis.get("ciLowerLimit")),
                            ("ci_high", analysis.get("ciUpperLimit"))]
            for statistic, text in numbers:
                value, stated = _float(text)
                if value is not None:
                    rows.append(dict(pair, quantity=pair_quantity, statistic=statistic,
                                     value=value, value_as_stated=stated))
        p_value, stated = _float(analysis.get("pValue"))
        if p_value is not None:
            rows.append(dict(pair, quantity="p_value", statistic="value", value=p_value,
                             value_as_stated=stated))
    return rows
