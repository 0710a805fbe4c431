"""Raw-socket IRC users for the benchmarks, and the timing helpers (stdlib only).

Every ``User`` has a reader thread that drains its socket all the time (so the
server never queues output for it), answers PING, and keeps each PRIVMSG or
NOTICE that carries a benchmark token (``pong <token>``) with the monotonic time
it arrived.  Senders never block on readers.

Commands are sent to the bot in private: every reply goes to the one user who
asked, so neither the server's channel fan-out nor the harness's own reading
of copies limits the figures.
"""

from __future__ import annotations

import contextlib
import re
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

# The line splitter is the tests' (tests/ircnet.py): the bot package does not ship it.
sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))

from ircnet import split_line

TOKEN = re.compile(r"pong (\S+)")


parse = split_line  # ``:nick!u@h CMD a :trail`` -> ("nick", "CMD", ["a", "trail"])


@dataclass
class Received:
    """One line from the bot: when it arrived, who sent it, its text."""

    t: float
    source: str
    command: str
    target: str
    text: str


@dataclass
class User:
    """One raw IRC client: connect, register, then send and collect."""

    host: str
    port: int
    nick: str
    sock: socket.socket | None = None
    # token -> arrival times (a list, so a duplicate answer is visible)
    tokens: dict[str, list[float]] = field(default_factory=dict)
    # every PRIVMSG/NOTICE/JOIN/ERROR, for the waits below
    lines: list[Received] = field(default_factory=list)
    on_line: Callable[[User, Received], None] | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None
    _closed: bool = False
    _wlock: threading.Lock = field(default_factory=threading.Lock)

    def connect(self, timeout: float = 10.0) -> User:
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, name=f"bench-{self.nick}", daemon=True)
        self._reader.start()
        self.send(f"NICK {self.nick}")
        self.send(f"USER {self.nick} 0 * :bench user")
        self.wait(lambda r: r.command in ("001", "433", "ERROR"), timeout)
        if self.lines[-1].command != "001":
            raise RuntimeError(f"{self.nick}: not registered: {self.lines[-1]}")
        return self

    def send(self, line: str) -> None:
        self.send_raw((line + "\r\n").encode())

    def send_raw(self, data: bytes) -> None:
        assert self.sock is not None
        with self._wlock:
            self.sock.sendall(data)

    def privmsg(self, target: str, text: str) -> None:
        self.send(f"PRIVMSG {target} :{text}")

    def join(self, channel: str, timeout: float = 10.0) -> None:
        mark = self.mark()
        self.send(f"JOIN {channel}")
        self.wait(lambda r: r.command == "366", timeout, since=mark)

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def wait(
        self, pred: Callable[[Received], bool], timeout: float, since: int = 0
    ) -> Received | None:
        """First kept line at index >= ``since`` matching ``pred``; None on timeout."""
        deadline = time.monotonic() + timeout
        i = since
        with self._cond:
            while True:
                while i < len(self.lines):
                    if pred(self.lines[i]):
                        return self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._cond.wait(left)

    def wait_token(self, token: str, timeout: float) -> float | None:
        """Arrival time of the first answer carrying ``token``; None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self.tokens:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._cond.wait(left)
            return self.tokens[token][0]

    def other_replies(self, source: str, since: int) -> int:
        """PRIVMSG/NOTICE lines from ``source`` since ``since`` that carry no token."""
        source = source.lower()
        with self._cond:
            return sum(
                1
                for r in self.lines[since:]
                if r.source.lower() == source
                and r.command in ("PRIVMSG", "NOTICE")
                and not TOKEN.search(r.text)
            )

    def close(self) -> None:
        self._closed = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.sendall(b"QUIT :bench done\r\n")
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self.sock.close()
        with self._cond:
            self._cond.notify_all()

    def _read(self) -> None:
        assert self.sock is not None
        buf = b""
        kept = ("PRIVMSG", "NOTICE", "JOIN", "ERROR", "001", "433", "366")
        while True:
            try:
                data = self.sock.recv(262144)
            except OSError:
                data = b""
            now = time.monotonic()
            if not data:
                break
            buf += data
            *complete, buf = buf.split(b"\n")
            got = []
            for raw in complete:
                line = raw.rstrip(b"\r").decode("utf-8", "replace")
                if line.startswith("PING"):
                    with contextlib.suppress(OSError):
                        self.send("PONG" + line[4:])
                    continue
                source, command, params = parse(line)
                if command not in kept:
                    continue
                rec = Received(now, source, command, params[0] if params else "", params[-1])
                got.append(rec)
            if got:
                with self._cond:
                    for rec in got:
                        self.lines.append(rec)
                        if rec.command in ("PRIVMSG", "NOTICE"):
                            m = TOKEN.search(rec.text)
                            if m:
                                self.tokens.setdefault(m.group(1), []).append(rec.t)
                        if self.on_line is not None:
                            self.on_line(self, rec)
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def connect_all(host: str, port: int, nicks: Iterable[str]) -> list[User]:
    users = [User(host, port, n) for n in nicks]
    threads = [threading.Thread(target=u.connect) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for u in users:
        if u.sock is None or not u.lines or u.lines[-1].command != "001":
            raise RuntimeError(f"{u.nick} did not register")
    return users


# -- statistics ---------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if v == v]  # drop NaN
    return statistics.median(vals) if vals else float("nan")


# -- the measurements that only need users ------------------------------------


class Tokens:
    """Unique tokens for one run: ``<prefix><n>``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.n = 0
        self.lock = threading.Lock()

    def next(self) -> str:
        with self.lock:
            self.n += 1
            return f"{self.prefix}{self.n}"


def round_trips(
    user: User, target: str, command: Callable[[str], str], tokens: Tokens, count: int
) -> tuple[list[float], int]:
    """``count`` sequential commands; returns (round trips in seconds, lost)."""
    times: list[float] = []
    lost = 0
    for _ in range(count):
        tok = tokens.next()
        t0 = time.monotonic()
        user.privmsg(target, command(tok))
        t1 = user.wait_token(tok, 5.0)
        if t1 is None:
            lost += 1
        else:
            times.append(t1 - t0)
    return times, lost


def loopback_floor(host: str, port: int, count: int) -> list[float]:
    """Round trip through the server between two raw clients: A -> B, B answers at once."""
    a, b = connect_all(host, port, ["floora", "floorb"])

    def echo(u: User, rec: Received) -> None:
        if rec.command == "PRIVMSG" and rec.text.startswith("ping "):
            u.send(f"PRIVMSG {rec.source} :pong {rec.text[5:]}")

    b.on_line = echo
    times = []
    try:
        for i in range(count):
            tok = f"floor{i}"
            t0 = time.monotonic()
            a.privmsg("floorb", f"ping {tok}")
            t1 = a.wait_token(tok, 5.0)
            if t1 is not None:
                times.append(t1 - t0)
    finally:
        a.close()
        b.close()
    return times


@dataclass
class BurstResult:
    sent: int
    answered: int
    duplicates: int
    elapsed: float  # first send to last answer
    refused: int = 0  # other replies instead (e.g. "busy, try again")

    @property
    def lost(self) -> int:
        return self.sent - self.answered

    @property
    def rate(self) -> float:
        return self.answered / self.elapsed if self.elapsed > 0 else float("nan")


def burst(
    users: list[User],
    target: str,
    command: Callable[[str], str],
    tokens: Tokens,
    per_user: int,
    settle: float = 5.0,
    limit: float = 120.0,
) -> BurstResult:
    """Every user writes ``per_user`` commands at once; wait for the answers."""
    plan = {u.nick: [tokens.next() for _ in range(per_user)] for u in users}
    marks = {u.nick: u.mark() for u in users}
    payload = {
        u.nick: "".join(f"PRIVMSG {target} :{command(t)}\r\n" for t in plan[u.nick]).encode()
        for u in users
    }
    go = threading.Event()

    def send(u: User) -> None:
        go.wait()
        u.send_raw(payload[u.nick])

    threads = [threading.Thread(target=send, args=(u,)) for u in users]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    go.set()
    for t in threads:
        t.join()
    total = per_user * len(users)
    wait_for_answers(users, plan, settle, limit - (time.monotonic() - t0))
    answered = dup = 0
    last = t0
    for u in users:
        for t in plan[u.nick]:
            arrivals = u.tokens.get(t)
            if arrivals:
                answered += 1
                dup += len(arrivals) - 1
                last = max(last, arrivals[0])
    refused = sum(u.other_replies(target, marks[u.nick]) for u in users)
    return BurstResult(total, answered, dup, last - t0, refused)


def paced(
    user: User,
    target: str,
    command: Callable[[str], str],
    tokens: Tokens,
    count: int,
    interval: float = 0.01,
    wait: float = 3.0,
) -> int:
    """Send ``count`` commands ``interval`` s apart; how many were answered ``wait`` s later."""
    sent = []
    for _ in range(count):
        sent.append(tokens.next())
        user.privmsg(target, command(sent[-1]))
        time.sleep(interval)
    wait_for_answers([user], {user.nick: sent}, settle=wait, limit=wait)
    return sum(1 for t in sent if t in user.tokens)


def wait_for_answers(
    users: list[User], sent: dict[str, list[str]], settle: float, limit: float
) -> None:
    """Until every token is answered, or nothing new came for ``settle`` s, or ``limit`` s."""
    total = sum(len(v) for v in sent.values())
    deadline = time.monotonic() + limit
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = sum(1 for u in users for t in sent[u.nick] if t in u.tokens)
        if count == total:
            return
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > settle:
            return
        time.sleep(0.01)


def wait_for_count(
    user: User, since: int, pred: Callable[[Received], bool], want: int, settle: float
) -> int:
    """Lines matching ``pred`` since ``since``: until ``want`` came, or none for ``settle`` s."""
    got, last_change = -1, time.monotonic()
    while time.monotonic() - last_change < settle:
        with user._cond:
            count = sum(1 for r in user.lines[since:] if pred(r))
        if count >= want:
            return count
        if count != got:
            got, last_change = count, time.monotonic()
        time.sleep(0.05)
    return got


@dataclass
class SoakResult:
    sent: int
    answered_once: int
    lost: int
    duplicates: int
    reloads_sent: int
    reloads_answered: int
    seconds: float
    refused: int = 0


def soak(
    users: list[User],
    admin: User,
    target: str,
    command: Callable[[str], str],
    reload_line: str,
    is_reload_reply: Callable[[Received], bool],
    tokens: Tokens,
    seconds: float,
    total_rate: float = 500.0,
    reload_every: float = 0.05,
    settle: float = 5.0,
    sync: Callable[[], object] | None = None,
) -> SoakResult:
    """Users send ``total_rate`` commands/s between them while the admin reloads."""
    per_user_interval = len(users) / total_rate
    sent: dict[str, list[str]] = {u.nick: [] for u in users}
    marks = {u.nick: u.mark() for u in users}
    stop_at = time.monotonic() + seconds
    mark = admin.mark()
    reloads = 0

    def user_loop(u: User, offset: float) -> None:
        t_next = time.monotonic() + offset
        while True:
            now = time.monotonic()
            if now >= stop_at:
                return
            if now < t_next:
                time.sleep(t_next - now)
            tok = tokens.next()
            sent[u.nick].append(tok)
            u.privmsg(target, command(tok))
            t_next += per_user_interval

    def admin_loop() -> None:
        nonlocal reloads
        t_next = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= stop_at:
                return
            if now < t_next:
                time.sleep(t_next - now)
            admin.privmsg(target, reload_line)
            reloads += 1
            t_next += reload_every

    threads = [
        threading.Thread(target=user_loop, args=(u, i * per_user_interval / len(users)))
        for i, u in enumerate(users)
    ]
    threads.append(threading.Thread(target=admin_loop))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(len(v) for v in sent.values())
    wait_for_answers(users, sent, settle, 120.0)
    if sync is not None:  # a bot with a backlog gets to finish it before we count
        sync()
    once = dup = 0
    for u in users:
        for t in sent[u.nick]:
            n = len(u.tokens.get(t, ()))
            once += n == 1
            dup += max(0, n - 1)
    answered = wait_for_count(admin, mark, is_reload_reply, reloads, settle)
    lost = sum(1 for u in users for t in sent[u.nick] if t not in u.tokens)
    refused = sum(u.other_replies(target, marks[u.nick]) for u in users)
    elapsed = time.monotonic() - t0
    return SoakResult(total, once, lost, dup, reloads, answered, elapsed, refused)
