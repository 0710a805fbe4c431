"""The one persistent IRC connection: connect, register, keepalive, reconnect, events.

Built on ``irc.client`` through ``bot.reactor`` (the library's traps handled there)
and ``bot.caps`` (CAP and SASL). Here, the rest of the traps of irc 20.5 (see shared
notes, section A):

* our own loop around ``process_once`` (``process_forever`` cannot be stopped);
* the connection thread is the only thread that writes to the socket: other threads
  hand work over with ``call_soon``;
* our own reconnect backoff (the library's first retry is 60 s), nick-in-use
  handling (the library stalls), and ping-based liveness (its keepalive never
  checks for a PONG and crashes after a disconnect).

It turns IRC events into ``Message`` objects for the app, follows who is in our
channels (``bot.channels``), joins the ones it should (``bot.joins``), and drains the
outbox; it knows nothing about commands, modules or config files.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import irc.client

from bot.accounts import Accounts
from bot.api import Event
from bot.caps import CapNegotiation, SaslLogin
from bot.casemap import irc_lower
from bot.channels import Channels
from bot.joins import Joins
from bot.message import Message, Source
from bot.outbox import IRC_LINE, Outbox, source_length
from bot.reactor import GuardedConnection, WakeableReactor
from bot.session import Backoff, Batch, ConnectionSettings, Session
from bot.sts import StsPolicies, parse_offer
from bot.timers import TimerHeap

log = logging.getLogger(__name__)

MAX_SLEEP = 0.5  # longest one wait of the loop in select(), whatever is (not) due


# After a message, the connection thread pauses this long (real time, GIL released)
# so the worker it woke takes the GIL now, at most once per HAND_OVER_GAP of reading.
HAND_OVER_PAUSE = 0.0001
HAND_OVER_GAP = 0.002
MAX_BATCHES = 32  # open at once; a server opening more is not followed
MAX_BATCH_NICKS = 10_000  # nicks one netsplit event names


def _tag(event: Any, key: str) -> str | None:
    for tag in event.tags or ():
        if tag["key"] == key:
            return tag["value"]  # type: ignore[no-any-return]
    return None


class Connection:
    """Keeps one IRC connection alive and registered for as long as the bot runs."""

    def __init__(
        self,
        settings: ConnectionSettings,
        outbox: Outbox,
        on_message: Callable[[Message], None],
        *,
        on_event: Callable[[Event, Source], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.on_message = on_message
        self.on_event = on_event or (lambda event, source: None)
        self.backoff = backoff or Backoff()
        self.reactor = WakeableReactor()
        self.server: GuardedConnection = self.reactor.server()
        self.server.on_names = lambda channel, entries: self.members.names(channel, entries)
        self.server.on_line = self._heard
        self.server.between_lines = self._between_lines
        self._paused_at = 0.0  # monotonic time of the last hand-over pause
        # The busiest lines (a join flood is thousands of JOINs) skip the library's events;
        # these handlers are also the reactor's, for the lines the fast path leaves to it.
        self.server.fast = {
            "JOIN": ("join", self._on_join),
            "PART": ("part", self._on_part),
            "KICK": ("kick", self._on_kick),
            "QUIT": ("quit", self._on_quit),
            "NICK": ("nick", self._on_nick),
            "MODE": ("mode", self._on_mode),
        }
        self.registered = threading.Event()
        self.session = Session()  # what this connection has learned; fresh on each connect
        self.nick = settings.nicks[0]
        self.connects = 0  # successful registrations, for tests and !modules
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._timers = TimerHeap()  # monotonic; the connection thread's only
        self.accounts = Accounts(self._fold)  # without account-tag: who is logged in as whom
        self.members = Channels()  # who is in our channels, with their modes
        self.negotiation = CapNegotiation(
            self.send_now, self._disconnect, self.registered, on_sts=self._on_sts
        )
        self.sts = StsPolicies()  # the app gives it the state database
        self._sts_upgrade: int | None = None  # the TLS port a plain server just asked for
        self._asked_to_reconnect = False  # the next disconnect is ours: log it as INFO
        self.joins = Joins(self)  # which channels we want, joining them, rejoining
        self._install_handlers()

    @property
    def joined(self) -> set[str]:
        """The channels we are in (irc-lowercased), on this connection."""
        return self.session.joined

    @property
    def userhost(self) -> str:
        return self.session.userhost

    @property
    def line_length(self) -> int:
        return self.session.line_length

    @property
    def caps(self) -> set[str]:
        """The capabilities the server enabled on this connection."""
        return self.negotiation.caps

    @property
    def account(self) -> str | None:
        """Our own services account, once logged in."""
        return self.negotiation.account

    # -- thread-safe entry points ---------------------------------------------------

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the connection thread (the only thread that may write)."""
        self.reactor.call_soon(fn)

    def wake(self) -> None:
        self.reactor.wake()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the connection thread after ``delay`` seconds; safe from any thread."""
        due = time.monotonic() + delay
        # The loop never sleeps longer than MAX_SLEEP, so a timer due later than two
        # sleeps from now is on its heap in time without waking the loop: a command's
        # timeout check then costs the busy loop no extra wake-up per command.
        self.reactor.call_soon(lambda: self._timers.add_at(due, fn), wake=delay < 2 * MAX_SLEEP)

    def stop(self, message: str = "Shutting down") -> None:
        """Ask the loop to send QUIT and return; safe from any thread or signal handler."""
        self._quit_message = message
        self._stopping = True
        self.reactor.wake()

    def set_channels(self, channels: tuple[str, ...]) -> None:
        self.call_soon(lambda: self.joins.set_channels(channels))

    def change_nick(self, nicks: tuple[str, ...]) -> None:
        self.call_soon(lambda: self._change_nick(nicks))

    def reconnect(self, reason: str = "Reconnecting") -> None:
        self.call_soon(lambda: self._reconnect_now(reason))

    def update_settings(self, settings: ConnectionSettings) -> None:
        """Use these server/identity settings from the next connect on."""

        def swap() -> None:
            settings.channels = self.settings.channels  # these two are applied live
            settings.nicks = self.settings.nicks
            self.settings = settings

        self.call_soon(swap)

    # -- the loop ---------------------------------------------------------------

    def run(self) -> None:
        """Connect and serve until ``stop()``; runs on the calling thread."""
        self._thread = threading.current_thread()
        self._quit_message = "Shutting down"
        self.after(0, self._connect)
        s = self.settings
        self.every(max(0.05, min(1.0, s.ping_interval / 3, s.ping_timeout / 3)), self._check_alive)
        self.every(self.settings.regain_nick_every, self._regain_nick)
        while not self._stopping:
            try:
                self.reactor.process_once(self._next_timeout())
                self._run_timers()
                self._flush()
            except Exception:
                log.exception("error in the connection loop; continuing")
        self._shutdown()

    def _shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self._flush()
        if self.server.is_connected():
            self.server.disconnect(self._quit_message)  # sends QUIT, then closes
        self.reactor.close()

    def _next_timeout(self) -> float:
        timeout = self._timers.wait_time(MAX_SLEEP)
        if self.registered.is_set():
            _, delay = self._peek_outbox_delay()
            if delay is not None:
                timeout = min(timeout, delay)
        return timeout

    def _peek_outbox_delay(self) -> tuple[int, float | None]:
        pending = self.outbox.pending()
        return pending, (self.outbox.bucket.wait_time() if pending else None)

    # -- timers (monotonic, cancellable; the library's scheduler is neither) -------

    def after(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on this thread after ``delay`` seconds (connection thread only)."""
        self._timers.add(delay, fn)

    def every(self, interval: float, fn: Callable[[], None]) -> None:
        def tick() -> None:
            try:
                fn()
            finally:
                self.after(interval, tick)

        self.after(interval, tick)

    def _run_timers(self) -> None:
        now = time.monotonic()  # what a timer adds for "now" waits for the next pass
        while (due := self._timers.pop_due(now)) is not None:
            fn = due[1]
            try:
                fn()
            except Exception:
                log.exception("error in a connection timer")

    # -- sending ----------------------------------------------------------------

    def send_now(self, line: str) -> None:
        """Send a protocol line at once, bypassing the outbox (connection thread only)."""
        if self.server.is_connected():
            self.server.send_raw(line)

    def _flush(self) -> None:
        if not self.registered.is_set() or not self.server.is_connected():
            return  # replies wait in the outbox until we are registered again
        lines, _ = self.outbox.take()
        for line in lines:
            self.server.send_raw(line.raw)

    # -- connecting -------------------------------------------------------------

    def _open_socket(self, address: tuple[str, int]) -> socket.socket:
        s = self.settings
        sock = socket.create_connection(address, timeout=s.connect_timeout)
        tls = self.session.tls
        # IRC is many small writes (CAP, NICK, USER; one line per reply). With Nagle's
        # algorithm on, each write after the first waits for the server's ACK, which a
        # delayed ACK holds ~40 ms: measured as 40 ms between NICK/USER and the welcome.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            import ssl  # only with TLS: it loads OpenSSL (~4 MB resident)

            context = ssl.create_default_context()
            if not s.tls_verify:  # a self-signed test server; documented as unsafe
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if s.tls_certfile:
                context.load_cert_chain(s.tls_certfile)
            sock = context.wrap_socket(sock, server_hostname=s.host)
        sock.settimeout(s.connect_timeout)  # a stalled write disconnects instead of hanging
        # Before the library's NICK/USER: the server then holds registration until CAP END.
        sock.sendall(b"CAP LS 302\r\n")
        return sock

    def _connect(self) -> None:
        if self._stopping:
            return
        s = self.settings
        # STS: a server that asked for TLS (now, or in a policy still in force) gets it
        sts_port = self._sts_upgrade or self.sts.port_for(s.host)
        self._sts_upgrade = None
        port, tls = (sts_port, True) if sts_port else (s.port, s.tls)
        self.session = Session(generation=self.session.generation + 1, port=port, tls=tls)
        self.negotiation.start(
            SaslLogin(s.sasl_mechanism, s.sasl_account, s.sasl_password, s.sasl_required)
        )
        self.server.max_line = IRC_LINE
        self.accounts.reset()
        self.members.clear()
        why = " (TLS, as the server's STS policy asks)" if sts_port else (" (TLS)" if tls else "")
        log.info("connecting to %s:%d%s", s.host, port, why)
        try:
            self.server.connect(
                s.host,
                port,
                s.nicks[0],
                password=s.password,
                username=s.username,
                ircname=s.realname,
                connect_factory=self._open_socket,
            )
        except irc.client.ServerConnectionError as exc:
            log.warning("could not connect to %s:%d: %s", s.host, port, exc)
            self._schedule_reconnect()
            return
        self.session.last_rx = time.monotonic()
        self.nick = s.nicks[0]
        # A server that ignores CAP must not stall registration.
        generation = self.session.generation
        self.after(s.cap_timeout, lambda: self._cap_give_up(generation))

    def _schedule_reconnect(self) -> None:
        if self._stopping:
            return
        delay = self.backoff.next_delay()
        log.info("reconnecting in %.1f s", delay)
        self.after(delay, self._connect)

    def _on_sts(self, value: str) -> bool:
        """The server offers ``sts``: upgrade a plain connection (True: we are leaving),
        or keep the policy a TLS connection gives."""
        offer = parse_offer(value)
        if not self.session.tls:
            if offer.port is None:
                return False  # an offer without a port is no use on a plain connection
            log.info("the server asks for TLS on port %d (STS); reconnecting", offer.port)
            self._sts_upgrade = offer.port
            self._asked_to_reconnect = True
            self.backoff.reset()  # at once: this is no failure
            self._disconnect("STS: reconnecting with TLS")
            return True
        if offer.duration is not None:
            self.sts.remember(self.settings.host, self.session.port, offer.duration)
        return False

    def _disconnect(self, reason: str) -> None:
        self.server.disconnect(reason)  # the disconnect handler schedules the reconnect

    def _reconnect_now(self, reason: str) -> None:
        if self.server.is_connected():
            self._asked_to_reconnect = True
            self.server.disconnect(reason)  # the disconnect handler schedules the reconnect
        self.backoff.reset()

    def _check_alive(self) -> None:
        """PING after ``ping_interval`` of silence; give up ``ping_timeout`` after that PING.

        The timeout counts from a PING actually sent, so a connection is never
        dropped without having been asked whether it is alive.
        """
        if not self.server.is_connected():
            return
        now = time.monotonic()
        s = self.settings
        if self.session.ping_sent_at is not None:
            if now - self.session.ping_sent_at > s.ping_timeout:
                idle = now - self.session.last_rx
                log.warning("no data from the server for %.0f s; reconnecting", idle)
                self.server.disconnect("Ping timeout")
        elif now - self.session.last_rx > s.ping_interval:
            self.send_now(f"PING :{int(time.time())}")
            self.session.ping_sent_at = now

    # -- event handlers ---------------------------------------------------------

    def _install_handlers(self) -> None:
        add = self.reactor.add_global_handler
        add("all_raw_messages", self._on_raw, -100)
        negotiation = self.negotiation
        add("cap", negotiation.on_cap, -30)
        add("authenticate", negotiation.on_authenticate, -30)
        for name in ("saslsuccess", "saslfail", "sasltoolong", "saslaborted", "saslalready"):
            add(name, negotiation.on_sasl_result, -30)
        add("account", self._on_account, -20)
        add("whospcrpl", self._on_whox, -20)
        add("featurelist", self._on_isupport, -20)
        add("loggedin", negotiation.on_logged_in, -30)
        add("loggedout", negotiation.on_logged_in, -30)
        add("invite", self.joins.on_invite, -20)
        add("bannedfromchan", self.joins.on_cannot_join, -20)
        add("inviteonlychan", self.joins.on_cannot_join, -20)
        add("badchannelkey", self.joins.on_cannot_join, -20)
        add("channelisfull", self.joins.on_cannot_join, -20)
        add("welcome", self._on_welcome, -20)
        add("endofmotd", self.joins.on_motd_end, -20)
        add("nomotd", self.joins.on_motd_end, -20)
        for name in ("nicknameinuse", "erroneusnickname", "nickcollision", "unavailresource"):
            add(name, self._on_nick_refused, -20)
        add("nick", self._on_nick, -20)
        add("join", self._on_join, -20)
        add("part", self._on_part, -20)
        add("kick", self._on_kick, -20)
        add("quit", self._on_quit, -20)
        add("chghost", self._on_chghost, -20)
        add("batch", self._on_batch, -20)
        add("away", self._on_away, -20)
        add("namreply", self._on_names, -20)
        add("mode", self._on_mode, -20)
        add("disconnect", self._on_disconnect, -20)
        add("pubmsg", self._on_privmsg, 0)
        add("privmsg", self._on_privmsg, 0)
        add("action", self._on_action, 0)
        add("ctcp", self._on_ctcp, 0)

    def _on_raw(self, conn: Any, event: Any) -> None:
        self._heard()

    def _heard(self) -> None:
        """The server said something: it is alive."""
        self.session.last_rx = time.monotonic()
        self.session.ping_sent_at = None

    def _between_lines(self) -> None:
        """Hand the GIL to the workers a message woke, and send what waits, mid-batch.

        While lines wait, the connection thread gives the GIL up only in system calls
        (a recv, a PONG) and takes it back before a woken worker can: CPython forces a
        switch only after 5 ms without one, so a command waited 5-30 ms for a worker to
        start during a join flood. A short sleep hands the GIL over; replies are sent
        at the next line instead of after the whole batch."""
        server = self.server
        if server.pause_due:
            now = time.monotonic()
            if now - self._paused_at >= HAND_OVER_GAP:
                server.pause_due = False
                time.sleep(HAND_OVER_PAUSE)
                self._paused_at = time.monotonic()
        if self.reactor.woken:
            self.reactor.woken = False
            self._flush()

    def _cap_give_up(self, generation: int) -> None:
        if generation == self.session.generation and self.server.is_connected():
            # (an earlier connection's timer does nothing)
            self.negotiation.give_up(self.settings.cap_timeout)

    def _on_welcome(self, conn: Any, event: Any) -> None:
        if self.negotiation.missing_login():
            self.negotiation.sasl_failed("registration completed without a login")
            return
        self.nick = event.target
        # "Welcome to the ... Network nick!user@host": most servers say who we are here
        last = event.arguments[-1].split()[-1] if event.arguments else ""
        if last.startswith(f"{self.nick}!") and "@" in last:
            self.session.userhost = last.split("!", 1)[1]
        self.registered.set()
        self.connects += 1
        self.backoff.reset()
        log.info("registered as %s (caps: %s)", self.nick, ", ".join(sorted(self.caps)) or "none")
        # Join once the server has said what it supports (ISUPPORT comes after 001, its
        # MOTD after that): at the end of the MOTD, or 2 s from now if it never ends.
        generation = self.session.generation
        self.after(2.0, lambda: self.joins.first_joins(generation))

    def _on_nick_refused(self, conn: Any, event: Any) -> None:
        if self.registered.is_set():
            log.info("nick change refused: %s", " ".join(event.arguments))
            return
        self.session.nick_attempt += 1
        nicks = self.settings.nicks
        if self.session.nick_attempt < len(nicks):
            candidate = nicks[self.session.nick_attempt]
        else:
            stem = nicks[0][: max(1, self.session.nick_length - 3)]
            candidate = f"{stem}{random.randint(100, 999)}"
        log.warning("nick %s is unavailable; trying %s", self.nick, candidate)
        self.nick = candidate
        self.send_now(f"NICK {candidate}")

    def _regain_nick(self) -> None:
        wanted = self.settings.nicks[0]
        if self.registered.is_set() and self._fold(self.nick) != self._fold(wanted):
            self.send_now(f"NICK {wanted}")

    def _change_nick(self, nicks: tuple[str, ...]) -> None:
        self.settings.nicks = nicks
        self._regain_nick()

    def _on_nick(self, conn: Any, event: Any) -> None:
        old = self._fold(event.source.nick)
        if old == self._fold(self.nick):
            self.nick = event.target
        self.accounts.renamed(event.source.nick, event.target)
        self.members.renamed(event.source.nick, event.target)
        self._emit("nick", event)

    def _on_account(self, conn: Any, event: Any) -> None:
        """account-notify: someone logged in (ACCOUNT name) or out (ACCOUNT *)."""
        self.accounts.logged(event.source.nick, event.target)

    def _on_isupport(self, conn: Any, event: Any) -> None:
        self.members.isupport(event.arguments)
        for token in event.arguments:
            name, _, value = token.partition("=")
            if name == "TARGMAX":  # JOIN:10,PRIVMSG:4,...
                for limit in value.split(","):
                    command, _, most = limit.partition(":")
                    if command.upper() == "JOIN":  # "JOIN:" alone: no limit but the line's
                        self.session.join_targets = int(most) if most.isdigit() else 1000
            elif name == "NICKLEN" and value.isdigit():
                self.session.nick_length = int(value)
            if name == "LINELEN" and value.isdigit():
                self.session.line_length = max(IRC_LINE, min(int(value), 16384))
                self.server.max_line = self.session.line_length
        # The library's FeatureSet drops value-less tokens such as WHOX.
        if any(a == "WHOX" or a.startswith("WHOX=") for a in event.arguments):
            self.accounts.whox = True

    def _on_whox(self, conn: Any, event: Any) -> None:
        self.accounts.whox_reply(list(event.arguments))

    def _account_of(self, nick: str, tags: dict[str, str | None]) -> str | None:
        """The services account behind a message, or None."""
        return self.accounts.of(nick, tags, tagged="account-tag" in self.caps)

    def _fold(self, nick: str) -> str:
        """``nick`` as the server compares nicks (its CASEMAPPING, once it said it)."""
        return self.members.fold(nick)

    def _is_me(self, nick: str) -> bool:
        return self._fold(nick) == self._fold(self.nick)

    def _on_join(self, conn: Any, event: Any) -> None:
        nick = event.source.nick
        if event.arguments and "extended-join" in self.caps:
            self.accounts.logged(nick, event.arguments[0])
        if self._is_me(nick):
            self.session.joined.add(irc_lower(event.target))
            if "account-tag" not in self.caps and self.accounts.whox:
                # Learn the accounts of who is already there; joins and account-notify
                # keep the map current afterwards.
                self.send_now(self.accounts.whox_query(event.target))
            source = event.source
            self.session.userhost = f"{source.user}@{source.host}"
            log.info("joined %s", event.target)
        self.members.joined(event.target, nick)
        self._emit("join", event)

    def _on_part(self, conn: Any, event: Any) -> None:
        if self._is_me(event.source.nick):
            self.session.joined.discard(irc_lower(event.target))
            log.info("left %s", event.target)
        self.members.left(event.target, event.source.nick, me=self._is_me(event.source.nick))
        self._forget_account(event.source.nick)
        self._emit("part", event)

    def _on_kick(self, conn: Any, event: Any) -> None:
        if event.arguments and self._is_me(event.arguments[0]):
            channel = event.target
            self.session.joined.discard(irc_lower(channel))
            log.warning("kicked from %s by %s", channel, event.source.nick)
            self.joins.kicked(channel)
        if event.arguments:
            kicked = event.arguments[0]
            self.members.left(event.target, kicked, me=self._is_me(kicked))
            self._forget_account(kicked)
        self._emit("kick", event)

    def _forget_account(self, nick: str) -> None:
        """Someone left a channel (or we did, and then we forget everyone)."""
        self.accounts.forget(nick, everyone=self._is_me(nick))

    def _on_chghost(self, conn: Any, event: Any) -> None:
        """chghost: ``:nick!old@host CHGHOST newuser newhost``; ours sets the reply length."""
        if event.source is not None and self._is_me(event.source.nick):
            user = event.target or ""
            host = event.arguments[0] if event.arguments else ""
            if user and host:
                self.session.userhost = f"{user}@{host}"

    def _on_quit(self, conn: Any, event: Any) -> None:
        self.accounts.forget(event.source.nick)
        self.members.quit(event.source.nick)
        split = self.session.batches.get(_tag(event, "batch") or "")
        if split is not None and split.kind == "netsplit":
            if len(split.nicks) < MAX_BATCH_NICKS:
                split.nicks.append(event.source.nick)
            return  # told once, when the batch ends
        self._emit("quit", event)

    def _on_batch(self, conn: Any, event: Any) -> None:
        """``BATCH +id netsplit hub leaf`` ... ``BATCH -id``: a netsplit is one event."""
        ref = event.target or ""
        if ref.startswith("+") and len(self.session.batches) < MAX_BATCHES:
            kind = event.arguments[0].lower() if event.arguments else ""
            self.session.batches[ref[1:]] = Batch(kind, list(event.arguments[1:]))
        elif ref.startswith("-"):
            batch = self.session.batches.pop(ref[1:], None)
            if batch is not None and batch.kind == "netsplit" and batch.nicks:
                servers = " ".join(batch.params)
                self.on_event(Event("netsplit", "", None, servers, tuple(batch.nicks)), Source(""))

    def _on_away(self, conn: Any, event: Any) -> None:
        """away-notify: ``AWAY :reason`` (gone) or ``AWAY`` (back)."""
        if event.source is not None and not self._is_me(event.source.nick):
            self._emit("away", event)

    def _on_names(self, conn: Any, event: Any) -> None:
        """RPL_NAMREPLY: ``= #channel :@op +voiced plain`` (all prefixes with multi-prefix)."""
        if len(event.arguments) >= 3:
            self.members.names(event.arguments[1], event.arguments[2].split())

    def _on_mode(self, conn: Any, event: Any) -> None:
        self.members.mode(event.target, list(event.arguments))

    def _on_disconnect(self, conn: Any, event: Any) -> None:
        was_registered = self.registered.is_set()
        self.registered.clear()
        self.session.joined = set()
        reason = event.arguments[0] if event.arguments else ""
        if self._stopping:
            return
        # asked for (!reconnect, an STS upgrade) is news, not trouble
        level = logging.INFO if self._asked_to_reconnect else logging.WARNING
        self._asked_to_reconnect = False
        when = " after registration" if was_registered else ""
        log.log(level, "disconnected%s: %s", when, reason)
        stale = self.outbox.clear()  # answers to a conversation that has moved on
        if stale:
            log.warning("dropped %d queued line(s): they would arrive too late", stale)
        self._schedule_reconnect()

    def _on_privmsg(self, conn: Any, event: Any) -> None:
        if not event.arguments or event.source is None:
            return
        if self._is_me(event.source.nick):
            return  # echo-message: our own line, back from the server; never an input
        tags = {t["key"]: t["value"] for t in (event.tags or [])}
        source = event.source
        account = self._account_of(source.nick, tags)
        message = Message(
            source=Source(source.nick, source.user or "", source.host or "", account),
            target=event.target,
            text=event.arguments[0],
            is_private=event.type == "privmsg",
            tags=tags,
        )
        self.on_message(message)
        self.server.pause_due = True  # a worker may have a command to start: hand over

    def _on_action(self, conn: Any, event: Any) -> None:
        """``/me waves``: the library hands it over as an ``action`` event too."""
        if event.source is not None and not self._is_me(event.source.nick):
            self._emit("action", event)

    def _on_ctcp(self, conn: Any, event: Any) -> None:
        """A CTCP query (VERSION, PING...), for the app to answer; ACTION is not one."""
        if event.arguments and event.arguments[0].upper() != "ACTION":
            self._emit("ctcp", event)

    def _emit(self, kind: str, event: Any) -> None:
        """Hand the app an IRC event as listeners get it, with who caused it."""
        source = event.source
        if source is None:
            who = Source("")
        else:
            nick, _, userhost = source.partition("!")  # (what NickMask's properties say)
            user, _, host = userhost.partition("@")
            tags = {t["key"]: t["value"] for t in event.tags} if event.tags else {}
            who = Source(nick, user, host, self._account_of(nick, tags))
        self.on_event(self._shape(kind, who.nick, event.target or "", list(event.arguments)), who)

    def _shape(self, kind: str, nick: str, target: str, args: list[str]) -> Event:
        """The ``bot.api.Event`` of an IRC event (``ctcp``: a query for the app only)."""
        if kind == "kick":  # KICK #c victim :reason, by ``nick``
            return Event(kind, args[0] if args else "", target, " ".join(args[1:]))
        if kind in ("nick", "away"):  # the new nick; the away reason ("": back)
            return Event(kind, nick, None, target)
        if kind in ("quit", "ctcp"):  # the quit message; the query and its argument
            return Event(kind, nick, None, " ".join(args))
        if kind == "action":  # in a channel, or to us in private
            channel = None if self._is_me(target) else target
            return Event(kind, nick, channel, " ".join(args))
        if kind == "join":  # (extended-join's account and real name are not its text)
            return Event(kind, nick, target)
        return Event(kind, nick, target, " ".join(args))  # part: its message

    def source_length(self) -> int:
        """Length of ``nick!user@host`` the server prepends to what we send."""
        return source_length(self.nick, self.session.userhost)
