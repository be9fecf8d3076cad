"""Fetch-and-parse modules, one per service. Each turns a service's answers into kb records
and never writes; :func:`well_formed` is how a record of an unexpected shape fails alone."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from kb.errors import FetchError

__all__ = ["well_formed", "sound"]

T = TypeVar("T")
log = logging.getLogger("kb.scrapers")
#: What parsing a record of the wrong shape raises (a string where a list is documented,
#: a null in a list, JSON nested deeper than Python recurses).
_SHAPE_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError)


def well_formed(service: str, what: str, parse: Callable[[Any], T], payload: Any) -> T:
    """``parse(payload)``, or a FetchError naming the service and the record when the payload
    is not shaped as the service documents (only that record fails).

    >>> well_formed("Crossref", "10.5555/x", lambda m: m["author"]["family"],
    ...             {"author": None})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    kb.errors.FetchError: Crossref sent a malformed record for 10.5555/x (TypeError: ...); skipped
    """
    try:
        return parse(payload)
    except _SHAPE_ERRORS as exc:
        raise FetchError(f"{service} sent a malformed record for {what} "
                         f"({type(exc).__name__}: {str(exc)[:120]}); skipped") from None


def sound(service: str, name: Callable[[Any], str], check: Callable[[Any], object],
          items: list[Any]) -> list[Any]:
    """The items that ``check`` parses; each other one is left out with a warning (its record
    then counts as not found, and the warning says why)."""
    kept = []
    for item in items:
        try:
            well_formed(service, _name(name, item), check, item)
        except FetchError as exc:
            log.warning("kb: %s", exc)
            continue
        kept.append(item)
    return kept


def _name(name: Callable[[Any], str], item: Any) -> str:
    try:
        return str(name(item))[:100]
    except _SHAPE_ERRORS:
        return "a record"
