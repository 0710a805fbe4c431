"""commands/calc.py: safe arithmetic."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from command_fakes import COMMANDS, FakeContext, load, run
from hypothesis import given
from hypothesis import strategies as st

from bot.api import CommandError

if TYPE_CHECKING:
    from bot.testing import LoadCommand

calc = load("calc")


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("-3 ** 2", -9),
        ("(-3) ** 2", 9),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("7 / 2", 3.5),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("--5", 5),
        ("+5", 5),
        ("1_000 * 1.5", 1500.0),
        ("2 ** 2047 // 2 ** 2046", 2),
        ("(" * 60 + "1" + ")" * 60, 1),
    ],
)
def test_arithmetic(expression: str, value: float) -> None:
    assert calc.evaluate(expression) == value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "function calls are not allowed"),
        ("__import__('os').system('true')", "not allowed"),
        ("abs(-1)", "function calls are not allowed"),
        ("x + 1", r"names are not allowed \(x\)"),
        ("pi", "names are not allowed"),
        ("(1).real", "attributes are not allowed"),
        ("2**10**10", "exponent too large"),
        ("10**5000", "result too large"),
        ("2**2049", "result too large"),
        ("(2**2000) * (2**2000)", "result too large"),
        ("9.0 ** 400", "result too large"),
        ("1e308 * 10", "result too large"),
        ("1 / 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("(-8) ** 0.5", "no complex numbers"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("1j", "only numbers"),
        ("[1, 2]", "List is not allowed"),
        ("1 if 1 else 2", "IfExp is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("1 < 2", "Compare is not allowed"),
        ("2 ^ 3", r"use \*\*"),
        ("1 +", "not an arithmetic expression"),
        ("import os", "not an arithmetic expression"),
        ("1" * 201, "at most 200 characters"),
        ("-" * 100 + "1", "nested too deeply"),
    ],
)
def test_refusals(expression: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        calc.evaluate(expression)


def test_command_reply_and_usage() -> None:
    assert run(calc, "calc", " (2+3)**2 ", FakeContext()) == ["(2+3)**2 = 25"]
    assert run(calc, "math", "0.1 + 0.2", FakeContext()) == ["0.1 + 0.2 = 0.3"]
    with pytest.raises(CommandError, match="usage: calc"):
        run(calc, "calc", "  ", FakeContext())


def test_long_integers_are_shortened() -> None:
    assert calc.format_number(10**100) == "1.000000000000e+100 (101 digits)"
    assert calc.format_number(-(10**100)) == "-1.000000000000e+100 (101 digits)"
    assert calc.format_number(12345) == "12345"


_numbers = st.integers(-(10**6), 10**6).map(str) | st.floats(-1e6, 1e6, allow_nan=False).map(repr)
_ops = st.sampled_from(["+", "-", "*", "/", "//", "%", "**"])


@given(st.lists(st.tuples(_numbers, _ops), min_size=1, max_size=8), _numbers)
def test_only_command_errors_escape(pairs: list[tuple[str, str]], last: str) -> None:
    expression = " ".join(f"({n}) {op}" for n, op in pairs) + f" ({last})"
    try:
        value = calc.evaluate(expression[:200])
    except CommandError:
        return
    assert isinstance(value, int | float)


def test_calc_through_the_bot(load_command: LoadCommand) -> None:
    bot = load_command(COMMANDS / "calc.py")
    assert bot.say("!calc 2 * (3 + 4)") == ["2 * (3 + 4) = 14"]
    assert bot.say("!calc __import__('os').system('id')") == [
        "calc: function calls are not allowed"
    ]
    assert bot.say("!calc 2**10**10") == ["calc: exponent too large"]
    assert bot.say("!calc open") == ["calc: names are not allowed (open)"]
    assert bot.say("!c 1/0") == ["calc: division by zero"]
