"""The ignore list through IRC (ngircd): !ignore / !unignore / !ignores, expiry, the
config's ignore:, a flooder ignored after exactly one notice; services accounts (ignored,
and granted a command by ``permissions:``) on InspIRCd + Atheme; and in process: accounts
and a restart."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from helpers import app_factory, ensure_account, say
from ircclient import parse
from ircnet import InspircdAtheme

from bot.message import Message, Source

ECHO_AND_LISTENER = '''
from bot.api import command, on_message


@command
def echo(ctx, args):
    """echo TEXT -- repeat TEXT back"""
    return args


@on_message(r"^hello bot$")
def hello(ctx, match):
    return "hello " + ctx.nick
'''


@pytest.mark.integration
def test_an_ignored_user_reaches_no_command_and_no_listener(running_bot, irc_client) -> None:
    bot = running_bot({"echo.py": ECHO_AND_LISTENER})
    boss = irc_client("boss")
    boss.join(bot.channel)
    pest = irc_client("pest")
    pest.join(bot.channel)
    assert bot.ask(pest, "!echo before") == "before"

    assert bot.ask(boss, f"!ignore {pest.nick} 30m spamming", r"^ignoring ") == (
        f"ignoring {pest.nick.lower()}!*@* (30m left)"
    )
    mark = pest.mark()
    pest.privmsg(bot.channel, "!echo ignored")
    pest.privmsg(bot.channel, "hello bot")
    assert bot.ask(boss, "!echo meanwhile", r"^meanwhile$")  # later than the pest's lines
    assert not [t for t in bot.replies(pest, mark) if t in ("ignored", f"hello {pest.nick}")]
    listing = bot.ask(boss, "!ignores", r"^ignored: ")
    assert listing.startswith(f"ignored: {pest.nick.lower()}!*@* (30m left, spamming, by ")
    assert "spamming, by " in listing

    unignored = bot.ask(boss, f"!unignore {pest.nick}", r"^no longer ")
    assert unignored == f"no longer ignoring {pest.nick.lower()}!*@*"
    assert bot.ask(pest, "!echo after", r"^after$")


@pytest.mark.integration
def test_an_ignore_with_a_duration_ends_by_itself(running_bot, irc_client) -> None:
    bot = running_bot({"echo.py": ECHO_AND_LISTENER})
    boss = irc_client("boss")
    boss.join(bot.channel)
    pest = irc_client("pest")
    pest.join(bot.channel)
    assert bot.ask(boss, f"!ignore {pest.nick}!*@* 1s").startswith("ignoring ")
    started = time.monotonic()
    while True:  # poll: once the second is over, the pest is answered again
        mark = pest.mark()
        pest.privmsg(bot.channel, "!echo back")
        assert bot.ask(boss, "!echo sync", r"^sync$")
        if "back" in bot.replies(pest, mark):
            break
        assert time.monotonic() - started < 5, "the ignore did not end"
    assert time.monotonic() - started >= 0.9


@pytest.mark.integration
def test_the_configs_ignore_list_applies_live(running_bot, irc_client) -> None:
    bot = running_bot({"echo.py": ECHO_AND_LISTENER})
    boss = irc_client("boss")
    boss.join(bot.channel)
    pest = irc_client("pest")
    pest.join(bot.channel)
    bot.write_config(ignore=[f"{pest.nick}!*@127.0.0.1"])
    assert bot.ask(boss, "!rehash") == f"rehash: applied ignore = [{pest.nick.lower()}!*@127.0.0.1]"
    mark = pest.mark()
    pest.privmsg(bot.channel, "!echo ignored")
    assert bot.ask(boss, "!echo sync", r"^sync$")
    assert "ignored" not in bot.replies(pest, mark)
    assert bot.ask(boss, "!ignores").startswith(f"ignored: {pest.nick.lower()}!*@127.0.0.1")


@pytest.mark.integration
def test_a_flooder_is_told_once_and_ignored_for_a_while(running_bot, irc_client) -> None:
    bot = running_bot(
        {"echo.py": ECHO_AND_LISTENER},
        command_rate={"per_user": 3, "per_channel": 1000, "window": 10, "ignore_for": 1},
    )
    boss = irc_client("boss")
    boss.join(bot.channel)
    flooder = irc_client("flood")
    flooder.join(bot.channel)
    mark = flooder.mark()
    for n in range(8):
        flooder.privmsg(bot.channel, f"!echo f{n}")
    assert bot.ask(boss, "!echo sync", r"^sync$")

    def notice(raw: str) -> bool:
        line = parse(raw)
        return line.command == "NOTICE" and line.params[0].lower() == flooder.nick.lower()

    flooder.wait_for(notice, since=mark)

    def answered() -> list[str]:
        return [t for t in bot.replies(flooder, mark) if t.startswith("f")]

    bot.wait_until(lambda: len(answered()) >= 3, "the three allowed commands' answers")
    assert bot.ask(boss, "!echo sync again", r"^sync again$")
    notices = [parse(raw).params[-1] for raw in flooder.lines_since(mark) if notice(raw)]
    assert notices == ["Too many commands: you are ignored for 1 s."]
    assert answered() == ["f0", "f1", "f2"]
    assert bot.ask(boss, "!echo admins are exempt", r"^admins are exempt$")


def test_accounts_can_be_ignored_and_the_list_survives_a_restart(tmp_path: Path) -> None:
    files = {"echo.py": ECHO_AND_LISTENER}
    with app_factory(tmp_path) as make:
        app = make(files)
        assert app.load_all().ok
        app.ignores.add("account:Troll", None, "trolling", "boss")
        app.ignores.add("short!*@*", -1, "", "boss")  # already over
    with app_factory(tmp_path) as make:
        again = make(files)  # the same state database: a restart
        assert again.load_all().ok
        masks = [e.mask for e in again.ignores.entries()]
        assert masks == ["account:troll"]  # the short one has expired
        troll = Source("troll", "t", "elsewhere.example", account="TROLL")
        again.dispatcher.handle(Message(troll, "#c", "!echo hi", is_private=False))
        assert say(again, "!echo sync", nick="other", admin=False) == ["sync"]


SECRET = '''
from bot.api import command


@command
def secret(ctx, args):
    """secret -- for those config.yaml's permissions: names"""
    return f"secret for {ctx.nick}"
'''


@pytest.mark.integration
@pytest.mark.services
def test_an_account_is_granted_and_ignored_whatever_its_nick(
    ircnet: InspircdAtheme, running_bot, irc_client
) -> None:
    ensure_account(ircnet, "trollacct", "troll-secret")
    bot = running_bot(
        {"echo.py": ECHO_AND_LISTENER, "secret.py": SECRET},
        server=ircnet,
        permissions={"secret": ["account:TrollAcct"]},  # accounts compare case-insensitively
    )
    troll = irc_client("tr", server=ircnet, sasl=("trollacct", "troll-secret"))
    other, boss = irc_client("other", server=ircnet), irc_client("boss", server=ircnet)
    for client in (troll, other, boss):
        client.join(bot.channel)
    assert bot.ask(troll, "!secret") == f"secret for {troll.nick}"
    assert bot.ask(other, "!secret", other.nick) == f"{other.nick}: !secret is not for you"

    reply = bot.ask(boss, "!ignore account:trollacct 10m trolling", "^ignoring ")
    assert reply.startswith("ignoring account:trollacct (")
    renamed = f"tr{uuid.uuid4().hex[:6]}"
    mark = troll.mark()
    troll.send(f"NICK {renamed}")  # a new nick, the same account
    troll.wait_for(lambda raw: " NICK " in raw, since=mark)
    troll.nick = renamed
    start = troll.mark()
    troll.privmsg(bot.channel, "!echo heard?")
    troll.privmsg(bot.channel, "hello bot")
    troll.send("PING :read")  # the server has the troll's lines once it answers
    troll.wait_for(lambda raw: "PONG" in raw and "read" in raw, since=start)
    assert bot.ask(other, "!echo fence", "^fence$") == "fence"  # the bot has read the troll's lines
    bot.wait_reply(troll, start, "^fence$")  # what the bot said, as the troll sees it
    assert bot.replies(troll, start) == ["fence"]

    unignored = bot.ask(boss, "!unignore account:trollacct", "ignor")
    assert unignored == "no longer ignoring account:trollacct"
    assert bot.ask(troll, "!echo back", "^back$") == "back"
