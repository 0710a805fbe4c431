"""Console mode: chat with the real bot in a terminal, no IRC server needed.

``python -m bot --console`` runs the same App as on IRC (loader, registry,
dispatcher, outbox, state, file watching, ``!reload``...) with a
``ConsoleTransport`` in place of the IRC connection. Each line typed is a
PRIVMSG from a local user; the lines the bot would send to the server are
printed instead::

    #bot (admin) <alice> !echo hi
    <reloadbot> hi

The local user is ``NICK!console@localhost``. Admin rights work as on IRC, by
matching the ``admins`` rules of config.yaml: console mode adds one rule,
``account:reloadbot-console`` (``CONSOLE_RULE``), that nothing on IRC can
satisfy because the IRC bot never has it, and ``/admin on`` marks the console
user's messages with that services account. ``/admin off`` drops the mark, so
you see what everybody else sees. ``ConsoleApp`` adds the rule to every config it
reads, so it stays in force when config.yaml is re-read (``!rehash``, saving).

When stdin is not a terminal, lines are read one by one, each one's replies
are printed before the next line is read, and the bot quits at end of input
once pending replies are out: ``printf '!echo hi\\n' | python -m bot --console``.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from bot.api import Event
from bot.app import App, OnEvent
from bot.auth import AdminRule, is_admin, parse_admin_rule
from bot.config import Config, RateLimit, ServerConfig
from bot.connection import ConnectionSettings
from bot.message import Message, Source
from bot.outbox import Outbox, source_length
from bot.timers import TimerHeap

log = logging.getLogger(__name__)

#: The services account console messages carry under ``/admin on``.
CONSOLE_ACCOUNT = "reloadbot-console"
#: The admin rule console mode adds to the config; only console messages can match it.
CONSOLE_RULE: AdminRule = parse_admin_rule(f"account:{CONSOLE_ACCOUNT}")
CONSOLE_USER = "console"
CONSOLE_HOST = "localhost"
HISTORY_FILE = "console_history"

_NICK = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,29}")
_CHANNEL = re.compile(r"[#&+!][^\x00\x07\r\n ,:]{1,49}")

Output = Callable[[str, str, str], None]  # (IRC command, target, text)


def with_admin_rule(config: Config, rule: AdminRule = CONSOLE_RULE) -> Config:
    """``config`` with ``rule`` added to its admins (once)."""
    if rule in config.admins:
        return config
    return replace(config, admins=(*config.admins, rule))


def default_config(commands_dir: Path) -> Config:
    """The config console mode uses when there is no config.yaml: ./commands, no state file."""
    return Config(
        server=ServerConfig(),
        nick="reloadbot",
        channels=("#console",),
        prefix="!",
        admins=(),
        commands_dir=commands_dir,
        state_db=None,
        rate_limit=RateLimit(),
    )


def history_path(config: Config) -> Path | None:
    """Where console history is kept: next to the state database (the config's data dir)."""
    if config.state_db is not None:
        return config.state_db.parent / HISTORY_FILE
    if config.path is not None:
        return config.path.parent / "data" / HISTORY_FILE
    return None


def ConsoleApp(config: Config, **kwargs: Any) -> App:
    """The App, with the console's admin rule added to every config it reads."""
    return App(config, overlay=with_admin_rule, **kwargs)


class ConsoleTransport:
    """The Transport protocol over a terminal: the App's ``connection`` in console mode.

    Like the IRC connection, one thread (the one in ``run()``) hands messages to
    the dispatcher, runs timers and drains the outbox (rate limits included);
    other threads hand it work with ``send``/``event``/``call_later``.
    """

    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        on_message: Callable[[Message], None],
        on_event: OnEvent,
        *,
        output: Output,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nick = config.nick
        self.channels = config.channels
        self.outbox = outbox
        self.on_message = on_message
        self.on_event = on_event
        self.output = output
        self.clock = clock
        self.ready = threading.Event()  # set once run() serves (modules are loaded by then)
        self._cond = threading.Condition()
        self._calls: deque[Callable[[], None]] = deque()
        self._timers = TimerHeap(lambda: self.clock())
        self._woken = False
        self._busy = False
        self._stopping = False

    # -- what the console (another thread) uses -----------------------------------

    def send(self, message: Message) -> None:
        """Deliver a message from the console user, as the IRC connection would."""
        self._call_soon(lambda: self.on_message(message))

    def event(self, event: Event, source: Source) -> None:
        """Deliver a join, nick change or action, as the IRC connection would."""
        self._call_soon(lambda: self.on_event(event, source))

    def quiet(self) -> bool:
        """Nothing queued for the transport thread, and it is not busy handling anything."""
        with self._cond:
            return not self._calls and not self._busy

    # -- the Transport protocol -------------------------------------------------

    def run(self) -> None:
        self.ready.set()
        while True:
            with self._cond:
                calls, self._calls = self._calls, deque()
                self._busy = True
                stopping = self._stopping
            try:
                for call in calls:
                    _guarded(call)
                self._run_timers()
                self._flush()
            finally:
                with self._cond:
                    self._busy = False
            if stopping:
                return
            with self._cond:
                if not (self._calls or self._woken or self._stopping):
                    self._cond.wait(self._next_timeout())
                self._woken = False

    def stop(self, message: str = "Shutting down") -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            self._timers.add(delay, fn)
            self._cond.notify_all()

    def set_channels(self, channels: tuple[str, ...]) -> None:
        self.channels = channels

    def change_nick(self, nicks: tuple[str, ...]) -> None:
        if nicks and nicks[0] != self.nick:
            old, self.nick = self.nick, nicks[0]
            self.output("NICK", old, self.nick)

    def reconnect(self, reason: str) -> None:
        self.output("NOTE", "", "(console mode has no connection to drop; nothing to do)")

    def update_settings(self, settings: ConnectionSettings) -> None:
        """Server settings mean nothing without a server."""

    def source_length(self) -> int:
        # as a fresh IRC connection would split replies, before it knows its own host
        return source_length(self.nick)

    # -- internals ----------------------------------------------------------------

    def _call_soon(self, fn: Callable[[], None]) -> None:
        with self._cond:
            self._calls.append(fn)
            self._cond.notify_all()

    def _run_timers(self) -> None:
        while True:
            with self._cond:
                due = self._timers.pop_due()
            if due is None:
                return
            _guarded(due[1])

    def _flush(self) -> None:
        lines, _ = self.outbox.take()
        for line in lines:
            self.output("ACTION" if line.ctcp == "ACTION" else line.command, line.target, line.text)

    def _next_timeout(self) -> float:
        with self._cond:
            timeout = self._timers.wait_time(0.5)
        if self.outbox.pending():
            timeout = min(timeout, self.outbox.bucket.wait_time())
        return timeout


def _guarded(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:
        log.exception("error in a call on the console transport thread")


class Screen:
    """Prints bot lines without mangling the line being typed (redraws the prompt).

    With readline's hooks it knows exactly where the terminal is: ``starting``
    (readline is printing the prompt; lines wait), ``reading`` (the prompt and
    the typed text are on screen: clear, print, redraw), or ``idle`` (print).
    """

    def __init__(self, out: TextIO, readline: ModuleType | None) -> None:
        self.out = out
        self.readline = readline
        self.prompt = ""
        self.state = "idle"
        self._waiting: list[str] = []
        self._lock = threading.Lock()

    def prompt_starting(self) -> None:
        """readline's startup hook: the prompt is about to be printed."""
        with self._lock:
            self.state = "starting"

    def at_prompt(self) -> None:
        """readline's pre-input hook: the prompt is on screen, the user may type."""
        with self._lock:
            self.state = "reading"
            waiting, self._waiting = self._waiting, []
            for text in waiting:
                self._write(text)

    def done_reading(self) -> None:
        with self._lock:
            self.state = "idle"
            waiting, self._waiting = self._waiting, []
            for text in waiting:
                self._write(text)

    def show(self, text: str) -> None:
        with self._lock:
            if self.state == "starting":
                self._waiting.append(text)
            else:
                self._write(text)

    def _write(self, text: str) -> None:
        if self.state == "reading" and self.readline is not None:
            typed = self.readline.get_line_buffer()
            self.out.write(f"\r\x1b[K{text}\n{self.prompt}{typed}")
        else:
            self.out.write(text + "\n")
        self.out.flush()


class ScreenLogHandler(logging.Handler):
    """Shows warnings, errors and operator notices (auto-reload, config.yaml) in the chat."""

    def __init__(self, screen: Screen) -> None:
        super().__init__(logging.DEBUG)
        self.screen = screen

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "bot.dispatch" and str(record.msg).startswith("refused "):
            return False  # the audit line of a refused admin command: the reply says it
        return record.levelno >= logging.WARNING or record.funcName == "notify"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:
            self.handleError(record)
            return
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        self.screen.show("\n".join(f"-- {level}{line}" for line in text.splitlines()))


HELP = """\
console commands (anything else is said in the channel, like on IRC):
  /nick NAME        act as another user
  /msg TEXT         say TEXT to the bot in private
  /me TEXT          do an action (listeners of "action" events see it)
  /query            talk to the bot in private from now on (/join #chan to go back)
  /join #CHAN       talk in another channel
  /admin on|off     act as an admin or not (shows the current state without on/off)
  /whoami           who you are, and whether the bot treats you as an admin
  /quit             stop the bot and leave (Ctrl-D too)
  //text            say a line that starts with /"""


class Console:
    """The chat prompt: turns typed lines into messages for the ConsoleTransport."""

    def __init__(
        self,
        config: Config,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        interactive: bool | None = None,
        nick: str | None = None,
        admin: bool = True,
    ) -> None:
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        if interactive is None:
            interactive = self.stdin is sys.stdin and _isatty(sys.stdin) and _isatty(sys.stdout)
        self.interactive = interactive
        self.readline = _import_readline() if interactive else None
        self.screen = Screen(self.stdout, self.readline)
        self.app = ConsoleApp(config, transport=self._make_transport)
        transport = self.app.connection
        assert isinstance(transport, ConsoleTransport)
        self.transport = transport
        self.channel = config.channels[0] if config.channels else "#console"
        self.joined = {self.channel.lower()}
        self.private = False
        self.nick = nick or _default_nick()
        self.admin = admin
        self.history = history_path(config) if interactive else None
        self._thread: threading.Thread | None = None
        self._prompt_hooks = False

    def _make_transport(
        self,
        config: Config,
        outbox: Outbox,
        on_message: Callable[[Message], None],
        on_event: OnEvent,
    ) -> ConsoleTransport:
        return ConsoleTransport(config, outbox, on_message, on_event, output=self._bot_line)

    # -- who is typing ------------------------------------------------------------

    @property
    def source(self) -> Source:
        account = CONSOLE_ACCOUNT if self.admin else None
        return Source(self.nick, CONSOLE_USER, CONSOLE_HOST, account)

    @property
    def here(self) -> str:
        """Where the user talks now: the channel, or (in private) the user's own nick."""
        return self.nick if self.private else self.channel

    @property
    def prompt(self) -> str:
        where = f"(private with {self.transport.nick})" if self.private else self.channel
        return f"{where}{' (admin)' if self.admin else ''} <{self.nick}> "

    def _bot_line(self, command: str, target: str, text: str) -> None:
        bot = self.transport.nick
        if command == "NOTE":
            self.screen.show(f"-- {text}")
        elif command == "NICK":
            self.screen.show(f"-- {target} is now known as {text}")
        elif command == "NOTICE":
            self.screen.show(f"-{bot}{'' if target == self.here else ' -> ' + target}- {text}")
        elif command == "ACTION":
            self.screen.show(f"* {bot}{'' if target == self.here else ' -> ' + target} {text}")
        elif target.lower() == self.here.lower():
            self.screen.show(f"<{bot}> {text}")
        else:
            self.screen.show(f"<{bot} -> {target}> {text}")

    # -- running ------------------------------------------------------------------

    def run(self) -> int:
        """Start the bot, read lines until /quit or end of input, stop the bot. Exit code."""
        handler = ScreenLogHandler(self.screen)
        logging.getLogger().addHandler(handler)
        self._setup_readline()
        try:
            self._thread = threading.Thread(target=self.app.run, name="console-bot", daemon=True)
            self._thread.start()
            if not self._wait_ready():
                self.screen.show("-- the bot could not start (see the errors above)")
                return 1
            self._banner()
            self.transport.event(Event("join", self.nick, self.channel), self.source)
            self.wait_idle()
            self._loop()
            return 0
        finally:
            self.wait_idle()
            self.app.stop("Leaving the console")
            if self._thread is not None:
                self._thread.join(timeout=self.app.config.command_timeout + 5)
            self._save_history()
            logging.getLogger().removeHandler(handler)

    def still_running(self) -> bool:
        """A command that outlived the quit (its worker thread would delay the exit)."""
        return bool(self.app.dispatcher.running())

    def _wait_ready(self) -> bool:
        assert self._thread is not None
        while not self.transport.ready.wait(0.05):
            if not self._thread.is_alive():
                return False
        return True

    def _banner(self) -> None:
        registry = self.app.registry
        modules = [
            f"{m.name} ({', '.join(s.name for s in m.commands) or 'no commands'})"
            for m in registry.command_modules()
        ]
        prefix = self.app.config.prefix
        who = "as an admin (/admin off to drop it)" if self.admin else "not as an admin"
        self.screen.show(
            f"-- reloadbot console: no IRC server; the bot is {self.transport.nick}.\n"
            f"-- You are {self.source.mask} in {self.channel}, {who}. /help lists console"
            f" commands, {prefix}help the bot's.\n"
            f"-- Modules from {self.app.loader.folder.path}: {', '.join(modules) or 'none'}"
        )

    def _loop(self) -> None:
        while True:
            line = self._read()
            if line is None:
                return
            if not self.interactive:
                self.screen.show(self.prompt + line)
            if not self.handle(line):
                return
            if not self.interactive:
                self.wait_idle()
            assert self._thread is not None
            if not self._thread.is_alive():
                self.screen.show("-- the bot stopped")
                return

    def _read(self) -> str | None:
        if not self.interactive:
            line = self.stdin.readline()
            return line.rstrip("\r\n") if line else None
        self.screen.prompt = self.prompt
        while True:
            if not self._prompt_hooks:  # else readline's hooks tell the screen
                self.screen.at_prompt()
            try:
                return input(self.prompt)
            except EOFError:
                self.stdout.write("\n")
                return None
            except KeyboardInterrupt:
                self.stdout.write("^C\n")  # drop the line, like a shell
            finally:
                self.screen.done_reading()

    def handle(self, line: str) -> bool:
        """Act on one typed line; False means quit."""
        if not line.strip():
            return True
        if line.startswith("/") and not line.startswith("//"):
            return self._slash(line)
        self._say(line.removeprefix("/"), private=self.private)
        return True

    def _say(self, text: str, *, private: bool) -> None:
        target = self.transport.nick if private else self.channel
        self.transport.send(Message(self.source, target, text, is_private=private))

    def _slash(self, line: str) -> bool:
        verb, _, arg = line[1:].partition(" ")
        arg = arg.strip()
        verb = verb.lower()
        if verb == "quit":
            return False
        handlers: dict[str, Callable[[str], None]] = {
            "nick": self._nick,
            "msg": self._msg,
            "me": self._me,
            "query": self._query,
            "join": self._join,
            "admin": self._admin,
            "whoami": lambda arg: self._whoami(),
            "help": lambda arg: self.screen.show(HELP),
        }
        handler = handlers.get(verb)
        if handler is None:
            self.screen.show(f"-- unknown console command /{verb}; /help lists them")
        else:
            handler(arg)
        return True

    def _nick(self, arg: str) -> None:
        if not _NICK.fullmatch(arg):
            self.screen.show("-- usage: /nick NAME (an IRC nick: letters, digits, -[]\\`_^{|})")
        elif arg.lower() == self.transport.nick.lower():
            self.screen.show(f"-- {arg} is the bot's nick")
        else:
            old = self.source
            self.nick = arg
            self.transport.event(Event("nick", old.nick, None, arg), old)
            self.screen.show(f"-- you are now {self.source.mask}")

    def _msg(self, arg: str) -> None:
        first, _, rest = arg.partition(" ")
        if first.lower() == self.transport.nick.lower():
            arg = rest.strip()  # the IRC habit: /msg BOTNICK TEXT
        if not arg:
            self.screen.show("-- usage: /msg TEXT (said to the bot in private)")
        else:
            self._say(arg, private=True)

    def _me(self, arg: str) -> None:
        if not arg:
            self.screen.show("-- usage: /me TEXT")
            return
        channel = None if self.private else self.channel
        self.transport.event(Event("action", self.nick, channel, arg), self.source)

    def _query(self, arg: str) -> None:
        self.private = True
        self.screen.show(
            f"-- talking to {self.transport.nick} in private; /join {self.channel} to go back"
        )

    def _join(self, arg: str) -> None:
        if not _CHANNEL.fullmatch(arg):
            self.screen.show("-- usage: /join #CHANNEL")
            return
        self.channel, self.private = arg, False
        if arg.lower() not in self.joined:
            self.joined.add(arg.lower())
            self.transport.event(Event("join", self.nick, arg), self.source)
        self.screen.show(f"-- talking in {arg}")

    def _admin(self, arg: str) -> None:
        if arg.lower() in ("on", "off"):
            self.admin = arg.lower() == "on"
        elif arg:
            self.screen.show("-- usage: /admin on|off")
            return
        self._whoami()

    def _whoami(self) -> None:
        source = self.source
        where = f"in private with {self.transport.nick}" if self.private else f"in {self.channel}"
        if is_admin(source, self.app.config.admins):
            rules = [r.text for r in self.app.config.admins if r.matches(source)]
            why = "console admin" if self.admin else f"matched by admins entry {rules[0]!r}"
            status = f"an admin ({why})"
        else:
            status = "not an admin"
        self.screen.show(f"-- you are {source.mask}, {status}, talking {where}")

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every message was handled, every command finished and every reply shown.

        Gives up after the command timeout (plus the time the rate limit needs
        for queued replies): a hung command must not hang the console.
        """
        limit = self.app.config.command_timeout + 1.0 if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            if self._idle():
                return True
            now = time.monotonic()
            if self.app.outbox.pending():
                deadline = max(deadline, now + self.app.outbox.bucket.wait_time() + 1.0)
            if now >= deadline or self._thread is None or not self._thread.is_alive():
                return False
            time.sleep(0.01)  # polling with a deadline: these states have no common event

    def _idle(self) -> bool:
        dispatcher, outbox, transport = self.app.dispatcher, self.app.outbox, self.transport
        # Order matters: a call that starts a job makes the transport busy first.
        return (
            not dispatcher.running()
            and not outbox.pending()
            and transport.quiet()
            and not dispatcher.running()
        )

    # -- readline -----------------------------------------------------------------

    def _setup_readline(self) -> None:
        readline = self.readline
        if readline is None:
            return
        readline.set_history_length(1000)
        if hasattr(readline, "set_pre_input_hook") and hasattr(readline, "set_startup_hook"):
            readline.set_startup_hook(self.screen.prompt_starting)
            readline.set_pre_input_hook(self.screen.at_prompt)
            self._prompt_hooks = True
        readline.set_completer(self._complete)
        readline.set_completer_delims(" ")
        if "libedit" in (readline.__doc__ or ""):
            readline.parse_and_bind("bind ^I rl_complete")
        else:
            readline.parse_and_bind("tab: complete")
        if self.history is not None and self.history.is_file():
            with contextlib.suppress(OSError):
                readline.read_history_file(str(self.history))

    def _save_history(self) -> None:
        if self.readline is None:
            return
        if self._prompt_hooks:
            self.readline.set_startup_hook(None)
            self.readline.set_pre_input_hook(None)
        self.readline.set_completer(None)
        if self.history is None:
            return
        try:
            self.history.parent.mkdir(parents=True, exist_ok=True)
            self.readline.write_history_file(str(self.history))
        except OSError as exc:
            log.warning("could not save the console history to %s: %s", self.history, exc)

    def _complete(self, text: str, state: int) -> str | None:
        prefix = self.app.config.prefix
        verbs = ("nick", "msg", "me", "query", "join", "admin", "whoami", "quit")
        words = [f"/{w}" for w in verbs]
        words += [prefix + e.spec.name for e in self.app.registry.commands()]
        matches = [w + " " for w in words if w.startswith(text)]
        return matches[state] if state < len(matches) else None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _import_readline() -> ModuleType | None:
    try:
        import readline
    except ImportError:  # not on every platform; plain input() still works
        return None
    return readline


def _default_nick() -> str:
    with contextlib.suppress(Exception):
        name = getpass.getuser()
        if _NICK.fullmatch(name):
            return name
    return "you"


def run_console(config: Config) -> int:
    """``python -m bot --console``: run until /quit or end of input; the exit code."""
    console = Console(config)
    code = console.run()
    if console.still_running():
        # Its worker thread would keep the process alive until the command returns.
        console.screen.show("-- a command is still running; leaving without waiting for it")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
