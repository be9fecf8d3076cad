"""``kb add``: identifiers in; records fetched from the services that know them; stored; a report.

DOIs go to Crossref (batched, then singly), then DataCite for what Crossref does not know;
every DOI is also looked up in PubMed (PMC ID converter, then E-utilities) so the PubMed record
merges into the same work, and a DOI known only to PubMed is still found. PMIDs and PMCIDs go
to PubMed; OpenAlex ids to OpenAlex (and their DOIs down the DOI path); web pages (URLs or
saved ``.html`` files) to the web-page scraper. References become
citation rows, and referenced works stubs, in :mod:`kb.store`; with ``fetch_refs`` the
referenced DOIs are fetched in full too.
"""
from __future__ import annotations

import re
import sqlite3
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .. import store
from ..errors import FetchError, InputError, KBError, NotFoundError, QuotaError
from ..identifiers import Identifier, normalize_doi, parse_identifier
from ..records import WorkRecord

if TYPE_CHECKING:
    from ..http import Client

__all__ = ["AddReport", "add", "parse_inputs", "read_id_file"]


_RANK = {"added": 3, "updated": 2, "unchanged": 1}
_PAGE_SUFFIXES = (".html", ".htm", ".xhtml")


@dataclass
class AddReport:
    """What :func:`add` did, per input (labels as the user would recognise them)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    #: ``--refs``: referenced DOIs fetched in full, by action, and those that failed.
    refs: dict[str, int] = field(default_factory=lambda: {"added": 0, "updated": 0,
                                                           "unchanged": 0})
    ref_failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every input was stored."""
        return not self.failed

    def summary(self) -> str:
        """One line of counts, then one line per failed input."""
        parts = [f"added {len(self.added)}", f"updated {len(self.updated)}",
                 f"unchanged {len(self.unchanged)}", f"failed {len(self.failed)}"]
        line = ", ".join(parts)
        fetched = sum(self.refs.values())
        if fetched or self.ref_failures:
            line += (f"; references fetched: {fetched} ({self.refs['added']} new), "
                     f"{len(self.ref_failures)} not fetched")
        if self.stats:
            line += (f"; {self.stats.get('requests', 0)} HTTP requests, "
                     f"{self.stats.get('cache_hits', 0)} from cache")
            if self.stats.get("retries"):
                line += f", {self.stats['retries']} retried"
        lines = [line[0].upper() + line[1:]]
        offline: dict[str, list[str]] = {}  # a host that cannot be reached is said once
        for label, reason in self.failed.items():
            unreachable = re.search(r"no network: could not reach \S+", reason)
            if unreachable:
                offline.setdefault(unreachable.group(0), []).append(label)
            else:
                lines.append(f"  failed: {label}: {reason}")
        lines += [f"  {message}; not fetched: {', '.join(labels)}"
                  for message, labels in offline.items()]
        return "\n".join(lines)


#: ``--from-file`` bounds: a list of identifiers is far smaller, and a FIFO must deliver it
#: within this many seconds.
MAX_ID_FILE_BYTES = 16 * 2**20
FIFO_WAIT = 60.0


def read_id_path(path: str) -> list[str]:
    """Identifiers from the file at ``path`` (``-``: standard input), as :func:`read_id_file`
    reads them, after at most :data:`MAX_ID_FILE_BYTES` bytes; a FIFO or pipe is read for at
    most :data:`FIFO_WAIT` seconds.

    :raises InputError: the file cannot be read, is larger, is binary, or the FIFO is silent.
    """
    import io
    import os
    import stat
    if path == "-":
        data = sys.stdin.buffer.read(MAX_ID_FILE_BYTES + 1)
    else:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            piped = stat.S_ISFIFO(os.fstat(fd).st_mode)
            data = _read_fifo(fd, path) if piped else _read_file(fd)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
    if len(data) > MAX_ID_FILE_BYTES:
        raise InputError(f"{path} is larger than {MAX_ID_FILE_BYTES >> 20} MB: not a list of "
                         "identifiers (give one DOI, PMID or URL per line)")
    if b"\0" in data:
        raise InputError(f"{path} is binary, not a list of identifiers "
                         "(give one DOI, PMID or URL per line)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start}); give one DOI, PMID or "
                         "URL per line") from None
    return read_id_file(io.StringIO(text))


def _read_file(fd: int) -> bytes:
    import os
    os.set_blocking(fd, True)
    parts, size = [], 0
    while size <= MAX_ID_FILE_BYTES:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _read_fifo(fd: int, path: str) -> bytes:
    """A FIFO's bytes until its writer closes it, for at most :data:`FIFO_WAIT` seconds (a
    FIFO nobody has opened for writing yet reads as empty: wait for one)."""
    import os
    import select
    import time
    os.set_blocking(fd, False)
    deadline = time.monotonic() + FIFO_WAIT
    parts, size, started = [], 0, False
    while size <= MAX_ID_FILE_BYTES:
        left = deadline - time.monotonic()
        if left <= 0:
            raise InputError(f"{path}: nothing complete to read within {FIFO_WAIT:.0f} s "
                             "(a FIFO nobody writes to?)")
        ready, _, _ = select.select([fd], [], [], min(left, 0.1))
        if not ready:
            continue
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            continue
        if chunk:
            parts.append(chunk)
            size += len(chunk)
            started = True
        elif started:
            break
        else:
            time.sleep(0.05)  # no writer yet
    return b"".join(parts)


def read_id_file(handle: IO[str]) -> list[str]:
    """Identifiers from a file: one per line; blank lines and ``#`` comments are skipped.

    >>> import io
    >>> read_id_file(io.StringIO("# my list\\n10.1186/s13287-021-02513-4  # Amanat\\n\\nPMID 34085782\\n"))
    ['10.1186/s13287-021-02513-4', 'PMID 34085782']
    """
    values = []
    try:
        lines = list(handle)
    except UnicodeDecodeError as exc:
        raise InputError(f"{getattr(handle, 'name', 'the identifier file')} is not UTF-8 text "
                         f"(byte {exc.start}); give one DOI, PMID or URL per line") from None
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        text = text.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if text:
            values.append(text)
    return values


def parse_inputs(values: Iterable[str | Identifier]) -> list[Identifier]:
    """Classify every input before anything is fetched; duplicates are dropped.

    A path to an existing ``.html`` file is kind ``file``.

    :raises InputError: an input is none of DOI, PMID, PMCID, OpenAlex id, URL or page file.
    """
    found: list[Identifier] = []
    for value in values:
        if isinstance(value, Identifier):
            ident = value
        else:
            path = Path(value.strip()).expanduser()
            if path.suffix.lower() in _PAGE_SUFFIXES and path.is_file():
                ident = Identifier("file", str(path.resolve()))
            else:
                ident = parse_identifier(value)
        if ident not in found:
            found.append(ident)
    return found


def _label(ident: Identifier) -> str:
    return {"pmid": f"PMID {ident.value}", "openalex": f"OpenAlex {ident.value}"}.get(
        ident.kind, ident.value)


class _Run:
    """One ``add`` call: the connection, client, report and per-input outcome."""

    def __init__(self, conn: sqlite3.Connection, client: Client, report: AddReport,
                 progress: Callable[[int], None] | None) -> None:
        self.conn = conn
        self.client = client
        self.report = report
        self.progress = progress
        self.actions: dict[str, str] = {}

    def store(self, label: str, records: list[WorkRecord]) -> list[WorkRecord]:
        """Upsert ``records`` for one input; remember the strongest action."""
        for record in records:
            result = store.upsert_work(self.conn, record)
            best = self.actions.get(label)
            if best is None or _RANK[result.action] > _RANK[best]:
                self.actions[label] = result.action
        return records

    def fail(self, label: str, reason: str) -> None:
        self.report.failed[label] = reason

    def tick(self, count: int = 1) -> None:
        if self.progress and count:
            self.progress(count)


def _pubmed_by_doi(run: _Run, dois: list[str]) -> dict[str, WorkRecord]:
    """PubMed records for these DOIs (via the PMC ID converter); {} when PubMed cannot say."""
    from ..scrapers import pubmed
    if not dois:
        return {}
    try:
        mapping = pubmed.convert_ids(run.client, dois)
        pmid_of: dict[str, str] = {}
        for key, ids in (mapping or {}).items():
            doi = normalize_doi(str(key)) or normalize_doi(str((ids or {}).get("doi") or ""))
            if doi and (ids or {}).get("pmid"):
                pmid_of[doi] = str(ids["pmid"])
        if not pmid_of:
            return {}
        records, _missing = pubmed.fetch_works(run.client, sorted(set(pmid_of.values())))
    except FetchError as exc:  # PubMed only adds to what Crossref / DataCite said
        run.report.notes.append(f"PubMed lookup by DOI failed: {exc.args[0]}")
        return {}
    by_pmid = {str(r.get("pmid")): r for r in records if r.get("pmid")}
    return {doi: by_pmid[pmid] for doi, pmid in pmid_of.items() if pmid in by_pmid}


def _fetch_dois(run: _Run, dois: list[str], progress: Callable[[int], None] | None = None
                ) -> tuple[dict[str, list[WorkRecord]], dict[str, str]]:
    """Records per DOI (Crossref, DataCite or doi.org, plus PubMed) and a reason per DOI not
    found.

    DataCite is asked only about DOIs Crossref said it does not know, doi.org's content
    negotiation only about those DataCite does not know either, and PubMed alone answers
    for a DOI only when both said so: a DOI a service failed to answer for fails, so that a
    rerun fetches it whole. Two DataCite failures in a row (or a quota) stop asking DataCite.
    """
    from ..http import Breaker
    from ..scrapers import crossref, datacite
    found: dict[str, list[WorkRecord]] = {}
    errors: dict[str, str] = {}
    records, missing = crossref.fetch_works(run.client, dois, errors=errors,
                                            progress=progress)
    for record in records:
        found[record["doi"]] = [record]  # type: ignore[index]
    reasons: dict[str, str] = {}
    breaker = Breaker()  # DataCite is rate limiting us or not answering
    for doi in missing:
        if doi in errors:  # Crossref could not say; a rerun will ask it again
            reasons[doi] = errors[doi]
        elif breaker.down is not None:
            reasons[doi] = errors[doi] = f"not found in Crossref; DataCite: {breaker.down.args[0]}"
        else:
            try:
                found[doi] = [datacite.fetch_work(run.client, doi)]
                breaker.success()
            except NotFoundError:
                breaker.success()
                _from_doi_org(run, doi, found, reasons, errors)
            except FetchError as exc:
                reasons[doi] = errors[doi] = f"not found in Crossref; DataCite: {exc.args[0]}"
                breaker.failure(exc)
    for doi, record in _pubmed_by_doi(run, [d for d in dois if d not in errors]).items():
        found.setdefault(doi, []).append(record)
        reasons.pop(doi, None)
    return found, reasons


def _from_doi_org(run: _Run, doi: str, found: dict[str, list[WorkRecord]],
                  reasons: dict[str, str], errors: dict[str, str]) -> None:
    """Ask doi.org's content negotiation (other registration agencies) for a DOI that
    Crossref and DataCite do not know."""
    from ..scrapers import doiorg
    try:
        found[doi] = [doiorg.fetch_work(run.client, doi)]
    except NotFoundError:
        reasons[doi] = "not found in Crossref, DataCite, doi.org or PubMed"
    except FetchError as exc:
        reasons[doi] = errors[doi] = f"not found in Crossref or DataCite; {exc.args[0]}"


def _add_dois(run: _Run, idents: list[Identifier]) -> list[WorkRecord]:
    done = 0

    def step(count: int) -> None:  # Crossref answers batch by batch
        nonlocal done
        done += count
        run.tick(count)

    found, reasons = _fetch_dois(run, [i.value for i in idents], step)
    stored: list[WorkRecord] = []
    for ident in idents:
        if ident.value in found:
            stored += run.store(_label(ident), found[ident.value])
        else:
            run.fail(_label(ident), reasons.get(ident.value, "not found"))
    run.tick(len(idents) - done)
    return stored


def _add_pubmed(run: _Run, idents: list[Identifier]) -> list[WorkRecord]:
    from ..scrapers import pubmed
    pmid_of = {i.value: i.value for i in idents if i.kind == "pmid"}
    pmcids = [i.value for i in idents if i.kind == "pmcid"]
    reasons: dict[str, str] = {}
    if pmcids:
        try:
            for key, ids in (pubmed.convert_ids(run.client, pmcids) or {}).items():
                if (ids or {}).get("pmid"):
                    pmid_of[str(key).upper()] = str(ids["pmid"])
        except QuotaError:
            raise
        except FetchError as exc:
            reasons.update({p: f"PMC ID converter: {exc.args[0]}" for p in pmcids})
    try:
        records, _missing = pubmed.fetch_works(run.client, sorted(set(pmid_of.values())))
    except QuotaError:
        raise
    except FetchError as exc:
        records = []
        reasons.update({i.value: f"PubMed: {exc.args[0]}" for i in idents
                        if i.value not in reasons})
    by_pmid = {str(r.get("pmid")): r for r in records if r.get("pmid")}
    stored: list[WorkRecord] = []
    for ident in idents:
        pmid = pmid_of.get(ident.value)
        if pmid in by_pmid:
            stored += run.store(_label(ident), [by_pmid[pmid]])
        elif ident.kind == "pmcid" and ident.value not in reasons and pmid is None:
            run.fail(_label(ident), "the PMC ID converter knows no PMID for it")
        else:
            run.fail(_label(ident), reasons.get(ident.value, "not found in PubMed"))
    run.tick(len(idents))
    return stored


def _add_openalex(run: _Run, idents: list[Identifier]) -> list[WorkRecord]:
    """OpenAlex ids: the OpenAlex record, merged with Crossref's/DataCite's for its DOI."""
    from ..scrapers import openalex
    try:
        works = openalex.fetch_by_openalex(run.client, [i.value for i in idents])
    except QuotaError:
        raise
    except FetchError as exc:
        for ident in idents:
            run.fail(_label(ident), f"OpenAlex: {exc.args[0]}")
        run.tick(len(idents))
        return []
    by_id = {r.get("openalex_id"): r for r in map(openalex.to_record, works)}
    dois = sorted({doi for r in by_id.values() if (doi := r.get("doi"))})
    found, _reasons = _fetch_dois(run, dois) if dois else ({}, {})
    stored: list[WorkRecord] = []
    for ident in idents:
        record = by_id.get(ident.value)
        if record is None:
            run.fail(_label(ident), "not found in OpenAlex")
            continue
        stored += run.store(_label(ident), [*found.get(record.get("doi") or "", []), record])
    run.tick(len(idents))
    return stored


def _add_pages(run: _Run, idents: list[Identifier]) -> list[WorkRecord]:
    from ..scrapers import webpage
    stored: list[WorkRecord] = []
    for ident in idents:
        try:
            if ident.kind == "file":
                path = Path(ident.value)
                record = webpage.parse_page(path.read_bytes())  # the page names its URL
            else:
                record = webpage.fetch_page(run.client, ident.value)
        except QuotaError:
            raise
        except (FetchError, InputError, OSError) as exc:
            run.fail(_label(ident), str(exc.args[0]) if exc.args else type(exc).__name__)
        else:
            stored += run.store(_label(ident), [record])
        run.tick()
    return stored


def _add_refs(run: _Run, records: list[WorkRecord], skip: set[str]) -> None:
    """Fetch, in full, the DOIs the stored records cite that the KB holds only as stubs."""
    wanted: list[str] = []
    for record in records:
        for ref in record.get("references") or []:
            doi = ref.get("doi")
            if doi and doi not in skip and doi not in wanted:
                wanted.append(doi)
    full = {row[0] for row in run.conn.execute(
        "SELECT doi FROM works WHERE status = 'full' AND doi IS NOT NULL")}
    wanted = [d for d in wanted if d not in full]
    if not wanted:
        return
    found, reasons = _fetch_dois(run, wanted)
    for doi in wanted:
        if doi not in found:
            run.report.ref_failures[doi] = reasons.get(doi, "not found")
            continue
        actions = [store.upsert_work(run.conn, record).action for record in found[doi]]
        run.report.refs[max(actions, key=_RANK.__getitem__)] += 1


def add(conn: sqlite3.Connection, client: Client, identifiers: Iterable[str | Identifier], *,
        fetch_refs: bool = False, progress: Callable[[int], None] | None = None) -> AddReport:
    """Fetch and store the works these identifiers name; failures are reported per input.

    A quota that is exhausted (:class:`~kb.errors.QuotaError`) stops the run: what was fetched
    is stored and every input not yet done fails with its message.

    :param fetch_refs: also fetch full metadata of every DOI the added works cite.
    :param progress: called with the number of inputs just finished.
    :raises InputError: an identifier is malformed (nothing is fetched or stored).
    """
    idents = parse_inputs(identifiers)
    report = AddReport()
    run = _Run(conn, client, report, progress)
    stored: list[WorkRecord] = []
    groups = {
        "doi": [i for i in idents if i.kind == "doi"],
        "pubmed": [i for i in idents if i.kind in ("pmid", "pmcid")],
        "openalex": [i for i in idents if i.kind == "openalex"],
        "page": [i for i in idents if i.kind in ("url", "file")],
    }
    try:
        if groups["doi"]:
            stored += _add_dois(run, groups["doi"])
        if groups["pubmed"]:
            stored += _add_pubmed(run, groups["pubmed"])
        if groups["openalex"]:
            stored += _add_openalex(run, groups["openalex"])
        if groups["page"]:
            stored += _add_pages(run, groups["page"])
        if fetch_refs and stored:
            _add_refs(run, stored, {i.value for i in groups["doi"]})
    except KBError as exc:
        for ident in idents:
            label = _label(ident)
            if label not in run.actions and label not in report.failed:
                report.failed[label] = exc.args[0]
        if not isinstance(exc, QuotaError):
            raise
    finally:
        for label, action in run.actions.items():
            getattr(report, action).append(label)
        report.stats = client.stats
    return report
