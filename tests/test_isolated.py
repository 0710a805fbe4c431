"""Isolated modules in process: each runs in a worker process, and the bot outlives it.

The App is real (tests/helpers.py); only the transport is a stand-in. The same
module is tried through IRC in tests/test_irc_isolated.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import app_factory, edit, say, wait_until

from bot.app import App
from bot.isolated import worker_of

ISOLATED = '''
import os

from bot.api import command, on_message

STATE_VERSION = 1


def setup(bot):
    bot.state["set up in"] = os.getpid()


@command
def where(ctx, args):
    """where -- the process that runs this module"""
    ctx.reply("first")
    with ctx.state.transaction() as state:
        state["calls"] = state.get("calls", 0) + 1
    return f"pid {os.getpid()} calls {ctx.state['calls']} {VERSION}"


@command
def crash(ctx, args):
    """crash -- ends the worker process at once"""
    os._exit(3)


@command
def fails(ctx, args):
    """fails -- raises"""
    raise ValueError("no good")


@on_message(r"^ping (\\w+)$")
def pong(ctx, match):
    return "pong " + match[1]


VERSION = "v1"
'''


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., App]]:
    with app_factory(tmp_path) as factory:
        yield factory


def isolated_app(make: Callable[..., App], **config: Any) -> App:
    app = make({"iso.py": ISOLATED}, isolate=["iso"], **config)
    notices: list[str] = []
    app.notify = notices.append  # type: ignore[method-assign]
    app.notices = notices  # type: ignore[attr-defined]
    report = app.load_all()
    assert report.ok, report.errors
    return app


def worker_pid(app: App) -> int:
    version = worker_of(app.registry.modules["iso"].module)
    assert version is not None
    return int(version.process.pid)


def test_an_isolated_module_runs_in_its_own_process(make: Callable[..., App]) -> None:
    app = isolated_app(make)
    pid = worker_pid(app)
    assert pid != os.getpid()
    assert say(app, "!where") == ["first", f"pid {pid} calls 1 v1"]
    assert say(app, "!where") == ["first", f"pid {pid} calls 2 v1"]  # state is the bot's
    assert app.state_for("iso")["set up in"] == pid  # setup ran in the worker
    assert say(app, "ping you") == ["pong you"]  # listeners too
    line = ISOLATED.lstrip("\n").splitlines().index('    raise ValueError("no good")') + 1
    assert say(app, "!fails") == [f"fails failed: ValueError: no good (commands/iso.py:{line})"]


def test_a_worker_that_dies_is_restarted_and_the_bot_goes_on(make: Callable[..., App]) -> None:
    app = isolated_app(make)
    first = worker_pid(app)
    assert say(app, "!crash") == ["crash: the module's worker died (exit code 3); it is restarting"]
    assert say(app, "!where") == ["where: its worker is restarting, try again in a moment"]
    wait_until(lambda: say(app, "!where")[:1] == ["first"], what="the restarted worker")
    assert worker_pid(app) != first
    assert app.notices == ["iso: its worker died (exit code 3); restarting it in 0.5 s"]


def test_a_reload_starts_a_fresh_worker_and_the_old_one_exits(make: Callable[..., App]) -> None:
    app = isolated_app(make)
    old = worker_of(app.registry.modules["iso"].module)
    assert old is not None
    edit(app, "iso.py", ISOLATED.replace('VERSION = "v1"', 'VERSION = "v2"'))
    assert app.reload(["iso"]).reloaded == ["iso"]
    new_pid = worker_pid(app)
    assert new_pid != old.process.pid
    assert say(app, "!where")[-1].endswith("v2")
    wait_until(lambda: not old.process.is_alive(), what="the old worker to exit")


def test_a_module_that_fails_to_load_in_its_worker_changes_nothing(
    make: Callable[..., App],
) -> None:
    app = isolated_app(make)
    edit(app, "iso.py", ISOLATED + "\nraise RuntimeError('at import')\n")
    report = app.reload(["iso"])
    assert not report.ok
    assert report.errors[0].startswith("commands/iso.py:")
    assert "RuntimeError: at import" in report.errors[0]
    assert say(app, "!where")[-1].endswith("v1")


EXITS_AT_IMPORT_HELPER = """
import os

os._exit(7)  # would end the bot if it ran there
"""

USES_HELPER = '''
from bot.api import command

from . import _danger


@command
def safe(ctx, args):
    """safe -- imports a helper that only its worker may run"""
    return "unreachable"
'''


def test_a_helper_only_isolated_modules_import_runs_only_in_their_workers(
    make: Callable[..., App],
) -> None:
    app = make(
        {"echo.py": ECHO_PLAIN, "safe.py": USES_HELPER, "_danger.py": EXITS_AT_IMPORT_HELPER},
        isolate=["safe"],
    )
    report = app.load_all()  # the bot process survives: the helper ran in the worker only
    assert report.errors == ["commands/safe.py: its worker died while loading it (exit code 7)"]
    assert say(app, "!echo alive") == ["alive"]


ECHO_PLAIN = '''
from bot.api import command


@command
def echo(ctx, args):
    """echo TEXT -- repeat TEXT back"""
    return args
'''


def test_a_worker_that_keeps_dying_is_a_crash_loop(
    make: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.isolated

    monkeypatch.setattr(bot.isolated, "FIRST_RESTART", 0.01)
    app = isolated_app(make)
    for _ in range(bot.isolated.CRASH_DEATHS):
        wait_until(lambda: say(app, "!where")[:1] == ["first"], what="a worker to answer")
        say(app, "!crash")
    crash_loop = (
        f"iso: its worker died {bot.isolated.CRASH_DEATHS} times within 60 s (exit code 3);"
        " not restarted until it is reloaded"
    )
    wait_until(lambda: app.notices[-1:] == [crash_loop], what="the crash-loop notice")
    assert say(app, "!where") == ["where: stopped, its worker crashed too often (reload it)"]
    edit(app, "iso.py", ISOLATED + "\n# fixed\n")
    assert app.reload(["iso"]).reloaded == ["iso"]
    assert say(app, "!where")[0] == "first"


MIGRATES = '''
from bot.api import command, on_event

STATE_VERSION = 2


def migrate(state, old):
    state["count"] = {"value": state.get("count", 0), "from": old}


@command
def count(ctx, args):
    """count -- the migrated counter"""
    return str(ctx.state["count"])


@on_event("join")
def greet(ctx, event):
    return f"hello {event.nick} in {event.channel}"
'''


def test_migrate_and_events_of_an_isolated_module(make: Callable[..., App]) -> None:
    from bot.api import Event

    app = make({"mig.py": MIGRATES}, isolate=["mig"])
    app.state_for("mig")["count"] = 5
    assert app.load_all().ok
    assert say(app, "!count") == ["{'value': 5, 'from': 0}"]
    assert app.state_for("__state_versions__")["mig"] == 2
    app.dispatcher.handle_event(Event("join", "carol", "#c"))
    wait_until(lambda: app.outbox.pending(), what="the greeting")
    from helpers import replies

    assert replies(app) == ["hello carol in #c"]


def test_a_failing_setup_in_a_worker_is_named_with_its_file_and_line(
    make: Callable[..., App],
) -> None:
    source = ECHO_PLAIN + "\n\ndef setup(bot):\n    raise ValueError('boom')\n"
    app = make({"iso.py": source}, isolate=["iso"])
    line = source.lstrip("\n").splitlines().index("    raise ValueError('boom')") + 1
    assert app.load_all().errors == [f"commands/iso.py:{line}: setup() raised ValueError: boom"]
    assert not app.isolation.versions  # its worker was stopped with the rolled-back version


TICKS = '''
from bot.api import command


def setup(bot):
    bot.after(0.05, lambda: bot.say("#c", "tick from the worker"))


@command
def nothing(ctx, args):
    """nothing -- timers only"""
'''


def test_timers_of_an_isolated_module_run_in_its_worker(make: Callable[..., App]) -> None:
    from helpers import replies

    app = make({"ticks.py": TICKS}, isolate=["ticks"])
    assert app.load_all().ok
    wait_until(lambda: app.outbox.pending(), what="the timer's line")
    assert replies(app) == ["tick from the worker"]


REFUSES_AND_TEARS_DOWN = '''
from bot.api import CommandError, command


@command
def strict(ctx, args):
    """strict N -- wants a number"""
    if not args.isdigit():
        raise CommandError("usage: strict N")
    return args


def teardown(bot):
    bot.state["torn down"] = bot.state.get("torn down", 0) + 1
'''


def test_command_errors_and_teardown_of_an_isolated_module(make: Callable[..., App]) -> None:
    app = make({"strict.py": REFUSES_AND_TEARS_DOWN}, isolate=["strict"])
    assert app.load_all().ok
    assert say(app, "!strict x") == ["usage: strict N"]  # shown as-is, as in process
    assert say(app, "!strict 7") == ["7"]
    assert app.unload("strict").unloaded == ["strict"]
    assert app.state_for("strict")["torn down"] == 1  # teardown ran in the worker
    assert not app.isolation.versions  # and the worker is gone
