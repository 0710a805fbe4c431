"""commands/quote.py: add, random, by number, search, delete."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.testing import LoadCommand

COMMANDS = Path(__file__).resolve().parents[1] / "commands"
QUOTE = COMMANDS / "quote.py"


def test_add_get_random_search(load_command: LoadCommand) -> None:
    bot = load_command(QUOTE)
    assert bot.say("!quote") == ["no quotes yet; add one with: quote add TEXT"]
    assert bot.say("!quote add  <bob>   it works on my machine") == ["added quote #1."]
    assert bot.say("!quote add <carol> ship it") == ["added quote #2."]
    assert bot.say("!quote 1") == ["#1: <bob> it works on my machine"]
    assert bot.say("!quote #2") == ["#2: <carol> ship it"]
    assert bot.say("!quote search MACHINE") == ["#1: <bob> it works on my machine"]
    assert bot.say("!quote search nothing") == ["no quote mentions 'nothing'."]
    picks = {bot.say("!quote")[0] for _ in range(100)}
    assert picks == {"#1: <bob> it works on my machine", "#2: <carol> ship it"}


def test_search_shows_three_and_counts_the_rest(load_command: LoadCommand) -> None:
    bot = load_command(QUOTE)
    for i in range(6):
        bot.say(f"!quote add foo {i}")
    assert bot.say("!quote search foo") == [
        "#1: foo 0",
        "#2: foo 1",
        "#3: foo 2",
        "3 more: #4, #5, #6",
    ]


def test_delete_by_author_or_admin_only(load_command: LoadCommand) -> None:
    bot = load_command(QUOTE)
    bot.say("!quote add one", nick="alice")
    bot.say("!quote add two", nick="alice")
    assert bot.say("!quote del 1", nick="bob") == [
        "quote: only channel ops, admins and whoever added it can delete a quote"
    ]
    assert bot.say("!quote del 1", nick="alice") == ["deleted quote #1."]
    assert bot.say("!quote delete #2", nick="bob", admin=True) == ["deleted quote #2."]
    assert bot.say("!quote 1") == ["quote: there is no quote #1"]
    # numbers are never reused
    assert bot.say("!quote add three") == ["added quote #3."]


def test_a_channel_op_may_delete_any_quote(load_command: LoadCommand) -> None:
    bot = load_command(QUOTE)
    bot.say("!quote add one", nick="alice")
    refused = ["quote: only channel ops, admins and whoever added it can delete a quote"]
    assert bot.say("!quote del 1", nick="bob") == refused
    bot.set_modes("bob", "v")
    assert bot.say("!quote del 1", nick="bob") == refused  # voice is not enough
    bot.set_modes("bob", "o")
    assert bot.say("!quote del 1", nick="bob", channel=None) == refused  # no op in private
    assert bot.say("!quote del 1", nick="bob") == ["deleted quote #1."]


def test_adds_are_limited_per_user_but_not_for_admins(
    load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = load_command(QUOTE)
    monkeypatch.setattr(bot.module, "_adds", bot.module.Quota(2, 3600))
    bot.hosts.update({"bob": "bob@elsewhere.invalid"})
    for text in ("one", "two"):
        bot.say(f"!quote add {text}", nick="alice")
    assert bot.say("!quote add three", nick="alice") == [
        "quote: at most 2 new quotes an hour, please"
    ]
    # another user, counted apart; an admin is never limited
    assert bot.say("!quote add three", nick="bob") == ["added quote #3."]
    for n, text in enumerate(("four", "five", "six"), start=4):
        assert bot.say(f"!quote add {text}", nick="alice", admin=True) == [f"added quote #{n}."]


USAGE = None  # stands for bot.module.USAGE in the table below


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("add", "usage: quote add TEXT"),
        ("add " + "x" * 401, "quote: at most 400 characters, please"),
        ("search", "usage: quote search WORD"),
        ("7", "quote: there is no quote #7"),
        ("del x", USAGE),
        ("frobnicate", USAGE),
        ("1 2", USAGE),
    ],
)
def test_bad_input(load_command: LoadCommand, args: str, message: str | None) -> None:
    bot = load_command(QUOTE)
    assert bot.say(f"!quote {args}") == [message or bot.module.USAGE]


# -- through the bot (bot.testing) -----------------------------------------------------


def test_quotes_through_the_bot_survive_reload_and_restart(
    load_command: LoadCommand, tmp_path: Path
) -> None:
    db = tmp_path / "state.sqlite3"
    bot = load_command(QUOTE, state_db=db)
    assert bot.say("!quote add <bob> works for me") == ["added quote #1."]
    bot.reload(force=True)
    assert bot.say("!quote add <carol> ship it") == ["added quote #2."]
    assert bot.say("!quote 1") == ["#1: <bob> works for me"]
    assert bot.say("!quote 9") == ["quote: there is no quote #9"]
    bot.close()

    again = load_command(QUOTE, state_db=db)
    assert again.say("!quote search SHIP") == ["#2: <carol> ship it"]
    assert again.say("!quote")[0] in ("#1: <bob> works for me", "#2: <carol> ship it")
    assert again.say("!quote del 1", nick="mallory") == [
        "quote: only channel ops, admins and whoever added it can delete a quote"
    ]
    assert again.say("!quote del 1", nick="mallory", admin=True) == ["deleted quote #1."]
