"""commands/calc.py: safe arithmetic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

if TYPE_CHECKING:
    from bot.testing import LoadCommand

COMMANDS = Path(__file__).resolve().parents[1] / "commands"
CALC = COMMANDS / "calc.py"


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("-3 ** 2", "-9"),
        ("(-3) ** 2", "9"),
        ("7 // 2", "3"),
        ("-7 // 2", "-4"),
        ("7 % 3", "1"),
        ("7 / 2", "3.5"),
        ("2 ** 10", "1024"),
        ("2 ** -1", "0.5"),
        ("--5", "5"),
        ("+5", "5"),
        ("1_000 * 1.5", "1500"),
        ("2 ** 2047 // 2 ** 2046", "2"),
        ("(" * 60 + "1" + ")" * 60, "1"),
    ],
)
def test_arithmetic(load_command: LoadCommand, expression: str, value: str) -> None:
    bot = load_command(CALC)
    assert bot.say(f"!calc {expression}") == [f"{expression} = {value}"]


def _not_allowed(node: str) -> str:
    return f"calc: {node} is not allowed; use numbers, + - * / // % ** and ()"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "calc: function calls are not allowed"),
        ("__import__('os').system('true')", "calc: function calls are not allowed"),
        ("abs(-1)", "calc: function calls are not allowed"),
        ("x + 1", "calc: names are not allowed (x)"),
        ("pi", "calc: names are not allowed (pi)"),
        ("(1).real", "calc: attributes are not allowed"),
        ("2**10**10", "calc: exponent too large"),
        ("10**5000", "calc: result too large"),
        ("2**2049", "calc: result too large"),
        ("(2**2000) * (2**2000)", "calc: result too large"),
        ("9.0 ** 400", "calc: result too large"),
        ("1e308 * 10", "calc: result too large"),
        ("1 / 0", "calc: division by zero"),
        ("1 % 0", "calc: division by zero"),
        ("(-8) ** 0.5", "calc: no complex numbers (a negative number to a fractional power)"),
        ("'a' * 3", "calc: only numbers are allowed, not 'a'"),
        ("True + 1", "calc: only numbers are allowed, not True"),
        ("1j", "calc: only numbers are allowed, not 1j"),
        ("[1, 2]", _not_allowed("List")),
        ("1 if 1 else 2", _not_allowed("IfExp")),
        ("lambda: 1", _not_allowed("Lambda")),
        ("1 < 2", _not_allowed("Compare")),
        ("2 ^ 3", "calc: ^ is not a power here; use ** (2**10)"),
        ("1 +", "calc: that is not an arithmetic expression"),
        ("import os", "calc: that is not an arithmetic expression"),
        ("1" * 201, "calc: at most 200 characters, please"),
        ("-" * 100 + "1", "calc: expression nested too deeply"),
    ],
)
def test_refusals(load_command: LoadCommand, expression: str, message: str) -> None:
    bot = load_command(CALC)
    assert bot.say(f"!calc {expression}") == [message]


def test_command_reply_and_usage(load_command: LoadCommand) -> None:
    bot = load_command(CALC)
    assert bot.say("!calc  (2+3)**2 ") == ["(2+3)**2 = 25"]
    assert bot.say("!math 0.1 + 0.2") == ["0.1 + 0.2 = 0.3"]
    assert bot.say("!calc   ") == ["usage: calc EXPRESSION, e.g. calc (2+3)**2"]


def test_long_integers_are_shortened(load_command: LoadCommand) -> None:
    bot = load_command(CALC)
    assert bot.module.format_number(10**100) == "1.000000000000e+100 (101 digits)"
    assert bot.module.format_number(-(10**100)) == "-1.000000000000e+100 (101 digits)"
    assert bot.module.format_number(12345) == "12345"
    assert bot.say("!calc 10**100") == ["10**100 = 1.000000000000e+100 (101 digits)"]
    assert bot.say("!calc -(10**100)") == ["-(10**100) = -1.000000000000e+100 (101 digits)"]
    assert bot.say("!calc 12345") == ["12345 = 12345"]


_numbers = st.integers(-(10**6), 10**6).map(str) | st.floats(-1e6, 1e6, allow_nan=False).map(repr)
_ops = st.sampled_from(["+", "-", "*", "/", "//", "%", "**"])


def test_only_command_errors_escape(load_command: LoadCommand) -> None:
    bot = load_command(CALC)  # one bot for all the examples (calc keeps no state)

    @settings(deadline=None)
    @given(st.lists(st.tuples(_numbers, _ops), min_size=1, max_size=8), _numbers)
    def only_command_errors(pairs: list[tuple[str, str]], last: str) -> None:
        expression = (" ".join(f"({n}) {op}" for n, op in pairs) + f" ({last})")[:200].strip()
        [reply] = bot.say(f"!calc {expression}")
        # a CalcError is the user's answer; anything else would be "calc failed: ..."
        if reply.startswith("calc: "):
            return
        value = bot.module.evaluate(expression)
        assert isinstance(value, int | float)
        assert reply == f"{expression} = {bot.module.format_number(value)}"

    only_command_errors()


def test_calc_through_the_bot(load_command: LoadCommand) -> None:
    bot = load_command(CALC)
    assert bot.say("!calc 2 * (3 + 4)") == ["2 * (3 + 4) = 14"]
    assert bot.say("!calc __import__('os').system('id')") == [
        "calc: function calls are not allowed"
    ]
    assert bot.say("!calc 2**10**10") == ["calc: exponent too large"]
    assert bot.say("!calc open") == ["calc: names are not allowed (open)"]
    assert bot.say("!c 1/0") == ["calc: division by zero"]
