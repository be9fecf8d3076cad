"""The ``kb`` command line: a thin layer that parses, calls one library function, and prints.

Commands live in ``kb/commands/<module>.py`` and are imported only when used, so ``kb search``
starts without loading the network, graph or web stacks.
"""
from __future__ import annotations

import errno
import functools
import importlib
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import InputError, KBError

F = TypeVar("F", bound=Callable[..., Any])

#: command name -> "module:attribute" under kb.commands, in the order --help lists them.
COMMANDS: dict[str, str] = {
    "init": "core:init",
    "stats": "core:stats",
    "search": "search:search",
    "add": "add:add",
    "pubmed": "pubmed:pubmed",
    "import": "imports:import_",
    "export": "export:export",
    "graph": "graph:graph",
    "crawl": "crawl:crawl",
    "resolve": "resolve:resolve",
    "conflicts": "identity:conflicts",
    "merge": "identity:merge",
    "merges": "identity:merges",
    "unmerge": "identity:unmerge",
    "gaps": "graph:gaps",
    "evidence": "evidence:evidence",
    "outcomes": "outcomes:outcomes",
    "meta": "meta:meta",
    "build": "build:build",
    "serve": "serve:serve",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(f"kb.commands.{module_name}"),
                                         attribute)
        return command


@dataclass
class Settings:
    """Global options, handed to every command through the click context."""

    db_path: Path
    verbosity: int = 0
    debug: bool = False

    def open(self, *, create: bool = False) -> sqlite3.Connection:
        """Open the knowledge base (``create`` makes a new one if the file is missing); one
        in a folder or file kb may not write is opened read-only (reading commands work,
        writes fail with a database error)."""
        import os

        from . import store
        folder = self.db_path.parent if str(self.db_path.parent) else Path(".")
        if self.db_path.exists() and not (os.access(self.db_path, os.W_OK)
                                          and os.access(folder, os.W_OK)):
            return store.connect(self.db_path, readonly=True)
        return store.connect(self.db_path, create=create)

    def say(self, message: str, *, level: int = 0) -> None:
        """Print a message to stderr unless --quiet (level 1 needs --verbose)."""
        if self.verbosity >= level:
            click.echo(message, err=True)


pass_settings = click.make_pass_decorator(Settings)


@contextmanager
def kb_errors(settings: Settings | None = None) -> Iterator[None]:
    """Turn kb errors into clean click errors: exit 1 for runtime failures, 2 for bad input."""
    try:
        yield
    except KBError as exc:
        if settings is not None and settings.debug:
            raise
        error = click.ClickException(_redact(str(exc)))
        # click annotates exit_code as a ClassVar, yet reads it from the instance
        error.exit_code = exc.exit_code  # type: ignore[misc]
        raise error from exc
    except sqlite3.DatabaseError as exc:  # OperationalError, and a damaged file
        if settings is not None and settings.debug:
            raise
        if _disk_full(exc):
            raise click.ClickException("disk full: the change was not saved; the knowledge "
                                       "base is intact (free some space and run again)"
                                       ) from exc
        raise click.ClickException(f"database error: {exc}") from exc
    except OSError as exc:
        if settings is not None and settings.debug or exc.errno != errno.ENOSPC:
            raise
        raise click.ClickException(f"disk full: {exc.filename or 'a file'} could not be "
                                   "written; the knowledge base is intact") from exc


def _disk_full(exc: sqlite3.DatabaseError) -> bool:
    """SQLITE_FULL, or the failed rollback that follows it in Python's sqlite3."""
    error: BaseException | None = exc
    while error is not None:
        if getattr(error, "sqlite_errorcode", None) == 13 \
                or "database or disk is full" in str(error):  # SQLITE_FULL
            return True
        error = error.__cause__ or error.__context__
    return False


def _redact(message: str) -> str:
    """``message`` without secrets, if this run fetched anything (kb.http knows the keys)."""
    http = sys.modules.get("kb.http")
    return http.redact(message) if http is not None else message


def annotate_stored(settings: Settings, conn: sqlite3.Connection, stored: bool) -> None:
    """If this run ``stored`` works, annotate the evidence (designs, trial facts, lineage,
    retraction flags) of every work stored or changed since it was last annotated (a run that
    stored nothing, e.g. one that refused its input, leaves the KB as it was)."""
    if not stored:
        return
    from .evidence import annotate_due
    counts = annotate_due(conn)
    settings.say(f"annotated {counts['works']} works: study designs, trial facts, lineage, "
                 "retraction flags", level=1)


def network_options(func: F) -> F:
    """--no-cache / --refresh / --offline, for commands that fetch. The command receives the
    resulting :class:`kb.config.Config` as ``config`` instead of the three flags."""
    @functools.wraps(func)
    def with_config(*args: Any, no_cache: bool, refresh: bool, offline: bool,
                    **kwargs: Any) -> Any:
        from .config import load_config
        settings = click.get_current_context().find_object(Settings)
        _log_to_stderr(settings.verbosity if settings else 0)
        with kb_errors():
            base = load_config()
        config = base.with_options(use_cache=base.use_cache and not no_cache, refresh=refresh,
                                   offline=base.offline or offline)
        return func(*args, config=config, **kwargs)

    decorated: Any = with_config
    decorated = click.option("--offline", is_flag=True, envvar="KB_OFFLINE",
                             help="Answer only from the HTTP cache (KB_OFFLINE=1).")(decorated)
    decorated = click.option("--refresh", is_flag=True,
                             help="Fetch again even when the cache has an answer.")(decorated)
    decorated = click.option("--no-cache", "no_cache", is_flag=True,
                             help="Neither read nor write the HTTP cache.")(decorated)
    return decorated


def _log_to_stderr(verbosity: int) -> None:
    """Show kb's log records (HTTP retries and pauses) on stderr by the run's verbosity:
    errors only with --quiet, warnings by default, everything with --verbose."""
    import logging

    class ClickHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            click.echo(_redact(self.format(record)), err=True)  # the current stderr, as say() does

    handler = ClickHandler({-1: logging.ERROR, 0: logging.WARNING}.get(verbosity, logging.INFO))
    logger = logging.getLogger("kb")
    logger.handlers = [handler]
    if verbosity > 0:
        logger.setLevel(logging.INFO)


def format_option(*choices: str, default: str | None = None) -> Callable[[F], F]:
    """A --format option with these choices (the first is the default)."""
    return click.option("--format", "fmt", type=click.Choice(choices), default=default or choices[0],
                        show_default=True, help="Output format.")


def refuse_binary_to_terminal(fmt: str, out: str | None) -> None:
    """A PNG for standard output (no ``--out``, or ``-``) is refused while that is a terminal.

    :raises click.UsageError: it would print binary into the terminal (exit status 2).
    """
    if fmt == "png" and out in (None, "-") and sys.stdout.isatty():
        raise click.UsageError("PNG is binary: pass --out FILE or redirect standard output")


def out_option(func: F) -> F:
    """--out FILE (default: standard output)."""
    return click.option("--out", "out", type=click.Path(dir_okay=False, allow_dash=True),
                        help="Write to FILE instead of standard output (-: standard output; "
                             "never the open KB; a file is replaced only once complete).")(func)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                               "max_content_width": 100})
@click.option("--db", "db_path", envvar="KB_DB", default="kb.db", show_default=True,
              type=click.Path(path_type=Path), help="The knowledge base file (env KB_DB).")
@click.option("-q", "--quiet", "verbosity", flag_value=-1, help="Print only results and errors.")
@click.option("-v", "--verbose", "verbosity", flag_value=1, help="Print more about the work done.")
@click.option("--debug", is_flag=True, hidden=True, help="Show tracebacks.")
@click.version_option(__version__, prog_name="kb")
@click.pass_context
def cli(ctx: click.Context, db_path: Path, verbosity: int | None, debug: bool) -> None:
    """kb: the literature and evidence knowledge base for cell therapy in cerebral palsy.

    Collect the field's papers (Crossref, DataCite, PubMed, OpenAlex, OpenCitations), see which
    trials a pooled analysis or review stands on, search the evidence, and browse it in
    Datasette. Start with `kb search mesenchymal` on the bundled kb.db.
    """
    ctx.obj = Settings(db_path=db_path, verbosity=verbosity or 0, debug=debug)


def main() -> None:  # pragma: no cover - console entry point alias
    cli(prog_name="kb")


if __name__ == "__main__":  # pragma: no cover
    # run the imported kb.cli, not this __main__ copy: commands look up kb.cli.Settings
    from kb.cli import main as _main
    _main()


__all__ = ["cli", "Settings", "pass_settings", "kb_errors", "annotate_stored", "network_options",
           "format_option", "out_option", "InputError"]
