"""Seen: when a nick was last around, and what they did.

What it hears waits in memory and is written to its state in batches, FLUSH_CHUNK
nicks to a transaction, instead of one SQLite write each (joining busy channels is
thousands of JOINs): every FLUSH_EVERY seconds for up to FLUSH_BUDGET seconds (the
rest waits for the next time: in a flood, writes would wait for the GIL while holding
the state database, and every module's state with it), a chunk with each record past
FLUSH_AT waiting, and all of it when this version is torn down (a reload, the bot
stopping). ``!seen`` looks at what waits first, so it answers as if every record
were written at once; a crash loses what waited.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from bot.api import Bot, CommandError, Context, Event, State, command, on_event, on_message

from ._common import ago, clip, irc_lower, is_nick, now

MAX_TEXT = 200
MAX_SPLIT = 2000  # nicks of one netsplit recorded at most
FLUSH_EVERY = 5.0  # seconds between writes of what waits
FLUSH_BUDGET = 0.02  # seconds one of them may write for (at least one chunk)
FLUSH_CHUNK = 100  # nicks per transaction
FLUSH_AT = 5000  # past this many waiting, each record writes a chunk too

_lock = threading.Lock()
_waiting: dict[str, dict[str, Any]] = {}  # folded nick -> its latest record, not written yet
_writing = threading.Lock()  # one flush at a time


def record(ctx: Context, nick: str, **what: str | None) -> None:
    entry = {"nick": nick, "at": now(), **what}
    with _lock:
        _waiting[irc_lower(nick)] = entry
        full = len(_waiting) >= FLUSH_AT
    if full:
        flush(ctx.state, budget=0, wait=False)


def flush(state: State, *, budget: float | None = None, wait: bool = True) -> None:
    """Write what waits: all of it, or the chunks that fit in ``budget`` seconds (at
    least one). Records stay in ``_waiting``, where ``!seen`` finds them, until they are
    written; ``wait=False``: leave it to a flush already under way."""
    if not _writing.acquire(blocking=wait):
        return
    try:
        began = time.monotonic()
        with _lock:
            batch = list(_waiting.items())
        for start in range(0, len(batch), FLUSH_CHUNK):
            if start and budget is not None and time.monotonic() - began >= budget:
                return
            chunk = batch[start : start + FLUSH_CHUNK]
            with state.transaction() as written:
                for key, entry in chunk:
                    written[key] = entry
            with _lock:
                for key, entry in chunk:
                    if _waiting.get(key) is entry:  # (not recorded again meanwhile)
                        del _waiting[key]
    finally:
        _writing.release()


def last_seen(state: State, key: str) -> dict[str, Any] | None:
    with _lock:
        entry = _waiting.get(key)
    return entry if entry is not None else state.get(key)


def setup(bot: Bot) -> None:
    bot.every(FLUSH_EVERY, lambda: flush(bot.state, budget=FLUSH_BUDGET))


def teardown(bot: Bot) -> None:
    flush(bot.state)


@on_message(r"")
def heard(ctx: Context, match: re.Match[str]) -> None:
    if ctx.channel is None:
        return  # private messages stay private
    record(ctx, ctx.nick, kind="say", channel=ctx.channel, text=clip(match.string, MAX_TEXT))


@on_event("join", "part", "quit", "nick", "kick", "action", "away", "netsplit")
def event(ctx: Context, event: Event) -> None:
    text = clip(event.text, MAX_TEXT)
    if event.kind == "action" and event.channel is None:
        return  # private actions stay private too
    if event.kind == "netsplit":  # one event for everyone the split took
        for nick in event.nicks[:MAX_SPLIT]:
            record(ctx, nick, kind="quit", channel=None, text=f"netsplit: {text}")
        return
    if event.kind == "nick":
        record(ctx, event.nick, kind="nick", channel=None, text=event.text)
        record(ctx, event.text, kind="renamed", channel=None, text=event.nick)
    else:
        record(ctx, event.nick, kind=event.kind, channel=event.channel, text=text)


def describe(entry: dict[str, str]) -> str:
    kind, channel, text = entry.get("kind"), entry.get("channel"), entry.get("text") or ""
    where = f" in {channel}" if channel else ""
    reason = f" ({text})" if text else ""
    if kind == "say":
        return f"{where}, saying: {text}"
    if kind == "away":
        return f", going away{reason}" if text else ", coming back"
    if kind == "action":
        return f"{where}, doing: * {entry.get('nick')} {text}"
    if kind == "join":
        return f", joining {channel}"
    if kind == "part":
        return f", leaving {channel}{reason}"
    if kind == "quit":
        return f", quitting{reason}"
    if kind == "kick":
        return f", being kicked from {channel}{reason}"
    if kind == "nick":
        return f", changing nick to {text}"
    if kind == "renamed":
        return f", changing nick from {text}"
    return where


@command
def seen(ctx: Context, args: str) -> str:
    """seen NICK -- when NICK was last seen, and what they were doing"""
    nick = args.strip()
    if not nick or " " in nick:
        raise CommandError("usage: seen NICK")
    if not is_nick(nick):
        raise CommandError(f"seen: {clip(nick, 40)!r} is not a nick")
    if irc_lower(nick) == irc_lower(ctx.nick):
        return f"{ctx.nick}: that's you!"
    if irc_lower(nick) == irc_lower(ctx.bot_nick):
        return "I'm right here."
    entry = last_seen(ctx.state, irc_lower(nick))
    if not entry:
        return f"I haven't seen {nick}."
    return f"{entry['nick']} was last seen {ago(entry['at'])}{describe(entry)}"
