"""Rule-based extraction of trial facts from the text a user has: title, abstract, MeSH, keywords.

Pure functions, no I/O. Every ``canonical_*`` helper maps free text (a paper's wording or a
curated value) onto kb's controlled vocabulary, so extracted and curated facts can be compared:
cell types, routes, blinding and control are :mod:`kb.vocabulary`'s (re-exported here
under their ``canonical_*`` names), outcome instruments and the rest are read here. The facts
the vocabulary normalises keep the words the text states them in:

>>> facts = extract_facts("Intrathecal umbilical cord tissue mesenchymal stem cells in cerebral "
...                       "palsy: a randomized double-blind sham-controlled trial")
>>> facts["cell_type"], facts["route"], facts["blinding"], facts["control"]
(['umbilical cord tissue mesenchymal stem cells'], ['Intrathecal'], 'double-blind', 'sham')
>>> canonical_cell_types(facts["cell_type"][0]), canonical_routes(facts["route"][0])
(['UC-MSC'], ['intrathecal'])
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..identifiers import find_registry_ids, registry_of
from ..vocabulary import blinding as canonical_blinding
from ..vocabulary import NUMBER as _NUM
from ..vocabulary import NUMBER_WORD as _NUMBER_WORD
from ..vocabulary import broader_donor, canonical_age_range, donors, lexicon, mentions, spans
from ..vocabulary import words_to_int
from ..vocabulary import cell_products as canonical_cell_types
from ..vocabulary import control as canonical_control
from ..vocabulary import routes as canonical_routes

__all__ = ["canonical_cell_types", "canonical_routes", "canonical_origin", "canonical_blinding",
           "canonical_control", "canonical_outcomes", "canonical_age_range", "find_doses",
           "find_n", "find_arms", "find_follow_up", "extract_facts", "facts_implied_by_design",
           "words_to_int"]

_I = re.IGNORECASE

# -- lexicons ---------------------------------------------------------------------------------
# Cell products, donors, routes, control and blinding are kb.vocabulary's (its data
# file); the outcome instruments are read here.

def canonical_origin(text: str) -> list[str]:
    """``autologous`` and/or ``allogeneic`` as ``text`` says (a sibling donor is allogeneic).

    >>> canonical_origin("sibling cord blood"), canonical_origin("Autologous bone marrow")
    (['allogeneic'], ['autologous'])
    """
    return list(dict.fromkeys(broader_donor(d) for d in donors(text)))


def _ordered(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if name not in out:
            out.append(name)
    return out


_OUTCOMES: list[tuple[str, list[str]]] = [
    ("GMFM-66", [r"GMFM[- ]?66", r"Gross Motor Function Measure[- ]66"]),
    ("GMFM-88", [r"GMFM[- ]?88", r"Gross Motor Function Measure[- ]88", r"GMFCS[- ]88"]),
    ("GMFM", [r"\bGMFM\b", r"gross motor function measure"]),
    ("GMPM", [r"\bGMPM\b", r"gross motor performance measure"]),
    ("GMFCS", [r"\bGMFCS\b", r"gross motor function classification"]),
    ("FMFM", [r"\bFMFM\b", r"fine motor function measure"]),
    ("PEDI", [r"\bPEDI\b", r"pediatric evaluation of disability inventory"]),
    ("MAS", [r"\bMAS\b", r"(?:modified )?ashworth(?: scale)?"]),
    ("Tardieu", [r"tardieu"]),
    ("CP-QoL", [r"\bCP[- ]QO?L\b", r"cerebral palsy quality of life"]),
    ("WeeFIM", [r"\bWee[- ]?FIM\b", r"functional independence measure for children"]),
    ("FIM", [r"\bFIM\b", r"functional independence measure"]),
    ("DTI", [r"\bDTI\b", r"diffusion tensor(?: imaging)?", r"fractional anisotropy",
             r"\bFA/MD\b"]),
    ("PET", [r"\bPET(?:[-/]CT)?\b", r"positron emission tomography"]),
    ("SPECT", [r"\bSPECT\b"]),
    ("EEG", [r"\bEEG\b", r"electroencephalogra\w+"]),
    ("BSID", [r"\b(?:K-)?BSID(?:-II)?\b", r"bayley scales?"]),
    ("PDMS", [r"\bPDMS(?:-2|-FM)?\b", r"peabody(?: developmental motor scales?| gross motor)?"]),
    ("QUEST", [r"\bQUEST\b", r"quality of upper extremity skills"]),
    ("VABS", [r"\bVABS(?:-II)?\b", r"vineland"]),
    ("Gesell", [r"gesell"]),
    ("MACS", [r"\bMACS\b", r"manual ability classification"]),
    ("CFCS", [r"\bCFCS\b"]),
    ("TCMS", [r"\bTCMS\b", r"trunk control measurement scale"]),
    ("adverse events", [r"adverse (?:events?|effects?|reactions?)", r"\bsafety\b"]),
]
_OUTCOME_RES = [(name, re.compile("|".join(p), _I)) for name, p in _OUTCOMES]


def canonical_outcomes(text: str) -> list[str]:
    """Outcome instruments named in ``text`` (GMFM-66 / 88, PEDI, MAS, CP-QoL, WeeFIM, DTI …).

    >>> canonical_outcomes("GMFM-66, modified Ashworth scale, PEDI and DTI FA/MD")
    ['GMFM-66', 'MAS', 'PEDI', 'DTI']
    """
    return _ordered(name for _, name in spans(text or "", _OUTCOME_RES))


_DOSE = re.compile(
    r"(\d+(?:\.\d+)?)\s*(?:x|×|\*)\s*10\s*(?:\^|e|\*\*|\()?\s*(\d{1,2})\)?"
    r"(?:\s*(?:cells|TNC|MNCs?|MSCs?|viable cells))?(\s*(?:/|per)\s*kg)?"
    r"|(\d+(?:\.\d+)?)\s*million\s*(?:cells|MNCs?|MSCs?)?(\s*(?:/|per)\s*kg)?", _I)


def find_doses(text: str) -> list[tuple[float, bool]]:
    """Cell doses in ``text`` as (cells, per_kg) pairs, in order.

    >>> find_doses("a single dose of 5 × 10^6 cells/kg; another 2 x 10^7 cells")
    [(5000000.0, True), (20000000.0, False)]
    """
    doses: list[tuple[float, bool]] = []
    for match in _DOSE.finditer(text or ""):
        if match.group(1):
            value = float(match.group(1)) * 10 ** int(match.group(2))
            per_kg = bool(match.group(3))
        else:
            value = float(match.group(4)) * 1e6
            per_kg = bool(match.group(5))
        if (value, per_kg) not in doses:
            doses.append((value, per_kg))
    return doses


def _dose_phrase(text: str) -> str | None:
    match = _DOSE.search(text or "")
    return match.group(0).strip() if match else None


_PEOPLE = (r"(?:children|patients|participants|subjects|individuals|infants|cases|toddlers|"
           r"boys and girls)")
_PAREN = r"(?: \([^()]{0,100}\))?"
_RANDOMISED = [
    rf"{_NUM} (?:eligible )?{_PEOPLE}{_PAREN}(?: with (?:spastic |severe )?(?:cerebral palsy|CP))?"
    rf"(?: aged [^.,;]{{1,30}})? (?:were|was) "
    rf"(?:randomly (?:assigned|allocated|divided)|randomi[sz]ed)",
    rf"randomi[sz]ed {_NUM} {_PEOPLE}",
    rf"{_NUM} {_PEOPLE} (?:were )?randomi[sz]ed",
    rf"(?:a total of|in total,?) {_NUM} {_PEOPLE}[^.]{{0,60}}randomi[sz]",
    rf"{_NUM} {_PEOPLE}[^.;]{{0,80}}?(?:randomly (?:assigned|allocated|divided)|randomi[sz]ed)",
]
_TREATED = [
    rf"{_NUM} (?:eligible )?{_PEOPLE}{_PAREN}(?: with (?:spastic |severe )?(?:cerebral palsy|CP))?"
    rf"(?: aged [^.,;]{{1,30}})? (?:were|was) (?:enrolled|included|treated|recruited)",
    rf"(?:a total of|in total,?) {_NUM} {_PEOPLE}",
    rf"report of {_NUM} cases", rf"^{_NUM} cases of",
    rf"{_NUM} {_PEOPLE} (?:received|underwent)",
    rf"(?:enrolled|included|recruited|treated) {_NUM} {_PEOPLE}",
]
_RANDOMISED_RES = [re.compile(p, _I) for p in _RANDOMISED]
_TREATED_RES = [re.compile(p, _I | re.M) for p in _TREATED]


def find_n(text: str) -> dict[str, int]:
    """Participants: ``{"n_randomised": 72}`` or ``{"n_treated": 40}``, as ``text`` states.

    >>> find_n("Seventy-two children with spastic CP were randomly assigned to two groups.")
    {'n_randomised': 72}
    >>> find_n("Forty cases of cerebral palsy treated with neural stem cells")
    {'n_treated': 40}
    """
    for key, patterns in (("n_randomised", _RANDOMISED_RES), ("n_treated", _TREATED_RES)):
        for pattern in patterns:
            match = pattern.search(text or "")
            if match:
                value = words_to_int(next(g for g in match.groups() if g))
                if value:
                    return {key: value}
    return {}


_ARM_PATTERNS = [
    re.compile(r"(?:the )?([A-Za-z][\w+-]*(?: [\w+-]+){0,3}) (?:group|arm) "
               r"\((?:n\s*=\s*)?(\d+)\)", _I),
    re.compile(rf"{_NUM} (?:{_PEOPLE} )?(?:were )?(?:randomly )?(?:assigned |allocated )?(?:in|to) "
               rf"(?:the|an?) ([\w+-]+(?: [\w+-]+){{0,2}}?) (?:group|arm)\b", _I),
]
_EACH = re.compile(rf"{_NUM} (?:{_PEOPLE} )?(?:in|per) (?:each|every) (?:group|arm)", _I)


def find_arms(text: str) -> list[dict[str, Any]]:
    """Arms with their sizes, as the text gives them.

    >>> find_arms("72 were randomized to the UC-MSC group (n = 36) or the sham group (n = 36).")
    [{'name': 'UC-MSC', 'n': 36}, {'name': 'sham', 'n': 36}]
    """
    arms: list[dict[str, Any]] = []
    for match in _ARM_PATTERNS[0].finditer(text or ""):
        name = re.sub(r"^.*\b(?:to|or|and|the|in|vs|versus)\s+", "", match.group(1), flags=_I)
        arms.append({"name": name.strip(), "n": int(match.group(2))})
    if not arms:
        for match in _ARM_PATTERNS[1].finditer(text or ""):
            n = words_to_int(match.group(1))
            if n:
                arms.append({"name": match.group(2).strip(), "n": n})
    return arms


_NUMX = rf"(?:\d{{1,3}}(?:\.\d)?|{_NUMBER_WORD})"
_LIST = rf"{_NUMX}(?:(?:,|,? and|,? or| to|-)\s?{_NUMX})*"
_FOLLOW = re.compile(
    rf"(?:follow(?:ed)?[- ]?up|assessed|evaluated|measured|examined|observed|monitored)"
    rf"(?: (?:was|were) (?:performed|done|conducted)| lasted| continued| period)?"
    rf"(?: (?:for|over|of|at|after|until|up to|"
    rf"during))?(?: (?:a|the) (?:period|duration) of)? ({_LIST}) ?(months?|years?|weeks?)\b"
    rf"|({_LIST})[- ](months?|years?|weeks?)[- ](?:follow[- ]?up|outcomes?|results?)"
    rf"|at (?:baseline,? (?:and )?)?({_LIST}) (months?|years?) (?:after|post|following)"
    rf"|({_LIST}) (months?|years?|weeks?) (?:after|post|following) (?:the )?(?:first |last )?"
    rf"(?:treatment|transplant|injection|infusion|intervention|administration|therapy|cell|"
    rf"baseline|randomi[sz]ation|enrol)", _I)


def find_follow_up(text: str) -> list[float]:
    """Follow-up time points in months, sorted.

    >>> find_follow_up("Patients were followed up at 1, 3, 6 and 12 months; a 24-month follow-up")
    [1.0, 3.0, 6.0, 12.0, 24.0]
    """
    months: set[float] = set()
    for match in _FOLLOW.finditer(text or ""):
        groups = match.groups()
        numbers, unit = next((groups[i], groups[i + 1]) for i in (0, 2, 4, 6) if groups[i])
        factor = {"y": 12.0, "m": 1.0, "w": 0.25}[unit[0].lower()]
        for token in re.findall(_NUMX, numbers, _I):
            value = words_to_int(token) if not re.fullmatch(r"\d+\.\d", token) else float(token)
            if value is not None and 0 < value * factor <= 240:
                months.add(float(value * factor))
    return sorted(months)


# -- all facts of one work --------------------------------------------------------------------

def facts_implied_by_design(facts: dict[str, Any], design: str | None) -> dict[str, Any]:
    """Facts a design implies when the text is silent: a case report treats one patient and,
    like a case series, has no control group.

    >>> facts_implied_by_design({}, "case-report")
    {'control': 'none', 'n_treated': 1}
    >>> facts_implied_by_design({"control": "placebo"}, "rct")
    {'control': 'placebo'}
    """
    facts = dict(facts)
    if design in ("case-report", "case-series"):
        facts.setdefault("control", "none")
    if design == "case-report" and "n_randomised" not in facts:
        facts.setdefault("n_treated", 1)
    return facts


def _texts(title: str | None, abstract: str | None, mesh: Iterable[str],
           keywords: Iterable[str]) -> tuple[str, str]:
    """The prose (title and abstract) and the whole text (prose plus MeSH and keywords)."""
    terms = "; ".join([*mesh, *keywords])
    prose = " ".join(t for t in (title, abstract) if t)
    return prose, (f"{prose}\n{terms}" if terms else prose)


def _registry_ids(text: str, accessions: Iterable[str]) -> list[str]:
    """Registry ids from data-bank accessions that are trial registries (not GenBank, PDB, ...)
    and from the text."""
    return _ordered([*(a for a in accessions if registry_of(a)), *find_registry_ids(text)])


def screen(title: str | None, abstract: str | None = None, mesh: Iterable[str] = (),
           keywords: Iterable[str] = (), accessions: Iterable[str] = ()
           ) -> tuple[list[str], list[str]]:
    """The two facts that decide whether a work reports a trial: its registry ids (from
    data-bank accessions that are trial registries, and from the text) and cell types.

    >>> screen("Intrathecal UC-MSC in cerebral palsy", accessions=["J02203", "NCT01147653"])
    (['NCT01147653'], ['UC-MSC'])
    """
    _, text = _texts(title, abstract, mesh, keywords)
    return _registry_ids(text, accessions), canonical_cell_types(text)


def _stated(kind: str, text: str) -> list[str]:
    return [m.stated for m in mentions(kind, text)]


def extract_facts(title: str | None, abstract: str | None = None,
                  mesh: Iterable[str] = (), keywords: Iterable[str] = (),
                  accessions: Iterable[str] = ()) -> dict[str, Any]:
    """Every fact the rules find in one work's text, keyed like the curated trial facts.

    Keys present only when found: registry_ids, cell_type (list), origin, route (list), dose,
    n_randomised / n_treated, arms, age_range, blinding, control, outcomes, follow_up_months.
    Cell type, origin, route, blinding and control are, like curated facts, the words as the
    text states them (each value's first mention, :func:`kb.vocabulary.mentions`);
    the vocabulary normalises them when the trial is stored.
    """
    prose, text = _texts(title, abstract, mesh, keywords)
    facts: dict[str, Any] = {}
    registry_ids = _registry_ids(text, accessions)
    if registry_ids:
        facts["registry_ids"] = registry_ids
    cell_types = _stated("product", text)
    if cell_types:
        facts["cell_type"] = cell_types
    origin = _stated("donor", prose)
    if origin:
        facts["origin"] = origin[0] if len(origin) == 1 else origin
    routes = _stated("route", text)
    if routes and (cell_types or dict(lexicon("route"))["intrathecal"].search(text)):
        facts["route"] = routes
    phrase = _dose_phrase(prose)
    if phrase:
        facts["dose"] = phrase
    facts.update(find_n(prose))
    arms = find_arms(prose)
    if arms:
        facts["arms"] = arms
    each = _EACH.search(prose)
    if each and "arms" not in facts and facts.get("n_randomised"):
        size = words_to_int(each.group(1)) or 0
        if size and facts["n_randomised"] % size == 0:
            facts["arms"] = [{"name": f"arm {i + 1}", "n": size}
                             for i in range(facts["n_randomised"] // size)]
    sized = facts.get("arms") and all(a.get("n") for a in facts["arms"])
    if "n_randomised" not in facts and sized and re.search(r"randomi[sz]", prose, _I):
        facts["n_randomised"] = sum(a["n"] for a in facts["arms"])
    age = canonical_age_range(prose)
    if age:
        facts["age_range"] = age
    for field, kind in (("blinding", "blinding"), ("control", "control")):
        stated = _stated(kind, prose)
        if stated:
            facts[field] = stated[0]
    outcomes = [o for o in canonical_outcomes(text) if o != "adverse events"
                or re.search(r"adverse", text, _I)]
    if outcomes:
        facts["outcomes"] = outcomes
    follow_up = find_follow_up(prose)
    if follow_up:
        facts["follow_up_months"] = follow_up
    return facts
