"""Capability negotiation and SASL: what happens between ``CAP LS`` and ``CAP END``.

One ``CapNegotiation`` per connection, started afresh on every connect. It asks for
the capabilities the bot uses, logs in with SASL (PLAIN, EXTERNAL or SCRAM-SHA-256)
when configured, and ends negotiation; with ``required`` SASL, a failed login
disconnects rather than running without the account. AUTHENTICATE payloads go both
ways in 400-byte pieces. SCRAM's arithmetic is ``scramp``'s; this module checks that
the server proved it knows the password before it counts the login as done. It only
sends lines and reads replies: when to connect and what the capabilities mean
elsewhere is ``bot.connection``'s business.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("bot.connection")  # one logger for everything about the link

WANTED_CAPS = {
    "multi-prefix",
    "userhost-in-names",
    "message-tags",
    "server-time",
    "account-tag",
    "account-notify",
    "extended-join",
    "cap-notify",  # CAP NEW / DEL while connected
    "echo-message",  # our own messages come back: never answered (bot.connection)
    "chghost",  # a host change is one CHGHOST, not a fake QUIT and JOIN
    "batch",  # a netsplit's quits come as one batch: one "netsplit" event
    "away-notify",  # who goes away and comes back, as "away" events
}
SASL_CHUNK = 400  # AUTHENTICATE payloads are sent in pieces of this many bytes
SASL_MAX_IN = 8192  # a longer message from the server fails the login
SCRAM = "SCRAM-SHA-256"


@dataclass(frozen=True)
class SaslLogin:
    mechanism: str | None = None  # PLAIN, EXTERNAL or SCRAM-SHA-256; None: no SASL
    account: str = ""
    password: str = ""
    required: bool = True  # never run without the account


class _Scram:
    """Our side of one SCRAM-SHA-256 login (RFC 5802, RFC 7677); scramp does the maths."""

    def __init__(self, account: str, password: str) -> None:
        import scramp  # only now: importing it takes ~50 ms, and few bots use SCRAM

        self._client = scramp.ScramClient([SCRAM], account, password)
        self._error = scramp.ScramException
        self._step = 0
        self.proven = False  # the server signed the exchange with our password's key

    def answer(self, message: str) -> str:
        """What to send for the server's next message; ValueError or ScramException if wrong."""
        self._step += 1
        if self._step == 1:  # the server's empty "+": we begin
            return str(self._client.get_client_first())
        if self._step == 2:  # salt, iterations and nonce: our proof
            self._client.set_server_first(message)
            return str(self._client.get_client_final())
        if self._step > 3:
            raise ValueError("the server sent more after its final message")
        if message.startswith("e="):
            raise ValueError(f"the server refused the login ({message[2:]})")
        try:
            self._client.set_server_final(message)
        except self._error as exc:
            raise ValueError(
                "the server's signature is wrong: it does not know the password"
            ) from exc
        self.proven = True
        return ""


class CapNegotiation:
    """CAP LS 302 / REQ / ACK / NAK, then SASL, then CAP END, for one connection."""

    def __init__(
        self,
        send: Callable[[str], None],
        disconnect: Callable[[str], None],
        registered: threading.Event,
        on_sts: Callable[[str], bool] = lambda value: False,
    ) -> None:
        self._send, self._disconnect, self._registered = send, disconnect, registered
        self._on_sts = on_sts  # True: the connection is leaving for TLS, stop here
        self.login = SaslLogin()
        self.caps: set[str] = set()  # enabled (ACKed) capabilities
        self.account: str | None = None  # our own services account, once logged in
        self._offered: dict[str, str] = {}  # from CAP LS: name -> value
        self._pending: set[str] = set()
        self._sasl_started = False
        self._sasl_over = False  # we gave up on this login ourselves
        self._incoming = ""  # AUTHENTICATE pieces of the server's message so far
        self._scram: _Scram | None = None

    def start(self, login: SaslLogin) -> None:
        """A new connection: forget everything the last one negotiated."""
        self.login = login
        self.caps, self.account = set(), None
        self._offered, self._pending, self._sasl_started = {}, set(), False
        self._sasl_over, self._incoming, self._scram = False, "", None

    # -- CAP ------------------------------------------------------------------------

    def on_cap(self, conn: Any, event: Any) -> None:
        args = list(event.arguments)
        sub = args[0].upper() if args else ""
        if sub == "LS":
            more = len(args) > 2 and args[1] == "*"
            for token in args[-1].split() if len(args) > 1 else []:
                name, _, value = token.partition("=")
                self._offered[name] = value
            if not more:
                self._request()
        elif sub == "NEW":  # cap-notify: offered now; ask for those we use
            offered = {t.partition("=")[0]: t.partition("=")[2] for t in args[-1].split()}
            self._offered.update(offered)
            wanted = (WANTED_CAPS & offered.keys()) - self.caps
            if wanted:
                log.info("the server offers %s now; asking for it", ", ".join(sorted(wanted)))
                self._pending |= wanted
                self._send(f"CAP REQ :{' '.join(sorted(wanted))}")
        elif sub == "DEL":  # cap-notify: no longer offered, and no longer enabled
            gone = set(args[-1].split()) if len(args) > 1 else set()
            if gone & self.caps:
                log.info("the server withdrew %s", ", ".join(sorted(gone & self.caps)))
            self.caps -= gone
            for name in gone:
                self._offered.pop(name, None)
        elif sub in ("ACK", "NAK"):
            names = {c.strip().lstrip("-") for c in args[-1].split()} if len(args) > 1 else set()
            if sub == "ACK":
                self.caps |= names
            self._pending -= names
            if not self._pending:
                self._acknowledged()

    def _request(self) -> None:
        if "sts" in self._offered and self._on_sts(self._offered["sts"]):
            return
        wanted = set(WANTED_CAPS & self._offered.keys())
        mechanism = self.login.mechanism
        if mechanism:
            offered = self._offered.get("sasl")
            mechanisms = offered.upper().split(",") if offered else []
            if offered is None:
                self.sasl_failed("the server does not offer SASL")
                if self.login.required:
                    return
            elif mechanisms and mechanism not in mechanisms:
                self.sasl_failed(f"the server offers SASL {offered}, not {mechanism}")
                if self.login.required:
                    return
            else:
                wanted.add("sasl")
        if wanted:
            self._pending = set(wanted)
            self._send(f"CAP REQ :{' '.join(sorted(wanted))}")
        else:
            self.end()

    def _acknowledged(self) -> None:
        mechanism = self.login.mechanism
        if "sasl" in self.caps and mechanism and not self._sasl_started:
            self._sasl_started = True
            self._send(f"AUTHENTICATE {mechanism}")
        elif mechanism and "sasl" not in self.caps and not self._sasl_started:
            self.sasl_failed("the server refused the sasl capability")
            if not self.login.required:
                self.end()
        else:
            self.end()

    def end(self) -> None:
        if not self._registered.is_set():
            self._send("CAP END")

    def give_up(self, waited: float) -> None:
        """Negotiation did not end in time: start again on a new connection.

        Ending it with ``CAP END`` instead would register the bot without the
        capabilities it asked for (no account-tag: ``account:`` admins unknown until
        the next reconnect) whenever the server was only slow. A server without CAP
        registers us on its own (it answers ``CAP LS`` with 421), so it never gets here.
        """
        if self._registered.is_set():
            return
        if self._sasl_started and self.login.required and not self.account:
            self.sasl_failed("no answer from the server")
            return
        log.warning("no end to CAP negotiation in %g s; reconnecting", waited)
        self._disconnect("CAP negotiation timed out")

    # -- SASL -----------------------------------------------------------------------

    def on_authenticate(self, conn: Any, event: Any) -> None:
        """A piece of the server's message: 400 bytes (more follows), fewer, or ``+``."""
        piece = event.target or ""
        if not self._sasl_started or self._sasl_over or not piece:
            return
        if piece != "+":
            self._incoming += piece
            if len(self._incoming) > SASL_MAX_IN:
                self._give_up_login(f"the server's SASL message is over {SASL_MAX_IN} bytes")
                return
            if len(piece) == SASL_CHUNK:
                return
        message, self._incoming = self._incoming, ""
        login = self.login
        if login.mechanism == SCRAM:
            self._scram_step(message)
        elif message:
            return  # PLAIN and EXTERNAL answer only the empty "+"
        elif login.mechanism == "EXTERNAL":
            self._send_payload(b"")
        else:
            self._send_payload(f"{login.account}\0{login.account}\0{login.password}".encode())

    def _scram_step(self, message: str) -> None:
        import scramp  # (imported already by _Scram, or just about to be)

        try:
            text = base64.b64decode(message, validate=True).decode()
            if self._scram is None:
                self._scram = _Scram(self.login.account, self.login.password)
            answer = self._scram.answer(text)
        except (ValueError, scramp.ScramException) as exc:
            # (scramp's own text, without the ": other-error" its str() adds)
            why = exc.args[0] if isinstance(exc, scramp.ScramException) else exc
            self._give_up_login(f"{SCRAM}: {why}")
            return
        self._send_payload(answer.encode())

    def _send_payload(self, data: bytes) -> None:
        """``AUTHENTICATE`` base64 ``data`` in 400-byte pieces, ``+`` after a full last one."""
        payload = base64.b64encode(data).decode()
        chunks = [payload[i : i + SASL_CHUNK] for i in range(0, len(payload), SASL_CHUNK)]
        for chunk in chunks:
            self._send(f"AUTHENTICATE {chunk}")
        if not chunks or len(chunks[-1]) == SASL_CHUNK:
            self._send("AUTHENTICATE +")

    def _give_up_login(self, reason: str) -> None:
        """Our side found the exchange wrong: fail the login, whatever the server says next."""
        self._sasl_over = True
        self.sasl_failed(reason)
        if not self.login.required:
            self._send("AUTHENTICATE *")  # abort it on the server
            self.end()

    def on_logged_in(self, conn: Any, event: Any) -> None:
        """900 ``<nick> <mask> <account> :...`` or 901 (logged out): our own account.

        The server names the account; with SASL EXTERNAL it is the only place
        the name comes from (the config has none).
        """
        if self._sasl_over:
            return  # we failed the login: the server's word on it is not believed
        if event.type == "loggedout":
            self.account = None
        elif len(event.arguments) >= 2 and event.arguments[1]:
            self.account = event.arguments[1]

    def on_sasl_result(self, conn: Any, event: Any) -> None:
        if self._sasl_over:
            return  # failed already, and said why
        unproven = self.login.mechanism == SCRAM and not (self._scram and self._scram.proven)
        if event.type == "saslsuccess" and not unproven:
            if self.account is None:  # no 900 before the 903
                self.account = self.login.account
            log.info("logged in to services as %s (SASL %s)", self.account, self.login.mechanism)
            self.end()
            return
        if event.type == "saslsuccess":
            self.account, self._sasl_over = None, True  # nor is its word on the account
            reason = f"the server said {SCRAM} succeeded without proving it knows the password"
        else:
            reason = f"{event.type}: {' '.join(event.arguments) or event.type}"
        self.sasl_failed(reason)
        if not self.login.required:
            self.end()

    def sasl_failed(self, reason: str) -> None:
        if self.login.required:
            log.error(
                "SASL login as %s failed (%s); not running without the account, retrying later",
                self.login.account or "(certificate)",
                reason,
            )
            self._disconnect("SASL login failed")
        else:
            log.warning("SASL login failed (%s); continuing without an account", reason)

    def missing_login(self) -> bool:
        """Registered without the account a required login asked for?"""
        return bool(self.login.mechanism and self.login.required and self.account is None)
