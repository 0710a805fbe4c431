"""Capability negotiation and SASL: what happens between ``CAP LS`` and ``CAP END``.

One ``CapNegotiation`` per connection, started afresh on every connect. It asks for
the capabilities the bot uses, logs in with SASL (PLAIN or EXTERNAL) when configured,
and ends negotiation; with ``required`` SASL, a failed login disconnects rather than
running without the account. It only sends lines and reads replies: when to connect
and what the capabilities mean elsewhere is ``bot.connection``'s business.
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
}
SASL_CHUNK = 400  # AUTHENTICATE payloads are sent in pieces of this many bytes


@dataclass(frozen=True)
class SaslLogin:
    mechanism: str | None = None  # PLAIN or EXTERNAL; None: no SASL
    account: str = ""
    password: str = ""
    required: bool = True  # never run without the account


class CapNegotiation:
    """CAP LS 302 / REQ / ACK / NAK, then SASL, then CAP END, for one connection."""

    def __init__(
        self,
        send: Callable[[str], None],
        disconnect: Callable[[str], None],
        registered: threading.Event,
    ) -> None:
        self._send, self._disconnect, self._registered = send, disconnect, registered
        self.login = SaslLogin()
        self.caps: set[str] = set()  # enabled (ACKed) capabilities
        self.account: str | None = None  # our own services account, once logged in
        self._offered: dict[str, str] = {}  # from CAP LS: name -> value
        self._pending: set[str] = set()
        self._sasl_started = False

    def start(self, login: SaslLogin) -> None:
        """A new connection: forget everything the last one negotiated."""
        self.login = login
        self.caps, self.account = set(), None
        self._offered, self._pending, self._sasl_started = {}, set(), False

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
        elif sub in ("ACK", "NAK"):
            names = {c.strip().lstrip("-") for c in args[-1].split()} if len(args) > 1 else set()
            if sub == "ACK":
                self.caps |= names
            self._pending -= names
            if not self._pending:
                self._acknowledged()

    def _request(self) -> None:
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

    def give_up(self) -> None:
        """No answer in time: end negotiation (or, waiting for a required login, fail)."""
        if self._registered.is_set():
            return
        if self._sasl_started and self.login.required and not self.account:
            self.sasl_failed("no answer from the server")
            return
        log.warning("no answer to CAP negotiation; ending it")
        self._send("CAP END")

    # -- SASL -----------------------------------------------------------------------

    def on_authenticate(self, conn: Any, event: Any) -> None:
        if event.target != "+" or not self._sasl_started:
            return
        login = self.login
        if login.mechanism == "EXTERNAL":
            self._send("AUTHENTICATE +")
            return
        payload = base64.b64encode(
            f"{login.account}\0{login.account}\0{login.password}".encode()
        ).decode()
        chunks = [payload[i : i + SASL_CHUNK] for i in range(0, len(payload), SASL_CHUNK)]
        for chunk in chunks:
            self._send(f"AUTHENTICATE {chunk}")
        if not chunks or len(chunks[-1]) == SASL_CHUNK:
            self._send("AUTHENTICATE +")

    def on_logged_in(self, conn: Any, event: Any) -> None:
        """900 ``<nick> <mask> <account> :...`` or 901 (logged out): our own account.

        The server names the account; with SASL EXTERNAL it is the only place
        the name comes from (the config has none).
        """
        if event.type == "loggedout":
            self.account = None
        elif len(event.arguments) >= 2 and event.arguments[1]:
            self.account = event.arguments[1]

    def on_sasl_result(self, conn: Any, event: Any) -> None:
        if event.type == "saslsuccess":
            if self.account is None:  # no 900 before the 903
                self.account = self.login.account
            log.info("logged in to services as %s (SASL %s)", self.account, self.login.mechanism)
            self.end()
            return
        reason = " ".join(event.arguments) or event.type
        self.sasl_failed(f"{event.type}: {reason}")
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
