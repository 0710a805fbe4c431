"""commands/remind.py: reminders that survive reloads and restarts, and fire once."""

from __future__ import annotations

import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from command_fakes import COMMANDS, FakeBot, FakeClock, FakeContext, WallClock, load, run

from bot.api import CommandError

if TYPE_CHECKING:
    from bot.testing import LoadCommand


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock(monkeypatch)


class Version:
    """One loaded version of remind.py with its live handle."""

    def __init__(self, clock: FakeClock, state: dict[str, Any]) -> None:
        self.module: types.ModuleType = load("remind")
        self.bot = FakeBot(clock, state, "remind")
        self.module.setup(self.bot)

    def reload(self) -> Version:
        new = Version(self.bot.clock, self.bot.state)
        self.bot.retire()
        return new

    def remind(
        self, args: str, nick: str = "alice", channel: str | None = "#test", user: str = ""
    ) -> list[str]:
        ctx = FakeContext(nick=nick, channel=channel, state=self.bot.state, user_id=user)
        return run(self.module, "remind", args, ctx)


def test_fires_once_at_the_due_time(clock: FakeClock) -> None:
    v = Version(clock, {})
    assert v.remind("10m tea is ready") == ["ok, I'll remind you in 10m (#1)."]
    clock.advance(599)
    assert v.bot.said == []
    clock.advance(1)
    assert v.bot.said == [("#test", "alice: reminder: tea is ready")]
    clock.advance(3600)
    assert len(v.bot.said) == 1
    assert not any(k.startswith("r:") for k in v.bot.state)


def test_private_reminders_go_to_the_nick(clock: FakeClock) -> None:
    v = Version(clock, {})
    v.remind("me in 1h30m stand up", nick="bob", channel=None)
    clock.advance(5400)
    assert v.bot.said == [("bob", "bob: reminder: stand up")]


def test_reload_in_between_fires_exactly_once(clock: FakeClock) -> None:
    state: dict[str, Any] = {}
    v = Version(clock, state)
    versions = [v]
    v.remind("1d30m one")
    v.remind("45s two")
    clock.advance(30)
    for _ in range(10):
        v = v.reload()
        versions.append(v)
        clock.advance(1)
    assert v.bot.pending() == 3  # the two reminders and the sweep, not thirty
    clock.advance(86400 + 1800)
    assert [said for old in versions[:-1] for said in old.bot.said] == []
    assert v.bot.said == [("#test", "alice: reminder: two"), ("#test", "alice: reminder: one")]


def test_added_during_a_reload_is_caught_by_the_sweep(clock: FakeClock) -> None:
    state: dict[str, Any] = {}
    old = Version(clock, state)
    new = old.reload()
    old.remind("5s late one")  # the old version's command ran after the new one's setup
    clock.advance(5)
    assert new.bot.said == []
    clock.advance(60)
    assert new.bot.said == [("#test", "alice: reminder: late one")]
    assert old.bot.said == []


def test_restart_reschedules_and_overdue_ones_fire_late(clock: FakeClock) -> None:
    state: dict[str, Any] = {}
    v = Version(clock, state)
    v.remind("2m soon")
    v.remind("2h later")
    v.bot.retire()  # the process stops
    clock.advance(3600)  # an hour of downtime
    again = Version(clock, state)
    clock.advance(0)
    assert again.bot.said == [("#test", "alice: reminder: soon (sorry, 58m late)")]
    clock.advance(3600)
    assert again.bot.said[1:] == [("#test", "alice: reminder: later")]


def test_list_and_cancel(clock: FakeClock) -> None:
    v = Version(clock, {})
    v.remind("10m tea")
    v.remind("5m coffee")
    v.remind("1h not mine", nick="bob")
    ctx = FakeContext(nick="alice", state=v.bot.state)
    assert run(v.module, "reminders", "", ctx) == ["#2 in 5m: coffee", "#1 in 10m: tea"]
    with pytest.raises(CommandError, match="you have no reminder 3"):
        v.remind("cancel 3")
    assert v.remind("cancel #1") == ["ok, forgot reminder #1."]
    clock.advance(3600)
    assert v.bot.said == [
        ("#test", "alice: reminder: coffee"),
        ("#test", "bob: reminder: not mine"),
    ]
    assert run(v.module, "reminders", "", ctx) == ["you have no reminders pending."]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("", "usage: remind IN MESSAGE"),
        ("10m", "usage: remind IN MESSAGE"),
        ("soon do it", "'soon' is not a time"),
        ("10 do it", "'10' is not a time"),
        ("0s now", "between 1s and 365d"),
        ("53w too late", "between 1s and 365d"),
    ],
)
def test_bad_input(clock: FakeClock, args: str, message: str) -> None:
    v = Version(clock, {})
    with pytest.raises(CommandError, match=message):
        v.remind(args)
    assert v.bot.state == {}


def test_pending_reminders_are_bounded(clock: FakeClock) -> None:
    v = Version(clock, {})
    for i in range(20):
        v.remind(f"1h number {i}")
    with pytest.raises(CommandError, match="already have 20 reminders"):
        v.remind("1h one too many")
    v.remind("1h bob's own", nick="bob")


def test_the_bound_is_per_user_not_per_nick(clock: FakeClock, monkeypatch) -> None:
    v = Version(clock, {})
    for i in range(20):
        v.remind(f"1h number {i}", nick=f"alice{i}", user="alice@home")
    with pytest.raises(CommandError, match="already have 20 reminders"):
        v.remind("1h a new nick does not help", nick="alice_", user="alice@home")
    monkeypatch.setattr(v.module, "MAX_TOTAL", 21)
    v.remind("1h bob's own", nick="bob")
    with pytest.raises(CommandError, match="too many reminders pending"):
        v.remind("1h carol's", nick="carol")


# -- through the bot (bot.testing) -----------------------------------------------------


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    return WallClock(monkeypatch)


def test_fires_once_through_the_bot_with_a_reload_in_between(
    load_command: LoadCommand, wall: WallClock
) -> None:
    bot = load_command(COMMANDS / "remind.py")
    wall.follow(bot)
    assert bot.say("!remind 10m stretch") == ["ok, I'll remind you in 10m (#1)."]
    assert bot.advance(300) == []
    bot.reload(force=True)
    assert bot.advance(299) == []
    assert bot.advance(1) == ["alice: reminder: stretch"]
    assert bot.advance(7200) == []
    assert [(s.target, s.text) for s in bot.sent if "reminder:" in s.text] == [
        ("#test", "alice: reminder: stretch")
    ]


def test_ten_reloads_no_duplicates_through_the_bot(
    load_command: LoadCommand, wall: WallClock
) -> None:
    bot = load_command(COMMANDS / "remind.py")
    wall.follow(bot)
    bot.say("!remind 1h one")
    bot.say("!remind 2h two", nick="bob", channel=None)
    for _ in range(10):
        bot.advance(60)
        bot.reload(force=True)
    assert bot.advance(2 * 3600) == ["alice: reminder: one", "bob: reminder: two"]
    assert [(s.target, s.text) for s in bot.sent if "reminder:" in s.text] == [
        ("#test", "alice: reminder: one"),
        ("bob", "bob: reminder: two"),
    ]
    assert bot.say("!reminders") == ["you have no reminders pending."]


def test_survives_a_restart_through_the_bot(
    load_command: LoadCommand, wall: WallClock, tmp_path: Path
) -> None:
    db = tmp_path / "state.sqlite3"
    bot = load_command(COMMANDS / "remind.py", state_db=db)
    wall.follow(bot)
    bot.say("!remind 30m soon")
    bot.say("!remind 1d later")
    bot.say("!remind 5m cancelled")
    assert bot.say("!remind cancel 3") == ["ok, forgot reminder #3."]
    bot.advance(600)
    bot.close()
    wall.follow(bot)  # the bot is down: its clock stands still, and so does the wall clock

    again = load_command(COMMANDS / "remind.py", state_db=db)
    wall.follow(again)
    assert again.say("!reminders") == ["#1 in 20m: soon", "#2 in 23h 50m: later"]
    assert again.advance(1200) == ["alice: reminder: soon"]
    assert again.advance(86400) == ["alice: reminder: later"]
    assert again.say("!remind soon-ish do it") == [
        "remind: 'soon-ish' is not a time; " + again.module.USAGE
    ]
