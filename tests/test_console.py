"""Console mode: the real App behind a terminal, driven as a user would (pty, pipe, in-process)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from bot.app import App
from bot.config import load_config
from bot.console import (
    CONSOLE_ACCOUNT,
    CONSOLE_RULE,
    Console,
    ConsoleTransport,
)
from bot.message import Message, Source
from bot.outbox import Outbox
from bot.testing import FakeTransport

REPO = Path(__file__).resolve().parents[1]
DEADLINE = 5.0

ECHO = '''\
"""Echo."""

from __future__ import annotations

from bot.api import Context, command


@command
def echo(ctx: Context, args: str) -> str:
    """echo TEXT -- repeat TEXT back"""
    return {reply}
'''

GREETER = '''\
"""Greets whoever joins, notices nick changes, counts calls in ctx.state."""

from __future__ import annotations

import time

from bot.api import Context, Event, command, on_event


@on_event("join", "nick")
def greet(ctx: Context, event: Event) -> str:
    if event.kind == "join":
        return f"welcome {event.nick} to {event.channel}"
    return f"{event.nick} is now {event.text}"


@command
def count(ctx: Context, args: str) -> str:
    """count -- count the calls (state survives reloads)"""
    ctx.state["n"] = ctx.state.get("n", 0) + 1
    return str(ctx.state["n"])


@command
def slow(ctx: Context, args: str) -> str:
    """slow -- answer after a while"""
    time.sleep(0.5)
    return "slow done"


@command(admin=True)
def secret(ctx: Context, args: str) -> str:
    """secret -- admins only"""
    return "the secret"
'''


def write_project(tmp_path: Path, *, watch: bool = False, **modules: str) -> Path:
    (tmp_path / "commands").mkdir(exist_ok=True)
    for name, source in modules.items():
        (tmp_path / "commands" / f"{name}.py").write_text(source)
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            server: {{host: 127.0.0.1}}
            nick: testbot
            channels: ["#test"]
            prefix: "!"
            admins: ["boss!*@trusted.example"]
            commands_dir: commands
            watch: {"true" if watch else "false"}
            command_timeout: 3
            """
        )
    )
    return config


def echo_source(reply: str = "args") -> str:
    return ECHO.format(reply=reply)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[pexpect.spawn]]:
    children: list[pexpect.spawn] = []
    yield children
    for child in children:
        child.close(force=True)


def start(children: list[pexpect.spawn], config: Path) -> pexpect.spawn:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TERM": "dumb",
        "HOME": str(config.parent),
        "PYTHONUNBUFFERED": "1",
    }
    child = pexpect.spawn(
        sys.executable,
        ["-m", "bot", "--console", "--config", str(config)],
        cwd=str(config.parent),
        env=env,
        encoding="utf-8",
        timeout=DEADLINE,
        dimensions=(40, 200),
    )
    children.append(child)
    child.expect("/help lists console commands")
    return child


def type_line(child: pexpect.spawn, line: str) -> None:
    child.expect_exact("> ")  # the prompt is back
    child.sendline(line)


# -- through a pseudo-terminal, as a user ------------------------------------------


def test_edit_reload_and_admin_over_a_pty(tmp_path: Path, spawn: list[pexpect.spawn]) -> None:
    config = write_project(tmp_path, echo=echo_source())
    child = start(spawn, config)
    type_line(child, "/nick alice")
    child.expect_exact("you are now alice!console@localhost")

    type_line(child, "!echo hi")
    child.expect_exact("<testbot> hi")

    (tmp_path / "commands" / "echo.py").write_text(echo_source('f"v2: {args}"'))
    type_line(child, "!reload")
    child.expect_exact("<testbot> reload: reloaded: echo")
    type_line(child, "!echo hi")
    child.expect_exact("<testbot> v2: hi")

    # Readline: Ctrl-P recalls the previous line, Ctrl-A goes to its start.
    type_line(child, "\x10\x01\x0b!echo again")  # Ctrl-P, Ctrl-A, Ctrl-K (kill): a new line
    child.expect_exact("<testbot> v2: again")
    child.expect_exact("> ")
    child.send("echo edited\x01!\r")  # typed without the prefix, then Ctrl-A and add it
    child.expect_exact("<testbot> v2: edited")

    type_line(child, "/nick other")
    type_line(child, "/admin off")
    child.expect_exact("not an admin")
    type_line(child, "!reload")
    child.expect_exact("<testbot> other: !reload is for admins only")

    type_line(child, "/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    history = (tmp_path / "data" / "console_history").read_text()
    assert "!echo hi" in history and "/nick other" in history


def test_saved_file_is_reloaded_by_the_watcher(tmp_path: Path, spawn: list[pexpect.spawn]) -> None:
    config = write_project(tmp_path, watch=True, echo=echo_source())
    child = start(spawn, config)
    type_line(child, "!echo one")
    child.expect_exact("<testbot> one")
    (tmp_path / "commands" / "echo.py").write_text(echo_source('f"new {args}"'))
    child.expect_exact("-- auto-reload: reloaded: echo")
    type_line(child, "!echo two")
    child.expect_exact("<testbot> new two")
    child.sendeof()
    child.expect(pexpect.EOF)


# -- stdin not a terminal ----------------------------------------------------------


def test_piped_input_prints_every_reply_then_exits(tmp_path: Path) -> None:
    config = write_project(tmp_path, greeter=GREETER, echo=echo_source())
    lines = ["/nick bob", "!slow", "!count", "/msg !count", "/admin off", "!secret", "!slow"]
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--console", "--config", str(config)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    replies = [line for line in out if line.startswith("<testbot")]
    assert replies[0].startswith("<testbot> welcome ")  # the console user joined #test
    assert replies[1:] == [
        replies[1].split(" is now ")[0] + " is now bob",
        "<testbot> slow done",
        "<testbot> 1",
        "<testbot -> bob> 2",
        "<testbot> bob: !secret is for admins only",
        "<testbot> slow done",  # said just before the end of input: still printed
    ]
    assert "#test (admin) <bob> !count" in out  # the input is echoed, with the prompt


def test_console_without_a_config_file_uses_dot_commands(tmp_path: Path) -> None:
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "echo.py").write_text(echo_source())
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--console"],
        input="!echo hello\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "<reloadbot> hello" in result.stdout.splitlines()


# -- in-process --------------------------------------------------------------------


def run_console(config: Path, text: str, **options: object) -> list[str]:
    out = io.StringIO()
    console = Console(
        load_config(config),
        stdin=io.StringIO(text),
        stdout=out,
        interactive=False,
        **options,  # type: ignore[arg-type]
    )
    assert console.run() == 0
    return out.getvalue().splitlines()


def test_admin_survives_a_rehash_and_irc_auth_is_unchanged(tmp_path: Path) -> None:
    config = write_project(tmp_path, greeter=GREETER)
    out = io.StringIO()
    console = Console(
        load_config(config),
        stdin=io.StringIO(),
        stdout=out,
        interactive=False,
        nick="alice",
    )
    app = console.app
    try:
        assert CONSOLE_RULE in app.config.admins
        config.write_text(config.read_text().replace("command_timeout: 3", "command_timeout: 4"))
        assert app.rehash() == "applied command_timeout = 4.0"  # the console rule is not a change
        assert CONSOLE_RULE in app.config.admins
        assert app.config.command_timeout == 4
    finally:
        app.close()

    # The IRC bot, from the same config.yaml, has no such rule: the account gets nothing.
    assert CONSOLE_RULE not in load_config(config).admins
    assert console.transport.nick == "testbot"
    assert f"account:{CONSOLE_ACCOUNT}" == CONSOLE_RULE.text


def test_console_account_is_not_an_admin_on_the_irc_app(tmp_path: Path) -> None:
    config = load_config(write_project(tmp_path, greeter=GREETER))
    app = App(config, transport=FakeTransport)
    try:
        assert app.load_all().ok
        source = Source("alice", "console", "localhost", CONSOLE_ACCOUNT)
        app.dispatcher.handle(Message(source, "#test", "!secret", is_private=False))
        lines, _ = app.outbox.take()
        assert [line.raw for line in lines] == ["PRIVMSG #test :alice: !secret is for admins only"]
    finally:
        app.close()


def test_in_process_session(tmp_path: Path) -> None:
    config = write_project(tmp_path, greeter=GREETER)
    out = run_console(
        config,
        "!secret\n/whoami\n/join #other\n!count\n/query\n!count\n//not a command\n/nick\n"
        "/msg testbot !count\n",
        nick="alice",
    )
    assert "<testbot> welcome alice to #test" in out
    assert "<testbot> the secret" in out
    assert "-- you are alice!console@localhost, an admin (console admin), talking in #test" in out
    assert "<testbot> welcome alice to #other" in out  # /join: the join event, then the talk
    assert "#other (admin) <alice> !count" in out
    assert out[out.index("#other (admin) <alice> !count") + 1] == "<testbot> 1"
    assert "<testbot> 2" in out  # in private, shown as said to you
    assert any(line.startswith("-- usage: /nick NAME") for line in out)
    assert out[-1] == "<testbot> 3"  # /msg BOTNICK TEXT, as on IRC, is TEXT to the bot


def test_help_and_unknown_commands(tmp_path: Path) -> None:
    config = write_project(tmp_path, echo=echo_source())
    out = run_console(config, "/help\n/frobnicate\n/admin maybe\n", nick="alice")
    assert "  /nick NAME        act as another user" in out
    assert "-- unknown console command /frobnicate; /help lists them" in out
    assert "-- usage: /admin on|off" in out


def test_quit_stops_reading(tmp_path: Path) -> None:
    config = write_project(tmp_path, echo=echo_source())
    out = run_console(config, "!echo a\n/quit\n!echo b\n", nick="alice")
    assert "<testbot> a" in out
    assert "<testbot> b" not in out


# -- the transport on its own --------------------------------------------------------


def test_transport_runs_timers_and_prints_the_outbox_in_order(tmp_path: Path) -> None:
    config = load_config(write_project(tmp_path))
    shown: list[tuple[str, str, str]] = []
    outbox = Outbox(1000.0, 1000)
    transport = ConsoleTransport(
        config, outbox, lambda m: None, lambda *a: None, output=lambda *a: shown.append(a)
    )
    outbox._wake = transport.wake
    fired = threading.Event()
    thread = threading.Thread(target=transport.run)
    thread.start()
    try:
        transport.call_later(0.05, fired.set)
        transport.call_later(0.0, lambda: outbox.put("#test", "first\nsecond"))
        assert fired.wait(DEADLINE)
        deadline = time.monotonic() + DEADLINE
        while len(shown) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert shown == [("PRIVMSG", "#test", "first"), ("PRIVMSG", "#test", "second")]
    finally:
        transport.stop("bye")
        thread.join(DEADLINE)
    assert not thread.is_alive()
