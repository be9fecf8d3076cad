"""Screening before the detailed rules: which of many regular expressions can match a text, in
one pass over it.

Each pattern is taken apart by Python's own regular-expression parser into *factors*: literal
strings one of which every match of the pattern contains (``cord[- ]blood[- ](?:derived
)?mononuclear cells?`` -> ``mononuclear cell``; ``\\bh?NSCs?\\b`` -> ``nsc``). One Aho–Corasick
automaton (pyahocorasick) over every pattern's factors scans the case-folded text once; a pattern
none of whose factors occurs cannot match and is not run. A pattern with no factor (all of it
optional or character classes) is always run. The screen never changes a result, it only skips
work: a test compares every annotation with and without it.

The patterns come from the rules themselves at run time (the vocabulary's product rows, the
registry id patterns, the design rules), so a curator's new row is screened with no second copy.

>>> screen = Screen([r"cord[- ]blood", r"\\bNCT\\d{8}\\b", r"\\d+"])
>>> sorted(screen.candidates("Registered as nct01147653")), sorted(screen.candidates("none"))
([1, 2], [2])
>>> screen.search("a cord of blood, no NCT id"), screen.search("cord-blood")
(False, True)
"""
from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from typing import Any
from functools import cache
from re import _constants as sre  # the node names of re's own parser
from re import _parser as sre_parse

import ahocorasick

from .extract import REGISTRIES, _texts, registry_of
from .vocabulary import terms

__all__ = ["Screen", "factors", "fold", "may_report_trial"]

_MAX_EXPANSION = 64  # strings a run of literals and small character classes may expand to
_ZERO_WIDTH = (sre.AT, sre.ASSERT, sre.ASSERT_NOT)
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)


@cache
def _ascii_twins() -> tuple[re.Pattern[str], dict[str, str]]:
    """Non-ASCII characters that ``re.IGNORECASE`` matches to an ASCII letter (the Kelvin sign,
    dotted and dotless i, long s) and the letter each stands for, found by asking ``re`` itself
    over the Basic Multilingual Plane (no other plane has case pairs with ASCII)."""
    found = re.findall("[a-z]", "".join(map(chr, range(128, 0x10000))), re.I)
    twins = {c: next(a for a in string.ascii_lowercase if re.fullmatch(a, c, re.I))
             for c in found}
    return re.compile("[" + "".join(twins) + "]"), twins


def fold(text: str) -> str:
    """``text`` lower-cased so that a substring equal to a lower-case ASCII literal is found
    wherever ``re.IGNORECASE`` would match that literal.

    >>> fold("CD34+ \\u212aCT"), fold("\\u0130ntrathecal")
    ('cd34+ kct', 'intrathecal')
    """
    if text.isascii():
        return text.lower()
    pattern, twins = _ascii_twins()
    return pattern.sub(lambda m: twins[m.group()], text).lower()


def _class_chars(items: list[tuple[Any, Any]]) -> list[str] | None:
    """The characters of a small character class of literals (``[- ]``), else None."""
    if len(items) > 4 or any(op is not sre.LITERAL for op, _ in items):
        return None
    return [chr(value) for _, value in items]


def _better(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """The more selective factor set: longest shortest string, then fewest strings."""
    if a is None or b is None:
        return a if b is None else b
    return max(a, b, key=lambda s: (min(map(len, s)), -len(s)))


def _sequence_factors(items: Iterable[tuple[Any, Any]]) -> frozenset[str] | None:
    best: frozenset[str] | None = None
    run = {""}

    def close() -> None:
        nonlocal best, run
        if run != {""}:
            best = _better(best, frozenset(run))
        run = {""}

    for op, value in items:
        if op is sre.LITERAL and value < 128:
            run = {s + chr(value).lower() for s in run}
        elif op is sre.IN and (chars := _class_chars(value)) and all(c.isascii() for c in chars):
            run = {s + c.lower() for s in run for c in chars}
            if len(run) > _MAX_EXPANSION:
                run = {""}
        elif op in _ZERO_WIDTH:
            continue  # consumes nothing: the literals either side stay adjacent
        else:
            close()
            if op is sre.SUBPATTERN:
                best = _better(best, _sequence_factors(value[-1]))
            elif op is sre.ATOMIC_GROUP:
                best = _better(best, _sequence_factors(value))
            elif op is sre.BRANCH:
                branches = [_sequence_factors(b) for b in value[1]]
                if all(b is not None for b in branches):
                    best = _better(best, frozenset().union(*branches))  # type: ignore[arg-type]
            elif op in _REPEATS and value[0] >= 1:
                best = _better(best, _sequence_factors(value[2]))
    close()
    return best


def factors(pattern: str) -> frozenset[str] | None:
    """Lower-case ASCII strings one of which every match of ``pattern`` contains (matched with
    or without ``re.IGNORECASE``), or None when no such set is known.

    >>> sorted(factors(r"(?:umbilical )?cord[- ]blood"))
    ['cord blood', 'cord-blood']
    >>> sorted(factors(r"\\bIRCT\\d{6,}N\\d+|IRCT\\d{10,}")), factors(r"\\w+")
    (['irct'], None)
    """
    return _sequence_factors(sre_parse.parse(pattern))


class Screen:
    """An Aho–Corasick automaton over the factors of ``patterns``: :meth:`candidates` names the
    patterns (by index) that can match a text."""

    def __init__(self, patterns: Sequence[str], flags: int = re.IGNORECASE) -> None:
        self._patterns = [re.compile(p, flags) for p in patterns]
        owners: dict[str, set[int]] = {}
        always = set()
        for index, pattern in enumerate(patterns):
            found = factors(pattern)
            if not found:
                always.add(index)
            for factor in found or ():
                owners.setdefault(factor, set()).add(index)
        self.always = frozenset(always)
        self._automaton = ahocorasick.Automaton()
        for factor, indexes in owners.items():
            self._automaton.add_word(factor, frozenset(indexes))
        if owners:
            self._automaton.make_automaton()

    def candidates(self, text: str | None) -> set[int]:
        """Indexes of the patterns that may match ``text`` (the others cannot)."""
        found = set(self.always)
        if text and len(self._automaton):
            for _, indexes in self._automaton.iter(fold(text)):
                found.update(indexes)
        return found

    def search(self, text: str | None) -> bool:
        """Whether any of the patterns matches ``text`` (only the candidates are run)."""
        return bool(text) and any(self._patterns[i].search(text)  # type: ignore[arg-type]
                                  for i in self.candidates(text))


@cache
def _trial_screen() -> Screen:
    """Registry ids and cell products: what makes a work a trial (or a pooled report)."""
    return Screen([*REGISTRIES.values(), *(t.regex for t in terms() if t.kind == "product")])


def may_report_trial(title: str | None, abstract: str | None = None, mesh: Iterable[str] = (),
                     keywords: Iterable[str] = (), accessions: Iterable[str] = ()) -> bool:
    """False when :func:`kb.evidence.extract.screen` is sure to find neither a registry id nor
    a cell product in this work (so no rule can make it a trial or a pooled report).

    >>> may_report_trial("Hip surveillance in cerebral palsy"), may_report_trial("hUC-MSC")
    (False, True)
    """
    if any(registry_of(a) for a in accessions):
        return True
    return _trial_screen().search(_texts(title, abstract, mesh, keywords)[1])
