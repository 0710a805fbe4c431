"""commands/quote.py: add, random, by number, search, delete."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from command_fakes import COMMANDS, FakeContext, load, run

from bot.api import CommandError
from commands._common import Quota

if TYPE_CHECKING:
    from bot.testing import LoadCommand

quote = load("quote")


@pytest.fixture(autouse=True)
def fresh_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with its users' add quota unused."""
    monkeypatch.setattr(quote, "_adds", Quota(quote.ADDS_PER_HOUR, 3600))


def test_add_get_random_search() -> None:
    state: dict[str, object] = {}
    ctx = FakeContext(state=state)
    assert run(quote, "quote", "", ctx) == ["no quotes yet; add one with: quote add TEXT"]
    assert run(quote, "quote", "add  <bob>   it works on my machine", ctx) == ["added quote #1."]
    assert run(quote, "quote", "add <carol> ship it", ctx) == ["added quote #2."]
    assert run(quote, "quote", "1", ctx) == ["#1: <bob> it works on my machine"]
    assert run(quote, "quote", "#2", ctx) == ["#2: <carol> ship it"]
    assert run(quote, "quote", "search MACHINE", ctx) == ["#1: <bob> it works on my machine"]
    assert run(quote, "quote", "search nothing", ctx) == ["no quote mentions 'nothing'."]
    picks = {run(quote, "quote", "", ctx)[0] for _ in range(100)}
    assert picks == {"#1: <bob> it works on my machine", "#2: <carol> ship it"}


def test_search_shows_three_and_counts_the_rest() -> None:
    ctx = FakeContext()
    for i in range(6):
        run(quote, "quote", f"add foo {i}", ctx)
    assert run(quote, "quote", "search foo", ctx) == [
        "#1: foo 0",
        "#2: foo 1",
        "#3: foo 2",
        "3 more: #4, #5, #6",
    ]


def test_delete_by_author_or_admin_only() -> None:
    state: dict[str, object] = {}
    run(quote, "quote", "add one", FakeContext(nick="alice", state=state))
    run(quote, "quote", "add two", FakeContext(nick="alice", state=state))
    with pytest.raises(CommandError, match="only channel ops, admins and whoever added it"):
        run(quote, "quote", "del 1", FakeContext(nick="bob", state=state))
    assert run(quote, "quote", "del 1", FakeContext(nick="alice", state=state)) == [
        "deleted quote #1."
    ]
    assert run(quote, "quote", "delete #2", FakeContext(nick="bob", is_admin=True, state=state))
    with pytest.raises(CommandError, match="there is no quote #1"):
        run(quote, "quote", "1", FakeContext(state=state))
    # numbers are never reused
    assert run(quote, "quote", "add three", FakeContext(state=state)) == ["added quote #3."]


def test_a_channel_op_may_delete_any_quote() -> None:
    state: dict[str, object] = {}
    run(quote, "quote", "add one", FakeContext(nick="alice", state=state))
    ctx = FakeContext(nick="bob", is_op=True, state=state)
    assert run(quote, "quote", "del 1", ctx) == ["deleted quote #1."]


def test_adds_are_limited_per_user_but_not_for_admins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quote, "_adds", Quota(2, 3600))
    state: dict[str, object] = {}
    for text in ("one", "two"):
        run(quote, "quote", f"add {text}", FakeContext(nick="alice", state=state))
    with pytest.raises(CommandError, match="at most 2 new quotes an hour"):
        run(quote, "quote", "add three", FakeContext(nick="alice", state=state))
    # another user, counted apart; an admin is never limited
    assert run(quote, "quote", "add three", FakeContext(nick="bob", state=state))
    for text in ("four", "five", "six"):
        assert run(
            quote, "quote", f"add {text}", FakeContext(nick="alice", is_admin=True, state=state)
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("add", "usage: quote add TEXT"),
        ("add " + "x" * 401, "at most 400 characters"),
        ("search", "usage: quote search WORD"),
        ("7", "there is no quote #7"),
        ("del x", "usage: quote"),
        ("frobnicate", "usage: quote"),
        ("1 2", "usage: quote"),
    ],
)
def test_bad_input(args: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(quote, "quote", args, FakeContext())


# -- through the bot (bot.testing) -----------------------------------------------------


def test_quotes_through_the_bot_survive_reload_and_restart(
    load_command: LoadCommand, tmp_path: Path
) -> None:
    db = tmp_path / "state.sqlite3"
    bot = load_command(COMMANDS / "quote.py", state_db=db)
    assert bot.say("!quote add <bob> works for me") == ["added quote #1."]
    bot.reload(force=True)
    assert bot.say("!quote add <carol> ship it") == ["added quote #2."]
    assert bot.say("!quote 1") == ["#1: <bob> works for me"]
    assert bot.say("!quote 9") == ["quote: there is no quote #9"]
    bot.close()

    again = load_command(COMMANDS / "quote.py", state_db=db)
    assert again.say("!quote search SHIP") == ["#2: <carol> ship it"]
    assert again.say("!quote")[0] in ("#1: <bob> works for me", "#2: <carol> ship it")
    assert again.say("!quote del 1", nick="mallory") == [
        "quote: only channel ops, admins and whoever added it can delete a quote"
    ]
    assert again.say("!quote del 1", nick="mallory", admin=True) == ["deleted quote #1."]
