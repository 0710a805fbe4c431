"""Fetching web pages for command modules (``ctx.fetch``), and the rules that keep it safe.

Owns one ``Web`` per bot (and one per isolated worker), built on urllib3: it
does HTTP/1.1, TLS with certificate checks, chunked bodies and gzip/deflate
decoding that stops at the size asked for (so a decompression bomb yields its
first megabyte, not its gigabyte). This module adds what a bot needs on top:

* **no private addresses** (server-side request forgery): every connection
  resolves the host itself, drops the addresses ``AddressPolicy`` refuses
  (loopback, private, link-local, multicast, reserved, and IPv4 hidden in IPv6
  forms), and connects to the checked address, so no DNS trick or redirect gets
  past it (``bot.netguard``); ``http.allow_private`` lets an operator allow some;
* **limits**: a total deadline (a socket that trickles is shut at it), a size
  cap, at most ``max_redirects`` hops (each one checked like the first), and per
  host at most ``per_host.concurrent`` fetches at once and ``per_minute`` a minute;
* **a small cache** of recent responses; the charset ``Response.text`` uses comes
  from ``bot.charsets``.

Fetching blocks the calling thread: commands, listeners and timers run on
workers, so the connection never waits for the web.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from bot.api import FetchError, Response
from bot.charsets import detect_encoding
from bot.config_sections import HttpConfig
from bot.netguard import (
    AddressPolicy,
    Connector,
    Guard,
    HttpConnection,
    HttpsConnection,
    Refused,
    Resolver,
    system_connect,
    system_resolve,
)

__all__ = ["HttpConfig", "Web"]


REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_HOSTS = 1024  # hosts whose limits are remembered; idle ones go first
_CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})


# -- the client ------------------------------------------------------------------------


class _HostLimits:
    """Per host: fetches at once (a semaphore) and a sliding minute of starts."""

    def __init__(self, concurrent: int) -> None:
        self.running = threading.BoundedSemaphore(concurrent)
        self.started: deque[float] = deque()
        self.users = 0  # fetches holding or waiting for a slot (guarded by Web._lock)

    def idle(self, now: float) -> bool:
        return not self.users and (not self.started or self.started[-1] <= now - 60)


class Web:
    """The bot's HTTP client: ``fetch`` is ``ctx.fetch`` (see ``bot.api.Context.fetch``)."""

    def __init__(
        self,
        config: HttpConfig | None = None,
        *,
        resolve: Resolver = system_resolve,
        connect: Connector = system_connect,
        clock: Callable[[], float] = time.monotonic,  # for the cache and per-minute limits
        ca_certs: str | None = None,  # trust these instead of the system's (tests)
    ) -> None:
        self.config = config or HttpConfig()
        self._ca_certs = ca_certs
        self._guard = Guard(AddressPolicy(self.config.allow_private), resolve, connect)
        self._clock = clock
        self._lock = threading.Lock()
        self._pools: OrderedDict[tuple[str, str, int], HTTPConnectionPool] = OrderedDict()
        self._hosts: dict[str, _HostLimits] = {}
        self._cache: OrderedDict[tuple[Any, ...], tuple[float, Response]] = OrderedDict()
        #: The thread fetching must never block (the connection's); set by the App.
        self.forbidden_thread: threading.Thread | None = None

    def configure(self, config: HttpConfig) -> None:
        """Apply a changed ``http:`` section; fetches under way finish under the old one."""
        with self._lock:
            if config.per_host_concurrent != self.config.per_host_concurrent:
                self._hosts.clear()
            self.config = config
            self._guard.policy = AddressPolicy(config.allow_private)
            self._cache.clear()
            # Kept-alive connections were checked under the old policy: none is reused.
            pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            pool.close()

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            pool.close()

    # -- fetching --------------------------------------------------------------------------

    def fetch(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        timeout: float | None = None,
    ) -> Response:
        if threading.current_thread() is self.forbidden_thread:
            raise RuntimeError("fetch() would block the connection: call it from a command")
        config = self.config
        url = _with_params(url, params)
        # A module may ask for less than the operator's limits, never for more.
        limit = config.max_bytes if max_bytes is None else max(0, min(max_bytes, config.max_bytes))
        total = config.timeout if timeout is None else max(0.0, min(timeout, config.timeout))
        sent = {"User-Agent": config.user_agent, "Accept-Encoding": "gzip, deflate"}
        sent.update(headers or {})
        key = (url, tuple(sorted(sent.items())), limit)
        cached = self._cached(key)
        if cached is not None:
            return cached
        deadline = time.monotonic() + total
        for _hop in range(config.max_redirects + 1):
            response = self._once(url, sent, limit, deadline)
            location = response.headers.get("location")
            if response.status not in REDIRECTS or not location:
                if response.status < 500:
                    self._store(key, response)
                return response
            target = urljoin(url, location.strip())
            if _host(target) != _host(url):  # credentials are for the host they were given to
                sent = {k: v for k, v in sent.items() if k.lower() not in _CREDENTIALS}
            url = target
        raise FetchError(f"{_host(url)}: more than {config.max_redirects} redirects", "redirects")

    def _once(self, url: str, headers: dict[str, str], limit: int, deadline: float) -> Response:
        """One request, no redirects followed."""
        invalid = FetchError(f"not a web address: {url[:100]}", "invalid")
        try:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise invalid
            # An international name (bücher.example) goes out in its ASCII form.
            host = parts.hostname.lower().encode("idna").decode("ascii")
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except (ValueError, UnicodeError):
            raise invalid from None
        with self._slot(host, deadline):
            try:
                pool = self._pool(parts.scheme, host, port)
            except LocationValueError:  # a host urllib3 cannot send: "a b", "%zz"
                raise invalid from None
            path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
            left = self._left(host, deadline)
            timeout = urllib3.Timeout(connect=min(self.config.connect_timeout, left), read=left)
            try:
                return self._request(pool, url, path, headers, timeout, limit, deadline)
            except Refused as exc:
                message = f"{exc.host}: refused, it is a private or local address"
                raise FetchError(message, "refused") from None
            # (urllib3's NewConnectionError and NameResolutionError are ConnectTimeoutErrors
            # too, for history's sake: they are caught first.)
            except NameResolutionError as exc:
                raise FetchError(f"{host}: no such host", "network") from exc
            except NewConnectionError as exc:
                raise FetchError(f"{host}: cannot connect ({_reason(exc)})", "network") from exc
            except (ConnectTimeoutError, ReadTimeoutError, TimeoutError) as exc:
                raise _timed_out(host) from exc
            except SSLError as exc:
                raise FetchError(f"{host}: TLS failed ({_reason(exc)})", "network") from exc
            except (HTTPError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise _timed_out(host) from exc
                raise FetchError(f"{host}: {_reason(exc)}", "network") from exc

    def _request(
        self,
        pool: HTTPConnectionPool,
        url: str,
        path: str,
        headers: dict[str, str],
        timeout: urllib3.Timeout,
        limit: int,
        deadline: float,
    ) -> Response:
        current = self._guard.current
        current.deadline, current.armed = deadline, []
        try:
            raw = pool.urlopen(
                "GET",
                path,
                headers=headers,
                retries=False,
                redirect=False,
                timeout=timeout,
                preload_content=False,
                release_conn=False,
            )
            complete = False
            try:
                body, truncated = _read(raw, limit)
                complete = not truncated
            finally:
                if not complete:
                    raw.close()  # a cut or failed body: its connection is not reused
                raw.release_conn()
        finally:
            for ticket in current.armed:
                self._guard.deadlines.disarm(ticket)
            current.armed = None
        got = {name.lower(): value for name, value in raw.headers.items()}
        return Response(
            url=url,
            status=raw.status,
            headers=MappingProxyType(got),  # read-only: a cached response is shared
            content=body,
            truncated=truncated,
            encoding=detect_encoding(got.get("content-type", ""), body),
        )

    def _left(self, host: str, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _timed_out(host)
        return left

    @contextlib.contextmanager
    def _slot(self, host: str, deadline: float) -> Iterator[None]:
        """A turn to fetch from ``host``, within its limits (``busy`` when there is none)."""
        with self._lock:
            now = self._clock()
            limits = self._hosts.get(host)
            if limits is None:
                if len(self._hosts) >= MAX_HOSTS:  # a flood of links to ever new hosts
                    for name in [n for n, h in self._hosts.items() if h.idle(now)]:
                        del self._hosts[name]
                limits = self._hosts[host] = _HostLimits(self.config.per_host_concurrent)
            while limits.started and limits.started[0] <= now - 60:
                limits.started.popleft()
            if len(limits.started) >= self.config.per_host_per_minute:
                raise FetchError(f"{host}: too many requests this minute; try later", "busy")
            limits.started.append(now)
            limits.users += 1
        try:
            if not limits.running.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise FetchError(f"{host}: too many requests at once; try later", "busy")
            try:
                yield
            finally:
                limits.running.release()
        finally:
            with self._lock:
                limits.users -= 1

    def _pool(self, scheme: str, host: str, port: int) -> HTTPConnectionPool:
        with self._lock:
            key = (scheme, host, port)
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            size = self.config.per_host_concurrent
            if scheme == "https":
                pool = HTTPSConnectionPool(
                    host, port, maxsize=size, guard=self._guard, ca_certs=self._ca_certs
                )
                pool.ConnectionCls = HttpsConnection
            else:
                pool = HTTPConnectionPool(host, port, maxsize=size, guard=self._guard)
                pool.ConnectionCls = HttpConnection
            self._pools[key] = pool
            while len(self._pools) > 32:
                self._pools.popitem(last=False)[1].close()
            return pool

    def _cached(self, key: tuple[Any, ...]) -> Response | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return entry[1]

    def _store(self, key: tuple[Any, ...], response: Response) -> None:
        config = self.config
        if config.cache_ttl <= 0 or config.cache_entries <= 0:
            return
        with self._lock:
            self._cache[key] = (self._clock() + config.cache_ttl, response)
            self._cache.move_to_end(key)
            while len(self._cache) > config.cache_entries:
                self._cache.popitem(last=False)


def _read(raw: urllib3.BaseHTTPResponse, limit: int) -> tuple[bytes, bool]:
    """The body, decoded, up to ``limit`` bytes; and whether there was more.

    ``read1`` decodes only what it returns, so a compressed bomb costs what is read."""
    chunks: list[bytes] = []
    got = 0
    while got <= limit:
        chunk = raw.read1(min(65536, limit + 1 - got))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)[:limit], True


def _with_params(url: str, params: Mapping[str, str] | None) -> str:
    if not params:
        return url
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def _host(url: str) -> str:
    return urlsplit(url).hostname or url[:100]


def _timed_out(host: str) -> FetchError:
    return FetchError(f"{host} did not answer in time", "timeout")


def _reason(exc: BaseException) -> str:
    """The innermost cause of a urllib3 error, short."""
    while isinstance(exc, HTTPError) and exc.__context__ is not None:
        exc = exc.__context__
    reason = getattr(exc, "reason", None) or exc
    return str(reason).split(": ", 1)[-1][:120] or type(exc).__name__
