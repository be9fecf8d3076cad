"""`kb serve` against hostile requests: a query that would take gigabytes, a dangerous SQL
function, a foreign Host header (DNS rebinding), a query that never ends; a busy port; a KB in
a read-only folder."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.serving import free_port, start_serve, stop

KB = Path(__file__).parents[1] / "kb.db"


def _peak_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("serve") / "kb.db"
    shutil.copy(KB, db)
    proc, port = start_serve({**os.environ, "KB_DB": str(db)})
    yield proc, f"http://127.0.0.1:{port}"
    stop(proc)


def _sql(base: str, sql: str, **headers: str) -> requests.Response:
    return requests.get(f"{base}/kb.json", params={"sql": sql, "_shape": "array"},
                        headers=headers, timeout=60)


@pytest.mark.parametrize("sql", [
    "select randomblob(1000000000)",
    "select length(zeroblob(1000000000))",
    "select printf('%.*c', 1000000000, 'x')",
    "select printf('%.*c', 30000000, 'x') from works a, works b limit 2000",
], ids=["randomblob-1e9", "zeroblob-1e9", "printf-1e9", "cross-join-30MB-rows"])
def test_a_query_cannot_take_gigabytes(served, sql: str) -> None:
    proc, base = served
    started = time.monotonic()
    answer = _sql(base, sql)
    assert not _ok(answer) or len(answer.content) < 2**20, answer.text[:200]
    assert time.monotonic() - started < 15
    assert _peak_mb(proc.pid) < 500, f"kb serve peaked at {_peak_mb(proc.pid):.0f} MB"
    assert _sql(base, "select count(*) as n from works").json()[0]["n"] > 10  # still serving


def test_dangerous_functions_are_denied(served) -> None:
    _, base = served
    for sql in ("select hex(fts3_tokenizer('simple'))", "select load_extension('x')"):
        answer = _sql(base, sql)
        assert not _ok(answer) and "not authorized" in answer.text, answer.text[:300]


def test_the_time_limit_stops_an_endless_query(served) -> None:
    _, base = served
    started = time.monotonic()
    answer = _sql(base, "with recursive c(x) as (select 1 union all select x + 1 from c) "
                        "select count(*) from c")
    assert not _ok(answer) and time.monotonic() - started < 10


def test_only_loopback_host_names_are_answered(served) -> None:
    _, base = served
    port = base.rsplit(":", 1)[1]
    for host in ("evil.example.com", f"attacker.test:{port}", "192.168.1.5"):
        answer = requests.get(f"{base}/kb/works.json", headers={"Host": host}, timeout=10)
        assert answer.status_code == 400, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        assert requests.get(f"{base}/kb/works.json", headers={"Host": host},
                            timeout=10).status_code == 200, host


def test_a_busy_port_is_refused_before_any_url_is_announced(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run([sys.executable, "-m", "kb.cli", "--db", str(KB), "serve",
                               "--port", str(port)], capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 2, done.stderr
    assert "in use" in done.stderr and "Serving" not in done.stderr
    assert "http://" not in done.stderr


def _read_only(*paths: Path) -> bool:
    """Make paths read-only even for root (``chattr +i``, as on a read-only mount); False
    when the file system cannot."""
    for path in paths:
        os.chmod(path, 0o555 if path.is_dir() else 0o444)
    if os.geteuid() != 0:
        return True
    done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True)
    return done.returncode == 0


def _writable(*paths: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", *map(str, paths)], capture_output=True)
    for path in paths:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def _ok(answer: requests.Response) -> bool:
    return answer.status_code < 400 and not (isinstance(answer.json(), dict)
                                             and answer.json().get("ok") is False)


def test_a_kb_in_a_read_only_folder_can_be_searched_and_served(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "kb.db"
    shutil.copy(KB, db)
    if not _read_only(db, folder):
        _writable(db, folder)
        pytest.skip("this file system cannot make a folder read-only for root")
    try:
        env = {**os.environ, "KB_DB": str(db)}
        done = subprocess.run([sys.executable, "-m", "kb.cli", "search", "mesenchymal"],
                              capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        assert "mesenchymal" in done.stdout.lower()
        assert sorted(p.name for p in folder.iterdir()) == ["kb.db"]
        proc, port = start_serve(env, "--immutable")
        try:
            answer = requests.get(f"http://127.0.0.1:{port}/kb/works.json?_shape=array",
                                  timeout=10)
            assert answer.status_code == 200 and len(answer.json()) > 10
        finally:
            stop(proc)
    finally:
        _writable(db, folder)
