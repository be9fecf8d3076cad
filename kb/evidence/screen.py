"""Screening before the detailed rules: which of many regular expressions can match a text, in
one pass over it.

Each pattern is taken apart by Python's own regular-expression parser into *factors*: literal
strings one of which every match of the pattern contains (``(?:umbilical )?cord[- ]blood`` ->
``cord blood``, ``cord-blood``; ``\\bh?NSCs?\\b`` -> ``nsc``; ``NCT\\d{8}`` -> ``nct0`` …
``nct9``). One Aho–Corasick automaton (pyahocorasick) over every pattern's factors scans the
case-folded text once; a pattern none of whose factors occurs cannot match and is not run. A
pattern with no factor (all of it optional or character classes) is always run. The screen
never changes a result, it only skips work: a test compares every annotation with and without
it.

The patterns come from the rules themselves at run time (the vocabulary's product rows, the
registry id patterns, the design rules), so a curator's new row is screened with no second copy.

>>> screen = Screen([r"cord[- ]blood", r"\\bNCT\\d{8}\\b"])
>>> screen.candidates("Registered as nct01147653"), screen.candidates("none")
({1}, set())
>>> screen.search("a cord of blood, no NCT id"), screen.search("cord-blood")
(False, True)
"""
from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any
# re's own parser and its node names (private modules typeshed does not describe)
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

import ahocorasick

from ..identifiers import REGISTRIES, registry_of
from ..vocabulary import terms
from .extract import _texts

__all__ = ["Screen", "factors", "fold", "may_name_registry_id", "may_name_cell_product",
           "of_the_field", "FIELD_CONDITION"]

_MAX_EXPANSION = 64  # strings a run of literals and small character classes may expand to
_ZERO_WIDTH = (sre.AT, sre.ASSERT, sre.ASSERT_NOT)
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)


@cache
def _ascii_twins() -> tuple[re.Pattern[str], dict[str, str]]:
    """Non-ASCII characters ``re`` matches as ASCII: those ``re.IGNORECASE`` matches to an ASCII
    letter (the Kelvin sign, dotted and dotless i, long s), found by asking ``re`` itself over
    the Basic Multilingual Plane (no other plane has case pairs with ASCII), and the digits
    ``\\d`` matches beside 0-9; with what each letter stands for and one pattern finding them
    all (``re`` itself tests the digits, so they need not be listed)."""
    found = re.findall("[a-z]", "".join(map(chr, range(128, 0x10000))), re.I)
    twins = {c: next(a for a in string.ascii_lowercase if re.fullmatch(a, c, re.I))
             for c in found}
    return re.compile("[" + "".join(twins) + r"]|(?![0-9])\d"), twins


def fold(text: str) -> str:
    """``text`` lower-cased so that a substring equal to a lower-case ASCII literal is found
    wherever ``re.IGNORECASE`` would match that literal (and every ``\\d`` digit is ASCII).

    >>> fold("CD34+ \\u212aCT"), fold("\\u0130ntrathecal"), fold("NCT\\u0660\\u0661")
    ('cd34+ kct', 'intrathecal', 'nct01')
    """
    if text.isascii():
        return text.lower()
    pattern, twins = _ascii_twins()
    if pattern.search(text) is None:  # most non-ASCII text: accents, dashes, symbols
        return text.lower()
    return pattern.sub(lambda m: twins.get(m.group()) or str(int(m.group())), text).lower()


def _class_chars(items: list[tuple[Any, Any]]) -> list[str] | None:
    """The characters of a small character class (``[- ]``, ``\\d``, ``[0-9]``), else None."""
    chars: list[str] = []
    for op, value in items:
        if op is sre.LITERAL:
            chars.append(chr(value))
        elif op is sre.RANGE and value[1] - value[0] < 10:
            chars += map(chr, range(value[0], value[1] + 1))
        elif op is sre.CATEGORY and value is sre.CATEGORY_DIGIT:
            chars += string.digits  # fold() writes every other digit \\d matches in ASCII
        else:
            return None
    return chars if len(chars) <= 10 and all(c.isascii() for c in chars) else None


def _item_chars(op: Any, value: Any) -> list[str] | None:
    """The characters one item matches when it is a literal or a small class, else None."""
    if op is sre.LITERAL:
        return [chr(value)] if value < 128 else None
    return _class_chars(value) if op is sre.IN else None


def _better(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """The more selective factor set: longest shortest string, then fewest strings."""
    if a is None or b is None:
        return a if b is None else b
    return max(a, b, key=lambda s: (min(map(len, s)), -len(s)))


def _strings(items: Iterable[tuple[Any, Any]]) -> set[str] | None:
    """Every string ``items`` match when they are few (literals, small classes, groups and
    alternatives of them, optional parts), else None."""
    out = {""}
    for op, value in items:
        if op in _ZERO_WIDTH:
            continue
        if op in (sre.LITERAL, sre.IN):
            part = set(_item_chars(op, value) or ())
        elif op is sre.SUBPATTERN:
            part = _strings(value[-1]) or set()
        elif op is sre.BRANCH:
            branches = [_strings(b) for b in value[1]]
            known = [b for b in branches if b is not None]
            part = set().union(*known) if len(known) == len(branches) else set()
        elif op in _REPEATS and value[:2] == (0, 1):
            part = {""} | (_strings(value[2]) or set())
            part = part if len(part) > 1 else set()
        else:
            part = set()
        out = {a + b.lower() for a in out for b in part}
        if not out or len(out) > _MAX_EXPANSION:
            return None
    return out


def _suffix_minimal(run: set[str]) -> set[str]:
    """``run`` without the strings another of them ends: a match holding the longer string
    holds the shorter, and so does every extension of both."""
    return {s for s in run if not any(t != s and s.endswith(t) for t in run)}


def _sequence_factors(items: Iterable[tuple[Any, Any]]) -> frozenset[str] | None:
    best: frozenset[str] | None = None
    run = {""}

    def close() -> None:
        nonlocal best, run
        if "" not in run:
            best = _better(best, frozenset(s for s in run
                                           if not any(t != s and t in s for t in run)))
        run = {""}

    def extend(strings: set[str]) -> None:
        nonlocal run
        if len(run) * len(strings) > _MAX_EXPANSION:
            close()
        run = _suffix_minimal({s + t.lower() for s in run for t in strings})

    for op, value in items:
        if op in (sre.LITERAL, sre.IN) and (chars := _item_chars(op, value)):
            extend(set(chars))
        elif (op in _REPEATS and value[0] >= 1 and len(value[2]) == 1
              and (chars := _item_chars(*value[2][0]))):
            extend(set(chars))  # its first repetition
            close()
        elif op in _ZERO_WIDTH:
            continue  # consumes nothing: the literals either side stay adjacent
        elif op in (sre.SUBPATTERN, sre.BRANCH, *_REPEATS) and (
                strings := _strings([(op, value)])) is not None:
            extend(strings)
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
    >>> sorted(factors(r"\\bIRCT\\d{6,}N\\d+|IRCT\\d{10,}"))[:3], factors(r"\\w+")
    (['irct0', 'irct1', 'irct2'], None)
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
        """Whether any of the patterns matches ``text`` (only the candidates are run, each
        once, until one matches)."""
        if not text:
            return False
        tried: set[int] = set()
        for index in self.always:
            tried.add(index)
            if self._patterns[index].search(text):
                return True
        if len(self._automaton):
            for _, indexes in self._automaton.iter(fold(text)):
                for index in indexes - tried:
                    tried.add(index)
                    if self._patterns[index].search(text):
                        return True
        return False


@cache
def _registry_screen() -> Screen:
    return Screen(list(REGISTRIES.values()))


#: The condition kb's field treats (with the cell products of the vocabulary, what makes a work
#: one of the field: :func:`of_the_field`).
FIELD_CONDITION = r"cerebral\s+pals(?:y|ies)"


@cache
def _product_screen() -> Screen:
    return Screen([t.regex for t in terms() if t.kind == "product"])


@cache
def _field_screen() -> Screen:
    return Screen([*(t.regex for t in terms() if t.kind == "product"), FIELD_CONDITION])


def may_name_registry_id(title: str | None, abstract: str | None = None,
                         mesh: Iterable[str] = (), keywords: Iterable[str] = (),
                         accessions: Iterable[str] = ()) -> bool:
    """False when :func:`kb.evidence.extract.screen` is sure to find no registry id in this
    work (in its data-bank accessions or its text).

    >>> may_name_registry_id("Stem cells", "A distinct function."), may_name_registry_id("nct01147653")
    (False, True)
    """
    return (any(registry_of(a) for a in accessions)
            or _registry_screen().search(_texts(title, abstract, mesh, keywords)[1]))


def may_name_cell_product(title: str | None, abstract: str | None = None,
                          mesh: Iterable[str] = (), keywords: Iterable[str] = ()) -> bool:
    """False when :func:`kb.evidence.extract.screen` is sure to find no cell product (the
    vocabulary's product rows) in this work.

    >>> may_name_cell_product("Hip surveillance in cerebral palsy"), may_name_cell_product("hUC-MSC")
    (False, True)
    """
    return _product_screen().search(_texts(title, abstract, mesh, keywords)[1])


def of_the_field(title: str | None, abstract: str | None = None, mesh: Iterable[str] = (),
                 keywords: Iterable[str] = ()) -> bool:
    """Whether a work is of kb's field, cell therapy or cerebral palsy: its title, abstract, MeSH
    or keywords name a cell product of the vocabulary (any of its product rows matches) or
    cerebral palsy. Only such works can report or pool a trial, or give rule outcomes: a
    registry id in an oncology abstract makes no trial of the field.

    >>> of_the_field("Hip surveillance in cerebral palsy"), of_the_field("hUC-MSC for stroke")
    (True, True)
    >>> of_the_field("Nivolumab in melanoma (NCT01721772)")
    False
    """
    return _field_screen().search(_texts(title, abstract, mesh, keywords)[1])
