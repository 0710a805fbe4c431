"""Faults: a server that dies, goes silent, never answers, refuses our nick, kicks,
bans or invites us, or shows a certificate we cannot verify.

Real-server cases use ngIRCd (``private_ngircd`` for the one we kill); the rest
use tests/fakeserver.py, whose clock-free scripts make timing assertions exact.
"""

from __future__ import annotations

import itertools
import logging
import random
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from fakeserver import (
    FakeServer,
    Script,
    Session,
    assert_alive,
    black_hole,
    running_app,
    wait_until,
)
from helpers import self_signed_certificate
from ircclient import ClientFactory

from bot.connection import Backoff
from bot.ircd import Ngircd
from bot.sts import StsOffer, StsPolicies, parse_offer

# --------------------------------------------------------------------------- a real server dies


@pytest.mark.integration
def test_killed_server_reconnect_rejoin_and_answer(
    private_ngircd: Ngircd,
    irc_client: ClientFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGKILL the server, start it again: the bot is back within its backoff window."""
    caplog.set_level(logging.INFO, logger="bot.connection")
    channels = ["#one", "#two"]
    with running_app(tmp_path, private_ngircd.port, channels=channels, backoff=Backoff()) as app:
        connection = app.connection
        wait_until(lambda: connection.joined == {"#one", "#two"}, what="the first joins")
        private_ngircd.kill()
        killed = time.time()
        wait_until(lambda: not connection.registered.is_set(), what="the bot to notice")
        private_ngircd.start()

        wait_until(
            lambda: connection.connects == 2 and connection.joined == {"#one", "#two"},
            timeout=8,
            what="reconnect and rejoin",
        )
        retries = [
            r.created
            for r in caplog.records
            if r.getMessage().startswith("connecting to") and r.created > killed
        ]
        assert retries, "no reconnect attempt logged"
        assert retries[0] - killed < 2.0, "the first retry came too late"

        client = irc_client(server=private_ngircd)
        for channel in channels:
            client.join(channel)
            client.privmsg(channel, f"!echo back in {channel}")
            client.wait_for(rf"PRIVMSG {channel} :back in {channel}$")


# --------------------------------------------------------------------------- silence


def test_half_open_connection_is_detected_by_the_ping_timer(tmp_path: Path) -> None:
    settings = {"ping_interval": 0.3, "ping_timeout": 0.3}
    with FakeServer() as server, running_app(tmp_path, server.port, settings=settings):
        first = server.wait_registered()
        # While the server answers our PINGs, idle periods are fine: a second PING on
        # the same connection means the first PONG counted as life.
        first.wait_for(r"^PING ", timeout=3)
        first.wait_for(r"^PING ", timeout=3)
        assert not first.closed.is_set() and len(server.sessions) == 1

        first.mute()  # half-open: nothing arrives any more, PINGs go unanswered
        muted = time.monotonic()
        first.wait_for(r"^PING ", timeout=3)
        second = server.wait_registered(1, timeout=5)
        assert first.closed.wait(1), "the dead connection was not closed"
        assert time.monotonic() - muted < 4
        assert_alive(second, "after-ping-timeout")


def test_server_that_accepts_and_never_speaks_is_left(tmp_path: Path) -> None:
    settings = {"ping_interval": 0.3, "ping_timeout": 0.3, "cap_timeout": 0.3}
    with (
        FakeServer(Script(silent=True)) as server,
        running_app(tmp_path, server.port, settings=settings) as app,
    ):
        first = server.wait_session(0)
        server.wait_session(1, timeout=5)  # the CAP give-up (or the ping timer) left it
        assert first.closed.wait(2)
        assert app.connection.connects == 0


def test_connect_that_never_completes_times_out_and_retries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    listener, fillers = black_hole()
    port = listener.getsockname()[1]
    try:
        with running_app(tmp_path, port, settings={"connect_timeout": 0.3}) as app:

            def failures() -> list[logging.LogRecord]:
                return [r for r in caplog.records if "could not connect" in r.getMessage()]

            wait_until(lambda: len(failures()) >= 2, timeout=5, what="two timed-out connects")
            assert "timed out" in failures()[0].getMessage()
            assert not app.connection.registered.is_set()
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


# --------------------------------------------------------------------------- nicks


@pytest.mark.integration
def test_nick_in_use_then_regained_when_free(
    ngircd: Ngircd, irc_client: ClientFactory, tmp_path: Path
) -> None:
    holder = irc_client("hold")
    wanted = holder.nick
    with running_app(
        tmp_path, ngircd.port, nick=wanted, settings={"regain_nick_every": 0.3}
    ) as app:
        connection = app.connection
        wait_until(connection.registered.is_set, what="registration under another nick")
        assert connection.nick == f"{wanted}_"
        wait_until(lambda: "#c" in connection.joined, what="the bot to join #c")
        holder.join("#c")
        holder.privmsg("#c", "!echo alt")
        holder.wait_for(rf"^:{wanted}_!\S+ PRIVMSG #c :alt$")

        holder.close()  # the nick is free now
        wait_until(lambda: connection.nick == wanted, timeout=3, what="the nick regained")
        watcher = irc_client("watch")
        watcher.join("#c")
        watcher.privmsg("#c", "!echo regained")
        watcher.wait_for(rf"^:{wanted}!\S+ PRIVMSG #c :regained$")


def test_every_nick_taken_falls_back_to_a_generated_one(tmp_path: Path) -> None:
    script = Script(taken_nicks={"testbot", "testbot_", "testbot__"})
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, settings={"regain_nick_every": 0.2}) as app,
    ):
        session = server.wait_registered()
        assert session.nick.startswith("testbot") and session.nick not in script.taken_nicks
        assert_alive(session, "generated-nick")
        script.taken_nicks.clear()
        wait_until(lambda: app.connection.nick == "testbot", what="the nick regained")
        assert session.nick == "testbot"


# --------------------------------------------------------------------------- channels


def _join_times(session: Session, channel: str, since: int = 0) -> list[float]:
    lines = session.lines_since(since)
    times = session.times[since : since + len(lines)]
    return [t for t, line in zip(times, lines, strict=True) if line == f"JOIN {channel}"]


def test_kicked_bot_rejoins_after_rejoin_delay(tmp_path: Path) -> None:
    rejoin_delay = 0.5
    with (
        FakeServer() as server,
        running_app(tmp_path, server.port, channels=["#c"], rejoin_delay=rejoin_delay) as app,
    ):
        session = server.wait_registered()
        session.wait_for(r"^JOIN #c$")
        session.send(":testbot!bot@bot.host JOIN #other")  # joined by hand, not configured
        wait_until(lambda: app.connection.joined == {"#c", "#other"})
        since = session.mark()
        session.send(":op!op@op.example KICK #other testbot :not you either")
        session.send(":op!op@op.example KICK #c testbot :out")
        kicked = time.monotonic()
        wait_until(lambda: app.connection.joined == set(), what="the kicks to be processed")
        session.wait_for(r"^JOIN #c$", timeout=rejoin_delay + 2, since=since)
        (rejoined,) = _join_times(session, "#c", since)
        assert rejoin_delay * 0.95 <= rejoined - kicked <= rejoin_delay + 1.5
        # Its timer was due first: had #other been rejoined, it would be here by now.
        assert _join_times(session, "#other", since) == []
        assert_alive(session, "after-kick")


def test_banned_is_logged_and_retried_later_without_a_tight_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    retry = 0.5

    def ban(session: Session, channel: str) -> None:
        for _ in range(2):  # a hostile server that says it twice
            session.send(f":fake.test 474 {session.nick} {channel} :Cannot join channel (+b)")

    with (
        FakeServer(Script(join=ban)) as server,
        running_app(
            tmp_path,
            server.port,
            rejoin_delay=0.01,
            settings={"cannot_join_retry": retry},
        ),
    ):
        session = server.wait_registered()
        session.wait_for(r"^JOIN #c$")
        session.wait_for(r"^JOIN #c$", timeout=retry + 2)
        session.wait_for(r"^JOIN #c$", timeout=retry + 2)
        times = _join_times(session, "#c")
        assert len(times) == 3, "refusals multiplied the retries"
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= retry * 0.9 for gap in gaps), gaps
        assert any("cannot join #c" in r.getMessage() for r in caplog.records)
        assert_alive(session, "while-banned")


@pytest.mark.parametrize("join_on_invite", [False, True])
def test_invite_is_followed_only_when_configured(tmp_path: Path, join_on_invite: bool) -> None:
    with (
        FakeServer() as server,
        running_app(tmp_path, server.port, join_on_invite=join_on_invite),
    ):
        session = server.wait_registered()
        since = session.mark()
        session.send(":friend!f@friend.example INVITE testbot :#party")
        # The INVITE is handled before the PING that follows it: any JOIN comes first.
        session.send("PING :after-invite")
        session.wait_for(r"^PONG :?after-invite$", since=since)
        assert len(_join_times(session, "#party", since)) == (1 if join_on_invite else 0)


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server-side TLS context with a fresh self-signed certificate for 127.0.0.1."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_tls_self_signed_is_refused_by_default(
    tmp_path: Path, self_signed: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        FakeServer(tls=self_signed) as server,
        running_app(tmp_path, server.port, server={"tls": True}) as app,
    ):
        server.wait_session(1)  # refused once, and tried again
        first = server.wait_session(0)
        wait_until(lambda: first.closed.is_set())
        assert first.handshake_error is not None
        assert first.lines == [], "sent something over an unverified connection"
        assert any("CERTIFICATE_VERIFY_FAILED" in r.getMessage() for r in caplog.records)
        assert not app.connection.registered.is_set()


def test_tls_self_signed_is_accepted_with_tls_verify_false(
    tmp_path: Path, self_signed: ssl.SSLContext
) -> None:
    with (
        FakeServer(tls=self_signed) as server,
        running_app(tmp_path, server.port, server={"tls": True, "tls_verify": False}),
    ):
        session = server.wait_registered()
        assert session.handshake_error is None
        assert_alive(session, "over-tls")
        assert len(server.sessions) == 1


def test_channels_are_joined_several_to_a_line_and_paced(tmp_path: Path) -> None:
    """TARGMAX=JOIN:3 and eighteen channels: six JOIN lines, four at once, then one a
    second (so hundreds of channels neither flood the server nor bury a command)."""
    channels = [f"#c{n:02d}" for n in range(18)]
    script = Script(isupport="TARGMAX=JOIN:3,PRIVMSG:4")
    with FakeServer(script) as server, running_app(tmp_path, server.port, channels=channels):
        session = server.wait_registered()
        last = session.wait_for(r"^JOIN #c15,#c16,#c17$", timeout=5)
        joins = [n for n, line in enumerate(session.lines) if line.startswith("JOIN ")]
        assert [session.lines[n] for n in joins] == [
            "JOIN " + ",".join(channels[i : i + 3]) for i in range(0, 18, 3)
        ]
        times = [session.times[n] for n in joins]
        assert times[3] - times[0] < 1.0  # the burst (however busy the machine)
        assert times[5] - times[3] > 1.6  # then one a second, never faster
        assert last == session.lines[joins[-1]]


def test_sts_moves_the_bot_to_tls_and_keeps_it_there_after_a_restart(
    tmp_path: Path, self_signed: ssl.SSLContext
) -> None:
    secure = Script(cap_ls=["multi-prefix sts=duration=300"])
    with FakeServer(secure, tls=self_signed) as tls_server:
        plain = Script(cap_ls=[f"multi-prefix sts=port={tls_server.port}"])
        with FakeServer(plain) as plain_server:
            config: dict[str, Any] = {
                "server": {"tls_verify": False},  # the test's self-signed certificate
                "state_db": str(tmp_path / "state.sqlite3"),  # where the policy is kept
            }
            with running_app(tmp_path, plain_server.port, **config) as app:
                session = tls_server.wait_registered(timeout=5)
                assert_alive(session, "upgraded")
                first = plain_server.wait_session(0)
                assert first.closed.wait(2)
                assert "CAP END" not in first.lines and "CAP REQ" not in " ".join(first.lines)
                assert app.connection.session.tls
            # a restart, config.yaml still saying plain text: the policy holds
            with running_app(tmp_path, plain_server.port, **config):
                tls_server.wait_registered(1, timeout=5)
                assert len(plain_server.sessions) == 1


def test_sts_offers_are_read_strictly() -> None:
    assert parse_offer("port=6697,duration=300") == StsOffer(6697, 300)
    assert parse_offer("duration=0") == StsOffer(None, 0)
    assert parse_offer("port=99999,duration=-5,x") == StsOffer(None, None)
    policies = StsPolicies(clock=lambda: 1000.0)
    policies.remember("Irc.Example", 6697, 60)
    assert policies.port_for("irc.example") == 6697
    assert StsPolicies(policies._store, clock=lambda: 1061.0).port_for("irc.example") is None
    policies.remember("irc.example", 6697, 0)  # duration 0: forget it
    assert policies.port_for("irc.example") is None


# ------------------------------------------------------------- timers from other threads


def test_a_far_timer_from_another_thread_fires_on_time_without_waking_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command's timeout check is a timer set from a worker for every call: one due
    later than two of the loop's longest sleeps must not wake the busy loop for it."""
    from bot import connection as conn_module

    with FakeServer() as server, running_app(tmp_path, server.port) as app:
        server.wait_registered()
        connection = app.connection
        wakes: list[float] = []
        real_wake = connection.reactor.wake
        monkeypatch.setattr(
            connection.reactor, "wake", lambda: (wakes.append(time.monotonic()), real_wake())
        )
        delay = 2 * conn_module.MAX_SLEEP + 0.1
        fired: list[float] = []
        set_at = time.monotonic()
        app.call_later(delay, lambda: fired.append(time.monotonic()))
        assert wakes == []
        wait_until(lambda: fired, timeout=delay + 5, what="the far timer")
        assert fired[0] - set_at >= delay
        # a loop iteration late at most, and whatever the machine's load: not a timeout
        assert fired[0] - set_at < delay + conn_module.MAX_SLEEP + 1.0

        near: list[float] = []
        app.call_later(0.0, lambda: near.append(time.monotonic()))
        assert len(wakes) == 1  # a near one wakes the loop at once
        wait_until(lambda: near, what="the near timer")


# --------------------------------------------------------------------------- recovery


@pytest.mark.parametrize("outage", [10.0, 60.0, 600.0])
def test_after_an_outage_the_next_attempt_comes_within_seconds_of_the_return(
    outage: float,
) -> None:
    """The reconnect attempts of a server gone ``outage`` s: the first one after its
    return is at most 5 s later (the backoff is capped, whatever the outage)."""
    for seed in range(20):
        backoff = Backoff(rng=random.Random(seed))
        attempt = 0.0
        while attempt < outage:
            attempt += backoff.next_delay()
        assert attempt - outage <= 5.0, f"back {attempt - outage:.1f} s after the server"
        backoff.reset()  # a success starts again from the first, short delay
        assert backoff.next_delay() <= 1.0


def test_a_reconnect_an_admin_asked_for_is_logged_as_info_not_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.connection")
    with FakeServer(Script()) as server, running_app(tmp_path, server.port) as app:
        server.wait_registered()
        app.reconnect()
        server.wait_registered(1)
        server.wait_session(1).close()  # and a drop nobody asked for
        server.wait_registered(2)
    levels = [r.levelname for r in caplog.records if r.getMessage().startswith("disconnected")]
    assert levels == ["INFO", "WARNING"]
