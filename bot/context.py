"""The ``Context`` a command, listener or timer call receives (``bot.api.Context``).

Owns what one call may do and see: who said it and where, the module's state
and settings, ``ctx.fetch``, and its replies, each counted against the
per-call line cap (``rate_limit.per_reply``), with one "... N more lines
dropped" at the end when the cap cut it short.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.api import Response, State
from bot.channels import at_least


@dataclass
class CallContext:
    """The ``Context`` a command receives (see ``bot.api.Context``)."""

    nick: str
    channel: str | None
    bot_nick: str
    is_admin: bool
    module: str
    log: logging.Logger
    reply_target: str
    _reply: Callable[..., tuple[int, int]] = field(repr=False)  # Host.reply
    _state_for: Callable[[str], State] = field(repr=False)
    fetch: Callable[..., Response] = field(repr=False)  # Host.fetch: ctx.fetch
    settings: Any = field(default=None, repr=False)
    user_modes: frozenset[str] = frozenset()
    user_id: str = ""
    time: datetime = field(default_factory=lambda: datetime.now(UTC))  # server-time if given
    msgid: str | None = None  # the message's msgid tag, if the server gave one
    max_lines: int = 10  # rate_limit.per_reply: lines one call may send
    urgent: bool = False  # an admin's: ahead of everyone else's replies
    replies: int = 0
    lines: int = 0  # lines sent so far (a reply may be several)
    dropped: int = 0  # lines past max_lines, not sent

    @property
    def is_op(self) -> bool:
        return at_least(self.user_modes, "op")

    @property
    def state(self) -> State:
        return self._state_for(self.module)

    @property
    def full(self) -> bool:
        return self.lines >= self.max_lines

    def reply(self, text: str, *, private: bool = False) -> None:
        self._send(self.nick if private else self.reply_target, text, "message")

    def action(self, text: str) -> None:
        self._send(self.reply_target, text, "action")

    def notice(self, text: str) -> None:
        self._send(self.nick, text, "notice")

    def _send(self, target: str, text: str, kind: str) -> None:
        """Every line a call sends counts towards ``max_lines``, whatever its kind."""
        self.replies += 1
        room = self.max_lines - self.lines
        _, total = self._reply(target, str(text), urgent=self.urgent, room=room, kind=kind)
        self.lines += min(total, max(room, 0))
        self.dropped += max(0, total - max(room, 0))

    def said_enough(self, unread: int | None) -> None:
        """The call is over: say that lines were dropped, if any (``unread``: items of
        its result never read; None: a generator stopped at the cap)."""
        if not self.dropped and unread == 0:
            return
        more = "more lines" if unread is None else _lines_count(self.dropped + unread)
        self._reply(self.reply_target, f"... {more} dropped", urgent=self.urgent, room=1)


def _lines_count(count: int) -> str:
    return f"{count} more line{'' if count == 1 else 's'}"
