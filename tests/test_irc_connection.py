"""The bot's one connection against a real ngIRCd: server restarts, a taken nick, SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from irc.strings import lower as irc_lower
from ircclient import parse

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def names(client, channel: str) -> list[str]:
    """Nicks in ``channel`` by the server's NAMES reply (prefixes like @ removed)."""
    mark = client.mark()
    client.send(f"NAMES {channel}")
    client.wait_for(lambda ln: parse(ln).command == "366", since=mark)
    lines = [parse(ln) for ln in client.lines_since(mark)]
    return [n.lstrip("~&@%+") for ln in lines if ln.command == "353" for n in ln.params[-1].split()]


def test_reconnects_and_rejoins_after_the_server_restarts(
    private_ngircd, running_bot, irc_client
) -> None:
    bot = running_bot(server=private_ngircd)
    conn = bot.app.connection
    assert conn.connects == 1

    private_ngircd.restart()
    restarted = time.monotonic()
    bot.wait_until(
        lambda: conn.connects == 2 and irc_lower(bot.channel) in conn.joined,
        "the bot to reconnect and rejoin",
        timeout=15,
    )
    assert time.monotonic() - restarted < 6.0  # backoff starts at about 1 s

    user = irc_client("user", server=private_ngircd)
    user.join(bot.channel)
    assert irc_lower(bot.app.nick) in [irc_lower(n) for n in names(user, bot.channel)]
    assert bot.ask(user, "!echo back again") == "back again"


def test_the_socket_sends_small_writes_at_once(running_bot) -> None:
    """TCP_NODELAY: with Nagle on, NICK/USER and back-to-back reply lines each waited
    for the server's delayed ACK (~40 ms measured between NICK/USER and the welcome)."""
    bot = running_bot()
    sock = bot.app.connection.server.socket
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_takes_an_alternative_nick_when_its_nick_is_in_use(running_bot, irc_client) -> None:
    wanted = f"rbn{uuid.uuid4().hex[:6]}"
    squatter = irc_client(nick=wanted)
    assert squatter.nick == wanted

    bot = running_bot(nick=wanted)
    assert bot.app.nick == f"{wanted}_"
    assert bot.app.connection.connects == 1

    user = irc_client("user")
    user.join(bot.channel)
    mark = user.mark()
    assert bot.ask(user, "!echo hello") == "hello"
    [raw] = [ln for ln in user.lines_since(mark) if bot.is_reply(ln)]
    assert parse(raw).nick == f"{wanted}_"


def test_sigterm_quits_with_the_message_and_exits_zero(bot_files, irc_client, tmp_path) -> None:
    files = bot_files()
    nick, channel = re.escape(files.nick), re.escape(files.channel)
    user = irc_client("user")
    user.join(files.channel)
    log_path = tmp_path / "bot.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(files.config_path)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            user.wait_for(rf"^:{nick}!\S+ JOIN :?{channel}$", timeout=20)
            user.privmsg(files.channel, "!echo alive")
            user.wait_for(rf"^:{nick}!\S+ PRIVMSG {channel} :alive$")

            mark = user.mark()
            proc.send_signal(signal.SIGTERM)
            quit_line = user.wait_for(rf"^:{nick}!\S+ QUIT ", since=mark, timeout=10)
            # ngIRCd relays a client's own quit message in double quotes.
            assert parse(quit_line).params[-1].strip('"') == "Shutting down", quit_line
            assert proc.wait(10) == 0
        except BaseException:
            print(log_path.read_text(errors="replace"))  # shown by pytest on failure
            raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
