"""commands/seen.py: when a nick was last around."""

from __future__ import annotations

import pytest
from command_fakes import FakeClock, FakeContext, happen, hear, load, run

from bot.api import CommandError, Event

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
