"""What one IRC connection is configured with, and what it learns while it lasts.

``ConnectionSettings`` (from config.yaml, swapped whole on a change),
``Session`` (fresh on each connect, so nothing of an old connection leaks into
the next) with its open ``Batch``es, and ``Backoff`` (the reconnect delays).
Plain data for ``bot.connection``, which does the talking.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from bot.outbox import IRC_LINE


@dataclass
class ConnectionSettings:
    host: str
    port: int
    nicks: tuple[str, ...]
    channels: tuple[str, ...] = ()
    channel_keys: dict[str, str] = field(default_factory=dict)  # irc-lowered name -> +k key
    tls: bool = False
    tls_verify: bool = True
    password: str | None = None
    username: str = "reloadbot"
    realname: str = "reloadbot"
    tls_certfile: str | None = None  # client certificate, for SASL EXTERNAL
    sasl_mechanism: str | None = None  # PLAIN or EXTERNAL; None: no SASL
    sasl_account: str = ""
    sasl_password: str = ""
    sasl_required: bool = True  # never run without the account when SASL is configured
    rejoin_delay: float = 5.0  # after a kick
    cannot_join_retry: float = 60.0  # at least this long before retrying a ban, +i, +k or +l
    join_on_invite: bool = False
    connect_timeout: float = 15.0
    cap_timeout: float = 10.0  # reconnect if CAP negotiation has not ended by then
    ping_interval: float = 60.0  # send our own PING after this much silence
    ping_timeout: float = 30.0  # ...and give up this long after that
    regain_nick_every: float = 30.0


@dataclass
class Batch:
    """An open IRCv3 BATCH: its type, its parameters, and (netsplit) who quit in it."""

    kind: str
    params: list[str]
    nicks: list[str] = field(default_factory=list)


@dataclass
class Session:
    """What one connection has learned; a fresh one on each connect, so nothing of an
    old connection (its host, its channels, a half-read batch) leaks into the next."""

    generation: int = 0  # counts connects, so timers of an old connection can tell
    port: int = 0  # where this connection went
    join_targets: int = 10  # channels one JOIN may name (ISUPPORT TARGMAX; unsaid: 10,
    # which every server takes: RFC 1459 JOIN always took a list)
    nick_length: int = 15  # ISUPPORT NICKLEN (until said, a length most servers take)
    joins_sent: bool = False  # the config's channels were joined on this connection
    tls: bool = False  # whether it is encrypted
    joined: set[str] = field(default_factory=set)  # irc-lowercased channels we are in
    userhost: str = ""  # ours, as the server shows it (welcome, JOIN echo, CHGHOST)
    line_length: int = IRC_LINE  # ISUPPORT LINELEN, if the server says more
    batches: dict[str, Batch] = field(default_factory=dict)  # open BATCHes by reference
    nick_attempt: int = 0  # which of our nicks registration is trying
    last_rx: float = field(default_factory=time.monotonic)  # when the server last spoke
    ping_sent_at: float | None = None  # our unanswered PING, if any


@dataclass
class Backoff:
    """Exponential reconnect delays with jitter: about 1, 2, 4, then 5 seconds at most."""

    first: float = 1.0
    cap: float = 5.0  # back within seconds of a server's return, however long it was away
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * 2**self.attempts)
        self.attempts += 1
        return delay * (0.5 + self.rng.random() / 2)

    def reset(self) -> None:
        self.attempts = 0
