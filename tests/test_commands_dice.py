"""commands/dice.py: roll NdM[+K]."""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

import pytest
from command_fakes import COMMANDS, FakeContext, load, run

from bot.api import CommandError

if TYPE_CHECKING:
    from bot.testing import LoadCommand

dice = load("dice")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2d6", (2, 6, 0)),
        ("d20", (1, 20, 0)),
        ("3D8+2", (3, 8, 2)),
        ("1d6-1", (1, 6, -1)),
        (" 2 d 6 + 3 ", (2, 6, 3)),
        ("100d1000", (100, 1000, 0)),
    ],
)
def test_parse(text: str, expected: tuple[int, int, int]) -> None:
    assert dice.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "usage: roll NdM"),
        ("2d", "usage: roll NdM"),
        ("2d6+x", "usage: roll NdM"),
        ("2d6*3", "usage: roll NdM"),
        ("0d6", "between 1 and 100 dice"),
        ("101d6", "between 1 and 100 dice"),
        ("1d0", "between 1 and 1000 sides"),
        ("1d1001", "between 1 and 1000 sides"),
        ("99999d6", "usage"),
        ("1d6+2000000", "modifier is at most"),
    ],
)
def test_bad_input_is_a_command_error(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        run(dice, "roll", text, FakeContext())


def test_empty_args_show_usage() -> None:
    with pytest.raises(CommandError, match="usage: roll NdM"):
        run(dice, "roll", "", FakeContext())


def test_rolls_are_in_range() -> None:
    rolls = dice.throw(100, 6, random.Random(1))
    assert len(rolls) == 100
    assert set(rolls) == {1, 2, 3, 4, 5, 6}


def test_reply_shows_rolls_and_total() -> None:
    [reply] = run(dice, "roll", "2d6+1", FakeContext())
    match = re.fullmatch(r"2d6\+1: (\d) \+ (\d) \+ 1 = (\d+)", reply)
    assert match, reply
    a, b, total = map(int, match.groups())
    assert 1 <= a <= 6 and 1 <= b <= 6 and total == a + b + 1


def test_alias_and_single_die() -> None:
    [reply] = run(dice, "dice", "d1", FakeContext())
    assert reply == "1d1: 1"


def test_many_dice_show_only_the_total() -> None:
    assert dice.describe("30d1", [1] * 30, -2) == "30d1: 30 dice - 2 = 28"
    [reply] = run(dice, "roll", "100d1", FakeContext())
    assert reply == "100d1: 100 dice = 100"


# -- through the bot (bot.testing) -----------------------------------------------------


def test_roll_through_the_bot(load_command: LoadCommand) -> None:
    bot = load_command(COMMANDS / "dice.py")
    [reply] = bot.say("!roll 3d6")
    assert re.fullmatch(r"3d6: [1-6] \+ [1-6] \+ [1-6] = \d+", reply), reply
    assert bot.say("!dice 2d1-5") == ["2d1-5: 1 + 1 - 5 = -3"]
    assert bot.say("!roll 1000d6") == ["roll: between 1 and 100 dice, please"]
    assert bot.say("!roll") == [dice.USAGE]
    assert bot.say("!help roll")[0].startswith("roll NdM[+K] -- roll N dice")
