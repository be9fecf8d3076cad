"""Outcomes as data: instruments, timepoints, and reading reported numbers from three sources.

Nothing here writes (:mod:`kb.store.outcomes` stores what these functions return):

- :data:`INSTRUMENTS` — the outcome instruments kb knows, with the phrases that name them and
  their direction (a lower MAS is better); :func:`normalise_instrument`, :func:`instrument_matches`.
- :func:`parse_timeframe` — a registry's free-text ``timeFrame`` as months.
- :func:`curated_rows` — the seed's ``outcomes.json`` records as outcome rows.
- :func:`registry_rows` — ClinicalTrials.gov posted results (``kb.scrapers.ctgov.parse_results``)
  as outcome rows, instrument and timepoint normalised.
- :func:`extract_effects` — rules reading reported effects from an abstract ("β 8.07; 95%CI
  1.62, 14.52", "Cohen's d 0.92", "10.27 ± 2.96", "p = 0.045").
- :func:`select_outcomes` — the rows `kb outcomes` shows (reads the KB).

An outcome row is a dict with the columns of the ``outcomes`` table (schema 0008) except the
ids, plus ``trial_ref`` / ``work_ref`` naming the trial and report as the source does.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

__all__ = ["Instrument", "INSTRUMENTS", "QUANTITIES", "STATISTICS", "normalise_instrument",
           "instrument_matches", "higher_is_better", "parse_timeframe", "curated_rows",
           "registry_rows", "extract_effects", "rule_rows", "read_seed_outcomes",
           "select_outcomes"]

QUANTITIES = ("final", "change_from_baseline", "between_group_difference", "adjusted_difference",
              "smd", "cohens_d", "p_value", "n_analysed")
STATISTICS = ("mean", "median", "sd", "se", "ci_low", "ci_high", "value")


class Instrument(NamedTuple):
    """An outcome instrument: its name, the phrases naming it (regular expressions, tried in
    :data:`INSTRUMENTS` order), and whether a higher score is better."""

    name: str
    patterns: tuple[str, ...]
    higher_is_better: bool = True


#: The instruments, most specific first (a curator extends this table; every row is tested).
INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("GMFM-66", (r"\bGMFM[\s-]*66\b", r"gross motor function measure[\s-]*66\b")),
    Instrument("GMFM-88", (r"\bGMFM[\s-]*88\b", r"gross motor function measure[\s-]*88\b")),
    Instrument("GMFM (unspecified)", (r"\bGMFM\b", r"gross motor function measure")),
    Instrument("GMPM", (r"\bGMPM\b", r"gross motor performance measure")),
    Instrument("PEDI", (r"\bPEDI\b", r"pediatric evaluation of disability inventory")),
    Instrument("MAS", (r"\bMAS\b", r"modified ashworth", r"\bashworth scale"), False),
    Instrument("WeeFIM", (r"\bWee[\s-]?FIM\b", r"functional independence measure for children")),
    Instrument("QUEST", (r"\bQUEST\b", r"quality of upper extremity skills")),
    Instrument("PDMS-FM", (r"\bPDMS[\s-]*(?:2[\s-]*)?FM\b", r"peabody developmental motor scales?"
                           r"[^.;]{0,20}fine motor")),
    Instrument("CFA", (r"\bCFA\b", r"comprehensive function(?:al)? assessment")),
    Instrument("ADL", (r"\bADL\b", r"activities of daily living")),
    Instrument("FMFS", (r"\bFMFS\b", r"fine motor function scale")),
    Instrument("SDSC", (r"\bSDSC\b", r"sleep disturbance scale"), False),
)
_BY_NAME = {i.name.lower(): i for i in INSTRUMENTS}


def normalise_instrument(text: str | None) -> str | None:
    """The instrument a phrase names, or None.

    >>> normalise_instrument("Change in Gross Motor Function Measure-66 score")
    'GMFM-66'
    >>> normalise_instrument("GMFM total"), normalise_instrument("Modified Ashworth Scale")
    ('GMFM (unspecified)', 'MAS')
    """
    if not text:
        return None
    for instrument in INSTRUMENTS:
        if any(re.search(p, text, re.IGNORECASE) for p in instrument.patterns):
            return instrument.name
    return None


def instrument_matches(query: str, instrument: str | None) -> bool:
    """Does ``instrument`` answer ``query``? A name matches itself; a family name ("GMFM")
    matches its total scores (GMFM-66, GMFM-88, GMFM (unspecified)), never its dimensions
    (GMFM-88-A, "GMFM dimension: sitting") or subscales ("PEDI mobility").

    >>> [instrument_matches("GMFM", i) for i in ("GMFM-66", "GMFM (unspecified)", "GMFM-88-A")]
    [True, True, False]
    """
    if instrument is None:
        return False
    query, name = query.strip().lower(), instrument.lower()
    if name == query:
        return True
    rest = name[len(query):] if name.startswith(query) else None
    return rest is not None and bool(re.fullmatch(r"-\d+| \(unspecified\)", rest))


def higher_is_better(instrument: str | None) -> bool:
    """Whether a higher score of this instrument (or its family) is better; True if unknown."""
    if instrument is None:
        return True
    known = _BY_NAME.get(instrument.lower()) or next(
        (i for i in INSTRUMENTS if instrument.lower().startswith(i.name.split(" ")[0].lower())),
        None)
    return known.higher_is_better if known else True


# -- timepoints -----------------------------------------------------------------------------

_UNIT_MONTHS = {"day": 1 / 30.4375, "week": 7 / 30.4375, "month": 1.0, "mo": 1.0, "year": 12.0}
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "eighteen": 18,
          "twenty-four": 24}
_NUM = r"\d+(?:\.\d+)?"
_UNIT = r"(day|week|month|mo|year)s?\b"
_LIST = rf"{_NUM}(?:\s*(?:,|and|&|or|/)\s*{_NUM})*"


def _months(value: float, unit: str) -> float:
    return round(value * _UNIT_MONTHS[unit.lower()], 2)


def parse_timeframe(text: str | None) -> list[float]:
    """The timepoints a free-text time frame names, in months (0 = baseline), sorted.

    >>> parse_timeframe("Baseline, 6 and 12 months post-infusion")
    [0.0, 6.0, 12.0]
    >>> parse_timeframe("Week 24"), parse_timeframe("one year")
    ([5.52], [12.0])
    """
    if not text:
        return []
    lowered = text.lower()
    for word, number in _WORDS.items():
        lowered = re.sub(rf"\b{word}\b", str(number), lowered)
    found: set[float] = set()
    if re.search(r"\bbaseline\b|\bpre[\s-]?(?:treatment|infusion|transplant)", lowered):
        found.add(0.0)
    for numbers, unit in re.findall(rf"({_LIST})\s*-?\s*{_UNIT}", lowered):
        found.update(_months(float(n), unit) for n in re.findall(_NUM, numbers))
    for unit, numbers in re.findall(rf"\b{_UNIT}\s*({_LIST})", lowered):
        found.update(_months(float(n), unit) for n in re.findall(_NUM, numbers))
    return sorted(found)


def _timepoint(texts: Iterable[str | None], change: bool) -> float | None:
    """The one timepoint a measure reports: the class title's, else the time frame's single
    follow-up point (a change measure's last point)."""
    for text in texts:
        points = parse_timeframe(text)
        follow_up = [p for p in points if p > 0]
        if len(points) == 1:
            return points[0]
        if follow_up and (change or len(follow_up) == 1):
            return follow_up[-1]
    return None


# -- curated seed ---------------------------------------------------------------------------

def curated_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The seed's ``outcomes.json`` records as outcome rows (provenance ``curated``).

    :raises ValueError: a record lacks ``trial``, ``arm``, ``quantity``, ``statistic`` or a
        numeric ``value``, or names an unknown quantity / statistic (the message names it).
    """
    rows = []
    for i, record in enumerate(records):
        missing = [f for f in ("trial", "work_id", "arm", "arm_role", "quantity", "statistic")
                   if not record.get(f)]
        if missing or not isinstance(record.get("value"), (int, float)):
            raise ValueError(f"outcome record {i} ({record.get('trial')!r}, {record.get('arm')!r})"
                             f" lacks {', '.join(missing) or 'a numeric value'}")
        if record["quantity"] not in QUANTITIES or record["statistic"] not in STATISTICS:
            raise ValueError(f"outcome record {i} ({record['trial']!r}): unknown quantity or "
                             f"statistic {record['quantity']!r}/{record['statistic']!r}")
        rows.append({
            "trial_ref": record["trial"], "work_ref": record["work_id"], "arm": record["arm"],
            "arm_role": record["arm_role"], "n": record.get("n"),
            "instrument": record.get("instrument"),
            "instrument_as_stated": record.get("instrument_as_stated"),
            "timepoint_months": record.get("timepoint_months"), "timepoint_as_stated": None,
            "quantity": record["quantity"], "statistic": record["statistic"],
            "value": float(record["value"]), "value_as_stated": None, "provenance": "curated",
            "source_url": record.get("source"), "location": record.get("where"),
            "note": record.get("note"), "reported_in": record.get("reported_in")})
    return rows


def read_seed_outcomes(folder: Any = None) -> list[dict[str, Any]]:
    """The embedded seed's ``outcomes.json`` as curated outcome rows.

    :raises ParseError: the file is not a JSON array of valid outcome records.
    """
    import json

    from ..errors import ParseError
    from ..ingest.seed import seed_files

    try:
        records = json.loads((folder or seed_files()).joinpath("outcomes.json")
                             .read_text(encoding="utf-8"))
        if not isinstance(records, list):
            raise ValueError("not a JSON array")
        return curated_rows(records)
    except ValueError as exc:
        raise ParseError(f"seed outcomes.json: {exc}") from exc


# -- ClinicalTrials.gov posted results ------------------------------------------------------

def registry_rows(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Posted-results numbers (``kb.scrapers.ctgov.parse_results`` output) as outcome rows:
    instrument from the measure title, timepoint in months from the class title or time frame
    (kept as stated), provenance ``registry``. Numbers whose instrument kb does not know keep
    ``instrument`` empty and their title as stated."""
    rows = []
    for result in results:
        change = result.get("quantity") == "change_from_baseline"
        title = result.get("instrument_as_stated")
        timepoint = result.get("timepoint_months")
        if timepoint is None:
            timepoint = _timepoint((result.get("class_title"), result.get("timepoint_as_stated")),
                                   change)
        rows.append({
            "trial_ref": result["registry_id"], "work_ref": None, "arm": result["arm"],
            "arm_role": result["arm_role"], "n": result.get("n"),
            "instrument": normalise_instrument(title), "instrument_as_stated": title,
            "timepoint_months": timepoint,
            "timepoint_as_stated": result.get("class_title") or result.get("timepoint_as_stated"),
            "quantity": result["quantity"], "statistic": result["statistic"],
            "value": result["value"], "value_as_stated": result.get("value_as_stated"),
            "provenance": "registry", "source_url": result.get("source_url"),
            "location": result.get("location"), "note": result.get("note"), "reported_in": None})
    return rows


# -- rules over abstracts -------------------------------------------------------------------

_DASH = r"(?:,|;|to|-|–|—)"
_SIGNED = r"[-−–]?\d+(?:\.\d+)?"
_CI = (rf"\(?\s*95\s*%\s*(?:CI|confidence interval)\s*[:=,]?\s*\[?\(?\s*({_SIGNED})\s*{_DASH}"
       rf"\s*({_SIGNED})")
_RULES: tuple[tuple[str, str], ...] = (
    ("adjusted_difference", rf"(?:β|beta|adjusted (?:mean )?difference)\s*[:=]?\s*({_SIGNED})"
                            rf"\s*[;,]?\s*{_CI}"),
    ("between_group_difference", rf"(?:mean difference|\bMD)\s*[:=]?\s*({_SIGNED})\s*[;,]?"
                                 rf"\s*{_CI}"),
    ("smd", rf"(?:standardi[sz]ed mean difference|\bSMD)\s*[:=]?\s*({_SIGNED})\s*[;,]?\s*{_CI}"),
    ("cohens_d", rf"cohen['’]?s\s*d\s*(?:[:=]|of|was)?\s*({_SIGNED})"),
    ("pm", rf"({_SIGNED})\s*±\s*(\d+(?:\.\d+)?)"),
    ("p_value", r"\bp\s*([=<≤])\s*(0?\.\d+)"),
)
#: Marks of a stated effect (lower case): the rules read only a sentence holding one.
_MARKS = ("±", "95%", "95 %", "cohen", "p =", "p=", "p <", "p<", "p ≤", "smd", "md ", "β", "beta",
          "difference")
_AT_TIME = re.compile(rf"(?:at|after|over|within)\s+((?:{_NUM}|one|two|six|twelve)\s*-?\s*{_UNIT})",
                      re.IGNORECASE)


def _marked(text: str) -> bool:
    lowered = text.lower()
    return any(mark in lowered for mark in _MARKS)


def _number(text: str) -> float:
    return float(text.replace("−", "-").replace("–", "-"))


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=\.)\s+(?=[A-Z(])", text) if s.strip()]


def extract_effects(text: str | None) -> list[dict[str, Any]]:
    """Reported effects an abstract states, as partial outcome rows (``quantity``,
    ``statistic``, ``value``, ``value_as_stated``; ``instrument`` and ``timepoint_months`` when the
    sentence names them; ``location`` the sentence). "±" is read as a mean ± SD (noted).

    >>> [(r["quantity"], r["statistic"], r["value"]) for r in
    ...  extract_effects("GMFM-66 improved (β 8.07; 95%CI 1.62, 14.52), Cohen's d 0.92.")]
    [('adjusted_difference', 'mean', 8.07), ('adjusted_difference', 'ci_low', 1.62), \
('adjusted_difference', 'ci_high', 14.52), ('cohens_d', 'value', 0.92)]
    """
    rows: list[dict[str, Any]] = []
    if not text or not _marked(text):
        return rows
    for sentence in _sentences(text):
        if not _marked(sentence):
            continue
        taken: list[tuple[int, int]] = []
        for kind, pattern in _RULES:
            for match in re.finditer(pattern, sentence, re.IGNORECASE):
                if any(s <= match.start() < e for s, e in taken):
                    continue
                taken.append(match.span())
                before = sentence[:match.start()]
                base = {"instrument": (normalise_instrument(before)
                                       or normalise_instrument(sentence)),
                        "timepoint_months": _timepoint(
                            (m.group(1) for m in _AT_TIME.finditer(sentence)), True),
                        "value_as_stated": match.group(0).strip(), "location": sentence.strip(),
                        "note": None}
                rows.extend(dict(base, **part) for part in _parts(kind, match, sentence))
    return rows


def rule_rows(text: str | None, trial_ref: str, source_url: str) -> list[dict[str, Any]]:
    """:func:`extract_effects` as complete outcome rows (provenance ``rule``): a between-group
    number is "intervention vs control", a "±" pair an arm the abstract does not name."""
    rows = []
    for effect in extract_effects(text):
        between = effect["quantity"] not in ("final", "change_from_baseline")
        rows.append(dict(effect, trial_ref=trial_ref, work_ref=None,
                         arm="intervention vs control" if between else "arm not named",
                         arm_role="intervention", n=None, instrument_as_stated=None,
                         timepoint_as_stated=None, provenance="rule", source_url=source_url,
                         reported_in=None))
    return rows


def _parts(kind: str, match: re.Match[str], sentence: str) -> list[dict[str, Any]]:
    groups = [_number(g) for g in match.groups() if g and re.match(r"[-−–\d.]", g)]
    if kind == "cohens_d":
        return [{"quantity": kind, "statistic": "value", "value": groups[0]}]
    if kind == "p_value":
        note = None if match.group(1) == "=" else f"p {match.group(1)} {match.group(2)} as stated"
        return [{"quantity": kind, "statistic": "value", "value": _number(match.group(2)),
                 "note": note}]
    if kind == "pm":
        quantity = "change_from_baseline" if re.search(
            r"chang|improv|increas|gain", sentence, re.IGNORECASE) else "final"
        return [{"quantity": quantity, "statistic": "mean", "value": groups[0]},
                {"quantity": quantity, "statistic": "sd", "value": groups[1],
                 "note": "read \"±\" as SD (the abstract does not say SD or SE)"}]
    return [{"quantity": kind, "statistic": stat, "value": value}
            for stat, value in zip(("mean", "ci_low", "ci_high"), groups)]


# -- reading the KB -------------------------------------------------------------------------

def select_outcomes(conn: Any, *, query: str | None = None, doi: str | None = None,
                    trial: str | None = None, instrument: str | None = None
                    ) -> list[dict[str, Any]]:
    """The trials (with their facts) and outcome rows ``kb outcomes`` shows, in trial order.

    ``doi``: the trials a work reports, or — for a pooled study — the trials of the works it
    pools (typed ``pools`` lineage), plus the work's own numbers. ``trial``: a registry id,
    report DOI or label. ``instrument``: a name or family (:func:`instrument_matches`).
    ``query``: every word must appear in the trial's label, cell type, route, or the row's
    instrument or arm. Reads only.

    :raises InputError: the DOI or trial is not in the KB.
    """
    from ..errors import InputError
    from ..store.outcomes import trial_for_ref
    from .meta import trial_facts

    trial_ids: list[int] | None = None
    via: dict[int, str] = {}
    work_ids: list[int] = []
    if doi:
        work = conn.execute("SELECT id FROM works WHERE doi = ?", (doi.strip().lower(),)).fetchone()
        if work is None:
            raise InputError(f"no work with DOI {doi} in the KB")
        work_ids = [work[0]]
        trial_ids = [r[0] for r in conn.execute(
            "SELECT trial_id FROM trial_reports WHERE work_id = ? AND role != 'pooled-analysis'",
            (work[0],))]
        for trial_id, pooled in conn.execute(
                "SELECT r.trial_id, wl.label FROM lineage l JOIN trial_reports r ON r.work_id = "
                "l.to_work_id JOIN work_labels wl ON wl.work_id = l.to_work_id WHERE "
                "l.from_work_id = ? AND l.relation = 'pools' ORDER BY wl.label", (work[0],)):
            trial_ids.append(trial_id)
            via[trial_id] = f"pooled by {doi} (lineage 'pools' edge to {pooled})"
    if trial:
        found = trial_for_ref(conn, trial.strip()) or next(
            (r[0] for r in conn.execute("SELECT id FROM trials WHERE lower(label) = lower(?) OR "
                                        "CAST(id AS TEXT) = ?", (trial.strip(), trial.strip()))),
            None)
        if found is None:
            raise InputError(f"no trial {trial!r} in the KB (give a registry id, a report DOI "
                             "or a label such as 'Amanat 2021')")
        trial_ids = [found] if trial_ids is None else [t for t in trial_ids if t == found]
    rows = [dict(r) for r in conn.execute(
        "SELECT o.*, w.doi AS report_doi FROM outcomes o LEFT JOIN works w ON w.id = o.work_id "
        "ORDER BY o.id")]
    rows = [r for r in rows if (trial_ids is None or r["trial_id"] in trial_ids
                                or (r["work_id"] in work_ids and r["trial_id"] is None))]
    if instrument:
        rows = [r for r in rows if instrument_matches(instrument, r["instrument"])]
    facts = trial_facts(conn, sorted({r["trial_id"] for r in rows if r["trial_id"]}))
    if query:
        words = query.lower().split()
        def text(row: dict[str, Any]) -> str:
            info = facts.get(row["trial_id"]) or {}
            return " ".join(str(v) for v in (
                info.get("label"), *info.get("cell_product", []), *info.get("route", []),
                row["instrument"], row["arm"], row["trial_ref"])).lower()
        rows = [r for r in rows if all(w in text(r) for w in words)]
    order = {t: i for i, t in enumerate(trial_ids or [])}
    out = []
    for row in rows:
        info = facts.get(row["trial_id"]) or {}
        label = info.get("label") or row["trial_ref"]
        row.update(label=label, caption=info.get("caption") or label,
                   cell_product=info.get("cell_product", []), route=info.get("route", []),
                   donor=info.get("donor", []), trial_n=info.get("n"),
                   via=via.get(row["trial_id"]))
        out.append(row)
    return sorted(out, key=lambda r: (order.get(r["trial_id"], len(order)), r["label"] or "",
                                      r["instrument"] or "", r["arm_role"] != "intervention",
                                      " vs " in r["arm"], r["arm"],
                                      r["timepoint_months"] if r["timepoint_months"] is not None
                                      else -99, r["id"]))
