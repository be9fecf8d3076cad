"""``kb import``: bring files of records into the knowledge base.

PubMed XML (efetch output, baseline and update files, ``.xml`` or ``.xml.gz``) streams through
:func:`kb.scrapers.pubmed_xml.parse_pubmed_xml` into :class:`kb.store.bulk.BulkWriter`, one
transaction per file: a malformed or truncated file leaves the database as it was. Files of a
few MB and more are parsed by a :mod:`multiprocessing` helper process that sends batches
down a pipe, so parsing and writing overlap; the transaction stays in this process. Versions
of one PMID within a batch collapse to the last one. Other formats (RIS, BibTeX, CSL-JSON,
MEDLINE, citation CSV) come from :mod:`kb.formats` and are stored with
:func:`kb.store.upsert_works` / :func:`kb.store.add_links`, in batches inside the file's
transaction. :func:`import_pubmed_query` backs ``kb pubmed`` (search, fetch, store).

Bounds: only regular files are read (a FIFO or device could block or never end); other formats
are read as :mod:`kb.formats` bounds them (size after decompression, encoding, line length); a
PubMed record of more than :data:`MAX_RECORD_TAGS` tags is refused before lxml builds it;
over-long fields are cut with a warning naming the record (:attr:`FileReport.warnings`).
"""
from __future__ import annotations

import gzip
import io
import sqlite3
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from ..errors import InputError, KBError, ParseError
from ..records import WorkRecord
from ..store import add_links, transaction, upsert_works

__all__ = ["FileReport", "QueryReport", "detect_format", "import_file", "import_files",
           "import_pubmed_xml", "import_pubmed_query"]

PUBMED_XML = "pubmed-xml"

#: progress(bytes_done, bytes_total) after each batch of records.
Progress = Callable[[int, int], None]


@dataclass
class FileReport:
    """What importing one file did."""

    path: str
    format: str
    records: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    deleted: int = 0
    citations: int = 0
    stubs: int = 0
    links: int = 0
    fts: str = ""
    seconds: float = 0.0
    error: str | None = None
    #: exit status the error maps to: 2 for a bad file (InputError), 1 for other failures
    error_code: int = 0
    #: records stored with fields cut to kb's bounds, one line each
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the user."""
        if self.error:
            return f"{self.path}: FAILED, nothing imported: {self.error}"
        parts = [f"{self.records} records", f"{self.added} added", f"{self.updated} updated",
                 f"{self.unchanged} unchanged"]
        if self.merged:
            parts.append(f"{self.merged} merged")
        if self.deleted or self.format == PUBMED_XML:
            parts.append(f"{self.deleted} deleted")
        if self.citations or self.stubs:
            parts.append(f"{self.citations} citations ({self.stubs} new cited works)")
        if self.links:
            parts.append(f"{self.links} citation links")
        return f"{self.path} [{self.format}]: " + ", ".join(parts) + f" in {self.seconds:.1f}s"


def detect_format(path: Path) -> str:
    """The file's format, from its content (``pubmed-xml`` or a :mod:`kb.formats` name).

    :raises InputError: the file cannot be read or its format is not recognised.
    """
    from ..formats import detect, regular_file
    from ..scrapers.pubmed_xml import is_pubmed_xml
    regular_file(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8192)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if is_pubmed_xml(head):
        return PUBMED_XML
    return detect(path)


def import_file(conn: sqlite3.Connection, path: Path, *, keep_raw: bool = False,
                progress: Progress | None = None, designs: bool = False) -> FileReport:
    """Import one file of any supported format in one transaction.

    Errors in the file are reported in :attr:`FileReport.error` (and nothing of it is
    stored); database errors propagate.

    :param designs: see :func:`import_pubmed_xml`.
    """
    path = Path(path)
    try:
        fmt = detect_format(path)
    except KBError as exc:
        return FileReport(str(path), "unknown", error=str(exc), error_code=exc.exit_code)
    if fmt == PUBMED_XML:
        return import_pubmed_xml(conn, path, keep_raw=keep_raw, progress=progress,
                                 designs=designs)
    return _import_other(conn, path, fmt)


def import_pubmed_xml(conn: sqlite3.Connection, path: Path, *, keep_raw: bool = False,
                      progress: Progress | None = None, batch_size: int = 500,
                      background: bool | None = None, designs: bool = False) -> FileReport:
    """Import a PubMed XML file (``.xml`` / ``.xml.gz``): records, citations, deletions.

    :param keep_raw: store each record's XML in the ``records`` table (slower, larger).
    :param background: parse in a helper process while this one writes (default: for files
        over a few MB); the transaction, and so all-or-nothing, stays here.
    :param designs: the caller annotates the works next (:func:`kb.evidence.annotate_due`):
        the parser gives each record the design that annotation would, where it is all the
        annotation would derive from the record (:func:`kb.evidence.pipeline.design_at_insert`),
        and a new work is stored with it, so the annotation does not read it again.
    """
    from ..scrapers.pubmed_xml import Deletion
    from ..store.bulk import BulkWriter, indexes_rebuilt_after

    report = FileReport(str(path), PUBMED_XML)
    started = time.perf_counter()
    try:
        total = path.stat().st_size
    except OSError as exc:
        report.error, report.error_code = f"cannot read {path}: {exc.strerror or exc}", 2
        return report
    if background is None:
        background = total >= _BACKGROUND_BYTES
    chunks = (_parse_elsewhere if background else _parse_here)(path, keep_raw, batch_size, designs)
    try:
        with _bulk_pragmas(conn), transaction(conn), ExitStack() as stack:
            # with a helper process parsing, the writer waits for it part of the time: index
            # each batch's new works then, rather than all of them after the last record
            writer = BulkWriter(conn, batch_size=batch_size + 1, defer_fts=not background)
            if writer.rows_before < _SMALL_KB:  # counted inside the file's transaction
                stack.enter_context(indexes_rebuilt_after(conn))
            batch: dict[Any, _Parsed] = {}
            deletions: list[str] = []
            for items, ref_keys, found, position in chunks:
                for item, keys, design in zip(items, ref_keys, found):
                    if isinstance(item, Deletion):
                        deletions.append(item.pmid)
                        continue
                    if deletions:
                        _write_batch(writer, batch)
                        writer.delete(deletions)
                        deletions = []
                    # versions of one PMID (Version="2", "3", ...) follow each other: last wins
                    key = item.get("pmid") or id(item)
                    batch.pop(key, None)
                    report.records += 1
                    if _bounded(report, item, report.records, deep=False):
                        design = None  # it was the design of the uncut text
                    batch[key] = (item, keys, design)
                if len(batch) >= batch_size:
                    _write_batch(writer, batch)
                if progress is not None:
                    progress(min(position, total), total)
            _write_batch(writer, batch)
            if deletions:
                writer.delete(deletions)
            stats = writer.finish()
    except KBError as exc:
        report.error, report.error_code = str(exc), exc.exit_code
        report.records = 0
        return report
    finally:
        chunks.close()
    if progress is not None:
        progress(total, total)
    for name in ("added", "updated", "unchanged", "merged", "deleted", "citations", "stubs",
                 "fts"):
        setattr(report, name, getattr(stats, name))
    report.seconds = time.perf_counter() - started
    return report


#: Imports into a KB with fewer works rebuild its browsing indexes once at the end
#: (:func:`kb.store.bulk.indexes_rebuilt_after`); into a bigger one they are kept up to date.
_SMALL_KB = 20000

#: Files at least this big are parsed in a helper process (start-up costs ~0.3 s).
_BACKGROUND_BYTES = 4 << 20

#: The import connection's page cache (KiB): the indexes being filled stay in memory; more
#: measured no faster and costs resident memory.
_CACHE_KIB = 32768


@contextmanager
def _bulk_pragmas(conn: sqlite3.Connection) -> Iterator[None]:
    """A larger page cache for the import, the connection's own size restored after."""
    before = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {before}")


#: A design :func:`kb.evidence.pipeline.design_at_insert` gives, or None
Design = tuple[str | None, str | None] | None
#: (items, each item's reference keys or None, each item's design at insert, bytes read so far)
Chunks = Generator[tuple[list[Any], list[list[str] | None], list[Design], int], None, None]
#: a record with its reference keys and design at insert, queued for the writer
_Parsed = tuple[WorkRecord, list[str] | None, Design]


def _parse_here(path: Path, raw: bool, size: int, designs: bool) -> Chunks:
    """Items in lists of ``size``, parsed in this process, with each record's citation keys
    (:func:`kb.store.ref_keys`) and, when ``designs``, design at insert
    (:func:`kb.evidence.pipeline.design_at_insert`), computed here so that a helper process
    takes that work off the writer and the annotation after the import."""
    from ..evidence.pipeline import design_at_insert
    from ..scrapers.pubmed_xml import Deletion, parse_pubmed_xml
    from ..store import ref_keys
    try:
        handle: IO[bytes] = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
        handle.seek(0)
        counted = _TagCounter(gzip.GzipFile(fileobj=handle) if gzipped else handle, path)
        chunk: list[Any] = []
        keys: list[list[str] | None] = []
        found: list[Design] = []
        # (a RawIOBase: typeshed does not count it an IO[bytes]; lxml reads it as one)
        for item in parse_pubmed_xml(cast(IO[bytes], counted), raw=raw):
            counted.tags, counted.number = 0, counted.number + 1
            chunk.append(item)
            if isinstance(item, Deletion):
                keys.append(None)
                found.append(None)
            else:
                keys.append(ref_keys(item.get("references") or ()))
                found.append(design_at_insert(item) if designs else None)
            if len(chunk) >= size:
                yield chunk, keys, found, _position(handle)
                chunk, keys, found = [], [], []
        yield chunk, keys, found, _position(handle)


#: A PubMed record whose XML holds more tags than this is refused (an element bomb: a title
#: of millions of inline elements took 3.6 GB); real records hold a few thousand.
MAX_RECORD_TAGS = 1_000_000


class _TagCounter(io.RawIOBase):
    """The (decompressed) XML bytes, counting tags since :attr:`tags` was last reset to 0
    (after each record); refuses a record past :data:`MAX_RECORD_TAGS` before lxml builds it."""

    def __init__(self, stream: IO[bytes] | io.BufferedIOBase, path: Path) -> None:
        self._stream, self._path, self.tags = stream, path, 0
        self.name = str(path)  # parse_pubmed_xml names the file in its errors
        #: records read so far
        self.number = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.tags = 0
        return self._stream.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        self.tags += data.count(b"<")
        if self.tags > MAX_RECORD_TAGS:
            raise ParseError(f"{self._path}: record {self.number + 1:,} holds more than "
                             f"{MAX_RECORD_TAGS:,} XML tags (an element bomb?); refused")
        buffer[:len(data)] = data
        return len(data)


def _parse_into(sender: Any, path: str, raw: bool, size: int, designs: bool) -> None:
    """The helper process: send (kind, payload, position) messages down the pipe ``sender``."""
    try:
        for chunk, keys, found, position in _parse_here(Path(path), raw, size, designs):
            sender.send(("items", (chunk, keys, found), position))
        sender.send(("done", None, 0))
    except KBError as exc:
        sender.send(("error", exc, 0))
    except Exception as exc:  # reported by the importing process, which names the file
        sender.send(("error", KBError(f"{path}: the PubMed parser failed: {exc!r}"), 0))
    finally:
        sender.close()


def _parse_elsewhere(path: Path, raw: bool, size: int, designs: bool) -> Chunks:
    """Like :func:`_parse_here`, with the parsing done by a :mod:`multiprocessing` process that
    sends its batches down a pipe, so this process writes while that one parses. Started by
    fork where the platform has it (no second interpreter start-up), else by spawn."""
    import multiprocessing

    forks = "fork" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork") if forks else multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    helper = context.Process(target=_parse_into, args=(sender, str(path), raw, size, designs),
                             name="kb-pubmed-parser", daemon=True)
    helper.start()
    sender.close()  # this process only reads; EOF then means the helper is gone
    try:
        while True:
            try:
                kind, payload, position = receiver.recv()
            except EOFError:
                helper.join()
                raise KBError(f"{path}: the PubMed parser process stopped "
                              f"(exit code {helper.exitcode})") from None
            if kind == "items":
                yield *payload, position
            elif kind == "done":
                return
            else:
                raise payload
    finally:
        receiver.close()
        if helper.is_alive():
            helper.kill()
        helper.join()


def _write_batch(writer: Any, batch: dict[Any, _Parsed]) -> None:
    for record, keys, design in batch.values():
        writer.add(record, keys, design)
    writer.flush()
    batch.clear()


def _position(handle: IO[bytes]) -> int:
    try:
        return handle.tell()
    except (OSError, ValueError):
        return 0


def _import_other(conn: sqlite3.Connection, path: Path, fmt: str) -> FileReport:
    """A non-PubMed file through :mod:`kb.formats`, streamed in batches of works and citation
    links inside the file's one transaction."""
    from ..formats import read
    report = FileReport(str(path), fmt)
    started = time.perf_counter()
    works: list[Any] = []
    links: list[Any] = []
    results: list[Any] = []

    def flush() -> None:
        results.extend(upsert_works(conn, works))
        report.links += add_links(conn, links) if links else 0
        works.clear()
        links.clear()

    try:
        with transaction(conn):
            for item in read(path, fmt):
                if "citing" in item:
                    links.append(item)
                else:
                    _bounded(report, item, report.records + 1)
                    works.append(item)
                    report.records += 1
                if len(works) + len(links) >= _OTHER_BATCH:
                    flush()
            flush()
    except KBError as exc:
        report.error, report.error_code = str(exc), exc.exit_code
        report.records = report.links = 0
        return report
    for result in results:
        setattr(report, result.action, getattr(report, result.action) + 1)
        report.merged += len(result.merged)
    report.seconds = time.perf_counter() - started
    return report


#: Works (or citation links) of a non-PubMed file read before they are stored.
_OTHER_BATCH = 1000


def _bounded(report: FileReport, record: WorkRecord, number: int, *, deep: bool = True) -> bool:
    """Cut the record's over-long fields (:func:`kb.formats.bound`), noting it in the report;
    whether any was cut. (A PubMed record's lists are bounded by :data:`MAX_RECORD_TAGS`.)"""
    from ..formats import bound
    cut = bound(record, deep=deep)
    if cut:
        name = (f"PMID {record['pmid']}" if record.get("pmid") else
                f"DOI {record['doi']}" if record.get("doi") else f"record {number:,}")
        report.warnings.append(f"{report.path}: {name}: " + "; ".join(cut))
    return bool(cut)


def import_files(conn: sqlite3.Connection, paths: Iterable[Path], *, keep_raw: bool = False,
                 progress: Callable[[Path], Progress | None] | None = None) -> list[FileReport]:
    """Import files one after another, one transaction each; see :func:`import_file`."""
    return [import_file(conn, Path(p), keep_raw=keep_raw,
                        progress=progress(Path(p)) if progress else None) for p in paths]


@dataclass
class QueryReport:
    """What :func:`import_pubmed_query` did."""

    query: str
    count: int = 0
    fetched: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    citations: int = 0
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pmids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the user."""
        line = (f"PubMed: {self.count:,} found, {self.fetched:,} fetched: {self.added} added, "
                f"{self.updated} updated, {self.unchanged} unchanged, {self.citations} citations")
        if self.missing:
            line += f"; {len(self.missing)} not returned by PubMed"
        return line


def import_pubmed_query(conn: sqlite3.Connection, client: Any, query: str, *,
                        max_results: int = 100, batch_size: int = 200,
                        progress: Callable[[int], None] | None = None) -> QueryReport:
    """Search PubMed, fetch the records found and store them (one transaction per batch, so
    an interrupted run keeps what it stored)."""
    from ..scrapers import pubmed
    from ..store.bulk import BulkWriter

    result = pubmed.search(client, query, max_results=max_results)
    report = QueryReport(query, count=result.count, warnings=list(result.warnings),
                         pmids=list(result.pmids))
    for start in range(0, len(result.pmids), batch_size):
        chunk = result.pmids[start:start + batch_size]
        records, missing = pubmed.fetch_works(client, chunk)
        report.missing += missing
        with transaction(conn):
            writer = BulkWriter(conn, batch_size=batch_size)
            for record in records:
                writer.add(record)
            stats = writer.finish()
        report.fetched += len(records)
        report.added += stats.added
        report.updated += stats.updated
        report.unchanged += stats.unchanged
        report.citations += stats.citations
        if progress is not None:
            progress(len(chunk))
    return report
