"""Shared test helpers: a real App on real command files in tmp_path, with no IRC server.

    app = make_app(tmp_path, {"dice.py": DICE})   # files are written, nothing is loaded yet
    assert app.load_all().ok
    assert say(app, "!roll") == ["4"]
    close_app(app)

The App is the real one (loader, registry, dispatcher, outbox, worker pool); only
its transport is a stand-in that never connects. Replies are read back from the
outbox, exactly the lines the connection would have written.
"""

from __future__ import annotations

import sys
import textwrap
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from ircnet import InspircdAtheme

from bot.app import App
from bot.config import parse_config
from bot.ircd import IrcdError
from bot.message import Message, Source

ADMIN_RULE = "boss!*@trusted.example"
TRUSTED_HOST = "trusted.example"
OTHER_HOST = "elsewhere.example"
DEADLINE = 5.0  # seconds any single wait may take before the test fails


class NullTransport:
    """The App's transport protocol, minus the network: never connects, never runs timers.

    (The real Connection would work too, since constructing it does not connect,
    but it opens a socketpair that only its run loop closes.)
    """

    def __init__(self, config: Any, outbox: Any, on_message: Any, on_event: Any) -> None:
        self.nick = config.nick

    def run(self) -> None: ...
    def stop(self, message: str = "") -> None: ...
    def wake(self) -> None: ...
    def call_later(self, delay: float, fn: Callable[[], None]) -> None: ...
    def set_channels(self, channels: tuple[str, ...]) -> None: ...
    def change_nick(self, nicks: tuple[str, ...]) -> None: ...
    def reconnect(self, reason: str = "") -> None: ...
    def update_settings(self, settings: Any) -> None: ...

    def source_length(self) -> int:
        return 9 + 74


# -- building apps ---------------------------------------------------------------


def write(path: Path, source: str) -> Path:
    """Write dedented ``source`` to ``path`` (creating folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return path


def commands_dir(app: App) -> Path:
    return Path(app.config.commands_dir)


def edit(app: App, filename: str, source: str) -> Path:
    """(Over)write ``commands/<filename>`` of ``app``."""
    return write(commands_dir(app) / filename, source)


def make_app(
    tmp_path: Path,
    files: dict[str, str],
    *,
    transport: Callable[..., Any] = NullTransport,
    **config_overrides: Any,
) -> App:
    """Write ``files`` (``{"dice.py": source}``) into ``tmp_path/commands`` and build an App.

    Nothing is loaded: call ``app.load_all()``. ``config_overrides`` replace
    top-level config.yaml keys. The App gets its own ``sys.modules`` namespace.
    """
    folder = tmp_path / "commands"
    folder.mkdir(parents=True, exist_ok=True)
    for filename, source in files.items():
        write(folder / filename, source)
    raw: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 6667},
        "nick": "testbot",
        "channels": ["#c"],
        "prefix": "!",
        "admins": [ADMIN_RULE],
        "commands_dir": "commands",
        "state_db": str(tmp_path / "state.sqlite3"),
        "rate_limit": {
            "burst": 10_000,
            "per_second": 100_000,
            "max_queued": 100_000,
            "per_reply": 10_000,
        },
        "command_rate": {"refusals": 1000},  # tests look at every refusal
        "workers": 4,
    }
    raw.update(config_overrides)
    config = parse_config(yaml.safe_dump(raw), base_dir=tmp_path)
    return App(config, namespace=f"cmds_{uuid.uuid4().hex[:8]}", transport=transport)


def close_app(app: App) -> None:
    """Close ``app`` and drop its namespace from ``sys.modules`` (tests build many apps)."""
    try:
        app.close()
    finally:
        ns = app.namespace
        for key in [k for k in sys.modules if k == ns or k.startswith(ns + ".")]:
            del sys.modules[key]


@contextmanager
def app_factory(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """``make(files, **overrides)`` builds apps that are all closed on exit."""
    made: list[App] = []

    def make(files: dict[str, str], **overrides: Any) -> App:
        app = make_app(tmp_path, files, **overrides)
        made.append(app)
        return app

    try:
        yield make
    finally:
        for app in made:
            close_app(app)


def namespace_modules(app: App) -> dict[str, types.ModuleType]:
    """Every ``sys.modules`` entry of ``app``'s namespace (the package and its children)."""
    ns = app.namespace
    return {k: v for k, v in sys.modules.items() if k == ns or k.startswith(ns + ".")}


def module(app: App, name: str) -> types.ModuleType:
    """The module object currently serving ``name``."""
    return app.registry.modules[name].module


# -- talking to the app ------------------------------------------------------------


def message(
    text: str, nick: str = "boss", channel: str | None = "#c", admin: bool = True
) -> Message:
    host = TRUSTED_HOST if admin else OTHER_HOST
    source = Source(nick, "user", host)
    if channel is None:
        return Message(source, "testbot", text, is_private=True)
    return Message(source, channel, text, is_private=False)


def wait_until(
    condition: Callable[[], object], timeout: float = DEADLINE, what: str = "condition"
) -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.001)


def send(app: App, text: str, **kwargs: Any) -> list[Any]:
    """Hand a message to the dispatcher; return the calls it started (don't wait for them)."""
    before = app.dispatcher.running()
    app.dispatcher.handle(message(text, **kwargs))
    return [r for r in app.dispatcher.running() if not any(r is b for b in before)]


def wait_calls(app: App, calls: list[Any], timeout: float = DEADLINE) -> None:
    """Wait until every call in ``calls`` (from ``send``) has finished."""

    def finished() -> bool:
        running = app.dispatcher.running()
        return not any(r is c for c in calls for r in running)

    wait_until(finished, timeout, f"{[c.name for c in calls]} to finish")


def replies(app: App) -> list[str]:
    """Drain the outbox: the text of every queued PRIVMSG, in order."""
    out: list[str] = []
    while True:
        lines, _delay = app.outbox.take()
        if not lines:
            break
        for line in lines:
            assert line.command == "PRIVMSG" and line.ctcp is None, line
            out.append(line.text)
    assert app.outbox.pending() == 0, "outbox rate limit held lines back"
    return out


def say(
    app: App, text: str, nick: str = "boss", channel: str = "#c", admin: bool = True
) -> list[str]:
    """Say ``text`` as ``nick`` in ``channel``; wait for the call; return the reply texts."""
    calls = send(app, text, nick=nick, channel=channel, admin=admin)
    wait_calls(app, calls)
    return replies(app)


# -- observing module code from the test ---------------------------------------------


class Probe:
    """A module the command files import by name to report to the test.

    It lives outside the commands namespace, so it survives reloads:
    ``events`` records setup/teardown/calls in order; ``gate`` and ``started``
    let a test park a command call mid-flight.
    """

    def __init__(self) -> None:
        self.name = f"probe_{uuid.uuid4().hex[:8]}"
        self.module = types.ModuleType(self.name)
        self.module.events = []  # type: ignore[attr-defined]
        self.module.gate = threading.Event()  # type: ignore[attr-defined]
        self.module.started = threading.Event()  # type: ignore[attr-defined]

    @property
    def events(self) -> list[Any]:
        return self.module.events  # type: ignore[no-any-return]

    @property
    def gate(self) -> threading.Event:
        return self.module.gate  # type: ignore[no-any-return]

    @property
    def started(self) -> threading.Event:
        return self.module.started  # type: ignore[no-any-return]

    def src(self, source: str) -> str:
        """``source`` with ``PROBE`` replaced by this probe's module name."""
        return textwrap.dedent(source).replace("PROBE", self.name)

    def __enter__(self) -> Probe:
        sys.modules[self.name] = self.module
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()  # never leave a worker parked
        sys.modules.pop(self.name, None)


_accounts: set[tuple[int, str]] = set()


def ensure_account(network: InspircdAtheme, name: str, password: str) -> None:
    """Register services account ``name`` once per network (another test may have)."""
    if (id(network), name) in _accounts:
        return
    try:
        network.register_account(name, password)
    except IrcdError as exc:
        if "already registered" not in str(exc):
            raise
    _accounts.add((id(network), name))


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A fresh self-signed certificate for 127.0.0.1 and its key, made in ``folder`` with
    the openssl command (the test is skipped without it)."""
    import shutil
    import subprocess

    import pytest

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key
