"""commands/choose.py: pick one of several options."""

from __future__ import annotations

import pytest
from command_fakes import FakeContext, load, run

from bot.api import CommandError

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
