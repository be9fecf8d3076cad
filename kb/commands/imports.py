"""kb import."""
from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..cli import Settings, annotate_stored, kb_errors, pass_settings

if TYPE_CHECKING:
    from ..ingest.files import FileReport


@click.command(name="import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--keep-raw", is_flag=True,
              help="Also store each PubMed record's XML in the records table (slower, larger).")
@click.option("--annotate/--no-annotate", default=True, show_default=True,
              help="Derive study designs, trial facts, lineage and retraction flags for the "
                   "imported works (about a quarter of the import's time on a PubMed file). "
                   "Skipped, they are annotated by the next "
                   "command that stores works, or by `kb evidence --annotate`.")
@pass_settings
def import_(settings: Settings, files: tuple[Path, ...], keep_raw: bool, annotate: bool) -> None:
    """Import files of records: PubMed XML, RIS, BibTeX, CSL-JSON, MEDLINE/nbib, citation CSV.

    The format is detected from each file's content. PubMed XML may be an efetch download or a
    baseline / update file (.xml or .xml.gz); records withdrawn by an update file's
    DeleteCitation are removed. Works already in the knowledge base are merged, so importing
    a file again changes nothing. Each file is imported in one transaction: a broken file is
    reported and nothing of it is stored, and the next file is imported. Exits with status 2 if
    no file could be imported, 1 if some failed.

    Files may be gzip, bzip2 or xz compressed, in UTF-8 (with or without BOM), UTF-16 (with
    BOM) or else cp1252; at most 256 MiB decompressed. Over-long fields are cut (4,096
    characters, 100,000 for abstracts and notes) with a warning naming the record.

    Example: kb import pubmed24n1219.xml.gz my-library.ris
    """
    from ..errors import InputError, KBError

    with kb_errors(settings):
        conn = settings.open(create=True)
        try:
            failed = _import_each(settings, conn, files, keep_raw, annotate)
            annotate_stored(settings, conn, annotate and len(failed) < len(files))
        finally:
            conn.close()
        if failed:
            message = (f"{len(failed)} of {len(files)} files failed: "
                       + ", ".join(r.path for r in failed))
            if len(failed) == len(files) and all(r.error_code == 2 for r in failed):
                raise InputError(message)  # nothing imported, every file was unusable input
            raise KBError(message)


def _import_each(settings: Settings, conn: sqlite3.Connection, files: tuple[Path, ...],
                 keep_raw: bool, annotate: bool) -> list[FileReport]:
    """Import the files one by one (a transaction each); return the reports of those that failed."""
    from ..ingest.files import import_file

    failed = []
    for path in files:
        bar = _bar(settings, path)
        try:
            report = import_file(conn, path, keep_raw=keep_raw, designs=annotate,
                                 progress=_updater(bar) if bar else None)
        finally:
            if bar is not None:
                bar.close()
        settings.say(report.summary())
        for warning in report.warnings[:_WARNINGS]:
            settings.say(f"warning: {warning}")
        if len(report.warnings) > _WARNINGS:
            settings.say(f"warning: … and {len(report.warnings) - _WARNINGS:,} more records of "
                         f"{path} with fields cut")
        if report.error:
            failed.append(report)
    return failed


#: Cut-field warnings shown per file.
_WARNINGS = 20


def _bar(settings: Settings, path: Path) -> Any:  # a tqdm bar or None
    if settings.verbosity < 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name,
                leave=False, file=sys.stderr)


def _updater(bar: Any) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        bar.update(done - bar.n)
    return update
