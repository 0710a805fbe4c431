"""Who is who: admins and ``permissions:`` grants, by hostmask or services account,
never by a bare nick.

Pure functions over a message's Source; knows nothing about sockets or modules.
Nicks and accounts are compared the way the server compares them (its
ISUPPORT ``CASEMAPPING``; RFC 1459 until it says): ``Boss`` and ``boss`` are
one nick everywhere, ``[a]`` and ``{a}`` only under rfc1459.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.casemap import irc_lower
from bot.channels import LEVELS, at_least
from bot.message import Source


class AdminRuleError(ValueError):
    """An ``admins`` entry that is malformed or unsafe."""


@dataclass(frozen=True)
class AdminRule:
    """One ``admins`` entry: either a hostmask glob or a services account."""

    text: str
    account: str | None = None  # "account:NAME" entries, as written
    glob: str | None = None  # hostmask entries, as written

    def matches(self, source: Source, fold: Callable[[str], str] = irc_lower) -> bool:
        """Whether ``source`` is this entry, nicks compared with ``fold`` (CASEMAPPING)."""
        if self.account is not None:
            return source.account is not None and fold(source.account) == fold(self.account)
        assert self.glob is not None
        mask = f"{fold(source.nick)}!{source.user}@{source.host}".lower()
        return _compiled(self.glob, fold).fullmatch(mask) is not None


@functools.lru_cache(maxsize=1024)
def _compiled(glob: str, fold: Callable[[str], str]) -> re.Pattern[str]:
    """The regex of an IRC mask: ``*`` and ``?`` are wildcards, everything else (``[``
    in a nick too) stands for itself."""
    nick, rest = glob.split("!", 1)
    text = f"{fold(nick)}!{rest.lower()}"
    return re.compile("".join(_WILDCARDS.get(c, re.escape(c)) for c in text))


_WILDCARDS = {"*": ".*", "?": "."}


def parse_admin_rule(entry: str) -> AdminRule:
    """Parse one ``admins`` entry.

    >>> parse_admin_rule("account:Alice").matches(Source("x", "u", "h", account="alice"))
    True
    >>> parse_admin_rule("boss!*@trusted.example").matches(Source("Boss", "u", "trusted.example"))
    True
    >>> parse_admin_rule("boss")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bot.auth.AdminRuleError: 'boss' is a bare nick, which anyone can take; use a hostmask ...
    """
    entry = entry.strip()
    if entry.lower().startswith("account:"):
        name = entry.split(":", 1)[1].strip()
        if not name or any(c.isspace() for c in name):
            raise AdminRuleError(f"{entry!r}: expected 'account:NAME' with a services account name")
        return AdminRule(text=entry, account=name)
    if "!" not in entry or "@" not in entry.split("!", 1)[1]:
        raise AdminRuleError(
            f"{entry!r} is a bare nick, which anyone can take; "
            f"use a hostmask like '{entry or 'nick'}!*@your.host' or 'account:{entry or 'name'}'"
        )
    nick, rest = entry.split("!", 1)
    if re.fullmatch(r"[*?]*@[*?]*", rest):
        raise AdminRuleError(
            f"{entry!r} matches anyone who takes the nick {nick!r}, just like a bare nick; "
            f"restrict the host ('{nick}!*@your.host') or use 'account:{nick}'"
        )
    return AdminRule(text=entry, glob=entry)


def is_admin(
    source: Source, rules: tuple[AdminRule, ...], fold: Callable[[str], str] = irc_lower
) -> bool:
    return any(rule.matches(source, fold) for rule in rules)


class GrantError(ValueError):
    """A ``permissions:`` entry that is malformed or unsafe."""


@dataclass(frozen=True)
class Grant:
    """One ``permissions:`` entry: a channel level (``op``...) or a hostmask or account."""

    text: str
    level: str | None = None  # "op", "halfop" or "voice": in the channel it is said in
    rule: AdminRule | None = None

    def allows(self, source: Source, modes: frozenset[str], fold: Callable[[str], str]) -> bool:
        if self.level is not None:
            return at_least(modes, self.level)
        assert self.rule is not None
        return self.rule.matches(source, fold)


def parse_grant(entry: str) -> Grant:
    """``op``, ``halfop``, ``voice``, ``nick!user@host`` or ``account:NAME``.

    >>> parse_grant("voice").level
    'voice'
    >>> parse_grant("alice")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bot.auth.GrantError: 'alice' is a bare nick, which anyone can take; ...
    """
    text = entry.strip()
    if text.lower() in LEVELS:
        return Grant(text, level=text.lower())
    try:
        return Grant(text, rule=parse_admin_rule(text))
    except AdminRuleError as exc:
        raise GrantError(f"{exc} (or op, halfop, voice)") from None
