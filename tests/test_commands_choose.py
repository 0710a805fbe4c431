"""commands/choose.py: pick one of several options."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from command_fakes import COMMANDS, FakeContext, load, run

from bot.api import CommandError

if TYPE_CHECKING:
    from bot.testing import LoadCommand

choose = load("choose")


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
def test_options(text: str, expected: list[str]) -> None:
    assert choose.options(text) == expected


def test_picks_one_of_them() -> None:
    picks = {run(choose, "choose", "a | b | c", FakeContext())[0] for _ in range(200)}
    assert picks == {"a", "b", "c"}


@pytest.mark.parametrize(("text", "message"), [("", "usage: choose"), ("x", "at least two")])
def test_too_few_options(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(choose, "choose", text, FakeContext())


def test_choose_through_the_bot(load_command: LoadCommand) -> None:
    bot = load_command(COMMANDS / "choose.py")
    assert bot.say("!choose tea | coffee")[0] in ("tea", "coffee")
    assert bot.say("!pick tea, tea") == ["tea"]
    assert bot.say("!choose tea") == ["choose: give me at least two options"]
