"""Shared pytest fixtures.

Sections: real IRC servers (the shared ones start on first use), then
IRC test clients.  Add new fixtures in their own section below.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from ircclient import ClientFactory, IrcClient

from bot.ircd import InspircdAtheme, Ngircd

# --------------------------------------------------------------------------- IRC servers


@pytest.fixture(scope="session")
def ngircd() -> Iterator[Ngircd]:
    """One ngIRCd (no flood penalties) for the whole test session."""
    with Ngircd() as server:
        yield server


@pytest.fixture
def private_ngircd() -> Iterator[Ngircd]:
    """An ngIRCd for this test only: restart() or kill() it freely (reconnect tests)."""
    with Ngircd() as server:
        yield server


@pytest.fixture(scope="session")
def ircnet() -> Iterator[InspircdAtheme]:
    """InspIRCd + Atheme (accounts, SASL, IRCv3 tags); started only if a test asks for it."""
    with InspircdAtheme() as network:
        yield network


# --------------------------------------------------------------------------- IRC clients

_nicks = itertools.count(1)


@pytest.fixture
def irc_client(request: pytest.FixtureRequest) -> Iterator[ClientFactory]:
    """Factory for connected test clients with unique nicks; all are closed at test end.

        alice = irc_client()                      # on the session ngircd, nick "u1"
        bob = irc_client("bob", caps=["multi-prefix"])   # nick "bob2"
        carol = irc_client("carol", server=ircnet, sasl=("carol", "pw"))
        dave = irc_client(connect=False)          # connect yourself (e.g. connect_all)
        eve = irc_client(nick="eve")              # exactly this nick

    ``server`` is anything with ``.host`` and ``.port`` (default: the ``ngircd``
    fixture, started only when needed).  Other keywords go to ``IrcClient``.
    """
    clients: list[IrcClient] = []

    def make(
        prefix: str = "u",
        *,
        nick: str | None = None,
        server: Ngircd | InspircdAtheme | None = None,
        connect: bool = True,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> IrcClient:
        if server is None:
            server = request.getfixturevalue("ngircd")
        nick = nick or f"{prefix}{next(_nicks)}"
        client = IrcClient(server.host, server.port, nick, **kwargs)
        clients.append(client)
        return client.connect(timeout) if connect else client

    yield make
    for client in clients:
        client.close()
