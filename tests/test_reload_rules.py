"""The reload rules of bot.reloader, in process: what is found, skipped, and kept.

No IRC server (see tests/helpers.py); the same rules are exercised through IRC in
tests/test_irc_wedge.py.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import NullTransport, app_factory, commands_dir, edit, say, send, wait_until

from bot.api import Event
from bot.app import App
from bot.storage import Storage

REPO = Path(__file__).resolve().parents[1]

ECHO = '''
from bot.api import command

@command
def echo(ctx, args):
    """echo TEXT -- repeat TEXT back"""
    return args
'''


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., App]]:
    with app_factory(tmp_path) as factory:
        yield factory


def started(make: Callable[..., App], files: dict[str, str], **config: Any) -> App:
    app = make(files, **config)
    report = app.load_all()
    assert report.ok, report.errors
    return app


# -- files that cannot load are named, once ----------------------------------------


def test_every_kind_of_unloadable_file_is_named_with_the_reason(
    make: Callable[..., App], tmp_path: Path
) -> None:
    app = started(make, {"echo.py": ECHO})
    folder = commands_dir(app)
    for name in ("héllo.py", "my-cmd.py", "a.b.py"):
        (folder / name).write_text(ECHO)
    (folder / "pkg").mkdir()
    (folder / "pkg" / "__init__.py").write_text("X = 1\n")
    (tmp_path / "outside.py").write_text(ECHO)
    (folder / "out.py").symlink_to(tmp_path / "outside.py")
    (folder / "notes.txt").write_text("not Python: not ours to judge\n")
    (folder / "__pycache__").mkdir()

    report = app.reload()

    assert report.ok and report.skipped == [
        "commands/a.b.py: not loaded: module names are file stems made of letters, digits"
        " and '_', like 'dice' (rename it to a_b.py)",
        "commands/héllo.py: not loaded: module names are file stems made of letters, digits"
        " and '_', like 'dice' (rename it to h_llo.py)",
        "commands/my-cmd.py: not loaded: module names are file stems made of letters, digits"
        " and '_', like 'dice' (rename it to my_cmd.py)",
        "commands/out.py: not loaded: a symlink to a file outside commands/",
        "commands/pkg/: not loaded: a folder, and packages are not supported: put shared code"
        " in a helper file such as commands/_pkg.py",
    ]
    assert "skipped: commands/a.b.py: not loaded" in report.summary()
    assert app.reload().skipped == []  # reported once; the log has them all along


def test_importing_a_package_folder_says_packages_are_not_supported(
    make: Callable[..., App],
) -> None:
    app = started(make, {"echo.py": ECHO})
    (commands_dir(app) / "pkg").mkdir()
    (commands_dir(app) / "pkg" / "__init__.py").write_text("X = 1\n")
    edit(app, "uses.py", "from .pkg import X\n" + ECHO.replace("echo", "uses"))

    report = app.load("uses")

    assert report.errors == [
        "commands/uses.py:1: ImportError: commands/pkg/ is a folder, and packages are not"
        " supported: put the code in a helper file such as commands/_pkg.py"
    ]


def test_load_says_why_a_skipped_file_cannot_load(make: Callable[..., App], tmp_path: Path) -> None:
    app = started(make, {"echo.py": ECHO})
    (tmp_path / "outside.py").write_text(ECHO)
    (commands_dir(app) / "out.py").symlink_to(tmp_path / "outside.py")
    assert app.load("out").errors == [
        "no module 'out' in commands/: a symlink to a file outside commands/"
    ]


# -- !reload: new files load, deleted ones unload ------------------------------------------


def test_reload_of_all_loads_new_files_but_not_what_an_admin_unloaded(
    make: Callable[..., App],
) -> None:
    app = started(make, {"echo.py": ECHO, "x.py": ECHO.replace("echo", "x")})
    assert app.unload("x").unloaded == ["x"]
    edit(app, "y.py", ECHO.replace("echo", "y"))
    report = app.reload()
    assert (report.loaded, report.added) == (["y"], ["y"])
    assert "x" not in app.registry.modules  # unloaded by an admin: stays out
    assert app.load("x").loaded == ["x"]


# -- timeouts hold nothing per call --------------------------------------------------------


class CountingTransport(NullTransport):
    """Counts what is scheduled on the loop (the real loop keeps each until it is due)."""

    scheduled: list[Callable[[], None]]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.scheduled = []

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.scheduled.append(fn)


def test_command_timeouts_schedule_one_check_not_one_closure_per_call(tmp_path: Path) -> None:
    # Each call used to put a timer holding its context on the loop for command_timeout
    # seconds: thousands of them under load (the RSS that grew with every !reload).
    with app_factory(tmp_path) as make:
        app = make({"echo.py": ECHO}, transport=CountingTransport)
        assert app.load_all().ok
        transport = app.connection
        assert isinstance(transport, CountingTransport)
        before = len(transport.scheduled)
        for n in range(200):
            assert say(app, f"!echo {n}") == [str(n)]
        assert len(transport.scheduled) - before <= 1


# -- storage and close() never wait for a stuck call ------------------------------------------


def test_storage_close_gives_up_when_a_stuck_call_holds_it(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "state.sqlite3")
    state = storage.state("m")
    inside, release = threading.Event(), threading.Event()

    def stuck() -> None:
        with state.transaction():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=stuck)
    thread.start()
    assert inside.wait(5)
    assert storage.close(timeout=0.1) is False
    release.set()
    thread.join(5)
    assert storage.close(timeout=1) is True and storage.closed


def test_close_does_not_wait_for_a_reload_stuck_in_module_code(
    make: Callable[..., App],
) -> None:
    app = started(make, {"echo.py": ECHO}, reload_timeout=30)
    edit(app, "hang.py", "import time\ntime.sleep(30)\n")
    loading = threading.Thread(target=app.load, args=("hang",), daemon=True)
    loading.start()
    wait_until(lambda: app.reloader.busy_text() is not None, what="the load to start")
    assert app.reload().summary().startswith("a reload is still running (since ")
    assert say(app, "!help echo") == ["echo TEXT -- repeat TEXT back"]
    closing = threading.Thread(target=app.close)
    closing.start()
    closing.join(10)
    assert not closing.is_alive(), "close() waited for the stuck reload"


def test_calls_arriving_during_a_switch_run_on_the_new_version(
    make: Callable[..., App],
) -> None:
    slow_teardown = (
        ECHO
        + "\nimport threading\nGATE = threading.Event()\n\n"
        + ("def teardown(bot):\n    GATE.wait(10)\n")
    )
    app = started(make, {"echo.py": slow_teardown})
    gate = app.registry.modules["echo"].module.GATE
    edit(app, "echo.py", ECHO.replace("return args", 'return "new " + args'))
    reloading = threading.Thread(target=app.reload)
    reloading.start()
    wait_until(lambda: "echo" in app.live.held, what="the switch to begin")
    assert send(app, "!echo held") == []  # waits: neither run on the old code nor lost
    gate.set()
    reloading.join(10)
    wait_until(lambda: not app.dispatcher.running(), what="the held call to run")
    from helpers import replies

    assert replies(app) == ["new held"]


# -- the shape of bot/ ------------------------------------------------------------------------


def bot_imports() -> dict[str, set[str]]:
    """``module -> bot modules it imports``, from the source (any level, TYPE_CHECKING too)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((REPO / "bot").glob("*.py")):
        name = path.stem
        imports: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("bot."):
                    imports.add(node.module.split(".")[1])
                elif node.module == "bot":
                    imports.update(a.name for a in node.names)
            elif isinstance(node, ast.Import):
                imports.update(
                    a.name.split(".")[1] for a in node.names if a.name.startswith("bot.")
                )
        graph[name] = imports - {name}
    return graph


def test_no_import_cycle_in_bot() -> None:
    graph = bot_imports()
    assert {"app", "reloader", "loader", "builtins"} <= graph.keys()

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    return [*path, start]
                if nxt not in path:
                    stack.append((nxt, [*path, nxt]))
        return None

    cycles = [c for c in (cycle_from(n) for n in sorted(graph)) if c]
    assert not cycles, " -> ".join(cycles[0])
    # the built-ins talk to a narrow protocol, not to the App
    assert "app" not in graph["builtins"] and "app" not in graph["reloader"]


# -- a full pool: the queue is bounded ------------------------------------------------------

BLOCKS_AND_LISTENS = '''
import threading

from bot.api import command, on_message

GATE = threading.Event()


@command
def block(ctx, args):
    """block -- holds a worker until the test lets go"""
    GATE.wait(10)
    return "unblocked"


@on_message(r"^chatter")
def hear(ctx, match):
    return None
'''


def test_calls_waiting_for_a_worker_are_bounded(
    make: Callable[..., App], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("bot.dispatch.Dispatcher.max_queued_per_worker", 5)
    monkeypatch.setattr("bot.dispatch.Dispatcher.max_queued_commands_per_worker", 5)
    app = started(make, {"b.py": BLOCKS_AND_LISTENS}, workers=1, command_rate={"per_user": 1000})
    gate = app.registry.modules["b"].module.GATE
    try:
        send(app, "!block", admin=False)
        wait_until(lambda: app.dispatcher._queued() == 0, what="the worker to take the call")
        for n in range(50):
            send(app, f"chatter {n}", nick=f"u{n}", admin=False)
        assert app.dispatcher._queued() == 5  # listeners beyond the bound are dropped
        assert "workers busy: dropped 1 listener/timer call(s)" in caplog.text
        assert say(app, "!block", nick="late", admin=False) == ["late: busy, try again in a moment"]
    finally:
        gate.set()
    wait_until(lambda: not app.dispatcher.running(), what="the queue to drain")


ORDERED = '''
import threading

from bot.api import command, on_event, on_message

GATE = threading.Event()
ORDER = []


@on_message(r"^chatter")
def hear(ctx, match):
    GATE.wait(10)
    ORDER.append(match.string)


@on_event("join")
def joined(ctx, event):
    ORDER.append(f"join {event.nick}")


@command
def cmd(ctx, args):
    """cmd -- says when it ran"""
    ORDER.append("cmd")
'''


def test_a_command_goes_ahead_of_event_listeners_but_keeps_its_place_among_messages(
    make: Callable[..., App],
) -> None:
    app = started(make, {"o.py": ORDERED}, workers=1, command_rate={"per_user": 1000})
    module = app.registry.modules["o"].module
    try:
        send(app, "chatter 0", admin=False)  # holds the one worker
        wait_until(lambda: app.dispatcher._queued() == 0, what="the worker to take the call")
        for n in range(1, 3):
            app.dispatcher.handle_event(Event("join", f"u{n}", "#c"))
        send(app, "chatter 1", admin=False)
        send(app, "!cmd", admin=False)
    finally:
        module.GATE.set()
    wait_until(lambda: not app.dispatcher.running(), what="the queue to drain")
    assert module.ORDER == ["chatter 0", "chatter 1", "cmd", "join u1", "join u2"]


LOOKS_HARMLESS = '''
import time

from bot.api import command


class Lazy:
    def __getattr__(self, name):  # looking at it hangs
        time.sleep(30)


proxy = Lazy()


@command
def harmless(ctx, args):
    """harmless -- or is it"""
    return "ok"
'''


def test_a_global_that_hangs_when_looked_at_cannot_wedge_the_reload(
    make: Callable[..., App],
) -> None:
    app = started(make, {"echo.py": ECHO}, reload_timeout=0.5)
    edit(app, "lazy.py", LOOKS_HARMLESS)
    report = app.load("lazy")
    assert not report.ok
    (error,) = report.errors
    assert error.startswith("commands/lazy.py:") and "still running after 0.5 s" in error
    assert say(app, "!echo fine") == ["fine"]
    edit(app, "lazy.py", LOOKS_HARMLESS.replace("time.sleep(30)", "raise AttributeError(name)"))
    assert app.load("lazy").loaded == ["lazy"]


def test_a_skipped_file_the_watcher_saw_is_still_news_to_reload(make: Callable[..., App]) -> None:
    app = started(make, {"echo.py": ECHO})
    edit(app, "my-cmd.py", ECHO)
    assert app.sync_with_disk({"my-cmd"}).skipped  # the watcher's notice names it
    assert app.reload().skipped == [
        "commands/my-cmd.py: not loaded: module names are file stems made of letters, digits"
        " and '_', like 'dice' (rename it to my_cmd.py)"
    ]
    assert app.reload().skipped == []


SLOW_EVENTS = '''
import threading

from bot.api import command, on_event

GATE = threading.Event()
RUNNING = []


@on_event("join")
def joined(ctx, event):
    RUNNING.append(event.nick)
    GATE.wait(10)


@command
def quick(ctx, args):
    """quick -- answers at once"""
    return "quick"
'''


def test_event_listeners_use_at_most_a_quarter_of_the_workers(make: Callable[..., App]) -> None:
    app = started(make, {"e.py": SLOW_EVENTS}, workers=4, command_rate={"per_user": 1000})
    module = app.registry.modules["e"].module
    try:
        for n in range(3):
            app.dispatcher.handle_event(Event("join", f"u{n}", "#c"))
        wait_until(lambda: module.RUNNING == ["u0"], what="the first listener call")
        assert say(app, "!quick", admin=False) == ["quick"]  # three workers stay free
        assert module.RUNNING == ["u0"]  # the others wait for the one share
    finally:
        module.GATE.set()
    wait_until(lambda: not app.dispatcher.running(), what="the queue to drain")
    assert module.RUNNING == ["u0", "u1", "u2"]
