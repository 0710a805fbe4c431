"""commands/seen.py: when a nick was last around."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from clocks import WallClock

if TYPE_CHECKING:
    from bot.testing import LoadCommand

COMMANDS = Path(__file__).resolve().parents[1] / "commands"
SEEN = COMMANDS / "seen.py"


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    return WallClock(monkeypatch)


def test_last_message_case_insensitive(load_command: LoadCommand, wall: WallClock) -> None:
    bot = load_command(SEEN)
    wall.follow(bot)
    bot.say("first", nick="Bob[x]")
    bot.advance(30)
    bot.say("hello there", nick="Bob[x]")
    bot.advance(125)
    assert bot.say("!seen bob{X}") == [
        "Bob[x] was last seen 2m 5s ago in #test, saying: hello there"
    ]


def test_private_messages_are_not_recorded(load_command: LoadCommand) -> None:
    bot = load_command(SEEN)
    bot.say("secret", nick="bob", channel=None)
    assert bot.say("!seen bob") == ["I haven't seen bob."]


@pytest.mark.parametrize(
    ("kind", "channel", "text", "seen_as", "doing"),
    [
        ("join", "#a", "", "bob", ", joining #a"),
        ("part", "#a", "bye", "bob", ", leaving #a (bye)"),
        ("quit", None, "Ping timeout", "bob", ", quitting (Ping timeout)"),
        ("kick", "#a", "spam", "bob", ", being kicked from #a (spam)"),
        ("nick", None, "robert", "bob", ", changing nick to robert"),
        ("nick", None, "robert", "robert", ", changing nick from bob"),
    ],
)
def test_events(
    load_command: LoadCommand,
    wall: WallClock,
    kind: str,
    channel: str | None,
    text: str,
    seen_as: str,
    doing: str,
) -> None:
    bot = load_command(SEEN)
    wall.follow(bot)
    assert bot.event(kind, nick="bob", channel=channel, text=text) == []
    assert bot.say(f"!seen {seen_as}") == [f"{seen_as} was last seen just now{doing}"]


def test_yourself_and_the_bot(load_command: LoadCommand) -> None:
    bot = load_command(SEEN, nick="reloadbot")
    assert bot.say("!seen ALICE", nick="alice") == ["alice: that's you!"]
    assert bot.say("!seen reloadbot") == ["I'm right here."]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("", "usage: seen NICK"),
        ("a b", "usage: seen NICK"),
        ("#chan", "seen: '#chan' is not a nick"),
    ],
)
def test_bad_input(load_command: LoadCommand, args: str, message: str) -> None:
    bot = load_command(SEEN)
    assert bot.say(f"!seen {args}".strip()) == [message]


# -- through the bot (bot.testing) -----------------------------------------------------


def test_seen_through_the_bot_survives_reload_and_restart(
    load_command: LoadCommand, wall: WallClock, tmp_path: Path
) -> None:
    db = tmp_path / "state.sqlite3"
    bot = load_command(SEEN, state_db=db)
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

    again = load_command(SEEN, state_db=db)
    wall.follow(again)
    assert again.say("!seen dave") == ["dave was last seen 1h ago, quitting (Quit: bye)"]
    again.event("nick", nick="dave", text="david")
    assert again.say("!seen david") == ["david was last seen just now, changing nick from dave"]
    assert again.say("!seen") == ["usage: seen NICK"]


def test_actions_are_seen_in_channels_only(load_command: LoadCommand) -> None:
    bot = load_command(SEEN)
    bot.event("action", nick="bob", text="waves at everyone")
    assert bot.say("!seen bob") == [
        "bob was last seen just now in #test, doing: * bob waves at everyone"
    ]
    bot.event("action", nick="carol", channel=None, text="whispers")
    assert bot.say("!seen carol") == ["I haven't seen carol."]


def test_away_and_netsplits_are_seen(load_command: LoadCommand) -> None:
    bot = load_command(SEEN)
    bot.event("away", nick="bob", text="lunch")
    assert bot.say("!seen bob") == ["bob was last seen just now, going away (lunch)"]
    bot.event("away", nick="bob")
    assert bot.say("!seen bob") == ["bob was last seen just now, coming back"]
    bot.event("netsplit", text="hub.example leaf.example", nicks=("carol", "dave"))
    assert bot.say("!seen dave") == [
        "dave was last seen just now, quitting (netsplit: hub.example leaf.example)"
    ]


# -- records are written in batches ----------------------------------------------------


def test_records_wait_in_memory_and_seen_answers_them_at_once(
    load_command: LoadCommand, wall: WallClock
) -> None:
    bot = load_command(SEEN)
    wall.follow(bot)
    bot.event("join", nick="Bob", channel="#a")
    bot.say("hi all", nick="carol")
    assert "bob" not in bot.state and "carol" not in bot.state  # not written yet
    assert bot.say("!seen bob") == ["Bob was last seen just now, joining #a"]
    assert bot.say("!seen CAROL") == ["carol was last seen just now in #test, saying: hi all"]
    bot.advance(bot.module.FLUSH_EVERY)
    assert bot.state["bob"]["kind"] == "join" and bot.state["carol"]["kind"] == "say"
    bot.event("part", nick="bob", channel="#a", text="later")  # newer than what is written
    assert bot.state["bob"]["kind"] == "join"
    assert bot.say("!seen bob") == ["bob was last seen just now, leaving #a (later)"]


def test_a_join_flood_is_written_a_chunk_per_transaction(
    load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = load_command(SEEN)
    module = bot.module
    monkeypatch.setattr(module, "FLUSH_AT", 10)
    monkeypatch.setattr(module, "FLUSH_CHUNK", 4)
    monkeypatch.setattr(module, "FLUSH_BUDGET", 60.0)  # (a slow machine writes it all too)
    transactions: list[int] = []
    state_class = type(bot.state)
    real = state_class.transaction
    monkeypatch.setattr(
        state_class, "transaction", lambda self: transactions.append(1) or real(self)
    )
    for i in range(9):
        bot.event("join", nick=f"user{i}", channel="#a")
    assert len(bot.state) == 0 and transactions == []
    bot.event("join", nick="user9", channel="#a")  # the tenth: a chunk is written at once
    assert len(bot.state) == 4 and len(transactions) == 1
    bot.event("join", nick="user10", channel="#a")  # (7 wait: under the bound)
    assert len(bot.state) == 4
    bot.advance(module.FLUSH_EVERY)  # the rest, 4 + 3
    assert sorted(bot.state) == sorted(f"user{i}" for i in range(11))
    assert len(transactions) == 3
    assert bot.say("!seen user3") == ["user3 was last seen just now, joining #a"]


def test_a_timed_write_stops_at_its_budget(
    load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = load_command(SEEN)
    module = bot.module
    monkeypatch.setattr(module, "FLUSH_CHUNK", 2)
    monkeypatch.setattr(module, "FLUSH_BUDGET", 0.0)  # one chunk a time
    for i in range(5):
        bot.event("join", nick=f"user{i}", channel="#a")
    for written in (2, 4, 5):
        bot.advance(module.FLUSH_EVERY)
        assert len(bot.state) == written
    assert bot.say("!seen user4") == ["user4 was last seen just now, joining #a"]


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_what_waits_is_written_on_reload_and_when_the_bot_stops(
    load_command: LoadCommand, tmp_path: Path, isolated: bool
) -> None:
    db = tmp_path / "state.sqlite3"
    bot = load_command(SEEN, state_db=db, isolated=isolated)
    bot.event("join", nick="bob", channel="#a")
    assert "bob" not in bot.state
    bot.reload(force=True)  # the old version's teardown writes it
    assert bot.state["bob"]["channel"] == "#a"
    bot.event("quit", nick="carol", text="bye")
    bot.close()

    again = load_command(SEEN, state_db=db, isolated=isolated)
    assert again.state["carol"]["kind"] == "quit"
    assert again.say("!seen carol") == ["carol was last seen just now, quitting (bye)"]
