"""reloadbot's pytest plugin: test a command module against the real bot, without IRC.

Registered through the ``pytest11`` entry point, so installing reloadbot
(``pip install -e .``) is enough; in a checkout that is not installed, run
``pytest -p bot.testing``. It provides one fixture, ``load_command``::

    from pathlib import Path

    from bot.testing import LoadCommand

    DICE = Path(__file__).resolve().parents[1] / "commands" / "dice.py"


    def test_roll(load_command: LoadCommand) -> None:
        bot = load_command(DICE)
        assert bot.say("!roll 1d1") == ["1d1: 1"]
        assert bot.say("!roll 1d1", nick="bob", channel=None) == ["1d1: 1"]  # in private
        assert bot.sent[-1].target == "bob"

``load_command(path)`` loads that one module (and the ``_helpers`` it imports
from its folder) into a real App: loader, registry, dispatcher, worker threads,
outbox and built-in commands are all the ones the IRC bot runs. Only the
transport is in memory, and its clock is fake: timers (``bot.after``/``every``
in ``setup``, the command timeout) run when the test calls ``advance()``.

``CommandBot.load`` does the same outside pytest (close it yourself).
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from concurrent.futures import wait
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import pytest

from bot.testbed import TEST_ACCOUNT, FakeTransport, make_config

if TYPE_CHECKING:  # imported lazily: the plugin loads in every pytest run of the venv
    from bot.app import App, ReloadReport
    from bot.dispatch import Running
    from bot.message import Source

__all__ = [
    "TEST_ACCOUNT",
    "CommandBot",
    "LoadCommand",
    "ModuleLoadError",
    "Sent",
    "load_command",
]

TEST_USER = "test"
TEST_HOST = "example.invalid"

_apps = itertools.count(1)


class ModuleLoadError(AssertionError):
    """A module did not load (or reload); the message has every error with file:line."""


class Sent(NamedTuple):
    """One line the bot sent: where to, and what."""

    target: str
    text: str
    command: str = "PRIVMSG"  # or NOTICE, or ACTION (ctx.action: text without framing)


class _Default(Enum):
    CHANNEL = "the bot's channel"


#: ``say(channel=...)`` default: the channel the bot was loaded with.
BOT_CHANNEL = _Default.CHANNEL


@dataclass(eq=False)
class CommandBot:
    """A real App serving one command module, driven synchronously by a test."""

    app: App
    name: str  # the module under test
    channel: str  # where ``say`` talks unless told otherwise
    sent: list[Sent]  # every line the bot sent, oldest first
    scratch: Path | None = None  # a temporary folder of ours, removed by close()
    #: nick -> its own ``user@host``. Nicks not here all share one, so to per-user
    #: limits (``ctx.user_id``) they are one user changing nicks; give two nicks two
    #: hosts to test two users.
    hosts: dict[str, str] = field(default_factory=dict)

    # -- making one ---------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        prefix: str = "!",
        nick: str = "testbot",
        channel: str = "#test",
        state: Mapping[str, Any] | None = None,
        state_db: str | os.PathLike[str] | None = None,
        command_timeout: float = 10.0,
        isolated: bool = False,
        settings: Mapping[str, Any] | None = None,
        http: Mapping[str, Any] | None = None,
        channels: Sequence[str | Mapping[str, Any]] = (),
    ) -> CommandBot:
        """Load the module at ``path`` (with its helpers) into a fresh bot; ``close()`` it.

        ``isolated=True`` runs it in a worker process, as ``isolate:`` in config.yaml
        does (its timers then run on the worker's real clock, not on ``advance()``).
        ``settings`` is its section of config.yaml's ``modules:`` (``ctx.settings``);
        ``http`` is config.yaml's ``http:`` section (``ctx.fetch``): a test serving
        pages on loopback gives ``http={"allow_private": ["127.0.0.1"]}``;
        ``channels`` are entries of config.yaml's ``channels:`` (the bot's
        ``channel`` is added if missing), e.g. ``[{"name": "#quiet", "disable":
        ["karma"], "modules": {"karma": {...}}}]``.

        ``state`` seeds the module's ``ctx.state`` before it loads (``setup``
        sees it). State lives in SQLite as on IRC (so values must be JSON, and
        ``ctx.state.transaction()`` works): in a temporary file by default, or in
        ``state_db``, where a second bot sees what the first one stored.
        Raises ModuleLoadError with the loader's messages if the module does not load.
        """
        from bot.app import App
        from bot.folder import IDENTIFIER_HINT, is_module_name

        file = Path(path).absolute()
        if file.suffix != ".py" or not file.is_file():
            raise FileNotFoundError(f"no command module at {file}")
        name = file.stem
        if not is_module_name(name):
            raise ValueError(f"{file.name}: {IDENTIFIER_HINT}")
        if name.startswith("_"):
            raise ValueError(
                f"{file.name} is a helper: load a module that imports it; helpers come along"
            )
        scratch = None
        if state_db is None:
            scratch = Path(tempfile.mkdtemp(prefix="reloadbot-test-"))
            state_db = scratch / "state.sqlite3"
        config = make_config(
            file.parent,
            prefix=prefix,
            nick=nick,
            channel=channel,
            state_db=Path(state_db),
            command_timeout=command_timeout,
            isolate=(name,) if isolated else (),
            modules={name: settings} if settings is not None else None,
            http=http,
            channels=channels,
        )
        try:
            namespace = f"reloadbot_testing_{next(_apps)}"
            app = App(config, namespace=namespace, transport=FakeTransport, only=[name])
            transport = app.connection
            assert isinstance(transport, FakeTransport)
            app.dispatcher.clock = lambda: transport.now  # calls are timed on the fake clock
        except BaseException:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            raise
        bot = cls(app, name, channel, [], scratch)
        try:
            if state:
                app.state_for(name).update(state)
            report = app.load(name)
            if not report.ok:
                raise ModuleLoadError(f"{file.name} did not load:\n" + "\n".join(report.errors))
            bot._drain()
        except BaseException:
            bot.close()
            raise
        return bot

    def close(self) -> None:
        """Tear the module down (its ``teardown`` runs) and free the bot."""
        self.app.close()
        prefix = self.app.namespace + "."
        for key in [k for k in sys.modules if k == self.app.namespace or k.startswith(prefix)]:
            del sys.modules[key]
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def __enter__(self) -> CommandBot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- talking to it ------------------------------------------------------------

    def say(
        self,
        text: str,
        *,
        nick: str = "alice",
        channel: str | _Default | None = BOT_CHANNEL,
        admin: bool = False,
        wait: bool = True,
        timeout: float = 10.0,
    ) -> list[str]:
        """Say ``text`` as ``nick``; return the texts of the lines the bot sent in answer.

        ``channel`` defaults to the bot's channel; ``None`` means a private
        message. ``admin=True`` makes the sender match the bot's admin rule.
        Waits (up to ``timeout`` real seconds, else TimeoutError) until every
        command and listener the message started has finished; ``wait=False``
        returns as soon as the command is running (its timeout counts from now
        on the fake clock), with whatever was sent so far: collect the rest
        with ``wait()`` or ``advance()``.
        """
        from bot.message import Message

        where = self.channel if isinstance(channel, _Default) else channel
        source = self._source(nick, admin)
        if where is None:
            message = Message(source, self.nick, text, is_private=True)
        else:
            message = Message(source, where, text, is_private=False)
        return self._step(lambda: self.app.dispatcher.handle(message), wait, timeout, text)

    def set_modes(self, nick: str, modes: str, *, channel: str | _Default = BOT_CHANNEL) -> None:
        """Give ``nick`` exactly these channel modes (``"o"``: op, ``"v"``: voice, ``""``:
        none) in ``channel`` (default the bot's), as NAMES and MODE lines would:
        ``ctx.user_modes``, ``ctx.is_op``, ``require=`` and ``permissions:`` see them."""
        where = self.channel if isinstance(channel, _Default) else channel
        transport = self.app.connection
        assert isinstance(transport, FakeTransport)
        members = transport.members
        members.joined(where, nick)
        if modes:
            members.mode(where, ["+" + modes, *([nick] * len(modes))])

    def event(
        self,
        kind: str,
        *,
        nick: str = "alice",
        channel: str | _Default | None = BOT_CHANNEL,
        text: str = "",
        by: str = "op",
        nicks: tuple[str, ...] = (),
        timeout: float = 10.0,
    ) -> list[str]:
        """Someone joins, parts, quits, changes nick (``text`` is the new nick), is kicked,
        does an action (``/me TEXT``) or goes away (``text``: the reason, ``""``: back);
        or a netsplit (``text``: the servers) takes ``nicks``.

        ``nick`` is who it happens to; for ``kick``, ``by`` is who kicks. Runs
        the ``@on_event`` listeners like the IRC connection would; returns what they sent.
        """
        from bot.api import EVENT_KINDS, Event

        if kind not in EVENT_KINDS:
            raise ValueError(f"event kind {kind!r} is not one of {sorted(EVENT_KINDS)}")
        where = self.channel if isinstance(channel, _Default) else channel
        # the channel, for those that happen in one (an action: None means in private)
        in_channel = kind in ("join", "part", "kick", "action")
        event = Event(
            kind,
            "" if kind == "netsplit" else nick,
            where if in_channel else None,
            text,
            tuple(nicks),
        )
        source = self._source(by if kind == "kick" else nick, False)
        on_event = self.transport.on_event
        return self._step(lambda: on_event(event, source), True, timeout, kind)

    def advance(self, seconds: float, *, timeout: float = 10.0) -> list[str]:
        """Move the fake clock on, running every timer that falls due, in order.

        Each timer's job finishes before the next timer runs. Returns the texts
        of the lines sent meanwhile (timed-out commands' notices included).
        """
        if seconds < 0:
            raise ValueError("time only moves forward")
        transport = self.transport
        until = transport.now + seconds
        texts: list[str] = []
        while (fn := transport.pop_due(until)) is not None:
            texts += self._step(fn, True, timeout, "a timer")
        transport.now = until
        return texts + self._drain()

    def wait(self, timeout: float = 10.0) -> list[str]:
        """Wait until nothing is running; return the texts sent since the last call."""
        self._wait_for(self.app.dispatcher.running(), timeout, "the running calls")
        return self._drain()

    def reload(self, *modules: str, force: bool = False, check: bool = True) -> ReloadReport:
        """Reload like ``!reload``: changed files (all with ``force``), or the named modules.

        Raises ModuleLoadError if the reload failed (then the old code keeps
        serving, as on IRC) unless ``check=False``; returns the report.
        """
        report = self.app.reload(modules, force=force)
        self._drain()
        if check and not report.ok:
            raise ModuleLoadError("reload failed:\n" + "\n".join(report.errors))
        return report

    # -- looking inside -----------------------------------------------------------

    @property
    def transport(self) -> FakeTransport:
        transport = self.app.connection
        assert isinstance(transport, FakeTransport)
        return transport

    @property
    def nick(self) -> str:
        """The bot's nick."""
        return self.app.nick

    @property
    def prefix(self) -> str:
        return self.app.config.prefix

    @property
    def now(self) -> float:
        """Seconds on the fake clock since the bot was made."""
        return self.transport.now

    @property
    def state(self) -> MutableMapping[str, Any]:
        """The module's ``ctx.state`` (the same mapping, not a copy)."""
        return self.app.state_for(self.name)

    @property
    def module(self) -> ModuleType:
        """The module object now serving (a new one after each reload)."""
        loaded = self.app.registry.modules.get(self.name)
        if loaded is None:
            raise LookupError(f"{self.name} is not loaded")
        return loaded.module

    # -- internals ----------------------------------------------------------------

    def _source(self, nick: str, admin: bool) -> Source:
        from bot.message import Source

        user, _, host = self.hosts.get(nick, f"{TEST_USER}@{TEST_HOST}").partition("@")
        return Source(nick, user, host, TEST_ACCOUNT if admin else None)

    def _step(self, act: Callable[[], None], wait: bool, timeout: float, what: str) -> list[str]:
        """Do ``act`` as the connection thread would, wait for the jobs it started, drain."""
        before = self.app.dispatcher.running()  # kept alive, so no new call can reuse an id
        known = {id(r) for r in before}
        act()
        started = [r for r in self.app.dispatcher.running() if id(r) not in known]
        if wait:
            self._wait_for(started, timeout, repr(what))
        else:
            self._wait_began(started, timeout, repr(what))
        return self._drain()

    @staticmethod
    def _wait_began(calls: list[Running], timeout: float, what: str) -> None:
        """Wait until a worker has picked up each command call (its timeout runs already)."""
        commands = [r for r in calls if r.command and r.future is not None]
        deadline = time.monotonic() + timeout
        while not all(r.began or (r.future and r.future.done()) for r in commands):
            if time.monotonic() > deadline:
                names = ", ".join(r.name for r in commands)
                raise TimeoutError(f"{names} did not start within {timeout:g} s (for {what})")
            time.sleep(0.001)  # poll interval

    def _wait_for(self, calls: list[Running], timeout: float, what: str) -> None:
        futures = [r.future for r in calls if r.future is not None]
        _, pending = wait(futures, timeout=timeout)
        if pending:
            names = ", ".join(r.name for r in calls if r.future in pending)
            raise TimeoutError(
                f"{names} still running after {timeout:g} s (for {what}); use"
                " say(..., wait=False) for calls that block, then advance() or wait()"
            )

    def _drain(self) -> list[str]:
        texts: list[str] = []
        while True:
            lines, _ = self.app.outbox.take()
            if not lines:
                return texts
            for line in lines:
                command = "ACTION" if line.ctcp == "ACTION" else line.command
                self.sent.append(Sent(line.target, line.text, command))
                texts.append(line.text)


class LoadCommand(Protocol):
    """The type of the ``load_command`` fixture (for annotations in tests)."""

    def __call__(
        self,
        path: str | os.PathLike[str],
        *,
        prefix: str = ...,
        nick: str = ...,
        channel: str = ...,
        state: Mapping[str, Any] | None = ...,
        state_db: str | os.PathLike[str] | None = ...,
        command_timeout: float = ...,
        isolated: bool = ...,
        settings: Mapping[str, Any] | None = ...,
        http: Mapping[str, Any] | None = ...,
        channels: Sequence[str | Mapping[str, Any]] = ...,
    ) -> CommandBot: ...


@pytest.fixture
def load_command() -> Iterator[LoadCommand]:
    """Load a command module into a test bot: ``bot = load_command(path)`` (see CommandBot.load).

    Every bot made through the fixture is closed when the test ends.
    """
    bots: list[CommandBot] = []

    def load(path: str | os.PathLike[str], **options: Any) -> CommandBot:
        bot = CommandBot.load(path, **options)
        bots.append(bot)
        return bot

    yield load
    for bot in reversed(bots):
        bot.close()
