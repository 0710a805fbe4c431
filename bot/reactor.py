"""The ``irc`` library's transport, made safe for a bot that stays up for days.

irc 20.5's ``ServerConnection`` and ``Reactor`` with their traps handled (see the
shared notes, section A): a line buffer with a bound and a bare-CR line end, one bad
line or failing handler dropping only itself, CR and NUL never sent, whole lines
only, and a ``select`` loop that other threads can wake through a self-pipe. It knows
nothing of registration or of what the lines mean: that is ``bot.connection``.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import queue
import re
import select
import socket
from collections.abc import Callable
from typing import Any

import irc.client
import irc.message
import jaraco.stream.buffer

log = logging.getLogger("bot.connection")  # what it logs is about the connection

MAX_LINE_BYTES = 16384  # 8191 bytes of tags + 512 of message, with room to spare

#: The library's own expression for a line (tags, prefix, command, arguments): lines
#: taking the fast path below are split exactly as the library splits them.
_LINE = irc.client._rfc_1459_command_regexp

#: An event handler as the reactor calls it: (connection, event).
Handler = Callable[[Any, irc.client.Event], None]


def _latin1_for_invalid_bytes(error: UnicodeError) -> tuple[str, int]:
    """Decode only the bytes that are not UTF-8 as latin-1 (the common other charset)."""
    assert isinstance(error, UnicodeDecodeError)
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error("reloadbot-latin1", _latin1_for_invalid_bytes)


class BoundedLineBuffer(jaraco.stream.buffer.LineBuffer):
    """UTF-8, each invalid byte read as latin-1, and no line longer than MAX_LINE_BYTES.

    One stray byte no longer turns a whole line of UTF-8 into mojibake: ``ünï`` then
    the byte 0xFF reads as ``ünïÿ``, not ``Ã¼nÃ¯ÿ``.

    The library's buffer grows without bound while a line has no newline; a
    hostile server could exhaust memory. Over-long lines are dropped whole.
    """

    # A bare CR ends a line too (the library splits on LF only): otherwise the text
    # after it would be glued to the next line, e.g. into the token a PONG echoes.
    line_sep_exp = re.compile(b"\r\n|\r|\n")

    def __init__(self) -> None:
        super().__init__()
        self._skipping = False  # inside an over-long line: drop up to the next line end

    def feed(self, data: bytes) -> None:
        if self._skipping:
            match = self.line_sep_exp.search(data)
            if match is None:
                return
            data, self._skipping = data[match.end() :], False
        super().feed(data)
        tail = len(self.buffer) - (max(self.buffer.rfind(b"\n"), self.buffer.rfind(b"\r")) + 1)
        if tail > MAX_LINE_BYTES:
            log.warning("dropped an over-long line from the server (> %d bytes)", MAX_LINE_BYTES)
            self.buffer = self.buffer[: len(self.buffer) - tail]
            self._skipping = True

    def lines(self) -> Any:
        for raw in super().lines():
            line = raw.decode("utf-8", "reloadbot-latin1")
            if len(line) <= MAX_LINE_BYTES:
                yield line
            else:
                log.warning("dropped an over-long line from the server (%d chars)", len(line))


class GuardedConnection(irc.client.ServerConnection):
    """A ServerConnection where one bad line, or one failing handler, drops only itself."""

    # Invalid UTF-8 or a line without end must not kill the read loop.
    buffer_class = BoundedLineBuffer

    #: Called with (channel, entries) for each RPL_NAMREPLY, bypassing the library's
    #: event machinery: joining busy channels is thousands of these, and each costs
    #: the library ~25 us, time a command queued behind them waits (see benchmarks).
    on_names: Callable[[str, list[str]], None] | None = None
    #: Called for every line handled by ``on_names`` or ``fast`` (the library's raw event
    #: is not).
    on_line: Callable[[], None] | None = None
    #: ``{"JOIN": ("join", handler), ...}``: commands from users whose lines skip the
    #: library's event machinery (two events, each with a sorted list of handlers): the
    #: line is split as the library splits it, into the same event, which goes to
    #: ``handler`` alone. A join flood is thousands of JOINs; the library spent ~6 us on each.
    fast: dict[str, tuple[str, Handler]] = {}

    #: Set (on the connection thread) for ``between_lines`` to run after this line.
    pause_due = False
    #: Run after a line when ``pause_due`` is set, or another thread woke the reactor
    #: (a reply is waiting): the connection's chance to hand over and send mid-batch.
    between_lines: Callable[[], None] | None = None

    def _process_line(self, line: str) -> None:
        try:
            names = self.on_names is not None and self._names_line(line)
            if not names and not (self.fast and self._fast_line(line)):
                super()._process_line(line)
        except Exception:
            log.exception("dropped an IRC line that could not be handled: %.200r", line)
        if self.between_lines is not None and (self.pause_due or self.reactor.woken):
            try:
                self.between_lines()
            except Exception:
                log.exception("error between two lines from the server")

    def _fast_line(self, line: str) -> bool:
        """A line of a ``fast`` command, handled here; False for the library's path (also
        for whatever the library would treat differently or fail on)."""
        if not self.real_server_name:
            return False  # the first lines: the library learns the server's name
        match = _LINE.match(line)
        if match is None:
            return False
        group = match.group
        entry = self.fast.get(group("command").upper())
        prefix = group("prefix")
        if entry is None or not prefix:
            return False
        kind, handler = entry
        arguments = irc.message.Arguments.from_group(group("argument"))
        if not arguments and kind in ("quit", "nick"):
            return False  # the library fails on these: let it, and the line is logged
        source = irc.client.NickMask(prefix)
        target: str | None
        if kind == "quit":
            target, arguments = None, arguments[:1]
        else:
            if kind == "nick" and source.nick == self.real_nickname:
                self.real_nickname = arguments[0]
            target, arguments = (arguments[0] if arguments else None), arguments[1:]
            if kind == "mode" and not irc.client.is_channel(target):
                return False  # a user mode: the library's "umode"
        if self.on_line is not None:
            self.on_line()
        tags = irc.message.Tag.from_group(group("tags"))
        handler(self, irc.client.Event(kind, source, target, arguments, tags))
        return True

    def _names_line(self, line: str) -> bool:
        """``:server 353 me = #chan :a @b +c``: handled here, or False to parse it fully."""
        if line[:1] != ":" or " 353 " not in line[:80]:
            return False  # (tags, or another command: the library's slower path)
        parts = line.split(" ", 5)
        if len(parts) < 6 or parts[1] != "353":
            return False
        if self.on_line is not None:
            self.on_line()
        names = parts[5][1:] if parts[5].startswith(":") else parts[5]
        assert self.on_names is not None
        self.on_names(parts[4], names.split())
        return True

    #: The longest line we send, CRLF included: 512, or the server's LINELEN.
    max_line = 512

    def _prep_message(self, string: str) -> bytes:
        # The library refuses LF but sends CR and NUL as they are. A server that ends
        # lines at CR would read what follows as a second command from us (e.g. in a
        # PONG echoing a hostile PING token). Nothing we send may contain them.
        clean = string.replace("\r", "").replace("\0", "").replace("\n", "")
        data = self.encode(clean) + b"\r\n"
        if len(data) > self.max_line:  # (the outbox splits to fit: this is a last guard)
            raise irc.client.MessageTooLong(f"a line of {len(data)} bytes; at most {self.max_line}")
        return data

    def send_raw(self, string: str) -> None:
        """Send one line; unlike the library's ``socket.send``, never a partial one."""
        if self.socket is None:
            raise irc.client.ServerNotConnectedError("Not connected.")
        try:
            self.socket.sendall(self._prep_message(string))
        except OSError:
            self.disconnect("Connection reset by peer.")


class WakeableReactor(irc.client.Reactor):
    """A Reactor whose ``select`` also watches a self-pipe, so other threads can wake it."""

    connection_class = GuardedConnection

    def __init__(self) -> None:
        super().__init__()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    #: Another thread woke the reactor since it last looked (set before the pipe is
    #: written): read between lines, so a reply need not wait for the whole batch.
    woken = False

    def wake(self) -> None:
        self.woken = True
        with contextlib.suppress(BlockingIOError, OSError):  # a full pipe already means "wake up"
            self._wake_w.send(b"\0")

    def call_soon(self, fn: Callable[[], None], *, wake: bool = True) -> None:
        self._calls.put(fn)
        if wake:
            self.wake()

    @property
    def sockets(self) -> list[Any]:
        return [*super().sockets, self._wake_r]

    def process_once(self, timeout: float = 0) -> None:
        # The base class sleeps instead of selecting when it has no connection;
        # we always have the wake pipe, so always select.
        readable, _, _ = select.select(self.sockets, [], [], timeout)
        self.process_data(readable)
        self.process_timeout()

    def process_data(self, sockets: list[Any]) -> None:
        self.woken = False  # (the calls below run; a wake after this is seen again)
        if self._wake_r in sockets:
            with contextlib.suppress(BlockingIOError, OSError):
                while self._wake_r.recv(4096):
                    pass
        self.run_calls()  # every pass: calls queued without a wake run too
        super().process_data([s for s in sockets if s is not self._wake_r])

    def run_calls(self) -> None:
        while True:
            try:
                fn = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                with self.mutex:
                    fn()
            except Exception:
                log.exception("error in a call handed to the connection thread")

    def close(self) -> None:
        self._wake_r.close()
        self._wake_w.close()
