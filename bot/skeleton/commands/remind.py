"""Remind: ``remind 10m take the pizza out``; reminders survive reloads and restarts.

Every reminder lives in state with its absolute due time. ``setup`` schedules a timer
for each pending one (the previous version's timers are cancelled by the bot on
reload), and ``fire`` removes the reminder from state atomically before saying it,
so a reminder is said at most once however many versions had a timer for it. A
slow sweep catches any reminder whose timer was lost (one added by an old version
while a reload was swapping it out).
"""

from __future__ import annotations

import re
from typing import Any

from bot.api import Bot, CommandError, Context, command

from ._common import clip, format_duration, irc_lower, now, parse_duration, snapshot

MAX_DELAY = 365 * 86400
MAX_PENDING = 20  # per user (ctx.user_id: a nick change does not reset it)
MAX_TOTAL = 2000  # for everyone: what the sweep and listings read stays bounded
MAX_TEXT = 300
SWEEP_SECONDS = 60.0
PREFIX = "r:"
USAGE = "usage: remind IN MESSAGE, e.g. remind 1h30m stretch your legs (units s m h d w)"

_ARGS = re.compile(r"(?:me\s+)?(?:in\s+)?(\S+)\s+(.+)", re.IGNORECASE | re.DOTALL)

# The live version's handle, to schedule the timers of reminders added by a command.
# Set again by each new version's setup(); never needed across a reload.
_bot: Bot | None = None


def setup(bot: Bot) -> None:
    global _bot
    _bot = bot
    for key, reminder in snapshot(bot.state).items():
        if key.startswith(PREFIX):
            _schedule(bot, key, reminder["due"])
    bot.every(SWEEP_SECONDS, lambda: sweep(bot))


def _schedule(bot: Bot, key: str, due: float) -> None:
    bot.after(max(0.0, due - now()), lambda: fire(bot, key))


def fire(bot: Bot, key: str) -> None:
    """Say reminder ``key`` if it is still pending; the pop makes it happen once."""
    reminder = bot.state.pop(key, None)
    if reminder is not None:
        late = now() - reminder["due"]
        note = f" (sorry, {format_duration(late)} late)" if late >= 60 else ""
        bot.say(reminder["target"], f"{reminder['nick']}: reminder: {reminder['text']}{note}")


def sweep(bot: Bot) -> None:
    """Fire every overdue reminder (normally none: their timers got them)."""
    current = now()
    for key, reminder in snapshot(bot.state).items():
        if key.startswith(PREFIX) and reminder["due"] <= current:
            fire(bot, key)


def pending_of(state: Any, nick: str, user: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Reminders set by ``user`` (``ctx.user_id``), or by ``nick`` for older ones."""
    mine = [
        (key, r)
        for key, r in snapshot(state).items()
        if key.startswith(PREFIX) and _by(r, nick, user)
    ]
    return sorted(mine, key=lambda item: item[1]["due"])


def _by(reminder: dict[str, Any], nick: str, user: str) -> bool:
    if user and reminder.get("user"):
        return bool(reminder["user"] == user)
    return irc_lower(reminder["nick"]) == irc_lower(nick)


@command
def remind(ctx: Context, args: str) -> str:
    """remind IN MESSAGE -- remind you of MESSAGE after IN (like 10s, 5m, 2h, 1d30m)

    "remind cancel N" drops reminder N; "reminders" lists yours.
    """
    words = args.split()
    if len(words) == 2 and words[0].lower() == "cancel":
        return cancel(ctx, words[1])
    match = _ARGS.fullmatch(args.strip())
    if match is None:
        raise CommandError(USAGE)
    try:
        delay = parse_duration(match[1])
    except ValueError:
        raise CommandError(f"remind: {clip(match[1], 20)!r} is not a time; {USAGE}") from None
    if not 1 <= delay <= MAX_DELAY:
        raise CommandError("remind: pick a time between 1s and 365d")
    due = now() + delay
    with ctx.state.transaction() as state:
        if len(pending_of(state, ctx.nick, ctx.user_id)) >= MAX_PENDING:
            raise CommandError(f"remind: you already have {MAX_PENDING} reminders pending")
        if sum(1 for key in state if key.startswith(PREFIX)) >= MAX_TOTAL:
            raise CommandError("remind: too many reminders pending; try again later")
        number = state.get("next_id", 1)
        state["next_id"] = number + 1
        key = f"{PREFIX}{number}"
        state[key] = {
            "id": number,
            "due": due,
            "nick": ctx.nick,
            "user": ctx.user_id,
            "target": ctx.channel or ctx.nick,
            "text": clip(match[2].strip(), MAX_TEXT),
        }
    if _bot is not None:
        _schedule(_bot, key, due)
    return f"ok, I'll remind you in {format_duration(delay)} (#{number})."


def cancel(ctx: Context, number: str) -> str:
    key = f"{PREFIX}{number.lstrip('#')}"
    with ctx.state.transaction() as state:
        reminder = state.get(key)
        if reminder is None or not (ctx.is_admin or _by(reminder, ctx.nick, ctx.user_id)):
            raise CommandError(f"remind: you have no reminder {number}")
        del state[key]
    return f"ok, forgot reminder #{reminder['id']}."


@command
def reminders(ctx: Context, args: str) -> list[str] | str:
    """reminders -- list your pending reminders"""
    mine = pending_of(ctx.state, ctx.nick, ctx.user_id)
    if not mine:
        return "you have no reminders pending."
    current = now()
    lines = [
        f"#{r['id']} in {format_duration(r['due'] - current)}: {clip(r['text'], 80)}"
        for _, r in mine[:5]
    ]
    if len(mine) > 5:
        lines.append(f"... and {len(mine) - 5} more")
    return lines
