"""Who is an admin: hostmask globs and services accounts, never a bare nick.

Pure functions over a message's Source; knows nothing about sockets or modules.
Nicks are compared with IRC (RFC 1459) case folding, so ``Boss`` and ``boss``
and ``[a]``/``{a}`` match the way the server sees them.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from irc.strings import lower as irc_lower

from bot.message import Source


class AdminRuleError(ValueError):
    """An ``admins`` entry that is malformed or unsafe."""


@dataclass(frozen=True)
class AdminRule:
    """One ``admins`` entry: either a hostmask glob or a services account."""

    text: str
    account: str | None = None  # "account:NAME" entries
    pattern: re.Pattern[str] | None = None  # compiled hostmask glob

    def matches(self, source: Source) -> bool:
        if self.account is not None:
            return source.account is not None and irc_lower(source.account) == self.account
        assert self.pattern is not None
        mask = f"{irc_lower(source.nick)}!{source.user}@{source.host}".lower()
        return bool(self.pattern.fullmatch(mask))


def parse_admin_rule(entry: str) -> AdminRule:
    """Parse one ``admins`` entry.

    >>> parse_admin_rule("account:Alice").account
    'alice'
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
        return AdminRule(text=entry, account=irc_lower(name))
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
    glob = f"{irc_lower(nick)}!{rest}".lower()
    return AdminRule(text=entry, pattern=re.compile(fnmatch.translate(glob)))


def is_admin(source: Source, rules: tuple[AdminRule, ...]) -> bool:
    return any(rule.matches(source) for rule in rules)
