"""Fetching through a flaky network: `kb add` and `kb crawl` at a 30 % fault rate.

The services (tests/faults.py) answer ~240 synthetic works in Crossref / PubMed / ID converter /
OpenAlex / OpenCitations shapes; in front of them a seeded injector answers 30 % of requests with
429 + Retry-After, 500 / 502 / 503, an HTML page, a truncated body, half a JSON / XML document,
or a stall past the client timeout. A few "doomed" identifiers fail every time.

What must hold: the run finishes; every input it did not give up on is stored exactly once (one
work per DOI/PMID pair, no duplicate edges); retries are reported; what it gave up on is listed
and the exit status is 1; a rerun asks the network only for what failed, and ends in exactly
the state of a run that met no faults.
"""
from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kb.cli import cli
from tests.faults import FAULT_KINDS, FaultInjector, SyntheticCorpus, canonical_state
from tests.replay import ReplayServer

DOOMED_DOI = "10.5555/kb.0042"




@pytest.fixture(scope="module")
def corpus() -> SyntheticCorpus:
    return SyntheticCorpus(n=200, pubmed_only=40)


def _env(base: dict[str, str], where: Path) -> dict[str, str]:
    where.mkdir(parents=True, exist_ok=True)
    return {**base, "KB_DB": str(where / "kb.db"), "KB_CACHE_DIR": str(where / "cache"),
            "KB_RETRIES": "3", "KB_TIMEOUT": "1"}


def _add_inputs(corpus: SyntheticCorpus, path: Path) -> Path:
    """200 DOIs, the PMIDs of 50 of those works (to be merged), and 40 PubMed-only PMIDs."""
    pmids = [w.pmid for w in corpus.works[100:150] if w.pmid] + corpus.pubmed_only_pmids
    path.write_text("# synthetic corpus\n" + "\n".join(corpus.dois + pmids) + "\n")
    return path


def _run(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=True)


def _failed_labels(result: Result) -> list[str]:
    return re.findall(r"^\s*failed: (.+?): ", result.stderr, flags=re.M)


def _assert_no_duplicates(db: Path) -> None:
    conn = sqlite3.connect(db)
    dupes = conn.execute("SELECT citing_id, cited_id, count(*) FROM citations WHERE cited_id "
                         "IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1").fetchall()
    assert not dupes, f"duplicate citation edges: {dupes[:5]}"
    keys = conn.execute("SELECT citing_id, ref_key, count(*) FROM citations GROUP BY 1, 2 "
                        "HAVING count(*) > 1").fetchall()
    assert not keys, f"duplicate reference rows: {keys[:5]}"
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    assert integrity == "ok", integrity
    conn.close()


def _assert_each_once(db: Path, corpus: SyntheticCorpus, skip: set[str]) -> None:
    """Every synthetic work the run did not give up on is one full row carrying all its ids."""
    conn = sqlite3.connect(db)
    missing, split = [], []
    for w in corpus.works:
        if {w.doi, w.pmid} & skip:
            continue
        if w.doi is None and w.pmid not in {p for p in corpus.pubmed_only_pmids}:
            continue
        rows = conn.execute("SELECT id, doi, pmid, status FROM works WHERE doi = ? OR pmid = ?",
                            (w.doi, w.pmid)).fetchall()
        if len(rows) != 1 or rows[0][3] != "full":
            (split if len(rows) > 1 else missing).append((w.doi or w.pmid, rows))
    assert not split, f"works stored more than once: {split[:3]}"
    assert not missing, f"works not stored as full records: {missing[:3]}"
    conn.close()


def _assert_same_state(got: dict[str, list[tuple]], want: dict[str, list[tuple]]) -> None:
    """Table by table, the rows one state has and the other lacks."""
    problems = []
    for table in sorted(set(got) | set(want)):
        mine, theirs = set(got.get(table, [])), set(want.get(table, []))
        if mine != theirs:
            extra, lack = sorted(mine - theirs, key=repr), sorted(theirs - mine, key=repr)
            if len(extra) == len(lack) == 1 and len(extra[0]) == len(lack[0]):
                pairs = [(v, w) for v, w in zip(extra[0], lack[0]) if v != w]
                extra, lack = [tuple(p[0] for p in pairs)], [tuple(p[1] for p in pairs)]
            problems.append(f"{table}: extra {extra[:3]}, missing {lack[:3]}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def reference_add(corpus: SyntheticCorpus, tmp_path_factory: pytest.TempPathFactory
                  ) -> dict[str, list[tuple]]:
    """The state `kb add` reaches when the network never fails."""
    from kb.config import BASE_URLS
    server = ReplayServer().start()
    try:
        corpus.install(server)
        where = tmp_path_factory.mktemp("reference")
        env = _env({var: f"{server.url}/{name}" for name, (var, _) in BASE_URLS.items()}, where)
        env["KB_MAILTO"] = "tests@example.org"
        ids = _add_inputs(corpus, where / "ids.txt")
        result = _run(["add", "--from-file", str(ids)], env)
        assert result.exit_code == 0, result.output[-2000:]
        return canonical_state(where / "kb.db")
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_add_through_faults_then_rerun(seed: int, corpus: SyntheticCorpus, server: ReplayServer,
                                       kb_env: dict[str, str], tmp_path: Path,
                                       reference_add: dict[str, list[tuple]]) -> None:
    doomed_pmid = corpus.pubmed_only_pmids[10]
    faults = FaultInjector(0.3, seed=seed, stall=1.6, retry_after=1,
                           doomed={DOOMED_DOI, doomed_pmid})
    corpus.install(server, faults)
    env = _env(kb_env, tmp_path / "run")
    ids = _add_inputs(corpus, tmp_path / "ids.txt")
    db = Path(env["KB_DB"])

    first = _run(["add", "--from-file", str(ids)], env)
    assert "Traceback" not in first.output, first.output[-3000:]
    assert first.exit_code == 1, first.output[-3000:]
    failed = _failed_labels(first)
    assert any(DOOMED_DOI in label for label in failed), first.stderr[-2000:]
    assert any(doomed_pmid in label for label in failed), first.stderr[-2000:]
    assert sum(faults.injected.values()) >= 3, faults.injected
    retried = re.search(r"(\d+) retr", first.stderr)
    assert retried and int(retried.group(1)) > 0, f"retries not reported:\n{first.stderr[-800:]}"
    failed_ids = {m for label in failed for m in re.findall(r"10\.5555/kb\.\d{4}|\d{8}", label)}
    _assert_each_once(db, corpus, skip=failed_ids)
    _assert_no_duplicates(db)

    # The network heals. A rerun asks only about what failed, and ends where a clean run does.
    faults.doomed.clear()
    faults.enabled = False
    seen = len(faults.log)
    second = _run(["add", "--from-file", str(ids)], env)
    assert second.exit_code == 0, second.output[-3000:]
    rerun = [text for text, _ in faults.log[seen:]]
    assert rerun, "the rerun fetched nothing, yet inputs had failed"
    unrelated = [t for t in rerun if not any(i.lower() in t for i in failed_ids)]
    assert not unrelated, (f"the rerun asked for things that had not failed "
                           f"({len(unrelated)} of {len(rerun)}): {unrelated[:3]}")
    _assert_each_once(db, corpus, skip=set())
    _assert_no_duplicates(db)
    _assert_same_state(canonical_state(db), reference_add)


def test_add_gives_up_clearly_when_a_service_is_down(corpus: SyntheticCorpus,
                                                     server: ReplayServer,
                                                     kb_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    """Crossref down for good: every DOI is listed as failed (exit 1), PubMed-only inputs are
    still stored, and nothing is half-written."""
    faults = FaultInjector(0.0, doomed={"/crossref/"})
    corpus.install(server, faults)
    env = _env(kb_env, tmp_path / "run")
    env["KB_RETRIES"] = "1"
    dois = corpus.dois[:30]
    pmids = corpus.pubmed_only_pmids[:5]
    result = _run(["add", *dois, *pmids], env)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output[-2000:]
    failed = " ".join(_failed_labels(result))
    conn = sqlite3.connect(env["KB_DB"])
    for doi in dois:  # listed as failed, or found through PubMed (ID converter) instead
        row = conn.execute("SELECT status, pmid FROM works WHERE doi = ?", (doi,)).fetchone()
        if doi in failed:
            assert row is None or row[0] == "stub", (doi, row)
        else:
            assert row is not None and row[0] == "full" and row[1], (doi, row, result.stderr)
    assert failed.count("10.5555/kb.") >= 10
    assert conn.execute(f"SELECT count(*) FROM works WHERE pmid IN ({','.join('?' * 5)})",
                        pmids).fetchone()[0] == 5


# -- every fault kind, on every service, once ---------------------------------------------

def _small_inputs(corpus: SyntheticCorpus) -> list[str]:
    """DOIs with and without PMCIDs, PMIDs of some of them, PubMed-only PMIDs."""
    works = corpus.works
    return ([w.doi for w in works[10:16]] + [w.pmid for w in works[12:15] if w.pmid]
            + corpus.pubmed_only_pmids[:3])


@pytest.fixture(scope="module")
def reference_small(corpus: SyntheticCorpus, tmp_path_factory: pytest.TempPathFactory
                    ) -> dict[str, list[tuple]]:
    from kb.config import BASE_URLS
    server = ReplayServer().start()
    try:
        corpus.install(server)
        where = tmp_path_factory.mktemp("reference-small")
        env = _env({var: f"{server.url}/{name}" for name, (var, _) in BASE_URLS.items()}, where)
        result = _run(["add", *_small_inputs(corpus)], env)
        assert result.exit_code == 0, result.output[-2000:]
        return canonical_state(where / "kb.db")
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_add_survives_each_fault_kind_on_every_request(kind: str, corpus: SyntheticCorpus,
                                                       server: ReplayServer,
                                                       kb_env: dict[str, str], tmp_path: Path,
                                                       reference_small: dict[str, list[tuple]]
                                                       ) -> None:
    """The first attempt of every request (Crossref, E-utilities, ID converter, …) fails with
    one fault kind: all inputs still arrive, as in a clean run, and nothing broken is cached
    (a second run makes no request at all)."""
    faults = FaultInjector(1.0, kinds=(kind,), first_attempts=1, stall=1.6)
    corpus.install(server, faults)
    env = _env(kb_env, tmp_path / "run")
    result = _run(["add", *_small_inputs(corpus)], env)
    assert result.exit_code == 0, result.output[-3000:]
    services = {text.split()[1].split("/")[1].split("?")[0] for text, f in faults.log if f != "ok"}
    assert {"crossref", "eutils", "idconv"} <= services, services
    _assert_same_state(canonical_state(Path(env["KB_DB"])), reference_small)
    seen = len(faults.log)
    again = _run(["add", *_small_inputs(corpus)], env)
    assert again.exit_code == 0, again.output[-2000:]
    assert faults.log[seen:] == [], f"a rerun asked again (a bad answer was cached?): " \
                                    f"{faults.log[seen:][:3]}"


# -- crawl -----------------------------------------------------------------------------------

def _crawl_args(corpus: SyntheticCorpus) -> list[str]:
    return ["crawl", "--doi", corpus.works[120].doi, "--depth", "2", "--direction", "both",
            "--max-works", "120"]


@pytest.fixture(scope="module")
def reference_crawl(corpus: SyntheticCorpus, tmp_path_factory: pytest.TempPathFactory
                    ) -> dict[str, list[tuple]]:
    from kb.config import BASE_URLS
    server = ReplayServer().start()
    try:
        corpus.install(server)
        where = tmp_path_factory.mktemp("reference-crawl")
        env = _env({var: f"{server.url}/{name}" for name, (var, _) in BASE_URLS.items()}, where)
        result = _run(_crawl_args(corpus), env)
        assert result.exit_code == 0, result.output[-2000:]
        return canonical_state(where / "kb.db")
    finally:
        server.stop()


@pytest.mark.slow
def test_crawl_through_faults_then_rerun(corpus: SyntheticCorpus, server: ReplayServer,
                                         kb_env: dict[str, str], tmp_path: Path,
                                         reference_crawl: dict[str, list[tuple]]) -> None:
    doomed = f"/opencitations/citations/doi:{corpus.works[120].doi}"
    faults = FaultInjector(0.3, seed=11, stall=1.6, retry_after=1, doomed={doomed})
    corpus.install(server, faults)
    env = _env(kb_env, tmp_path / "run")
    db = Path(env["KB_DB"])
    first = _run(_crawl_args(corpus), env)
    assert "Traceback" not in first.output, first.output[-3000:]
    assert first.exit_code == 1, first.output[-3000:]
    assert "failed" in first.stderr and corpus.works[120].doi in first.stderr, first.stderr
    assert sum(faults.injected.values()) >= 3, faults.injected
    assert re.search(r"\d+ retr", first.stderr), f"retries not reported:\n{first.stderr[-800:]}"
    _assert_no_duplicates(db)
    faults.doomed.clear()
    faults.enabled = False
    seen = len(faults.log)
    second = _run(_crawl_args(corpus), env)
    assert second.exit_code == 0, second.output[-3000:]
    rerun = [text for text, _ in faults.log[seen:]]
    assert any(doomed in text for text in rerun), \
        f"the rerun did not retry what had failed:\n{first.stderr[-1500:]}\n{second.stderr[-1500:]}"
    assert len(rerun) <= max(3, (seen - 1) // 4), \
        f"the rerun made {len(rerun)} requests (first run {seen}): {rerun[:5]}"
    _assert_no_duplicates(db)
    _assert_same_state(canonical_state(db), reference_crawl)


# -- history independence of the store (found by the rerun comparison above) -----------------

def test_stub_upgraded_by_a_stronger_source_takes_its_provenance(tmp_path: Path) -> None:
    """A work first known as a reference, then fetched: same title, but now Crossref's, so a
    weaker source can no longer overwrite it (as if the work had been fetched first)."""
    from kb import store
    conn = store.connect(tmp_path / "kb.db")
    store.upsert_work(conn, {"source": "crossref", "doi": "10.5555/kb.0002",
                             "references": [{"doi": "10.5555/kb.0001", "title": "Cells",
                                             "year": 2020, "first_author": "Okur"}]})
    store.upsert_work(conn, {"source": "crossref", "doi": "10.5555/kb.0001", "title": "Cells",
                             "year": 2020, "authors": [{"family": "Okur", "given": "Seda"}]})
    store.upsert_work(conn, {"source": "import", "doi": "10.5555/kb.0001", "title": "CELLS!"})
    row = conn.execute("SELECT title, provenance FROM works WHERE doi = '10.5555/kb.0001'"
                       ).fetchone()
    assert row[0] == "Cells"
    assert '"title": "crossref"' in row[1] and '"year": "crossref"' in row[1]


def test_replaced_and_merged_author_lists_leave_no_orphan_authors(tmp_path: Path) -> None:
    from kb import store
    conn = store.connect(tmp_path / "kb.db")
    store.upsert_work(conn, {"source": "reference", "status": "stub", "doi": "10.5555/kb.0001",
                             "authors": [{"family": "Okur"}]})
    store.upsert_work(conn, {"source": "pubmed", "pmid": "31000007",
                             "authors": [{"family": "Sun", "given": "J"}]})
    store.upsert_work(conn, {"source": "crossref", "doi": "10.5555/kb.0001",
                             "authors": [{"family": "Okur", "given": "Seda"}]})
    store.upsert_work(conn, {"source": "crossref", "doi": "10.5555/kb.0001", "pmid": "31000007",
                          "authors": [{"family": "Okur", "given": "Seda"}]})  # merges the two
    orphans = conn.execute("SELECT key FROM authors WHERE id NOT IN "
                           "(SELECT author_id FROM work_authors)").fetchall()
    assert orphans == []
    assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == 1


def test_reference_ids_fill_a_stored_work_whatever_came_first(tmp_path: Path) -> None:
    """A PubMed reference naming DOI + PMID of a work: the work ends with both ids whether it
    was stored before the reference (was: PMID dropped) or after (stub made from it)."""
    from kb import store
    from tests.faults import canonical_state
    work = {"source": "crossref", "doi": "10.5555/kb.0012", "title": "Twelve"}
    citing = {"source": "pubmed", "pmid": "31000700", "title": "Hundred",
              "references": [{"doi": "10.5555/kb.0012", "pmid": "31000084"}]}
    states = []
    for order in ((work, citing), (citing, work)):
        db = tmp_path / f"{len(states)}.db"
        conn = store.connect(db)
        for record in order:
            store.upsert_work(conn, dict(record))  # type: ignore[arg-type]
        conn.close()
        states.append(canonical_state(db))
    assert states[0] == states[1]
    assert ("doi:10.5555/kb.0012", "10.5555/kb.0012", "31000084") in \
        [row[:3] for row in states[0]["works"]]


def _small_crawl(corpus: SyntheticCorpus) -> list[str]:
    return ["crawl", "--doi", corpus.works[60].doi, "--depth", "1", "--direction", "both"]


@pytest.fixture(scope="module")
def reference_small_crawl(corpus: SyntheticCorpus, tmp_path_factory: pytest.TempPathFactory
                          ) -> dict[str, list[tuple]]:
    from kb.config import BASE_URLS
    server = ReplayServer().start()
    try:
        corpus.install(server)
        where = tmp_path_factory.mktemp("reference-small-crawl")
        env = _env({var: f"{server.url}/{name}" for name, (var, _) in BASE_URLS.items()}, where)
        result = _run(_small_crawl(corpus), env)
        assert result.exit_code == 0, result.output[-2000:]
        return canonical_state(where / "kb.db")
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_crawl_survives_each_fault_kind_on_every_request(
        kind: str, corpus: SyntheticCorpus, server: ReplayServer, kb_env: dict[str, str],
        tmp_path: Path, reference_small_crawl: dict[str, list[tuple]]) -> None:
    """OpenAlex, OpenCitations and E-utilities each fail the first attempt of every request
    with one fault kind: the crawl still ends as a clean one, and nothing bad is cached."""
    faults = FaultInjector(1.0, kinds=(kind,), first_attempts=1, stall=1.6)
    corpus.install(server, faults)
    env = _env(kb_env, tmp_path / "run")
    result = _run(_small_crawl(corpus), env)
    assert result.exit_code == 0, result.output[-3000:]
    services = {text.split()[1].split("/")[1] for text, f in faults.log if f != "ok"}
    assert {"openalex", "opencitations", "eutils"} <= services, services
    _assert_same_state(canonical_state(Path(env["KB_DB"])), reference_small_crawl)
    seen = len(faults.log)
    again = _run([*_small_crawl(corpus), "--fresh"], env)
    assert again.exit_code == 0, again.output[-2000:]
    assert faults.log[seen:] == [], f"a fresh rerun asked again (a bad answer was cached?): " \
                                    f"{faults.log[seen:][:3]}"
