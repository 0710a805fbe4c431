"""Karma: ``nick++`` and ``nick--`` in a channel; ``karma NICK`` to look."""

from __future__ import annotations

import re

from bot.api import CommandError, Context, command, on_message

from ._common import atomic, clip, irc_lower, snapshot

MAX_PER_MESSAGE = 5
# A word of nick-ish characters right before ++ or --, standing alone: "bob++", "c++ rocks".
_VOTE = re.compile(r"(?<![^\s(])([\w\[\]\\`^{|}.-]{1,32}?)(\+\+|--)(?![^\s,.;:!?)])")


def votes(text: str) -> dict[str, int]:
    """``{irc_lower(name): +1 or -1}`` for the votes in one message (one per name)."""
    found: dict[str, int] = {}
    for match in _VOTE.finditer(text):
        key = irc_lower(match[1])
        if key not in found and len(found) >= MAX_PER_MESSAGE:
            continue
        found[key] = found.get(key, 0) + (1 if match[2] == "++" else -1)
    return {key: max(-1, min(1, change)) for key, change in found.items() if change}


@on_message(r"\S(\+\+|--)")
def vote(ctx: Context, match: re.Match[str]) -> str | None:
    if ctx.channel is None:
        return None  # votes in private would be anonymous
    found = votes(match.string)
    refused = found.pop(irc_lower(ctx.nick), None)
    if found:
        with atomic(ctx.state) as state:
            for key, change in found.items():
                state[key] = state.get(key, 0) + change
    return f"{ctx.nick}: no karma for yourself." if refused else None


@command
def karma(ctx: Context, args: str) -> str:
    """karma [NICK] -- NICK's karma (or the top five); give it with NICK++ and NICK--"""
    name = args.strip()
    if not name:
        top = sorted(snapshot(ctx.state).items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        if not top:
            return "nobody has any karma yet."
        return "top karma: " + ", ".join(f"{k} {v}" for k, v in top)
    if " " in name:
        raise CommandError("usage: karma [NICK]")
    return f"{clip(name, 40)} has {ctx.state.get(irc_lower(name), 0)} karma."
