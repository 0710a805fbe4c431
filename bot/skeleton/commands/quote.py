"""Quotes: add, recall at random, by number, or by a word."""

from __future__ import annotations

import random
from typing import Any

from bot.api import CommandError, Context, command

from ._common import Quota, clip, now

PREFIX = "q:"
MAX_TEXT = 400
MAX_RESULTS = 3
ADDS_PER_HOUR = 10  # per user (ctx.user_id)
MAX_SCANNED = 5000  # quotes a search reads at most
_adds = Quota(ADDS_PER_HOUR, 3600)
USAGE = "usage: quote [N | add TEXT | search WORD | del N]"

_rng = random.SystemRandom()


def show(q: dict[str, Any]) -> str:
    return f"#{q['id']}: {q['text']}"


def numbers(state: Any) -> list[int]:
    return sorted(int(k[len(PREFIX) :]) for k in state if k.startswith(PREFIX))


def add(ctx: Context, text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise CommandError("usage: quote add TEXT")
    if len(text) > MAX_TEXT:
        raise CommandError(f"quote: at most {MAX_TEXT} characters, please")
    if not ctx.is_admin and not _adds.take(ctx.user_id or ctx.nick):
        raise CommandError(f"quote: at most {_adds.limit} new quotes an hour, please")
    with ctx.state.transaction() as state:
        number = state.get("next_id", 1)
        state["next_id"] = number + 1
        state[f"{PREFIX}{number}"] = {"id": number, "text": text, "by": ctx.nick, "at": now()}
    return f"added quote #{number}."


def get(ctx: Context, number: str) -> str:
    q = ctx.state.get(f"{PREFIX}{int(number.lstrip('#'))}")
    if q is None:
        raise CommandError(f"quote: there is no quote #{number.lstrip('#')}")
    return show(q)


def search(ctx: Context, word: str) -> list[str]:
    word = word.strip().casefold()
    if not word:
        raise CommandError("usage: quote search WORD")
    hits = [
        q
        for n in numbers(ctx.state)[-MAX_SCANNED:]  # the newest: a search reads a bounded part
        if (q := ctx.state.get(f"{PREFIX}{n}")) and word in q["text"].casefold()
    ]
    if not hits:
        return [f"no quote mentions {clip(word, 40)!r}."]
    lines = [show(q) for q in hits[:MAX_RESULTS]]
    if len(hits) > MAX_RESULTS:
        more = ", ".join(f"#{q['id']}" for q in hits[MAX_RESULTS:][:20])
        lines.append(f"{len(hits) - MAX_RESULTS} more: {more}")
    return lines


def delete(ctx: Context, number: str) -> str:
    key = f"{PREFIX}{int(number.lstrip('#'))}"
    with ctx.state.transaction() as state:
        q = state.get(key)
        if q is None:
            raise CommandError(f"quote: there is no quote #{number.lstrip('#')}")
        if not (ctx.is_admin or ctx.is_op or q["by"] == ctx.nick):
            raise CommandError(
                "quote: only channel ops, admins and whoever added it can delete a quote"
            )
        del state[key]
    return f"deleted quote #{q['id']}."


def _is_number(text: str) -> bool:
    return text.lstrip("#").isdigit() and len(text) < 12


@command
def quote(ctx: Context, args: str) -> str | list[str]:
    """quote [N | add TEXT | search WORD] -- a random quote, quote N, or add and search them

    "quote del N" deletes one (channel ops, admins, or whoever added it).
    """
    verb, _, rest = args.strip().partition(" ")
    verb = verb.lower()
    if not verb:
        present = numbers(ctx.state)
        if not present:
            return "no quotes yet; add one with: quote add TEXT"
        return get(ctx, str(_rng.choice(present)))
    if verb == "add":
        return add(ctx, rest)
    if verb == "search":
        return search(ctx, rest)
    if verb in ("del", "delete") and _is_number(rest.strip()):
        return delete(ctx, rest.strip())
    if _is_number(verb) and not rest:
        return get(ctx, verb)
    raise CommandError(USAGE)
