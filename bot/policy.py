"""Who may run what, and where: the checks a chat message passes before any module code runs.

Owns, in the order they are applied: the ignore list (an ignored user reaches
nothing), per-channel switches (``disable:`` turns a module or a command off in
one channel, silently, as if it were not there), the command rates (past
``command_rate.per_user`` a user is ignored for a while and told so once),
admin-only commands, ``permissions:`` (a command granted to channel ops,
voiced users, masks or accounts only) and ``require=``. What a refused user is
told goes through one gate, ``refuse``: ``command_rate.refusals`` (one) per
user per ``command_rate.window``, and ``per_channel`` for everyone, so refusals
can never flood the channel or the server.

Pure decisions over config and the message: no threads, no sockets; the
dispatcher asks and acts. Only the connection thread calls it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.auth import is_admin
from bot.casemap import irc_lower
from bot.message import Message, Source

if TYPE_CHECKING:
    from bot.config import Config
    from bot.ignores import Ignores

log = logging.getLogger(__name__)


class RateLimiter:
    """Sliding-window counts per key (a user, a channel); not thread-safe by design."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, limit: int, window: float) -> bool:
        now = self._clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= limit:
            return False
        hits.append(now)
        if len(self._hits) > 10_000:  # forget idle keys so memory stays bounded
            self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - window}
        return True


def user_key(source: Source) -> str:
    """Who a user is for limits: user@host, which survives nick changes."""
    return f"{source.user}@{source.host}".lower()


def user_id(source: Source, fold: Callable[[str], str]) -> str:
    """``ctx.user_id``: ``account:NAME`` when logged in to services, else user@host."""
    return f"account:{fold(source.account)}" if source.account else user_key(source)


class Policy:
    """The checks, with the config in force now (``config`` is read at each check)."""

    def __init__(
        self,
        config: Callable[[], Config],
        ignores: Ignores,
        say: Callable[[str, str], None],
        notice: Callable[[str, str], None],
        fold: Callable[[], Callable[[str], str]] = lambda: irc_lower,
    ) -> None:
        self._config = config
        self.ignores = ignores
        self._say = say
        self._notice = notice
        self._fold = fold  # the server's CASEMAPPING, as the connection learned it
        self.limiter = RateLimiter()

    @property
    def config(self) -> Config:
        return self._config()

    # -- before anything runs ------------------------------------------------------------

    def is_admin(self, source: Source) -> bool:
        return is_admin(source, self.config.admins, self._fold())

    def ignored(self, source: Source) -> bool:
        return self.ignores.match(source) is not None

    def off(self, channel: str | None, module: str | None, command: str | None = None) -> bool:
        """Whether ``module`` (or ``command``) is turned off in ``channel`` by ``disable:``."""
        if channel is None:
            return False
        options = self.config.channel_options.get(irc_lower(channel))
        if options is None or not options.disable:
            return False
        return (module is not None and module.lower() in options.disable) or (
            command is not None and command.lower() in options.disable
        )

    # -- a command ----------------------------------------------------------------------

    def within_rate(self, message: Message, name: str) -> bool:
        """Per-user and per-channel command rates (callers skip this for admins)."""
        rate = self.config.command_rate
        if not self.limiter.allow(f"user:{user_key(message.source)}", rate.per_user, rate.window):
            self._flooding(message, name)
            return False
        channel = message.channel
        if channel and not self.limiter.allow(
            f"chan:{irc_lower(channel)}", rate.per_channel, rate.window
        ):
            log.warning("rate limit: dropped %s in %s", name, channel)
            return False
        return True

    def permitted(self, message: Message, name: str, modes: frozenset[str]) -> str | None:
        """Why a non-admin may not run ``name`` here under ``permissions:`` (None: may)."""
        grants = self.config.permissions.get(name.lower())
        if grants is None:
            return None
        fold = self._fold()
        if any(g.allows(message.source, modes, fold) for g in grants):
            return None
        levels = [g.level for g in grants if g.level is not None]
        if not levels:
            return "is not for you"
        where = "in this channel" if message.channel else "in a channel: say it there"
        return f"needs {' or '.join(levels)} {where}"

    def refuse(self, message: Message, text: str, *, admin: bool = False) -> None:
        """Tell the user why not: ``command_rate.refusals`` times per user per window, and
        no more than ``per_channel`` refusals to everyone (admins are always told)."""
        rate = self.config.command_rate
        user = f"refused:{user_key(message.source)}"
        if not admin and not (
            self.limiter.allow(user, rate.refusals, rate.window)
            and self.limiter.allow("refused", rate.per_channel, rate.window)
        ):
            log.info("refused again, not said: %s to %s", text, message.source.mask)
            return
        self._say(message.reply_target, f"{message.source.nick}: {text}")

    def _flooding(self, message: Message, name: str) -> None:
        """Past the per-user rate: ignored for a while, and told so once (or just dropped)."""
        source, ignore_for = message.source, self.config.command_rate.ignore_for
        if ignore_for <= 0:
            log.warning("rate limit: dropped %s from %s", name, source.mask)
            return
        mask = f"*!{source.user}@{source.host}"
        self.ignores.add(mask, ignore_for, "too many commands", "flood limit")
        log.warning("rate limit: %s ignored for %g s (%s)", source.mask, ignore_for, name)
        self._notice(source.nick, f"Too many commands: you are ignored for {ignore_for:g} s.")
