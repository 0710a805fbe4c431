"""Calc: safe arithmetic. Parsed with ``ast`` and walked by hand: no eval, no names, no calls."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from bot.api import CommandError, Context, command

MAX_INPUT = 200  # characters
MAX_DEPTH = 50  # nesting of operations
MAX_BITS = 2048  # integer results stay below 2**2048 (about 617 digits)
MAX_EXPONENT = 10_000
SHOW_DIGITS = 60  # longer integers are shown in scientific notation

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


class CalcError(CommandError):
    pass


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(exponent, int) and abs(exponent) > MAX_EXPONENT:
        raise CalcError("calc: exponent too large")
    # |base| >= 2**(bits - 1), so the result has at least (bits - 1) * exponent bits.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and max(abs(base).bit_length() - 1, 0) * exponent > MAX_BITS
    ):
        raise CalcError("calc: result too large")
    result = base**exponent
    if isinstance(result, complex):
        raise CalcError("calc: no complex numbers (a negative number to a fractional power)")
    return result


def _check(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_BITS:
        raise CalcError("calc: result too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalcError("calc: result too large")
    return value


def _eval(node: ast.AST, depth: int = 0) -> Number:
    if depth > MAX_DEPTH:
        raise CalcError("calc: expression nested too deeply")
    if isinstance(node, ast.Expression):
        return _eval(node.body, depth + 1)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise CalcError(f"calc: only numbers are allowed, not {node.value!r}")
        return _check(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check(_UNARY[type(node.op)](_eval(node.operand, depth + 1)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, depth + 1), _eval(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            return _check(_power(left, right))
        return _check(_BINARY[type(node.op)](left, right))
    raise CalcError(_refusal(node))


def _refusal(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"calc: names are not allowed ({node.id})"
    if isinstance(node, ast.Call):
        return "calc: function calls are not allowed"
    if isinstance(node, ast.Attribute):
        return "calc: attributes are not allowed"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
        return "calc: ^ is not a power here; use ** (2**10)"
    return f"calc: {type(node).__name__} is not allowed; use numbers, + - * / // % ** and ()"


def evaluate(expression: str) -> Number:
    """The value of an arithmetic ``expression``; CommandError for anything else."""
    if len(expression) > MAX_INPUT:
        raise CalcError(f"calc: at most {MAX_INPUT} characters, please")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise CalcError("calc: that is not an arithmetic expression") from None
    try:
        return _eval(tree)
    except ZeroDivisionError:
        raise CalcError("calc: division by zero") from None
    except OverflowError:
        raise CalcError("calc: result too large") from None


def format_number(value: Number) -> str:
    if isinstance(value, float):
        return format(value, ".15g")
    text = str(abs(value))
    if len(text) > SHOW_DIGITS:
        sign = "-" if value < 0 else ""
        return f"{sign}{text[0]}.{text[1:13]}e+{len(text) - 1} ({len(text)} digits)"
    return str(value)


@command(aliases=["c", "math"])
def calc(ctx: Context, args: str) -> str:
    """calc EXPRESSION -- arithmetic with + - * / // % ** and parentheses, e.g. calc (2+3)**2"""
    if not args.strip():
        raise CalcError("usage: calc EXPRESSION, e.g. calc (2+3)**2")
    return f"{args.strip()} = {format_number(evaluate(args))}"
