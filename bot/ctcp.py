"""CTCP queries: the answers to VERSION, PING, TIME, CLIENTINFO and SOURCE, rate-limited.

The connection reports each query (``ACTION`` is not one: it reaches listeners as an
``action`` event); ``CtcpAnswers.answer`` says what to send back, as a NOTICE, or
nothing: an unknown query, ``ctcp.enabled: false``, or a user past the limits (one
answer per user every 2 s, 10 a minute in all), so a flood of queries cannot make the
bot flood the server.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot import __version__
from bot.config import CtcpConfig
from bot.policy import RateLimiter

PER_USER = (1, 2.0)  # answers, seconds
IN_ALL = (10, 60.0)
MAX_PING_TOKEN = 64  # a PING is echoed; a longer token is cut


@dataclass(frozen=True)
class CtcpAnswer:
    query: str  # VERSION, PING...: the NOTICE is framed as this CTCP message
    text: str


class CtcpAnswers:
    """Answers CTCP queries; keeps its limits in memory (one instance per bot)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._limiter = RateLimiter(clock)
        self._wall_clock = wall_clock

    def answer(self, config: CtcpConfig, user: str, query: str, arg: str) -> CtcpAnswer | None:
        """What to answer ``user`` (user@host or account) for ``query`` with ``arg``."""
        query = query.upper()
        text = self._text(config, query, arg)
        if text is None or not config.enabled:
            return None
        if not self._limiter.allow(f"user:{user}", *PER_USER):
            return None
        if not self._limiter.allow("*", *IN_ALL):
            return None
        return CtcpAnswer(query, text)

    def _text(self, config: CtcpConfig, query: str, arg: str) -> str | None:
        if query == "VERSION":
            python = platform.python_version()
            return config.version or f"reloadbot {__version__} (Python {python})"
        if query == "PING":  # echoed, so the asker can time the round trip
            return arg[:MAX_PING_TOKEN] or "0"
        if query == "TIME":
            return time.strftime("%a, %d %b %Y %H:%M:%S %z", time.localtime(self._wall_clock()))
        if query == "CLIENTINFO":
            return " ".join(sorted(supported(config)))
        if query == "SOURCE" and config.source:
            return config.source
        return None


def supported(config: CtcpConfig) -> set[str]:
    """The CTCP messages the bot understands (CLIENTINFO's answer)."""
    return {"ACTION", "CLIENTINFO", "PING", "TIME", "VERSION"} | (
        {"SOURCE"} if config.source else set()
    )
