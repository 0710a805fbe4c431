"""A flood of refusals on a server with stock limits (InspIRCd, Debian's connect class).

Six plain users each say ``!reload`` once a second.  Before issue 13 every refusal was
answered, at 2 lines a second, to a server that takes one a second from a client: the
server lagged the bot, its receive queue filled, and after about three minutes it
disconnected the bot ("RecvQ exceeded"), with the backlog said again after the reconnect.

Shrunk to run in under a minute: the receive queue is 1 KiB instead of 8 KiB and the
flood lasts 40 s.  With the old behaviour's settings (``rate_limit.per_second: 2``,
refusals unlimited and no auto-ignore) this test fails: the admin's answer took over 2 s
after about 15 s, and the server closed the bot's connection ("RecvQ exceeded") within
the 40 s.  With the defaults the bot must stay connected and answer the admin within
2 s throughout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from ircclient import parse
from ircnet import DEBIAN_STOCK, InspircdAtheme

pytestmark = pytest.mark.integration

FLOODERS = 6
SECONDS = 40.0
ADMIN_EVERY = 4.0  # seconds between the admin's questions
RECVQ = 1024  # bytes; Debian's class has 8192, which takes the old bot ~3 minutes to fill


@pytest.fixture(scope="module")
def stock_ircnet() -> Iterator[InspircdAtheme]:
    with InspircdAtheme(connect_class={**DEBIAN_STOCK, "recvq": str(RECVQ)}) as network:
        yield network


def test_refusals_from_six_flooders_never_get_the_bot_disconnected(
    stock_ircnet: InspircdAtheme, running_bot, irc_client
) -> None:
    # the shipped limits: rate_limit and command_rate as a new operator gets them
    bot = running_bot(server=stock_ircnet, rate_limit={}, command_rate={})
    boss = irc_client("boss", server=stock_ircnet)
    flooders = [irc_client("flood", server=stock_ircnet) for _ in range(FLOODERS)]
    for client in [boss, *flooders]:
        client.join(bot.channel)
    start = boss.mark()

    stop = threading.Event()

    def flood() -> None:
        due = time.monotonic()
        while not stop.is_set():
            for client in flooders:
                client.privmsg(bot.channel, "!reload")
            due += 1.0
            stop.wait(max(0.0, due - time.monotonic()))  # pacing the flood, not waiting

    flooding = threading.Thread(target=flood, name="flooders", daemon=True)
    flooding.start()
    waits: list[float] = []
    try:
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            asked = time.monotonic()
            token = f"still-here-{len(waits)}"
            assert bot.ask(boss, f"!echo {token}", f"^{token}$", timeout=2.0) == token
            waits.append(time.monotonic() - asked)
            stop.wait(max(0.0, asked + ADMIN_EVERY - time.monotonic()))
    finally:
        stop.set()
        flooding.join(5)

    quits = [raw for raw in boss.lines_since(start) if parse(raw).command == "QUIT"]
    assert not any(parse(raw).nick == bot.app.nick for raw in quits), quits
    assert bot.app.connection.registered.is_set()
    assert all(client.connected for client in flooders)
    assert max(waits) < 2.0, waits
