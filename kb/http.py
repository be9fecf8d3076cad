"""The one HTTP client every request of every scraper goes through.

:class:`Client` owns identification (a User-Agent naming kb, its version and the ``KB_MAILTO``
contact), a timeout on every call, per-service pacing, retries with exponential backoff that
honour ``Retry-After`` (429, 500, 502, 503, 504, connection errors, stalls and truncated
bodies), and an on-disk cache (requests-cache, SQLite, under ``KB_CACHE_DIR``).

It knows no service's format: services are recognised only by which configured base URL a
request falls under, to pace each at its own rate and cap its answers. Secrets (``api_key``
parameters, API tokens, and the configured keys by value wherever they turn up) never reach
cache keys, the cached copy of a request or answer, log lines or error messages.

Hostile answers are bounded: every body is streamed under a deadline and a per-service cap on
its decoded size (compressed bodies are inflated piece by piece, stacked encodings refused);
redirects are followed by hand, only to http(s), at most :data:`MAX_REDIRECTS` hops, never to
a private, loopback or link-local address unless the request's own host is one, and never
with API keys to another host. A host that cannot be reached at all (name lookup failed,
connection refused) is not retried: it fails at once, for the rest of the run.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import logging
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import requests
import tenacity
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from . import __version__
from .config import Config
from .errors import FetchError, KBError, NoNetworkError, NotFoundError, OfflineError, QuotaError

__all__ = ["Client", "default_rates", "user_agent", "redact", "check_json", "check_xml",
           "RETRY_STATUSES", "MAX_REDIRECTS", "quote_path",
           "SECRET_PARAMS", "CACHE_EXPIRE", "Breaker"]

log = logging.getLogger(__name__)

#: Statuses worth another try after a pause.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Query parameters and headers that carry secrets: out of cache keys and cached requests.
SECRET_PARAMS = ("api_key", "api-key", "apikey", "access_token", "Crossref-Plus-API-Token",
                 "Authorization")
#: Identity parameters left out of cache keys too (another contact gets the same answer).
_IDENTITY_PARAMS = ("mailto", "email", "tool")
#: Pauses at least this long (seconds) before a retry are announced on stderr.
LONG_PAUSE = 1.0
#: How long a cached answer is used before it is fetched again (``--refresh`` forces it).
CACHE_EXPIRE = timedelta(days=30)
#: Services sharing one rate budget (NCBI counts E-utilities and the ID converter per IP).
_PACING_GROUPS = {"eutils": "ncbi", "idconv": "ncbi"}
#: ... and out of messages, with any other ``key``/``token`` value (a page's own parameter,
#: which must stay in its cache key, may still be a secret in an error message).
_SECRET_RE = re.compile(
    r"(?i)\b(" + "|".join(re.escape(p) for p in SECRET_PARAMS + ("key", "token"))
    + r")(=|:\s*)([^&\s;,'\"]+)")
#: Secret values (the configured API keys) hidden from every message, wherever they appear.
_SECRET_VALUES: set[str] = set()
#: Headers that carry secrets: never sent to a host other than the one asked.
_SECRET_HEADERS = ("Authorization", "Crossref-Plus-API-Token", "api-key", "api_key")
MAX_REDIRECTS = 5
#: Decoded bytes produced per step when inflating a compressed body.
_PIECE = 1 << 20
_TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout,
                     requests.exceptions.ChunkedEncodingError,
                     requests.exceptions.ContentDecodingError)


def user_agent(mailto: str | None) -> str:
    """The User-Agent kb sends (Crossref's polite pool reads the ``mailto:``).

    >>> user_agent("me@example.org")
    'kb/0.1.0 (https://github.com/kb-cp/kb; mailto:me@example.org)'
    """
    contact = f"; mailto:{mailto}" if mailto else ""
    return f"kb/{__version__} (https://github.com/kb-cp/kb{contact})"


def redact(text: str) -> str:
    """Hide secret parameter values in a URL or message.

    >>> redact("https://x.org/efetch.fcgi?id=1&api_key=abc123&tool=kb")
    'https://x.org/efetch.fcgi?id=1&api_key=REDACTED&tool=kb'
    """
    text = _SECRET_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}REDACTED", text)
    for secret in _SECRET_VALUES:
        for form in {secret, quote(secret, safe="")}:
            text = text.replace(form, "REDACTED")
    return text


def quote_path(identifier: str) -> str:
    """An identifier (a DOI) made safe as the end of a URL path: percent-encoded with its
    slashes kept, unless it holds a ``.`` or ``..`` segment, which could climb out of the API's
    path: then its slashes are encoded too (``%2E`` would be decoded back on the way).

    >>> quote_path("10.1002/(SICI)1097#x"), quote_path("10.5555/../../etc/passwd")
    ('10.1002/%28SICI%291097%23x', '10.5555%2F..%2F..%2Fetc%2Fpasswd')
    """
    climbs = any(part in (".", "..") for part in identifier.split("/"))
    return quote(identifier, safe="" if climbs else "/")


def _scrub(data: bytes, secrets: set[str]) -> bytes:
    for secret in secrets:
        for form in {secret, quote(secret, safe="")}:
            data = data.replace(form.encode(), b"REDACTED")
    return data


def default_rates(config: Config) -> dict[str, float]:
    """Requests per second per service before the service says otherwise.

    Crossref's figure is replaced by its ``x-rate-limit-*`` headers as soon as it answers;
    NCBI allows 3/s, 10/s with ``NCBI_API_KEY``.
    """
    return {
        "crossref": 10.0 if config.mailto else 5.0,
        "datacite": 3.0,
        "doi": 5.0,
        "ncbi": 10.0 if config.ncbi_api_key else 3.0,
        "openalex": 10.0,
        "opencitations": 3.0,
        "ctgov": 0.8,
    }


def _parse_interval(text: str) -> float | None:
    """Seconds in an ``x-rate-limit-interval`` value such as ``1s``.

    >>> _parse_interval("1s"), _parse_interval("60"), _parse_interval("2m"), _parse_interval("x")
    (1.0, 60.0, 120.0, None)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text or "")
    if not match:
        return None
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
    return float(match.group(1)) * scale


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    >>> _retry_after("3"), _retry_after(None), _retry_after("soon")
    (3.0, None, None)
    """
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class _Pacer:
    """Spaces requests per key at a given rate; thread-safe, one per :class:`Client`."""

    def __init__(self, rates: Mapping[str, float]) -> None:
        self._interval = {key: 1.0 / rate for key, rate in rates.items() if rate > 0}
        self._next: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, key: str) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(key, 0.0))
            self._next[key] = slot + self._interval.get(key, 0.0)
            self._last[key] = slot
        if slot > now:
            time.sleep(slot - now)

    def set_rate(self, key: str, limit: float, seconds: float) -> None:
        if limit > 0 and seconds > 0:
            with self._lock:
                self._interval[key] = seconds / limit
                if key in self._last:
                    self._next[key] = self._last[key] + self._interval[key]


class Breaker:
    """Gives up on a service for the rest of a run: at a quota (a rate limit) or after
    ``limit`` failures in a row. ``down`` is then the error that tripped it."""

    def __init__(self, limit: int = 2) -> None:
        self.limit = limit
        self.failures = 0
        self.down: FetchError | None = None

    def success(self) -> None:
        """The service answered (a "not found" counts): the failures in a row start over."""
        self.failures = 0

    def failure(self, exc: FetchError) -> None:
        """The service failed with ``exc``."""
        self.failures += 1
        if isinstance(exc, QuotaError) or self.failures >= self.limit:
            self.down = exc


class _Transient(Exception):
    """An attempt failed in a way another attempt may fix."""

    def __init__(self, message: str, *, url: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.retry_after = retry_after


class _Refused(requests.RequestException):
    """An answer kb will not take (too big, too slow, a bomb, a forbidden redirect); retrying
    will not change it."""


class _HostDown(requests.ConnectionError):
    """The host already failed to be reached in this run."""


class _CountingAdapter(HTTPAdapter):
    """The transport: paces and counts every request that really goes on the wire, and reads
    each body bounded in size and time."""

    def __init__(self, client: Client) -> None:
        super().__init__(pool_maxsize=10)
        self._client = client

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        client = self._client
        url = request.url or ""
        host = _host(url)
        if host in client._down:
            raise _HostDown(client._down[host])
        key = client._pace_key(url)
        client._pacer.wait(key)
        client._count("requests")
        log.debug("%s %s", request.method, redact(url))
        started = time.monotonic()
        response = super().send(request, stream=True, timeout=timeout, verify=verify, cert=cert,
                                proxies=proxies)
        client._learn_rate(key, response.headers)
        try:
            body = _read_body(response, client.config.max_bytes.get(
                client.service(url), client.config.max_bytes.get(None, 20 * 2**20)),
                started + client.config.deadline, client.config.deadline)
        except BaseException:
            response.raw.close()
            raise
        response._content = body
        response._content_consumed = True
        for name in ("Content-Encoding", "Transfer-Encoding"):
            response.headers.pop(name, None)
        response.headers["Content-Length"] = str(len(body))
        return response


def _read_body(response: requests.Response, cap: int, deadline: float, seconds: float) -> bytes:
    """The decoded body, read piece by piece: at most ``cap`` decoded bytes, done before
    ``deadline`` (``time.monotonic``), one content coding at most.

    :raises _Refused: too big, too slow, stacked or unknown encodings.
    """
    codings = [c.strip().lower() for c in response.headers.get("Content-Encoding", "").split(",")
               if c.strip() and c.strip().lower() != "identity"]
    if len(codings) > 1:
        raise _Refused(f"the answer is compressed {len(codings)} times over "
                       f"({', '.join(codings)}): refused as a likely compression bomb")
    if codings and codings[0] not in ("gzip", "x-gzip", "deflate"):
        raise _Refused(f"the answer uses an unknown content encoding ({codings[0]})")
    inflater = _Inflater() if codings else None
    parts: list[bytes] = []
    size = 0
    raw = response.raw
    while True:
        if time.monotonic() > deadline:
            raise _Refused(f"the answer took longer than {seconds:.0f} s (KB_DEADLINE)")
        try:
            chunk = raw.read1(65536, decode_content=False)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.exceptions.ReadTimeout(str(exc)) from None
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.HTTPError) as exc:
            raise requests.exceptions.ChunkedEncodingError(str(exc)) from None
        if not chunk:
            break
        for piece in inflater.feed(chunk) if inflater else (chunk,):
            size += len(piece)
            if size > cap:
                bomb = " (a compression bomb?)" if inflater else ""
                raise _Refused(f"the answer is larger than {cap / 2**20:.0f} MB{bomb} "
                               "(KB_MAX_RESPONSE_MB)")
            parts.append(piece)
    return b"".join(parts)


class _Inflater:
    """Inflates a gzip or zlib body (several gzip members too) in bounded pieces."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(47)  # gzip or zlib header, detected

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            while True:
                piece = self._inflate.decompress(data, _PIECE)
                if piece:
                    yield piece
                if self._inflate.eof:
                    data = self._inflate.unused_data
                    if not data:
                        return
                    self._inflate = zlib.decompressobj(47)  # the next gzip member
                    continue
                data = self._inflate.unconsumed_tail
                if not data and len(piece) < _PIECE:
                    return
        except zlib.error:
            raise requests.exceptions.ContentDecodingError("damaged compressed body") from None


def _host(url: str) -> str:
    """``host`` or ``host:port`` of a URL, lower-cased."""
    return urlsplit(url).netloc.lower().rpartition("@")[2]


def _address_kinds(addresses: list[str]) -> set[str]:
    """``public``, ``loopback``, ``private``, ``link-local`` or ``reserved`` per address."""
    kinds = set()
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%")[0])
        except ValueError:
            continue
        if address.is_loopback:
            kinds.add("loopback")
        elif address.is_link_local:
            kinds.add("link-local")
        elif address.is_private:
            kinds.add("private")
        elif address.is_multicast or address.is_reserved or address.is_unspecified:
            kinds.add("reserved")
        else:
            kinds.add("public")
    return kinds


def _resolve(host: str) -> list[str]:
    """The addresses a host name resolves to ([] when it does not)."""
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
    except (OSError, UnicodeError):
        return []


def _unreachable(exc: BaseException) -> bool:
    """Whether a connection error means the host cannot be reached at all: its name did not
    resolve, it refused the connection, or there is no route to it."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        error = stack.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, (_HostDown, socket.gaierror,
                              urllib3.exceptions.NameResolutionError)):
            return True
        if isinstance(error, OSError) and error.errno in (
                errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH):
            return True
        stack += [error.__cause__, error.__context__, getattr(error, "reason", None),
                  *error.args]
    return False


class Client:
    """The HTTP client: ``get``/``post`` return a 2xx :class:`requests.Response` or raise.

    :raises NotFoundError: the service answered 404 or 410.
    :raises QuotaError: a rate limit that waiting ``config.max_retry_wait`` will not fix.
    :raises OfflineError: offline (``KB_OFFLINE``) and the answer is not in the cache.
    :raises NoNetworkError: the host cannot be reached at all (not retried).
    :raises FetchError: anything else, after ``config.retries`` retries.
    """

    def __init__(self, config: Config, *, rates: Mapping[str, float] | None = None,
                 resolver: Callable[[str], list[str]] = _resolve) -> None:
        """``resolver`` gives a host name's addresses, to judge where a redirect leads."""
        self.config = config
        self._pacer = _Pacer(default_rates(config) if rates is None else rates)
        self._stats = {"requests": 0, "retries": 0, "cache_hits": 0}
        self._lock = threading.Lock()
        self._cached = bool(config.use_cache and config.cache_dir)
        self._resolver = resolver
        #: host -> "no network: could not reach HOST", for hosts found unreachable
        self._down: dict[str, str] = {}
        self._secrets = {v for v in (config.ncbi_api_key, config.openalex_api_key) if v}
        _SECRET_VALUES.update(self._secrets)
        self._session = self._make_session()

    # -- setup --------------------------------------------------------------------------------

    def _make_session(self) -> requests.Session:
        folder = self.config.cache_dir
        if self._cached and folder is not None:
            import sqlite3

            import requests_cache
            try:
                folder.mkdir(parents=True, exist_ok=True)
                session: requests.Session = requests_cache.CachedSession(
                    str(folder / "http_cache.sqlite"), backend="sqlite", wal=True,
                    expire_after=CACHE_EXPIRE,
                    allowable_codes=(200, 301, 302, 303, 307, 308, 404, 410),
                    allowable_methods=("GET", "HEAD", "POST"), cache_control=False,
                    stale_if_error=True, match_headers=False,
                    ignored_parameters=list(SECRET_PARAMS + _IDENTITY_PARAMS))
            except (OSError, sqlite3.Error) as exc:
                raise KBError(f"cannot use the HTTP cache in {folder}: {exc}",
                              hint="set KB_CACHE_DIR to a writable folder, or use --no-cache"
                              ) from None
            session.cache.save_response = self._scrubbed(  # type: ignore[attr-defined]
                session.cache.save_response)  # type: ignore[attr-defined]
        else:
            session = requests.Session()
        adapter = _CountingAdapter(self)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = user_agent(self.config.mailto)
        session.headers["Accept-Encoding"] = "gzip, deflate"
        return session

    def _scrubbed(self, save: Callable[..., None]) -> Callable[..., None]:
        """``save`` (the cache's ``save_response``) storing a copy without secret values in
        its URL, headers (a redirect's ``Location``), body or history."""
        from requests_cache import CachedResponse

        def save_scrubbed(response: requests.Response, cache_key: str, *args: Any,
                          **kwargs: Any) -> None:
            secrets = self._secrets | _secrets_in(response.request.url or "") \
                if response.request is not None else set(self._secrets)
            copy = CachedResponse.from_response(response)
            if secrets:
                copy._content = _scrub(copy._content or b"", secrets)
                for name, value in list(copy.headers.items()):
                    copy.headers[name] = _scrub(value.encode("latin-1", "replace"),
                                                secrets).decode("latin-1")
                copy.url = _scrub(copy.url.encode(), secrets).decode()
                copy.history = []
                copy._next = None  # the prepared next hop of a redirect, key and all
            save(copy, cache_key, *args, **kwargs)
        return save_scrubbed

    @property
    def unreachable(self) -> dict[str, str]:
        """Hosts found unreachable in this run, with the message said about each."""
        return dict(self._down)

    def close(self) -> None:
        """Close the session and its cache connection."""
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- bookkeeping --------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Counts so far: ``requests`` on the wire, ``retries``, ``cache_hits``."""
        with self._lock:
            return dict(self._stats)

    def _count(self, name: str) -> None:
        with self._lock:
            self._stats[name] += 1

    def service(self, url: str) -> str | None:
        """The configured service whose base URL ``url`` falls under (longest match)."""
        best: tuple[int, str | None] = (0, None)
        for name, root in self.config.base_urls.items():
            root = root.rstrip("/")
            if (url == root or url.startswith(root + "/") or url.startswith(root + "?")) \
                    and len(root) > best[0]:
                best = (len(root), name)
        return best[1]

    def _pace_key(self, url: str) -> str:
        name = self.service(url)
        if name is None:
            return urlsplit(url).netloc.lower()
        return _PACING_GROUPS.get(name, name)

    def _learn_rate(self, key: str, headers: Mapping[str, str]) -> None:
        limit = headers.get("x-rate-limit-limit") or headers.get("x-ratelimit-limit")
        interval = headers.get("x-rate-limit-interval") or headers.get("x-ratelimit-interval")
        if limit and interval:
            seconds = _parse_interval(interval)
            try:
                count = float(limit)
            except ValueError:
                return
            if seconds:
                self._pacer.set_rate(key, count, seconds)

    # -- requests -----------------------------------------------------------------------------

    def get(self, url: str, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None, *,
            check: Callable[[requests.Response], str | None] | None = None
            ) -> requests.Response:
        """GET ``url``; a 2xx response (see the class for what it raises). ``check`` (e.g.
        :func:`check_xml`) names what is wrong with a 2xx body: it is then dropped from the
        cache and fetched again, like a 503."""
        return self._request("GET", url, params=params, headers=headers, check=check)

    def post(self, url: str, data: Any = None, params: Mapping[str, Any] | None = None,
             headers: Mapping[str, str] | None = None, *,
             check: Callable[[requests.Response], str | None] | None = None
             ) -> requests.Response:
        """POST ``data`` (a form dict or bytes) to ``url``; a 2xx response (``check`` as
        for :meth:`get`)."""
        return self._request("POST", url, params=params, data=data, headers=headers,
                             check=check)

    def get_json(self, url: str, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> Any:
        """GET ``url`` and decode its JSON body. A body that is not JSON (an HTML error page,
        a garbled answer) is dropped from the cache and fetched again, then a FetchError."""
        response = self._request("GET", url, params=params, headers=headers,
                                 check=check_json)
        parsed = getattr(response, "_kb_json", None)
        return parsed if parsed is not None else response.json()

    # -- the cache, directly ----------------------------------------------------------------

    def cached(self, url: str, params: Mapping[str, Any] | None = None
               ) -> requests.Response | None:
        """The cached 2xx answer to ``GET url`` without going to the network, or None.

        Expired answers count only when offline; with ``--refresh`` nothing counts.
        """
        if not self._cached or (self.config.refresh and not self.config.offline):
            return None
        key = self._session.cache.create_key(self._prepare(url, params))  # type: ignore[attr-defined]
        response = self._session.cache.get_response(key)  # type: ignore[attr-defined]
        if response is None or not 200 <= response.status_code < 300 \
                or (response.is_expired and not self.config.offline):
            return None
        self._count("cache_hits")
        return response

    def remember(self, url: str, params: Mapping[str, Any] | None, content: bytes, *,
                 content_type: str = "application/json") -> None:
        """Cache ``content`` as the 200 answer to ``GET url`` (for a scraper that learnt one
        item's answer from a bulk request). Does nothing when the cache is off."""
        if not self._cached:
            return
        import io

        from requests_cache import get_expiration_datetime
        from urllib3 import HTTPResponse

        prepared = self._prepare(url, params)
        headers = {"Content-Type": content_type, "Content-Length": str(len(content))}
        response = requests.Response()
        response.status_code, response.reason, response.encoding = 200, "OK", "utf-8"
        response.url, response.request = prepared.url or url, prepared
        response.headers.update(headers)
        response.raw = HTTPResponse(body=io.BytesIO(content), headers=headers, status=200,
                                    reason="OK", preload_content=False)
        cache = self._session.cache  # type: ignore[attr-defined]
        # the cache's own conversion (CachedResponse.from_response), as for a fetched answer
        cache.save_response(response, cache.create_key(prepared),
                            get_expiration_datetime(CACHE_EXPIRE))

    def _prepare(self, url: str, params: Mapping[str, Any] | None) -> requests.PreparedRequest:
        return self._session.prepare_request(requests.Request("GET", url, params=params))

    def _request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                 data: Any = None, headers: Mapping[str, str] | None = None,
                 check: Callable[[requests.Response], str | None] | None = None
                 ) -> requests.Response:
        if self.config.offline and not self._cached:
            raise OfflineError(f"offline, and the HTTP cache is off: cannot fetch {redact(url)}",
                               url=redact(url))
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Transient),
            stop=tenacity.stop_after_attempt(max(0, self.config.retries) + 1),
            wait=self._wait, before_sleep=self._before_sleep, reraise=True)
        try:
            return retrying(self._attempt, method, url, params, data, headers, check)
        except _Transient as exc:
            attempts = max(0, self.config.retries) + 1
            if exc.status == 429:
                raise QuotaError(f"rate limited (HTTP 429) {attempts} times in a row: {exc.url}",
                                 url=exc.url, status=429,
                                 hint="wait a few minutes and run again; set KB_MAILTO") from None
            raise FetchError(f"{exc} (gave up after {attempts} attempts): {exc.url}",
                             url=exc.url, status=exc.status) from None

    def _attempt(self, method: str, url: str, params: Mapping[str, Any] | None, data: Any,
                 headers: Mapping[str, str] | None,
                 check: Callable[[requests.Response], str | None] | None) -> requests.Response:
        extra: dict[str, Any] = {}
        if self._cached:
            extra = {"only_if_cached": self.config.offline,
                     "force_refresh": self.config.refresh and not self.config.offline}
        shown = redact(_with_params(url, params))
        sent_headers = dict(headers or {})
        target, query = url, params
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                response = self._session.request(method, target, params=query, data=data,
                                                 headers=sent_headers, allow_redirects=False,
                                                 timeout=self.config.timeout, **extra)
            except _Refused as exc:
                raise FetchError(f"{exc}: {shown}", url=shown) from None
            except _TRANSIENT_ERRORS as exc:
                if _unreachable(exc):
                    host = urlsplit(target).hostname or _host(target)
                    message = self._down.setdefault(_host(target),
                                                    f"no network: could not reach {host}")
                    raise NoNetworkError(message, url=shown,
                                         hint="check the connection, or use --offline to "
                                              "answer from the HTTP cache") from None
                raise _Transient(_describe(exc), url=shown) from None
            except requests.RequestException as exc:
                raise FetchError(f"request failed: {redact(str(exc))}", url=shown) from None
            if not (response.is_redirect and response.headers.get("Location")):
                break
            nxt = urljoin(response.url or target, response.headers["Location"])
            sent_headers = self._redirect(url, nxt, sent_headers)
            target, query = self._next_url(_with_params(url, params), nxt), None
            if response.status_code == 303 or (response.status_code in (301, 302)
                                               and method == "POST"):
                method, data = "GET", None
        else:
            raise FetchError(f"more than {MAX_REDIRECTS} redirects: {shown}", url=shown)
        shown = redact(response.url or shown)
        from_cache = bool(getattr(response, "from_cache", False))
        if self.config.offline and response.status_code == 504 and from_cache \
                and response.reason == "Not Cached":
            raise OfflineError(f"offline, and not in the HTTP cache: {shown}", url=shown,
                               hint="run once without --offline / KB_OFFLINE to fill the cache")
        if from_cache:
            self._count("cache_hits")
        status = response.status_code
        if 200 <= status < 300:
            problem = check(response) if check else None
            if problem:
                self._forget(response)
                raise _Transient(problem, url=shown, status=status)
            return response
        if status in (404, 410):
            raise NotFoundError(f"not found (HTTP {status}): {shown}", url=shown, status=status)
        if status in RETRY_STATUSES:
            wait = _retry_after(response.headers.get("Retry-After"))
            if wait is not None and wait > self.config.max_retry_wait:
                raise QuotaError(
                    f"the service asks kb to wait {wait:.0f} s before retrying (HTTP {status}), "
                    f"more than the {self.config.max_retry_wait:.0f} s kb waits: {shown}",
                    url=shown, status=status, hint="run again later")
            raise _Transient(f"HTTP {status} {response.reason or ''}".strip(), url=shown,
                             status=status, retry_after=wait)
        raise FetchError(f"HTTP {status} from {shown}: {_snippet(response)}", url=shown,
                         status=status)

    def _redirect(self, origin: str, target: str, headers: dict[str, str]) -> dict[str, str]:
        """The headers to send to a redirect's ``target`` (secret ones only to the host first
        asked), after checking that kb may go there.

        :raises FetchError: not http(s), or a private / loopback / link-local address that the
            host first asked is not itself.
        """
        parts = urlsplit(target)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise FetchError(f"refused a redirect to {redact(target)[:120]!r}: kb follows only "
                             f"http(s) addresses ({redact(origin)})", url=redact(origin))
        if _host(target) == _host(origin):
            return headers
        allowed = {"public"} | _address_kinds(self._resolver(urlsplit(origin).hostname or ""))
        kinds = _address_kinds(self._resolver(parts.hostname))
        if kinds - allowed:
            raise FetchError(f"refused a redirect from {urlsplit(origin).hostname} to "
                             f"{parts.hostname}, a {'/'.join(sorted(kinds - allowed))} address",
                             url=redact(origin))
        secret = {h.lower() for h in _SECRET_HEADERS}
        return {k: v for k, v in headers.items() if k.lower() not in secret}

    def _next_url(self, origin: str, target: str) -> str:
        """A redirect's ``target`` as kb requests it: on another host without secret
        parameters (by name or by value); on the host first asked with the request's own
        secret values where the (cached, scrubbed) ``Location`` says REDACTED."""
        parts = urlsplit(target)
        names = {p.lower() for p in SECRET_PARAMS}
        query = parse_qsl(parts.query, keep_blank_values=True)
        if _host(target) == _host(origin):
            own = {k.lower(): v for k, v in parse_qsl(urlsplit(origin).query)
                   if k.lower() in names}
            if not any(v == "REDACTED" and k.lower() in own for k, v in query):
                return target
            query = [(k, own[k.lower()] if v == "REDACTED" and k.lower() in own else v)
                     for k, v in query]
        else:
            secrets = self._secrets | _secrets_in(origin)
            query = [(k, v) for k, v in query if k.lower() not in names and v not in secrets]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _forget(self, response: requests.Response) -> None:
        key = getattr(response, "cache_key", None)
        if self._cached and key:
            self._session.cache.delete(key)  # type: ignore[attr-defined]

    def _wait(self, state: tenacity.RetryCallState) -> float:
        backoff = self.config.backoff * 2 ** (state.attempt_number - 1)
        exc = state.outcome.exception() if state.outcome else None
        floor = getattr(exc, "retry_after", None) or 0.0
        return min(max(backoff, floor), self.config.max_retry_wait)

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        """Count the retry; say so on stderr (a WARNING) when the pause is long."""
        self._count("retries")
        exc = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        level = logging.WARNING if pause >= LONG_PAUSE else logging.INFO
        log.log(level, "kb: %s; retrying in %.0f s: %s", exc, pause, getattr(exc, "url", ""))


def _secrets_in(url: str) -> set[str]:
    """The values of secret parameters in a URL's query."""
    names = {p.lower() for p in SECRET_PARAMS}
    return {v for k, v in parse_qsl(urlsplit(url).query) if k.lower() in names and v}


def _with_params(url: str, params: Mapping[str, Any] | None) -> str:
    if not params:
        return url
    prepared = requests.Request("GET", url, params=params).prepare()
    return prepared.url or url


def _describe(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError)):
        return "the answer was cut off"
    return f"connection failed ({type(exc).__name__})"


def _snippet(response: requests.Response, size: int = 200) -> str:
    text = response.text.strip()
    if text.lower().startswith(("<!doctype html", "<html")):
        title = re.search(r"(?is)<title>(.*?)</title>|<h1>(.*?)</h1>", text)
        found = (title.group(1) or title.group(2)) if title else None
        return f"an HTML page ({found.strip()!r})" if found else "an HTML page"
    return redact(" ".join(text.split())[:size]) or "(empty body)"


def check_json(response: requests.Response) -> str | None:
    """What is wrong with a body that should be JSON (None if it parses; the parsed body is
    kept for :meth:`Client.get_json`, which then does not parse it again)."""
    try:
        response._kb_json = json.loads(response.content)  # type: ignore[attr-defined]
    except (ValueError, RecursionError):
        return f"expected JSON, got {_snippet(response, 80)}"
    return None


def check_xml(response: requests.Response) -> str | None:
    """What is wrong with a body that should be XML: an HTML page, a cut-off document (None
    if it is well-formed). Checked by expat without building a tree (no memory however many
    elements; no external entity is read, and expat refuses entity amplification)."""
    from xml.parsers import expat

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    root: list[str] = []

    def first(name: str, attributes: object) -> None:
        root.append(name)
        parser.StartElementHandler = None

    parser.StartElementHandler = first
    try:
        parser.Parse(response.content, True)
    except expat.ExpatError:
        return f"expected XML, got {_snippet(response, 80)}"
    if not root or root[0].lower() == "html":
        return f"expected XML, got {_snippet(response, 80)}"
    return None
