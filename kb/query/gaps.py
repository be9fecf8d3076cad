"""Works several KB works cite that the KB does not hold yet (`kb gaps`): stubs, and
unlinked references grouped by the work they name."""
from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from typing import Any

from ..errors import InputError
from .graph import NODE_COLUMNS, short_title, work_attributes, work_label

__all__ = ["gaps"]


def _fts_terms(topic: str) -> str:
    """A user's topic as an FTS5 query: every word required, each quoted (no syntax errors).

    >>> _fts_terms('cerebral palsy "stem"')
    '"cerebral" "palsy" "stem"'
    """
    words = re.findall(r"\w+", topic)
    if not words:
        raise InputError(f"the topic {topic!r} has no words to search for")
    return " ".join(f'"{w}"' for w in words)


def gaps(conn: sqlite3.Connection, *, topic: str | None = None, min_citers: int = 2,
         limit: int | None = 50, unlinked: bool = True) -> list[dict[str, Any]]:
    """Works cited by several KB works but not in the KB yet: what to add next. Those are
    stubs (works known by an identifier from a reference), and references linked to no work
    that name the same work (grouped by :func:`kb.ingest.resolve.reference_identity`: the same
    title and year, the same printed head, year, volume and first page, or the same text).

    :param topic: count only citing works whose title, abstract, keywords or MeSH match
        every word of ``topic``.
    :param min_citers: how many distinct KB works must cite it.
    :param unlinked: also group the unlinked references (off: stubs only, without reading
        every unlinked reference).

    Each row carries the work's attributes (as :func:`work_attributes`; for unlinked
    references ``id`` is None, ``status`` is ``"unlinked"`` and the fields come from the
    reference), ``reference`` (the printed reference, for unlinked ones), ``n_citers`` and
    ``citers`` (the citing works' id, label, DOI, PMID, title, year), most-cited first,
    newest first among equals.
    """
    if min_citers < 1:
        raise InputError("--min-citers must be at least 1")
    where = ""
    params: list[object] = [min_citers]
    if topic:
        where = "AND c.citing_id IN (SELECT rowid FROM works_fts WHERE works_fts MATCH ?)"
        params = [_fts_terms(topic), min_citers]
    # CROSS JOIN keeps SQLite's join order: one pass over citations, primary-key lookups
    # (left to the planner, it may pair every stub with every full work first)
    sql = ("SELECT c.cited_id, count(DISTINCT c.citing_id) AS n FROM citations c "
           "CROSS JOIN works s ON s.id = c.cited_id CROSS JOIN works k ON k.id = c.citing_id "
           f"WHERE s.status = 'stub' AND k.status = 'full' {where} "
           "GROUP BY c.cited_id HAVING n >= ? ORDER BY n DESC, s.year DESC, c.cited_id")
    if limit:
        sql += f" LIMIT {int(limit)}"
    try:
        counts = conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        raise InputError(f"cannot search for the topic {topic!r}: {exc}") from exc
    stub_ids = [row[0] for row in counts]
    citing: dict[int, list[int]] = {n: [] for n in stub_ids}
    topic_filter = where.replace("c.citing_id", "citing_id")
    for cited, citer in conn.execute(
            "SELECT DISTINCT cited_id, citing_id FROM citations WHERE cited_id IN "
            f"(SELECT value FROM json_each(?)) {topic_filter}",
            [json.dumps(stub_ids)] + params[:-1]):
        citing[cited].append(citer)
    groups = _unlinked_references(conn, where, params[:-1], min_citers) if unlinked else []
    attrs = work_attributes(conn, set(stub_ids) | {c for cs in citing.values() for c in cs}
                            | {c for _, cs in groups for c in cs})
    rows = [{**attrs[stub], "reference": None, "n_citers": n,
             "citers": _citers(attrs, citing[stub])} for stub, n in counts]
    rows += [{**_unlinked_attrs(example), "n_citers": len(citers),
              "citers": _citers(attrs, citers)} for example, citers in groups]
    rows.sort(key=lambda row: (-row["n_citers"], -(row["year"] or 0)))  # stable: SQL order
    return rows[:limit] if limit else rows


def _citers(attrs: dict[int, dict[str, Any]], ids: Iterable[int]) -> list[dict[str, Any]]:
    """The full KB works among ``ids``, newest first, as gaps rows list them."""
    citers = sorted((attrs[c] for c in ids if attrs[c]["status"] == "full"),
                    key=lambda w: (-(w["year"] or 0), w["label"]))
    return [{k: w[k] for k in ("id", "label", "doi", "pmid", "title", "year")} for w in citers]


def _unlinked_references(conn: sqlite3.Connection, topic_where: str, topic_params: list[Any],
                         min_citers: int) -> list[tuple[sqlite3.Row, list[int]]]:
    """References of full KB works linked to no work, grouped by what they name: (the first
    reference of each group, the citing work ids) for groups cited by ``min_citers`` works."""
    from ..ingest.resolve import normalize_reference, reference_identity
    groups: dict[tuple[Any, ...], dict[int, sqlite3.Row]] = {}
    for row in conn.execute(
            "SELECT c.citing_id, c.unstructured, c.title, c.year, c.first_author, c.journal, "
            "c.volume, c.first_page FROM citations c CROSS JOIN works k ON k.id = c.citing_id "
            f"WHERE c.cited_id IS NULL AND k.status = 'full' {topic_where} "
            "ORDER BY c.citing_id, c.position", topic_params):
        key = reference_identity(normalize_reference(
            unstructured=row["unstructured"], title=row["title"], year=row["year"],
            first_author=row["first_author"], journal=row["journal"], volume=row["volume"],
            first_page=row["first_page"]))
        if key is not None:
            groups.setdefault(key, {}).setdefault(row["citing_id"], row)
    return [(next(iter(group.values())), list(group)) for group in groups.values()
            if len(group) >= min_citers]


def _unlinked_attrs(ref: sqlite3.Row) -> dict[str, Any]:
    """A gaps row's work attributes for an unlinked reference: what the reference gives."""
    from ..ingest.resolve import printed_year
    printed = ref["unstructured"] or " ".join(
        str(ref[f]) for f in ("first_author", "year", "title", "journal") if ref[f])
    attrs = dict.fromkeys(NODE_COLUMNS)
    attrs.update(title=ref["title"], year=ref["year"] or printed_year(printed),
                 journal=ref["journal"], first_author=ref["first_author"], status="unlinked",
                 is_retracted=False, unverified=False, reference=printed)
    attrs["short_title"] = short_title(attrs["title"])
    attrs["label"] = attrs["caption"] = (
        work_label(attrs) if ref["first_author"] or ref["journal"] or ref["title"]
        else short_title(printed, 30))
    return attrs
