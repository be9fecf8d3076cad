"""`kb serve` as a real process on a free loopback port, for the tests that talk to it."""
from __future__ import annotations

import socket
import subprocess
import sys
import time


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(env: dict[str, str], *args: str) -> tuple[subprocess.Popen, int]:
    """Start ``kb serve --port P ARGS…`` with ``env`` (which names the KB in ``KB_DB``) and
    return once it accepts connections; fail with its stderr if it exits or takes over 30 s."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", "--port", str(port), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"kb serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise AssertionError("kb serve did not start listening within 30 s")


def stop(proc: subprocess.Popen) -> None:
    """Ask the server to end; kill it if it has not within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
