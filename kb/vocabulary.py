"""kb's controlled vocabulary of trial facts: cell product, donor, route, control and blinding
(and the numbers and age ranges pages state).

The synonyms are data: ``vocabulary.csv`` beside this module, one row per synonym —
``kind,normalised,term,pattern``. ``term`` is a text as a page states it that means
``normalised`` (a test checks every row); ``pattern``, when given, is the regular expression
(case-insensitive) that finds the synonym and its variants in running text; without one the term
itself is matched as a whole phrase, case-insensitively, with "-", " " or nothing between its
words and an optional plural "s". A curator extends the vocabulary by adding rows.

Products (source × kind: UCB-MNC, UC-MSC, BM-MNC, NSC/NPC, …), donors and routes are lists in
order of appearance (a trial can have several); control and blinding are the first value whose
rows match, in file order (their rows are written most specific first). Pure functions, no I/O
beyond reading the packaged file once.

>>> cell_products("allogeneic umbilical cord blood; human umbilical cord tissue-derived "
...               "mesenchymal stromal cells")
['UCB', 'UC-MSC']
>>> routes("intrathecal + intravenous"), donors("12/12 HLA-matched sibling cord blood")
(['intrathecal', 'intravenous'], ['sibling'])
>>> control("placebo UCB + placebo EPO + rehabilitation"), blinding("observer-blinded (open-label)")
('placebo', 'single')
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

__all__ = ["KINDS", "LIST_KINDS", "NOT_REPORTED", "OTHER", "Term", "terms", "values", "lexicon",
           "screening_pattern", "spans", "Mention", "mentions", "normalise", "cell_products",
           "donors", "routes", "control", "blinding", "broader_donor", "normalise_trial",
           "ROUTE_SHORT", "trial_caption", "NUMBER", "NUMBER_WORD", "words_to_int",
           "canonical_age_range"]

#: kinds of fact the vocabulary normalises.
KINDS = ("product", "donor", "route", "control", "blinding")
#: kinds whose normalised value is a list (a trial can have several).
LIST_KINDS = ("product", "donor", "route")
#: the normalised value of a fact no source states, and of a stated text the vocabulary lacks.
NOT_REPORTED, OTHER = "not reported", "other"
#: a narrower donor -> the donor it is a kind of.
_BROADER_DONOR = {"sibling": "allogeneic"}
#: route abbreviations for short labels ("Amanat 2021 · UC-MSC · IT · n=72").
ROUTE_SHORT = {"intrathecal": "IT", "intravenous": "IV", "intra-arterial": "IA",
               "intracerebroventricular": "ICV", "intracerebral": "IC", "intranasal": "IN",
               "intramuscular": "IM"}
_I = re.IGNORECASE


class Term(NamedTuple):
    """One row of ``vocabulary.csv``."""

    kind: str
    normalised: str
    term: str
    pattern: str

    @property
    def regex(self) -> str:
        """The row's pattern, or its term as a whole phrase with flexible separators."""
        if self.pattern:
            return self.pattern
        words = [re.escape(w) for w in re.split(r"[-\s]+", self.term.strip()) if w]
        tail = "s?" if self.term.strip()[-1:].isalnum() else ""
        return r"(?<!\w)" + r"[-\s]?".join(words) + tail + r"(?!\w)"


@cache
def terms() -> tuple[Term, ...]:
    """Every row of the packaged ``vocabulary.csv``, in file order.

    :raises ValueError: a row names an unknown kind, lacks a term or value, repeats a term of
        its kind, or its pattern is not a valid regular expression.
    """
    text = resources.files("kb").joinpath("vocabulary.csv").read_text(encoding="utf-8")
    rows: list[Term] = []
    for number, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        term = Term(*(str(row.get(f) or "").strip() for f in Term._fields))
        if term.kind not in KINDS or not term.normalised or not term.term:
            raise ValueError(f"vocabulary.csv line {number}: needs a kind ({', '.join(KINDS)}), "
                             f"a normalised value and a term: {row!r}")
        if any((t.kind, t.term) == (term.kind, term.term) for t in rows):
            raise ValueError(f"vocabulary.csv line {number}: {term.kind} term {term.term!r} "
                             "is listed twice")
        try:
            re.compile(term.regex, _I)
        except re.error as exc:
            raise ValueError(f"vocabulary.csv line {number}: bad pattern: {exc}") from exc
        rows.append(term)
    return tuple(rows)


def values(kind: str) -> list[str]:
    """The normalised values of ``kind``, in file order.

    >>> values("route")[:3]
    ['intrathecal', 'intravenous', 'intra-arterial']
    """
    return list(dict.fromkeys(t.normalised for t in terms() if t.kind == kind))


@cache
def lexicon(kind: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """``(normalised, pattern)`` per value of ``kind``: its rows' patterns joined, in order."""
    joined: dict[str, list[str]] = {}
    for term in terms():
        if term.kind == kind:
            joined.setdefault(term.normalised, []).append(term.regex)
    return tuple((name, re.compile("|".join(patterns), _I)) for name, patterns in joined.items())


def screening_pattern(kind: str) -> str:
    """One regular expression (case-insensitive) that matches any synonym of ``kind``: what a
    prefilter can run before the full lexicon."""
    return "|".join(f"(?:{t.regex})" for t in terms() if t.kind == kind)


class Mention(NamedTuple):
    """A normalised value and the words of a text that state it."""

    value: str
    stated: str


def _hits(text: str, patterns: Iterable[tuple[str, re.Pattern[str]]]
          ) -> list[tuple[int, int, str]]:
    """Non-overlapping hits of named patterns, longest first, as (start, end, name) in text
    order."""
    hits = sorted(((m.start(), m.end(), name) for name, pattern in patterns
                   for m in pattern.finditer(text)), key=lambda h: (h[0] - h[1], h[0]))
    kept: list[tuple[int, int, str]] = []
    for start, end, name in hits:
        if not any(start < e and s < end for s, e, _ in kept):
            kept.append((start, end, name))
    return sorted(kept)


def spans(text: str, patterns: Iterable[tuple[str, re.Pattern[str]]]) -> list[tuple[int, str]]:
    """Non-overlapping hits of named patterns (a :func:`lexicon`), longest first, as
    (position, name) in text order.

    >>> spans("cord blood mononuclear cells", lexicon("product"))
    [(0, 'UCB-MNC')]
    """
    return [(start, name) for start, _, name in _hits(text, patterns)]


def _generic(name: str, names: Iterable[str]) -> bool:
    """A product named as a part of another named product ("UCB" beside "UCB-MNC", "MSC"
    beside "UC-MSC", "BM" beside "BM-MNC") is the generic name of it."""
    return any(name != other and name in other.split("-") for other in names)


_SOURCE_OF = re.compile(r"(?:derived|differentiated|induced|generated|obtained) from "
                        r"(?:(?:human|autologous|allogeneic|the|patients'?) )*$", _I)
_INFUSION = re.compile(r"\b(?:infusions?|transfusions?|infused)\b", _I)
_Found = list[tuple[str, int, int]]


def _first_each(hits: Iterable[tuple[int, int, str]]) -> _Found:
    """(name, start, end) of each name's first hit, in text order."""
    first: dict[str, tuple[str, int, int]] = {}
    for start, end, name in hits:
        first.setdefault(name, (name, start, end))
    return list(first.values())


def _products(text: str) -> _Found:
    found = _first_each(h for h in _hits(text, lexicon("product"))
                        if not _SOURCE_OF.search(text[max(0, h[0] - 40):h[0]]))
    return [f for f in found if not _generic(f[0], [g[0] for g in found])]


def _routes(text: str) -> _Found:
    found = _first_each(_hits(text, lexicon("route")))
    infusion = None if found else _INFUSION.search(text)
    return [("intravenous", infusion.start(), infusion.end())] if infusion else found


def _donors(text: str) -> _Found:
    found = [(name, m.start(), m.end()) for name, pattern in lexicon("donor")
             for m in [pattern.search(text)] if m]
    return [f for f in found if not any(_BROADER_DONOR.get(g[0]) == f[0] for g in found)]


def _first(kind: str, text: str) -> _Found:
    return next(([(name, m.start(), m.end())] for name, pattern in lexicon(kind)
                 for m in [pattern.search(text)] if m), [])


def _found(kind: str, text: str) -> _Found:
    """(value, start, end) of each value of ``kind`` in ``text``: what :func:`normalise` gives,
    each with the span of its first mention."""
    if kind not in KINDS:
        raise ValueError(f"unknown vocabulary kind {kind!r} (one of {', '.join(KINDS)})")
    finder = {"product": _products, "donor": _donors, "route": _routes}.get(kind)
    return finder(text) if finder else _first(kind, text)


_NEXT_WORD = re.compile(r"\W{0,3}\w+")


def _stated(kind: str, value: str, text: str, start: int, end: int) -> str:
    """The words of ``text`` that state ``value``: its span widened to whole words and, when
    the pattern needs what follows ("IV" before "infusion"), up to three words more; the value
    itself when those do not read as it alone."""
    while 0 < start < len(text) and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    for _ in range(4):
        while 0 < end < len(text) and text[end - 1].isalnum() and text[end].isalnum():
            end += 1
        words = text[start:end].strip().rstrip("([{ ")
        if [f[0] for f in _found(kind, words)] == [value]:
            return words
        following = _NEXT_WORD.match(text, end)
        if following is None:
            break
        end = following.end()
    return value


def mentions(kind: str, text: str | None) -> list[Mention]:
    """The values :func:`normalise` finds in ``text``, each with the words of its first mention
    that state it.

    >>> mentions("product", "children received umbilical cord blood mononuclear cells")
    [Mention(value='UCB-MNC', stated='umbilical cord blood mononuclear cells')]
    >>> [m.stated for m in mentions("route", "given by lumbar puncture and intravenously")]
    ['lumbar puncture', 'intravenously']
    """
    text = text or ""
    return [Mention(value, _stated(kind, value, text, start, end))
            for value, start, end in _found(kind, text)]


def cell_products(text: str | None) -> list[str]:
    """Cell products named in ``text``, in order of appearance; a generic name (cord blood,
    MSC, bone marrow) is dropped when a specific product of it is named too, and so is the
    source of a derived product ("NSC-like cells derived from bone marrow MSCs").

    >>> cell_products("hUC-MSC vs cord blood mononuclear cells (UCB-MNC) and cord blood")
    ['UC-MSC', 'UCB-MNC']
    >>> cell_products("autologous UCB or BMMNC")
    ['UCB', 'BM-MNC']
    >>> cell_products("neural stem cell-like cells derived from autologous bone marrow MSCs")
    ['NSC/NPC']
    """
    return [f[0] for f in _products(text or "")]


def routes(text: str | None) -> list[str]:
    """Routes of administration named in ``text``; a bare "infusion" of cells means intravenous
    when no other route is named.

    >>> routes("cells were given by lumbar puncture and intravenously")
    ['intrathecal', 'intravenous']
    >>> routes("Sibling cord blood infusion is safe")
    ['intravenous']
    """
    return [f[0] for f in _routes(text or "")]


def donors(text: str | None) -> list[str]:
    """Donors ``text`` states: autologous, allogeneic or sibling (a sibling donor is
    allogeneic; ``allogeneic`` is dropped beside it).

    >>> donors("Autologous bone marrow"), donors("allogeneic HLA-matched sibling cord blood")
    (['autologous'], ['sibling'])
    """
    return [f[0] for f in _donors(text or "")]


def broader_donor(donor: str) -> str:
    """The donor ``donor`` is a kind of (``sibling`` -> ``allogeneic``), else itself."""
    return _BROADER_DONOR.get(donor, donor)


def control(text: str | None) -> str | None:
    """The comparator: sham, placebo, rehabilitation (usual care), none (single arm),
    no-treatment, active (another dose or regimen) or unspecified.

    >>> control("a randomized double-blind sham-controlled clinical trial")
    'sham'
    >>> control("an open label uncontrolled clinical trial")
    'none'
    """
    return next((f[0] for f in _first("control", text or "")), None)


def blinding(text: str | None) -> str | None:
    """The strongest masking ``text`` states.

    >>> blinding("A Double-blind, Randomized, Placebo-Controlled Trial")
    'double-blind'
    >>> blinding("quadruple (participant, care provider, investigator, outcomes assessor)")
    'quadruple'
    """
    return next((f[0] for f in _first("blinding", text or "")), None)


def normalise(kind: str, text: str | None) -> list[str]:
    """``text`` as the normalised values of ``kind`` (a list for every kind; empty when the
    vocabulary finds nothing).

    >>> normalise("product", "sibling CB"), normalise("control", "Bobath therapy")
    (['UCB'], ['rehabilitation'])
    """
    return [f[0] for f in _found(kind, text or "")]


def _as_text(value: Any) -> str | None:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    return str(value)


def normalise_trial(facts: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's normalised facts and the texts they were read from, from its facts as stated
    (``cell_type``, ``cell_type_long``, ``origin``, ``route``, ``control``, ``blinding``):
    ``cell_product``, ``donor``, ``route`` (lists), ``control``, ``blinding`` (one value or
    None), each with ``…_as_stated``.

    A generic product (UCB) is made specific by the longer description when that names a
    product of it; the donor is read from the origin and the cell-type texts. A fact no source
    states is ``not reported``; a stated text outside the vocabulary is ``other``.

    >>> facts = normalise_trial({"cell_type": "autologous UCB", "route": "intravenous (infusion)",
    ...     "cell_type_long": "autologous umbilical cord blood (total nucleated cells)"})
    >>> facts["cell_product"], facts["donor"], facts["route"], facts["control"]
    (['UCB-TNC'], ['autologous'], ['intravenous'], None)
    >>> facts["cell_product_as_stated"], facts["route_as_stated"], facts["donor_as_stated"]
    ('autologous UCB', 'intravenous (infusion)', None)
    """
    stated = {k: _as_text(facts.get(k)) for k in ("cell_type", "cell_type_long", "origin",
                                                     "route", "control", "blinding")}
    products = cell_products(stated["cell_type"]) or cell_products(stated["cell_type_long"])
    detail = cell_products(stated["cell_type_long"])
    products = list(dict.fromkeys(
        p for name in products
        for p in ([d for d in detail if _generic(name, [d])] or [name])))
    donor = donors(" ".join(t for t in (stated["origin"], stated["cell_type"],
                                          stated["cell_type_long"]) if t))

    def listed(found: list[str], text: str | None) -> list[str]:
        return found or ([OTHER] if text else [NOT_REPORTED])

    return {
        "cell_product": listed(products, stated["cell_type"] or stated["cell_type_long"]),
        "cell_product_as_stated": stated["cell_type"] or stated["cell_type_long"],
        "donor": listed(donor, stated["origin"]),
        "donor_as_stated": stated["origin"],
        "route": listed(routes(stated["route"]), stated["route"]),
        "route_as_stated": stated["route"],
        "control": control(stated["control"]) or (OTHER if stated["control"] else None),
        "control_as_stated": stated["control"],
        "blinding": blinding(stated["blinding"]) or (OTHER if stated["blinding"] else None),
        "blinding_as_stated": stated["blinding"],
    }


def trial_caption(label: str | None, products: Iterable[str], route_names: Iterable[str],
                  n: int | None) -> str:
    """A trial's short caption: label, products, route abbreviations and participants.

    >>> trial_caption("Amanat 2021", ["UC-MSC"], ["intrathecal"], 72)
    'Amanat 2021 · UC-MSC · IT · n=72'
    >>> trial_caption("Sun 2017", ["UCB"], ["not reported"], None)
    'Sun 2017 · UCB'
    """
    parts = [label or "trial",
             "+".join(p for p in products if p not in (NOT_REPORTED, OTHER)),
             "+".join(ROUTE_SHORT.get(r, r) for r in route_names if r not in (NOT_REPORTED,
                                                                                OTHER)),
             f"n={n}" if n else ""]
    return " · ".join(p for p in parts if p)


# -- numbers and ages -----------------------------------------------------------------------------

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate(
    "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
#: A number written in words (one to one hundred and ...).
NUMBER_WORD = (r"(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
                r"(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?"
                r"|one hundred(?: and [a-z-]+)?|zero|one|two|three|"
                r"four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
                r"sixteen|seventeen|eighteen|nineteen)")
#: A number in digits or words, as one regex group.
NUMBER = rf"(\d{{1,4}}|{NUMBER_WORD})"


def words_to_int(text: str) -> int | None:
    """``"72"``, ``"seventy-two"`` or ``"Forty"`` as an int.

    >>> words_to_int("Seventy-two"), words_to_int("105"), words_to_int("many")
    (72, 105, None)
    """
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    if text.startswith("one hundred"):
        rest = text[len("one hundred"):].replace(" and ", " ").strip()
        return 100 + (words_to_int(rest) or 0) if rest else 100
    parts = re.split(r"[- ]", text)
    total = 0
    for part in parts:
        if part in _TENS:
            total += _TENS[part]
        elif part in _UNITS:
            total += _UNITS[part]
        else:
            return None
    return total


_UNIT = r"(years?|yrs?|months?|mo)"
_AGE_PATTERNS = [
    rf"aged?(?: between| from)? {NUMBER}(?:\.\d+)?(?: {_UNIT})?\s*(?:-|–|to|and)\s*"
    rf"{NUMBER}(?:\.\d+)? {_UNIT}",
    rf"between {NUMBER} and {NUMBER} {_UNIT} (?:of age|old)",
    rf"{NUMBER}\s*(?:-|–|to)\s*{NUMBER}[- ]{_UNIT}[- ]old",
    rf"{NUMBER}\s*(?:-|–|to)\s*{NUMBER} {_UNIT} of age",
    rf"(?:children|patients|participants)(?: \w+){{0,4}} "
    rf"\({NUMBER}\s*(?:-|–|to)\s*{NUMBER} {_UNIT}\)",
    rf"\bage(?: range)?[,:]? (?:from )?{NUMBER}\s*(?:-|–|to)\s*{NUMBER} {_UNIT}",
]
_AGE_RES = [re.compile(p, _I) for p in _AGE_PATTERNS]


def _unit(word: str) -> str:
    return "months" if word.lower().startswith("mo") else "years"


def canonical_age_range(text: str) -> str | None:
    """An age range normalised to ``"4-14 years"`` (the first one ``text`` states).

    >>> canonical_age_range("children aged 4 to 14 years with spastic CP")
    '4-14 years'
    >>> canonical_age_range("24-60 months")
    '24-60 months'
    >>> canonical_age_range("6 months-20 years")
    '6 months-20 years'
    """
    text = text or ""
    mixed = re.search(rf"{NUMBER} {_UNIT}\s*(?:-|–|to)\s*{NUMBER} {_UNIT}", text, _I)
    if mixed and _unit(mixed.group(2)) != _unit(mixed.group(4)):
        return (f"{words_to_int(mixed.group(1))} {_unit(mixed.group(2))}-"
                f"{words_to_int(mixed.group(3))} {_unit(mixed.group(4))}")
    for pattern in _AGE_RES:
        match = pattern.search(text)
        if match:
            groups = [g for g in match.groups() if g]
            numbers = [n for g in groups if (n := words_to_int(g)) is not None]
            units = [g for g in groups if words_to_int(g) is None]
            if len(numbers) >= 2 and units and numbers[0] < numbers[1]:
                return f"{numbers[0]}-{numbers[1]} {_unit(units[-1])}"
    bare = re.match(rf"^\s*{NUMBER}\s*(?:-|–)\s*{NUMBER} {_UNIT}", text, _I)
    if bare:
        return f"{words_to_int(bare.group(1))}-{words_to_int(bare.group(2))} {_unit(bare.group(3))}"
    return None
