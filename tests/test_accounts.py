"""bot.accounts: who is logged in as whom, without account-tag."""

from __future__ import annotations

from bot.accounts import Accounts
from bot.casemap import ascii_lower, rfc1459_lower


def test_accounts_follow_logins_renames_and_leaving() -> None:
    accounts = Accounts(rfc1459_lower)
    accounts.logged("Alice", "alice")
    assert accounts.of("ALICE", {}, tagged=False) == "alice"
    accounts.renamed("alice", "alice_away")
    assert accounts.of("alice", {}, tagged=False) is None  # the old nick is free: no account
    assert accounts.of("Alice_Away", {}, tagged=False) == "alice"
    accounts.logged("alice_away", "*")  # logged out
    assert accounts.of("alice_away", {}, tagged=False) is None
    accounts.logged("bob", "bob")
    accounts.forget("BOB")
    assert accounts.of("bob", {}, tagged=False) is None
    accounts.logged("carol", "carol")
    accounts.forget("", everyone=True)
    assert accounts.of("carol", {}, tagged=False) is None


def test_the_tag_decides_when_account_tag_is_on() -> None:
    accounts = Accounts(rfc1459_lower)
    accounts.logged("dave", "dave")
    assert accounts.of("dave", {}, tagged=True) is None
    assert accounts.of("dave", {"account": "other"}, tagged=True) == "other"


def test_whox_replies_and_the_servers_casemapping() -> None:
    fold = [ascii_lower]
    accounts = Accounts(lambda nick: fold[0](nick))
    accounts.whox_reply(["42", "b[ss", "boss"])
    accounts.whox_reply(["42", "nobody", "0"])
    accounts.whox_reply(["7", "stranger", "acct"])  # not our query
    assert accounts.of("b[ss", {}, tagged=False) == "boss"
    assert accounts.of("b{ss", {}, tagged=False) is None  # another person under ascii
    assert accounts.of("nobody", {}, tagged=False) is None
    assert accounts.of("stranger", {}, tagged=False) is None
    assert accounts.whox_query("#c") == "WHO #c %tna,42"
