"""A hostile HTTP server on 127.0.0.1 (or 127.0.0.2) for the resource and secret tests.

Each path answers with one kind of abuse: a body that drips a byte at a time, an endless
chunked body, a compression bomb, a body far larger than any answer, a redirect, an echo of
the request (API key included) in an error body. The server itself is bounded: it answers at
most ``max_requests`` requests, no answer lasts longer than ``max_seconds``, and it stops
sending as soon as the client hangs up.
"""
from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Behaviour = Callable[["_Handler"], None]


def _bomb(gigabytes: float = 10.0) -> bytes:
    """``gzip(gzip(zeros))``: about 20 KB on the wire for 10 GiB of zeros. The inner layer is
    one gzip member of 1 MiB of zeros repeated (a gzip file may hold many members)."""
    member = gzip.compress(bytes(1 << 20), compresslevel=9)
    return gzip.compress(member * int(gigabytes * 1024), compresslevel=9)


class HostileServer:
    """``add(path, behaviour)``; ``url``; ``requests`` (method, path, headers) seen."""

    def __init__(self, host: str = "127.0.0.1", *, max_requests: int = 200,
                 max_seconds: float = 30.0) -> None:
        self.host = host
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.routes: dict[str, Behaviour] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}"

    def add(self, path: str, behaviour: Behaviour) -> HostileServer:
        self.routes[path] = behaviour
        return self

    def start(self) -> HostileServer:
        outer = self

        class Handler(_Handler):
            server_ref = outer

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviours ---------------------------------------------------------------------------

    @staticmethod
    def json(body: bytes | str, status: int = 200, **headers: str) -> Behaviour:
        data = body.encode() if isinstance(body, str) else body

        def answer(h: _Handler) -> None:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                h.send_header(name.replace("_", "-"), value)
            h.end_headers()
            h.wfile.write(data)
        return answer

    @staticmethod
    def drip(every: float = 2.0, body: bytes = b'{"message": {"items": []}}') -> Behaviour:
        """A byte of ``body`` every ``every`` seconds (the socket never idles long enough to
        trip a read timeout)."""
        def answer(h: _Handler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            for byte in body:
                if not h.within_bounds():
                    return
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
                time.sleep(every)
        return answer

    @staticmethod
    def endless_chunked(chunk: bytes = b"[" * 65536) -> Behaviour:
        def answer(h: _Handler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            while h.within_bounds():
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        return answer

    @staticmethod
    def big(megabytes: int = 200) -> Behaviour:
        """A plain body of ``megabytes`` MB (Content-Length announced), sent lazily."""
        def answer(h: _Handler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(megabytes << 20))
            h.end_headers()
            block = b" " * (1 << 20)
            for _ in range(megabytes):
                if not h.within_bounds():
                    return
                h.wfile.write(block)
        return answer

    @staticmethod
    def gzip_bomb(stacked: bool, gigabytes: float = 10.0) -> Behaviour:
        """10 GiB of zeros as ``gzip(gzip(…))``: labelled ``gzip, gzip`` (``stacked``) or only
        ``gzip`` (the inner layer is then what the client sees after one inflate)."""
        body = _bomb(gigabytes)

        def answer(h: _Handler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Encoding", "gzip, gzip" if stacked else "gzip")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        return answer

    @staticmethod
    def redirect(location: str | Callable[[_Handler], str], status: int = 301) -> Behaviour:
        def answer(h: _Handler) -> None:
            h.send_response(status)
            h.send_header("Location", location(h) if callable(location) else location)
            h.send_header("Content-Length", "0")
            h.end_headers()
        return answer

    @staticmethod
    def echo_error(status: int = 400) -> Behaviour:
        """An error body that repeats the request line and headers (keys included)."""
        def answer(h: _Handler) -> None:
            data = (f'{{"error": "Invalid API key", "request": "{h.path}", '
                    f'"api_key": "{_query_value(h.path, "api_key")}"}}').encode()
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        return answer


def _query_value(path: str, name: str) -> str:
    from urllib.parse import parse_qs
    return (parse_qs(urlsplit(path).query).get(name) or [""])[0]


class _Handler(BaseHTTPRequestHandler):
    server_ref: HostileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def within_bounds(self) -> bool:
        return time.monotonic() - self._started < self.server_ref.max_seconds

    def _handle(self) -> None:
        self._started = time.monotonic()
        outer = self.server_ref
        with outer._lock:
            outer.requests.append((self.command, self.path, dict(self.headers)))
            over = len(outer.requests) > outer.max_requests
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        path = urlsplit(self.path).path
        behaviour = None if over else next(
            (b for prefix, b in sorted(outer.routes.items(), key=lambda kv: -len(kv[0]))
             if path.startswith(prefix)), None)
        try:
            if behaviour is None:
                HostileServer.json(b'{"error": "no such route"}', 404)(self)
            else:
                behaviour(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up: the bound worked
        self.close_connection = True

    do_GET = do_POST = do_HEAD = _handle


#: The child reports VmHWM, the peak of its own address space: ru_maxrss would carry over the
#: parent's peak from before exec (fork copies pytest's memory), so late in a full run every
#: child looked as large as the grown test process.
_MEASURED = """
import atexit, re, sys
def _peak():
    status = open("/proc/self/status").read()
    sys.stderr.write("\\nPEAK_KB %s\\n" % re.search(r"VmHWM:\\s*(\\d+)", status).group(1))
atexit.register(_peak)
from kb.cli import cli
cli(prog_name="kb")
"""


@dataclass
class Run:
    """A finished ``kb`` run: exit status, output, wall time and peak memory."""

    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float


def run_kb(env: dict[str, str], *args: str, timeout: float = 60.0) -> Run:
    """Run ``kb ARGS…`` in a fresh process with ``env``; measure its time and peak RSS."""
    import os
    import subprocess
    import sys
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})
    seconds = time.monotonic() - started
    stderr, _, peak = done.stderr.rpartition("\nPEAK_KB ")
    return Run(done.returncode, done.stdout, stderr.strip(), seconds,
               int(peak.strip() or 0) / 1024)
