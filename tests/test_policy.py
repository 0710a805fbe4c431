"""Channel entries, ``permissions:`` and the refusal gate (bot.policy), without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.builtins import NAMES, Builtins
from bot.config import _ALWAYS_ON, ConfigError, parse_config
from bot.ignores import Ignores
from bot.message import Message, Source
from bot.policy import Policy

BASE: dict[str, Any] = {
    "server": {"host": "127.0.0.1"},
    "nick": "bot",
    "channels": ["#a"],
    "prefix": "!",
    "admins": ["boss!*@boss.example"],
    "commands_dir": "commands",
}


def config(**keys: Any):  # type: ignore[no-untyped-def]
    return parse_config(yaml.safe_dump({**BASE, **keys}, sort_keys=False), base_dir=Path("/"))


def problem(**keys: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        config(**keys)
    return str(caught.value)


def test_channel_entries_may_be_names_or_mappings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B_KEY", "sesame")
    entry = {"name": "#B", "key": "${B_KEY}", "disable": ["Karma"], "modules": {"w": {"u": 1}}}
    parsed = config(channels=["#a", entry])
    assert parsed.channels == ("#a", "#B")
    options = parsed.channel_options["#b"]
    assert (options.key, options.disable, options.modules) == ("sesame", {"karma"}, {"w": {"u": 1}})
    assert parsed.channel_options["#a"].key is None
    assert parsed.lines["channels[1].modules.w.u"] == 12  # for messages about that override


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ({"key": "k"}, "config.yaml:6: channels[1].name: missing"),
        ({"name": "#b", "colour": 1}, "channels[1].colour: unknown key"),
        ({"name": "#b", "disable": ["reload"]}, "'reload' is an admin command; it cannot be"),
        ({"name": "#b", "disable": ["no spaces"]}, "channels[1].disable[0]: expected a module"),
        ({"name": "#b", "key": "${NOT_SET_ANYWHERE}"}, "NOT_SET_ANYWHERE is not set"),
        ({"name": "#b", "key": "two words"}, "channels[1].key: expected a key without spaces"),
        ({"name": "#A"}, "config.yaml:6: channels[1]: #A is listed twice (channels[0])"),
    ],
)
def test_a_wrong_channel_entry_is_named(entry: dict[str, Any], said: str) -> None:
    assert said in problem(channels=["#a", entry])


def test_every_admin_builtin_stays_on() -> None:
    """``disable:`` refuses exactly the built-ins only admins may run."""

    class Nothing:
        pass

    admin_only = {spec.name for spec in Builtins(Nothing()).specs() if spec.admin}  # type: ignore[arg-type]
    assert admin_only == set(_ALWAYS_ON) and admin_only <= NAMES


def test_permissions_are_levels_masks_or_accounts() -> None:
    parsed = config(permissions={"Quote": ["op", "voice", "a!*@h.example", "account:bob"]})
    grants = parsed.permissions["quote"]
    assert [g.level for g in grants] == ["op", "voice", None, None]
    assert "a bare nick, which anyone can take" in problem(permissions={"quote": ["alice"]})
    assert "permissions.quote[0]: 'x!*@*' matches anyone" in problem(
        permissions={"quote": ["x!*@*"]}
    )
    assert "permissions.quote: expected a list" in problem(permissions={"quote": "op"})


class Said:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, target: str, text: str) -> None:
        self.lines.append((target, text))


def policy(**keys: Any) -> tuple[Policy, Said, Said]:
    parsed = config(**keys)
    store: dict[str, Any] = {}
    said, noticed = Said(), Said()
    return Policy(lambda: parsed, Ignores(lambda: store), said, noticed), said, noticed


def message(nick: str = "u", text: str = "!x", channel: str = "#a", **source: Any) -> Message:
    who = Source(
        nick, source.get("user", "u"), source.get("host", "h.example"), source.get("account")
    )
    return Message(source=who, target=channel, text=text, is_private=False, tags={})


def test_off_in_one_channel_by_module_or_command() -> None:
    gate, _, _ = policy(channels=["#a", {"name": "#b", "disable": ["karma", "echo"]}])
    assert gate.off("#B", "karma") and gate.off("#b", "other", "echo")
    assert not gate.off("#a", "karma") and not gate.off(None, "karma", "echo")
    assert not gate.off("#b", "other", "other")


def test_permitted_by_level_in_the_channel_by_mask_and_by_account() -> None:
    gate, _, _ = policy(permissions={"q": ["halfop", "f!*@friend.example", "account:Bob"]})
    assert gate.permitted(message(), "other", frozenset()) is None  # not listed: everyone
    assert gate.permitted(message(), "q", frozenset("v")) == "needs halfop in this channel"
    assert gate.permitted(message(), "q", frozenset("h")) is None
    assert gate.permitted(message(), "Q", frozenset("o")) is None  # an op is above halfop
    assert gate.permitted(message("F", host="friend.example"), "q", frozenset()) is None
    assert gate.permitted(message(account="bob"), "q", frozenset()) is None
    only_masks, _, _ = policy(permissions={"q": ["account:bob"]})
    assert only_masks.permitted(message(), "q", frozenset("o")) == "is not for you"


def test_refusals_are_said_once_per_user_per_window_and_a_few_overall() -> None:
    gate, said, _ = policy(command_rate={"per_channel": 3, "window": 60})
    for _ in range(5):
        gate.refuse(message("u1", user="a"), "no")
    assert said.lines == [("#a", "u1: no")]
    for n in range(2, 9):
        gate.refuse(message(f"u{n}", user=f"u{n}"), "no")
    assert len(said.lines) == 3  # per_channel refusals at most, for everyone together
    gate.refuse(message("boss", user="b"), "busy", admin=True)
    assert said.lines[-1] == ("#a", "boss: busy")  # an admin is always told


def test_a_flooder_is_ignored_and_told_once() -> None:
    gate, _, noticed = policy(command_rate={"per_user": 2, "window": 60, "ignore_for": 30})
    flooder = message("f", user="f", host="flood.example")
    assert [gate.within_rate(flooder, "x") for _ in range(3)] == [True, True, False]
    assert noticed.lines == [("f", "Too many commands: you are ignored for 30 s.")]
    assert gate.ignored(flooder.source)
