"""The pytest plugin (bot.testing): load_command, say, reload, events and the fake clock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import tomllib
from pathlib import Path

import pytest

from bot import testing
from bot.storage import StateError, Storage
from bot.testing import CommandBot, LoadCommand, ModuleLoadError, Sent

# The fixture, also when the plugin is not registered (reloadbot not pip-installed).
# A plain import, not pytest_plugins: that would clash with the pytest11 entry point.
load_command = testing.load_command

REPO = Path(__file__).resolve().parents[1]

DICE = '''\
"""Dice, with a helper, state, timers and a teardown."""

from __future__ import annotations

from bot.api import Bot, CommandError, Context, command

from . import _parse

CALLS = []  # a module global: starts empty again on every reload


def setup(bot: Bot) -> None:
    bot.every(60, lambda: bot.say("#test", "tick"))


def teardown(bot: Bot) -> None:
    bot.state["torn down"] = bot.state.get("torn down", 0) + 1


@command(aliases=["dice"])
def roll(ctx: Context, args: str) -> str:
    """roll NdM -- roll N dice with M sides (they all come up M here)"""
    n, m = _parse.dice(args)
    CALLS.append(args)
    ctx.state["rolls"] = ctx.state.get("rolls", 0) + 1
    return " + ".join([str(m)] * n)


@command(admin=True)
def loaded(ctx: Context, args: str) -> list[str]:
    """loaded -- admins only: how many calls this version served, and all-time"""
    return [f"version calls: {len(CALLS)}", f"all-time rolls: {ctx.state.get('rolls', 0)}"]


@command
def where(ctx: Context, args: str) -> str:
    """where -- where was I asked"""
    if args == "fail":
        raise CommandError("as asked")
    if args == "crash":
        return str(1 // 0)
    return f"{ctx.nick} in {ctx.channel or 'private'}"
'''

PARSE = '''\
"""Helper: parse NdM."""

from __future__ import annotations

from bot.api import CommandError


def dice(text: str) -> tuple[int, int]:
    n, sep, m = text.partition("d")
    if not (sep and n.isdigit() and m.isdigit()):
        raise CommandError("usage: roll NdM")
    return int(n), int(m)
'''

OTHER = '''\
"""Another module in the same folder: not loaded by load_command(dice)."""

from __future__ import annotations

from bot.api import Context, command


@command
def other(ctx: Context, args: str) -> str:
    """other -- not loaded"""
    return "other"
'''

BLOCKING = '''\
"""A command that waits for the test, and listeners."""

from __future__ import annotations

import threading

from bot.api import Context, Event, command, on_event, on_message

GATE = threading.Event()


@command
def wait(ctx: Context, args: str) -> str:
    """wait -- answer when the test opens the gate"""
    GATE.wait(10)
    return "opened"


@on_message(r"(\\w+)\\+\\+")
def karma(ctx: Context, match: object) -> str:
    return f"karma for {match.group(1)}"  # type: ignore[attr-defined]


@on_event("join", "part", "kick", "nick", "quit")
def seen(ctx: Context, event: Event) -> str:
    return f"{event.kind}: {event.nick} {event.channel} {event.text}".strip()
'''


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    commands = tmp_path / "commands"
    commands.mkdir()
    (commands / "dice.py").write_text(DICE)
    (commands / "_parse.py").write_text(PARSE)
    (commands / "other.py").write_text(OTHER)
    (commands / "broken.py").write_text("def broken(:\n")
    (commands / "blocking.py").write_text(BLOCKING)
    return commands


def test_say_answers_like_on_irc(load_command: LoadCommand, folder: Path) -> None:
    bot = load_command(folder / "dice.py")
    assert bot.say("!roll 2d6") == ["6 + 6"]
    assert bot.say("!dice 1d3", nick="bob") == ["3"]
    assert bot.say("!roll x") == ["usage: roll NdM"]  # CommandError from the helper
    assert bot.say("!where", nick="carol") == ["carol in #test"]
    assert bot.say("!where", channel=None) == ["alice in private"]
    assert bot.sent[-1] == Sent("alice", "alice in private")  # private: back to the user
    assert bot.say("!where", channel="#elsewhere") == ["alice in #elsewhere"]
    assert bot.sent[-1].target == "#elsewhere"
    assert bot.say("!where fail") == ["as asked"]
    [crash] = bot.say("!where crash")
    assert crash.startswith("where failed: ZeroDivisionError: integer division or modulo by zero")
    line = DICE.splitlines().index("        return str(1 // 0)") + 1
    assert crash.endswith(f"(commands/dice.py:{line})")
    assert bot.say("no prefix, no command") == []
    assert bot.say("!nosuchcommand") == []


def test_only_the_module_and_its_helpers_load(load_command: LoadCommand, folder: Path) -> None:
    bot = load_command(folder / "dice.py")
    assert sorted(bot.app.registry.modules) == ["_parse", "dice"]
    assert bot.say("!other") == []
    assert bot.say("!help") == ["commands: help, roll, where -- say !help COMMAND for details"]


def test_admin(load_command: LoadCommand, folder: Path) -> None:
    bot = load_command(folder / "dice.py")
    assert bot.say("!loaded") == ["alice: !loaded is for admins only"]
    assert bot.say("!loaded", admin=True) == ["version calls: 0", "all-time rolls: 0"]
    assert bot.say("!reload", nick="mallory") == ["mallory: !reload is for admins only"]
    assert bot.say("!reload", admin=True) == ["reload: nothing changed; 2 modules loaded"]


def test_reload_keeps_state_and_drops_globals(load_command: LoadCommand, folder: Path) -> None:
    bot = load_command(folder / "dice.py")
    first = bot.module
    bot.say("!roll 1d2")
    bot.say("!roll 1d2")
    assert bot.say("!loaded", admin=True) == ["version calls: 2", "all-time rolls: 2"]

    (folder / "dice.py").write_text(DICE.replace('" + "', '" plus "'))
    report = bot.reload()
    assert report.reloaded == ["dice"]
    assert bot.module is not first
    assert bot.say("!roll 2d2") == ["2 plus 2"]
    assert bot.say("!loaded", admin=True) == ["version calls: 1", "all-time rolls: 3"]
    assert bot.state["torn down"] == 1  # the old version's teardown ran


def test_reload_after_a_helper_changed(load_command: LoadCommand, folder: Path) -> None:
    bot = load_command(folder / "dice.py")
    (folder / "_parse.py").write_text(PARSE.replace("usage: roll NdM", "try 2d6"))
    assert bot.say("!reload", admin=True) == ["reload: reloaded: _parse, dice"]
    assert bot.say("!roll nonsense") == ["try 2d6"]


def test_failed_reload_keeps_the_old_code(load_command: LoadCommand, folder: Path) -> None:
    bot = load_command(folder / "dice.py")
    (folder / "dice.py").write_text(DICE + "\nundefined_name\n")
    with pytest.raises(ModuleLoadError, match=r"commands/dice.py:\d+: NameError"):
        bot.reload()
    assert bot.say("!roll 1d4") == ["4"]
    report = bot.reload(check=False)
    assert not report.ok and report.failed_modules == ["dice"]


def test_load_errors_are_clear(load_command: LoadCommand, folder: Path) -> None:
    with pytest.raises(ModuleLoadError, match=r"broken.py did not load:\n.*broken.py:1: Syntax"):
        load_command(folder / "broken.py")
    with pytest.raises(ValueError, match="is a helper"):
        load_command(folder / "_parse.py")
    with pytest.raises(FileNotFoundError):
        load_command(folder / "missing.py")


def test_fake_clock_runs_module_timers(load_command: LoadCommand, folder: Path) -> None:
    bot = load_command(folder / "dice.py")
    assert bot.advance(59) == []
    assert bot.advance(1) == ["tick"]
    assert bot.advance(125) == ["tick", "tick"]
    assert bot.now == 185
    (folder / "dice.py").write_text(DICE.replace('"tick"', '"tock"'))
    bot.reload()
    assert bot.advance(60) == ["tock"]  # the old version's timer stopped with it


def test_command_timeout_and_blocking_calls(load_command: LoadCommand, folder: Path) -> None:
    bot = load_command(folder / "blocking.py", command_timeout=30)
    gate: threading.Event = bot.module.GATE
    try:
        assert bot.say("!wait", wait=False) == []
        assert bot.advance(29) == []
        assert bot.advance(1) == ["wait: timed out after 30 s"]
        with pytest.raises(TimeoutError, match=r"wait still running after 0\.1 s"):
            bot.say("!wait", timeout=0.1)
    finally:
        gate.set()
    assert bot.wait() == ["opened", "opened"]


def test_each_call_times_out_on_the_fake_clock_from_when_it_was_said(
    load_command: LoadCommand, folder: Path
) -> None:
    bot = load_command(folder / "blocking.py", command_timeout=30)
    gate: threading.Event = bot.module.GATE
    try:
        assert bot.say("!wait", wait=False) == []
        assert bot.advance(10) == []
        assert bot.say("!wait", wait=False) == []
        assert bot.advance(20) == ["wait: timed out after 30 s"]  # the first, at 30
        assert bot.advance(9) == []
        assert bot.advance(1) == ["wait: timed out after 30 s"]  # the second, at 40
    finally:
        gate.set()
    bot.wait()


def test_listeners_and_events(load_command: LoadCommand, folder: Path) -> None:
    bot = load_command(folder / "blocking.py")
    assert bot.say("python++") == ["karma for python"]
    assert bot.event("join", nick="dave") == ["join: dave #test"]
    assert bot.event("part", nick="dave", text="bye") == ["part: dave #test bye"]
    assert bot.event("kick", nick="eve", text="spam", by="op") == ["kick: eve #test spam"]
    assert bot.event("nick", nick="dave", text="david") == ["nick: dave None david"]
    assert bot.event("quit", nick="david", text="gone") == ["quit: david None gone"]


def test_state_seed_and_state_db(tmp_path: Path, folder: Path) -> None:
    db = tmp_path / "state.sqlite3"
    with CommandBot.load(folder / "dice.py", state={"rolls": 41}, state_db=db) as bot:
        bot.say("!roll 1d1")
        assert bot.state["rolls"] == 42
    with CommandBot.load(folder / "dice.py", state_db=db) as again:
        assert again.state["rolls"] == 42
        assert again.state["torn down"] == 1


def test_outbox_rules_apply(load_command: LoadCommand, folder: Path) -> None:
    bot = load_command(folder / "dice.py", prefix=".", nick="robot", channel="#dev")
    assert bot.say("!roll 1d1") == []
    lines = bot.say(".roll 150d9")
    assert len(lines) == 2 and "".join(lines).count("9") == 150  # split to fit an IRC line
    assert bot.sent[-1].target == "#dev" and bot.nick == "robot"


def test_bots_are_independent(load_command: LoadCommand, folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "dice.py").write_text(DICE.replace('" + "', '" & "'))
    (copy / "_parse.py").write_text(PARSE)
    one, two = load_command(folder / "dice.py"), load_command(copy / "dice.py")
    assert one.say("!roll 2d1") == ["1 + 1"]
    assert two.say("!roll 2d1") == ["1 & 1"]
    assert one.app.namespace != two.app.namespace


def test_close_tears_down_and_forgets_the_modules(folder: Path, tmp_path: Path) -> None:
    bot = CommandBot.load(folder / "dice.py", state_db=tmp_path / "state.sqlite3")
    namespace = bot.app.namespace
    assert f"{namespace}.dice" in sys.modules
    bot.close()
    assert not [k for k in sys.modules if k.startswith(namespace)]
    with Storage(tmp_path / "state.sqlite3") as storage:
        assert storage.state("dice")["torn down"] == 1

    scratch = CommandBot.load(folder / "dice.py")  # state in a temporary file...
    assert scratch.scratch is not None and scratch.scratch.is_dir()
    folder_used = scratch.scratch
    scratch.close()
    assert not folder_used.exists()  # ...removed with the bot


def test_state_is_stored_like_on_irc(load_command: LoadCommand, folder: Path) -> None:
    bot = load_command(folder / "dice.py")
    with pytest.raises(StateError, match="not JSON-serialisable"):
        bot.state["bad"] = object()
    with bot.state.transaction() as state:  # type: ignore[attr-defined]
        state["rolls"] = 10
    bot.say("!roll 1d1")
    assert bot.state["rolls"] == 11


# -- as a registered plugin ----------------------------------------------------------


def test_entry_point_is_declared() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["pytest11"] == {"reloadbot": "bot.testing"}


def test_plugin_works_in_a_pytest_run(tmp_path: Path, folder: Path) -> None:
    test = tmp_path / "test_dice.py"
    test.write_text(
        textwrap.dedent(
            f"""\
            from pathlib import Path

            DICE = Path({str(folder / "dice.py")!r})


            def test_roll(load_command):
                bot = load_command(DICE)
                assert bot.say("!roll 3d2") == ["2 + 2 + 2"]
                assert bot.advance(60) == ["tick"]
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "bot.testing", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_a_module_can_be_tested_isolated_too(load_command: LoadCommand, folder: Path) -> None:
    import os

    bot = load_command(folder / "dice.py", isolated=True)
    assert bot.say("!roll 2d6") == ["6 + 6"]  # the same answers, from a worker process
    worker = bot.module.__reloadbot_worker__
    assert worker.process.pid != os.getpid()
    assert bot.state["rolls"] == 1  # its state is the bot's


GUARDED = '''
from bot.api import Context, command


@command(require="op")
def kick(ctx: Context, args: str) -> str:
    """kick NICK -- ops only"""
    return f"{ctx.nick} may: {sorted(ctx.user_modes)} op={ctx.is_op}"


@command
def hello(ctx: Context, args: str) -> str:
    """hello -- anyone"""
    return "hello"
'''


def test_channel_modes_and_channel_entries(load_command: LoadCommand, tmp_path: Path) -> None:
    path = tmp_path / "guarded.py"
    path.write_text(GUARDED)
    quiet = {"name": "#quiet", "disable": ["hello"]}
    bot = load_command(path, channels=[quiet, "#other"])
    refused = ["bob: !kick needs op in this channel"]
    assert bot.say("!kick x", nick="bob") == refused
    bot.set_modes("bob", "ov")
    assert bot.say("!kick x", nick="bob") == ["bob may: ['o', 'v'] op=True"]
    assert bot.say("!kick x", nick="Bob") == ["Bob may: ['o', 'v'] op=True"]  # casemapped
    assert bot.say("!kick x", nick="bob", channel="#other") == refused
    bot.set_modes("bob", "", channel="#test")
    assert bot.say("!kick x", nick="bob") == refused
    assert bot.say("!hello") == ["hello"]
    assert bot.say("!hello", channel="#QUIET") == []  # disabled there
    assert bot.app.config.channels == ("#test", "#quiet", "#other")
