"""The web modules through IRC (ngircd) and a loopback web server: a link said in a
channel gets its title, a link to a private address gets nothing, and ``http:``
applies live when config.yaml changes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from webserver import WebServer

pytestmark = pytest.mark.integration

COMMANDS = Path(__file__).resolve().parents[1] / "commands"


def test_link_titles_and_private_addresses_through_irc(
    running_bot, irc_client, web_server: WebServer
) -> None:
    names = ("urltitle.py", "echo.py", "_common.py")
    sources = {name: (COMMANDS / name).read_text() for name in names}
    title = "<html><head><title>Loopback &amp; friends</title></head></html>"
    url = web_server.route("/page", title)
    bot = running_bot(sources, notify=True, watch=True, http={"allow_private": ["127.0.0.1"]})
    alice = irc_client("alice")
    alice.join(bot.channel)

    mark = alice.mark()
    alice.privmsg(bot.channel, f"have a look: {url}")
    assert bot.wait_reply(alice, mark, r"^\[ ") == "[ Loopback & friends ] - 127.0.0.1"

    # No longer allowed: the next link is refused before any connection, in silence.
    mark = alice.mark()
    bot.write_config(http={"allow_private": []})
    assert bot.wait_reply(alice, mark, r"^config.yaml: ").startswith("config.yaml: applied http")
    web_server.route("/other", title)
    alice.privmsg(bot.channel, f"and {web_server.url}/other")
    alice.privmsg(bot.channel, "!echo done")  # a line after it, to know it was handled
    assert bot.wait_reply(alice, mark, r"^(\[ |done)") == "done"
    bot.wait_until(lambda: not bot.app.running(), "the listener to finish")
    assert web_server.paths == ["/page"]
    assert not any(line.startswith("[ ") for line in bot.replies(alice, mark))


def test_a_flood_of_links_to_a_slow_site_leaves_commands_answered(
    running_bot, irc_client, web_server: WebServer
) -> None:
    """Ten users paste links to a site that takes 4 s to answer: the boss's command is
    answered at once, because urltitle fetches at most two pages at a time."""
    holds = []
    names = ("urltitle.py", "echo.py", "_common.py")
    sources = {name: (COMMANDS / name).read_text() for name in names}
    bot = running_bot(sources, http={"allow_private": ["127.0.0.1"]}, workers=4)
    users = [irc_client("flood") for _ in range(10)]
    boss = irc_client("boss")
    boss.join(bot.channel)
    for n, user in enumerate(users):
        user.join(bot.channel)
        for k in range(3):
            path = f"/slow/{n}/{k}"
            holds.append(web_server.hold(path, "<title>slow</title>", most=4))
            user.privmsg(bot.channel, f"look {web_server.url}{path}")
    try:
        bot.wait_until(lambda: len(web_server.paths) >= 2, "two slow fetches under way")
        started = time.monotonic()
        assert bot.ask(boss, "!echo still here", timeout=2.0) == "still here"
        assert time.monotonic() - started < 2.0
    finally:
        for release in holds:
            release.set()
    bot.wait_until(lambda: not bot.app.running(), "the listeners to finish", timeout=15)
    assert len(web_server.paths) <= 10  # the rest were skipped, not queued
