"""Dice: roll NdM[+K]."""

from __future__ import annotations

import random
import re

from bot.api import CommandError, Context, command

MAX_DICE = 100
MAX_SIDES = 1000
MAX_MODIFIER = 1_000_000
SHOW_ROLLS = 20  # list the single rolls up to this many dice, else only the total

_SPEC = re.compile(r"(\d{0,4})d(\d{1,5})(?:([+-])(\d{1,8}))?", re.IGNORECASE)
USAGE = "usage: roll NdM[+K], e.g. roll 2d6+1 (N <= 100 dice, M <= 1000 sides)"

_rng = random.SystemRandom()


def parse(text: str) -> tuple[int, int, int]:
    """``"2d6+1"`` -> ``(2, 6, 1)``; raises CommandError for anything else or out of bounds."""
    match = _SPEC.fullmatch(text.replace(" ", ""))
    if match is None:
        raise CommandError(USAGE)
    count = int(match[1]) if match[1] else 1
    sides = int(match[2])
    modifier = int(match[4] or 0) * (-1 if match[3] == "-" else 1)
    if not 1 <= count <= MAX_DICE:
        raise CommandError(f"roll: between 1 and {MAX_DICE} dice, please")
    if not 1 <= sides <= MAX_SIDES:
        raise CommandError(f"roll: dice have between 1 and {MAX_SIDES} sides")
    if abs(modifier) > MAX_MODIFIER:
        raise CommandError(f"roll: the modifier is at most {MAX_MODIFIER}")
    return count, sides, modifier


def throw(count: int, sides: int, rng: random.Random = _rng) -> list[int]:
    return [rng.randint(1, sides) for _ in range(count)]


def describe(spec: str, rolls: list[int], modifier: int) -> str:
    total = sum(rolls) + modifier
    if len(rolls) == 1 and not modifier:
        return f"{spec}: {total}"
    detail = f"{len(rolls)} dice" if len(rolls) > SHOW_ROLLS else " + ".join(map(str, rolls))
    if modifier:
        detail += f" {'+' if modifier > 0 else '-'} {abs(modifier)}"
    return f"{spec}: {detail} = {total}"


@command(aliases=["dice"])
def roll(ctx: Context, args: str) -> str:
    """roll NdM[+K] -- roll N dice with M sides and add K, e.g. roll 2d6+1 (N <= 100, M <= 1000)"""
    if not args.strip():
        raise CommandError(USAGE)
    count, sides, modifier = parse(args)
    spec = f"{count}d{sides}" + (f"{modifier:+d}" if modifier else "")
    return describe(spec, throw(count, sides), modifier)
