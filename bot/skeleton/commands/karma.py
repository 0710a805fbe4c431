"""Karma: ``nick++`` and ``nick--`` in a channel; ``karma NICK`` to look.

What chat can write is bounded: each user (``ctx.user_id``) gives at most
``VOTES_PER_HOUR`` votes, and once ``MAX_NAMES`` names have karma only they can
get more. ``karma`` alone reads a small index of the top names, never the
whole table (``migrate`` builds it from a state without one).
"""

from __future__ import annotations

import re
from typing import Any

from bot.api import CommandError, Context, Event, command, on_event, on_message

from ._common import Quota, clip, irc_lower

STATE_VERSION = 2  # 2: the ":top" index
MAX_PER_MESSAGE = 5
VOTES_PER_HOUR = 30
MAX_NAMES = 10_000
TOP_KEPT = 20
TOP = ":top"  # no nick has a colon
COUNT = ":names"
_votes = Quota(VOTES_PER_HOUR, 3600)
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
    return count(ctx, match.string)


@on_event("action")
def vote_in_action(ctx: Context, event: Event) -> str | None:
    """``/me thanks alice++`` counts too."""
    return count(ctx, event.text) if "++" in event.text or "--" in event.text else None


def count(ctx: Context, text: str) -> str | None:
    if ctx.channel is None:
        return None  # votes in private would be anonymous
    found = votes(text)
    refused = found.pop(irc_lower(ctx.nick), None)
    granted = _votes.take(ctx.user_id or ctx.nick, len(found))
    if granted:
        with ctx.state.transaction() as state:
            for key, change in list(found.items())[:granted]:
                record(state, key, change)
    return f"{ctx.nick}: no karma for yourself." if refused else None


def record(state: Any, key: str, change: int) -> None:
    """Add ``change`` to ``key``'s karma and keep the top index (inside a transaction)."""
    if key not in state:
        names = state.get(COUNT, 0)
        if names >= MAX_NAMES:
            return
        state[COUNT] = names + 1
    score = state.get(key, 0) + change
    state[key] = score
    top = [entry for entry in state.get(TOP, []) if entry[0] != key]
    top.append([key, score])
    top.sort(key=lambda entry: (-entry[1], entry[0]))
    state[TOP] = top[:TOP_KEPT]


def migrate(state: Any, old_version: int | None) -> None:
    """Build the top index and the name count from the whole table (once)."""
    scores = {k: v for k, v in state.items() if not k.startswith(":")}
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    state[TOP] = [[k, v] for k, v in ranked[:TOP_KEPT]]
    state[COUNT] = len(scores)


@command
def karma(ctx: Context, args: str) -> str:
    """karma [NICK] -- NICK's karma (or the top five); give it with NICK++ and NICK--"""
    name = args.strip()
    if not name:
        top = ctx.state.get(TOP, [])[:5]
        if not top:
            return "nobody has any karma yet."
        return "top karma: " + ", ".join(f"{k} {v}" for k, v in top)
    if " " in name or name.startswith(":"):
        raise CommandError("usage: karma [NICK]")
    return f"{clip(name, 40)} has {ctx.state.get(irc_lower(name), 0)} karma."
