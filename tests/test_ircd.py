"""The throwaway IRC servers and the raw test client, against each other.

``Ngircd`` comes from bot.ircd (the demo ships it), ``InspircdAtheme`` from tests/ircnet.py.
"""

from __future__ import annotations

import secrets
import socket
import time

import pytest
from ircclient import ClientFactory, IrcClient, connect_all, parse
from ircnet import InspircdAtheme

from bot.ircd import IrcdError, Ngircd, free_port

pytestmark = pytest.mark.integration

FLOOD = 2000


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_ngircd_accepts_clients(ngircd: Ngircd, irc_client: ClientFactory) -> None:
    assert ngircd.running
    client = irc_client()
    assert any(
        parse(line).command == "001" and line.startswith(":irc.test ") for line in client.lines
    )
    client.send("PING :are-you-there")
    client.wait_for(r"^:irc\.test PONG irc\.test :are-you-there$")


def test_two_clients_talk(irc_client: ClientFactory) -> None:
    alice, bob = irc_client("alice"), irc_client("bob")
    alice.join("#talk")
    bob.join("#talk")
    alice.wait_for(rf"^:{bob.nick}!\S+ JOIN :?#talk$")

    alice.privmsg("#talk", "hello bob")
    bob.wait_for(rf"^:{alice.nick}!\S+ PRIVMSG #talk :hello bob$")
    bob.privmsg(alice.nick, "hi alice, privately")
    alice.wait_for(rf"^:{bob.nick}!\S+ PRIVMSG {alice.nick} :hi alice, privately$")


def test_wait_for_cursor_and_timeout(irc_client: ClientFactory) -> None:
    client = irc_client()
    for text in ("one", "two", "three"):
        client.privmsg(client.nick, text)
    one = client.wait_for(r":one$")
    assert client.wait_for(r":(one|two)$").endswith(":two")  # "one" was consumed
    assert client.wait_for(lambda line: line.endswith(":one"), since=0) == one  # rewind
    client.wait_for(r":three$")
    mark = client.mark()
    with pytest.raises(AssertionError, match=r"timed out .* last lines received"):
        client.wait_for(r":three$", timeout=0.2)  # consumed
    with pytest.raises(AssertionError, match=":three"):
        client.wait_for(r":three$", timeout=0.2, since=mark)  # arrived before the mark
    assert client.lines_since(mark) == []


@pytest.mark.parametrize("how", ["one_burst", "line_by_line"])
def test_flood_is_not_throttled(irc_client: ClientFactory, how: str) -> None:
    """2000 PRIVMSGs sent at once all arrive, in order, fast; the sender stays connected.

    With ngircd's default penalties this takes minutes (about 3 lines per second
    after a short burst) instead of well under a second.
    """
    sender, receiver = irc_client("flooder"), irc_client("sink")
    lines = [f"PRIVMSG {receiver.nick} :flood {i}" for i in range(FLOOD)]
    start = time.monotonic()
    if how == "one_burst":
        sender.send_raw("".join(line + "\r\n" for line in lines).encode())
    else:
        for line in lines:
            sender.send(line)
    deadline = start + 10.0
    for i in range(FLOOD):
        receiver.wait_for(
            rf"^:{sender.nick}!\S+ PRIVMSG {receiver.nick} :flood {i}$",
            timeout=max(0.0, deadline - time.monotonic()),
        )
    elapsed = time.monotonic() - start
    sender.send("PING :still-there")
    sender.wait_for(r"PONG .*:still-there$")
    assert sender.connected
    assert not [line for line in sender.lines if parse(line).command == "ERROR"]
    assert elapsed < 10.0, f"{FLOOD} lines took {elapsed:.2f} s"


def test_restart_and_kill_keep_the_port() -> None:
    with Ngircd() as server:
        port = server.port
        first = IrcClient(server.host, port, "before").connect()
        try:
            server.restart()
            assert server.port == port and server.running
            first.wait_closed()
        finally:
            first.close()

        second = IrcClient(server.host, port, "after").connect()
        try:
            server.kill()  # a crash: no ERROR/QUIT, the socket just closes
            assert not server.running
            second.wait_closed()
        finally:
            second.close()

        server.start()
        assert server.port == port
        with IrcClient(server.host, port, "again") as third:
            assert third.connected
    assert not server.running
    with pytest.raises(OSError):
        socket.create_connection((server.host, port), timeout=1).close()


@pytest.mark.services
def test_account_tag_only_for_sasl_logged_in_users(
    ircnet: InspircdAtheme, irc_client: ClientFactory
) -> None:
    name = "acct" + secrets.token_hex(3)
    ircnet.register_account(name, "correct-horse")
    with pytest.raises(IrcdError, match="already registered"):
        ircnet.register_account(name, "another-password")

    observer = irc_client("obs", server=ircnet, connect=False, caps=["message-tags", "account-tag"])
    real = irc_client(nick=name, server=ircnet, connect=False, sasl=(name, "correct-horse"))
    impostor = irc_client(nick=name + "_", server=ircnet, connect=False)
    connect_all([observer, real, impostor])  # InspIRCd registers all three on one tick
    assert {"message-tags", "account-tag"} <= observer.enabled_caps
    assert real.account == name
    assert any(parse(line).command == "900" for line in real.lines)

    channel = "#acct" + secrets.token_hex(3)
    for client in (observer, real, impostor):
        client.join(channel)

    def said(text: str) -> str:
        return observer.wait_for(lambda raw: parse(raw).params[-1:] == [text], timeout=5)

    real.privmsg(channel, "I am the real one")
    assert parse(said("I am the real one")).tags.get("account") == name

    impostor.privmsg(channel, "me too")
    line = parse(said("me too"))
    assert line.nick == name + "_" and "account" not in line.tags, line

    # Even with the account's nick, once the real user has quit: no account tag.
    real.quit()
    observer.wait_for(rf"^(@\S+ )?:{name}!\S+ QUIT")
    impostor.send(f"NICK {name}")
    impostor.wait_for(rf"NICK :?{name}$")
    impostor.privmsg(channel, "now I have the nick")
    line = parse(said("now I have the nick"))
    assert line.nick == name and "account" not in line.tags, line
