"""Echo: say back what you said."""

from __future__ import annotations

from bot.api import CommandError, Context, command


@command
def echo(ctx: Context, args: str) -> str:
    """echo TEXT -- repeat TEXT back"""
    if not args:
        raise CommandError("usage: echo TEXT")
    return args
