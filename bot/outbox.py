"""The reply queue: make text safe, split it to fit, and release it at a steady rate.

Any thread may ``put`` text; only the connection's thread ``take``s raw lines and
writes them. Nothing a user types can become a raw IRC line here: CR, LF and NUL
end a message (the rest goes out as another message), targets are validated, and
long text is split on UTF-8 character boundaries so nothing is cut by the
server. Protocol replies (PONG, CAP, NICK) never pass through here, so chat
output can never delay them.

Fairness: each target has its own queue, capped at ``max_queued`` lines (what
does not fit is dropped and counted, never queued without end), and targets
take turns. Lines ``put`` as ``urgent`` (replies to admins) go out before any
other, so a flood of replies to others never starves the admin who is fixing
things.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import NamedTuple

from bot.casemap import irc_lower

#: What the server prepends when relaying is ":nick!user@host ". Until the bot knows
#: its own user@host, assume the longest a server commonly gives (10 + 63 + "@").
ASSUMED_USERHOST = 74
#: A line's length, CRLF and prefix included, unless ISUPPORT LINELEN says more.
IRC_LINE = 512
log = logging.getLogger(__name__)

_TARGET = re.compile(r"[^\x00-\x20,:][^\x00-\x20,]*")
_BREAKS = re.compile(r"[\r\n\x00]+")


class OutLine(NamedTuple):
    """One message as queued, already split to fit; made a raw line only at the socket."""

    command: str  # PRIVMSG or NOTICE
    target: str
    text: str  # as the reader sees it: without CTCP framing
    ctcp: str | None = None  # ACTION, VERSION...: sent framed as that CTCP message

    @property
    def raw(self) -> str:
        """The protocol line, without CRLF: ``PRIVMSG #c :text``."""
        body = f"\x01{self.ctcp} {self.text}\x01" if self.ctcp else self.text
        return f"{self.command} {self.target} :{body}"


class OutboxError(ValueError):
    """A reply that cannot be sent as asked (bad target)."""


def sanitize_lines(text: str) -> list[str]:
    r"""Split on CR, LF and NUL; drop empty pieces.

    >>> sanitize_lines("one\r\nQUIT :x\x00two")
    ['one', 'QUIT :x', 'two']
    """
    return [part for part in _BREAKS.split(text) if part.strip()]


def split_utf8(text: str, max_bytes: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes, preferring spaces.

    One pass over the encoded text (five megabytes split in milliseconds).

    >>> split_utf8("aaa bbb ccc", 7)
    ['aaa bbb', 'ccc']
    >>> split_utf8("é" * 5, 4)
    ['éé', 'éé', 'é']
    """
    data = text.encode("utf-8")
    pieces: list[str] = []
    start, end = 0, len(data)
    while end - start > max_bytes:
        cut = start + max_bytes
        while cut > start and data[cut] & 0xC0 == 0x80:  # back to a character's first byte
            cut -= 1
        if cut == start:  # one character longer than max_bytes: send it whole
            cut = start + 1
            while cut < end and data[cut] & 0xC0 == 0x80:
                cut += 1
        space = data.rfind(b" ", start, cut + 1)
        if space - start > (cut - start) // 2:  # break on a space unless that wastes most
            pieces.append(data[start:space].decode("utf-8"))
            start = space + 1
        else:
            pieces.append(data[start:cut].decode("utf-8"))
            start = cut
    if start < end:
        pieces.append(data[start:].decode("utf-8"))
    return pieces


def source_length(nick: str, userhost: str = "") -> int:
    """The length of ``nick!user@host`` as the server prepends it to what the bot sends:
    the one place where the unknown host is guessed (``userhost`` once it is known)."""
    return len(nick) + 1 + (len(userhost) if userhost else ASSUMED_USERHOST)


def valid_target(target: str) -> bool:
    return bool(_TARGET.fullmatch(target)) and len(target) <= 64


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def configure(self, rate: float, burst: int) -> None:
        self._refill()
        self.rate, self.burst = rate, burst
        self._tokens = min(self._tokens, float(burst))

    def take(self) -> bool:
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait_time(self) -> float:
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now


class Outbox:
    """Per-target FIFO queues, drained round-robin through one token bucket."""

    def __init__(
        self,
        rate: float = 1.0,
        burst: int = 5,
        *,
        max_queued: int = 30,
        source_length: Callable[[], int] = lambda: source_length("reloadbot"),
        line_length: Callable[[], int] = lambda: IRC_LINE,
        wake: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = TokenBucket(rate, burst, clock)
        self.max_queued = max_queued  # lines waiting per target (the urgent lane too)
        self._source_length = source_length
        self._line_length = line_length  # the server's LINELEN, or 512
        self._wake = wake
        self._lock = threading.Lock()
        self._queues: OrderedDict[str, deque[OutLine]] = OrderedDict()
        self._urgent: deque[OutLine] = deque()
        self.dropped = 0  # lines that did not fit their target's queue, ever

    def lines(
        self, target: str, text: str, command: str = "PRIVMSG", *, ctcp: str | None = None
    ) -> list[OutLine]:
        """``text`` as the lines it would be sent as (split to fit, CR/LF-safe).

        With ``ctcp`` (``ACTION``, ``VERSION``...), each line is framed as that CTCP
        message at the socket: ``\x01ACTION text\x01``."""
        if not valid_target(target):
            raise OutboxError(f"invalid reply target {target!r}")
        overhead = len(f":{'x' * self._source_length()} {command} {target} :\r\n".encode())
        head, tail = (f"\x01{ctcp} ", "\x01") if ctcp else ("", "")
        budget = max(self._line_length() - overhead - len(head) - len(tail), 16)
        if ctcp:
            text = str(text).replace("\x01", "")  # nothing may end the frame early
        return [
            OutLine(command, target, piece, ctcp)
            for line in sanitize_lines(str(text))
            for piece in split_utf8(line, budget)
        ]

    def put(
        self,
        target: str,
        text: str,
        *,
        command: str = "PRIVMSG",
        ctcp: str | None = None,
        urgent: bool = False,
    ) -> int:
        """Queue ``text`` for ``target``; the lines queued (those past the cap are dropped).

        Safe from any thread."""
        lines = self.lines(target, text, command, ctcp=ctcp)
        return self.put_lines(target, lines, urgent=urgent)

    def put_lines(self, target: str, lines: list[OutLine], *, urgent: bool = False) -> int:
        if not lines:
            return 0
        with self._lock:
            queue = self._urgent if urgent else self._queues.setdefault(target, deque())
            room = max(0, self.max_queued - len(queue))
            queue.extend(lines[:room])
            dropped = len(lines) - min(room, len(lines))
            self.dropped += dropped
        if dropped and (
            self.dropped == dropped or self.dropped // 1000 > (self.dropped - dropped) // 1000
        ):
            log.warning(
                "outbox: lines to %s dropped: its queue is full (%d dropped so far)",
                target,
                self.dropped,
            )
        self._wake()
        return len(lines) - dropped

    def take(self) -> tuple[list[OutLine], float | None]:
        """Lines allowed out now, and seconds until the next one may go (None if empty)."""
        out: list[OutLine] = []
        with self._lock:
            while (self._urgent or self._queues) and self.bucket.take():
                if self._urgent:
                    out.append(self._urgent.popleft())
                    continue
                target, queue = next(iter(self._queues.items()))
                out.append(queue.popleft())
                del self._queues[target]
                if queue:  # round-robin: this target goes to the back of the line
                    self._queues[target] = queue
            waiting = self._urgent or self._queues
            delay = self.bucket.wait_time() if waiting else None
        return out, delay

    def pending(self) -> int:
        with self._lock:
            return len(self._urgent) + sum(len(q) for q in self._queues.values())

    def drop(self, target: str | None = None) -> int:
        """Forget what waits for ``target`` (None: for everyone); how many lines."""
        with self._lock:
            if target is None:
                count = len(self._urgent) + sum(len(q) for q in self._queues.values())
                self._queues.clear()
                self._urgent.clear()
                return count
            key = irc_lower(target)
            count = 0
            for name in [t for t in self._queues if irc_lower(t) == key]:
                count += len(self._queues.pop(name))
            kept = [line for line in self._urgent if irc_lower(line.target) != key]
            count += len(self._urgent) - len(kept)
            self._urgent = deque(kept)
            return count

    def clear(self) -> int:
        return self.drop(None)
