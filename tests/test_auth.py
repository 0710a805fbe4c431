"""Admin rights come from hostmasks or services accounts, never from a bare nick."""

from __future__ import annotations

import pytest

from bot.auth import AdminRuleError, is_admin, parse_admin_rule
from bot.message import Source


def rules(*entries: str) -> tuple:
    return tuple(parse_admin_rule(e) for e in entries)


def test_hostmask_glob_matches_nick_user_and_host() -> None:
    admins = rules("boss!*@trusted.example")
    assert is_admin(Source("boss", "u", "trusted.example"), admins)
    assert not is_admin(Source("boss", "u", "evil.example"), admins)
    assert not is_admin(Source("other", "u", "trusted.example"), admins)


def test_nicks_compare_with_irc_case_folding() -> None:
    admins = rules("[boss]!*@h")
    assert is_admin(Source("{BOSS}", "u", "h"), admins)


def test_account_rule_needs_the_account_not_the_nick() -> None:
    admins = rules("account:Alice")
    assert is_admin(Source("whatever", "u", "h", account="alice"), admins)
    assert not is_admin(Source("alice", "u", "h", account=None), admins)
    assert not is_admin(Source("alice", "u", "h", account="mallory"), admins)


@pytest.mark.parametrize("entry", ["boss", "boss!", "boss!user", "  "])
def test_bare_nicks_are_refused_with_the_reason(entry: str) -> None:
    with pytest.raises(AdminRuleError, match="anyone can take"):
        parse_admin_rule(entry)


def test_empty_account_is_refused() -> None:
    with pytest.raises(AdminRuleError):
        parse_admin_rule("account:")


@pytest.mark.parametrize("entry", ["boss!*@*", "boss!?*@*", "*!*@*"])
def test_masks_that_only_constrain_the_nick_are_refused_too(entry: str) -> None:
    with pytest.raises(AdminRuleError, match="just like a bare nick"):
        parse_admin_rule(entry)
