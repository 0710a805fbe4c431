"""Channel state (issue 13): who is in each channel with which modes, and
``@command(require="op")``. Unit tests of bot.channels, then through IRC (ngircd)."""

from __future__ import annotations

import uuid

import pytest

from bot.channels import Channels, at_least


def test_names_with_every_prefix_and_userhosts() -> None:
    channels = Channels()
    channels.isupport(["PREFIX=(qaohv)~&@%+", "CHANMODES=beI,k,l,imnt"])
    channels.names("#c", ["~@owner", "@+both!u@h", "%half", "+voice", "plain"])
    assert channels.modes_of("#c", "OWNER") == {"q", "o"}
    assert channels.modes_of("#c", "both") == {"o", "v"}
    assert at_least(channels.modes_of("#c", "half"), "halfop")
    assert not at_least(channels.modes_of("#c", "half"), "op")
    assert at_least(channels.modes_of("#c", "owner"), "voice")  # an owner outranks voice
    assert channels.modes_of("#c", "plain") == frozenset()
    assert channels.modes_of(None, "plain") == frozenset()


def test_modes_follow_mode_nick_kick_part_and_quit() -> None:
    channels = Channels()
    channels.isupport(["PREFIX=(ov)@+", "CHANMODES=beI,k,l,imnt"])
    channels.names("#c", ["alice", "bob", "carol"])
    # +k and +l take a parameter, +b too, -l does not: the nicks are found all the same
    channels.mode("#c", ["+kob-lv+l", "secret", "alice", "*!*@spam", "bob", "10"])
    assert channels.modes_of("#c", "alice") == {"o"}
    channels.renamed("alice", "alicia")
    assert channels.modes_of("#c", "alicia") == {"o"}
    assert channels.modes_of("#c", "alice") == frozenset()
    channels.mode("#c", ["-o", "alicia"])
    assert channels.modes_of("#c", "alicia") == frozenset()
    channels.mode("#c", ["+v", "carol"])
    channels.left("#c", "carol")  # a kick or a part
    channels.joined("#c", "carol")
    assert channels.modes_of("#c", "carol") == frozenset()  # back without the voice
    channels.quit("bob")
    assert "bob" not in channels.members("#c")
    channels.left("#c", "me", me=True)
    assert channels.members("#c") == []


def test_casemapping_decides_which_nicks_are_one() -> None:
    rfc = Channels()  # rfc1459 until told otherwise: [a] and {a} are one nick
    rfc.names("#c", ["@[a]"])
    assert rfc.modes_of("#C", "{A}") == {"o"}
    ascii_only = Channels()
    ascii_only.isupport(["CASEMAPPING=ascii"])
    ascii_only.names("#c", ["@[a]"])
    assert ascii_only.modes_of("#c", "[A]") == {"o"}
    assert ascii_only.modes_of("#c", "{a}") == frozenset()


OPS_ONLY = '''
from bot.api import command


@command(require="op")
def quiet(ctx, args):
    """quiet -- channel operators only"""
    return f"quiet by {ctx.nick} (op: {ctx.is_op}, modes: {''.join(sorted(ctx.user_modes))})"


@command
def modes(ctx, args):
    """modes -- your modes here"""
    return "modes: " + ("".join(sorted(ctx.user_modes)) or "none")
'''


@pytest.mark.integration
def test_require_op_follows_the_channels_modes(running_bot, irc_client) -> None:
    channel = f"#ops{uuid.uuid4().hex[:6]}"
    chanop = irc_client("chanop")
    chanop.join(channel)  # first in: ngircd makes it the channel's operator
    bot = running_bot({"ops.py": OPS_ONLY}, channels=(channel,))
    user = irc_client("user")
    user.join(channel)
    bot.wait_until(lambda: user.nick.lower() in bot.app.connection.members.members(channel), "JOIN")

    def _ask(client, text):  # type: ignore[no-untyped-def]
        """The bot's answer to ``client`` (a reply to another may arrive meanwhile)."""
        mark = client.mark()
        client.privmsg(channel, text)
        mine = rf"^({client.nick}: |quiet by {client.nick} |modes: )"
        return bot.wait_reply(client, mark, mine, target=channel)

    assert _ask(chanop, "!quiet").startswith(f"quiet by {chanop.nick} (op: True, modes: o)")
    assert _ask(user, "!quiet") == f"{user.nick}: !quiet needs op in this channel"

    mark = user.mark()
    chanop.send(f"MODE {channel} +o {user.nick}")
    user.wait_for(lambda raw: " MODE " in raw and "+o" in raw, since=mark)
    assert _ask(user, "!quiet").startswith(f"quiet by {user.nick} (op: True")

    renamed = f"{user.nick}x"
    mark = user.mark()
    user.send(f"NICK {renamed}")
    user.wait_for(lambda raw: " NICK " in raw, since=mark)
    user.nick = renamed
    assert _ask(user, "!modes") == "modes: o"  # the op followed the nick change

    mark = user.mark()
    chanop.send(f"KICK {channel} {renamed} :out")
    user.wait_for(lambda raw: " KICK " in raw, since=mark)
    members = bot.app.connection.members
    bot.wait_until(lambda: renamed.lower() not in members.members(channel), "the KICK followed")
    user.join(channel)
    # (a second refusal within command_rate.window would not be said: ask what it knows)
    assert _ask(user, "!modes") == "modes: none"  # the kick took the op away
