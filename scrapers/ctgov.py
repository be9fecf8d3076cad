"""ClinicalTrials.gov API v2: fetch studies by NCT id and read them as trial facts.

``fetch_studies(client, nct_ids)`` asks ``/studies?filter.ids=…`` (pages of up to 100 ids, with
``nextPageToken``) and falls back to ``/studies/{nct}`` for an id the list does not return (an
alias the API redirects). ``to_trial(study)`` turns one study into the dict
:func:`kb.store.evidence.store_registry_trial` stores: enrolment, phase, status, masking, arms,
conditions, ages, countries, and the cell type, donor and route as the record states them (the
phrases that name them; kb.evidence.vocabulary normalises them when they are stored).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..errors import FetchError, InputError, NotFoundError
from ..evidence.extract import canonical_age_range
from ..evidence.vocabulary import cell_products, donors, routes

__all__ = ["fetch_studies", "fetch_study", "to_trial", "normalize_nct", "STUDY_URL"]

#: the public page of a study (cited as the source of its facts).
STUDY_URL = "https://clinicaltrials.gov/study/{nct}"
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
