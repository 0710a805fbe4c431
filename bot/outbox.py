"""The reply queue: make text safe, split it to fit, and release it at a steady rate.

Any thread may ``put`` text; only the connection's thread ``take``s raw lines and
writes them. Nothing a user types can become a raw IRC line here: CR, LF and NUL
end a message (the rest goes out as another message), targets are validated, and
long text is split on UTF-8 character boundaries so nothing is cut by the
server. Protocol replies (PONG, CAP, NICK) never pass through here, so chat
output can never delay them.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

# What the server prepends when relaying: ":nick!user@host ". Assume the longest
# user@host a server commonly gives (10 + 63) when we do not know our own.
_ASSUMED_USERHOST = 74
_IRC_LINE = 512
_TARGET = re.compile(r"[^\x00-\x20,:][^\x00-\x20,]*")
_BREAKS = re.compile(r"[\r\n\x00]+")


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

    >>> split_utf8("aaa bbb ccc", 7)
    ['aaa bbb', 'ccc']
    >>> split_utf8("é" * 5, 4)
    ['éé', 'éé', 'é']
    """
    pieces: list[str] = []
    while len(text.encode("utf-8")) > max_bytes:
        cut = _fit(text, max_bytes)
        space = text.rfind(" ", 0, cut + 1)
        if space > cut // 2:  # break on a space unless that wastes most of the line
            pieces.append(text[:space])
            text = text[space + 1 :]
        else:
            pieces.append(text[:cut])
            text = text[cut:]
    if text:
        pieces.append(text)
    return pieces


def _fit(text: str, max_bytes: int) -> int:
    """Largest number of characters of ``text`` whose encoding fits ``max_bytes``."""
    encoded = text.encode("utf-8")[:max_bytes]
    return len(encoded.decode("utf-8", "ignore"))


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
        rate: float = 2.0,
        burst: int = 5,
        *,
        source_length: Callable[[], int] = lambda: 9 + _ASSUMED_USERHOST,
        wake: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = TokenBucket(rate, burst, clock)
        self._source_length = source_length
        self._wake = wake
        self._lock = threading.Lock()
        self._queues: OrderedDict[str, deque[str]] = OrderedDict()

    def put(self, target: str, text: str, *, command: str = "PRIVMSG") -> None:
        """Queue ``text`` for ``target``; safe from any thread."""
        if not valid_target(target):
            raise OutboxError(f"invalid reply target {target!r}")
        overhead = len(f":{'x' * self._source_length()} {command} {target} :\r\n".encode())
        budget = max(_IRC_LINE - overhead, 16)
        lines = [
            f"{command} {target} :{piece}"
            for line in sanitize_lines(str(text))
            for piece in split_utf8(line, budget)
        ]
        if not lines:
            return
        with self._lock:
            self._queues.setdefault(target, deque()).extend(lines)
        self._wake()

    def take(self) -> tuple[list[str], float | None]:
        """Lines allowed out now, and seconds until the next one may go (None if empty)."""
        out: list[str] = []
        with self._lock:
            while self._queues and self.bucket.take():
                target, queue = next(iter(self._queues.items()))
                out.append(queue.popleft())
                del self._queues[target]
                if queue:  # round-robin: this target goes to the back of the line
                    self._queues[target] = queue
            delay = self.bucket.wait_time() if self._queues else None
        return out, delay

    def pending(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._queues.values())

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()
