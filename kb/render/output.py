"""The one way kb writes an ``--out`` file: never onto the knowledge base, atomically for a
regular file, through ``-`` / a device / a FIFO, and never through a planted symbolic link.
"""
from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, TextIO, TypeVar, overload

from ..errors import InputError, KBError

__all__ = ["write_output", "check_out", "clean_leftovers", "TEMP_SUFFIX"]

T = TypeVar("T")

#: Temporary files are ``.NAME.PID.RANDOM.tmp`` beside the target (the PID lets the next run
#: tell a dead writer's leftover from a live one's file).
TEMP_SUFFIX = ".tmp"
#: Files beside an SQLite database that belong to it.
_DB_SIDECARS = ("", "-wal", "-shm", "-journal")
#: Streams the user names on purpose: written through, never replaced.
_STREAM_PREFIXES = ("/dev/", "/proc/")


def check_out(out: str | os.PathLike[str] | None, db_path: str | os.PathLike[str] | None
              ) -> None:
    """Refuse an output path that is the knowledge base ``db_path`` or one of its files
    (nothing to check for ``None`` or ``-``, standard output).

    :raises InputError: it is (exit status 2).
    """
    if out is None or db_path is None or str(out) == "-":
        return
    target = os.path.realpath(out)
    db = os.path.realpath(db_path)
    for suffix in _DB_SIDECARS:
        if target == db + suffix or _same_file(out, db + suffix):
            raise InputError(f"refusing to write {out}: it is the knowledge base "
                             f"{'file' if not suffix else suffix + ' file'} in use ({db_path})",
                             hint="give --out another file name")


def _same_file(a: str | os.PathLike[str], b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_stream(path: str) -> bool:
    """``path`` names something written through rather than replaced: a device, a FIFO, a
    socket, or a /dev or /proc name (``/dev/stdout`` may point at a regular file)."""
    if path.startswith(_STREAM_PREFIXES):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@overload
def write_output(out: str | os.PathLike[str] | None, produce: Callable[[TextIO], T], *,
                 db_path: str | os.PathLike[str] | None = None,
                 binary: Literal[False] = False) -> T: ...


@overload
def write_output(out: str | os.PathLike[str] | None, produce: Callable[[BinaryIO], T], *,
                 db_path: str | os.PathLike[str] | None = None, binary: Literal[True]) -> T: ...


def write_output(out: str | os.PathLike[str] | None, produce: Callable[[Any], T], *,
                 db_path: str | os.PathLike[str] | None = None, binary: bool = False) -> T:
    """Run ``produce(handle)`` on the output named ``out`` and return what it returns.

    ``None`` or ``-`` is standard output; a device or FIFO is written through; a regular file
    is written to a temporary file in the same folder that replaces it only when ``produce``
    succeeds. An existing symbolic link to a regular file is refused (kb writes no file it
    was not named), and so is the knowledge base ``db_path`` itself.

    :raises InputError: the path is refused, or its folder is missing (exit status 2).
    :raises KBError: writing failed; an existing file is left as it was.
    """
    if out is None or str(out) == "-":
        stream = sys.stdout.buffer if binary else sys.stdout
        result = produce(stream)
        stream.flush()
        return result
    check_out(out, db_path)
    name = str(out)
    if os.path.isdir(name):
        raise InputError(f"cannot write {name}: it is a folder")
    if _is_stream(name):
        return _write_through(name, produce, binary)
    if os.path.islink(name):
        raise InputError(f"refusing to write {name}: it is a symbolic link to "
                         f"{os.path.realpath(name)}",
                         hint="remove the link or name the file it points to")
    return _write_atomically(Path(name), produce, binary)


def _write_through(name: str, produce: Callable[[Any], T], binary: bool) -> T:
    try:
        fd = os.open(name, os.O_WRONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"cannot write {name}: {exc.strerror or exc}") from exc
    try:
        with _opened(fd, binary) as handle:
            return produce(handle)
    except OSError as exc:  # a device that takes no writes: the user's target, not kb
        raise InputError(f"cannot write {name}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def _opened(fd: int, binary: bool) -> Iterator[IO[Any]]:
    if binary:
        with os.fdopen(fd, "wb") as handle:
            yield handle
    else:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle


def _write_atomically(path: Path, produce: Callable[[Any], T], binary: bool) -> T:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: the folder {folder} does not exist")
    clean_leftovers(path)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX,
                                    dir=folder)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with _opened(fd, binary) as handle:
            result = produce(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except OSError as exc:
        raise KBError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)
    return result


def clean_leftovers(path: str | os.PathLike[str], marker: str = TEMP_SUFFIX) -> list[Path]:
    """Remove ``.NAME.PID…`` files beside ``path`` that a killed kb left behind (their PID is
    no longer running); returns those removed. ``marker`` is the file's kind: ``.tmp`` for
    output files, ``building`` for a build's database."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    removed: list[Path] = []
    try:
        candidates = list(folder.glob(f".{_glob_escape(path.name)}.*"))
    except OSError:
        return removed
    for leftover in candidates:
        pid = _writer_pid(leftover.name[len(path.name) + 2:], marker)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed.append(leftover)
    return removed


def _glob_escape(name: str) -> str:
    import glob
    return glob.escape(name)


def _writer_pid(rest: str, marker: str) -> int | None:
    """The PID in the part of a leftover's name after ``.NAME.``: ``PID.RANDOM.tmp`` for an
    output file, ``building-PID`` (and its -wal/-journal) for a build."""
    if marker == TEMP_SUFFIX:
        head, _, tail = rest.partition(".")
        return int(head) if head.isdigit() and tail.endswith(TEMP_SUFFIX) else None
    if rest.startswith(marker + "-"):
        digits = rest[len(marker) + 1:].split("-")[0]
        return int(digits) if digits.isdigit() else None
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
