"""A small raw-socket IRC client for tests (stdlib only).

    c = IrcClient(server.host, server.port, "alice").connect()
    c.join("#t")
    c.privmsg("#t", "!echo hi")
    c.wait_for(r"PRIVMSG #t :hi")        # first matching line not consumed yet

A reader thread stores every received line (raw ``str`` without CRLF, tags
included) and answers ``PING`` itself.  :meth:`IrcClient.wait_for` searches
from a cursor that moves past each line it returns, so consecutive waits never
match the same line twice and a reply that arrived before the wait started is
still found.  Pass ``since=c.mark()`` (taken *before* sending) to ignore
everything older.  All waits poll a condition variable with a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

__all__ = ["ClientFactory", "IrcClient", "Line", "Pattern", "connect_all", "parse"]

Pattern = str | re.Pattern[str] | Callable[[str], bool]

_SASL_FAILURES = {"902", "904", "905", "906", "908"}


@dataclass
class Line:
    """A parsed IRC line (no unescaping of tag values)."""

    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""
    command: str = ""
    params: list[str] = field(default_factory=list)

    @property
    def nick(self) -> str:
        """Nick (or server name) part of the source."""
        return self.source.split("!", 1)[0]


def parse(raw: str) -> Line:
    """Parse ``@tags :source COMMAND params :trailing``."""
    line = Line()
    rest = raw
    if rest.startswith("@"):
        tags, _, rest = rest.partition(" ")
        for tag in tags[1:].split(";"):
            key, _, value = tag.partition("=")
            line.tags[key] = value
    rest = rest.lstrip(" ")
    if rest.startswith(":"):
        source, _, rest = rest.partition(" ")
        line.source = source[1:]
    trailing = None
    if " :" in rest:
        rest, trailing = rest.split(" :", 1)
    elif rest.startswith(":"):
        rest, trailing = "", rest[1:]
    words = rest.split()
    if words:
        line.command = words[0].upper()
        line.params = words[1:]
    if trailing is not None:
        line.params.append(trailing)
    return line


def _matcher(pattern: Pattern) -> Callable[[str], bool]:
    if isinstance(pattern, str):
        regex = re.compile(pattern)
        return lambda line: regex.search(line) is not None
    if isinstance(pattern, re.Pattern):
        return lambda line: pattern.search(line) is not None
    return pattern


class IrcClient:
    """One IRC connection for a test; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        nick: str,
        *,
        caps: Sequence[str] = (),
        sasl: tuple[str, str] | None = None,
        user: str | None = None,
        realname: str = "reloadbot test client",
    ) -> None:
        self.host = host
        self.port = port
        self.nick = nick
        self.caps = list(caps)
        self.sasl = sasl
        self.user = user or nick
        self.realname = realname
        self.server_caps: dict[str, str] = {}  # from CAP LS: name -> value
        self.enabled_caps: set[str] = set()  # ACKed by the server
        self.account: str | None = None  # set by a successful SASL login
        self._lines: list[str] = []
        self._cursor = 0
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._eof = False

    # -- connection --------------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> Self:
        """Connect and register (CAP LS 302 / CAP REQ / SASL PLAIN / CAP END); wait for 001."""
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        self._sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self._sock.settimeout(None)  # the reader blocks; close() wakes it with shutdown()
        self._reader = threading.Thread(
            target=self._read_loop, name=f"ircclient-{self.nick}", daemon=True
        )
        self._reader.start()
        try:
            self._register(left)
        except BaseException:
            self.close()
            raise
        return self

    def _register(self, left: Callable[[], float]) -> None:
        negotiate = bool(self.caps or self.sasl)
        if negotiate:
            self.send("CAP LS 302")
        self.send(f"NICK {self.nick}")
        self.send(f"USER {self.user} 0 * :{self.realname}")
        if negotiate:
            self._negotiate(left)
        welcome = self.wait_for(self._is_welcome_or_refusal, timeout=left())
        if parse(welcome).command != "001":
            raise AssertionError(f"{self.nick}: registration refused: {welcome}")
        self.nick = parse(welcome).params[0]
        # Consume the MOTD (or "no MOTD") too, so later waits start after the welcome burst.
        self.wait_for(lambda ln: parse(ln).command in {"376", "422"}, timeout=left())

    def _negotiate(self, left: Callable[[], float]) -> None:
        while True:  # CAP LS 302 may span several lines: "CAP * LS * :..." until the last
            line = parse(self.wait_for(self._is_cap("LS"), timeout=left()))
            for item in line.params[-1].split():
                name, _, value = item.partition("=")
                self.server_caps[name] = value
            if len(line.params) < 4 or line.params[2] != "*":
                break
        wanted = [c for c in self.caps if c in self.server_caps]
        if self.sasl:
            if "sasl" not in self.server_caps:
                raise AssertionError(f"{self.nick}: server offers no SASL: {self.server_caps}")
            wanted.append("sasl")
        if wanted:
            self.send("CAP REQ :" + " ".join(dict.fromkeys(wanted)))
            reply = parse(self.wait_for(self._is_cap("ACK", "NAK"), timeout=left()))
            if reply.params[1].upper() == "ACK":
                self.enabled_caps.update(c.lstrip("-~=") for c in reply.params[-1].split())
            elif self.sasl:
                raise AssertionError(f"{self.nick}: CAP REQ refused: {reply.params[-1]}")
        if self.sasl:
            self._authenticate(*self.sasl, left=left)
        self.send("CAP END")

    def _authenticate(self, account: str, password: str, *, left: Callable[[], float]) -> None:
        self.send("AUTHENTICATE PLAIN")
        challenge = parse(self.wait_for(lambda ln: parse(ln).command == "AUTHENTICATE", left()))
        if challenge.params[-1:] != ["+"]:
            raise AssertionError(f"{self.nick}: unexpected SASL challenge {challenge.params}")
        blob = f"{account}\0{account}\0{password}".encode()
        self.send("AUTHENTICATE " + base64.b64encode(blob).decode())
        done = {"903"} | _SASL_FAILURES
        result = self.wait_for(lambda ln: parse(ln).command in done, timeout=left())
        if parse(result).command != "903":
            raise AssertionError(f"{self.nick}: SASL login as {account!r} failed: {result}")
        self.account = account

    @staticmethod
    def _is_cap(*subcommands: str) -> Callable[[str], bool]:
        def match(raw: str) -> bool:
            line = parse(raw)
            return (
                line.command == "CAP"
                and len(line.params) >= 3
                and (line.params[1].upper() in subcommands)
            )

        return match

    @staticmethod
    def _is_welcome_or_refusal(raw: str) -> bool:
        # 432/433: bad or taken nick; 465: banned; ERROR: closing link
        return parse(raw).command in {"001", "432", "433", "436", "465", "ERROR"}

    def _read_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        buf = b""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                buf += data
                *complete, buf = buf.split(b"\n")
                lines = [raw.rstrip(b"\r").decode("utf-8", "replace") for raw in complete]
                for line in lines:
                    if line.startswith("PING"):
                        with self._send_lock:
                            sock.sendall(("PONG" + line[4:] + "\r\n").encode())
                with self._cond:
                    self._lines.extend(lines)
                    self._cond.notify_all()
        except OSError:
            pass  # closed by close() or reset by the server
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    # -- sending -----------------------------------------------------------------

    def send(self, line: str) -> None:
        """Send one line (CRLF is added; CR, LF and NUL inside are refused)."""
        if any(c in line for c in "\r\n\0"):
            raise ValueError(f"line contains CR, LF or NUL: {line!r}")
        self.send_raw(line.encode() + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (for malformed input or a burst of many lines)."""
        if self._sock is None:
            raise AssertionError(f"{self.nick}: not connected")
        with self._send_lock:
            self._sock.sendall(data)

    def privmsg(self, target: str, text: str) -> None:
        self.send(f"PRIVMSG {target} :{text}")

    def notice(self, target: str, text: str) -> None:
        self.send(f"NOTICE {target} :{text}")

    def join(self, channel: str, timeout: float = 5.0) -> str:
        """JOIN and wait for our own JOIN echo and the end of NAMES; return the echo."""
        deadline = time.monotonic() + timeout
        self.send(f"JOIN {channel}")

        def own_join(raw: str) -> bool:
            line = parse(raw)
            return (
                line.command == "JOIN"
                and line.nick.lower() == self.nick.lower()
                and line.params[:1] != []
                and line.params[0].lower() == channel.lower()
            )

        echo = self.wait_for(own_join, timeout=timeout)

        def end_of_names(raw: str) -> bool:
            line = parse(raw)
            return line.command == "366" and [p.lower() for p in line.params[1:2]] == [
                channel.lower()
            ]

        self.wait_for(end_of_names, timeout=max(0.0, deadline - time.monotonic()))
        return echo

    def part(self, channel: str, timeout: float = 5.0) -> str:
        self.send(f"PART {channel}")
        return self.wait_for(
            lambda raw: parse(raw).command == "PART" and parse(raw).nick == self.nick, timeout
        )

    # -- receiving ---------------------------------------------------------------

    @property
    def lines(self) -> list[str]:
        """A copy of every line received so far."""
        with self._cond:
            return list(self._lines)

    @property
    def connected(self) -> bool:
        """True until the server closed the connection (or :meth:`close` was called)."""
        return self._sock is not None and not self._eof

    def mark(self) -> int:
        """Index of the next line to arrive; pass it as ``since`` to ignore older lines."""
        with self._cond:
            return len(self._lines)

    def lines_since(self, mark: int) -> list[str]:
        with self._cond:
            return self._lines[mark:]

    def wait_for(self, pattern: Pattern, timeout: float = 5.0, since: int | None = None) -> str:
        """Return the first line after ``since`` matching ``pattern``; move the cursor past it.

        ``pattern`` is a regex (``re.search``), a compiled regex or a predicate.
        Without ``since``, the search starts at the cursor: just after the last
        line returned by ``wait_for``.  The cursor never moves backwards.
        Raises AssertionError with the last 20 lines on timeout, or as soon as
        the connection is closed without a match.
        """
        match = _matcher(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            index = self._cursor if since is None else since
            while True:
                while index < len(self._lines):
                    line = self._lines[index]
                    index += 1
                    if match(line):
                        self._cursor = max(self._cursor, index)
                        return line
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    break
                self._cond.wait(remaining)
            why = "connection closed" if self._eof else f"timed out after {timeout:.1f} s"
            tail = "\n".join("    " + line for line in self._lines[-20:]) or "    (nothing)"
            raise AssertionError(
                f"{self.nick}: {why} waiting for {pattern!r}; last lines received:\n{tail}"
            )

    def wait_closed(self, timeout: float = 5.0) -> None:
        """Wait until the server has closed the connection."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._eof:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.nick}: connection still open after {timeout} s")
                self._cond.wait(remaining)

    # -- closing -----------------------------------------------------------------

    def quit(self, message: str = "bye", timeout: float = 5.0) -> None:
        """Send QUIT, wait for the server to close the link, then close."""
        if self.connected:
            with contextlib.suppress(OSError, AssertionError):
                self.send(f"QUIT :{message}")
                self.wait_closed(timeout)
        self.close()

    def close(self) -> None:
        """Close the socket and stop the reader thread (idempotent)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(5)
            self._reader = None

    def __enter__(self) -> Self:
        return self if self._sock is not None else self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed"
        return f"<IrcClient {self.nick} {self.host}:{self.port} {state}>"


ClientFactory = Callable[..., IrcClient]
"""Type of the ``irc_client`` fixture (see conftest.py)."""


def connect_all(clients: Iterable[IrcClient], timeout: float = 10.0) -> list[IrcClient]:
    """Connect several clients in parallel (InspIRCd registers them all on one tick)."""
    clients = list(clients)
    errors: list[BaseException] = []

    def run(client: IrcClient) -> None:
        try:
            client.connect(timeout)
        except BaseException as exc:  # reported below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 5)
    if errors:
        for client in clients:
            client.close()
        raise errors[0]
    return clients
