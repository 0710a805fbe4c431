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
import logging
import re
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, overload

__all__ = [
    "Bot",
    "CommandError",
    "CommandSpec",
    "Context",
    "ReplyValue",
    "command",
]

#: What a command may return: one reply line, several, or nothing.
ReplyValue = str | Iterable[str] | None

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_MARK = "__reloadbot_command__"


class CommandError(Exception):
    """A user's mistake. Its message is shown to the user as-is; nothing is logged."""


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
    def state(self) -> MutableMapping[str, Any]:
        """This module's persistent state; survives reloads and restarts."""

    @property
    def log(self) -> logging.Logger:
        """A logger named after this module."""

    def reply(self, text: str) -> None:
        """Send another line where the command was said (channel, or the user in private)."""


class Bot(Protocol):
    """What a module's optional ``setup(bot)`` and ``teardown(bot)`` receive."""

    @property
    def module(self) -> str:
        """This module's name (its file stem)."""

    @property
    def state(self) -> MutableMapping[str, Any]:
        """This module's persistent state, the same mapping commands see as ``ctx.state``."""

    @property
    def log(self) -> logging.Logger:
        """A logger named after this module."""

    def say(self, target: str, text: str) -> None:
        """Send ``text`` to a channel or nick."""


CommandFunc = Callable[[Any, str], ReplyValue]
F = TypeVar("F", bound=Callable[..., ReplyValue])


@dataclass(frozen=True)
class CommandSpec:
    """What ``@command`` attaches to a function; read by the loader."""

    name: str
    aliases: tuple[str, ...]
    admin: bool
    func: CommandFunc

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
    *, name: str | None = None, aliases: Iterable[str] = (), admin: bool = False
) -> Callable[[F], F]: ...


def command(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    aliases: Iterable[str] = (),
    admin: bool = False,
) -> F | Callable[[F], F]:
    """Mark ``func(ctx, args)`` as a chat command.

    Use it bare (``@command``) or with options. The command's name is the
    function's name unless ``name`` is given; ``aliases`` are other names it
    answers to; ``admin=True`` limits it to the ``admins`` of config.yaml. The
    docstring is the help text and is required.

    >>> @command(aliases=["hi"])
    ... def hello(ctx, args):
    ...     '''hello -- say hello'''
    ...     return "hello!"
    >>> hello.__reloadbot_command__.names
    ('hello', 'hi')
    """

    def mark(f: F) -> F:
        spec = CommandSpec(
            name=_valid_name(name or f.__name__),
            aliases=tuple(_valid_name(a) for a in aliases),
            admin=admin,
            func=f,
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


def command_spec(obj: object) -> CommandSpec | None:
    """The spec ``@command`` attached to ``obj``, if any (used by the loader)."""
    spec = getattr(obj, _MARK, None)
    return spec if isinstance(spec, CommandSpec) else None
