"""Issue 3, end to end: live changes through IRC (real ngIRCd, real sockets).

Saved command files reload by themselves (``watch: true``), and config.yaml is
re-applied as a diff, on save or on ``!rehash``, without reconnecting.  The bots
here send their ``notify`` messages to their own channel, so the test clients
see every ``auto-reload:`` and ``config.yaml:`` report as it happens.

"Nothing more happened" is checked against a later event of the same kind: a
save of config.yaml is reported after the watcher's quiet period, so once its
report is in, an earlier burst of command-file saves has been handled too.
"""

from __future__ import annotations

import re
import time

import pytest
from irc.strings import lower as irc_lower

pytestmark = pytest.mark.integration

ECHO_UPPER = """
from bot.api import command


@command
def echo(ctx, args):
    "echo TEXT -- repeat TEXT back, louder"
    return args.upper()
"""

FRESH = """
from bot.api import command


@command
def fresh(ctx, args):
    "fresh -- a command from a new file"
    return "fresh!"
"""


def echo_variant(tag: str) -> str:
    return f'''
from bot.api import command


@command
def echo(ctx, args):
    "echo TEXT -- repeat TEXT back, tagged"
    return "{tag} " + args
'''


def settle(bot, client) -> None:
    """Save config.yaml unchanged and wait for its report: earlier saves are handled."""
    mark = client.mark()
    bot.write_config()
    bot.wait_reply(client, mark, r"^config\.yaml: no changes$")


# -- command files -------------------------------------------------------------------


def test_saved_edit_is_served_within_two_seconds(running_bot, irc_client) -> None:
    bot = running_bot(watch=True, notify=True)
    user = irc_client("user")
    user.join(bot.channel)
    assert bot.ask(user, "!echo hi") == "hi"

    mark = user.mark()
    saved = time.monotonic()
    bot.write("echo", ECHO_UPPER)
    report = bot.wait_reply(user, mark, "^auto-reload: ", timeout=2.0)
    assert bot.ask(user, "!echo hi") == "HI"
    assert time.monotonic() - saved < 2.0
    assert report == "auto-reload: reloaded: echo"


def test_a_burst_of_saves_is_one_reload(running_bot, irc_client) -> None:
    bot = running_bot(watch=True, notify=True)
    user = irc_client("user")
    user.join(bot.channel)

    mark = user.mark()
    for i in range(20):
        bot.write("echo", echo_variant(f"v{i}"))
    assert bot.wait_reply(user, mark, "^auto-reload: ") == "auto-reload: reloaded: echo"
    settle(bot, user)
    reports = [t for t in bot.replies(user, mark) if t.startswith("auto-reload:")]
    assert reports == ["auto-reload: reloaded: echo"]
    assert bot.ask(user, "!echo x") == "v19 x"


def test_broken_save_keeps_old_code_and_reports_file_and_line(running_bot, irc_client) -> None:
    bot = running_bot({"echo.py": echo_variant("old")}, watch=True, notify=True)
    user = irc_client("user")
    user.join(bot.channel)

    mark = user.mark()
    bot.write("echo", echo_variant("new").replace('return "new " + args', "return (args"))
    report = bot.wait_reply(user, mark, "^auto-reload: ")
    assert report.startswith("auto-reload: failed, nothing changed"), report
    assert re.search(r"commands/echo\.py:\d+: SyntaxError", report), report
    assert bot.ask(user, "!echo x") == "old x"

    mark = user.mark()
    bot.write("echo", echo_variant("fixed"))
    assert bot.wait_reply(user, mark, "^auto-reload: ") == "auto-reload: reloaded: echo"
    assert bot.ask(user, "!echo x") == "fixed x"


def test_new_file_loads_and_deleted_file_unloads(running_bot, irc_client) -> None:
    bot = running_bot(watch=True, notify=True)
    user = irc_client("user")
    user.join(bot.channel)

    mark = user.mark()
    bot.write("fresh", FRESH)
    report = bot.wait_reply(user, mark, "^auto-reload: ")
    assert report == "auto-reload: loaded: fresh; commands added: fresh; 1 unchanged"
    assert bot.ask(user, "!fresh") == "fresh!"

    mark = user.mark()
    bot.delete("fresh")
    report = bot.wait_reply(user, mark, "^auto-reload: ")
    assert report == "auto-reload: unloaded: fresh; commands removed: fresh; 1 unchanged"
    mark = user.mark()
    user.privmsg(bot.channel, "!fresh")
    user.privmsg(bot.channel, "!echo after")
    assert bot.wait_reply(user, mark) == "after"
    assert set(bot.app.registry.modules) == {"echo"}


# -- config.yaml ---------------------------------------------------------------------


def test_saved_config_joins_and_parts_channels_on_one_connection(running_bot, irc_client) -> None:
    bot = running_bot(notify=True)
    nick = bot.app.nick
    extra = bot.channel + "x"
    user = irc_client("user")
    user.join(bot.channel)
    other = irc_client("other")
    other.join(extra)

    mark = user.mark()
    bot.write_config(channels=[bot.channel, extra])
    other.wait_for(rf"^:{re.escape(nick)}!\S+ JOIN :?{re.escape(extra)}$")
    assert bot.wait_reply(user, mark, "^config.yaml: ") == f"config.yaml: joining {extra}"

    mark = user.mark()
    bot.write_config(channels=[bot.channel])
    other.wait_for(rf"^:{re.escape(nick)}!\S+ PART {re.escape(extra)}( |$)")
    assert bot.wait_reply(user, mark, "^config.yaml: ") == f"config.yaml: leaving {extra}"

    bot.wait_until(lambda: irc_lower(extra) not in bot.app.connection.joined, "the PART")
    assert bot.app.connection.connects == 1
    assert bot.ask(user, "!echo still") == "still"


def test_rehash_reports_changes_and_refuses_bad_config(running_bot, irc_client) -> None:
    # config.yaml is a symlink here, so the bot's config watcher does not see the
    # saves: only !rehash applies them, and its reply is the one report.
    bot = running_bot(link_config=True)
    extra = bot.channel + "x"
    boss = irc_client("boss")
    boss.join(bot.channel)
    user = irc_client("user")
    user.join(bot.channel)
    other = irc_client("other")
    other.join(extra)

    assert bot.ask(user, "!rehash") == f"{user.nick}: !rehash is for admins only"
    assert bot.ask(boss, "!rehash", "^rehash") == "rehash: no changes"

    # A YAML syntax error: reported with line and column; the old config stays.
    bot.write_config(text="nick: [unclosed\nprefix: '?'\n")
    reply = bot.ask(boss, "!rehash")
    assert re.fullmatch(
        r"rehash: not applied, old config kept: config\.yaml:\d+: invalid YAML: .*"
        r"\(column \d+\)",
        reply,
    ), reply

    # A wrong value: reported with the key and its line; the old config stays.
    text = bot.write_config(prefix="far too long")
    line = text.splitlines().index("prefix: far too long") + 1
    reply = bot.ask(boss, "!rehash")
    assert reply.startswith(f"rehash: not applied, old config kept: config.yaml:{line}: prefix: ")
    assert bot.app.config.prefix == "!"
    assert bot.ask(boss, "!echo old prefix") == "old prefix"

    # A good change: applied at once, and the reply says what changed.
    bot.write_config(prefix="?", channels=[bot.channel, extra])
    reply = bot.ask(boss, "!rehash")
    assert reply == f"rehash: joining {extra}; applied prefix = '?'", reply
    other.wait_for(rf"^:{re.escape(bot.app.nick)}!\S+ JOIN :?{re.escape(extra)}$")
    assert bot.ask(boss, "?echo new prefix") == "new prefix"
    mark = user.mark()
    user.privmsg(bot.channel, "!echo old")
    user.privmsg(bot.channel, "?echo new")
    assert bot.wait_reply(user, mark, "^(old|new)$") == "new"
    assert bot.app.connection.connects == 1


def test_watch_can_be_toggled_live(running_bot, irc_client) -> None:
    bot = running_bot({"echo.py": echo_variant("a")}, notify=True)
    user = irc_client("user")
    user.join(bot.channel)

    # Off at start: a save is not picked up.
    bot.write("echo", echo_variant("b"))
    settle(bot, user)
    assert bot.ask(user, "!echo 1") == "a 1"

    mark = user.mark()
    bot.write_config(watch=True)
    assert bot.wait_reply(user, mark, "^config.yaml: ") == "config.yaml: applied watch = True"
    bot.write("echo", echo_variant("c"))
    assert bot.wait_reply(user, mark, "^auto-reload: ") == "auto-reload: reloaded: echo"
    assert bot.ask(user, "!echo 2") == "c 2"

    mark = user.mark()
    bot.write_config(watch=False)
    assert bot.wait_reply(user, mark, "^config.yaml: ") == "config.yaml: applied watch = False"
    bot.write("echo", echo_variant("d"))
    settle(bot, user)
    assert bot.ask(user, "!echo 3") == "c 3"
    assert not [t for t in bot.replies(user, mark) if t.startswith("auto-reload:")]
    assert bot.ask(user, "!reload") == f"{user.nick}: !reload is for admins only"
    boss = irc_client("boss")
    boss.join(bot.channel)
    assert bot.ask(boss, "!reload") == "reload: reloaded: echo"
    assert bot.ask(boss, "!echo 4") == "d 4"
