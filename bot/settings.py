"""Module settings: a module's ``Settings`` dataclass, filled from config.yaml's ``modules:``.

Owns one rule set: a module declares its settings once, in its own file, as a
dataclass named ``Settings`` (field types and defaults); the operator writes
``modules: {NAME: {field: value}}`` (and, for one channel, overrides in its
``channels:`` entry); ``build`` checks every value against its field and says
what is wrong with each, naming the config key. Values of the
form ``${NAME}`` come from the environment, ``${file:PATH}`` from a file (its
text, stripped); a field typed ``bot.api.Secret`` holds its value so that it is
never printed, and no problem message ever shows a secret's value.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from bot.api import Secret

__all__ = [
    "Problem",
    "Scope",
    "Scoped",
    "build",
    "build_scoped",
    "declared_at",
    "resolve_references",
    "scopes",
    "settings_class",
]

_REFERENCE = re.compile(r"\$\{([^}]*)\}")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One wrong value: the config key (``modules.weather.units``) and what is wrong."""

    key: str
    message: str


@dataclasses.dataclass(frozen=True)
class Scope:
    """Where a module's settings apply: everywhere (``channel`` None) or in one channel.

    A channel's ``section`` is the module's section with that channel's overrides
    laid over it; ``keys`` names the config key each overriding setting came from.
    """

    channel: str | None  # irc-lowered
    section: Mapping[str, Any] | None
    prefix: str  # modules.weather
    keys: Mapping[str, str] = dataclasses.field(default_factory=dict)  # setting -> its prefix
    given: tuple[str, ...] = ()  # the config keys that set anything here


@dataclasses.dataclass(frozen=True)
class Scoped:
    """A module's ``Settings`` everywhere, and in the channels that override some."""

    default: Any
    channels: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def get(self, channel: str | None) -> Any:
        if channel is None or not self.channels:
            return self.default
        from bot.casemap import irc_lower as lower

        return self.channels.get(lower(channel), self.default)


def scopes(config: Any, name: str) -> list[Scope]:
    """Module ``name``'s scopes in ``config``: its ``modules:`` section, then each channel's."""
    from bot.casemap import irc_lower as lower

    base = config.modules.get(name)
    prefix = f"modules.{name}"
    found = [Scope(None, base, prefix, {}, (prefix,) if base is not None else ())]
    for i, options in enumerate(config.channel_options.values()):
        override = options.modules.get(name)
        if override is None:
            continue
        where = f"channels[{i}].modules.{name}"
        keys = dict.fromkeys(override, where)
        found.append(
            Scope(lower(options.name), {**(base or {}), **override}, prefix, keys, (where,))
        )
    return found


def build_scoped(cls: type, found: list[Scope]) -> tuple[Scoped | None, list[Problem]]:
    """``cls`` built for every scope, or every problem (each named once)."""
    built: dict[str | None, Any] = {}
    problems: list[Problem] = []
    for scope in found:
        instance, wrong = build(cls, scope.section, scope.prefix, scope.keys)
        problems += [p for p in wrong if p not in problems]
        built[scope.channel] = instance
    if problems:
        return None, problems
    default = built.pop(None)
    return Scoped(default, {c: v for c, v in built.items() if c is not None}), []


def declared_at(source: bytes) -> int | None:
    """The line of ``class Settings`` in a module's source, for messages."""
    match = re.search(rb"^class Settings\b", source, re.M)
    return source.count(b"\n", 0, match.start()) + 1 if match else None


def settings_class(module: types.ModuleType) -> type | None:
    """The module's ``Settings`` dataclass, if it declares one."""
    cls = vars(module).get("Settings")
    return cls if isinstance(cls, type) and dataclasses.is_dataclass(cls) else None


def build(
    cls: type,
    raw: Mapping[str, Any] | None,
    prefix: str,
    keys: Mapping[str, str] | None = None,
) -> tuple[Any, list[Problem]]:
    """An instance of ``cls`` from ``raw`` (the module's section), or the problems.

    ``prefix`` is the section's config key (``modules.weather``); ``keys`` gives
    another for settings that came from elsewhere (a channel's overrides).
    """
    raw = raw or {}
    keys = keys or {}
    problems: list[Problem] = []
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in raw:
        if key not in fields:
            known = ", ".join(fields) or "none"
            where = f"{keys.get(key, prefix)}.{key}"
            problems.append(Problem(where, f"unknown setting (its settings: {known})"))
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key = f"{keys.get(name, prefix)}.{name}"
        kind = hints.get(name, Any)
        if name not in raw:
            missing = dataclasses.MISSING
            if field.default is missing and field.default_factory is missing:
                problems.append(Problem(key, f"missing; required ({_describe(kind)})"))
            continue
        try:
            values[name] = _convert(raw[name], kind, _is_secret(kind))
        except _Wrong as exc:
            problems.append(Problem(key, str(exc)))
    if problems:
        return None, problems
    try:
        return cls(**values), []
    except Exception as exc:  # __post_init__ checks of the module's own
        return None, [Problem(prefix, f"{type(exc).__name__}: {exc}")]


class _Wrong(Exception):
    pass


def _resolve(value: Any, secret: bool) -> Any:
    """``${NAME}`` from the environment, ``${file:PATH}`` from a file."""
    if not isinstance(value, str) or "${" not in value:
        return value

    def lookup(match: re.Match[str]) -> str:
        name = match[1].strip()
        if name.startswith("file:"):
            path = Path(name[5:].strip()).expanduser()
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise _Wrong(f"cannot read {path}: {exc.strerror or exc}") from None
        if name not in os.environ:
            raise _Wrong(f"the environment variable {name} is not set")
        return os.environ[name]

    return _REFERENCE.sub(lookup, value)


_SCALARS: dict[Any, Any] = {
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    str: lambda v: isinstance(v, str),
    Any: lambda v: True,
}


def resolve_references(
    section: Mapping[str, Any] | None, prefix: str
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """``section`` with each ``${...}`` value read (as a Secret: it is never shown).

    For a worker process: it runs with the environment of when it was started,
    so the bot reads the references and sends the values.
    """
    if section is None:
        return None, []
    resolved: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, value in section.items():
        if isinstance(value, str) and "${" in value:
            try:
                value = Secret(_resolve(value, True))
            except _Wrong as exc:
                problems.append(Problem(f"{prefix}.{key}", str(exc)))
        resolved[key] = value
    return resolved, problems


def _convert(value: Any, kind: Any, secret: bool) -> Any:
    # what came from the environment or a file is never shown, whatever its field
    if isinstance(value, Secret):  # read by the bot already (see resolve_references)
        value, secret = value.reveal(), True
    secret = secret or (isinstance(value, str) and "${" in value)
    value = _resolve(value, secret)
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, types.UnionType):
        return _one_of(value, kind, args, secret)
    if origin is Literal:
        if value in args:
            return value
        raise _Wrong(f"expected one of {', '.join(map(str, args))}, got {_shown(value, secret)}")
    if origin in (list, tuple) or kind in (list, tuple):
        if not isinstance(value, list):
            raise _Wrong(_expected(kind, value, secret))
        items = [_convert(v, args[0] if args else Any, secret) for v in value]
        return tuple(items) if (origin or kind) is tuple else items
    if kind is Secret:
        if not isinstance(value, str) or not value:
            raise _Wrong("expected a non-empty text (a secret: its value is not shown)")
        return Secret(value)
    check = _SCALARS.get(kind)
    if check is not None and check(value):
        return float(value) if kind is float else value
    raise _Wrong(_expected(kind, value, secret))


def _one_of(value: Any, kind: Any, args: tuple[Any, ...], secret: bool) -> Any:
    if value is None and type(None) in args:
        return None
    for option in (a for a in args if a is not type(None)):
        try:
            return _convert(value, option, secret)
        except _Wrong:
            continue
    raise _Wrong(_expected(kind, value, secret))


def _is_secret(kind: Any) -> bool:
    return kind is Secret or Secret in get_args(kind)


def _expected(kind: Any, value: Any, secret: bool) -> str:
    return f"expected {_describe(kind)}, got {_shown(value, secret)}"


def _shown(value: Any, secret: bool) -> str:
    return "a value not shown (a secret)" if secret else repr(value)


def _describe(kind: Any) -> str:
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (list, tuple) or kind in (list, tuple):
        return f"a list of {_describe(args[0]) if args else 'values'}"
    names = {
        str: "a text",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        Secret: "a secret text",
        type(None): "null",
    }
    return names.get(kind, getattr(kind, "__name__", str(kind)))
