"""Channel entries and permissions through IRC (ngircd): a keyed channel joined with its key,
a module turned off in one channel only, per-channel module settings (in-process and
isolated), ``permissions:`` by channel mode and by mask, all changed live."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.integration

SETTINGS = '''
from dataclasses import dataclass
from typing import Literal

from bot.api import command


@dataclass(frozen=True)
class Settings:
    units: Literal["metric", "imperial"] = "metric"


@command
def {name}(ctx, args):
    """{name} -- its units here"""
    return f"{name} in {{ctx.settings.units}}"
'''

KARMA = '''
from bot.api import command, on_message


@on_message(r"\\+\\+")
def vote(ctx, match):
    ctx.state["votes"] = ctx.state.get("votes", 0) + 1


@command
def karma(ctx, args):
    """karma -- votes counted"""
    return f"votes: {ctx.state.get('votes', 0)}"
'''

ECHO = '''
from bot.api import command


@command
def echo(ctx, args):
    """echo TEXT -- TEXT"""
    return args
'''


def _fence(bot, client, channel: str) -> list[str]:  # type: ignore[no-untyped-def]
    """What the bot said in ``channel`` up to its answer to a fresh ``!echo`` there."""
    token = uuid.uuid4().hex[:8]
    mark = client.mark()
    client.privmsg(channel, f"!echo {token}")
    bot.wait_reply(client, mark, rf"^{token}$", target=channel)
    return bot.replies(client, mark, target=channel)


def test_a_channel_entry_with_key_switches_and_overrides(
    running_bot, irc_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyed = f"#key{uuid.uuid4().hex[:6]}"
    chanop = irc_client("chanop")
    chanop.join(keyed)  # first in: its operator
    mark = chanop.mark()
    chanop.send(f"MODE {keyed} +k letmein")
    chanop.wait_for(lambda raw: " MODE " in raw and "+k" in raw, since=mark)
    monkeypatch.setenv("KEYED_CHANNEL_KEY", "letmein")
    entry = {
        "name": keyed,
        "key": "${KEYED_CHANNEL_KEY}",
        "disable": ["karma"],
        "modules": {"weather": {"units": "imperial"}, "wind": {"units": "imperial"}},
    }
    files = {
        "weather.py": SETTINGS.format(name="weather"),
        "wind.py": SETTINGS.format(name="wind"),
        "karma.py": KARMA,
        "echo.py": ECHO,
    }
    # joined at start-up: the key was sent, or +k would have kept the bot out
    bot = running_bot(files, channels=(entry,), isolate=["wind"], notify=True, watch=True)
    user = irc_client("user")
    user.join(bot.channel)
    mark = user.mark()
    user.send(f"JOIN {keyed} letmein")
    user.wait_for(lambda raw: " JOIN " in raw and keyed in raw, since=mark)

    # turned off there, and there only: no command, no listener
    user.privmsg(keyed, "alice++")
    assert not [r for r in _fence(bot, user, keyed)[:-1] if r]
    user.privmsg(keyed, "!karma")
    assert _fence(bot, user, keyed)[:-1] == []
    assert bot.ask(user, "!karma") == "votes: 0"  # the vote in the keyed channel never counted
    user.privmsg(bot.channel, "bob++")
    _fence(bot, user, bot.channel)
    assert bot.ask(user, "!karma") == "votes: 1"

    # settings overridden there, for an in-process and an isolated module
    assert bot.ask(user, "!weather") == "weather in metric"
    assert bot.ask(user, "!wind") == "wind in metric"
    mark = user.mark()
    user.privmsg(keyed, "!weather")
    assert bot.wait_reply(user, mark, target=keyed) == "weather in imperial"
    mark = user.mark()
    user.privmsg(keyed, "!wind")
    assert bot.wait_reply(user, mark, target=keyed) == "wind in imperial"

    # a live change: karma back on there, a wrong override refused with its line
    mark = user.mark()
    bot.write_config(channels=[bot.channel, {**entry, "disable": []}])
    assert bot.wait_reply(user, mark, r"^config.yaml: ") == "config.yaml: applied channels"
    mark = user.mark()
    user.privmsg(keyed, "!karma")
    assert bot.wait_reply(user, mark, target=keyed) == "votes: 1"
    mark = user.mark()
    wrong = {**entry, "modules": {"weather": {"units": "kelvin"}}}
    bot.write_config(channels=[bot.channel, wrong])
    refusal = bot.wait_reply(user, mark, r"^config.yaml: ")
    assert refusal.startswith("config.yaml: not applied, old config kept: config.yaml:")
    assert "channels[1].modules.weather.units: expected one of metric, imperial" in refusal
    mark = user.mark()
    user.privmsg(keyed, "!weather")
    assert bot.wait_reply(user, mark, target=keyed) == "weather in imperial"


def test_permissions_by_channel_mode_and_by_mask(running_bot, irc_client) -> None:
    channel = f"#perm{uuid.uuid4().hex[:6]}"
    chanop = irc_client("chanop")
    chanop.join(channel)
    bot = running_bot(
        {"echo.py": ECHO},
        channels=(channel,),
        permissions={"echo": ["voice", "friend*!*@127.0.0.1"]},
    )
    user = irc_client("user")
    user.join(channel)
    friend = irc_client("friend")
    friend.join(channel)
    bot.wait_until(lambda: user.nick.lower() in bot.app.connection.members.members(channel), "JOIN")

    def ask(client, text):  # type: ignore[no-untyped-def]
        mark = client.mark()
        client.privmsg(channel, text)
        return bot.wait_reply(client, mark, rf"^({client.nick}: |{text[6:]}$)", target=channel)

    assert ask(user, "!echo hi") == f"{user.nick}: !echo needs voice in this channel"
    assert ask(friend, "!echo by mask") == "by mask"
    mark = user.mark()
    chanop.send(f"MODE {channel} +v {user.nick}")
    user.wait_for(lambda raw: " MODE " in raw and "+v" in raw, since=mark)
    assert ask(user, "!echo voiced") == "voiced"
    assert ask(chanop, "!echo an op passes voice") == "an op passes voice"
    mark = user.mark()  # in private there are no channel modes: only masks and accounts
    user.privmsg(bot.app.nick, "!echo private")
    said = bot.wait_reply(user, mark, target=user.nick)
    assert said == f"{user.nick}: !echo needs voice in a channel: say it there"
