"""commands/karma.py: nick++ and nick--."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from bot.testing import LoadCommand

COMMANDS = Path(__file__).resolve().parents[1] / "commands"
KARMA = COMMANDS / "karma.py"


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
def test_votes(load_command: LoadCommand, text: str, expected: dict[str, int]) -> None:
    bot = load_command(KARMA)
    assert bot.module.votes(text) == expected
    assert bot.say(text, nick="zed") == []
    assert scores(bot.state) == expected


def test_votes_are_capped_per_message(load_command: LoadCommand) -> None:
    bot = load_command(KARMA)
    text = " ".join(f"n{i}++" for i in range(20))
    assert len(bot.module.votes(text)) == bot.module.MAX_PER_MESSAGE
    bot.say(text)
    assert len(scores(bot.state)) == bot.module.MAX_PER_MESSAGE


def test_give_and_look(load_command: LoadCommand) -> None:
    bot = load_command(KARMA)
    assert bot.say("bob++ nice one", nick="alice") == []
    bot.say("BOB++", nick="carol")
    bot.say("dave--", nick="carol")
    assert bot.say("!karma Bob") == ["Bob has 2 karma."]
    assert bot.say("!karma dave") == ["dave has -1 karma."]
    assert bot.say("!karma nobody") == ["nobody has 0 karma."]
    assert bot.say("!karma") == ["top karma: bob 2, dave -1"]


def scores(state: MutableMapping[str, Any]) -> dict[str, object]:
    return {k: v for k, v in state.items() if not k.startswith(":")}


def test_one_vote_per_name_and_message(load_command: LoadCommand) -> None:
    bot = load_command(KARMA)
    bot.say("bob++ bob++ bob++", nick="alice")
    assert scores(bot.state) == {"bob": 1}


def test_no_self_karma(load_command: LoadCommand) -> None:
    bot = load_command(KARMA)
    assert bot.say("alice++ bob++", nick="Alice") == ["Alice: no karma for yourself."]
    assert scores(bot.state) == {"bob": 1}


def test_not_in_private(load_command: LoadCommand) -> None:
    bot = load_command(KARMA)
    before = dict(bot.state)  # the empty index migrate made at load
    assert bot.say("bob++", channel=None) == []
    assert dict(bot.state) == before


def test_votes_per_user_are_capped_across_nick_changes(
    load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = load_command(KARMA)
    limit = bot.module.VOTES_PER_HOUR
    hosts = {f"voter{n}": "flood@host" for n in range(limit + 10)}
    bot.hosts.update({**hosts, "x": "someone@else"})
    for n in range(limit + 10):
        bot.say(f"name{n}++", nick=f"voter{n}")
    assert len(scores(bot.state)) == limit  # one user, however many nicks
    bot.say("other++", nick="x")
    assert bot.state["other"] == 1


def test_the_table_stops_growing_at_max_names(
    load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = load_command(KARMA)
    monkeypatch.setattr(bot.module, "MAX_NAMES", 3)
    bot.hosts.update({f"u{n}": f"u{n}@h" for n in range(5)} | {"late": "late@h"})
    for n in range(5):
        bot.say(f"n{n}++", nick=f"u{n}")
    bot.say("n0++", nick="late")
    assert scores(bot.state) == {"n0": 2, "n1": 1, "n2": 1}  # known names still count


def no_scan(*args: object, **kwargs: object) -> Any:
    raise AssertionError("the whole table was read")


def test_top_reads_a_small_index_built_once_by_migrate(
    load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = {f"n{i}": i for i in range(500)}  # a state from before the index
    bot = load_command(KARMA, state=old)  # loading it runs migrate
    assert bot.state[":top"][:2] == [["n499", 499], ["n498", 498]]
    assert bot.state[":names"] == 500
    with monkeypatch.context() as m:  # a state that fails if anyone reads all of it
        for name in ("copy", "items", "keys", "values", "__iter__"):
            m.setattr(type(bot.state), name, no_scan)
        assert bot.say("!karma") == ["top karma: n499 499, n498 498, n497 497, n496 496, n495 495"]
        assert bot.say("n0++ n0++ zed++") == []  # a vote keeps the index
        assert bot.state["n0"] == 1 and bot.state["zed"] == 1
        assert bot.state[":names"] == 501


def test_bad_input_and_empty(load_command: LoadCommand) -> None:
    bot = load_command(KARMA)
    assert bot.say("!karma") == ["nobody has any karma yet."]
    assert bot.say("!karma a b") == ["usage: karma [NICK]"]


# -- through the bot (bot.testing) -----------------------------------------------------


def test_karma_through_the_bot(load_command: LoadCommand, tmp_path: Path) -> None:
    bot = load_command(KARMA, state_db=tmp_path / "state.sqlite3")
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
    bot = load_command(KARMA)
    assert bot.event("action", nick="alice", text="thanks bob++ for the fix") == []
    assert bot.event("action", nick="bob", text="gives bob++") == ["bob: no karma for yourself."]
    assert bot.event("action", nick="carol", channel=None, text="bob++") == []
    assert bot.say("!karma bob") == ["bob has 1 karma."]
