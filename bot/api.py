"""The command-author API: everything a command module may use from the bot.

This is the whole public surface, documented here and in docs/writing-commands.md.
A command module is a plain ``.py`` file in ``commands/``::

    from bot.api import command, Context, CommandError

    @command(aliases=["dice"])
    def roll(ctx: Context, args: str) -> str:
        '''roll NdM -- roll N dice with M sides, e.g. !roll 2d6'''
        return "3 + 5 = 8"

Decorators only *mark* functions; the loader collects the marks from a freshly
executed module, validates them all, and swaps the new code in only when every
module of the reload loaded cleanly. Importing a command module therefore has no
effect on the running bot. Nothing in this module imports the rest of ``bot``.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, overload

__all__ = [
    "EVENT_KINDS",
    "Bot",
    "CommandError",
    "CommandSpec",
    "Context",
    "Event",
    "FetchError",
    "ListenerSpec",
    "ReplyValue",
    "Response",
    "Secret",
    "State",
    "Timer",
    "command",
    "on_event",
    "on_message",
]

#: What a command may return: one reply line, several, or nothing.
ReplyValue = str | Iterable[str] | None

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_MARK = "__reloadbot_command__"
_LISTEN = "__reloadbot_listeners__"

#: What ``@command(require=...)`` takes: a channel mode, or a higher one, is needed.
REQUIRE_LEVELS = (None, "op", "halfop", "voice")

#: Events ``@on_event`` can listen to.
EVENT_KINDS = frozenset({"join", "part", "quit", "nick", "kick", "action", "away", "netsplit"})


class CommandError(Exception):
    """A user's mistake. Its message is shown to the user as-is; nothing is logged."""


class FetchError(CommandError):
    """``fetch`` got no response: the address is refused (private network), the
    server did not answer in time, the connection failed, or there were too many
    redirects or requests to one host. Its message names the host and is fit to
    show in the channel, so a command may let it propagate.

    ``reason`` is one of ``refused``, ``timeout``, ``network``, ``redirects``,
    ``busy`` (too many requests to that host just now) or ``invalid`` (not an
    http(s) URL).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Response:
    """What ``ctx.fetch(url)`` got: any HTTP status (check ``ok``), the body decoded
    from gzip/deflate and cut at the size limit.

    ``url`` is the final address after redirects; ``headers`` have lower-case
    names; ``truncated`` says the body was longer than the limit (``content``
    then holds its start, enough for a page's title); ``encoding`` is the charset
    ``text`` decodes with (the header's, the page's ``<meta>``, else detected).
    """

    url: str
    status: int
    headers: Mapping[str, str]
    content: bytes
    truncated: bool = False
    encoding: str = "utf-8"

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case: ``text/html``."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def text(self) -> str:
        """The body as text (undecodable bytes become U+FFFD)."""
        return self.content.decode(self.encoding, "replace")

    def json(self) -> Any:
        """The body parsed as JSON; ``FetchError`` (reason ``invalid``) if it is not."""
        try:
            return json.loads(self.content)
        except ValueError as exc:
            host = self.url.split("/")[2] if self.url.count("/") >= 2 else self.url
            raise FetchError(f"{host} sent something that is not JSON", "invalid") from exc


class Secret:
    """A setting that is never printed: ``str()`` and ``repr()`` show ``***``.

    Type a ``Settings`` field ``Secret`` for an API key or a password; read it
    with ``reveal()`` where it is sent, and nowhere else.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class State(MutableMapping[str, Any]):
    """A module's persistent state (``ctx.state``, ``bot.state``): a mapping of JSON
    values, kept in SQLite, that survives reloads and restarts."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[State]:
        """``with state.transaction() as s:``: a read-modify-write no other thread
        interleaves with, committed at the end (rolled back on an exception)."""


class Context(Protocol):
    """What a command receives about the message that invoked it."""

    @property
    def nick(self) -> str:
        """Nick of the user who said the command."""

    @property
    def channel(self) -> str | None:
        """Channel the command was said in, or None in a private message."""

    @property
    def bot_nick(self) -> str:
        """The bot's current nick."""

    @property
    def is_admin(self) -> bool:
        """Whether the user matches an ``admins`` entry of config.yaml."""

    @property
    def state(self) -> State:
        """This module's persistent state; survives reloads and restarts."""

    @property
    def log(self) -> logging.Logger:
        """A logger named after this module."""

    @property
    def settings(self) -> Any:
        """This module's ``Settings`` as config.yaml's ``modules:`` section sets them
        (None when the module declares no ``Settings``)."""

    @property
    def user_modes(self) -> frozenset[str]:
        """The user's channel modes where the command was said: ``{"o"}`` for an op,
        ``{"v"}`` for a voiced user; empty in private."""

    @property
    def is_op(self) -> bool:
        """Whether the user is a channel operator (or more) where the command was said."""

    @property
    def user_id(self) -> str:
        """Who the user is across nick changes, for per-user limits: ``account:NAME``
        when logged in to services, else ``user@host`` (lowercase); empty for events."""

    @property
    def time(self) -> datetime:
        """When the message was sent: the server's stamp (``server-time``) when it gave
        one, else when the bot got it (an aware datetime, UTC)."""

    @property
    def msgid(self) -> str | None:
        """The message's id (IRCv3 ``msgid``), if the server gave one."""

    def reply(self, text: str, *, private: bool = False) -> None:
        """Send another line where the command was said (channel, or the user in private);
        ``private=True``: to the user in a private message, wherever it was said."""

    def action(self, text: str) -> None:
        """Send ``text`` as an action (``/me``) where the command was said."""

    def notice(self, text: str) -> None:
        """Send ``text`` as a NOTICE to the user who ran the command (only they see it)."""

    def fetch(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        timeout: float | None = None,
    ) -> Response:
        """GET ``url`` (``params`` are added to its query string, encoded) and return
        the ``Response``, whatever its status.

        Safe by default (config.yaml's ``http:`` sets the limits): 5 s to connect and
        10 s in all, at most 1 MB of body, at most 5 redirects, each one checked;
        private, loopback and link-local addresses are refused on the address
        actually connected to. Raises ``FetchError`` when there is no response.
        Blocks the calling worker thread, never the connection.
        """


@dataclass(frozen=True)
class Event:
    """Someone joined, left, quit, changed nick, was kicked, did an action (``/me``) or
    went away; or a netsplit took many users at once.

    ``nick`` is who it happened to (for ``kick``: the one kicked; empty for
    ``netsplit``), ``channel`` is None for ``quit``, ``nick``, ``away`` and
    ``netsplit`` (and for an action in a private message), and ``text`` is the
    part/quit/kick message, the new nick for ``nick``, what the action says
    (``/me waves``: ``waves``), the away reason (empty: back), or the two servers
    that split. ``nicks`` names everyone a netsplit took (empty for the others).
    """

    kind: str
    nick: str
    channel: str | None
    text: str = ""
    nicks: tuple[str, ...] = ()


class Timer(Protocol):
    """A scheduled call; cancelled automatically when its module is reloaded or unloaded."""

    def cancel(self) -> None:
        """Stop it; a call already running finishes."""


class Bot(Protocol):
    """What a module's optional ``setup(bot)`` and ``teardown(bot)`` receive."""

    @property
    def module(self) -> str:
        """This module's name (its file stem)."""

    @property
    def state(self) -> State:
        """This module's persistent state, the same mapping commands see as ``ctx.state``."""

    @property
    def log(self) -> logging.Logger:
        """A logger named after this module."""

    @property
    def settings(self) -> Any:
        """This module's ``Settings``, the same object commands see as ``ctx.settings``."""

    def say(self, target: str, text: str) -> None:
        """Send ``text`` to a channel or nick."""

    def after(self, seconds: float, func: Callable[[], object]) -> Timer:
        """Call ``func()`` once, ``seconds`` from now, on a worker thread."""

    def every(self, seconds: float, func: Callable[[], object]) -> Timer:
        """Call ``func()`` every ``seconds``, on a worker thread."""

    def fetch(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        timeout: float | None = None,
    ) -> Response:
        """``ctx.fetch`` (see ``Context.fetch``), for ``setup`` and timers."""


CommandFunc = Callable[[Any, str], ReplyValue]
F = TypeVar("F", bound=Callable[..., ReplyValue])


@dataclass(frozen=True)
class CommandSpec:
    """What ``@command`` attaches to a function; read by the loader."""

    name: str
    aliases: tuple[str, ...]
    admin: bool
    func: CommandFunc
    require: str | None = None  # "op", "halfop" or "voice" in the channel it is said in

    @property
    def help(self) -> str:
        """The command's docstring, cleaned (first line is ``usage -- summary``)."""
        return inspect.getdoc(self.func) or ""

    @property
    def summary(self) -> str:
        """First line of the help text."""
        return self.help.split("\n", 1)[0]

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@overload
def command(func: F, /) -> F: ...


@overload
def command(
    *,
    name: str | None = None,
    aliases: Iterable[str] = (),
    admin: bool = False,
    require: str | None = None,
) -> Callable[[F], F]: ...


def command(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    aliases: Iterable[str] = (),
    admin: bool = False,
    require: str | None = None,
) -> F | Callable[[F], F]:
    """Mark ``func(ctx, args)`` as a chat command.

    Use it bare (``@command``) or with options. The command's name is the
    function's name unless ``name`` is given; ``aliases`` are other names it
    answers to; ``admin=True`` limits it to the ``admins`` of config.yaml;
    ``require="op"`` (or ``"halfop"``, ``"voice"``) to users with that channel
    mode (or a higher one) where it is said, and admins. The docstring is the
    help text and is required.

    >>> @command(aliases=["hi"])
    ... def hello(ctx, args):
    ...     '''hello -- say hello'''
    ...     return "hello!"
    >>> hello.__reloadbot_command__.names
    ('hello', 'hi')
    """

    if require not in REQUIRE_LEVELS:
        raise ValueError(f"require= takes one of op, halfop, voice, got {require!r}")

    def mark(f: F) -> F:
        spec = CommandSpec(
            name=_valid_name(name or f.__name__),
            aliases=tuple(_valid_name(a) for a in aliases),
            admin=admin,
            func=f,
            require=require,
        )
        setattr(f, _MARK, spec)
        return f

    return mark(func) if func is not None else mark


def _valid_name(name: str) -> str:
    lowered = name.lower()
    if not _NAME.fullmatch(lowered):
        raise ValueError(
            f"invalid command name {name!r}: use 1-32 letters, digits, '_' or '-',"
            " starting with a letter or digit"
        )
    return lowered


@dataclass(frozen=True)
class ListenerSpec:
    """What ``@on_message``/``@on_event`` attach to a function; read by the loader."""

    pattern: re.Pattern[str] | None  # for messages
    events: frozenset[str]  # for events
    func: Callable[..., ReplyValue]


def on_message(pattern: str) -> Callable[[F], F]:
    """Call ``func(ctx, match)`` for every message (commands included) that ``pattern`` matches.

    ``pattern`` is a regular expression searched anywhere in the text, e.g.
    ``r"(\\S+)\\+\\+"``; ``match`` is the ``re.Match``. Replies go where the
    message was said. Useful for ``karma`` (``nick++``) or ``seen``.
    """
    compiled = re.compile(pattern)

    def mark(f: F) -> F:
        _add_listener(f, ListenerSpec(compiled, frozenset(), f))
        return f

    return mark


def on_event(*kinds: str) -> Callable[[F], F]:
    """Call ``func(ctx, event)`` when someone joins, parts, quits, changes nick, is kicked,
    does an action (``/me``) or goes away, or a netsplit happens.

    ``kinds`` are among ``join``, ``part``, ``quit``, ``nick``, ``kick``, ``action``,
    ``away``, ``netsplit``; ``event`` is an Event.
    """
    unknown = set(kinds) - EVENT_KINDS
    if unknown or not kinds:
        raise ValueError(f"on_event takes some of {sorted(EVENT_KINDS)}, got {sorted(unknown)}")

    def mark(f: F) -> F:
        _add_listener(f, ListenerSpec(None, frozenset(kinds), f))
        return f

    return mark


def _add_listener(func: object, spec: ListenerSpec) -> None:
    existing: tuple[ListenerSpec, ...] = getattr(func, _LISTEN, ())
    setattr(func, _LISTEN, (*existing, spec))


def listener_specs(obj: object) -> tuple[ListenerSpec, ...]:
    """The specs ``@on_message``/``@on_event`` attached to ``obj`` (used by the loader)."""
    specs = getattr(obj, _LISTEN, ())
    return (
        tuple(s for s in specs if isinstance(s, ListenerSpec)) if isinstance(specs, tuple) else ()
    )


def command_spec(obj: object) -> CommandSpec | None:
    """The spec ``@command`` attached to ``obj``, if any (used by the loader)."""
    spec = getattr(obj, _MARK, None)
    return spec if isinstance(spec, CommandSpec) else None
