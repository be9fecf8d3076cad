"""Crash safety: `kill -9` in the middle of `kb import` and of `kb crawl`.

After the kill the file must pass ``PRAGMA integrity_check``, hold no half-written work (every
full work it holds is identical, with its authors, terms and references, to that work after an
uninterrupted run), and a rerun must end in exactly the state the uninterrupted run reaches
(compared table by table, timestamps excluded, ids replaced by identities).
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kb.config import BASE_URLS
from tests.faults import SyntheticCorpus, canonical_columns, canonical_state, pubmed_file, work_keys
from tests.replay import Reply, ReplayServer, Request

pytestmark = pytest.mark.slow




def _kb(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kb.cli", *args], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()``; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("the command neither finished nor reached the kill point in time")


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.decode(errors="replace")


def _integrity(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def _per_work(state: dict[str, list[tuple]]) -> dict[str, dict[str, list[tuple]]]:
    """Group the rows of work-owned tables under their work key (first column that is one)."""
    grouped: dict[str, dict[str, list[tuple]]] = {}
    for table in ("works", "work_authors", "work_mesh", "keywords", "publication_types",
                  "accessions", "citations"):
        for row in state.get(table, []):
            key = row[0]
            grouped.setdefault(key, {}).setdefault(table, []).append(row)
    return grouped


def _column(db: Path, table: str, name: str) -> int:
    """Where ``name`` stands in a canonical row of ``table``."""
    conn = sqlite3.connect(db)
    try:
        return canonical_columns(conn, table).index(name)
    finally:
        conn.close()


#: What annotation derives on a work row. `kb import` stores a file's works in one transaction
#: and annotates them in the next, so a kill between the two leaves these unset on works whose
#: ``annotated_at`` is NULL; the next command annotates what is due (kb.evidence.annotate_due).
DERIVED = ("study_design", "design_source")


def _blank_derived(db: Path, *states: dict[str, list[tuple]]) -> None:
    """In each state, blank :data:`DERIVED` on the works ``db`` has not annotated yet."""
    conn = sqlite3.connect(db)
    try:
        keys = work_keys(conn)
        waiting = {keys[r[0]] for r in conn.execute(
            "SELECT id FROM works WHERE annotated_at IS NULL")}
    finally:
        conn.close()
    at = [_column(db, "works", name) for name in DERIVED]
    for state in states:
        state["works"] = [tuple(None if row[0] in waiting and i in at else v
                                for i, v in enumerate(row)) for row in state["works"]]


def _assert_no_half_written(db: Path, reference: dict[str, list[tuple]], *,
                            growing_edges: bool = False, skip: dict | None = None) -> int:
    """Every full work in ``db`` equals the same work in ``reference``; returns how many.

    With ``growing_edges`` (a crawl, whose edges arrive as neighbours are expanded), a work's
    citation rows need only be among the reference's (by citing work and reference key), each
    with a subset of its sources; a row to a stub the clean run does not have is allowed (a
    PMID-only stub from PubMed that a later round merges into the work OpenAlex describes).
    A work not annotated yet may lack what annotation derives (:data:`DERIVED`).
    """
    state = canonical_state(db, **(skip or {}))
    if not skip:  # (with the evidence skipped there is nothing derived left to blank)
        reference = {**reference, "works": list(reference["works"])}
        _blank_derived(db, state, reference)
    full = {row[0] for row in state.get("works", []) if "full" in row}
    if growing_edges:
        stubs = {row[0] for row in state.get("works", []) if "stub" in row}
        index = {(row[0], row[2]): row for row in reference.get("citations", [])}
        at = _column(db, "citations", "sources")
        for row in state.pop("citations", []):
            if (row[0], row[2]) not in index and row[1] in stubs:
                continue
            assert (row[0], row[2]) in index, f"a citation row the clean run never made: {row}"
            sources = set(json.loads(row[at]))
            wanted = set(json.loads(index[row[0], row[2]][at]))
            assert sources <= wanted, f"edge sources {sources} not within {wanted}: {row}"
        reference = {**reference, "citations": []}
    mine, theirs = _per_work(state), _per_work(reference)
    broken = [key for key in full if mine.get(key) != theirs.get(key)]
    if broken:
        got, want = mine.get(broken[0], {}), theirs.get(broken[0], {})
        diff = {}
        for table in set(got) | set(want):
            extra = sorted(set(got.get(table, [])) - set(want.get(table, [])), key=repr)
            lack = sorted(set(want.get(table, [])) - set(got.get(table, [])), key=repr)
            if len(extra) == len(lack) == 1:  # one row each: show the differing columns
                extra, lack = [tuple((i, v) for i, v in enumerate(extra[0]) if v != lack[0][i])], \
                    [tuple((i, w) for i, w in enumerate(lack[0]) if w != extra[0][i])]
            if extra or lack:
                diff[table] = (extra[:2], lack[:2])
        raise AssertionError(f"{len(broken)} half-written works, e.g. {broken[:3]}; the first "
                             f"differs in (extra, missing): {diff}")
    return len(full)


def _assert_same(got: dict[str, list[tuple]], want: dict[str, list[tuple]]) -> None:
    problems = [f"{t}: {len(set(got.get(t, [])) - set(want.get(t, [])))} extra, "
                f"{len(set(want.get(t, [])) - set(got.get(t, [])))} missing rows"
                for t in sorted(set(got) | set(want)) if set(got.get(t, [])) != set(want.get(t, []))]
    assert not problems, problems


# -- kb import -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~9,500 PubMed records (about 35 MB) from 50 renumbered copies of the corpus."""
    corpus = SyntheticCorpus(n=200, pubmed_only=40)
    return pubmed_file(tmp_path_factory.mktemp("xml") / "big.xml", corpus, repeat=50)


@pytest.fixture(scope="module")
def import_reference(big_file: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> dict[str, list[tuple]]:
    db = tmp_path_factory.mktemp("ref") / "kb.db"
    code, err = _finish(_kb(["--db", str(db), "-q", "import", str(big_file)], {}))
    assert code == 0, err[-2000:]
    return canonical_state(db)


def _wal_grew(db: Path, size: int) -> Callable[[], bool]:
    wal = Path(f"{db}-wal")
    return lambda: wal.exists() and wal.stat().st_size > size


@pytest.mark.parametrize("when", ["early", "late"])
def test_kill_9_during_import_then_rerun(big_file: Path, tmp_path: Path, when: str,
                                         import_reference: dict[str, list[tuple]]) -> None:
    db = tmp_path / "kb.db"
    subprocess.run([sys.executable, "-m", "kb.cli", "--db", str(db), "init"], check=True,
                   capture_output=True)
    proc = _kb(["--db", str(db), "-q", "import", str(big_file)], {})
    threshold = 2 * 2**20 if when == "early" else 15 * 2**20
    assert _kill_when(proc, _wal_grew(db, threshold)), \
        "kb import finished before it could be killed (make the file bigger)"
    _integrity(db)
    _assert_no_half_written(db, import_reference)
    code, err = _finish(_kb(["--db", str(db), "-q", "import", str(big_file)], {}))
    assert code == 0, err[-2000:]
    _integrity(db)
    _assert_same(canonical_state(db), import_reference)


# -- kb crawl --------------------------------------------------------------------------------

def _slow(corpus: SyntheticCorpus, delay: float) -> Callable[[Request], Reply]:
    def respond(request: Request) -> Reply:
        return dataclasses.replace(corpus.respond(request), delay=delay)
    return respond


def _crawl_env(server: ReplayServer, where: Path) -> dict[str, str]:
    where.mkdir(parents=True, exist_ok=True)
    env = {var: f"{server.url}/{name}" for name, (var, _) in BASE_URLS.items()}
    env.update({"KB_DB": str(where / "kb.db"), "KB_CACHE_DIR": str(where / "cache"),
                "KB_MAILTO": "tests@example.org", "KB_RETRIES": "2", "KB_TIMEOUT": "5"})
    for var in ("KB_OFFLINE", "KB_NO_CACHE", "NCBI_API_KEY", "OPENALEX_API_KEY"):
        env.pop(var, None)
    return env


def _crawl_args(corpus: SyntheticCorpus) -> list[str]:
    return ["crawl", "--doi", corpus.works[120].doi, "--depth", "2", "--direction", "both",
            "--max-works", "120"]


#: What kb derives after a run (designs, trial facts, lineage, flags): compared in the second
#: variant (works a killed run stored are annotated by the rerun: works.annotated_at).
EVIDENCE = {"skip_tables": frozenset({"trials", "trial_facts", "trial_registry_ids", "trial_arms",
                                      "trial_reports", "lineage", "work_flags"}),
            "skip_columns": frozenset({"works.study_design", "works.design_source"})}


@pytest.mark.parametrize("evidence", [
    pytest.param(False, id="records-and-edges"),
    pytest.param(True, id="with-evidence")])
def test_kill_9_during_crawl_then_rerun(tmp_path: Path, evidence: bool) -> None:
    corpus = SyntheticCorpus(n=200, pubmed_only=40)
    reference_server = ReplayServer().start()
    try:
        corpus.install(reference_server)
        env = _crawl_env(reference_server, tmp_path / "reference")
        code, err = _finish(_kb(_crawl_args(corpus), env))
        assert code == 0, err[-2000:]
    finally:
        reference_server.stop()
    skip = {} if evidence else EVIDENCE
    reference = canonical_state(tmp_path / "reference" / "kb.db", **skip)
    # mid-run, derived evidence is due rather than half-written: compare what was stored
    stored_reference = canonical_state(tmp_path / "reference" / "kb.db", **EVIDENCE)

    server = ReplayServer().start()
    try:
        for method in ("GET", "POST"):
            server.add(method, r"/.*", _slow(corpus, 0.15))
        env = _crawl_env(server, tmp_path / "run")
        db = Path(env["KB_DB"])
        proc = _kb(_crawl_args(corpus), env)
        total = len(reference_server.requests)
        assert _kill_when(proc, lambda: len(server.requests) >= max(3, total // 2)), \
            "kb crawl finished before it could be killed"
        _integrity(db)
        _assert_no_half_written(db, stored_reference, growing_edges=True, skip=EVIDENCE)
        code, err = _finish(_kb(_crawl_args(corpus), env))
        assert code == 0, err[-2000:]
    finally:
        server.stop()
    _integrity(db)
    _assert_same(canonical_state(db, **skip), reference)
