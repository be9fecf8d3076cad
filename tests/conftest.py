"""Shared fixtures: a loopback replay server, an isolated environment, a guard on the network."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.config import BASE_URLS, Config, load_config
from tests.replay import ReplayServer

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Fail any connection to a non-loopback address (opt out with -m network)."""
    if request.node.get_closest_marker("network"):
        return
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(host, str) and not (host in _LOOPBACK or host.startswith("127.")
                                          or sock.family == socket.AF_UNIX):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def server() -> ReplayServer:
    """A started replay server on 127.0.0.1; stopped after the test."""
    replay = ReplayServer().start()
    yield replay
    replay.stop()


@pytest.fixture
def kb_env(server: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for CLI runs: every service at the replay server, a private cache and DB."""
    env = {var: f"{server.url}/{name}" for name, (var, _) in BASE_URLS.items()}
    env.update({"KB_CACHE_DIR": str(tmp_path / "cache"), "KB_DB": str(tmp_path / "kb.db"),
                "KB_MAILTO": "tests@example.org", "KB_RETRIES": "3", "KB_TIMEOUT": "5"})
    for var in ("KB_OFFLINE", "KB_NO_CACHE", "NCBI_API_KEY", "OPENALEX_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def config(kb_env: dict[str, str]) -> Config:
    """A Config pointing every service at the replay server, with fast retries."""
    return load_config(kb_env).with_options(backoff=0.01, max_retry_wait=2.0)


@pytest.fixture
def client(config: Config):
    """A :class:`kb.http.Client` on ``config`` (every service at the replay server)."""
    from kb.http import Client
    with Client(config) as http:
        yield http


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def bundled_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's bundled kb.db (shared by a test module; do not write)."""
    import shutil
    path = tmp_path_factory.mktemp("bundled") / "kb.db"
    shutil.copy(Path(__file__).resolve().parent.parent / "kb.db", path)
    return path
