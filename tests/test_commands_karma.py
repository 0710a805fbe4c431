"""commands/karma.py: nick++ and nick--."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from command_fakes import COMMANDS, FakeContext, hear, load, run

from bot.api import CommandError

if TYPE_CHECKING:
    from bot.testing import LoadCommand

karma = load("karma")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bob++", {"bob": 1}),
        ("thanks bob++, and carol-- too", {"bob": 1, "carol": -1}),
        ("Bob++ bob++ BOB++", {"bob": 1}),
        ("bob++ bob--", {}),
        ("(Nick[away]++)", {"nick{away}": 1}),
        ("i <3 c++", {"c": 1}),
        ("x = y++z", {}),
        ("--", {}),
        ("a-b--", {"a-b": -1}),
        ("no votes here", {}),
    ],
)
def test_votes(text: str, expected: dict[str, int]) -> None:
    assert karma.votes(text) == expected


def test_votes_are_capped_per_message() -> None:
    assert len(karma.votes(" ".join(f"n{i}++" for i in range(20)))) == karma.MAX_PER_MESSAGE


def test_give_and_look() -> None:
    state: dict[str, object] = {}
    assert hear(karma, "bob++ nice one", FakeContext(nick="alice", state=state)) == []
    hear(karma, "BOB++", FakeContext(nick="carol", state=state))
    hear(karma, "dave--", FakeContext(nick="carol", state=state))
    assert run(karma, "karma", "Bob", FakeContext(state=state)) == ["Bob has 2 karma."]
    assert run(karma, "karma", "dave", FakeContext(state=state)) == ["dave has -1 karma."]
    assert run(karma, "karma", "nobody", FakeContext(state=state)) == ["nobody has 0 karma."]
    assert run(karma, "karma", "", FakeContext(state=state)) == ["top karma: bob 2, dave -1"]


def scores(state: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in state.items() if not k.startswith(":")}


def test_one_vote_per_name_and_message() -> None:
    state: dict[str, object] = {}
    hear(karma, "bob++ bob++ bob++", FakeContext(nick="alice", state=state))
    assert scores(state) == {"bob": 1}


def test_no_self_karma() -> None:
    state: dict[str, object] = {}
    ctx = FakeContext(nick="Alice", state=state)
    assert hear(karma, "alice++ bob++", ctx) == ["Alice: no karma for yourself."]
    assert scores(state) == {"bob": 1}


def test_not_in_private() -> None:
    state: dict[str, object] = {}
    assert hear(karma, "bob++", FakeContext(channel=None, state=state)) == []
    assert state == {}


def test_votes_per_user_are_capped_across_nick_changes() -> None:
    state: dict[str, object] = {}
    for n in range(karma.VOTES_PER_HOUR + 10):
        hear(karma, f"name{n}++", FakeContext(nick=f"voter{n}", user_id="flood@host", state=state))
    assert len(scores(state)) == karma.VOTES_PER_HOUR  # one user, however many nicks
    hear(karma, "other++", FakeContext(nick="x", user_id="someone@else", state=state))
    assert state["other"] == 1


def test_the_table_stops_growing_at_max_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(karma, "MAX_NAMES", 3)
    state: dict[str, object] = {}
    for n in range(5):
        hear(karma, f"n{n}++", FakeContext(user_id=f"u{n}@h", state=state))
    hear(karma, "n0++", FakeContext(user_id="late@h", state=state))
    assert scores(state) == {"n0": 2, "n1": 1, "n2": 1}  # known names still count


class NoScan(dict):  # type: ignore[type-arg]
    """A state that fails if anyone reads all of it."""

    def items(self):  # type: ignore[no-untyped-def]
        raise AssertionError("the whole table was read")

    __iter__ = keys = values = items  # type: ignore[assignment]


def test_top_reads_a_small_index_built_once_by_migrate() -> None:
    old = {f"n{i}": i for i in range(500)}  # a state from before the index
    karma.migrate(old, None)
    assert old[":top"][:2] == [["n499", 499], ["n498", 498]] and old[":names"] == 500
    state = NoScan(old)
    assert run(karma, "karma", "", FakeContext(state=state)) == [
        "top karma: n499 499, n498 498, n497 497, n496 496, n495 495"
    ]
    hear(karma, "n0++ n0++ zed++", FakeContext(state=state))  # a vote keeps the index


def test_bad_input_and_empty() -> None:
    assert run(karma, "karma", "", FakeContext()) == ["nobody has any karma yet."]
    with pytest.raises(CommandError, match=r"usage: karma \[NICK\]"):
        run(karma, "karma", "a b", FakeContext())


# -- through the bot (bot.testing) -----------------------------------------------------


def test_karma_through_the_bot(load_command: LoadCommand, tmp_path: Path) -> None:
    bot = load_command(COMMANDS / "karma.py", state_db=tmp_path / "state.sqlite3")
    assert bot.say("bob++ for the fix", nick="alice") == []
    assert bot.say("bob++", nick="carol") == []
    assert bot.say("Alice++ carol--", nick="alice") == ["alice: no karma for yourself."]
    assert bot.say("bob++", nick="bob") == ["bob: no karma for yourself."]
    assert bot.say("bob++", nick="alice", channel=None) == []
    assert bot.say("!karma bob") == ["bob has 2 karma."]
    assert bot.say("!karma alice") == ["alice has 0 karma."]
    bot.reload(force=True)
    assert bot.say("!karma") == ["top karma: bob 2, carol -1"]


def test_votes_in_actions_count_in_channels(load_command: LoadCommand) -> None:
    bot = load_command(COMMANDS / "karma.py")
    assert bot.event("action", nick="alice", text="thanks bob++ for the fix") == []
    assert bot.event("action", nick="bob", text="gives bob++") == ["bob: no karma for yourself."]
    assert bot.event("action", nick="carol", channel=None, text="bob++") == []
    assert bot.say("!karma bob") == ["bob has 1 karma."]
