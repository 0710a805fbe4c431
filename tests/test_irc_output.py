"""The way out, through IRC (ngircd): a backlog of one user's long replies never holds up
an admin's answer, ``!flush`` empties it, and what was waiting is dropped on a reconnect
instead of being said into a conversation that has moved on."""

from __future__ import annotations

import re
import time
import uuid

import pytest

pytestmark = pytest.mark.integration

LONG = '''
from bot.api import command


@command
def long(ctx, args):
    """long TAG -- ten numbered lines"""
    return [f"{args} line {n}" for n in range(10)]


@command
def echo(ctx, args):
    """echo TEXT -- TEXT"""
    return args
'''

SLOW = {"burst": 1, "per_second": 2, "max_queued": 100, "per_reply": 10}


def _backlog(bot, client) -> str:  # type: ignore[no-untyped-def]
    """Have a plain user queue 20 lines in the channel; wait for the first one."""
    tag = uuid.uuid4().hex[:6]
    mark = client.mark()
    client.privmsg(bot.channel, f"!long {tag}")
    client.privmsg(bot.channel, f"!long {tag}")
    bot.wait_reply(client, mark, rf"^{tag} line 0$")
    bot.wait_until(lambda: bot.app.outbox.pending() >= 15, "the backlog to be queued")
    return tag


def _count(bot, client, since: int, tag: str) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for text in bot.replies(client, since) if text.startswith(f"{tag} line "))


def test_an_admins_answer_goes_ahead_of_every_other_targets_backlog(
    running_bot, irc_client
) -> None:
    bot = running_bot({"long.py": LONG}, rate_limit={**SLOW, "per_second": 1})
    users = [irc_client("user") for _ in range(5)]
    boss = irc_client("boss")
    for user in users:  # five targets with ten lines each waiting
        user.privmsg(bot.nick, "!long x")
    bot.wait_until(lambda: bot.app.outbox.pending() >= 40, "the backlog to be queued")
    asked = time.monotonic()
    assert bot.ask(boss, "!echo first", private=True) == "first"
    waited = time.monotonic() - asked
    # taking turns with five other targets at one line a second would take 5 s
    assert waited < 2.5, f"the admin's answer took {waited:.1f} s"
    assert bot.app.outbox.pending() >= 35


def test_flush_empties_a_targets_queue(running_bot, irc_client) -> None:
    bot = running_bot({"long.py": LONG}, rate_limit=SLOW)
    user, boss = irc_client("user"), irc_client("boss")
    user.join(bot.channel)
    start = user.mark()
    tag = _backlog(bot, user)
    answer = bot.ask(boss, f"!flush {bot.channel}", private=True)
    dropped = int(re.fullmatch(rf"flush: dropped (\d+) waiting lines? to {bot.channel}", answer)[1])  # type: ignore[index]
    assert dropped >= 10
    assert bot.app.outbox.pending() == 0
    # fence: a fresh answer in the channel comes after what little was already on its way
    assert bot.ask(user, "!echo fence", "^fence$") == "fence"
    assert _count(bot, user, start, tag) == 20 - dropped
    assert bot.ask(boss, "!flush", private=True) == f"flush: dropped 0 waiting lines to {boss.nick}"


def test_a_plain_user_cannot_flush(running_bot, irc_client) -> None:
    bot = running_bot({"long.py": LONG})
    user = irc_client("user")
    user.join(bot.channel)
    assert bot.ask(user, "!flush *") == f"{user.nick}: !flush is for admins only"


def test_lines_waiting_at_a_disconnect_are_dropped_not_said_later(running_bot, irc_client) -> None:
    bot = running_bot({"long.py": LONG}, rate_limit=SLOW)
    user, boss = irc_client("user"), irc_client("boss")
    user.join(bot.channel)
    start = user.mark()
    tag = _backlog(bot, user)
    boss.privmsg(bot.nick, "!reconnect")
    bot.wait_until(lambda: not bot.app.connection.registered.is_set(), "the disconnect")
    bot.wait_joined()
    rejoined = user.mark()
    assert bot.ask(user, "!echo back", "^back$") == "back"
    assert _count(bot, user, rejoined, tag) == 0
    assert _count(bot, user, start, tag) < 20
