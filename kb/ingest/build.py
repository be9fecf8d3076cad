"""Build a knowledge base from the embedded seed, through the same importers every user runs.

Order: the corpus works (:mod:`kb.ingest.seed` → :func:`kb.store.upsert_works`), the seed news
article through the web-article scraper (:func:`kb.scrapers.webpage.parse_page`; its reference
list gives the citation rows their position and text), the corpus citation links
(:func:`kb.store.add_links`), the vocabulary's synonyms, the curated trials and ``pools``
lineage (the evidence store), then the evidence annotations and reference resolution, then the
curated outcome numbers (:mod:`kb.store.outcomes`). With the network it then
refreshes the seed works from Crossref / PubMed / OpenAlex and crawls one level out.

The file is written under a temporary name next to the target and renamed at the end, so a
failed or interrupted build never leaves a half-written ``kb.db``. Inputs are sorted, so the
same seed gives the same works, ids and edges.
"""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import seed as seed_reader
from .. import store
from ..errors import DatabaseError, InputError, KBError

if TYPE_CHECKING:
    from ..http import Client

__all__ = ["BuildReport", "build_kb", "load_seed", "SEED_ARTICLE"]

#: The seed news article, as shipped in ``kb/seed/``.
SEED_ARTICLE = "cells4life-2025-03.html"
#: What an online build's one-level crawl keeps, and how many works per seed work at most.
CRAWL_TOPIC = "cerebral palsy"
CRAWL_MAX_WORKS = 200
#: ``PRAGMA application_id`` of a file ``kb build`` made ("kbBd"): such a file may be
#: rebuilt in place; any other knowledge base only with ``force``.
BUILD_APPLICATION_ID = 0x6B624264
#: Consecutive failed crawls after which the service is taken to be down.
CRAWL_GIVE_UP = 5


@dataclass
class BuildReport:
    """What a build did: counts per step, and what failed (online steps only)."""

    path: Path
    steps: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def load_seed(conn: sqlite3.Connection, say: Callable[[str], None] = lambda _: None
              ) -> dict[str, Any]:
    """Import the embedded seed into ``conn`` through the normal importers (no network)."""
    from ..scrapers.webpage import parse_page

    steps: dict[str, Any] = {}
    works = seed_reader.read_works()
    results = store.upsert_works(conn, works)
    steps["corpus works"] = len(results)
    say(f"corpus: {len(results)} works")

    html = seed_reader.seed_files().joinpath(SEED_ARTICLE).read_bytes()
    page = parse_page(html, seed_reader.SEED_ARTICLE_URL)
    store.upsert_work(conn, page)
    steps["seed article references"] = len(page.get("references") or [])
    say(f"seed article: {page.get('title')} ({steps['seed article references']} references)")

    links, lineage = seed_reader.read_links()
    steps["corpus citation links"] = store.add_links(conn, links)
    say(f"corpus: {len(links)} citation links")

    steps.update(_load_evidence(conn, lineage, seed_reader.read_trials(), say))
    return steps


def _load_evidence(conn: sqlite3.Connection, lineage: list[seed_reader.Lineage],
                   trials: list[dict[str, Any]], say: Callable[[str], None]) -> dict[str, Any]:
    """The vocabulary's synonyms, curated trials and ``pools`` lineage through the evidence
    store."""
    from .. import vocabulary
    from ..evidence.load import load_curated_trials
    from ..store import evidence

    steps = {"synonyms": evidence.store_synonyms(conn, vocabulary.terms())}
    loaded = load_curated_trials(conn, trials)
    steps["curated trials"] = loaded.trials
    for edge in lineage:
        from_id, to_id = evidence.work_id_for(conn, edge.from_id), evidence.work_id_for(conn, edge.to_id)
        if from_id is None or to_id is None:
            raise KBError(f"seed lineage names a work the seed lacks: {edge.from_id} -> {edge.to_id}")
        evidence.add_lineage(conn, from_id, to_id, edge.relation,
                             reason="stated by the page the seed corpus read it from",
                             source=edge.source, provenance="curated")
    steps["curated lineage"] = len(lineage)
    say(f"evidence: {loaded.trials} curated trials, {len(lineage)} lineage edges")
    return steps


def _load_outcomes(conn: sqlite3.Connection, say: Callable[[str], None]) -> dict[str, Any]:
    """The curated outcome numbers, each tied to its trial (after annotation, so that trials the
    rules found are there too; loading again re-links, changing nothing else)."""
    from ..evidence.outcomes import read_seed_outcomes
    from ..store.outcomes import load_curated_outcomes

    loaded = load_curated_outcomes(conn, read_seed_outcomes())
    say(f"outcomes: {loaded.rows} curated numbers ({len(loaded.without_trial)} sources' numbers "
        "not tied to one trial)")
    return {"curated outcomes": loaded.rows}


def _annotate(conn: sqlite3.Connection, say: Callable[[str], None]) -> dict[str, Any]:
    """Reference resolution, then the derived layers that read the resolved edges: study
    designs, trial facts, lineage and flags."""
    from .. import evidence
    from . import resolve

    steps: dict[str, Any] = {"resolution": resolve.resolve(conn)}
    steps["evidence"] = evidence.annotate(conn)
    say("resolved references and annotated evidence")
    return steps


def _refresh(conn: sqlite3.Connection, client: Client, report: BuildReport,
             say: Callable[[str], None]) -> None:
    """Refresh the seed works from Crossref / PubMed (``kb add``) and crawl one level of
    references and citing works around each through OpenAlex, OpenCitations and PubMed
    (``kb crawl --depth 1 --topic "cerebral palsy"``). Failures are collected, not raised; when
    nothing answers, the crawl is skipped rather than retried work by work."""
    from . import crawl, add as ingest

    dois = [r[0] for r in conn.execute("SELECT doi FROM works WHERE doi IS NOT NULL ORDER BY doi")]
    pmids = [r[0] for r in conn.execute(
        "SELECT pmid FROM works WHERE doi IS NULL AND pmid IS NOT NULL ORDER BY pmid")]
    added = ingest.add(conn, client, dois + pmids)
    report.steps["refreshed"] = len(added.added) + len(added.updated) + len(added.unchanged)
    if not report.steps["refreshed"] and client.unreachable:  # one line, not one per work
        report.failures.append("; ".join(sorted(set(client.unreachable.values())))
                               + ": built from the seed only")
        return
    report.failures.extend(f"{label}: {reason}" for label, reason in added.failed.items())
    say(f"refreshed {report.steps['refreshed']} of {len(dois) + len(pmids)} seed works online")
    if dois and not report.steps["refreshed"]:
        report.failures.append("no service answered for any seed work (is the network down?); "
                               "skipped the one-level crawl")
        return
    stored = failed_in_a_row = 0
    for doi in dois:
        try:
            result = crawl.crawl(conn, client, doi, depth=1, topic=CRAWL_TOPIC,
                                 max_works=CRAWL_MAX_WORKS)
        except KBError as exc:
            report.failures.append(f"crawl {doi}: {exc}")
            failed_in_a_row += 1
            if failed_in_a_row == CRAWL_GIVE_UP:
                report.failures.append(f"{CRAWL_GIVE_UP} crawls in a row failed; "
                                       "skipped the rest of the crawl")
                break
            continue
        failed_in_a_row = 0
        stored += result.stored
        report.failures.extend(f"crawl {doi}: {failure}" for failure in result.failures)
    report.steps["crawled works"] = stored
    say(f"crawled one level around {len(dois)} seed works: {stored} works stored")


def build_kb(out: str | Path, *, client: Client | None = None,
             say: Callable[[str], None] = lambda _: None, force: bool = False) -> BuildReport:
    """Build a knowledge base at ``out`` from the seed (and, given a client, the services).

    :param client: a :class:`kb.http.Client` to refresh the seed works and crawl one level
        with; without one the build is offline and deterministic.
    :param force: replace ``out`` even if it is a knowledge base no build made.
    :raises InputError: ``out`` holds works of a knowledge base ``kb build`` did not make.
    :raises KBError: the build failed; ``out`` is left as it was.
    """
    out = Path(out)
    if out.is_dir():
        raise DatabaseError(f"{out} is a folder, not a database file")
    if not out.parent.is_dir():
        raise InputError(f"cannot write {out}: folder {out.parent} does not exist")
    if not force:
        _check_replaceable(out)
    from ..render.output import clean_leftovers
    clean_leftovers(out, "building")
    tmp = out.with_name(f".{out.name}.building-{os.getpid()}")
    for leftover in (tmp, *_sidecars(tmp)):
        leftover.unlink(missing_ok=True)
    report = BuildReport(out)
    try:
        conn = store.connect(tmp)
        try:
            report.steps.update(load_seed(conn, say))
            report.steps.update(_annotate(conn, say))
            report.steps.update(_load_outcomes(conn, say))
            if client is not None:
                _refresh(conn, client, report, say)
                report.steps.update(_annotate(conn, say))
                report.steps.update(_load_outcomes(conn, say))
            store.rebuild_fts(conn)
            conn.execute(f"PRAGMA application_id = {BUILD_APPLICATION_ID}")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
        finally:
            conn.close()
        for sidecar in _sidecars(out):
            sidecar.unlink(missing_ok=True)  # a stale WAL must not be replayed onto the new file
        os.replace(tmp, out)
    finally:
        for leftover in (tmp, *_sidecars(tmp)):
            leftover.unlink(missing_ok=True)
    return report


def _check_replaceable(out: Path) -> None:
    """Refuse to replace a knowledge base that holds works and was not made by a build."""
    if not out.exists() or out.stat().st_size == 0:
        return
    with out.open("rb") as handle:
        header = handle.read(72)
    if int.from_bytes(header[68:72], "big") == BUILD_APPLICATION_ID:  # PRAGMA application_id
        return
    try:  # immutable: no -wal / -shm files left beside it
        conn = sqlite3.connect(f"{out.resolve().as_uri()}?immutable=1", uri=True)
        try:
            works = conn.execute("SELECT count(*) FROM works").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        works = -1  # not a knowledge base kb can read: not one a build made either
    if works:
        held = f"holds {works} works" if works > 0 else "is not a knowledge base"
        raise InputError(f"{out} {held} and was not made by `kb build`; building would "
                         "replace it", hint="build elsewhere with --out NEW.db, or pass "
                         "--force to replace it")


def _sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
