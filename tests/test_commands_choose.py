"""commands/choose.py: pick one of several options."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.testing import LoadCommand

COMMANDS = Path(__file__).resolve().parents[1] / "commands"
CHOOSE = COMMANDS / "choose.py"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pizza | pasta, with cheese | salad", ["pizza", "pasta, with cheese", "salad"]),
        ("tea, coffee,  water ", ["tea", "coffee", "water"]),
        ("red green  blue", ["red", "green", "blue"]),
        ("a || b |", ["a", "b"]),
        ("", []),
    ],
)
def test_options(load_command: LoadCommand, text: str, expected: list[str]) -> None:
    bot = load_command(CHOOSE)
    assert bot.module.options(text) == expected


def test_picks_one_of_them(load_command: LoadCommand) -> None:
    bot = load_command(CHOOSE)
    picks = set()
    for _ in range(200):
        reply = bot.say("!choose a | b | c")
        assert len(reply) == 1
        picks.add(reply[0])
    assert picks == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!choose", "usage: choose a | b | c (or a, b, c, or a b c)"),
        ("!choose x", "choose: give me at least two options"),
    ],
)
def test_too_few_options(load_command: LoadCommand, text: str, message: str) -> None:
    bot = load_command(CHOOSE)
    assert bot.say(text) == [message]


def test_choose_through_the_bot(load_command: LoadCommand) -> None:
    bot = load_command(CHOOSE)
    assert bot.say("!choose tea | coffee")[0] in ("tea", "coffee")
    assert bot.say("!pick tea, tea") == ["tea"]
    assert bot.say("!choose tea") == ["choose: give me at least two options"]
