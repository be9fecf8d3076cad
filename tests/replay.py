"""A real HTTP server on 127.0.0.1 that replays responses in the services' formats.

Routes match a method and a path regex (and optionally query parameters); each route holds a
queue of responses, the last of which repeats. Every request is logged, so tests can count
what the client really sent.
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Reply:
    """One canned response. ``truncate`` sends fewer bytes than Content-Length promises;
    ``delay`` stalls before answering (to trip client timeouts)."""

    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0
    truncate: int | None = None

    def payload(self) -> bytes:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode()
        return self.body.encode() if isinstance(self.body, str) else self.body

    def type(self) -> str:
        if self.content_type:
            return self.content_type
        return "application/json" if isinstance(self.body, (dict, list)) else "text/plain"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


Responder = Callable[[Request], Reply]


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    query: dict[str, str]
    replies: list[Reply | Responder]
    hits: int = 0


class ReplayServer:
    """Start with :meth:`start`, add routes with :meth:`add`, read :attr:`requests`."""

    def __init__(self) -> None:
        self.routes: list[_Route] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, method: str, path: str, *replies: Reply | Responder,
            query: dict[str, str] | None = None) -> None:
        """Answer ``method path`` (a regex matched against the whole path) with ``replies``
        in turn; the last repeats. Earlier-added routes win."""
        self.routes.append(_Route(method.upper(), re.compile(path), query or {}, list(replies)))

    def count(self, path_regex: str = ".*") -> int:
        """How many requests had a path matching ``path_regex``."""
        pattern = re.compile(path_regex)
        return sum(1 for r in self.requests if pattern.fullmatch(r.path))

    def start(self) -> "ReplayServer":
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per keep-alive reply

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = parse_qs(parts.query, keep_blank_values=True)
                if self.headers.get("Content-Type", "").startswith(
                        "application/x-www-form-urlencoded"):
                    for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
                        query.setdefault(key, []).extend(values)
                request = Request(self.command, parts.path, query, dict(self.headers), body)
                with server_self._lock:
                    server_self.requests.append(request)
                    reply = server_self._match(request)
                self._send(reply(request) if callable(reply) else reply)

            def _send(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.payload()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.type())
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    if reply.truncate is not None:
                        self.wfile.write(payload[:reply.truncate])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def _match(self, request: Request) -> Reply | Responder:
        for route in self.routes:
            if route.method != request.method and not (route.method == "GET"
                                                        and request.method == "HEAD"):
                continue
            if not route.pattern.fullmatch(request.path):
                continue
            if any(request.query.get(k, [None])[0] != v for k, v in route.query.items()):
                continue
            reply = route.replies[min(route.hits, len(route.replies) - 1)]
            route.hits += 1
            return reply
        return Reply(404, "Resource not found.")

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def fixture_text(*parts: str) -> str:
    """The text of ``tests/fixtures/<parts…>``."""
    return FIXTURES.joinpath(*parts).read_text(encoding="utf-8")


def fixture_json(*parts: str) -> Any:
    return json.loads(fixture_text(*parts))
