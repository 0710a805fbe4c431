"""Speaking IRC the way clients expect, through ngircd: CTCP queries answered as
notices (and limited), /me seen by listeners, ctx.action and ctx.notice, commands
addressed by nick or said without the prefix in private, a private !tell told in
private."""

from __future__ import annotations

from pathlib import Path

import pytest
from ircclient import parse

pytestmark = pytest.mark.integration

COMMANDS = Path(__file__).resolve().parents[1] / "commands"

SPEAKER = '''
from bot.api import command, on_event


@command
def wave(ctx, args):
    """wave -- an action here, and a notice to you"""
    ctx.action(f"waves at {ctx.nick}")
    ctx.notice("only you see this")


@command
def echo(ctx, args):
    """echo TEXT -- TEXT"""
    return args


@on_event("action")
def saw(ctx, event):
    if "pokes the bot" in event.text:
        return f"{event.nick} did: {event.text} (in {event.channel})"
'''


def _notice(client, since: int, bot_nick: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        parse(raw).params[1]
        for raw in client.lines_since(since)
        if parse(raw).command == "NOTICE" and parse(raw).nick == bot_nick
    ]


def test_ctcp_queries_are_answered_as_notices(running_bot, irc_client) -> None:
    bot = running_bot({"speaker.py": SPEAKER}, ctcp={"version": "testbot 9"})
    user = irc_client("user")
    mark = user.mark()
    user.privmsg(bot.nick, "\x01VERSION\x01")
    user.wait_for(lambda raw: "\x01VERSION " in raw, since=mark)
    assert _notice(user, mark, bot.nick) == ["\x01VERSION testbot 9\x01"]
    other = irc_client("other")
    mark = other.mark()
    other.privmsg(bot.nick, "\x01PING 1234567\x01")
    other.privmsg(bot.nick, "\x01PING again\x01")  # within 2 s: not answered
    assert bot.ask(other, "!echo fence", private=True) == "fence"
    assert _notice(other, mark, bot.nick) == ["\x01PING 1234567\x01"]


def test_actions_reach_listeners_and_modules_can_act_and_notice(running_bot, irc_client) -> None:
    bot = running_bot({"speaker.py": SPEAKER})
    user = irc_client("user")
    user.join(bot.channel)
    mark = user.mark()
    user.privmsg(bot.channel, "\x01ACTION pokes the bot\x01")
    said = bot.wait_reply(user, mark, "did:")
    assert said == f"{user.nick} did: pokes the bot (in {bot.channel})"
    mark = user.mark()
    user.privmsg(bot.channel, "!wave")
    assert bot.wait_reply(user, mark) == f"\x01ACTION waves at {user.nick}\x01"
    user.wait_for(lambda raw: "only you see this" in raw, since=mark)
    notice = next(parse(r) for r in user.lines_since(mark) if "only you see this" in r)
    assert notice.command == "NOTICE" and notice.params[0] == user.nick


def test_commands_by_nick_and_without_prefix_in_private(running_bot, irc_client) -> None:
    bot = running_bot({"speaker.py": SPEAKER})
    user = irc_client("user")
    user.join(bot.channel)
    assert bot.ask(user, f"{bot.nick}: echo hi") == "hi"
    assert bot.ask(user, f"{bot.nick.upper()}, echo there") == "there"
    assert bot.ask(user, f"{bot.nick}: !echo with prefix") == "with prefix"
    assert bot.ask(user, "echo private", private=True) == "private"
    bot.write_config(addressing={"nick": False, "private": False})
    bot.wait_until(lambda: not bot.app.config.addressing.nick, "the config change")
    mark = user.mark()
    user.privmsg(bot.channel, f"{bot.nick}: echo ignored")
    user.privmsg(bot.nick, "echo ignored too")
    assert bot.ask(user, "!echo fence") == "fence"
    assert bot.ask(user, "!echo fence2", private=True) == "fence2"
    assert "ignored" not in " ".join(bot.replies(user, mark) + bot.replies(user, mark, user.nick))


def test_a_tell_left_in_private_is_delivered_in_private(running_bot, irc_client) -> None:
    files = {name: (COMMANDS / name).read_text() for name in ("tell.py", "_common.py")}
    bot = running_bot({**files, "speaker.py": SPEAKER})
    carol, dave = irc_client("carol"), irc_client("dave")
    for client in (carol, dave):
        client.join(bot.channel)
    answer = bot.ask(dave, f"!tell {carol.nick} another", private=True)
    assert answer == f"ok, I'll tell {carol.nick} when they next speak."
    mark = carol.mark()
    carol.privmsg(bot.channel, "hello")
    told = bot.wait_reply(carol, mark, "told you", target=carol.nick)
    assert told == f"{carol.nick}: {dave.nick} told you just now: another"
    assert bot.ask(carol, "!echo fence") == "fence"
    assert not [t for t in bot.replies(carol, mark) if "told you" in t]  # not in the channel


WATCHER = '''
from bot.api import command, on_event


@on_event("quit")
def gone(ctx, event):
    ctx.state["quits"] = ctx.state.get("quits", 0) + 1


@command
def quits(ctx, args):
    """quits -- how many quits the bot saw"""
    return f"quits: {ctx.state.get('quits', 0)}"


@command
def whoami(ctx, args):
    """whoami -- who the bot thinks you are"""
    return f"you are {ctx.user_id}"
'''


@pytest.mark.services
def test_echo_message_and_chghost_on_inspircd(ircnet, running_bot, irc_client) -> None:
    bot = running_bot({"speaker.py": SPEAKER, "watcher.py": WATCHER}, server=ircnet)
    assert {"echo-message", "chghost"} <= bot.app.connection.caps
    user = irc_client("user", server=ircnet)
    user.join(bot.channel)
    mark = user.mark()
    user.privmsg(bot.channel, "!echo !echo loop")  # the bot says "!echo loop", echoed back
    bot.wait_reply(user, mark, "^!echo loop$")
    assert bot.ask(user, "!echo fence", "^fence$") == "fence"
    assert bot.replies(user, mark) == ["!echo loop", "fence"]  # never "loop"

    oper = irc_client("oper", server=ircnet)
    mark = oper.mark()
    oper.send(f"OPER testoper {ircnet.oper_password}")
    oper.wait_for(lambda raw: " 381 " in raw, since=mark)  # RPL_YOUREOPER
    oper.send(f"CHGHOST {user.nick} new.host.example")
    assert bot.ask(user, "!whoami", "^you are").endswith("@new.host.example")
    assert bot.ask(user, "!quits", "^quits") == "quits: 0"  # no fake quit and rejoin


def test_an_action_is_seen_by_seen(running_bot, irc_client) -> None:
    files = {name: (COMMANDS / name).read_text() for name in ("seen.py", "_common.py")}
    bot = running_bot({**files, "speaker.py": SPEAKER})
    waver, asker = irc_client("waver"), irc_client("asker")
    for client in (waver, asker):
        client.join(bot.channel)
    waver.privmsg(bot.channel, "\x01ACTION waves at everyone\x01")
    state = bot.app.storage.state("seen")  # (listeners run after commands waiting)
    bot.wait_until(lambda: waver.nick.lower() in state, "seen to record the action")
    answer = bot.ask(asker, f"!seen {waver.nick}", f"^{waver.nick} was last seen")
    assert answer.endswith(f"in {bot.channel}, doing: * {waver.nick} waves at everyone")
