"""SASL SCRAM-SHA-256 (issue 14): the bot proves it knows the password, and so must the server.

Four layers: config validation; ``CapNegotiation`` alone against a SaslServ made
of scramp's server side (``ScramServices``, no network): forged server
signatures, a "success" nobody proved, 400-byte pieces both ways; a real App
against the scripted fake server with that same SaslServ behind it; and the real
InspIRCd + Atheme network (``ircnet``).  Debian's Atheme 7.2 has no SCRAM (it
came with Atheme 7.3), so there the network offers only PLAIN: the two SCRAM
logins on it skip, saying so, and a third test checks what the bot does then.
"""

from __future__ import annotations

import base64
import itertools
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import fakeserver
import irc.events
import pytest
import scramp
from fakeserver import FakeServer, Script, assert_alive, running_app, wait_until
from helpers import ensure_account
from irc.client import Event
from ircclient import ClientFactory, connect_all, parse
from ircnet import InspircdAtheme

from bot.caps import SASL_CHUNK, SASL_MAX_IN, CapNegotiation, SaslLogin
from bot.config import Config, ConfigError, parse_config
from bot.connection import Backoff

SCRAM = "SCRAM-SHA-256"
ACCOUNT = "scrambot"
PASSWORD = "scram-secret"
NICK = "bot"


def pieces(message: str) -> list[str]:
    """``message`` as AUTHENTICATE payloads: base64 in 400-byte pieces, ``+`` after a full one."""
    data = base64.b64encode(message.encode()).decode()
    chunks = [data[i : i + SASL_CHUNK] for i in range(0, len(data), SASL_CHUNK)]
    return [*chunks, "+"] if not chunks or len(chunks[-1]) == SASL_CHUNK else chunks


def success_lines(nick: str, account: str) -> list[str]:
    return [
        f":irc.test 900 {nick} {nick}!u@h {account} :You are now logged in as {account}",
        f":irc.test 903 {nick} :SASL authentication successful",
    ]


class ScramServices:
    """SaslServ's side of SCRAM-SHA-256 (scramp's server): the bot's payloads in, lines out.

    ``forge``: the final message is signed without the password's key, as an
    impostor that never had the account's verifier must.  ``cheat_after``: say
    "logged in" (900, 903) after that many of the bot's messages instead of
    answering.  ``s_nonce``: the server's nonce; a long one makes server-first
    (and the bot's client-final, which repeats it) longer than one AUTHENTICATE.
    """

    def __init__(
        self,
        accounts: dict[str, str],
        *,
        forge: bool = False,
        cheat_after: int | None = None,
        s_nonce: str | None = None,
    ) -> None:
        mechanism = scramp.ScramMechanism(SCRAM)
        info = {
            name: mechanism.make_auth_info(password, iteration_count=4096)
            for name, password in accounts.items()
        }
        self._server = mechanism.make_server(info.get, s_nonce=s_nonce)
        self.forge = forge
        self.cheat_after = cheat_after
        self.messages: list[str] = []  # the bot's messages, decoded
        self.replies: list[list[str]] = []  # our messages to the bot, as the pieces sent
        self.account: str | None = None  # set once the bot's proof was right
        self._buffer = ""

    def answer(self, payload: str, nick: str) -> list[str]:
        """The lines for the bot after its ``AUTHENTICATE payload``."""
        if payload == SCRAM:
            return success_lines(nick, "impostor") if self.cheat_after == 0 else ["AUTHENTICATE +"]
        if payload == "*":
            return [f":irc.test 906 {nick} :SASL authentication aborted"]
        if payload != "+":
            self._buffer += payload
            if len(payload) == SASL_CHUNK:
                return []  # more follows
        message, self._buffer = base64.b64decode(self._buffer).decode(), ""
        self.messages.append(message)
        if len(self.messages) == self.cheat_after:
            return success_lines(nick, "impostor")
        if len(self.messages) == 1:  # client-first
            self._server.set_client_first(message)
            return self._send(self._server.get_server_first())
        if len(self.messages) == 2:  # client-final
            try:
                self._server.set_client_final(message)
                self.account = self.messages[0].split(",")[2].removeprefix("n=")
            except scramp.ScramException:
                pass  # then get_server_final() says e=invalid-proof
            final = self._server.get_server_final()
            if self.forge and final.startswith("v="):
                final = "v=" + base64.b64encode(bytes(32)).decode()
            return self._send(final)
        if self.account:
            return success_lines(nick, self.account)
        return [f":irc.test 904 {nick} :SASL authentication failed"]

    def _send(self, message: str) -> list[str]:
        self.replies.append(pieces(message))
        return [f"AUTHENTICATE {piece}" for piece in self.replies[-1]]


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="bot.connection"):
        yield caplog


def _failures(log: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in log.records if r.getMessage().startswith("SASL login")]


def _failure(log: pytest.LogCaptureFixture) -> str:
    (message,) = _failures(log)
    return message


def _logged_in(log: pytest.LogCaptureFixture) -> bool:
    return any("logged in to services" in r.getMessage() for r in log.records)


# --------------------------------------------------------------------------- config


def _parse(sasl: str) -> Config:
    text = (
        "server: {host: 127.0.0.1}\nnick: bot\nchannels: ['#bot']\nprefix: '!'\n"
        f"admins: ['account:boss']\ncommands_dir: commands\nsasl: {sasl}\n"
    )
    return parse_config(text, base_dir=Path("/srv/bot"))


def _problem(sasl: str) -> str:
    with pytest.raises(ConfigError) as info:
        _parse(sasl)
    (problem,) = info.value.problems
    return str(problem)


def test_config_takes_scram_sha_256_with_account_and_password() -> None:
    config = _parse("{account: bot, password: pw, mechanism: scram-sha-256}")
    assert config.sasl is not None and config.sasl.mechanism == SCRAM
    message = _problem("{account: bot, mechanism: SCRAM-SHA-256}")
    assert "sasl.password: missing; SASL SCRAM-SHA-256 needs account and password" in message
    message = _problem("{account: bot, password: pw, mechanism: DIGEST-MD5}")
    assert "sasl.mechanism: expected PLAIN, EXTERNAL or SCRAM-SHA-256, got 'DIGEST-MD5'" in message


# --------------------------------------------------------------------------- negotiation alone


class Link:
    """A CapNegotiation whose lines go to a list and whose server lines we hand it."""

    def __init__(self, password: str = PASSWORD, *, required: bool = True) -> None:
        self.sent: list[str] = []
        self.disconnects: list[str] = []
        self.negotiation = CapNegotiation(
            self.sent.append, self.disconnects.append, threading.Event()
        )
        self.negotiation.start(SaslLogin(SCRAM, ACCOUNT, password, required))

    def receive(self, raw: str) -> None:
        """One line from the server, made into an event as the irc library does."""
        line = parse(raw)
        kind = irc.events.numeric.get(line.command, line.command.lower())
        target, *arguments = line.params
        negotiation = self.negotiation
        handler = {
            "cap": negotiation.on_cap,
            "authenticate": negotiation.on_authenticate,
            "loggedin": negotiation.on_logged_in,
        }.get(kind, negotiation.on_sasl_result)
        handler(None, Event(kind, line.source, target, arguments))

    def start_sasl(self) -> None:
        self.receive(f":irc.test CAP * LS :multi-prefix sasl=PLAIN,{SCRAM}")
        self.receive(":irc.test CAP * ACK :multi-prefix sasl")
        assert self.sent[-1] == f"AUTHENTICATE {SCRAM}"

    def run(self, services: ScramServices) -> None:
        """Let ``services`` answer every AUTHENTICATE the bot sends, until it sends none."""
        self.start_sasl()
        done = len(self.sent) - 1
        while done < len(self.sent):
            line = self.sent[done]
            done += 1
            if line.startswith("AUTHENTICATE "):
                for reply in services.answer(line.split(" ", 1)[1], NICK):
                    self.receive(reply)

    def payloads(self) -> list[str]:
        return [ln.split(" ", 1)[1] for ln in self.sent if ln.startswith("AUTHENTICATE ")]


def test_scram_login_proves_both_sides_then_ends_negotiation(log: pytest.LogCaptureFixture) -> None:
    link, services = Link(), ScramServices({ACCOUNT: PASSWORD})
    link.run(services)
    client_first, client_final, empty = services.messages
    assert client_first.startswith(f"n,,n={ACCOUNT},r=")
    assert client_final.startswith("c=biws,r=") and ",p=" in client_final
    assert empty == ""  # the answer to the server's proof: "AUTHENTICATE +"
    assert services.account == ACCOUNT  # the bot's proof was right
    assert link.negotiation.account == ACCOUNT and _logged_in(log)
    assert link.sent[-1] == "CAP END" and not link.disconnects


def test_forged_server_signature_fails_a_required_login(log: pytest.LogCaptureFixture) -> None:
    link, services = Link(), ScramServices({ACCOUNT: PASSWORD}, forge=True)
    link.run(services)
    assert len(services.messages) == 2  # nothing after the forged proof
    assert link.disconnects == ["SASL login failed"]
    assert "the server's signature is wrong: it does not know the password" in _failure(log)
    assert link.negotiation.account is None and not _logged_in(log)
    assert "CAP END" not in link.sent


def test_forged_signature_with_optional_login_aborts_and_a_late_success_is_ignored(
    log: pytest.LogCaptureFixture,
) -> None:
    link, services = Link(required=False), ScramServices({ACCOUNT: PASSWORD}, forge=True)
    link.run(services)
    assert link.sent[-2:] == ["AUTHENTICATE *", "CAP END"]  # abort, go on without the account
    for line in success_lines(NICK, ACCOUNT):  # the impostor says "logged in" all the same
        link.receive(line)
    assert link.negotiation.account is None and not _logged_in(log)
    assert "signature is wrong" in _failure(log)
    assert "continuing without an account" in _failure(log)
    assert not link.disconnects


@pytest.mark.parametrize("after", [0, 1, 2], ids=["at once", "client-first", "client-final"])
def test_success_the_server_never_proved_is_not_a_login(
    log: pytest.LogCaptureFixture, after: int
) -> None:
    """The server says 900/903 after ``after`` of the bot's messages, proving nothing."""
    link = Link()
    link.run(ScramServices({ACCOUNT: PASSWORD}, cheat_after=after))
    assert link.disconnects == ["SASL login failed"]
    assert "succeeded without proving it knows the password" in _failure(log)
    assert link.negotiation.account is None and not _logged_in(log)


@pytest.mark.parametrize(
    ("nonce_length", "shape"),
    [(480, [400, 400, 1]), (700, [400, 400, 296])],
    ids=["exactly 800 base64 bytes, then +", "three pieces"],
)
def test_long_scram_messages_are_reassembled_and_sent_in_pieces(
    log: pytest.LogCaptureFixture, nonce_length: int, shape: list[int]
) -> None:
    link = Link()
    services = ScramServices({ACCOUNT: PASSWORD}, s_nonce="n" * nonce_length)
    link.run(services)
    assert [len(p) for p in services.replies[0]] == shape  # server-first, for the bot to join
    assert services.account == ACCOUNT  # it did: its proof over the whole server-first is right
    client_final = pieces(services.messages[1])
    assert [len(p) for p in client_final] == shape  # it repeats the nonce: as long again
    assert link.payloads()[2 : 2 + len(shape)] == client_final  # after SCRAM-SHA-256, client-first
    assert link.negotiation.account == ACCOUNT and _logged_in(log)


def test_wrong_password_fails_with_the_servers_reason(log: pytest.LogCaptureFixture) -> None:
    link, services = Link(password="wrong"), ScramServices({ACCOUNT: PASSWORD})
    link.run(services)
    assert services.account is None and link.disconnects == ["SASL login failed"]
    assert "(SCRAM-SHA-256: the server refused the login (invalid-proof));" in _failure(log)
    assert not _logged_in(log)


NOT_OUR_NONCE = "r=other,s=" + base64.b64encode(bytes(16)).decode() + ",i=4096"


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (["AUTHENTICATE not-base64!"], "SCRAM-SHA-256: Only base64 data is allowed"),
        (
            ["AUTHENTICATE " + "A" * SASL_CHUNK] * (SASL_MAX_IN // SASL_CHUNK + 1),
            f"the server's SASL message is over {SASL_MAX_IN} bytes",
        ),
        (
            [f"AUTHENTICATE {p}" for p in pieces(NOT_OUR_NONCE)],
            "SCRAM-SHA-256: Client nonce doesn't match.",
        ),
    ],
    ids=["not base64", "endless pieces", "not our nonce"],
)
def test_a_malformed_server_first_fails_the_login(
    log: pytest.LogCaptureFixture, lines: list[str], reason: str
) -> None:
    link = Link()
    link.start_sasl()
    link.receive("AUTHENTICATE +")
    assert link.payloads()[-1].startswith("biws")  # client-first ("n,,n=...") went out
    for line in lines + success_lines(NICK, ACCOUNT):
        link.receive(line)
    assert link.disconnects == ["SASL login failed"]
    assert f"({reason});" in _failure(log)
    assert link.negotiation.account is None and not _logged_in(log)


# ------------------------------------------------------------------------- a real bot, fake server


@dataclass
class ScramNetwork:
    """What the ``scram_server`` fixture's connections do, and their SaslServs."""

    forge: bool = False
    services: list[ScramServices] = field(default_factory=list)


@pytest.fixture
def scram_server(monkeypatch: pytest.MonkeyPatch) -> ScramNetwork:
    """Every FakeServer connection answers SCRAM-SHA-256 too, with a ``ScramServices``."""
    network = ScramNetwork()

    class ScramSession(fakeserver.Session):
        services: ScramServices | None = None

        def _on_authenticate(self, args: list[str]) -> None:
            if args == [SCRAM]:
                self.services = ScramServices(self.script.accounts, forge=network.forge)
                network.services.append(self.services)
            if self.services is None or not args:
                super()._on_authenticate(args)
                return
            for line in self.services.answer(args[0], self.nick or "*"):
                self.send(line)
            self.account = self.services.account

    monkeypatch.setattr(fakeserver, "Session", ScramSession)
    return network


SCRAM_CAPS = [f"multi-prefix account-tag sasl=PLAIN,EXTERNAL,{SCRAM}"]
SCRAM_LOGIN = {"account": ACCOUNT, "password": PASSWORD, "mechanism": SCRAM}


def test_real_bot_logs_in_with_scram(tmp_path: Path, scram_server: ScramNetwork) -> None:
    script = Script(cap_ls=SCRAM_CAPS, accounts={ACCOUNT: PASSWORD})
    with FakeServer(script) as server, running_app(tmp_path, server.port, sasl=SCRAM_LOGIN) as app:
        session = server.wait_registered()
        assert session.index_of(f"AUTHENTICATE {SCRAM}") < session.index_of("CAP END")
        (services,) = scram_server.services
        assert services.account == ACCOUNT and len(services.messages) == 3
        wait_until(lambda: app.connection.account == ACCOUNT, what="the bot's account")
        assert "sasl" in app.connection.caps
        assert_alive(session, "scram")


def test_real_bot_never_registers_with_a_forged_server_signature(
    tmp_path: Path, scram_server: ScramNetwork, log: pytest.LogCaptureFixture
) -> None:
    scram_server.forge = True
    script = Script(cap_ls=SCRAM_CAPS, accounts={ACCOUNT: PASSWORD})
    backoff = Backoff(first=0.05, cap=0.1)
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, sasl=SCRAM_LOGIN, backoff=backoff) as app,
    ):
        for index in range(2):
            session = server.wait_session(index)
            assert session.closed.wait(3), "the bot kept a connection to an impostor"
        assert not any(s.registered.is_set() for s in server.sessions)
        assert all("CAP END" not in s.lines for s in server.sessions[:2])
        assert app.connection.account is None and app.connection.connects == 0
        assert _failures(log) and not _logged_in(log)
        assert all("the server's signature is wrong" in m for m in _failures(log))


# --------------------------------------------------------------------------- real network

_unique = itertools.count(1)


def _suffix() -> str:
    return f"{next(_unique)}{uuid.uuid4().hex[:4]}"


def _offered(ircnet: InspircdAtheme, irc_client: ClientFactory) -> list[str]:
    """The SASL mechanisms the network offers (``sasl=`` in CAP LS)."""
    probe = irc_client("probe", server=ircnet, caps=["sasl"])
    return probe.server_caps.get("sasl", "").upper().split(",")


def _need_scram(ircnet: InspircdAtheme, irc_client: ClientFactory) -> None:
    offered = _offered(ircnet, irc_client)
    if SCRAM not in offered:
        pytest.skip(
            f"the network's services offer SASL {','.join(offered)}, not {SCRAM}: "
            "Atheme 7.2 (Debian's) has no SCRAM; it came with Atheme 7.3"
        )


@pytest.mark.integration
@pytest.mark.services
def test_scram_login_on_the_real_network(
    ircnet: InspircdAtheme, irc_client: ClientFactory, tmp_path: Path
) -> None:
    _need_scram(ircnet, irc_client)
    ensure_account(ircnet, ACCOUNT, PASSWORD)
    channel = f"#scram{_suffix()}"
    nick = f"sc{_suffix()}"
    watcher = irc_client("watch", server=ircnet, connect=False)
    with running_app(tmp_path, ircnet.port, nick=nick, channels=[channel], sasl=SCRAM_LOGIN) as app:
        connect_all([watcher])
        watcher.join(channel)
        connection = app.connection
        wait_until(connection.registered.is_set, timeout=10, what="the bot to register")
        assert connection.account == ACCOUNT
        assert "sasl" in connection.caps
        watcher.wait_for(rf"^:{nick}!\S+ JOIN :?{channel}$", timeout=10)


@pytest.mark.integration
@pytest.mark.services
def test_scram_wrong_password_does_not_register_on_the_real_network(
    ircnet: InspircdAtheme,
    irc_client: ClientFactory,
    tmp_path: Path,
    log: pytest.LogCaptureFixture,
) -> None:
    _need_scram(ircnet, irc_client)
    ensure_account(ircnet, ACCOUNT, PASSWORD)
    channel = f"#scram{_suffix()}"
    nick = f"bad{_suffix()}"
    watcher = irc_client("watch", server=ircnet, connect=False)
    config = {
        "nick": nick,
        "channels": [channel],
        "sasl": {**SCRAM_LOGIN, "password": "wrong-password"},
    }
    with running_app(tmp_path, ircnet.port, backoff=Backoff(first=0.3, cap=2.0), **config) as app:
        connect_all([watcher])
        watcher.join(channel)
        wait_until(lambda: len(_failures(log)) >= 2, timeout=10, what="two failed logins")
        first = _failures(log)[0]
        assert f"SASL login as {ACCOUNT} failed" in first
        assert "saslfail" in first or "invalid-proof" in first  # (Atheme: either, by version)
        assert app.connection.connects == 0 and not app.connection.registered.is_set()
        assert app.connection.account is None and not _logged_in(log)
        assert not any(f":{nick}!" in line and " JOIN " in line for line in watcher.lines)


@pytest.mark.integration
@pytest.mark.services
def test_scram_bot_does_not_register_where_services_lack_scram(
    ircnet: InspircdAtheme,
    irc_client: ClientFactory,
    tmp_path: Path,
    log: pytest.LogCaptureFixture,
) -> None:
    """On Atheme 7.2 (``sasl=PLAIN``) a required SCRAM login refuses to run without it."""
    offered = _offered(ircnet, irc_client)
    if SCRAM in offered:
        pytest.skip(f"the network offers {SCRAM}: the two tests above log in with it")
    config = {
        "nick": f"ns{_suffix()}",
        "channels": [f"#scram{_suffix()}"],
        "sasl": SCRAM_LOGIN,
    }
    with running_app(tmp_path, ircnet.port, backoff=Backoff(first=0.3, cap=1.0), **config) as app:
        wait_until(lambda: len(_failures(log)) >= 2, timeout=10, what="two refused logins")
        assert f"the server offers SASL {','.join(offered)}, not {SCRAM}" in _failures(log)[0]
        assert app.connection.connects == 0 and app.connection.account is None
        assert not app.connection.registered.is_set()
