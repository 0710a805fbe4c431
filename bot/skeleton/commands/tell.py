"""Tell: leave a message for someone, delivered when they next speak.

A message left in a private message is delivered in a private message.

What chat can write is bounded: ``MAX_PENDING`` messages per recipient,
``MAX_SENT`` waiting from one sender (``ctx.user_id``, whatever their nick), and
``MAX_RECIPIENTS`` recipients with messages waiting in all.
"""

from __future__ import annotations

import re
from typing import Any

from bot.api import CommandError, Context, command, on_message

from ._common import ago, clip, irc_lower, is_nick, now

MAX_PENDING = 10  # per recipient
MAX_SENT = 10  # waiting from one sender
MAX_RECIPIENTS = 1000
MAX_TEXT = 300
SENT = ":sent:"  # + sender: how many of theirs wait (no nick has a colon)
RECIPIENTS = ":recipients"


@command
def tell(ctx: Context, args: str) -> str:
    """tell NICK MESSAGE -- give NICK the message the next time they speak"""
    nick, _, text = args.strip().partition(" ")
    text = text.strip()
    if not nick or not text:
        raise CommandError("usage: tell NICK MESSAGE")
    nick = nick.rstrip(":,")
    if not is_nick(nick):
        raise CommandError(f"tell: {clip(nick, 40)!r} is not a nick")
    if irc_lower(nick) == irc_lower(ctx.nick):
        raise CommandError("tell: tell yourself (no need to go through me)")
    if irc_lower(nick) == irc_lower(ctx.bot_nick):
        raise CommandError("tell: I'm right here")
    sender = ctx.user_id or irc_lower(ctx.nick)
    message = {"from": ctx.nick, "by": sender, "text": clip(text, MAX_TEXT), "at": now()}
    if ctx.channel is None:
        message["private"] = True  # left in private: told in private
    with ctx.state.transaction() as state:
        pending: list[dict[str, Any]] = state.get(irc_lower(nick), [])
        if len(pending) >= MAX_PENDING:
            raise CommandError(f"tell: {nick} already has {len(pending)} messages waiting")
        if state.get(SENT + sender, 0) >= MAX_SENT:
            raise CommandError(f"tell: you already have {MAX_SENT} messages waiting to be told")
        if not pending:
            if state.get(RECIPIENTS, 0) >= MAX_RECIPIENTS:
                raise CommandError("tell: too many messages waiting; try again later")
            state[RECIPIENTS] = state.get(RECIPIENTS, 0) + 1
        state[SENT + sender] = state.get(SENT + sender, 0) + 1
        state[irc_lower(nick)] = [*pending, message]
    return f"ok, I'll tell {nick} when they next speak."


@on_message(r"")
def deliver(ctx: Context, match: re.Match[str]) -> list[str]:
    key = irc_lower(ctx.nick)
    if key not in ctx.state:  # the common case, without taking the lock
        return []
    with ctx.state.transaction() as state:
        pending: list[dict[str, Any]] = state.pop(key, [])
        if pending:
            waiting = state.get(RECIPIENTS, 1) - 1
            if waiting > 0:
                state[RECIPIENTS] = waiting
            else:
                state.pop(RECIPIENTS, None)
        for m in pending:
            sent = SENT + m.get("by", "")
            left = state.get(sent, 1) - 1
            if left > 0:
                state[sent] = left
            else:
                state.pop(sent, None)
    told = []
    for m in pending:
        line = f"{ctx.nick}: {m['from']} told you {ago(m['at'])}: {m['text']}"
        if m.get("private") and ctx.channel is not None:
            ctx.reply(line, private=True)
        else:
            told.append(line)
    return told
