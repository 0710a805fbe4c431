"""commands/dice.py: roll NdM[+K]."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.testing import LoadCommand

COMMANDS = Path(__file__).resolve().parents[1] / "commands"
DICE = COMMANDS / "dice.py"


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
def test_parse(load_command: LoadCommand, text: str, expected: tuple[int, int, int]) -> None:
    bot = load_command(DICE)
    assert bot.module.parse(text) == expected


USAGE = "<the module's USAGE>"  # stands for bot.module.USAGE in the table below


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", USAGE),
        ("2d", USAGE),
        ("2d6+x", USAGE),
        ("2d6*3", USAGE),
        ("0d6", "roll: between 1 and 100 dice, please"),
        ("101d6", "roll: between 1 and 100 dice, please"),
        ("1d0", "roll: dice have between 1 and 1000 sides"),
        ("1d1001", "roll: dice have between 1 and 1000 sides"),
        ("99999d6", USAGE),
        ("1d6+2000000", "roll: the modifier is at most 1000000"),
    ],
)
def test_bad_input_is_a_command_error(load_command: LoadCommand, text: str, message: str) -> None:
    bot = load_command(DICE)
    expected = bot.module.USAGE if message == USAGE else message
    assert bot.say(f"!roll {text}") == [expected]


def test_empty_args_show_usage(load_command: LoadCommand) -> None:
    bot = load_command(DICE)
    [reply] = bot.say("!roll")
    assert reply == bot.module.USAGE
    assert reply.startswith("usage: roll NdM")


def test_rolls_are_in_range(load_command: LoadCommand) -> None:
    bot = load_command(DICE)
    rolls = bot.module.throw(100, 6, random.Random(1))
    assert len(rolls) == 100
    assert set(rolls) == {1, 2, 3, 4, 5, 6}


def test_reply_shows_rolls_and_total(load_command: LoadCommand) -> None:
    bot = load_command(DICE)
    [reply] = bot.say("!roll 2d6+1")
    match = re.fullmatch(r"2d6\+1: (\d) \+ (\d) \+ 1 = (\d+)", reply)
    assert match, reply
    a, b, total = map(int, match.groups())
    assert 1 <= a <= 6 and 1 <= b <= 6 and total == a + b + 1


def test_alias_and_single_die(load_command: LoadCommand) -> None:
    bot = load_command(DICE)
    assert bot.say("!dice d1") == ["1d1: 1"]


def test_many_dice_show_only_the_total(load_command: LoadCommand) -> None:
    bot = load_command(DICE)
    assert bot.module.describe("30d1", [1] * 30, -2) == "30d1: 30 dice - 2 = 28"
    assert bot.say("!roll 100d1") == ["100d1: 100 dice = 100"]


def test_roll_through_the_bot(load_command: LoadCommand) -> None:
    bot = load_command(DICE)
    [reply] = bot.say("!roll 3d6")
    assert re.fullmatch(r"3d6: [1-6] \+ [1-6] \+ [1-6] = \d+", reply), reply
    assert bot.say("!dice 2d1-5") == ["2d1-5: 1 + 1 - 5 = -3"]
    assert bot.say("!roll 1000d6") == ["roll: between 1 and 100 dice, please"]
    assert bot.say("!roll") == [bot.module.USAGE]
    assert bot.say("!help roll")[0].startswith("roll NdM[+K] -- roll N dice")
