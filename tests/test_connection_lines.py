"""The connection's fast paths, without a server: lines fed to ``bot.connection``.

JOIN, PART, KICK, QUIT, NICK and MODE lines skip the ``irc`` library's event
machinery (``GuardedConnection.fast``). Each line below is fed to two connections,
one with the fast path and one without, and everything the connection knows or
did afterwards must be the same: the events listeners get (with who did them and
their accounts), channel members and modes, tracked accounts, the channels it is
in, its nick and host, what it sent, and what it logged.

Between lines, a message hands the GIL to the workers and a reply waiting in the
outbox is sent at once, not after the rest of the batch.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import bot.connection
from bot.api import Event
from bot.connection import Connection, ConnectionSettings
from bot.message import Message, Source
from bot.outbox import Outbox

ME = "Bot"
_open: list[Connection] = []


@pytest.fixture(autouse=True)
def _close_reactors() -> Any:
    yield
    while _open:
        _open.pop().reactor.close()  # (its wake-up socket pair)


class Fed:
    """A connection fed lines by hand, as if registered with ``caps``."""

    def __init__(self, caps: set[str], *, fast: bool, whox: bool = False) -> None:
        self.events: list[tuple[Event, Source]] = []
        self.messages: list[Message] = []
        self.sent: list[str] = []
        self.conn = Connection(
            ConnectionSettings("irc.example", 6667, (ME,), channels=("#a",)),
            Outbox(1000, 1000),
            self.messages.append,
            on_event=lambda event, source: self.events.append((event, source)),
        )
        conn = self.conn
        _open.append(conn)
        conn.send_now = self.sent.append  # type: ignore[method-assign]
        conn.negotiation.caps = set(caps)
        conn.members.isupport(["PREFIX=(qaohv)~&@%+", "CASEMAPPING=rfc1459"])
        conn.accounts.whox = whox
        server = conn.server
        server.handlers = {}  # (set by connect())
        server.real_server_name = "irc.example"
        server.real_nickname = ME
        if not fast:
            server.fast = {}

    def feed(self, *lines: str) -> None:
        for line in lines:
            self.conn.server._process_line(line)

    def everything(self) -> dict[str, Any]:
        conn = self.conn
        return {
            "events": self.events,
            "members": {c: dict(m) for c, m in conn.members._members.items()},
            "accounts": dict(conn.accounts._known),
            "joined": set(conn.joined),
            "userhost": conn.userhost,
            "nick": conn.nick,
            "real_nickname": conn.server.real_nickname,
            "sent": self.sent,
            "batches": dict(conn.session.batches),
        }


def both(caps: set[str], lines: list[str], **options: Any) -> tuple[Fed, Fed]:
    fast, slow = Fed(caps, fast=True, **options), Fed(caps, fast=False, **options)
    for fed in (fast, slow):
        fed.feed(*lines)
    assert fast.everything() == slow.everything()
    return fast, slow


WELCOME = [f":{ME}!bot@bot.host JOIN #a", ":irc.example 353 Bot = #a :@Bot ~@Owner +Voiced plain"]


def test_joins_parts_kicks_quits_and_nick_changes_as_the_library_reads_them() -> None:
    fast, _ = both(
        {"multi-prefix"},
        [
            *WELCOME,
            ":Alice!alice@host.example JOIN #a",
            ":Bob[x]!~bob@cloak/bob JOIN :#a",  # the channel as a trailing parameter
            ":Carol!c@h JOIN #a",
            ":Owner!o@h MODE #a +ov-v Alice Bob[x] Voiced",
            ":Owner!o@h MODE #a +b *!*@spam.example",
            ":Alice!alice@host.example NICK :Alicia",
            ":bob{X}!~bob@cloak/bob PART #a :see you",  # the same nick, folded
            ":Owner!o@h KICK #a Carol :out",
            ":Plain!p@h QUIT :Quit: gone",
            ":Alicia!alice@host.example PART #a",
        ],
    )
    assert fast.conn.members.members("#a") == ["bot", "owner", "voiced"]
    assert [(e.kind, e.nick, e.channel, e.text) for e, _ in fast.events] == [
        ("join", ME, "#a", ""),
        ("join", "Alice", "#a", ""),
        ("join", "Bob[x]", "#a", ""),
        ("join", "Carol", "#a", ""),
        ("nick", "Alice", None, "Alicia"),
        ("part", "bob{X}", "#a", "see you"),
        ("kick", "Carol", "#a", "out"),
        ("quit", "Plain", None, "Quit: gone"),
        ("part", "Alicia", "#a", ""),
    ]
    assert fast.events[2][1] == Source("Bob[x]", "~bob", "cloak/bob", None)


def test_the_bots_own_join_records_its_channel_host_and_asks_whox() -> None:
    fast, _ = both(set(), [f":{ME}!~bot@new.host JOIN #b"], whox=True)
    assert fast.conn.joined == {"#b"}
    assert fast.conn.userhost == "~bot@new.host"
    assert fast.sent == ["WHO #b %tna,42"]
    assert fast.conn.members.members("#b") == ["bot"]


def test_extended_join_and_account_tags() -> None:
    lines = [
        *WELCOME,
        ":Alice!a@h JOIN #a alice_acct :Alice Liddell",
        ":Bob!b@h JOIN #a * :Not Logged In",
        "@account=carol_acct;time=2026-12-02T00:00:00.000Z :Carol!c@h JOIN #a carol_acct :C",
        "@time=2026-12-02T00:00:00.000Z :Dave!d@h JOIN #a",
        "@account=alice_acct :Alice!a@h PART #a :bye",
    ]
    extended, _ = both({"extended-join"}, lines)
    assert extended.conn.accounts.of("alice", {}, tagged=False) is None  # forgotten: left
    assert extended.conn.accounts.of("carol", {}, tagged=False) == "carol_acct"
    assert [s.account for _, s in extended.events[1:]] == [
        "alice_acct",  # learned from the JOIN itself
        None,
        "carol_acct",
        None,
        None,  # (forgotten as she leaves, before listeners hear of it)
    ]
    tagged, _ = both({"extended-join", "account-tag"}, lines)
    accounts = [s.account for _, s in tagged.events[1:]]
    assert accounts == [None, None, "carol_acct", None, "alice_acct"]  # the tags alone


def test_a_netsplit_batch_is_one_event() -> None:
    fast, _ = both(
        {"batch"},
        [
            *WELCOME,
            ":A!a@h JOIN #a",
            ":B!b@h JOIN #a",
            ":irc.example BATCH +s1 netsplit hub.example leaf.example",
            "@batch=s1 :A!a@h QUIT :hub.example leaf.example",
            "@batch=s1 :B!b@h QUIT :hub.example leaf.example",
            ":irc.example BATCH -s1",
        ],
    )
    assert fast.events[-1] == (
        Event("netsplit", "", None, "hub.example leaf.example", ("A", "B")),
        Source(""),
    )


def test_the_bots_own_nick_part_and_kick() -> None:
    fast, _ = both(
        set(),
        [
            *WELCOME,
            f":{ME}!bot@bot.host JOIN #b",
            f":{ME}!bot@bot.host NICK Bot2",
            ":Bot2!bot@bot.host PART #b :leaving",
            ":Owner!o@h KICK #a bot2 :out",
        ],
    )
    assert fast.conn.nick == "Bot2" and fast.conn.server.real_nickname == "Bot2"
    assert fast.conn.joined == set()
    assert fast.conn.members._members == {}


@pytest.mark.parametrize(
    "line",
    [
        ":nobody!n@h JOIN",  # no channel
        ":nobody!n@h QUIT",  # the library fails on these two: the line is dropped, logged
        f":{ME}!bot@bot.host NICK",
        ":irc.example MODE Bot +i",  # a user mode: the library's "umode"
        "JOIN #a",  # no source
        ":nick!u@h  JOIN   #a   extra",  # runs of spaces
        ":nick!u@h join #a",  # lower case
        "@ :nick!u@h JOIN #a",  # an empty tag section
    ],
)
def test_odd_lines_end_as_they_would_without_the_fast_path(
    line: str, caplog: pytest.LogCaptureFixture
) -> None:
    logged = []
    for fast in (True, False):
        fed = Fed(set(), fast=fast)
        fed.feed(*WELCOME)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="bot.connection"):
            fed.feed(line)
        logged.append([r.getMessage() for r in caplog.records])
        if fast:
            seen = fed.everything()
        else:
            assert fed.everything() == seen
    assert logged[0] == logged[1]


def test_lines_before_the_server_named_itself_go_through_the_library() -> None:
    fed = Fed(set(), fast=True)
    fed.conn.server.real_server_name = ""
    fed.feed(":Alice!a@h JOIN #a")
    assert fed.conn.server.real_server_name == "Alice!a@h"  # what the library does
    assert [e.kind for e, _ in fed.events] == ["join"]


# -- between lines: the hand-over to workers, and replies sent mid-batch ----------------


class FakeSocket:
    def __init__(self, data: bytes, log: list[str]) -> None:
        self.data, self.log = data, log

    def recv(self, size: int) -> bytes:
        data, self.data = self.data[:size], self.data[size:]
        return data

    def sendall(self, data: bytes) -> None:
        self.log.append("sent " + data.decode().strip())


def registered(fed: Fed, data: bytes, log: list[str]) -> Connection:
    conn = fed.conn
    conn.registered.set()
    conn.server.connected = True
    conn.server.socket = FakeSocket(data, log)
    conn.server.buffer = conn.server.buffer_class()
    return conn


def test_a_reply_goes_out_before_the_rest_of_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    fed = Fed(set(), fast=True)
    lines = [":alice!a@h PRIVMSG Bot :!ping"]
    lines += [f":irc.example 353 Bot = #a :user{i}" for i in range(3)]
    conn = registered(fed, ("\r\n".join(lines) + "\r\n").encode(), log)

    def answer(message: Message) -> None:  # a worker answering at once
        conn.outbox.put(message.source.nick, "pong")
        conn.wake()

    conn.on_message = answer
    conn.members.names = lambda channel, entries: log.append(f"names {entries[0]}")  # type: ignore[method-assign]
    monkeypatch.setattr(bot.connection.time, "sleep", lambda s: log.append("pause"))
    conn.server.process_data()
    assert log == ["pause", "sent PRIVMSG alice :pong", "names user0", "names user1", "names user2"]


def test_the_hand_over_pauses_at_most_once_per_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    clock = [100.0]
    monkeypatch.setattr(bot.connection.time, "sleep", pauses.append)
    monkeypatch.setattr(bot.connection.time, "monotonic", lambda: clock[0])
    fed = Fed(set(), fast=True)
    chat = ":alice!a@h PRIVMSG #a :hello"
    fed.feed(chat, chat)  # the second within the gap: no second pause...
    assert pauses == [bot.connection.HAND_OVER_PAUSE]
    fed.feed(":irc.example 353 Bot = #a :x")
    assert len(pauses) == 1
    clock[0] += 2 * bot.connection.HAND_OVER_GAP  # ...but at the first line after it
    fed.feed(":irc.example 353 Bot = #a :y")
    assert len(pauses) == 2
    fed.feed(":irc.example 353 Bot = #a :z")  # nothing handed over since
    assert len(pauses) == 2
    assert len(fed.messages) == 2
