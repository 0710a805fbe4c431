"""Shared pytest fixtures.

Sections: real IRC servers (the shared ones start on first use), a loopback
HTTP server, then IRC test clients.  Add new fixtures in their own section below.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from irc.strings import lower as irc_lower
from ircclient import ClientFactory, IrcClient, parse
from ircnet import InspircdAtheme
from webserver import WebServer, web_server_fixture

from bot.app import App
from bot.config import load_config
from bot.ircd import Ngircd

# --------------------------------------------------------------------------- IRC servers


@pytest.fixture(scope="session")
def ngircd() -> Iterator[Ngircd]:
    """One ngIRCd (no flood penalties) for the whole test session."""
    with Ngircd() as server:
        yield server


@pytest.fixture
def private_ngircd() -> Iterator[Ngircd]:
    """An ngIRCd for this test only: restart() or kill() it freely (reconnect tests)."""
    with Ngircd() as server:
        yield server


@pytest.fixture(scope="session")
def ircnet() -> Iterator[InspircdAtheme]:
    """InspIRCd + Atheme (accounts, SASL, IRCv3 tags); started only if a test asks for it."""
    with InspircdAtheme() as network:
        yield network


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
def web_server() -> Iterator[WebServer]:
    """A real HTTP server on 127.0.0.1 for this test (tests/webserver.py)."""
    yield from web_server_fixture()


# --------------------------------------------------------------------------- IRC clients

_nicks = itertools.count(1)


@pytest.fixture
def irc_client(request: pytest.FixtureRequest) -> Iterator[ClientFactory]:
    """Factory for connected test clients with unique nicks; all are closed at test end.

        alice = irc_client()                      # on the session ngircd, nick "u1"
        bob = irc_client("bob", caps=["multi-prefix"])   # nick "bob2"
        carol = irc_client("carol", server=ircnet, sasl=("carol", "pw"))
        dave = irc_client(connect=False)          # connect yourself (e.g. connect_all)
        eve = irc_client(nick="eve")              # exactly this nick

    ``server`` is anything with ``.host`` and ``.port`` (default: the ``ngircd``
    fixture, started only when needed).  Other keywords go to ``IrcClient``.
    """
    clients: list[IrcClient] = []

    def make(
        prefix: str = "u",
        *,
        nick: str | None = None,
        server: Ngircd | InspircdAtheme | None = None,
        connect: bool = True,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> IrcClient:
        if server is None:
            server = request.getfixturevalue("ngircd")
        nick = nick or f"{prefix}{next(_nicks)}"
        client = IrcClient(server.host, server.port, nick, **kwargs)
        clients.append(client)
        return client.connect(timeout) if connect else client

    yield make
    for client in clients:
        client.close()


# --------------------------------------------------------------------------- running bots
# A real App on a real server: config.yaml, commands/ and the state database in
# tmp_path, ``app.run()`` on a daemon thread.  Used by tests/test_irc_*.py.

BOT_DEADLINE = 10.0  # seconds a bot may take to join, or to stop

ECHO_COMMAND = '''\
from bot.api import Context, command


@command
def echo(ctx: Context, args: str) -> str:
    """echo TEXT -- repeat TEXT back"""
    return args
'''


@dataclass
class BotFiles:
    """A bot's folder: config.yaml (``raw`` is what it holds), commands/, state db."""

    config_path: Path
    commands_dir: Path
    channel: str
    nick: str
    raw: dict[str, Any]
    config_file: Path  # the file written: config_path itself, or its symlink target

    def write(self, name: str, source: str) -> Path:
        """Atomically (temp file + rename, like an editor) write commands/NAME.py."""
        path = self.commands_dir / (name if name.endswith(".py") else f"{name}.py")
        _atomic_write(path, textwrap.dedent(source).lstrip("\n"))
        return path

    def delete(self, name: str) -> None:
        (self.commands_dir / (name if name.endswith(".py") else f"{name}.py")).unlink()

    def write_config(self, text: str | None = None, **changes: Any) -> str:
        """Atomically rewrite config.yaml: ``raw`` updated with ``changes``, or ``text`` as is.

        Returns the text written.
        """
        if text is None:
            self.raw.update(changes)
            text = yaml.safe_dump(self.raw, sort_keys=False)
        _atomic_write(self.config_file, text)
        return text


@dataclass
class RunningBot(BotFiles):
    app: App = field(default=None)  # type: ignore[assignment]
    thread: threading.Thread = field(default=None)  # type: ignore[assignment]
    crashed: list[BaseException] = field(default_factory=list)

    def is_reply(self, raw: str, target: str | None = None) -> bool:
        """Is ``raw`` a PRIVMSG from the bot to ``target`` (default: its channel)?"""
        line = parse(raw)
        return (
            line.command == "PRIVMSG"
            and irc_lower(line.nick) == irc_lower(self.app.nick)
            and len(line.params) == 2
            and irc_lower(line.params[0]) == irc_lower(target or self.channel)
        )

    def replies(self, client: IrcClient, since: int, target: str | None = None) -> list[str]:
        """Texts the bot sent to ``target`` (default: its channel) that ``client`` saw since."""
        lines = client.lines_since(since)
        return [parse(raw).params[1] for raw in lines if self.is_reply(raw, target)]

    def wait_reply(
        self,
        client: IrcClient,
        since: int,
        pattern: str | None = None,
        *,
        target: str | None = None,
        timeout: float = 5.0,
    ) -> str:
        """Text of the first bot PRIVMSG to ``target`` after ``since`` (matching ``pattern``)."""
        regex = re.compile(pattern) if pattern else None

        def match(raw: str) -> bool:
            if not self.is_reply(raw, target):
                return False
            return regex is None or regex.search(parse(raw).params[1]) is not None

        return parse(client.wait_for(match, timeout, since=since)).params[1]

    def ask(
        self,
        client: IrcClient,
        text: str,
        pattern: str | None = None,
        *,
        private: bool = False,
        timeout: float = 5.0,
    ) -> str:
        """Say ``text`` in the channel (or privately); return the bot's next reply there."""
        mark = client.mark()
        client.privmsg(self.app.nick if private else self.channel, text)
        target = client.nick if private else self.channel
        return self.wait_reply(client, mark, pattern, target=target, timeout=timeout)

    def wait_until(
        self, condition: Callable[[], object], what: str, timeout: float = BOT_DEADLINE
    ) -> None:
        """Poll ``condition`` until it is true; fail after ``timeout`` s or if the bot stops."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.crashed or not self.thread.is_alive():
                raise AssertionError(f"bot {self.nick} stopped while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.005)  # poll interval

    def wait_joined(self, *channels: str, timeout: float = BOT_DEADLINE) -> None:
        """Wait until the bot is registered and in ``channels`` (default: its config's)."""
        names = [c["name"] if isinstance(c, dict) else c for c in self.raw["channels"]]
        wanted = {irc_lower(c) for c in (channels or names)}
        conn = self.app.connection
        self.wait_until(
            lambda: conn.registered.is_set() and wanted <= set(conn.joined),
            f"{self.nick} to be registered and in {sorted(wanted)}",
            timeout,
        )

    def stop(self) -> None:
        self.app.stop()
        self.thread.join(BOT_DEADLINE)
        ns = self.app.namespace
        for key in [k for k in sys.modules if k == ns or k.startswith(ns + ".")]:
            del sys.modules[key]
        assert not self.thread.is_alive(), f"bot {self.nick} did not stop in {BOT_DEADLINE} s"
        assert not self.crashed, f"bot {self.nick} crashed: {self.crashed!r}"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


_bots = itertools.count(1)


@pytest.fixture
def bot_files(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., BotFiles]:
    """Factory: write a bot's config.yaml and command files; start nothing.

        files = bot_files({"echo.py": ECHO_COMMAND}, watch=True, notify=["#x"])

    ``files`` defaults to the echo command.  Each call gets its own folder,
    nick and channel (``#rb<hex>``); ``channels`` adds more.  ``server``
    defaults to the session ``ngircd``.  ``link_config=True`` makes config.yaml
    a symlink to a file elsewhere, so saving it is invisible to the bot's config
    watcher (only ``!rehash`` applies it).  Other keywords are config keys;
    ``notify=True`` means ``notify: [<the bot's channel>]``.
    """

    def make(
        files: dict[str, str] | None = None,
        *,
        server: Any = None,
        nick: str | None = None,
        channels: tuple[str, ...] = (),
        watch: bool = False,
        link_config: bool = False,
        **extra: Any,
    ) -> BotFiles:
        if server is None:
            server = request.getfixturevalue("ngircd")
        tag = uuid.uuid4().hex[:8]
        nick = nick or f"rb{next(_bots)}x{tag[:4]}"
        base = tmp_path / nick
        channel = f"#rb{tag}"
        raw: dict[str, Any] = {
            "server": {"host": server.host, "port": server.port},
            "nick": nick,
            "channels": [channel, *channels],
            "prefix": "!",
            "admins": ["boss*!*@127.0.0.1"],
            "commands_dir": "commands",
            "state_db": str(base / "state.sqlite3"),
            "rate_limit": {
                "burst": 1000,
                "per_second": 1000,
                "max_queued": 100_000,
                "per_reply": 10_000,
            },
            "command_rate": {"per_user": 1000, "per_channel": 1000, "window": 1, "refusals": 1000},
            "watch": watch,
        }
        if extra.get("notify") is True:
            extra["notify"] = [channel]
        raw.update(extra)
        config_path = base / "config.yaml"
        config_file = base / "hidden" / "config.yaml" if link_config else config_path
        bot = BotFiles(config_path, base / "commands", channel, nick, raw, config_file)
        bot.commands_dir.mkdir(parents=True)
        for name, source in ({"echo.py": ECHO_COMMAND} if files is None else files).items():
            bot.write(name, source)
        bot.write_config()
        if link_config:
            config_path.symlink_to(config_file)
        return bot

    return make


@pytest.fixture
def running_bot(bot_files: Callable[..., BotFiles]) -> Iterator[Callable[..., RunningBot]]:
    """Factory: a real bot on a real server, joined to its channel; stopped at test end.

        bot = running_bot()                       # echo command, session ngircd
        bot = running_bot({"x.py": SRC}, watch=True, notify=True)
        bot.app, bot.channel, bot.nick, bot.write("x", SRC), bot.write_config(prefix="?")
        assert bot.ask(client, "!echo hi") == "hi"          # the bot's next line there
        bot.wait_reply(client, mark, "^auto-reload: ")     # first matching one since mark

    Takes the keywords of ``bot_files``, plus ``wait=False`` to return before
    the bot has joined (call ``bot.wait_joined()``).  With ``wait``, every
    command module written must have loaded.  Rate limits are lifted
    (``rate_limit`` and ``command_rate``); pass them to test those.
    """
    bots: list[RunningBot] = []

    def start(files: dict[str, str] | None = None, *, wait: bool = True, **kw: Any) -> RunningBot:
        made = bot_files(files, **kw)
        app = App(load_config(made.config_path), namespace=f"cmds_{uuid.uuid4().hex[:8]}")
        bot = RunningBot(**vars(made), app=app)

        def run() -> None:
            try:
                app.run()
            except BaseException as exc:
                bot.crashed.append(exc)
                raise

        bot.thread = threading.Thread(target=run, name=f"bot-{made.nick}", daemon=True)
        bots.append(bot)
        bot.thread.start()
        if wait:
            bot.wait_joined()
            bot.wait_until(app.watching.is_set, "the file watchers to start")
            stems = {p.stem for p in bot.commands_dir.glob("*.py")}
            missing = {s for s in stems if not s.startswith("_")} - set(app.registry.modules)
            assert not missing, f"modules not loaded (see the log): {sorted(missing)}"
        return bot

    yield start
    errors = []
    for bot in bots:
        try:
            bot.stop()
        except AssertionError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
