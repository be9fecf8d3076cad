"""Output paths: `--out` never destroys the knowledge base, writes regular files atomically,
writes through devices and FIFOs, never follows a planted symbolic link; `kb build` does not
replace a KB it did not make; a killed run's leftovers are cleaned by the next one."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb import store
from kb.cli import cli

DOI = "10.5555/kb.0001"


@pytest.fixture
def small_kb(tmp_path: Path) -> Path:
    db = tmp_path / "kb.db"
    conn = store.connect(db)
    store.upsert_work(conn, {"source": "crossref", "doi": DOI,
                             "title": "Mesenchymal cells in cerebral palsy", "year": 2021})
    conn.close()
    return db


def _run(db: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--db", str(db), *args])
    return result.exit_code, result.output


def _works(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT doi FROM works").fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("command", [
    ["export", "--format", "ris"], ["graph", "--doi", DOI, "--format", "json"],
    ["evidence", "--format", "csv"]])
@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
def test_out_onto_the_open_kb_or_its_sidecars_is_refused(small_kb: Path, command: list[str],
                                                          suffix: str) -> None:
    code, output = _run(small_kb, *command, "--out", str(small_kb) + suffix)
    assert code == 2, output
    assert "knowledge base" in output and "Traceback" not in output
    assert _works(small_kb) == [(DOI,)]
    code, output = _run(small_kb, "search", "mesenchymal")
    assert code == 0 and "Mesenchymal" in output


def test_out_through_a_symlink_to_the_kb_is_refused(small_kb: Path, tmp_path: Path) -> None:
    link = tmp_path / "innocent.ris"
    link.symlink_to(small_kb)
    code, output = _run(small_kb, "export", "--format", "ris", "--out", str(link))
    assert code == 2 and _works(small_kb) == [(DOI,)]


@pytest.mark.parametrize("command", [
    ["export", "--format", "ris"], ["graph", "--doi", DOI, "--format", "html"],
    ["evidence", "--format", "csv"]])
def test_a_planted_symlink_is_not_followed(small_kb: Path, tmp_path: Path,
                                           command: list[str]) -> None:
    victim = tmp_path / "bashrc"
    victim.write_text("precious\n")
    link = tmp_path / "out.file"
    link.symlink_to(victim)
    code, output = _run(small_kb, *command, "--out", str(link))
    assert code == 2 and "symbolic link" in output, output
    assert victim.read_text() == "precious\n" and link.is_symlink()


@pytest.mark.parametrize("command", [
    ["export", "--format", "ris"], ["graph", "--doi", DOI, "--format", "png"],
    ["evidence", "--format", "csv"]])
def test_out_dev_null_stays_a_device(small_kb: Path, command: list[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    replaced: list[tuple] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: replaced.append((a, b)) or real_replace(a, b))
    code, output = _run(small_kb, *command, "--out", "/dev/null")
    assert code == 0, output
    assert not replaced, f"--out /dev/null was replaced by a file: {replaced}"
    assert Path("/dev/null").is_char_device()


@pytest.mark.parametrize("command,needle", [
    (["export", "--format", "ris"], "Mesenchymal"),
    (["graph", "--doi", DOI, "--format", "json"], "Mesenchymal"),
    (["evidence", "--format", "csv"], "label")])
def test_out_dev_stdout_and_dash_print(small_kb: Path, command: list[str], needle: str) -> None:
    for out in ("/dev/stdout", "-"):
        done = subprocess.run([sys.executable, "-m", "kb.cli", "--db", str(small_kb), *command,
                               "--out", out], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert needle in done.stdout, (out, done.stdout[:200])


def test_out_onto_a_fifo_writes_through(small_kb: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, output = _run(small_kb, "export", "--format", "ris", "--out", str(fifo))
    reader.join(10)
    assert code == 0, output
    assert b"Mesenchymal" in received[0] and fifo.is_fifo()


def test_a_failed_export_leaves_the_old_file_and_no_temp(small_kb: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "refs.ris"
    out.write_text("old\n")

    def broken(*args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("kb.query.export.write", broken)
    code, output = _run(small_kb, "export", "--format", "ris", "--out", str(out))
    assert code == 1 and "No space left" in output
    assert out.read_text() == "old\n"
    assert not list(tmp_path.glob(".refs.ris.*"))


def test_leftover_temp_files_of_a_killed_run_are_cleaned(small_kb: Path, tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".refs.ris.{dead.pid}.abcd1234.tmp"
    stale.write_text("half")
    live = tmp_path / f".refs.ris.{os.getpid()}.efgh5678.tmp"
    live.write_text("mine")
    code, output = _run(small_kb, "export", "--format", "ris", "--out", str(tmp_path / "refs.ris"))
    assert code == 0, output
    assert not stale.exists() and live.exists()


def test_build_does_not_replace_a_kb_it_did_not_make(small_kb: Path, tmp_path: Path) -> None:
    code, output = _run(small_kb, "build", "--offline")
    assert code == 2, output
    assert "--force" in output and _works(small_kb) == [(DOI,)]
    built = tmp_path / "built.db"
    code, output = _run(small_kb, "build", "--offline", "--out", str(built))
    assert code == 0, output
    code, output = _run(built, "build", "--offline")  # a previous build: rebuilt in place
    assert code == 0, output
    code, output = _run(small_kb, "build", "--offline", "--force")
    assert code == 0, output
    assert len(_works(small_kb)) > 10


def test_build_cleans_a_killed_builds_leftovers(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "kb.db"
    stale = [tmp_path / f".kb.db.building-{dead.pid}{s}" for s in ("", "-wal", "-shm")]
    for path in stale:
        path.write_bytes(b"x" * 100)
    code, output = _run(target, "build", "--offline")
    assert code == 0, output
    assert not any(p.exists() for p in stale)


def test_graph_png_to_a_terminal_is_refused_with_a_hint(small_kb: Path) -> None:
    import pty
    for out in ([], ["--out", "-"]):
        leader, follower = pty.openpty()
        try:
            done = subprocess.run([sys.executable, "-m", "kb.cli", "--db", str(small_kb),
                                   "graph", "--doi", DOI, "--format", "png", *out],
                                  stdout=follower, stderr=subprocess.PIPE, text=True, timeout=60)
        finally:
            os.close(follower)
            os.close(leader)
        assert done.returncode == 2 and "--out" in done.stderr, out


def test_disk_full_says_so_and_the_kb_is_intact(small_kb: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLITE_FULL, simulated by a page limit just above the KB's size."""
    ris = tmp_path / "many.ris"
    ris.write_text("".join(f"TY  - JOUR\nTI  - Cord blood cells in cerebral palsy {i} "
                           + "x" * 400 + f"\nPY  - 2020\nDO  - 10.5555/full.{i}\nER  - \n\n"
                           for i in range(400)))
    real_connect = store.connect

    def small_disk(*args: object, **kwargs: object):
        conn = real_connect(*args, **kwargs)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 4}")
        return conn
    monkeypatch.setattr(store, "connect", small_disk)
    code, output = _run(small_kb, "import", str(ris))
    assert code == 1, output
    assert "disk full" in output and "intact" in output, output
    assert "cannot rollback" not in output and "Traceback" not in output
    monkeypatch.setattr(store, "connect", real_connect)
    assert _works(small_kb) == [(DOI,)]
