"""A scripted IRC server on a loopback socket, for deterministic hostile-server tests.

    with FakeServer() as server, running_app(tmp_path, server.port) as app:
        s = server.wait_registered()             # the bot connected and got 001
        s.send(":u!u@h PRIVMSG #c :!echo hi")     # anything, even invalid bytes
        s.wait_for(r"^PRIVMSG #c :hi$")           # what the bot sent back

The server answers what a server must for the bot to register (CAP LS/REQ/END,
SASL PLAIN, NICK/USER with 001, JOIN echoes, PONG), each of which a ``Script``
can change: never answer CAP, NAK everything, an LS that never ends, nicks
that are taken, a ban on JOIN, TLS.  ``Session.mute()`` turns a live
connection half-open (nothing sent, nothing answered).  Every line the bot
sends is recorded with its arrival time; nothing here sleeps: every wait polls
a condition variable with a deadline.

The second half runs a real ``App`` (loader, dispatcher, outbox, Connection)
against such a server: ``running_app``.
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.app import App
from bot.config import load_config
from bot.connection import Backoff

HOST = "127.0.0.1"
SERVER_NAME = "fake.test"
BOT_HOST = "bot.host"
DEADLINE = 5.0

Pattern = str | re.Pattern[str] | Callable[[str], bool]


def _matcher(pattern: Pattern) -> Callable[[str], bool]:
    if isinstance(pattern, str):
        regex = re.compile(pattern)
        return lambda line: regex.search(line) is not None
    if isinstance(pattern, re.Pattern):
        compiled = pattern
        return lambda line: compiled.search(line) is not None
    return pattern


def wait_until(condition: Callable[[], object], timeout: float = DEADLINE, what: str = "") -> Any:
    """Poll ``condition`` until it returns something true; return it. Fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(0.002)


@dataclass
class Script:
    """How the fake server behaves toward every connection (mutable while running)."""

    #: Answers to ``CAP LS``: one string of caps per line (all but the last get the
    #: ``*`` "more follows" marker).  None: CAP is ignored entirely.
    cap_ls: list[str] | None = field(default_factory=lambda: ["multi-prefix"])
    #: False: even the last LS line says "more follows" (an LS that never ends).
    cap_ls_final: bool = True
    #: How ``CAP REQ`` is answered: "ack", "nak" or "ignore".
    cap_req: str = "ack"
    #: Hold registration (no 001) until ``CAP END`` once the client sent ``CAP LS``,
    #: as real servers do.
    hold_for_cap_end: bool = True
    #: Accounts for SASL PLAIN: name -> password.
    accounts: dict[str, str] = field(default_factory=dict)
    #: The account SASL EXTERNAL logs in as (None: EXTERNAL fails).
    external_account: str | None = None
    #: Answer AUTHENTICATE at all.
    answer_sasl: bool = True
    #: Nicks that get ``433 Nickname is already in use`` (edit it to free one).
    taken_nicks: set[str] = field(default_factory=set)
    #: Answer the bot's PINGs.
    answer_ping: bool = True
    #: Called for each JOIN instead of echoing it: ``join(session, channel)``.
    join: Callable[[Session, str], None] | None = None
    #: Send nothing at all, ever (a server that accepts and then says nothing).
    silent: bool = False
    #: More ISUPPORT tokens for the 005 sent with the welcome (e.g. "TARGMAX=JOIN:3").
    isupport: str = ""


class Session:
    """One accepted connection: what the bot sent, and a way to send it anything."""

    def __init__(self, server: FakeServer, sock: socket.socket, index: int) -> None:
        self.server = server
        self.script = server.script
        self.sock = sock
        self.index = index
        self.nick = ""
        self.user = ""
        self.account: str | None = None
        self.lines: list[str] = []  # decoded (UTF-8, invalid bytes replaced), no CRLF
        self.raw: list[bytes] = []  # exactly as received, without the line end
        self.times: list[float] = []  # monotonic arrival time of each line
        self.registered = threading.Event()
        self.closed = threading.Event()
        self.handshake_error: BaseException | None = None
        self._muted = False
        self._mechanism = ""
        self._sasl_data = ""
        self._cap_negotiating = False
        self._user_seen = False
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._cursor = 0
        self._thread = threading.Thread(target=self._serve, name=f"fakeserver-{index}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- sending to the bot ---------------------------------------------------------

    def send(self, line: str) -> None:
        """Send one line (CRLF added)."""
        self.send_raw(line.encode("utf-8", "surrogateescape") + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        """Send bytes exactly as given (no line end added)."""
        with self._send_lock, contextlib.suppress(OSError):
            self.sock.sendall(data)

    def mute(self) -> None:
        """From now on send nothing and answer nothing: a half-open connection."""
        self._muted = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- what the bot sent ------------------------------------------------------------

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def lines_since(self, mark: int = 0) -> list[str]:
        with self._cond:
            return self.lines[mark:]

    def count(self, pattern: Pattern, since: int = 0) -> int:
        match = _matcher(pattern)
        return sum(1 for line in self.lines_since(since) if match(line))

    def wait_for(
        self, pattern: Pattern, timeout: float = DEADLINE, since: int | None = None
    ) -> str:
        """First line (after ``since``, else after the last one returned) matching ``pattern``."""
        match = _matcher(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            index = self._cursor if since is None else since
            while True:
                while index < len(self.lines):
                    line = self.lines[index]
                    index += 1
                    if match(line):
                        self._cursor = max(self._cursor, index)
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    tail = "\n  ".join(self.lines[-20:])
                    why = "connection closed" if self.closed.is_set() else f"{timeout:g} s"
                    raise AssertionError(
                        f"session {self.index}: no line matching {pattern!r} ({why}); "
                        f"last lines from the bot:\n  {tail}"
                    )
                self._cond.wait(min(left, 0.05))

    def index_of(self, line: str, since: int = 0) -> int:
        with self._cond:
            return self.lines.index(line, since)

    # -- the protocol -----------------------------------------------------------------

    def _serve(self) -> None:
        try:
            if self.server.tls is not None:
                try:
                    self.sock.settimeout(DEADLINE)
                    self.sock = self.server.tls.wrap_socket(self.sock, server_side=True)
                    self.sock.settimeout(None)
                except (OSError, ssl.SSLError) as exc:
                    self.handshake_error = exc
                    return
            buffer = b""
            while True:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                buffer += data
                *complete, buffer = buffer.split(b"\n")
                for raw in complete:
                    raw = raw.removesuffix(b"\r")
                    line = raw.decode("utf-8", "replace")
                    with self._cond:
                        self.raw.append(raw)
                        self.lines.append(line)
                        self.times.append(time.monotonic())
                        self._cond.notify_all()
                    self._answer(line)
        finally:
            self.close()
            with self._cond:
                self.closed.set()
                self._cond.notify_all()

    def _reply(self, text: str) -> None:
        """A numeric or server message to the bot: ``:fake.test <text>``."""
        self.send(f":{SERVER_NAME} {text}")

    def _answer(self, line: str) -> None:
        script = self.script
        if self._muted or script.silent:
            return
        words = line.split(" ")
        command = words[0].upper()
        args = words[1:]
        trailing = line.split(" :", 1)[1] if " :" in line else (args[-1] if args else "")
        if command == "CAP":
            self._on_cap(args, trailing)
        elif command == "AUTHENTICATE":
            self._on_authenticate(args)
        elif command == "NICK" and args:
            self._on_nick(args[0].lstrip(":"))
        elif command == "USER":
            self._user_seen = True
            self.user = args[0] if args else "user"
            self._maybe_welcome()
        elif command == "PING" and script.answer_ping:
            self._reply(f"PONG {SERVER_NAME} :{trailing}")
        elif command == "JOIN" and args and self.registered.is_set():
            for channel in args[0].split(","):
                if script.join is not None:
                    script.join(self, channel)
                else:
                    self.send(f":{self.mask} JOIN {channel}")
        elif command == "QUIT":
            self.send(f"ERROR :Closing link ({trailing})")
            self.close()

    @property
    def mask(self) -> str:
        return f"{self.nick}!{self.user or 'user'}@{BOT_HOST}"

    def _on_cap(self, args: list[str], trailing: str) -> None:
        script = self.script
        sub = args[0].upper() if args else ""
        target = self.nick or "*"
        if sub == "LS":
            self._cap_negotiating = True
            if script.cap_ls is None:
                return
            for i, caps in enumerate(script.cap_ls):
                more = i < len(script.cap_ls) - 1 or not script.cap_ls_final
                self._reply(f"CAP {target} LS {'* ' if more else ''}:{caps}")
        elif sub == "REQ":
            if script.cap_ls is None:
                return
            if script.cap_req == "ack":
                self._reply(f"CAP {target} ACK :{trailing}")
            elif script.cap_req == "nak":
                self._reply(f"CAP {target} NAK :{trailing}")
        elif sub == "END":
            self._cap_negotiating = False
            self._maybe_welcome()

    def _on_authenticate(self, args: list[str]) -> None:
        target = self.nick or "*"
        if not self.script.answer_sasl:
            return
        if args and args[0].upper() in ("PLAIN", "EXTERNAL"):
            self._mechanism = args[0].upper()
            self._sasl_data = ""
            self.send("AUTHENTICATE +")
            return
        account: str | None = None
        if self._mechanism == "EXTERNAL" and args == ["+"]:
            account = self.script.external_account
        elif self._mechanism == "PLAIN" and args:
            if args[0] != "+":
                self._sasl_data += args[0]
            if len(args[0]) == 400:
                return  # more chunks follow (a last one of exactly 400 is followed by "+")
            with contextlib.suppress(ValueError, IndexError, UnicodeDecodeError):
                _, name, password = base64.b64decode(self._sasl_data).decode().split("\0")
                if self.script.accounts.get(name) == password:
                    account = name
        if account is None:
            self._reply(f"904 {target} :SASL authentication failed")
            return
        self.account = account
        self._reply(f"900 {target} {target}!u@h {account} :You are now logged in as {account}")
        self._reply(f"903 {target} :SASL authentication successful")

    def _on_nick(self, nick: str) -> None:
        if nick in self.script.taken_nicks:
            self._reply(f"433 {self.nick or '*'} {nick} :Nickname is already in use")
            return
        old = self.nick
        self.nick = nick
        if self.registered.is_set():
            self.send(f":{old}!{self.user or 'user'}@{BOT_HOST} NICK :{nick}")
        else:
            self._maybe_welcome()

    def _maybe_welcome(self) -> None:
        if self.registered.is_set() or not self.nick or not self._user_seen:
            return
        if self._cap_negotiating and self.script.hold_for_cap_end:
            return
        self._reply(f"001 {self.nick} :Welcome to the fake network {self.mask}")
        extra = f" {self.script.isupport}" if self.script.isupport else ""
        self._reply(f"005 {self.nick} CHANTYPES=# PREFIX=(ov)@+ NICKLEN=30{extra} :are supported")
        self._reply(f"376 {self.nick} :End of MOTD")
        self.registered.set()


class FakeServer:
    """Listens on 127.0.0.1 (a free port); every accepted connection becomes a Session."""

    def __init__(self, script: Script | None = None, *, tls: ssl.SSLContext | None = None) -> None:
        self.script = script or Script()
        self.tls = tls
        self.host = HOST
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self.sessions: list[Session] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._accept_loop, name="fakeserver", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._cond:
                if self._closing:
                    sock.close()
                    return
                session = Session(self, sock, len(self.sessions))
                self.sessions.append(session)
                self._cond.notify_all()
            session.start()

    def wait_session(self, index: int = 0, timeout: float = DEADLINE) -> Session:
        """The ``index``-th connection (0-based), once it has been accepted."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.sessions) <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"connection #{index} not made within {timeout:g} s "
                        f"({len(self.sessions)} so far)"
                    )
                self._cond.wait(min(left, 0.05))
            return self.sessions[index]

    def wait_registered(self, index: int = 0, timeout: float = DEADLINE) -> Session:
        """The ``index``-th connection, once the fake server has sent it 001."""
        deadline = time.monotonic() + timeout
        session = self.wait_session(index, timeout)
        if not session.registered.wait(max(0.0, deadline - time.monotonic())):
            raise AssertionError(
                f"connection #{index} not registered within {timeout:g} s; it sent: "
                f"{session.lines_since(0)}"
            )
        return session

    @property
    def latest(self) -> Session:
        with self._cond:
            return self.sessions[-1]

    def close(self) -> None:
        with self._cond:
            self._closing = True
        with contextlib.suppress(OSError):
            self._listener.close()
        # accept() does not always wake up when its socket is closed: poke it.
        with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1):
            pass
        self._thread.join(DEADLINE)
        for session in list(self.sessions):
            session.close()
            session._thread.join(DEADLINE)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def black_hole() -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket whose accept queue is full, so a new connect() never completes.

    Returns the listener and the sockets filling its queue; close them all afterwards.
    """
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    fillers: list[socket.socket] = []
    try:
        for _ in range(64):
            s = socket.socket()
            fillers.append(s)
            s.settimeout(0.2)
            try:
                s.connect(listener.getsockname())
            except TimeoutError:
                return listener, fillers
        raise AssertionError("could not fill the accept queue of a listen(0) socket")
    except BaseException:
        for s in fillers:
            s.close()
        listener.close()
        raise


# --------------------------------------------------------------------------- a real bot

ECHO = '''
from bot.api import command

@command
def echo(ctx, args):
    """echo TEXT -- say TEXT back"""
    return args
'''

#: Config for bots against the fake server: everything fast and unlimited unless a
#: test says otherwise.
BASE_CONFIG: dict[str, Any] = {
    "nick": "testbot",
    "channels": ["#c"],
    "prefix": "!",
    "admins": ["boss!*@trusted.example"],
    "commands_dir": "commands",
    "state_db": None,
    "rate_limit": {
        "burst": 10_000,
        "per_second": 100_000,
        "max_queued": 100_000,
        "per_reply": 10_000,
    },
    "command_rate": {"per_user": 100_000, "per_channel": 100_000, "window": 1, "refusals": 100_000},
    "workers": 4,
}


def write_config(tmp_path: Path, commands: dict[str, str], config: dict[str, Any]) -> Path:
    folder = tmp_path / "commands"
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in commands.items():
        (folder / name).write_text(source.lstrip("\n"), encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@contextlib.contextmanager
def running_app(
    tmp_path: Path,
    port: int,
    *,
    commands: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
    backoff: Backoff | None = None,
    **config: Any,
) -> Iterator[App]:
    """A real App connected to 127.0.0.1:``port``, serving on its own thread.

    ``config`` overrides top-level config.yaml keys (``server`` merges into the
    default server block); ``settings`` overrides ConnectionSettings fields
    (ping_interval, cap_timeout, regain_nick_every...) before the App runs;
    ``backoff`` replaces the reconnect backoff (default: 0.1 s doubling to 1 s).
    """
    raw = dict(BASE_CONFIG)
    server = {"host": HOST, "port": port, **config.pop("server", {})}
    raw.update(config)
    raw["server"] = server
    path = write_config(tmp_path, {"echo.py": ECHO} if commands is None else commands, raw)
    namespace = f"cmds_{uuid.uuid4().hex[:8]}"
    app = App(load_config(path), namespace=namespace)
    connection: Any = app.connection
    for key, value in (settings or {}).items():
        if not hasattr(connection.settings, key):
            raise AttributeError(f"ConnectionSettings has no field {key!r}")
        setattr(connection.settings, key, value)
    connection.backoff = backoff or Backoff(first=0.1, cap=1.0)
    thread = threading.Thread(target=app.run, name="bot", daemon=True)
    thread.start()
    try:
        yield app
    finally:
        app.stop()
        thread.join(DEADLINE)
        alive = thread.is_alive()
        for key in [k for k in sys.modules if k == namespace or k.startswith(namespace + ".")]:
            del sys.modules[key]
        assert not alive, "the bot did not stop within the deadline"


def privmsg(session: Session, text: str, *, nick: str = "alice", target: str = "#c") -> None:
    """``nick`` (user ``nick``, host ``nick.example``) says ``text`` in ``target``."""
    session.send(f":{nick}!{nick}@{nick}.example PRIVMSG {target} :{text}")


def assert_alive(session: Session, token: str, *, timeout: float = DEADLINE) -> None:
    """The bot answers a PING with a PONG and an ``!echo`` with its text."""
    since = session.mark()
    session.send(f"PING :{token}")
    session.wait_for(rf"^PONG :?{re.escape(token)}$", timeout, since=since)
    privmsg(session, f"!echo {token}", nick="checker")
    session.wait_for(rf"^PRIVMSG #c :{re.escape(token)}$", timeout, since=since)


def settle(app: App, session: Session, *, timeout: float = DEADLINE) -> None:
    """Wait until every command has finished and its replies have reached ``session``.

    No call running and an empty outbox mean every reply was handed to the
    socket; a PING answered after that comes after all of them.
    """
    wait_until(
        lambda: not app.dispatcher.running() and app.outbox.pending() == 0,
        timeout,
        "running commands to finish and the outbox to drain",
    )
    token = uuid.uuid4().hex[:8]
    since = session.mark()
    session.send(f"PING :{token}")
    session.wait_for(rf"^PONG :?{token}$", timeout, since=since)
