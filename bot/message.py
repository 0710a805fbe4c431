"""Plain data that crosses layers: who said what, where.

The connection turns IRC events into these; the dispatcher and auth read them.
Frozen dataclasses only: nothing here knows about sockets or command modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """The sender of a message: ``nick!user@host``, plus a services account if known."""

    nick: str
    user: str = ""
    host: str = ""
    account: str | None = None

    @property
    def mask(self) -> str:
        return f"{self.nick}!{self.user}@{self.host}"


@dataclass(frozen=True)
class Message:
    """A PRIVMSG to a channel or to the bot."""

    source: Source
    target: str
    text: str
    is_private: bool
    tags: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def channel(self) -> str | None:
        return None if self.is_private else self.target

    @property
    def reply_target(self) -> str:
        """Where a reply goes: the channel, or the sender in private."""
        return self.source.nick if self.is_private else self.target
