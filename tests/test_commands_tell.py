"""commands/tell.py: messages delivered when the recipient next speaks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from command_fakes import COMMANDS, FakeClock, FakeContext, WallClock, hear, load, run

from bot.api import CommandError

if TYPE_CHECKING:
    from bot.testing import LoadCommand

tell = load("tell")


def test_delivered_once_when_they_speak(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monkeypatch)
    state: dict[str, object] = {}
    assert run(tell, "tell", "Bob: the build is green", FakeContext(state=state)) == [
        "ok, I'll tell Bob when they next speak."
    ]
    run(tell, "tell", "bob and red again", FakeContext(nick="carol", state=state))
    assert hear(tell, "hi", FakeContext(nick="dave", state=state)) == []
    clock.advance(90)
    assert hear(tell, "morning", FakeContext(nick="BOB", state=state)) == [
        "BOB: alice told you 1m 30s ago: the build is green",
        "BOB: carol told you 1m 30s ago: and red again",
    ]
    assert hear(tell, "again", FakeContext(nick="bob", state=state)) == []
    assert state == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("", "usage: tell NICK MESSAGE"),
        ("bob", "usage: tell NICK MESSAGE"),
        ("#chan hi", "not a nick"),
        ("alice hi", "tell yourself"),
        ("reloadbot hi", "I'm right here"),
    ],
)
def test_bad_input(args: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(tell, "tell", args, FakeContext(nick="alice"))


def test_pending_messages_are_bounded() -> None:
    state: dict[str, object] = {}
    for i in range(tell.MAX_PENDING):
        run(tell, "tell", f"bob message {i}", FakeContext(state=state))
    with pytest.raises(CommandError, match="already has 10 messages waiting"):
        run(tell, "tell", "bob one too many", FakeContext(state=state))


# -- through the bot (bot.testing) -----------------------------------------------------


def test_tell_through_the_bot_survives_reload_and_restart(
    load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wall = WallClock(monkeypatch)
    db = tmp_path / "state.sqlite3"
    bot = load_command(COMMANDS / "tell.py", state_db=db)
    wall.follow(bot)
    assert bot.say("!tell bob lunch at noon") == ["ok, I'll tell bob when they next speak."]
    assert bot.say("!tell alice hi") == ["tell: tell yourself (no need to go through me)"]
    bot.advance(300)
    bot.reload(force=True)
    bot.close()

    again = load_command(COMMANDS / "tell.py", state_db=db)
    wall.follow(again)
    again.advance(60)
    assert again.say("hello all", nick="carol") == []
    assert again.say("hi", nick="Bob") == ["Bob: alice told you 6m ago: lunch at noon"]
    assert again.say("hi again", nick="bob") == []


def test_one_sender_has_a_few_messages_waiting_whatever_their_nick() -> None:
    state: dict[str, object] = {}
    for n in range(tell.MAX_SENT):
        ctx = FakeContext(nick=f"spam{n}", user_id="flood@host", state=state)
        run(tell, "tell", f"victim{n} hello", ctx)
    late = FakeContext(nick="spamX", user_id="flood@host", state=state)
    with pytest.raises(CommandError, match="already have 10 messages waiting"):
        run(tell, "tell", "victim99 hello", late)
    hear(tell, "hi", FakeContext(nick="victim0", state=state))  # one delivered: room again
    assert run(tell, "tell", "victim99 hello", late) == [
        "ok, I'll tell victim99 when they next speak."
    ]


def test_recipients_with_messages_waiting_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tell, "MAX_RECIPIENTS", 2)
    state: dict[str, object] = {}
    run(tell, "tell", "a hi", FakeContext(nick="s1", state=state))
    run(tell, "tell", "b hi", FakeContext(nick="s2", state=state))
    run(tell, "tell", "a again", FakeContext(nick="s3", state=state))  # a already waits
    with pytest.raises(CommandError, match="too many messages waiting"):
        run(tell, "tell", "c hi", FakeContext(nick="s4", state=state))
    hear(tell, "hello", FakeContext(nick="a", state=state))
    run(tell, "tell", "c hi", FakeContext(nick="s4", state=state))


def test_a_message_left_in_private_is_told_in_private() -> None:
    state: dict[str, object] = {}
    run(tell, "tell", "bob psst", FakeContext(channel=None, state=state))
    run(tell, "tell", "bob hello all", FakeContext(nick="carol", state=state))
    bob = FakeContext(nick="bob", state=state)
    assert hear(tell, "hi", bob) == ["bob: carol told you just now: hello all"]
    assert bob.replies == ["(private) bob: alice told you just now: psst"]


def test_private_tells_through_the_bot_go_to_the_recipient_only(
    load_command: LoadCommand,
) -> None:
    bot = load_command(COMMANDS / "tell.py")
    assert bot.say("!tell bob psst", channel=None) == ["ok, I'll tell bob when they next speak."]
    assert bot.say("morning", nick="bob") == ["bob: alice told you just now: psst"]
    assert bot.sent[-1].target == "bob"  # not the channel
