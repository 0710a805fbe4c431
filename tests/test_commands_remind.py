"""commands/remind.py: reminders that survive reloads and restarts, and fire once."""

from __future__ import annotations

import types
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from clocks import WallClock

from bot.api import command_spec

if TYPE_CHECKING:
    from bot.testing import CommandBot, LoadCommand

COMMANDS = Path(__file__).resolve().parents[1] / "commands"
REMIND = COMMANDS / "remind.py"


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    return WallClock(monkeypatch)


@pytest.fixture
def bot(load_command: LoadCommand, wall: WallClock) -> CommandBot:
    """remind.py in a bot whose wall clock follows its fake clock."""
    loaded = load_command(REMIND)
    wall.follow(loaded)
    return loaded


def reminders_said(bot: CommandBot) -> list[tuple[str, str]]:
    return [(s.target, s.text) for s in bot.sent if ": reminder: " in s.text]


def test_fires_once_at_the_due_time(bot: CommandBot) -> None:
    assert bot.say("!remind 10m tea is ready") == ["ok, I'll remind you in 10m (#1)."]
    assert bot.advance(599) == []
    assert bot.advance(1) == ["alice: reminder: tea is ready"]
    assert reminders_said(bot) == [("#test", "alice: reminder: tea is ready")]
    assert bot.advance(3600) == []
    assert len(reminders_said(bot)) == 1
    assert not any(k.startswith("r:") for k in bot.state)


def test_private_reminders_go_to_the_nick(bot: CommandBot) -> None:
    bot.say("!remind me in 1h30m stand up", nick="bob", channel=None)
    assert bot.advance(5400) == ["bob: reminder: stand up"]
    assert reminders_said(bot) == [("bob", "bob: reminder: stand up")]


def test_reload_in_between_fires_exactly_once(bot: CommandBot) -> None:
    bot.say("!remind 1d30m one")
    bot.say("!remind 45s two")
    bot.advance(30)
    handles = [bot.module._bot]  # each version's handle (what its setup got)
    for _ in range(10):
        bot.reload(force=True)
        handles.append(bot.module._bot)
        assert bot.advance(1) == []
    assert len(set(map(id, handles))) == 11
    # the two reminders and the sweep, not thirty: replaced versions keep no timers
    assert [len(h._timers) for h in handles[:-1]] == [0] * 10
    assert sum(1 for t in handles[-1]._timers if not t.cancelled) == 3
    assert bot.advance(86400 + 1800) == ["alice: reminder: two", "alice: reminder: one"]
    assert reminders_said(bot) == [
        ("#test", "alice: reminder: two"),
        ("#test", "alice: reminder: one"),
    ]


def test_added_during_a_reload_is_caught_by_the_sweep(bot: CommandBot) -> None:
    old = bot.module
    bot.reload(force=True)
    # The old version's command runs after the new one's setup. bot.testing cannot
    # interleave a call with a reload, so the old code is called with a minimal
    # stand-in for its Context (the bot's real state).
    ctx = types.SimpleNamespace(
        nick="alice", channel="#test", user_id="", is_admin=False, state=bot.state
    )
    spec = command_spec(old.remind)
    assert spec is not None
    assert spec.func(ctx, "5s late one") == "ok, I'll remind you in 5s (#1)."
    assert bot.advance(5) == []  # the old version's timer never runs
    assert bot.advance(60) == ["alice: reminder: late one"]  # the new version's sweep
    assert reminders_said(bot) == [("#test", "alice: reminder: late one")]


def test_restart_reschedules_and_overdue_ones_fire_late(
    load_command: LoadCommand, wall: WallClock, tmp_path: Path
) -> None:
    db = tmp_path / "state.sqlite3"
    bot = load_command(REMIND, state_db=db)
    wall.follow(bot)
    bot.say("!remind 2m soon")
    bot.say("!remind 2h later")
    bot.close()  # the process stops
    wall.follow(bot)  # its clock stands still
    wall.skip(3600)  # an hour of downtime
    again = load_command(REMIND, state_db=db)
    wall.follow(again)
    assert again.advance(0) == ["alice: reminder: soon (sorry, 58m late)"]
    assert again.advance(3600) == ["alice: reminder: later"]


def test_list_and_cancel(bot: CommandBot, monkeypatch: pytest.MonkeyPatch) -> None:
    bot.hosts.update({"bob": "bob@elsewhere.invalid"})
    bot.say("!remind 10m tea")
    bot.say("!remind 5m coffee")
    bot.say("!remind 1h not mine", nick="bob")
    assert bot.say("!reminders") == ["#2 in 5m: coffee", "#1 in 10m: tea"]
    assert bot.say("!remind cancel 3") == ["remind: you have no reminder 3"]
    assert bot.say("!remind cancel #1") == ["ok, forgot reminder #1."]
    assert bot.advance(3600) == ["alice: reminder: coffee", "bob: reminder: not mine"]
    assert reminders_said(bot) == [
        ("#test", "alice: reminder: coffee"),
        ("#test", "bob: reminder: not mine"),
    ]
    assert bot.say("!reminders") == ["you have no reminders pending."]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("", "{usage}"),
        ("10m", "{usage}"),
        ("soon do it", "remind: 'soon' is not a time; {usage}"),
        ("10 do it", "remind: '10' is not a time; {usage}"),
        ("0s now", "remind: pick a time between 1s and 365d"),
        ("53w too late", "remind: pick a time between 1s and 365d"),
    ],
)
def test_bad_input(bot: CommandBot, args: str, message: str) -> None:
    assert bot.say(f"!remind {args}".strip()) == [message.format(usage=bot.module.USAGE)]
    assert dict(bot.state) == {}


def test_pending_reminders_are_bounded(bot: CommandBot, monkeypatch: pytest.MonkeyPatch) -> None:
    bot.hosts.update({"bob": "bob@elsewhere.invalid"})
    for i in range(20):
        bot.say(f"!remind 1h number {i}")
    assert bot.say("!remind 1h one too many") == ["remind: you already have 20 reminders pending"]
    assert bot.say("!remind 1h bob's own", nick="bob") == ["ok, I'll remind you in 1h (#21)."]


def test_the_bound_is_per_user_not_per_nick(
    bot: CommandBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot.hosts.update({"bob": "bob@elsewhere.invalid", "carol": "carol@home.invalid"})
    for i in range(20):  # alice0..alice19 (and alice_): bot.testing's one user@host
        bot.say(f"!remind 1h number {i}", nick=f"alice{i}")
    assert bot.say("!remind 1h a new nick does not help", nick="alice_") == [
        "remind: you already have 20 reminders pending"
    ]
    monkeypatch.setattr(bot.module, "MAX_TOTAL", 21)
    assert bot.say("!remind 1h bob's own", nick="bob") == ["ok, I'll remind you in 1h (#21)."]
    assert bot.say("!remind 1h carol's", nick="carol") == [
        "remind: too many reminders pending; try again later"
    ]


# -- through the bot (bot.testing) -----------------------------------------------------


def test_fires_once_through_the_bot_with_a_reload_in_between(bot: CommandBot) -> None:
    assert bot.say("!remind 10m stretch") == ["ok, I'll remind you in 10m (#1)."]
    assert bot.advance(300) == []
    bot.reload(force=True)
    assert bot.advance(299) == []
    assert bot.advance(1) == ["alice: reminder: stretch"]
    assert bot.advance(7200) == []
    assert reminders_said(bot) == [("#test", "alice: reminder: stretch")]


def test_ten_reloads_no_duplicates_through_the_bot(bot: CommandBot) -> None:
    bot.say("!remind 1h one")
    bot.say("!remind 2h two", nick="bob", channel=None)
    for _ in range(10):
        bot.advance(60)
        bot.reload(force=True)
    assert bot.advance(2 * 3600) == ["alice: reminder: one", "bob: reminder: two"]
    assert reminders_said(bot) == [
        ("#test", "alice: reminder: one"),
        ("bob", "bob: reminder: two"),
    ]
    assert bot.say("!reminders") == ["you have no reminders pending."]


def test_survives_a_restart_through_the_bot(
    load_command: LoadCommand, wall: WallClock, tmp_path: Path
) -> None:
    db = tmp_path / "state.sqlite3"
    bot = load_command(REMIND, state_db=db)
    wall.follow(bot)
    bot.say("!remind 30m soon")
    bot.say("!remind 1d later")
    bot.say("!remind 5m cancelled")
    assert bot.say("!remind cancel 3") == ["ok, forgot reminder #3."]
    bot.advance(600)
    bot.close()
    wall.follow(bot)  # the bot is down: its clock stands still, and so does the wall clock

    again = load_command(REMIND, state_db=db)
    wall.follow(again)
    assert again.say("!reminders") == ["#1 in 20m: soon", "#2 in 23h 50m: later"]
    assert again.advance(1200) == ["alice: reminder: soon"]
    assert again.advance(86400) == ["alice: reminder: later"]
    assert again.say("!remind soon-ish do it") == [
        "remind: 'soon-ish' is not a time; " + again.module.USAGE
    ]
