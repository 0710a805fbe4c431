"""Hostile and malformed input from the server, and what the bot sends back.

Everything here runs a real App against tests/fakeserver.py: a scripted server
on a loopback socket that completes registration itself and then sends whatever
the test wants. After each hostile input the bot must still answer ``PING`` and
``!echo``; the assertions are on the lines the fake server received.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeserver import (
    ECHO,
    FakeServer,
    Script,
    assert_alive,
    privmsg,
    running_app,
    settle,
    wait_until,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.connection import Backoff
from bot.reactor import MAX_LINE_BYTES, BoundedLineBuffer

# --------------------------------------------------------------------------- malformed lines

HOSTILE: dict[str, bytes] = {
    "empty lines": b"\r\n\r\n\n\n",
    "whitespace-only lines": b" \r\n   \r\n\t\r\n \t \n",
    "bare PING": b"PING\r\n",
    "PING with empty trailing": b"PING :\r\n",
    "PING with NUL in the token": b"PING :a\x00b\r\n",
    "PRIVMSG without anything": b"PRIVMSG\r\n:a!b@c PRIVMSG\r\n",
    "PRIVMSG without text": b":a!b@c PRIVMSG #c\r\n",
    "PRIVMSG with empty text": b":a!b@c PRIVMSG #c :\r\n",
    "invalid UTF-8": b":a!b@c PRIVMSG #c :caf\xe9 \xff\xfe\xc3\r\n\xff\xff\xff\r\n",
    "a 100 KB line, then a normal line": b"x" * 100_000 + b"\r\n:a!b@c NOTICE #c :after\r\n",
    "unknown numerics": (
        b":fake.test 999 testbot :whatever\r\n:fake.test 000\r\n"
        b":fake.test 12345 a b c :d\r\n:fake.test 474\r\n:fake.test 433\r\n"
    ),
    "tags with odd escapes": b"@a=\\:\\s\\\\;b= :x!y@z PRIVMSG #c :!echo odd\r\n",
    "tags without anything after": b"@a=b\r\n@\r\n@ \r\n",
    "lone prefix": b":\r\n:x\r\n: PRIVMSG #c :!echo\r\n",
    "NUL and CR inside a line": b":a!b@c PRIVMSG #c :a\x00b\rc\r\n",
    "bare CR line ends": b"PING :cr-only\r:a!b@c PRIVMSG #c :x\r",
    "events without a prefix": b"JOIN #c\r\nNICK x\r\nPART #c\r\nKICK #c\r\nQUIT\r\nMODE\r\n",
    "events with too few params": (
        b":a!b@c JOIN\r\n:a!b@c KICK #c\r\n:a!b@c INVITE\r\n:a!b@c NICK\r\n"
    ),
    "CAP and SASL noise after registration": (
        b":fake.test CAP testbot LS :sasl\r\n:fake.test CAP testbot ACK\r\n"
        b":fake.test CAP\r\nAUTHENTICATE +\r\n:fake.test 904 testbot\r\n:fake.test 903\r\n"
    ),
    "1000 parameters": b":fake.test 005 testbot " + b"X " * 1000 + b":are supported\r\n",
    "CTCP garbage": b":a!b@c PRIVMSG #c :\x01\x01\x01VERSION\r\n:a!b@c PRIVMSG #c :\x01\r\n",
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_line_is_survived(tmp_path: Path, data: bytes) -> None:
    with FakeServer() as server, running_app(tmp_path, server.port) as app:
        session = server.wait_registered()
        session.wait_for(r"^JOIN #c$")
        session.send_raw(data)
        assert_alive(session, "still-here")
        assert session.count(r"^QUIT") == 0
        assert len(server.sessions) == 1, "the bot reconnected"
        assert app.connection.registered.is_set()
        # Nothing the server sent comes back as a line break or NUL inside our lines.
        assert [raw for raw in session.raw if b"\r" in raw or b"\0" in raw] == []


def test_line_after_hostile_bytes_in_the_same_read_is_processed(tmp_path: Path) -> None:
    """One bad line must drop only itself, not the rest of the same recv()."""
    with FakeServer() as server, running_app(tmp_path, server.port):
        session = server.wait_registered()
        bad = b"".join(HOSTILE.values()).replace(b"\r", b"")  # one buffer, bare LFs
        session.send_raw(bad + b"PING :same-read\r\n:a!b@c PRIVMSG #c :!echo same-read\r\n")
        session.wait_for(r"^PONG :?same-read$")
        session.wait_for(r"^PRIVMSG #c :same-read$")


def test_invalid_utf8_is_decoded_leniently(tmp_path: Path) -> None:
    with FakeServer() as server, running_app(tmp_path, server.port):
        session = server.wait_registered()
        session.send_raw(b":a!b@c PRIVMSG #c :!echo caf\xe9\r\n")
        session.wait_for(r"^PRIVMSG #c :café$")


def test_odd_tag_escapes_do_not_hide_the_command(tmp_path: Path) -> None:
    with FakeServer() as server, running_app(tmp_path, server.port):
        session = server.wait_registered()
        session.send_raw(HOSTILE["tags with odd escapes"])
        session.wait_for(r"^PRIVMSG #c :odd$")


def test_overlong_line_never_grows_the_buffer_past_the_limit() -> None:
    """1 MB without a newline, fed in recv-sized pieces: the buffer stays bounded."""
    buffer = BoundedLineBuffer()
    biggest = 0
    for _ in range(64):
        buffer.feed(b"y" * 16_384 + b"PING :inside")
        biggest = max(biggest, len(buffer.buffer))
        assert list(buffer.lines()) == []
    buffer.feed(b"tail\r\nPING :after\r\n")
    assert list(buffer.lines()) == ["PING :after"]
    assert biggest <= MAX_LINE_BYTES + 16_384


def test_replies_fit_the_servers_line_length_with_the_bots_real_prefix(tmp_path: Path) -> None:
    with FakeServer(Script()) as server, running_app(tmp_path, server.port) as app:
        session = server.wait_registered(timeout=3)
        prefix = f":{session.mask} "  # as the welcome said it, and the server relays it
        userhost = session.mask.split("!", 1)[1]
        wait_until(lambda: app.connection.userhost == userhost, what="our user@host learned")
        words = " ".join(f"w{n:03d}" for n in range(180))  # 899 characters

        def echoed() -> list[str]:
            since = session.mark()
            privmsg(session, f"!echo {words}")
            session.wait_for(r"^PRIVMSG #c :.* w179$", since=since)  # the last piece
            return [line for line in session.lines[since:] if line.startswith("PRIVMSG #c :w")]

        lines = echoed()
        assert len(lines) == 2
        sizes = [len(f"{prefix}{line}\r\n".encode()) for line in lines]
        assert max(sizes) <= 512 and sizes[0] >= 505  # full lines: no guessed host wasted
        session.send(":fake.test 005 testbot LINELEN=2048 :are supported by this server")
        wait_until(lambda: app.connection.line_length == 2048, what="LINELEN learned")
        assert echoed() == [f"PRIVMSG #c :{words}"]


def test_one_invalid_byte_spoils_only_itself() -> None:
    buffer = BoundedLineBuffer()
    buffer.feed("PRIVMSG #c :ünïcödé ".encode() + b"\xff" + b" ok\r\n")
    buffer.feed(b"PRIVMSG #c :caf\xe9\r\n")  # all latin-1
    assert list(buffer.lines()) == ["PRIVMSG #c :ünïcödé ÿ ok", "PRIVMSG #c :café"]


# --------------------------------------------------------------------------- CAP negotiation

CAP_TIMEOUT = 0.6


@pytest.mark.parametrize(
    "script",
    [
        Script(cap_ls=None),  # never answers CAP, but holds registration for CAP END
        Script(cap_ls=["multi-prefix", "sasl"], cap_ls_final=False),  # LS never ends
        Script(cap_ls=["multi-prefix server-time message-tags"], cap_req="ignore"),
    ],
    ids=["CAP ignored", "CAP LS never ends", "CAP REQ never answered"],
)
def test_a_stalled_cap_negotiation_reconnects_instead_of_registering_without_caps(
    tmp_path: Path, script: Script
) -> None:
    with (
        FakeServer(script) as server,
        running_app(
            tmp_path, server.port, settings={"cap_timeout": CAP_TIMEOUT}, backoff=FixedBackoff()
        ),
    ):
        first = server.wait_session(0)
        first.wait_for(r"^CAP LS 302$")
        assert first.closed.wait(CAP_TIMEOUT + 2), "the stalled connection was not dropped"
        waited = time.monotonic() - first.times[0]
        assert waited >= CAP_TIMEOUT * 0.9
        assert "CAP END" not in first.lines  # never registered without its capabilities
        server.wait_session(1, timeout=3).wait_for(r"^CAP LS 302$")


def test_a_server_that_was_paused_is_joined_again_with_every_capability(tmp_path: Path) -> None:
    script = Script(cap_ls=None)  # paused: says nothing to CAP LS
    with (
        FakeServer(script) as server,
        running_app(
            tmp_path, server.port, settings={"cap_timeout": CAP_TIMEOUT}, backoff=FixedBackoff()
        ) as app,
    ):
        server.wait_session(0).wait_for(r"^CAP LS 302$")
        script.cap_ls = ["multi-prefix account-tag server-time message-tags"]  # resumed
        server.wait_registered(1, timeout=CAP_TIMEOUT + 3)
        wait_until(lambda: "account-tag" in app.connection.caps, what="account-tag")


def test_nak_of_everything_ends_cap_at_once(tmp_path: Path) -> None:
    script = Script(cap_ls=["multi-prefix message-tags server-time account-tag"], cap_req="nak")
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, settings={"cap_timeout": 30}) as app,
    ):
        session = server.wait_registered(timeout=3)  # not the 30 s give-up
        session.wait_for(r"^CAP REQ :")
        assert app.connection.caps == set()
        assert_alive(session, "after-nak")


def test_server_that_does_not_know_cap_registers_at_once(tmp_path: Path) -> None:
    script = Script(cap_ls=None, hold_for_cap_end=False)
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, settings={"cap_timeout": 30}),
    ):
        session = server.wait_registered(timeout=3)
        session.send(":fake.test 421 testbot CAP :Unknown command")
        assert_alive(session, "no-cap")


def test_multiline_cap_ls_is_collected(tmp_path: Path) -> None:
    script = Script(cap_ls=["multi-prefix", "server-time", "message-tags foo=bar"])
    with FakeServer(script) as server, running_app(tmp_path, server.port) as app:
        session = server.wait_registered(timeout=3)
        request = session.wait_for(r"^CAP REQ :")
        assert request == "CAP REQ :message-tags multi-prefix server-time"
        wait_until(lambda: app.connection.caps == {"message-tags", "multi-prefix", "server-time"})


def test_capabilities_offered_and_withdrawn_while_connected(tmp_path: Path) -> None:
    script = Script(cap_ls=["multi-prefix cap-notify"])
    with FakeServer(script) as server, running_app(tmp_path, server.port) as app:
        session = server.wait_registered(timeout=3)
        wait_until(lambda: "cap-notify" in app.connection.caps, what="cap-notify")
        since = session.mark()
        session.send(":fake.test CAP testbot NEW :account-tag sasl=PLAIN unknown-cap")
        request = session.wait_for(r"^CAP REQ :", since=since)
        assert request == "CAP REQ :account-tag"  # only what the bot uses, not sasl now
        wait_until(lambda: "account-tag" in app.connection.caps, what="account-tag enabled")
        session.send(":fake.test CAP testbot DEL :account-tag")
        wait_until(lambda: "account-tag" not in app.connection.caps, what="account-tag gone")
        assert_alive(session, "after-cap-del")


EVENTS = '''
from bot.api import command, on_event

SEEN = []


@on_event("quit", "netsplit", "away")
def heard(ctx, event):
    SEEN.append((event.kind, event.nick, event.text, event.nicks))


@command
def echo(ctx, args):
    """echo TEXT -- TEXT"""
    return args
'''


def test_a_netsplit_batch_is_one_event_and_away_notify_is_heard(tmp_path: Path) -> None:
    script = Script(cap_ls=["batch away-notify"])
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, commands={"events.py": EVENTS}) as app,
    ):
        session = server.wait_registered(timeout=3)
        wait_until(lambda: {"batch", "away-notify"} <= app.connection.caps, what="the caps")
        session.send(":fake.test BATCH +sp1 netsplit hub.example leaf.example")
        for nick in ("ann", "ben", "cat"):
            session.send(f"@batch=sp1 :{nick}!u@h.example QUIT :hub.example leaf.example")
        session.send(":fake.test BATCH -sp1")
        session.send(":solo!u@h.example QUIT :bye")  # not in a batch: a quit of its own
        session.send(":dan!u@h.example AWAY :lunch")
        session.send(":dan!u@h.example AWAY")
        seen = app.registry.modules["events"].module.SEEN
        wait_until(lambda: len(seen) >= 4, what="four events")
        settle(app, session)  # and no more than those
        assert sorted(seen) == sorted(
            [
                ("netsplit", "", "hub.example leaf.example", ("ann", "ben", "cat")),
                ("quit", "solo", "bye", ()),
                ("away", "dan", "lunch", ()),
                ("away", "dan", "", ()),
            ]
        )


def test_our_own_echoed_lines_are_never_answered(tmp_path: Path) -> None:
    script = Script(cap_ls=["echo-message"])
    with FakeServer(script) as server, running_app(tmp_path, server.port) as app:
        session = server.wait_registered(timeout=3)
        wait_until(lambda: "echo-message" in app.connection.caps, what="echo-message")
        since = session.mark()
        session.send(":testbot!bot@bot.example PRIVMSG #c :!echo loop")  # as echoed back
        privmsg(session, "!echo fence")
        session.wait_for(r"^PRIVMSG #c :fence$", since=since)
        assert "PRIVMSG #c :loop" not in session.lines[since:]


class FixedBackoff(Backoff):
    def next_delay(self) -> float:
        self.attempts += 1
        return 0.4


def test_stale_cap_give_up_timer_does_not_cut_a_later_negotiation_short(tmp_path: Path) -> None:
    """The give-up timer of a dropped connection must not end the next one's CAP early."""
    cap_timeout = 1.0
    script = Script(cap_ls=None)  # never answers CAP: only the give-up ends it
    with (
        FakeServer(script) as server,
        running_app(
            tmp_path, server.port, settings={"cap_timeout": cap_timeout}, backoff=FixedBackoff()
        ),
    ):
        first = server.wait_session(0)
        first.wait_for(r"^USER ")
        first.close()  # dropped mid-negotiation; the bot reconnects 0.4 s later
        second = server.wait_session(1)
        second.wait_for(r"^CAP LS 302$")
        assert second.closed.wait(cap_timeout + 2)
        waited = time.monotonic() - second.times[0]
        assert waited >= cap_timeout * 0.9, f"CAP given up {waited:.2f} s after connecting"


# --------------------------------------------------------------------------- property-based


def _tag_value() -> st.SearchStrategy[str]:
    return st.text(alphabet=st.sampled_from(list("ab;= \\:s\x00é")), max_size=8)


TAGS = st.lists(
    st.tuples(
        st.sampled_from(["a", "+x", "account", "time", "msgid", "+draft/r", ""]),
        st.one_of(st.none(), _tag_value()),
    ),
    max_size=3,
).map(
    lambda tags: (
        "@" + ";".join(k if v is None else f"{k}={v}" for k, v in tags) + " " if tags else ""
    )
)
_PREFIXES = ": :fake.test :a!b@c :testbot!bot@bot.host :x :a!@ :!@ :nick!user :u@h"
PREFIX = st.sampled_from(["", *(p + " " for p in _PREFIXES.split())])
_COMMANDS = (
    "PRIVMSG NOTICE PING PONG JOIN PART KICK QUIT NICK MODE INVITE TOPIC CAP AUTHENTICATE"
    " ACCOUNT ERROR 001 005 353 366 433 474 473 900 903 904 999 0 privmsg"
)
COMMAND = st.sampled_from([*_COMMANDS.split(), "", "\xff"])
MIDDLE = st.sampled_from(
    ["#c", "testbot", "*", "LS", "ACK", "NAK", "+", "#other", ":", "", "a b", "#c,#d", "\\"]
)
TRAILING = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "",
            "!echo fuzz",
            "!echo",
            "!",
            "!help",
            "!modules",
            "\x01VERSION\x01",
            "sasl multi-prefix",
            "#c",
        ]
    ),
    st.text(max_size=20),
)


@st.composite
def irc_line(draw: st.DrawFn) -> bytes:
    params = draw(st.lists(MIDDLE, max_size=4))
    trailing = draw(TRAILING)
    text = draw(TAGS) + draw(PREFIX) + draw(COMMAND)
    text += "".join(" " + p for p in params)
    if trailing is not None:
        text += " :" + trailing
    data = text.encode("utf-8", "surrogateescape")
    # Mutate: cut it, or splice random bytes in.
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=12)) + data[at:]
    return data


LINES = st.lists(st.one_of(irc_line(), st.binary(max_size=40)), min_size=1, max_size=8)


def test_random_and_mutated_lines_never_stop_the_bot(tmp_path: Path) -> None:
    """Property: whatever lines arrive, the bot still answers PINGs and commands.

    Each example's lines go out in one write, followed by a PING that must come
    back (so every line was processed first); then a user's ``!echo`` must be
    answered. The same bot and connection serve all the examples.
    """
    tokens = iter(range(1_000_000))
    with (
        FakeServer() as server,
        running_app(tmp_path, server.port, workers=8, settings={"cap_timeout": 0.5}) as app,
    ):
        session = server.wait_registered()

        @settings(
            max_examples=200,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(LINES)
        def bot_survives(lines: list[bytes]) -> None:
            n = next(tokens)
            since = session.mark()
            # One write: a line that broke the read loop would take the PING with it.
            fuzz = b"".join(line + b"\r\n" for line in lines)
            session.send_raw(fuzz + b"\r\n" + f"PING :fuzz{n}\r\n".encode())
            session.wait_for(rf"^PONG :?fuzz{n}$", since=since)
            # Commands the fuzz itself triggered may still run; let them end first so a
            # "busy" refusal is not mistaken for a dead bot.
            wait_until(lambda: not app.dispatcher.running(), what="fuzz commands to finish")
            privmsg(session, f"!echo ok{n}", nick=f"checker{n % 7}")
            session.wait_for(rf"^PRIVMSG #c :ok{n}$", since=since)

        bot_survives()
        assert len(server.sessions) == 1, "the bot dropped the connection"
        assert_alive(session, "after-fuzz")


# --------------------------------------------------------------------------- outbound pacing

SPAM = '''
from bot.api import command

@command
def spam(ctx, args):
    """spam N -- say N numbered lines"""
    return [f"line {i}" for i in range(int(args))]
'''


def test_outbound_token_bucket_paces_replies_but_not_pong(tmp_path: Path) -> None:
    burst, rate, count = 3, 5.0, 20
    with (
        FakeServer() as server,
        running_app(
            tmp_path,
            server.port,
            commands={"spam.py": SPAM},
            rate_limit={"burst": burst, "per_second": rate, "per_reply": count},
        ),
    ):
        session = server.wait_registered()
        session.wait_for(r"^JOIN #c$")
        since = session.mark()
        privmsg(session, f"!spam {count}")
        session.wait_for(r"^PRIVMSG #c :line 4$", since=since)  # queue: 15 lines still to go
        ping_sent = time.monotonic()
        session.send("PING :priority")
        pong = session.wait_for(r"^PONG :?priority$", since=since)
        pong_at = session.times[session.index_of(pong, since)]
        session.wait_for(rf"^PRIVMSG #c :line {count - 1}$", timeout=count / rate + 3)

        replies = [
            (t, line)
            for t, line in zip(session.times[since:], session.lines[since:], strict=True)
            if line.startswith("PRIVMSG #c :line ")
        ]
        assert [line for _, line in replies] == [f"PRIVMSG #c :line {i}" for i in range(count)]
        first = replies[0][0]
        for k, (t, _) in enumerate(replies):
            allowed = max(0, k - burst + 1) / rate  # earliest the bucket lets line k out
            assert t - first >= allowed - 0.05, f"line {k} came {t - first:.2f} s in"
        assert replies[-1][0] - first <= (count - burst) / rate + 1.5
        # The PONG jumped the queue: it came at once, long before the last reply.
        assert pong_at - ping_sent < 0.25
        assert pong_at < replies[-1][0] - 1.0


# --------------------------------------------------------------------------- command rates


def test_one_user_flooding_commands_gets_at_most_per_user_answers(tmp_path: Path) -> None:
    per_user = 4
    with (
        FakeServer() as server,
        running_app(
            tmp_path,
            server.port,
            command_rate={"per_user": per_user, "per_channel": 100, "window": 30},
        ) as app,
    ):
        session = server.wait_registered()
        since = session.mark()
        flood = b"".join(
            f":flooder!f@flood.example PRIVMSG #c :!echo f{i}\r\n".encode() for i in range(50)
        )
        session.send_raw(flood)
        privmsg(session, "!echo other-user", nick="bob")
        session.wait_for(r"^PRIVMSG #c :other-user$", since=since)
        assert_alive(session, "after-flood")  # a third user, and PING, also answered
        settle(app, session)
        answered = session.count(r"^PRIVMSG #c :(f\d+|flooder: .*)$", since)
        assert 1 <= answered <= per_user


def test_command_rate_is_per_user_at_host_not_per_nick(tmp_path: Path) -> None:
    """Changing nick does not reset the count; a new user@host has its own."""
    with (
        FakeServer() as server,
        running_app(
            tmp_path, server.port, command_rate={"per_user": 2, "per_channel": 100, "window": 30}
        ) as app,
    ):
        session = server.wait_registered()
        since = session.mark()
        for i, nick in enumerate(["n1", "n2", "n3", "n4"]):
            session.send(f":{nick}!same@same.example PRIVMSG #c :!echo nick{i}")
        session.send(":n5!other@other.example PRIVMSG #c :!echo fresh")
        session.wait_for(r"^PRIVMSG #c :fresh$", since=since)
        settle(app, session)
        assert session.count(r"^PRIVMSG #c :nick\d$", since) == 2


def test_per_channel_rate_limits_many_users_in_one_channel(tmp_path: Path) -> None:
    with (
        FakeServer() as server,
        running_app(
            tmp_path, server.port, command_rate={"per_user": 10, "per_channel": 3, "window": 30}
        ) as app,
    ):
        session = server.wait_registered()
        since = session.mark()
        for i in range(10):
            privmsg(session, f"!echo chan{i}", nick=f"user{i}")
        privmsg(session, "!echo private", nick="user0", target="testbot")
        session.wait_for(r"^PRIVMSG user0 :private$", since=since)
        settle(app, session)
        assert session.count(r"^PRIVMSG #c :chan\d$", since) == 3


# --------------------------------------------------------------------------- hanging commands

HANG = '''
import sys
from bot.api import command

@command
def hang(ctx, args):
    """hang -- block until the test releases it"""
    probe = sys.modules["PROBE"]
    probe.started.release()
    if not probe.gate.wait(30):
        return "never released"
    return f"released {ctx.nick}"
'''


@pytest.fixture
def probe() -> Iterator[types.ModuleType]:
    """A module the command files find in sys.modules: a gate and a 'started' counter."""
    name = f"probe_{uuid.uuid4().hex[:8]}"
    module = types.ModuleType(name)
    module.gate = threading.Event()  # type: ignore[attr-defined]
    module.started = threading.Semaphore(0)  # type: ignore[attr-defined]
    module.barrier = threading.Barrier(8, timeout=10)  # type: ignore[attr-defined]
    sys.modules[name] = module
    yield module
    module.gate.set()  # type: ignore[attr-defined]
    module.barrier.abort()  # type: ignore[attr-defined]
    del sys.modules[name]


def _acquire(semaphore: threading.Semaphore, count: int) -> None:
    for _ in range(count):
        assert semaphore.acquire(timeout=5), "a command did not start"


def test_hanging_commands_time_out_busy_refusal_and_admin_builtins(
    tmp_path: Path, probe: types.ModuleType
) -> None:
    commands = {"echo.py": ECHO, "hang.py": HANG.replace("PROBE", probe.__name__)}
    with (
        FakeServer() as server,
        running_app(
            tmp_path, server.port, commands=commands, workers=2, command_timeout=0.5
        ) as app,
    ):
        session = server.wait_registered()
        since = session.mark()
        privmsg(session, "!hang", nick="stuck1")
        _acquire(probe.started, 1)
        # One worker stuck: others are answered meanwhile, and the stuck one times out.
        privmsg(session, "!echo meanwhile", nick="bob")
        session.wait_for(r"^PRIVMSG #c :meanwhile$", since=since)
        session.wait_for(r"^PRIVMSG #c :hang: timed out after 0\.5 s$", timeout=3, since=since)

        privmsg(session, "!hang", nick="stuck2")
        _acquire(probe.started, 1)
        # A burst of quick commands would queue; calls past their timeout count as stuck.
        timed_out = r"^PRIVMSG #c :hang: timed out after 0\.5 s$"
        wait_until(lambda: session.count(timed_out, since) == 2, what="both calls to time out")
        # Both workers stuck: a third user is told the bot is busy...
        privmsg(session, "!echo please", nick="carol")
        session.wait_for(r"^PRIVMSG #c :carol: busy, try again in a moment$", since=since)
        # ...while an admin's built-in still runs and shows what is stuck.
        privmsg(session, "!modules", nick="boss")  # boss!boss@boss.example is not admin
        session.wait_for(r"^PRIVMSG #c :boss: !modules is for admins only$", since=since)
        session.send(":boss!admin@trusted.example PRIVMSG #c :!modules")
        running = session.wait_for(r"^PRIVMSG #c :running: ", since=since)
        assert "hang for stuck1" in running and "hang for stuck2" in running
        assert session.count(r"^PRIVMSG #c :please$", since) == 0

        probe.gate.set()
        session.wait_for(r"^PRIVMSG #c :released stuck1$", since=since)
        session.wait_for(r"^PRIVMSG #c :released stuck2$", since=since)
        wait_until(lambda: not app.dispatcher.running(), what="the released calls to end")
        privmsg(session, "!echo normal-again", nick="carol")
        session.wait_for(r"^PRIVMSG #c :normal-again$", since=since)
        assert session.count(r"never released", since) == 0


def test_one_user_cannot_take_every_worker(tmp_path: Path, probe: types.ModuleType) -> None:
    commands = {"echo.py": ECHO, "hang.py": HANG.replace("PROBE", probe.__name__)}
    with (
        FakeServer() as server,
        running_app(tmp_path, server.port, commands=commands, workers=4, command_timeout=0.5),
    ):
        session = server.wait_registered()
        since = session.mark()
        privmsg(session, "!hang", nick="greedy")
        privmsg(session, "!hang", nick="greedy")
        _acquire(probe.started, 2)
        timed_out = r"^PRIVMSG #c :hang: timed out after 0\.5 s$"
        wait_until(lambda: session.count(timed_out, since) == 2, what="both calls to time out")
        privmsg(session, "!hang", nick="greedy")
        session.wait_for(r"^PRIVMSG #c :greedy: still busy with your last commands$", since=since)
        privmsg(session, "!echo fine", nick="other")
        session.wait_for(r"^PRIVMSG #c :fine$", since=since)
        probe.gate.set()
        session.wait_for(r"^PRIVMSG #c :released greedy$", since=since)


def test_a_burst_of_quick_commands_queues_instead_of_being_refused(tmp_path: Path) -> None:
    with (
        FakeServer() as server,
        running_app(
            tmp_path,
            server.port,
            commands={"echo.py": ECHO},
            workers=2,
            command_rate={"per_user": 1000, "per_channel": 1000, "window": 1},
        ),
    ):
        session = server.wait_registered()
        since = session.mark()
        for i in range(60):
            privmsg(session, f"!echo n{i}", nick="bursty")
        wait_until(lambda: session.count(r"^PRIVMSG #c :n\d+$", since) == 60, what="60 answers")
        assert session.count(r"busy", since) == 0


def test_changing_nick_does_not_escape_the_running_cap(
    tmp_path: Path, probe: types.ModuleType
) -> None:
    """The cap counts by user@host: the same person under three nicks is still one user."""
    commands = {"echo.py": ECHO, "hang.py": HANG.replace("PROBE", probe.__name__)}
    with (
        FakeServer() as server,
        running_app(tmp_path, server.port, commands=commands, workers=4, command_timeout=0.5),
    ):
        session = server.wait_registered()
        since = session.mark()
        for nick in ("greedy", "greedy2"):
            session.send(f":{nick}!greedy@greedy.example PRIVMSG #c :!hang")
        _acquire(probe.started, 2)
        timed_out = r"^PRIVMSG #c :hang: timed out after 0\.5 s$"
        wait_until(lambda: session.count(timed_out, since) == 2, what="both calls to time out")
        session.send(":greedy3!greedy@greedy.example PRIVMSG #c :!hang")
        session.wait_for(r"^PRIVMSG #c :greedy3: still busy with your last commands$", since=since)
        probe.gate.set()
        session.wait_for(r"^PRIVMSG #c :released greedy2$", since=since)


# --------------------------------------------------------------------------- one writer

CHATTY = '''
import sys
from bot.api import command

@command
def chatty(ctx, args):
    """chatty -- many long replies, from 8 workers at once"""
    sys.modules["PROBE"].barrier.wait()
    for i in range(40):
        ctx.reply(f"{ctx.nick} {i} " + "x" * 300)
'''


def test_only_the_connection_thread_writes_to_the_socket(
    tmp_path: Path, probe: types.ModuleType
) -> None:
    commands = {"chatty.py": CHATTY.replace("PROBE", probe.__name__)}
    with (
        FakeServer() as server,
        running_app(tmp_path, server.port, commands=commands, workers=8) as app,
    ):
        session = server.wait_registered()
        session.wait_for(r"^JOIN #c$")
        connection = app.connection
        writers: set[str] = set()
        original = connection.server.send_raw  # type: ignore[attr-defined]

        def recording_send_raw(line: str) -> None:
            writers.add(threading.current_thread().name)
            original(line)

        connection.server.send_raw = recording_send_raw  # type: ignore[attr-defined]
        since = session.mark()
        users = [f"user{i}" for i in range(8)]
        for nick in users:
            privmsg(session, "!chatty", nick=nick)
        for nick in users:
            session.wait_for(rf"^PRIVMSG #c :{nick} 39 x+$", timeout=10, since=since)

        network_thread = connection._thread  # type: ignore[attr-defined]
        assert writers == {network_thread.name}
        shape = re.compile(r"^PRIVMSG #c :(user\d) (\d+) x{300}$")
        seen: dict[str, list[int]] = {nick: [] for nick in users}
        for line in session.lines_since(since):
            match = shape.match(line)
            assert match, f"interleaved or corrupted line: {line[:80]!r}"
            seen[match[1]].append(int(match[2]))
        assert all(numbers == list(range(40)) for numbers in seen.values()), seen
