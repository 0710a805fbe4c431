"""commands/seen.py: when a nick was last around."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from command_fakes import COMMANDS, FakeClock, FakeContext, WallClock, happen, hear, load, run

from bot.api import CommandError, Event

if TYPE_CHECKING:
    from bot.testing import LoadCommand

seen = load("seen")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock(monkeypatch)


def test_last_message_case_insensitive(clock: FakeClock) -> None:
    state: dict[str, object] = {}
    hear(seen, "first", FakeContext(nick="Bob[x]", state=state))
    clock.advance(30)
    hear(seen, "hello there", FakeContext(nick="Bob[x]", state=state))
    clock.advance(125)
    reply = run(seen, "seen", "bob{X}", FakeContext(state=state))
    assert reply == ["Bob[x] was last seen 2m 5s ago in #test, saying: hello there"]


def test_private_messages_are_not_recorded() -> None:
    state: dict[str, object] = {}
    hear(seen, "secret", FakeContext(nick="bob", channel=None, state=state))
    assert run(seen, "seen", "bob", FakeContext(state=state)) == ["I haven't seen bob."]


@pytest.mark.parametrize(
    ("event", "seen_as", "doing"),
    [
        (Event("join", "bob", "#a"), "bob", ", joining #a"),
        (Event("part", "bob", "#a", "bye"), "bob", ", leaving #a (bye)"),
        (Event("quit", "bob", None, "Ping timeout"), "bob", ", quitting (Ping timeout)"),
        (Event("kick", "bob", "#a", "spam"), "bob", ", being kicked from #a (spam)"),
        (Event("nick", "bob", None, "robert"), "bob", ", changing nick to robert"),
        (Event("nick", "bob", None, "robert"), "robert", ", changing nick from bob"),
    ],
)
def test_events(clock: FakeClock, event: Event, seen_as: str, doing: str) -> None:
    state: dict[str, object] = {}
    happen(seen, event, FakeContext(nick=event.nick, channel=event.channel, state=state))
    assert run(seen, "seen", seen_as, FakeContext(state=state)) == [
        f"{seen_as} was last seen just now{doing}"
    ]


def test_yourself_and_the_bot() -> None:
    assert run(seen, "seen", "ALICE", FakeContext(nick="alice")) == ["alice: that's you!"]
    assert run(seen, "seen", "reloadbot", FakeContext()) == ["I'm right here."]


@pytest.mark.parametrize(
    ("args", "message"), [("", "usage: seen NICK"), ("a b", "usage"), ("#chan", "not a nick")]
)
def test_bad_input(args: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(seen, "seen", args, FakeContext())


# -- through the bot (bot.testing) -----------------------------------------------------


def test_seen_through_the_bot_survives_reload_and_restart(
    load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wall = WallClock(monkeypatch)
    db = tmp_path / "state.sqlite3"
    bot = load_command(COMMANDS / "seen.py", state_db=db)
    wall.follow(bot)
    assert bot.say("!seen bob") == ["I haven't seen bob."]
    bot.say("anyone around?", nick="Bob")
    bot.say("psst", nick="Bob", channel=None)
    bot.advance(60)
    bot.event("join", nick="carol", channel="#other")
    bot.event("quit", nick="dave", text="Quit: bye")
    bot.advance(3600)
    bot.reload(force=True)
    assert bot.say("!seen BOB") == ["Bob was last seen 1h 1m ago in #test, saying: anyone around?"]
    assert bot.say("!seen carol") == ["carol was last seen 1h ago, joining #other"]
    bot.close()

    again = load_command(COMMANDS / "seen.py", state_db=db)
    wall.follow(again)
    assert again.say("!seen dave") == ["dave was last seen 1h ago, quitting (Quit: bye)"]
    again.event("nick", nick="dave", text="david")
    assert again.say("!seen david") == ["david was last seen just now, changing nick from dave"]
    assert again.say("!seen") == ["usage: seen NICK"]


def test_actions_are_seen_in_channels_only(load_command: LoadCommand) -> None:
    bot = load_command(COMMANDS / "seen.py")
    bot.event("action", nick="bob", text="waves at everyone")
    assert bot.say("!seen bob") == [
        "bob was last seen just now in #test, doing: * bob waves at everyone"
    ]
    bot.event("action", nick="carol", channel=None, text="whispers")
    assert bot.say("!seen carol") == ["I haven't seen carol."]


def test_away_and_netsplits_are_seen(load_command: LoadCommand) -> None:
    bot = load_command(COMMANDS / "seen.py")
    bot.event("away", nick="bob", text="lunch")
    assert bot.say("!seen bob") == ["bob was last seen just now, going away (lunch)"]
    bot.event("away", nick="bob")
    assert bot.say("!seen bob") == ["bob was last seen just now, coming back"]
    bot.event("netsplit", text="hub.example leaf.example", nicks=("carol", "dave"))
    assert bot.say("!seen dave") == [
        "dave was last seen just now, quitting (netsplit: hub.example leaf.example)"
    ]
