"""Which channels the bot wants to be in, and getting there: joining, pacing, rejoining.

Owns the channel side of one connection: the first JOINs once the server has
said what it supports (after its MOTD), grouped as its TARGMAX allows and paced
so hundreds of channels neither trip a flood limit nor bury a command under
their NAMES; channel keys; one rejoin per channel after a kick; a much later
retry when a channel refuses us (banned, invite-only, wrong key, full);
invitations; and a live change of the channel list (join the new, part the
old). What happens inside channels (members, modes) is ``bot.channels``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from bot.casemap import irc_lower
from bot.outbox import IRC_LINE

log = logging.getLogger("bot.connection")  # an operator reads one log for the connection

JOIN_BURST = 4  # JOIN lines sent at once on connecting; then one a second


class Host(Protocol):
    """What joining needs from the connection (``bot.connection.Connection``)."""

    settings: Any  # ConnectionSettings: channels, channel_keys, rejoin_delay, ...
    session: Any  # Session: generation, joined, join_targets, joins_sent
    registered: threading.Event

    def send_now(self, line: str) -> None: ...

    def after(self, delay: float, fn: Callable[[], None]) -> None: ...


class Joins:
    """The channels of ``conn``'s settings, joined and kept joined."""

    def __init__(self, conn: Host) -> None:
        self.conn = conn
        self._rejoin_pending: set[str] = set()  # irc-lowercased channels with a rejoin timer

    # -- joining -------------------------------------------------------------------

    def join(self, channel: str) -> None:
        key = self.conn.settings.channel_keys.get(irc_lower(channel))
        self.conn.send_now(f"JOIN {channel} {key}" if key else f"JOIN {channel}")

    def on_motd_end(self, _conn: Any, _event: Any) -> None:
        self.first_joins(self.conn.session.generation)

    def first_joins(self, generation: int) -> None:
        """Join every channel, once per connection (at the MOTD's end, or 2 s after 001)."""
        session = self.conn.session
        if generation != session.generation or session.joins_sent:
            return
        if self.conn.registered.is_set():
            session.joins_sent = True
            self.join_all(self.conn.settings.channels)

    def join_all(self, channels: tuple[str, ...]) -> None:
        """JOIN ``channels``, several to a line as the server's TARGMAX allows, and paced:
        JOIN_BURST lines at once, then one a second, so joining hundreds of channels
        neither trips a server's flood limit nor buries a command under their NAMES."""
        conn = self.conn
        keys = conn.settings.channel_keys
        keyed = [c for c in channels if irc_lower(c) in keys]
        plain = [c for c in channels if irc_lower(c) not in keys]
        per_line = max(1, conn.session.join_targets)
        lines = [f"JOIN {c} {keys[irc_lower(c)]}" for c in keyed]
        for start in range(0, len(plain), per_line):
            group, line = plain[start : start + per_line], ""
            for channel in group:  # and within the line length
                candidate = f"{line},{channel}" if line else f"JOIN {channel}"
                if line and len(candidate) > IRC_LINE - 2:
                    lines.append(line)
                    candidate = f"JOIN {channel}"
                line = candidate
            lines.append(line)
        generation = conn.session.generation
        for n, line in enumerate(lines):
            delay = max(0, n - JOIN_BURST + 1)
            if delay == 0:
                conn.send_now(line)
            else:  # (a line for an old connection is not sent on a new one)
                conn.after(delay, lambda line=line: self._send_if_current(generation, line))

    def _send_if_current(self, generation: int, line: str) -> None:
        if generation == self.conn.session.generation and self.conn.registered.is_set():
            self.conn.send_now(line)

    def set_channels(self, channels: tuple[str, ...]) -> None:
        """config.yaml's channel list changed: join the new ones, part the dropped ones."""
        conn = self.conn
        old = {irc_lower(c) for c in conn.settings.channels}
        new = {irc_lower(c): c for c in channels}
        conn.settings.channels = channels
        if not conn.registered.is_set():
            return
        for key, channel in new.items():
            if key not in old:
                self.join(channel)
        for key in old - new.keys():
            conn.send_now(f"PART {key}")

    # -- staying joined ------------------------------------------------------------

    def wanted(self, channel: str) -> bool:
        return irc_lower(channel) in {irc_lower(c) for c in self.conn.settings.channels}

    def kicked(self, channel: str) -> None:
        """We were kicked from ``channel``: back in ``rejoin_delay`` s, if we want it."""
        if self.wanted(channel):
            self._schedule_rejoin(channel, self.conn.settings.rejoin_delay)

    def on_cannot_join(self, _conn: Any, event: Any) -> None:
        """Banned, invite-only, wrong key, full: report, then try again much later."""
        settings = self.conn.settings
        channel = event.arguments[0] if event.arguments else "?"
        reason = " ".join(event.arguments[1:]) or event.type
        delay = max(settings.cannot_join_retry, settings.rejoin_delay * 12)
        log.warning("cannot join %s: %s; trying again in %.1f s", channel, reason, delay)
        if self.wanted(channel):
            self._schedule_rejoin(channel, delay)

    def on_invite(self, _conn: Any, event: Any) -> None:
        channel = event.arguments[0] if event.arguments else ""
        who = event.source.nick if event.source else "?"
        if self.conn.settings.join_on_invite and channel:
            log.info("invited to %s by %s; joining", channel, who)
            self.conn.send_now(f"JOIN {channel}")
        else:
            log.info("invited to %s by %s; ignored (join_on_invite is off)", channel, who)

    def _schedule_rejoin(self, channel: str, delay: float) -> None:
        """One pending rejoin per channel, however many kicks or refusals arrive."""
        key = irc_lower(channel)
        if key in self._rejoin_pending:
            return
        self._rejoin_pending.add(key)

        def fire() -> None:
            self._rejoin_pending.discard(key)
            self._rejoin(channel)

        self.conn.after(delay, fire)

    def _rejoin(self, channel: str) -> None:
        wanted = self.conn.registered.is_set() and self.wanted(channel)
        if wanted and irc_lower(channel) not in self.conn.session.joined:
            self.join(channel)
