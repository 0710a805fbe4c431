"""Small helpers shared by the standard command modules: nicks, durations, per-user quotas."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from bot.api import State

_IRC_LOWER = str.maketrans("[]\\~", "{}|^")


def irc_lower(nick: str) -> str:
    """``nick`` folded the way IRC servers compare nicks (rfc1459: ``[]\\~`` are ``{}|^``)."""
    return nick.lower().translate(_IRC_LOWER)


def same_nick(a: str, b: str) -> bool:
    return irc_lower(a) == irc_lower(b)


_NICK = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,31}")


def is_nick(text: str) -> bool:
    """Whether ``text`` could be an IRC nick."""
    return _NICK.fullmatch(text) is not None


def now() -> float:
    """The wall clock, in seconds since the epoch (one place, so tests can fake it)."""
    return time.time()


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d{1,9})([smhdw])")


def parse_duration(text: str) -> int:
    """``10s``, ``5m``, ``2h``, ``1d30m``, ``1w`` -> seconds. Raises ValueError."""
    text = text.strip().lower()
    if not text:
        raise ValueError("empty duration")
    pos, total, seen = 0, 0, set()
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise ValueError(f"not a duration: {text!r} (use e.g. 10s, 5m, 2h, 1d30m)")
        number, unit = match.groups()
        if unit in seen:
            raise ValueError(f"unit {unit!r} given twice in {text!r}")
        seen.add(unit)
        total += int(number) * _UNITS[unit]
        pos = match.end()
    return total


def format_duration(seconds: float) -> str:
    """Seconds as ``1d 2h 3m`` (at most the two largest units; ``0s`` for nothing)."""
    left = max(0, round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2]) or "0s"


def ago(then: float, at: float | None = None) -> str:
    """``3m 20s ago`` (``just now`` under a second)."""
    delta = (now() if at is None else at) - then
    return "just now" if delta < 1 else f"{format_duration(delta)} ago"


class Quota:
    """At most ``limit`` uses per user (``ctx.user_id``) each ``window`` seconds.

    In memory: a reload starts the counts afresh, which errs on the generous side.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._uses: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def take(self, user: str, count: int = 1) -> int:
        """Use up to ``count`` of ``user``'s quota; how many were granted."""
        current = time.monotonic()
        with self._lock:
            if len(self._uses) > 10_000:  # forget idle users so memory stays bounded
                self._uses = {u: t for u, t in self._uses.items() if t[-1] > current - self.window}
            uses = [t for t in self._uses.get(user, ()) if t > current - self.window]
            granted = max(0, min(count, self.limit - len(uses)))
            self._uses[user] = uses + [current] * granted
            return granted


def snapshot(state: State) -> dict[str, Any]:
    """A consistent copy of ``state`` (iterating it live can race with other threads)."""
    with state.transaction() as s:
        return dict(s.items())


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis if cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Control characters (IRC colours and bold among them) and the bidi overrides that
# would turn the rest of a line around: never passed on from a web page or an API.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def one_line(text: str) -> str:
    """``text`` as one clean line: control characters gone, whitespace runs one space."""
    return " ".join(_UNSAFE.sub(" ", text).split())
