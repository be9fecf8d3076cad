"""Concurrency: two `kb add` processes writing one KB while `kb serve` and `kb search` read it.

Nothing may fail with "database is locked" (WAL, a busy timeout and short transactions are
what make this work), every process must exit 0, and the end state must be the one a single
sequential run reaches. The two writers overlap on half their inputs, so they race to create
and merge the same works, and share one HTTP cache.
"""
from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kb.config import BASE_URLS
from tests.faults import SyntheticCorpus, canonical_state
from tests.replay import Reply, ReplayServer, Request
from tests.serving import start_serve, stop

pytestmark = pytest.mark.slow
LOCKED = "locked"




def _env(server: ReplayServer, where: Path) -> dict[str, str]:
    where.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **{var: f"{server.url}/{name}" for name, (var, _) in BASE_URLS.items()}}
    env.update({"KB_DB": str(where / "kb.db"), "KB_CACHE_DIR": str(where / "cache"),
                "KB_MAILTO": "tests@example.org", "KB_RETRIES": "2", "KB_TIMEOUT": "10"})
    for var in ("KB_OFFLINE", "KB_NO_CACHE", "NCBI_API_KEY", "OPENALEX_API_KEY"):
        env.pop(var, None)
    return env


def _kb(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kb.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _inputs(corpus: SyntheticCorpus, where: Path) -> tuple[Path, Path]:
    """Two overlapping halves: DOIs 0-149 and 50-199, each with some PMIDs of the overlap."""
    works = corpus.works
    first = [w.doi for w in works[:150]] + [w.pmid for w in works[60:100] if w.pmid]
    second = ([w.doi for w in works[50:200]] + [w.pmid for w in works[80:120] if w.pmid]
              + corpus.pubmed_only_pmids)
    a, b = where / "a.txt", where / "b.txt"
    a.write_text("\n".join(first) + "\n")
    b.write_text("\n".join(second) + "\n")
    return a, b


def _slow(corpus: SyntheticCorpus, delay: float):  # type: ignore[no-untyped-def]
    def respond(request: Request) -> Reply:
        return dataclasses.replace(corpus.respond(request), delay=delay)
    return respond


class _Reader(threading.Thread):
    """Reads the served KB over HTTP in a loop, recording every failure."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.stop, self.errors, self.reads, self.counts = base, False, [], 0, []

    def run(self) -> None:
        import requests
        urls = [f"{self.base}/kb.json?sql=select+count(*)+as+n+from+works&_shape=array",
                f"{self.base}/kb/works.json?_search=cerebral&_shape=array&_size=20",
                f"{self.base}/kb/citations.json?_shape=array&_size=50"]
        while not self.stop:
            for url in urls:
                try:
                    answer = requests.get(url, timeout=20)
                    if answer.status_code != 200 or LOCKED in answer.text:
                        self.errors.append(f"{answer.status_code} {url}: {answer.text[:300]}")
                    elif "count" in url:
                        self.counts.append(answer.json()[0]["n"])
                    self.reads += 1
                except Exception as exc:  # noqa: BLE001 - any failure is the finding
                    self.errors.append(f"{url}: {exc!r}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple]]:
    """The state one process reaches adding both lists, one after the other."""
    corpus = SyntheticCorpus(n=200, pubmed_only=40)
    server = ReplayServer().start()
    try:
        corpus.install(server)
        where = tmp_path_factory.mktemp("sequential")
        env = _env(server, where)
        for path in _inputs(corpus, where):
            proc = _kb(["add", "--from-file", str(path)], env)
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err.decode()[-2000:]
        return canonical_state(where / "kb.db")
    finally:
        server.stop()


def test_two_writers_and_readers_never_lock(tmp_path: Path,
                                            sequential: dict[str, list[tuple]]) -> None:
    corpus = SyntheticCorpus(n=200, pubmed_only=40)
    server = ReplayServer().start()
    for method in ("GET", "POST"):
        server.add(method, r"/.*", _slow(corpus, 0.25))
    env = _env(server, tmp_path)
    db = Path(env["KB_DB"])
    subprocess.run([sys.executable, "-m", "kb.cli", "init"], env=env, check=True,
                   capture_output=True)
    a, b = _inputs(corpus, tmp_path)
    serve, port = start_serve(env)  # the default mode must survive writers
    searches: list[tuple[int, str]] = []
    try:
        reader = _Reader(f"http://127.0.0.1:{port}")
        reader.start()
        writers = [_kb(["add", "--from-file", str(a)], env),
                   _kb(["add", "--from-file", str(b)], env)]
        while any(w.poll() is None for w in writers):
            found = subprocess.run([sys.executable, "-m", "kb.cli", "search", "cerebral",
                                    "--format", "json", "--limit", "5"], env=env,
                                   capture_output=True, timeout=60)
            searches.append((found.returncode, found.stderr.decode()))
        outputs = [w.communicate(timeout=60) for w in writers]
        reader.stop = True
        reader.join(30)
    finally:
        stop(serve)
        server.stop()
    for writer, (_, err) in zip(writers, outputs):
        text = err.decode()
        assert LOCKED not in text, text[-2000:]
        assert writer.returncode == 0, text[-2000:]
    assert searches, "no kb search ran while the writers worked"
    bad = [(code, err) for code, err in searches if code != 0 or LOCKED in err]
    assert not bad, bad[:3]
    assert reader.reads >= 5 and not reader.errors, reader.errors[:5]
    assert reader.counts == sorted(reader.counts), "the served KB went backwards"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    got = canonical_state(db)
    problems = {}
    for table in sorted(set(got) | set(sequential)):
        extra = sorted(set(got.get(table, [])) - set(sequential.get(table, [])), key=repr)
        lack = sorted(set(sequential.get(table, [])) - set(got.get(table, [])), key=repr)
        if extra or lack:
            theirs = {row[0]: row for row in lack}
            problems[table] = [(row[0], [(i, v, theirs[row[0]][i]) for i, v in enumerate(row)
                                         if row[0] in theirs and v != theirs[row[0]][i]])
                               for row in extra[:3]] or lack[:3]
    assert not problems, problems


def test_writer_and_many_searches_in_process_threads(tmp_path: Path) -> None:
    """Many short `kb search` readers in threads against one `kb add` writer: no lock error."""
    from click.testing import CliRunner

    from kb.cli import cli
    corpus = SyntheticCorpus(n=200, pubmed_only=40)
    server = ReplayServer().start()
    for method in ("GET", "POST"):
        server.add(method, r"/.*", _slow(corpus, 0.1))
    env = _env(server, tmp_path)
    subprocess.run([sys.executable, "-m", "kb.cli", "init"], env=env, check=True,
                   capture_output=True)
    writer = _kb(["add", *corpus.dois], env)
    failures: list[str] = []

    def search_loop() -> None:
        runner = CliRunner()
        while writer.poll() is None:
            result = runner.invoke(cli, ["--db", env["KB_DB"], "search", "stromal",
                                         "--format", "json"])
            if result.exit_code != 0 or LOCKED in result.output:
                failures.append(result.output[-500:])
    try:
        threads = [threading.Thread(target=search_loop) for _ in range(3)]
        for thread in threads:
            thread.start()
        _, err = writer.communicate(timeout=300)
        for thread in threads:
            thread.join(60)
    finally:
        server.stop()
    assert writer.returncode == 0 and LOCKED not in err.decode(), err.decode()[-2000:]
    assert not failures, failures[:3]


def test_add_waits_for_a_long_import_instead_of_failing(tmp_path: Path) -> None:
    """`kb import` holds the write lock for a whole file (atomic by design); a `kb add`
    meanwhile waits for it (busy timeout) and succeeds, and both end up in the KB."""
    from tests.faults import pubmed_file
    corpus = SyntheticCorpus(n=200, pubmed_only=40)
    big = pubmed_file(tmp_path / "big.xml", corpus, repeat=30)
    server = ReplayServer().start()
    corpus.install(server)
    env = _env(server, tmp_path)
    db = Path(env["KB_DB"])
    subprocess.run([sys.executable, "-m", "kb.cli", "init"], env=env, check=True,
                   capture_output=True)
    try:
        importer = _kb(["-q", "import", str(big)], env)
        wal = Path(f"{db}-wal")
        deadline = time.monotonic() + 60
        while not (wal.exists() and wal.stat().st_size > 2**20) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert importer.poll() is None, "the import ended before the writer started"
        adder = _kb(["add", "10.5555/kb.0001", "10.5555/kb.0002"], env)
        _, add_err = adder.communicate(timeout=120)
        _, import_err = importer.communicate(timeout=120)
    finally:
        server.stop()
    assert importer.returncode == 0, import_err.decode()[-2000:]
    assert adder.returncode == 0 and LOCKED not in add_err.decode(), add_err.decode()[-2000:]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM works WHERE doi IN ('10.5555/kb.0001', "
                        "'10.5555/kb.0002') AND status = 'full'").fetchone()[0] == 2
    pubmed = sum(1 for w in corpus.works if w.pmid)
    assert conn.execute("SELECT count(*) FROM works WHERE pmid IS NOT NULL AND status = 'full'"
                        ).fetchone()[0] == 30 * pubmed
