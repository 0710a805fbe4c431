"""Which addresses a fetch may connect to, and connecting only to those (for ``bot.web``).

Owns the defence against server-side request forgery: ``AddressPolicy`` (public
unicast addresses only, IPv4 hidden in IPv6 forms unwrapped, plus what the
operator allows), and urllib3 connection classes whose ``_new_conn`` resolves
the host itself, drops refused addresses and connects to a checked one, so
neither DNS tricks nor redirects get around the check. Also the deadline
thread that shuts a fetch's socket when its total time is up.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``resolve(host, port)``: the addresses to try, as ``(family, sockaddr)``.
Resolver = Callable[[str, int], list[tuple[int, tuple[Any, ...]]]]
#: ``connect(family, sockaddr, timeout)``: a connected socket.
Connector = Callable[[int, tuple[Any, ...], float | None], socket.socket]

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(ip: IpAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in network for network in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class AddressPolicy:
    """Public unicast addresses only, plus what the operator allows."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allowed = tuple(ipaddress.ip_network(entry, strict=False) for entry in allow)

    def permits(self, ip: IpAddress) -> bool:
        if any(ip.version == net.version and ip in net for net in self.allowed):
            return True
        inner = embedded_ipv4(ip)
        if inner is not None:
            return self.permits(inner)
        return ip.is_global and not ip.is_multicast


def parse_ip(address: str) -> IpAddress:
    """A socket address's host as an ip_address (IPv6 scope ids dropped)."""
    return ipaddress.ip_address(address.split("%", 1)[0])


def system_resolve(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


def system_connect(family: int, sockaddr: tuple[Any, ...], timeout: float | None) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


class Refused(Exception):
    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} is at {address}, a private address")
        self.host = host


class Guard:
    """What a ``Web``'s connections share: how to resolve and connect (tests swap these),
    the policy, and the deadline of the fetch running on each thread."""

    def __init__(self, policy: AddressPolicy, resolve: Resolver, connect: Connector) -> None:
        self.policy = policy
        self.resolve = resolve
        self.connect = connect
        self.deadlines = Deadlines()
        self.current = threading.local()  # .deadline, .armed: the fetch on this thread


class _GuardedConnectionMixin:
    """``_new_conn``: resolve, refuse what the policy refuses, connect to a checked address."""

    host: str
    port: int
    timeout: Any

    def __init__(self, *args: Any, guard: Guard, **kwargs: Any) -> None:
        self._guard = guard
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        guard = self._guard
        try:
            found = guard.resolve(self.host, self.port)
        except OSError as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        allowed = [(f, a) for f, a in found if guard.policy.permits(parse_ip(a[0]))]
        if not allowed:
            raise Refused(self.host, found[0][1][0] if found else "?")
        last: OSError | None = None
        for family, sockaddr in allowed:
            try:
                return guard.connect(family, sockaddr, self.timeout)
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"{self.host}: connect timed out") from exc
            except OSError as exc:
                last = exc
        reason = (last.strerror if last is not None else None) or str(last)
        raise NewConnectionError(self, reason)  # type: ignore[arg-type]

    def request(self, *args: Any, **kwargs: Any) -> None:
        """Every request on this connection (new or reused) ends at its fetch's deadline."""
        current = self._guard.current
        armed: list[int] | None = getattr(current, "armed", None)
        if armed is not None:
            armed.append(self._guard.deadlines.arm(current.deadline, self))  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]


class HttpConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class HttpsConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


# -- deadlines -----------------------------------------------------------------------


class Deadlines:
    """One thread that shuts a fetch's socket when its total time is up: a server that
    trickles a byte a second keeps every read inside a read timeout, not inside this."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, HTTPConnection]] = []
        self._cancelled: set[int] = set()
        self._cond = threading.Condition()
        self._seq = 0
        self._thread: threading.Thread | None = None

    def arm(self, at: float, conn: HTTPConnection) -> int:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._due, (at, self._seq, conn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="web-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()
            return self._seq

    def disarm(self, ticket: int) -> None:
        with self._cond:
            self._cancelled.add(ticket)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.monotonic():
                    if self._due:
                        self._cond.wait(self._due[0][0] - time.monotonic())
                    elif not self._cond.wait(30.0) and not self._due:
                        self._thread = None  # idle: a closed Web leaves no thread behind
                        return
                _, ticket, conn = heapq.heappop(self._due)
                if ticket in self._cancelled:
                    self._cancelled.discard(ticket)
                    continue
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)
