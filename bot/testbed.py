"""What the pytest plugin's bot (``bot.testing.CommandBot``) runs on instead of IRC.

Owns the two stand-ins: ``FakeTransport``, the Transport protocol in memory
(no socket, no thread, a clock that moves when the test says), and
``make_config``, the config of a test bot (one admin rule, flood limits out of
the way, everything else as on IRC). Imported only when a test makes a bot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.api import Event
    from bot.config import Config
    from bot.message import Message, Source
    from bot.outbox import Outbox

#: The services account ``say(..., admin=True)`` messages carry; the test bot's only admin rule.
TEST_ACCOUNT = "reloadbot-test"


class FakeTransport:
    """The Transport protocol in memory: no socket, no thread, a clock that moves on demand.

    ``CommandBot`` plays the connection thread: it hands messages to the
    dispatcher, runs due timers in ``advance()`` and drains the outbox.
    """

    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        on_message: Callable[[Message], None],
        on_event: Callable[[Event, Source], None],
    ) -> None:
        self.nick = config.nick
        self.channels = config.channels
        self.outbox = outbox
        self.on_message = on_message
        self.on_event = on_event
        self.now = 0.0
        self.stopped: str | None = None
        self.reconnects: list[str] = []
        from bot.timers import TimerHeap  # (stdlib only, but the plugin imports lazily)

        self._timers = TimerHeap(lambda: self.now)
        self._changed = threading.Condition()
        from bot.channels import Channels

        self.members = Channels()  # who has which channel modes (CommandBot.set_modes)

    def run(self) -> None:
        raise RuntimeError("the test transport has no loop; CommandBot drives it")

    def stop(self, message: str = "Shutting down") -> None:
        self.stopped = message

    def wake(self) -> None:
        """Replies wait in the outbox until the test collects them."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._changed:
            self._timers.add(delay, fn)
            self._changed.notify_all()

    def set_channels(self, channels: tuple[str, ...]) -> None:
        self.channels = channels

    def change_nick(self, nicks: tuple[str, ...]) -> None:
        self.nick = nicks[0]

    def reconnect(self, reason: str) -> None:
        self.reconnects.append(reason)

    def update_settings(self, settings: object) -> None:
        """No server, nothing to update."""

    def source_length(self) -> int:
        from bot.outbox import source_length

        return source_length(self.nick)  # as the IRC connection assumes before it knows

    def pop_due(self, until: float) -> Callable[[], None] | None:
        """The next callback due at or before ``until``, moving the clock to its due time."""
        with self._changed:
            popped = self._timers.pop_due(until)
            if popped is None:
                return None
            due, fn = popped
            self.now = max(self.now, due)
            return fn


def make_config(
    folder: Path,
    *,
    prefix: str,
    nick: str,
    channel: str,
    state_db: Path | None,
    command_timeout: float,
    isolate: tuple[str, ...] = (),
    modules: Mapping[str, Mapping[str, Any]] | None = None,
    http: Mapping[str, Any] | None = None,
    channels: Sequence[str | Mapping[str, Any]] = (),
) -> Config:
    from bot.auth import parse_admin_rule
    from bot.casemap import irc_lower
    from bot.config import CommandRate, Config, RateLimit, ServerConfig, channel_options
    from bot.config_sections import http_config

    def name(entry: str | Mapping[str, Any]) -> str:
        return irc_lower(entry if isinstance(entry, str) else str(entry.get("name", "")))

    given = list(channels)
    if irc_lower(channel) not in map(name, given):
        given.insert(0, channel)
    options = channel_options(given)

    return Config(
        server=ServerConfig(host="irc.example.invalid"),
        nick=nick,
        channels=tuple(o.name for o in options.values()),
        channel_options=options,
        prefix=prefix,
        admins=(parse_admin_rule(f"account:{TEST_ACCOUNT}"),),
        commands_dir=folder,
        watch=False,
        # Replies are still sanitised and split like on IRC, and admin checks, errors and
        # the per-user running cap are the same; only the flood limits (which would
        # drop a test's sixth command within ten seconds) are out of the way.
        rate_limit=RateLimit(burst=1_000_000, per_second=1_000_000.0),
        command_rate=CommandRate(per_user=1_000_000, per_channel=1_000_000, refusals=1_000_000),
        command_timeout=command_timeout,
        isolate=isolate,
        modules=dict(modules or {}),
        workers=4,
        state_db=state_db,
        http=http_config(http or {}),
    )
