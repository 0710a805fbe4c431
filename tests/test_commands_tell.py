"""commands/tell.py: messages delivered when the recipient next speaks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from clocks import WallClock

if TYPE_CHECKING:
    from bot.testing import LoadCommand

COMMANDS = Path(__file__).resolve().parents[1] / "commands"
TELL = COMMANDS / "tell.py"


def test_delivered_once_when_they_speak(
    load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    wall = WallClock(monkeypatch)
    bot = load_command(TELL)
    wall.follow(bot)
    assert bot.say("!tell Bob: the build is green") == ["ok, I'll tell Bob when they next speak."]
    bot.say("!tell bob and red again", nick="carol")
    assert bot.say("hi", nick="dave") == []
    bot.advance(90)
    assert bot.say("morning", nick="BOB") == [
        "BOB: alice told you 1m 30s ago: the build is green",
        "BOB: carol told you 1m 30s ago: and red again",
    ]
    assert bot.say("again", nick="bob") == []
    assert dict(bot.state) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("", "usage: tell NICK MESSAGE"),
        ("bob", "usage: tell NICK MESSAGE"),
        ("#chan hi", "tell: '#chan' is not a nick"),
        ("alice hi", "tell: tell yourself (no need to go through me)"),
        ("reloadbot hi", "tell: I'm right here"),
    ],
)
def test_bad_input(load_command: LoadCommand, args: str, message: str) -> None:
    bot = load_command(TELL, nick="reloadbot")
    assert bot.say(f"!tell {args}", nick="alice") == [message]
    assert dict(bot.state) == {}


def test_pending_messages_are_bounded(load_command: LoadCommand) -> None:
    bot = load_command(TELL)
    for i in range(bot.module.MAX_PENDING):
        bot.say(f"!tell bob message {i}")
    assert bot.say("!tell bob one too many") == ["tell: bob already has 10 messages waiting"]


# -- through the bot (bot.testing) -----------------------------------------------------


def test_tell_through_the_bot_survives_reload_and_restart(
    load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wall = WallClock(monkeypatch)
    db = tmp_path / "state.sqlite3"
    bot = load_command(TELL, state_db=db)
    wall.follow(bot)
    assert bot.say("!tell bob lunch at noon") == ["ok, I'll tell bob when they next speak."]
    assert bot.say("!tell alice hi") == ["tell: tell yourself (no need to go through me)"]
    bot.advance(300)
    bot.reload(force=True)
    bot.close()

    again = load_command(TELL, state_db=db)
    wall.follow(again)
    again.advance(60)
    assert again.say("hello all", nick="carol") == []
    assert again.say("hi", nick="Bob") == ["Bob: alice told you 6m ago: lunch at noon"]
    assert again.say("hi again", nick="bob") == []


def test_one_sender_has_a_few_messages_waiting_whatever_their_nick(
    load_command: LoadCommand,
) -> None:
    bot = load_command(TELL)  # every nick of bot.testing has the same user@host: one sender
    for n in range(bot.module.MAX_SENT):
        bot.say(f"!tell victim{n} hello", nick=f"spam{n}")
    assert bot.say("!tell victim99 hello", nick="spamX") == [
        "tell: you already have 10 messages waiting to be told"
    ]
    bot.say("hi", nick="victim0")  # one delivered: room again
    assert bot.say("!tell victim99 hello", nick="spamX") == [
        "ok, I'll tell victim99 when they next speak."
    ]


def test_recipients_with_messages_waiting_are_capped(
    load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = load_command(TELL)
    monkeypatch.setattr(bot.module, "MAX_RECIPIENTS", 2)
    bot.say("!tell a hi", nick="s1")
    bot.say("!tell b hi", nick="s2")
    assert bot.say("!tell a again", nick="s3") == [  # a already waits
        "ok, I'll tell a when they next speak."
    ]
    assert bot.say("!tell c hi", nick="s4") == ["tell: too many messages waiting; try again later"]
    bot.say("hello", nick="a")
    assert bot.say("!tell c hi", nick="s4") == ["ok, I'll tell c when they next speak."]


def test_a_message_left_in_private_is_told_in_private(load_command: LoadCommand) -> None:
    bot = load_command(TELL)
    bot.say("!tell bob psst", channel=None)
    bot.say("!tell bob hello all", nick="carol")
    before = len(bot.sent)
    assert sorted(bot.say("hi", nick="bob")) == [
        "bob: alice told you just now: psst",
        "bob: carol told you just now: hello all",
    ]
    assert sorted(bot.sent[before:]) == [
        ("#test", "bob: carol told you just now: hello all", "PRIVMSG"),
        ("bob", "bob: alice told you just now: psst", "PRIVMSG"),
    ]


def test_private_tells_through_the_bot_go_to_the_recipient_only(
    load_command: LoadCommand,
) -> None:
    bot = load_command(TELL)
    assert bot.say("!tell bob psst", channel=None) == ["ok, I'll tell bob when they next speak."]
    assert bot.say("morning", nick="bob") == ["bob: alice told you just now: psst"]
    assert bot.sent[-1].target == "bob"  # not the channel
