"""Choose: pick one of several options."""

from __future__ import annotations

import random

from bot.api import CommandError, Context, command

USAGE = "usage: choose a | b | c (or a, b, c, or a b c)"

_rng = random.SystemRandom()


def options(text: str) -> list[str]:
    """Split on ``|`` if there is one, else on ``,``, else on whitespace; drop empty ones."""
    for separator in ("|", ","):
        if separator in text:
            parts = text.split(separator)
            break
    else:
        parts = text.split()
    return [p.strip() for p in parts if p.strip()]


@command(aliases=["pick"])
def choose(ctx: Context, args: str) -> str:
    """choose A | B | C -- pick one at random (options may also be comma or space separated)"""
    choices = options(args)
    if len(choices) < 2:
        raise CommandError(USAGE if not choices else "choose: give me at least two options")
    return _rng.choice(choices)
