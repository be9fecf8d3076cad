"""Snowball a citation neighbourhood out from one DOI: references, citing works, or both.

The crawl is breadth first. Each round takes a batch of queued works from the frontier
(table ``crawl_frontier``), fetches their OpenAlex records in one OR-filtered request and their
Crossref records in another (authoritative metadata, printed reference lists, and works
OpenAlex does not have yet), keeps those on topic (title, abstract, keywords and MeSH — the
stored ones too, e.g. PubMed's), and,
below the depth limit, collects their edges from every source: OpenAlex ``referenced_works``
and ``cites:`` (batched), OpenCitations references / citations, and PubMed elink refs /
citedin (batched). Records, edges, the batch's states and the newly found works are written in
one transaction, so a killed crawl loses at most the batch in flight and resumes from the
frontier; re-running a finished crawl with the same settings does nothing. Works whose edges a
source failed to give are queued again at the end, so a rerun fetches just those.
"""
from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import store
from ..errors import FetchError, InputError, QuotaError
from ..identifiers import normalize_doi
from ..records import DIRECTIONS, LinkRecord, WorkRecord, WorkRef
from .resolve import normalize_text
from ..store import crawl as frontier

if TYPE_CHECKING:
    from ..http import Client

__all__ = ["crawl", "CrawlReport", "on_topic", "DIRECTIONS", "SOURCES", "BATCH_SIZE"]

#: Sources a crawl can ask: OpenAlex (works and edges), Crossref (the stored works' metadata
#: and printed reference lists), OpenCitations and PubMed (edges).
SOURCES = ("openalex", "crossref", "opencitations", "pubmed")
#: Frontier works fetched per round (one OpenAlex request, one elink request per direction).
BATCH_SIZE = 50


@dataclass
class CrawlReport:
    """What a crawl did in this run (``already_done``: it had finished before)."""

    crawl_id: int
    seed: str
    resumed: bool = False
    already_done: bool = False
    stored: int = 0
    off_topic: int = 0
    missing: int = 0
    over_limit: int = 0
    edges: int = 0
    queued: int = 0
    failures: list[str] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    unresolved: int = 0  # references of the crawled works printed without identifiers

    def summary(self) -> str:
        if self.already_done:
            return (f"crawl from {self.seed} already finished "
                    f"({self.totals.get('stored', 0)} works stored); nothing to do "
                    "(use --fresh to crawl again)")
        verb = "resumed" if self.resumed else "crawled"
        return (f"{verb} from {self.seed}: {self.stored} works stored, {self.edges} citation "
                f"edges added or confirmed, {self.off_topic} off topic, {self.missing} not found, "
                f"{self.over_limit} over --max-works"
                + (f"; {len(self.failures)} source failures" if self.failures else "")
                + (f"\n{self.unresolved} references were printed without identifiers: "
                   "`kb resolve` links them" if self.unresolved else ""))


def on_topic(text: str, topics: Sequence[str]) -> bool:
    """True when every word of one of the ``topics`` starts a word of ``text``.

    >>> on_topic("Stem cells for children with cerebral palsy", ["stem cell"])
    True
    >>> on_topic("Serum ferritin in adults", ["cerebral palsy", "cord blood"])
    False
    """
    words = set(normalize_text(text).split())
    for topic in topics:
        wanted = normalize_text(topic).split()
        if wanted and all(any(w.startswith(t) for w in words) for t in wanted):
            return True
    return not topics


def _topics(topic: str | None) -> list[str]:
    return [t.strip() for t in re.split(r"\|", topic or "") if t.strip()]


def _stored_text(conn: sqlite3.Connection, work_id: int) -> str:
    row = conn.execute("SELECT title, abstract, keywords, mesh FROM works_fts_source "
                       "WHERE rowid = ?", (work_id,)).fetchone()
    return " ".join(v for v in row if v) if row else ""


def _record_text(record: WorkRecord) -> str:
    parts = [record.get("title") or "", record.get("abstract") or ""]
    parts += record.get("keywords") or []
    parts += [m["descriptor"] for m in record.get("mesh") or []]
    return " ".join(parts)


def _work_id(conn: sqlite3.Connection, ref: WorkRef) -> int | None:
    for column in ("doi", "pmid", "openalex_id", "pmcid"):
        if ref.get(column):
            row = conn.execute(f"SELECT id FROM works WHERE {column} = ?",
                               (ref[column],)).fetchone()
            if row:
                return row[0]
    return None


class _Round:
    """One batch of frontier works: fetch, filter, collect edges."""

    def __init__(self, conn: sqlite3.Connection, client: Client, items: list[sqlite3.Row],
                 direction: str, sources: Sequence[str], report: CrawlReport) -> None:
        self.conn, self.client, self.items = conn, client, items
        self.direction, self.sources, self.report = direction, sources, report
        self.unfinished: set[int] = set()  # works whose edges a source failed to give

    def fetch(self) -> dict[int, dict[str, Any]]:
        """OpenAlex work objects of the batch, by frontier work id."""
        from ..scrapers import openalex
        by: dict[str, dict[str, int]] = {"doi": {}, "openalex_id": {}, "pmid": {}}
        for item in self.items:
            kind = next((k for k in ("doi", "openalex_id", "pmid") if item[k]), None)
            if kind:
                by[kind][item[kind]] = item["work_id"]
        works = (openalex.fetch_works(self.client, by["doi"])
                 + openalex.fetch_by_openalex(self.client, by["openalex_id"])
                 + openalex.fetch_by_pmid(self.client, by["pmid"]))
        found: dict[int, dict[str, Any]] = {}
        for work in works:
            ref = openalex.work_ref(work)
            for kind in ("doi", "openalex_id", "pmid"):
                if ref.get(kind) in by[kind]:
                    found.setdefault(by[kind][ref[kind]], work)  # type: ignore[literal-required]
        return found

    def crossref(self, dois: list[str]) -> dict[str, WorkRecord]:
        """Crossref's records of the batch, by DOI (metadata that outranks OpenAlex's, the
        reference lists as printed, and works OpenAlex does not have yet); failures are
        reported, not fatal."""
        if not dois:
            return {}
        from ..scrapers import crossref
        errors: dict[str, str] = {}
        records, _ = crossref.fetch_works(self.client, dois, errors=errors)
        self.report.failures += [f"Crossref record of {doi}: {why}"
                                 for doi, why in sorted(errors.items())]
        return {r["doi"]: r for r in records if r.get("doi")}  # type: ignore[misc]

    def _guard(self, what: str, call: Callable[[], list[LinkRecord]],
               items: Iterable[sqlite3.Row]) -> list[LinkRecord]:
        try:
            return call()
        except QuotaError:
            raise
        except FetchError as exc:
            self.report.failures.append(f"{what}: {exc}")
            self.unfinished.update(item["work_id"] for item in items)
            return []

    def edges(self, expand: list[sqlite3.Row], works: dict[int, dict[str, Any]]
              ) -> list[LinkRecord]:
        """Citation edges of the works to expand, from every source asked."""
        from ..scrapers import openalex, opencitations
        links: list[LinkRecord] = []
        refs = self.direction in ("refs", "both")
        cited_by = self.direction in ("cited-by", "both")
        objects = [works[i["work_id"]] for i in expand if i["work_id"] in works]
        if "openalex" in self.sources and objects:
            if refs:
                wanted = sorted({w for o in objects for w in o.get("referenced_works") or []})
                known = {oid: w for w in openalex.fetch_by_openalex(
                             self.client, wanted, select=openalex.REF_FIELDS)
                         if (oid := openalex.work_ref(w).get("openalex_id"))}
                for work in objects:
                    links += openalex.reference_links(work, known)
            if cited_by:
                targets = {oid: o for o in objects
                           if (oid := openalex.work_ref(o).get("openalex_id"))}
                for work in openalex.fetch_citing(self.client, targets,
                                                  select=openalex.CITING_FIELDS):
                    links += openalex.citing_links(work, targets)
        if "opencitations" in self.sources:
            for item in expand:
                doi = item["doi"]
                if not doi:
                    continue
                if refs:
                    links += self._guard(f"OpenCitations references of {doi}", lambda:
                                         opencitations.to_links(
                                             opencitations.fetch_references(self.client, doi)),
                                         [item])
                if cited_by:
                    links += self._guard(f"OpenCitations citations of {doi}", lambda:
                                         opencitations.to_links(
                                             opencitations.fetch_citations(self.client, doi)),
                                         [item])
        if "pubmed" in self.sources:
            pmids: dict[str, WorkRef] = {}
            asked = []
            for item in expand:  # a work first known by DOI has its PMID from OpenAlex
                pmid = item["pmid"] or (openalex.work_ref(works[item["work_id"]]).get("pmid")
                                        if item["work_id"] in works else None)
                if pmid:
                    pmids[pmid] = {**self._ref(item), "pmid": pmid}
                    asked.append(item)
            if pmids:
                if refs:
                    links += self._guard("PubMed elink refs", lambda: self._elink(
                        pmids, "pubmed_pubmed_refs", outgoing=True), asked)
                if cited_by:
                    links += self._guard("PubMed elink citedin", lambda: self._elink(
                        pmids, "pubmed_pubmed_citedin", outgoing=False), asked)
        return links

    @staticmethod
    def _ref(item: sqlite3.Row) -> WorkRef:
        ref = {k: item[k] for k in ("doi", "pmid", "openalex_id") if item[k]}
        return ref  # type: ignore[return-value]

    def _elink(self, pmids: dict[str, WorkRef], linkname: str, *, outgoing: bool
               ) -> list[LinkRecord]:
        from ..scrapers import pubmed
        links: list[LinkRecord] = []
        for pmid, others in pubmed.fetch_links(self.client, sorted(pmids, key=int),
                                               linkname).items():
            for other in others:
                ref: WorkRef = {"pmid": other}
                pair = (pmids[pmid], ref) if outgoing else (ref, pmids[pmid])
                links.append({"citing": pair[0], "cited": pair[1], "source": "pubmed"})
        return links


def crawl(conn: sqlite3.Connection, client: Client, seed: str, *, depth: int = 1,
          direction: str = "both", max_works: int | None = None, topic: str | None = None,
          sources: Iterable[str] = SOURCES, fresh: bool = False, batch_size: int = BATCH_SIZE,
          progress: Callable[[int, int], None] | None = None) -> CrawlReport:
    """Crawl out from ``seed`` (a DOI), or resume the crawl with the same settings.

    :param depth: how many citation steps from the seed to store (0: the seed only).
    :param max_works: stop after storing this many works (the seed included).
    :param topic: keep only works whose title, abstract, keywords or MeSH contain every word
        of the topic (``|`` separates alternatives); the seed is always kept.
    :param fresh: start over even if the crawl finished or was interrupted.
    :raises InputError: the seed is not a DOI, or a setting is out of range.
    :raises FetchError: OpenAlex failed (what was stored stays; run again to resume).
    """
    doi = normalize_doi(seed or "")
    if doi is None:
        raise InputError(f"not a DOI: {seed!r}")
    if direction not in DIRECTIONS:
        raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}")
    if depth < 0 or (max_works is not None and max_works < 1):
        raise InputError("--depth must be 0 or more and --max-works 1 or more")
    sources = tuple(sources)
    topics = _topics(topic)
    crawl_id, status = frontier.start_crawl(conn, doi, direction, depth, max_works or 0,
                                            "|".join(topics), fresh=fresh)
    report = CrawlReport(crawl_id, doi)
    totals = frontier.counts(conn, crawl_id)
    report.resumed = status != "done" and sum(totals.values()) > totals.get("queued", 0)
    if status == "done":
        report.already_done, report.totals = True, totals
        return report
    try:
        _run(conn, client, crawl_id, doi, report, totals, depth=depth, direction=direction,
             sources=sources, topics=topics, max_works=max_works, batch_size=batch_size,
             progress=progress)
    except BaseException:
        if not _drop_if_fruitless(conn, crawl_id, report):
            frontier.interrupt_crawl(conn, crawl_id)
        raise
    if report.totals.get("stored", 0) == 0 and not report.edges:
        report.failures.append(f"{doi}: no source knows this DOI (no OpenAlex or Crossref "
                               "record, and no citation edges were found)")
        _drop_if_fruitless(conn, crawl_id, report)
    return report


def _drop_if_fruitless(conn: sqlite3.Connection, crawl_id: int, report: CrawlReport) -> bool:
    """A crawl that stored no work and found no edge leaves no row behind (none that says
    "running" for ever); one that got somewhere stays, to be resumed. True when dropped."""
    totals = frontier.counts(conn, crawl_id)
    if not totals.get("stored", 0) and not report.edges:
        frontier.drop_crawl(conn, crawl_id)
        return True
    return False


def _run(conn: sqlite3.Connection, client: Client, crawl_id: int, doi: str,
         report: CrawlReport, totals: dict[str, int], *, depth: int, direction: str,
         sources: tuple[str, ...], topics: list[str], max_works: int | None, batch_size: int,
         progress: Callable[[int, int], None] | None) -> None:
    """The crawl's rounds, breadth first, until the frontier or ``max_works`` runs out."""
    from ..scrapers import openalex
    stored = totals.get("stored", 0)
    unfinished: set[int] = set()
    while True:
        if max_works and stored >= max_works:
            report.over_limit += frontier.drop_queued(conn, crawl_id, "over-limit")
            break
        room = max_works - stored if max_works else batch_size
        items = frontier.next_batch(conn, crawl_id, min(batch_size, room))
        if not items:
            break
        step = _Round(conn, client, items, direction, sources, report)
        works = step.fetch()
        registered = step.crossref([i["doi"] for i in items if i["doi"]]) \
            if "crossref" in sources else {}
        states: dict[int, str] = {}
        records: list[WorkRecord] = []
        expand = []
        for item in items:
            found = [r for r in (openalex.to_record(works[item["work_id"]])
                                 if item["work_id"] in works else None,
                                 registered.get(item["doi"])) if r]
            if not found:
                states[item["work_id"]] = "missing"
                if item["depth"] == 0 and item["depth"] < depth:
                    expand.append(item)  # the seed's edges may come from other sources
                continue
            text = " ".join(map(_record_text, found)) + " " + _stored_text(conn, item["work_id"])
            if item["depth"] > 0 and not on_topic(text, topics):
                states[item["work_id"]] = "off-topic"
                continue
            states[item["work_id"]] = "stored"
            records += found
            stored += 1
            if item["depth"] < depth:
                expand.append(item)
        links = step.edges(expand, works) if expand else []
        with store.transaction(conn):
            store.upsert_works(conn, records)
            report.edges += store.add_links(conn, links)
            frontier.set_states(conn, crawl_id, states)
            report.queued += _enqueue(conn, crawl_id, expand, links)
        unfinished |= step.unfinished
        for state in states.values():
            key = state.replace("-", "_")
            setattr(report, key, getattr(report, key) + 1)
        if progress:
            totals = frontier.counts(conn, crawl_id)
            progress(sum(totals.values()) - totals.get("queued", 0), sum(totals.values()))
    if unfinished:  # a rerun expands these again (answers that came are in the HTTP cache)
        with store.transaction(conn):
            frontier.set_states(conn, crawl_id, {w: "queued" for w in unfinished})
    else:
        frontier.finish_crawl(conn, crawl_id)
    report.totals = frontier.counts(conn, crawl_id)
    report.unresolved = conn.execute(
        "SELECT count(*) FROM citations c JOIN crawl_frontier f ON f.work_id = c.citing_id "
        "WHERE f.crawl_id = ? AND f.state = 'stored' AND c.cited_id IS NULL",
        (crawl_id,)).fetchone()[0]


def _enqueue(conn: sqlite3.Connection, crawl_id: int, expand: list[sqlite3.Row],
             links: list[LinkRecord]) -> int:
    """Queue the works at the other end of the expanded works' edges, one step deeper."""
    depth_of = {item["work_id"]: item["depth"] for item in expand}
    found: dict[int, int] = {}
    for link in links:
        citing, cited = _work_id(conn, link["citing"]), _work_id(conn, link["cited"])
        for here, there in ((citing, cited), (cited, citing)):
            if here in depth_of and there is not None and there not in depth_of:
                found.setdefault(there, depth_of[here] + 1)
    added = 0
    for level in sorted(set(found.values())):
        added += frontier.enqueue(conn, crawl_id, sorted(w for w, d in found.items()
                                                         if d == level), level)
    return added
