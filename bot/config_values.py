"""The checks every config.yaml value goes through, and how a wrong one is reported.

Each check takes the value's key (``http.per_host.concurrent``), so the problem
names it and ``parse_config`` can find its line; ``Invalids`` carries several
problems of one section, so a run reports them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class Invalid(Exception):
    def __init__(self, key: str, message: str) -> None:
        self.key, self.message = key, message


class Invalids(Invalid):
    """Several wrong values of one section, each reported at its own line (callers that
    want one problem see the first)."""

    def __init__(self, problems: list[Invalid]) -> None:
        super().__init__(problems[0].key, problems[0].message)
        self.problems = problems


def collect(parsers: Mapping[str, Callable[[], Any]], found: list[Invalid]) -> dict[str, Any]:
    """Every value of a section parsed; what is wrong in all of them (and ``found``
    before) raised together."""
    values: dict[str, Any] = {}
    wrong = list(found)
    for name, parse in parsers.items():
        try:
            values[name] = parse()
        except Invalids as exc:
            wrong += exc.problems
        except Invalid as exc:
            wrong.append(exc)
    if wrong:
        raise Invalids(wrong)
    return values


def items(key: str, value: Any, parse: Callable[[str, Any], T]) -> list[T]:
    """Each item of the list at ``key`` parsed (as ``key[i]``); every wrong one reported."""
    parsed: list[T] = []
    wrong: list[Invalid] = []
    for i, item in enumerate(listed(key, value)):
        try:
            parsed.append(parse(f"{key}[{i}]", item))
        except Invalids as exc:
            wrong += exc.problems
        except Invalid as exc:
            wrong.append(exc)
    if wrong:
        raise Invalids(wrong)
    return parsed


def section(key: str, value: Any, known: set[str], found: list[Invalid]) -> dict[str, Any]:
    """A mapping's known keys; each unknown one goes into ``found``, to be reported with
    the section's wrong values by ``collect``."""
    expect(isinstance(value, dict), key, "a mapping of keys to values", value)
    found.extend(Invalid(f"{key}.{k}", unknown(str(k), known)) for k in value if k not in known)
    return {k: v for k, v in value.items() if k in known}


def expect(ok: bool, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise Invalid(key, f"expected {expected}, got {value!r}")


def text(key: str, value: Any) -> str:
    expect(isinstance(value, str) and value.strip() != "", key, "a non-empty string", value)
    return str(value)


def secret(key: str, value: Any) -> str:
    """A password: like ``text``, but a wrong one is described, never shown."""
    if not (isinstance(value, str) and value.strip()):
        shown = "an empty string" if isinstance(value, str) else type(value).__name__
        raise Invalid(key, f"expected a non-empty string, got {shown} (the value is not shown)")
    return value


def flag(key: str, value: Any) -> bool:
    expect(isinstance(value, bool), key, "true or false", value)
    return bool(value)


def whole(key: str, value: Any, lo: int, hi: int) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
    expect(ok, key, f"a whole number from {lo} to {hi}", value)
    return int(value)


def number(key: str, value: Any, lo: float, hi: float) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and lo <= value <= hi
    expect(ok, key, f"a number from {lo} to {hi}", value)
    return float(value)


def listed(key: str, value: Any) -> list[Any]:
    expect(isinstance(value, list), key, "a list, e.g. [a, b]", value)
    return list(value)


def mapping(key: str, value: Any, known: set[str]) -> dict[str, Any]:
    expect(isinstance(value, dict), key, "a mapping of keys to values", value)
    for sub in value:
        if sub not in known:
            raise Invalid(f"{key}.{sub}", unknown(str(sub), known))
    return dict(value)


def unknown(name: str, known: set[str]) -> str:
    import difflib  # only for a typo in the config

    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}; known keys: {', '.join(sorted(known))}"
