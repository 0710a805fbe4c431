"""Reload semantics of the real App on real files: transactional, complete, dependency-aware,
leak-free, safe for calls in flight, with setup/teardown hooks and admin commands.

No IRC server: messages go straight to the dispatcher and replies are read from the outbox
(see tests/helpers.py).
"""

from __future__ import annotations

import gc
import logging
import re
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    NullTransport,
    Probe,
    app_factory,
    close_app,
    edit,
    make_app,
    module,
    namespace_modules,
    replies,
    say,
    send,
    wait_until,
)

import bot.auth
import bot.dispatch
import bot.policy
from bot.app import App


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., App]]:
    with app_factory(tmp_path) as factory:
        yield factory


@pytest.fixture
def quick_gc() -> Iterator[None]:
    """Make the App's per-reload ``gc.collect()`` cheap: freeze what exists before the test.

    Frozen objects are never collected, so this can only make a leak check stricter: all
    module generations of the test are created after the freeze.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture
def probe() -> Iterator[Probe]:
    with Probe() as p:
        yield p


def line_of(source: str, marker: str) -> int:
    """1-based line of the first line of (dedented, as written) ``source`` containing ``marker``."""
    import textwrap

    lines = textwrap.dedent(source).lstrip("\n").splitlines()
    return next(i for i, text in enumerate(lines, 1) if marker in text)


def started(make: Callable[..., App], files: dict[str, str]) -> App:
    app = make(files)
    report = app.load_all()
    assert report.ok, report.errors
    return app


# -- sources -----------------------------------------------------------------------

HELPER_V1 = """
def tag():
    return "v1"
"""

ALPHA_V1 = '''
from bot.api import command

@command
def alpha(ctx, args):
    """alpha -- answers with its version"""
    return "alpha v1"
'''

# v2 reports a weakref to its own function, so a test can see the failed generation die.
ALPHA_V2 = '''
import weakref
import PROBE
from bot.api import command

@command
def alpha(ctx, args):
    """alpha -- answers with its version"""
    return "alpha v2"

PROBE.events.append(weakref.ref(alpha))
'''

BETA_V1 = '''
from bot.api import command
from ._h import tag

@command
def beta(ctx, args):
    """beta -- answers with its helper's version"""
    return "beta " + tag()
'''

BETA_SYNTAX = '''
from bot.api import command

@command
def beta(ctx, args)
    """beta -- broken"""
    return "beta v2"
'''

HELPER_RAISES = """
def tag():
    return "v2"
raise RuntimeError("helper boom")
"""

BETA_DUPLICATE = '''
from bot.api import command
from ._h import tag

@command
def beta(ctx, args):
    """beta -- answers with its helper's version"""
    return "beta " + tag()

@command(name="alpha")
def alpha_again(ctx, args):
    """alpha -- a second alpha"""
    return "stolen"
'''

BETA_NO_DOC = '''
from bot.api import command
from ._h import tag

@command
def beta(ctx, args):
    """beta -- answers with its helper's version"""
    return "beta " + tag()

@command
def gamma(ctx, args):
    return "gamma"
'''

BETA_SETUP_RAISES = '''
from bot.api import command
from ._h import tag

@command
def beta(ctx, args):
    """beta -- answers with its helper's version"""
    return "beta v2"

def setup(bot):
    raise RuntimeError("setup boom")
'''

BETA_EXITS = """
import sys
sys.exit(3)
"""

# (file changed alongside alpha, its new text, expected error "commands/<file>:<line>: <text>")
FAILURES = {
    "syntax-error": (
        "b.py",
        BETA_SYNTAX,
        f"commands/b.py:{line_of(BETA_SYNTAX, 'def beta')}: SyntaxError",
    ),
    "helper-raises": (
        "_h.py",
        HELPER_RAISES,
        f"commands/_h.py:{line_of(HELPER_RAISES, 'raise')}: RuntimeError: helper boom",
    ),
    "duplicate-name": (
        "b.py",
        BETA_DUPLICATE,
        f"commands/b.py:{line_of(BETA_DUPLICATE, 'name=')}: command name 'alpha' is already"
        f" used by commands/a.py:{line_of(ALPHA_V2, '@command')}",
    ),
    "no-docstring": (
        "b.py",
        BETA_NO_DOC,
        f"commands/b.py:{line_of(BETA_NO_DOC, 'def gamma') - 1}: command 'gamma' has no docstring",
    ),
    "setup-raises": (
        "b.py",
        BETA_SETUP_RAISES,
        f"commands/b.py:{line_of(BETA_SETUP_RAISES, 'setup boom')}:"
        " setup() raised RuntimeError: setup boom",
    ),
    "sys-exit": (
        "b.py",
        BETA_EXITS,
        f"commands/b.py:{line_of(BETA_EXITS, 'sys.exit')}: SystemExit: 3",
    ),
}


# -- transactional -------------------------------------------------------------------


@pytest.mark.parametrize("case", list(FAILURES))
def test_failed_reload_changes_nothing(make: Callable[..., App], probe: Probe, case: str) -> None:
    app = started(make, {"_h.py": HELPER_V1, "a.py": ALPHA_V1, "b.py": BETA_V1})
    assert say(app, "!alpha") == ["alpha v1"]
    before_modules = namespace_modules(app)
    before_registry = app.registry
    names = {app.namespace} | {f"{app.namespace}.{n}" for n in ("_h", "a", "b")}
    assert set(before_modules) == names

    filename, source, expected = FAILURES[case]
    edit(app, "a.py", probe.src(ALPHA_V2))  # a valid change that must not go live either
    edit(app, filename, source)
    report = app.reload()

    assert not report.ok
    assert any(e.startswith(expected) for e in report.errors), report.errors
    if case == "syntax-error":  # every file compiles before any runs: nothing ran
        assert report.summary().startswith("failed, nothing changed"), report.summary()
    else:  # code ran: the reply does not vouch for what it did outside its module
        assert report.summary().startswith("failed, the old code keeps serving: ")
        assert "nothing changed" not in report.summary()
        assert "not undone: what the code of commands/" in report.summary()
    # every old command answers with the old code
    assert app.registry is before_registry
    assert say(app, "!alpha") == ["alpha v1"]
    assert say(app, "!beta") == ["beta v1"]
    assert say(app, "!gamma") == []
    # sys.modules holds exactly the old module objects: no entry of the failed generation
    after_modules = namespace_modules(app)
    assert after_modules.keys() == before_modules.keys()
    assert all(after_modules[k] is before_modules[k] for k in before_modules)
    package = after_modules[app.namespace]
    assert package.a is before_modules[f"{app.namespace}.a"]
    # and the failed generation's code is garbage (errors are kept as text only)
    gc.collect()
    refs = [r for r in probe.events if isinstance(r, weakref.ref)]
    assert bool(refs) == (case != "syntax-error"), "the new a.py ran unless a file did not compile"
    assert all(r() is None for r in refs)


def test_failed_setup_tears_down_modules_already_set_up(
    make: Callable[..., App], probe: Probe
) -> None:
    hooks = '''
    import PROBE
    from bot.api import command

    @command
    def {name}(ctx, args):
        """{name} -- answers"""
        return "{name} {v}"

    def setup(bot):
        PROBE.events.append("setup {name} {v}")
        {fail}

    def teardown(bot):
        PROBE.events.append("teardown {name} {v}")
    '''
    one = probe.src(hooks.format(name="one", v="v1", fail="pass"))
    two = probe.src(hooks.format(name="two", v="v1", fail="pass"))
    app = started(make, {"a.py": one, "b.py": two})
    probe.events.clear()

    edit(app, "a.py", probe.src(hooks.format(name="one", v="v2", fail="pass")))
    edit(app, "b.py", probe.src(hooks.format(name="two", v="v2", fail="raise ValueError('no')")))
    report = app.reload()

    assert not report.ok
    assert report.errors == [
        f"commands/b.py:{line_of(hooks, '{fail}')}: setup() raised ValueError: no"
    ]
    # old teardowns first, then the new setups; on failure the new a is torn down again
    # and the old versions are set up again
    assert probe.events == [
        "teardown one v1",
        "teardown two v1",
        "setup one v2",
        "setup two v2",
        "teardown one v2",
        "setup one v1",
        "setup two v1",
    ]
    assert say(app, "!one") == ["one v1"]
    assert say(app, "!two") == ["two v1"]


SETUP_EXITS = '''
import sys
from bot.api import command

@command
def alpha(ctx, args):
    """alpha -- answers with its version"""
    return "alpha v2"

def setup(bot):
    sys.exit(2)
'''


def test_setup_calling_sys_exit_is_a_failed_reload(make: Callable[..., App]) -> None:
    app = started(make, {"a.py": ALPHA_V1})
    before = namespace_modules(app)
    edit(app, "a.py", SETUP_EXITS)
    try:
        report = app.reload()
    except SystemExit:
        report = None

    after = namespace_modules(app)
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    assert report is not None and not report.ok
    line = line_of(SETUP_EXITS, "sys.exit")
    assert report.errors == [f"commands/a.py:{line}: setup() raised SystemExit: 2"]
    assert say(app, "!alpha") == ["alpha v1"]
    edit(app, "a.py", ALPHA_V1.replace("alpha v1", "alpha v3"))
    assert app.reload().reloaded == ["a"]  # the next reload is not refused, nor stuck
    assert say(app, "!alpha") == ["alpha v3"]


# -- complete ------------------------------------------------------------------------

TWO_COMMANDS = '''
from bot.api import command

OLD_ONLY = "still here"

class Old:
    pass

@command
def one(ctx, args):
    """one -- first"""
    return "one " + str("OLD_ONLY" in globals())

@command
def two(ctx, args):
    """two -- second"""
    return "two"
'''

RENAMED = '''
from bot.api import command

@command
def one(ctx, args):
    """one -- first"""
    return "one " + str("OLD_ONLY" in globals())

@command
def deux(ctx, args):
    """deux -- second, renamed"""
    return "deux"
'''


def test_removed_and_renamed_commands_and_deleted_attributes_are_gone(
    make: Callable[..., App],
) -> None:
    app = started(make, {"a.py": TWO_COMMANDS})
    assert say(app, "!one") == ["one True"]
    assert say(app, "!two") == ["two"]
    old = module(app, "a")

    edit(app, "a.py", RENAMED)
    report = app.reload()

    assert report.ok, report.errors
    assert (report.reloaded, report.added, report.removed) == (["a"], ["deux"], ["two"])
    assert say(app, "!two") == []  # unknown commands get no reply at all
    assert say(app, "!deux") == ["deux"]
    assert say(app, "!one") == ["one False"]  # the module's globals lost OLD_ONLY
    new = module(app, "a")
    assert new is not old
    assert not hasattr(new, "OLD_ONLY") and not hasattr(new, "Old")
    assert sys.modules[f"{app.namespace}.a"] is new


def test_removing_every_command_of_a_module(make: Callable[..., App]) -> None:
    app = started(make, {"a.py": TWO_COMMANDS})
    edit(app, "a.py", "X = 1\n")
    report = app.reload()
    assert report.ok, report.errors
    assert report.removed == ["one", "two"]
    assert say(app, "!one") == [] and say(app, "!two") == []


# -- dependency-aware ------------------------------------------------------------------

TEXT_V1 = """
def shout(text):
    return text.upper() + "!"
"""

TEXT_V2 = """
def shout(text):
    return text.upper() + "!!!"
"""

USES_FROM = '''
from bot.api import command
from ._text import shout

@command
def a(ctx, args):
    """a -- shout a"""
    return shout("a")
'''

USES_MODULE = '''
from bot.api import command
from . import _text

@command
def b(ctx, args):
    """b -- shout b"""
    return _text.shout("b")
'''

INDEPENDENT = '''
from bot.api import command

@command
def c(ctx, args):
    """c -- no helper"""
    return "c"
'''

DEPENDENT_FILES = {"_text.py": TEXT_V1, "a.py": USES_FROM, "b.py": USES_MODULE, "c.py": INDEPENDENT}


def assert_one_helper_version(app: App) -> None:
    helper = sys.modules[f"{app.namespace}._text"]
    assert module(app, "_text") is helper
    assert module(app, "a").shout.__globals__ is helper.__dict__
    assert module(app, "b")._text is helper


def test_editing_only_a_helper_reloads_its_importers(make: Callable[..., App]) -> None:
    app = started(make, DEPENDENT_FILES)
    assert say(app, "!a") == ["A!"] and say(app, "!b") == ["B!"]
    c_before = module(app, "c")

    edit(app, "_text.py", TEXT_V2)
    report = app.reload()

    assert report.ok, report.errors
    assert report.reloaded == ["_text", "a", "b"]
    assert "reloaded: _text, a, b" in report.summary()
    assert say(app, "!a") == ["A!!!"] and say(app, "!b") == ["B!!!"]
    assert module(app, "c") is c_before  # not an importer: untouched
    assert_one_helper_version(app)


def test_reloading_one_importer_of_a_changed_helper_reloads_the_other(
    make: Callable[..., App],
) -> None:
    app = started(make, DEPENDENT_FILES)
    edit(app, "_text.py", TEXT_V2)

    report = app.reload(["a"])

    assert report.ok, report.errors
    assert report.reloaded == ["_text", "a", "b"]
    assert say(app, "!a") == ["A!!!"] and say(app, "!b") == ["B!!!"]
    assert_one_helper_version(app)


def test_reloading_one_module_leaves_the_others_alone(make: Callable[..., App]) -> None:
    app = started(make, DEPENDENT_FILES)
    before = {n: module(app, n) for n in ("_text", "b", "c")}
    a_before = module(app, "a")

    report = app.reload(["a"])

    assert report.ok, report.errors
    assert report.reloaded == ["a"]
    assert module(app, "a") is not a_before
    assert {n: module(app, n) for n in before} == before
    assert_one_helper_version(app)


def test_a_helper_nobody_imports_any_more_is_dropped(make: Callable[..., App]) -> None:
    app = started(make, {"_text.py": TEXT_V1, "a.py": USES_FROM})
    edit(app, "a.py", INDEPENDENT)
    report = app.reload()
    assert report.ok, report.errors
    assert "_text" not in app.registry.modules
    assert f"{app.namespace}._text" not in sys.modules


# -- leak-free ---------------------------------------------------------------------------

VERSIONED = '''
from bot.api import command

VERSION = {v}

class Thing:
    pass

@command
def ver(ctx, args):
    """ver -- the version"""
    return "v%d" % VERSION
'''


def test_old_functions_and_classes_die_after_reload(make: Callable[..., App]) -> None:
    app = started(make, {"a.py": VERSIONED.format(v=1)})
    assert say(app, "!ver") == ["v1"]  # a call, so the dispatcher has touched the old version
    old_func = weakref.ref(module(app, "a").ver)
    old_class = weakref.ref(module(app, "a").Thing)
    old_loaded = weakref.ref(app.registry.modules["a"])

    edit(app, "a.py", VERSIONED.format(v=2))
    assert app.reload().reloaded == ["a"]
    gc.collect()

    assert say(app, "!ver") == ["v2"]
    assert old_func() is None
    assert old_class() is None
    assert old_loaded() is None


@pytest.mark.usefixtures("quick_gc")
def test_two_hundred_reloads_leave_no_old_generation_alive(make: Callable[..., App]) -> None:
    app = started(make, {"a.py": VERSIONED.format(v=0)})
    refs: list[weakref.ref[object]] = []
    modules_count = len(sys.modules)
    for v in range(1, 201):
        refs += [weakref.ref(module(app, "a").ver), weakref.ref(module(app, "a").Thing)]
        edit(app, "a.py", VERSIONED.format(v=v))
        report = app.reload()
        assert report.reloaded == ["a"], report.errors
        assert len(sys.modules) == modules_count
    gc.collect()

    alive = sum(1 for r in refs if r() is not None)
    assert alive == 0, f"{alive} objects of old generations are alive"
    assert say(app, "!ver") == ["v200"]


COUNTER = '''
from bot.api import command

@command
def count(ctx, args):
    """count -- counts calls across reloads"""
    ctx.state["n"] = ctx.state.get("n", 0) + 1
    return "{label} %d" % ctx.state["n"]
'''


def test_state_survives_reloads_but_globals_do_not(make: Callable[..., App]) -> None:
    app = started(make, {"a.py": COUNTER.format(label="one")})
    assert say(app, "!count") == ["one 1"]
    assert say(app, "!count") == ["one 2"]
    edit(app, "a.py", COUNTER.format(label="two"))
    assert app.reload().reloaded == ["a"]
    assert say(app, "!count") == ["two 3"]


# -- in-flight calls -------------------------------------------------------------------

SLOW = '''
import PROBE
from bot.api import command

@command
def slow(ctx, args):
    """slow -- waits for the test"""
    PROBE.started.set()
    PROBE.gate.wait(5)
    PROBE.events.append("slow {v} returns")
    return "{v} text"

def setup(bot):
    PROBE.events.append("setup {v}")

def teardown(bot):
    PROBE.events.append("teardown {v}")
'''

FAST = '''
import PROBE
from bot.api import command

@command
def slow(ctx, args):
    """slow -- not any more"""
    return "{v} text"

def setup(bot):
    PROBE.events.append("setup {v}")

def teardown(bot):
    PROBE.events.append("teardown {v}")
'''


def test_a_call_in_flight_finishes_on_old_code_then_teardown_then_setup_and_held_calls_run_new(
    make: Callable[..., App], probe: Probe
) -> None:
    app = started(
        make, {"a.py": probe.src(SLOW.format(v="old")), "b.py": BETA_V1, "_h.py": HELPER_V1}
    )
    calls = send(app, "!slow")
    assert len(calls) == 1
    assert probe.started.wait(5)

    edit(app, "a.py", probe.src(FAST.format(v="new")))
    reports: list[Any] = []
    reload = threading.Thread(target=lambda: reports.append(app.reload()))
    reload.start()
    wait_until(lambda: "a" in app.live.held, what="the switch of a to begin")

    # a command for a while it switches waits (neither lost, refused, nor run on old code)
    held = send(app, "!slow")
    assert held == []
    assert [r.name for r in app.dispatcher.running()] == ["slow"]
    assert say(app, "!beta") == ["beta v1"]  # other modules keep answering throughout
    assert probe.events == ["setup old"]  # no teardown while a call runs on the old code

    probe.gate.set()
    reload.join(10)
    assert reports and reports[0].reloaded == ["a"], reports
    assert probe.events == ["setup old", "slow old returns", "teardown old", "setup new"]
    wait_until(lambda: not app.dispatcher.running(), what="the held call to run")
    assert sorted(replies(app)) == ["new text", "old text"]


RECORDS_CALLS = '''
import PROBE
from bot.api import command

@command
def slow(ctx, args):
    """slow -- records the call"""
    PROBE.events.append("call {v}")
    return "{v} text"

def setup(bot):
    PROBE.events.append("setup {v}")

def teardown(bot):
    PROBE.events.append("teardown {v}")
'''


def test_reload_between_lookup_and_call_start_still_defers_teardown(
    make: Callable[..., App], probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload on another thread starts while handle() sits between look-up and start."""
    app = started(make, {"a.py": probe.src(RECORDS_CALLS.format(v="old"))})
    real_is_admin = bot.auth.is_admin
    reloads: list[threading.Thread] = []

    def reload_meanwhile(*args: object) -> bool:
        # Runs inside handle() after it took its registry snapshot. The reload runs on
        # another thread, as the watcher's or a worker's does, and gets as far as it can.
        monkeypatch.setattr(bot.policy, "is_admin", real_is_admin)
        edit(app, "a.py", probe.src(RECORDS_CALLS.format(v="new")))
        thread = threading.Thread(target=app.reload)
        thread.start()
        reloads.append(thread)
        return real_is_admin(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(bot.policy, "is_admin", reload_meanwhile)
    send(app, "!slow")
    reloads[0].join(timeout=10)
    wait_until(lambda: not app.dispatcher.running(), what="the call to finish")
    wait_until(lambda: "teardown old" in probe.events, what="teardown of the old version")
    replies(app)

    # Either the call runs on the version now live, or the old version stays alive for it.
    events = probe.events
    assert "call new" in events or events.index("call old") < events.index("teardown old"), events


# -- setup / teardown --------------------------------------------------------------------

HOOKED = '''
import PROBE
from bot.api import command

@command
def hook(ctx, args):
    """hook -- answers with its version"""
    return "hook {v}"

def setup(bot):
    PROBE.events.append("setup {v} " + bot.module)

def teardown(bot):
    PROBE.events.append("teardown {v} " + bot.module)
    {fail}
'''


def test_setup_runs_on_new_teardown_on_old_for_reload_and_unload(
    make: Callable[..., App], probe: Probe
) -> None:
    app = started(make, {"a.py": probe.src(HOOKED.format(v="v1", fail=""))})
    assert probe.events == ["setup v1 a"]

    edit(app, "a.py", probe.src(HOOKED.format(v="v2", fail="")))
    assert app.reload().ok
    # as peer bots do it: the old version stops before the new one starts
    assert probe.events == ["setup v1 a", "teardown v1 a", "setup v2 a"]

    assert app.unload("a").unloaded == ["a"]
    assert probe.events[-1] == "teardown v2 a"
    assert say(app, "!hook") == []
    assert len(probe.events) == 4


def test_a_raising_teardown_is_logged_but_the_swap_stands(
    make: Callable[..., App], probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    source = probe.src(HOOKED.format(v="v1", fail="raise OSError('cannot close')"))
    app = started(make, {"a.py": source})

    edit(app, "a.py", probe.src(HOOKED.format(v="v2", fail="")))
    with caplog.at_level(logging.ERROR):
        report = app.reload()

    assert report.ok, report.errors
    assert say(app, "!hook") == ["hook v2"]
    assert probe.events == ["setup v1 a", "teardown v1 a", "setup v2 a"]
    expected = f"commands/a.py:{line_of(source, 'cannot close')}: teardown() raised OSError"
    assert any(expected in r.getMessage() for r in caplog.records), caplog.text


# -- load / unload ------------------------------------------------------------------------

X_MODULE = '''
from bot.api import command

@command
def ex(ctx, args):
    """ex -- from x"""
    return "ex"
'''


def test_load_a_new_file_then_unload_it(make: Callable[..., App]) -> None:
    app = started(make, {"a.py": ALPHA_V1})
    a_before = module(app, "a")
    edit(app, "x.py", X_MODULE)
    assert say(app, "!ex") == []

    report = app.load("x")
    assert report.ok, report.errors
    assert (report.loaded, report.added, report.reloaded) == (["x"], ["ex"], [])
    assert say(app, "!ex") == ["ex"]
    assert module(app, "a") is a_before

    report = app.unload("x")
    assert (report.unloaded, report.removed) == (["x"], ["ex"])
    assert say(app, "!ex") == []
    assert f"{app.namespace}.x" not in sys.modules
    assert not hasattr(sys.modules[app.namespace], "x")  # the package does not pin it either
    assert say(app, "!alpha") == ["alpha v1"]


def test_load_and_unload_through_the_admin_commands(make: Callable[..., App]) -> None:
    app = started(make, {"a.py": ALPHA_V1})
    edit(app, "x.py", X_MODULE)
    assert say(app, "!load x") == ["load: loaded: x; commands added: ex; 1 unchanged"]
    assert say(app, "!ex") == ["ex"]
    assert say(app, "!unload x") == ["unload: unloaded: x; commands removed: ex; 1 unchanged"]
    assert say(app, "!ex") == []


def test_a_helper_cannot_be_loaded_or_unloaded_directly(make: Callable[..., App]) -> None:
    app = started(make, {"_text.py": TEXT_V1, "a.py": USES_FROM})
    report = app.load("_text")
    assert not report.ok and "helper" in report.errors[0]
    report = app.unload("_text")
    assert not report.ok
    assert say(app, "!load _text")[0].startswith("load: failed")
    assert say(app, "!a") == ["A!"]


@pytest.mark.parametrize(
    "name", ["../etc/passwd", "/etc/passwd", "a/b", "..", "x.y", "a\\b", "évil"]
)
def test_admin_commands_refuse_names_that_are_not_module_names(
    make: Callable[..., App], tmp_path: Path, name: str
) -> None:
    app = started(make, {"a.py": ALPHA_V1})
    # a target the name could reach if it were used as a path
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0\n")
    registry = app.registry
    for verb in ("load", "reload", "unload"):
        answer = say(app, f"!{verb} {name}")
        assert len(answer) == 1 and "is not a module name" in answer[0], answer
    assert app.registry is registry
    # and the App itself refuses them too, whoever calls it
    assert not app.load(name).ok
    assert app.registry is registry


def test_a_symlink_pointing_outside_the_folder_is_not_loadable(
    make: Callable[..., App], tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.py").write_text(X_MODULE)
    (outside / "_evil.py").write_text(TEXT_V1)
    app = make({"a.py": ALPHA_V1})
    (tmp_path / "commands" / "evil.py").symlink_to(outside / "evil.py")
    (tmp_path / "commands" / "_evil.py").symlink_to(outside / "_evil.py")

    report = app.load_all()
    assert report.ok and report.loaded == ["a"], report.errors
    assert say(app, "!ex") == []
    report = app.load("evil")
    assert not report.ok and "no module 'evil'" in report.errors[0]
    assert say(app, "!load evil")[0].startswith("load: failed")
    # nor through an import of a helper that is a symlink to the outside
    edit(app, "b.py", "from . import _evil\n")
    report = app.load("b")
    assert not report.ok
    assert re.match(r"commands/b\.py:1: (ModuleNotFound|Import)Error: ", report.errors[0])
    assert set(app.registry.modules) == {"a"}


# -- the admin reply --------------------------------------------------------------------


def test_reload_reply_says_what_changed(make: Callable[..., App]) -> None:
    app = started(make, {"a.py": TWO_COMMANDS, "c.py": INDEPENDENT})
    edit(app, "a.py", RENAMED)
    assert say(app, "!reload") == [
        "reload: reloaded: a; commands added: deux; commands removed: two; 1 unchanged"
    ]
    assert say(app, "!reload") == ["reload: nothing changed; 2 modules loaded"]
    edit(app, "c.py", BETA_SYNTAX)
    (answer,) = say(app, "!reload")
    line = line_of(BETA_SYNTAX, "def beta")
    assert answer.startswith("reload: failed, nothing changed")
    assert f"commands/c.py:{line}: SyntaxError" in answer
    assert say(app, "!c") == ["c"]


def test_non_admins_cannot_reload(make: Callable[..., App]) -> None:
    app = started(make, {"a.py": TWO_COMMANDS})
    edit(app, "a.py", RENAMED)
    before = module(app, "a")
    # right nick, wrong host: not an admin
    assert say(app, "!reload", admin=False) == ["boss: !reload is for admins only"]
    assert say(app, "!reload --force", nick="mallory", admin=False) == [
        "mallory: !reload is for admins only"
    ]
    assert say(app, "!load x", admin=False) == ["boss: !load is for admins only"]
    assert say(app, "!unload a", admin=False) == ["boss: !unload is for admins only"]
    assert module(app, "a") is before
    assert say(app, "!two") == ["two"]


def test_reload_of_a_module_that_is_not_loaded(make: Callable[..., App]) -> None:
    app = started(make, {"a.py": ALPHA_V1})
    (answer,) = say(app, "!reload nope")
    assert answer.startswith("reload: failed") and "not loaded: nope" in answer


@pytest.mark.usefixtures("quick_gc")
def test_concurrent_reloads_run_one_at_a_time_and_the_others_are_told(
    make: Callable[..., App],
) -> None:
    app = started(make, DEPENDENT_FILES)
    errors: list[BaseException] = []
    outcomes: list[str] = []

    def hammer() -> None:
        try:
            for _ in range(10):
                report = app.reload(force=True)
                assert report.ok or report.busy, report.summary()
                outcomes.append("busy" if report.busy else "ok")
                if report.busy:
                    assert report.summary().startswith("a reload is still running (since ")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert "ok" in outcomes
    assert_one_helper_version(app)
    assert say(app, "!a") == ["A!"]


def test_admin_commands_are_logged_with_who_and_the_outcome(
    make: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    app = started(make, {"a.py": ALPHA_V1})
    with caplog.at_level(logging.INFO):
        say(app, "!reload --force")
    audit = [r.getMessage() for r in caplog.records if "admin command by" in r.getMessage()]
    assert len(audit) == 1
    assert "boss!" in audit[0] and "!reload" in audit[0] and audit[0].endswith("answered in 1 line")
    # the reload's report is logged once, by the reloader, not again with the audit line
    reports = [r.getMessage() for r in caplog.records if "reloaded: a" in r.getMessage()]
    assert reports == ["reload: reloaded: a"]


# -- the collection that frees old versions ----------------------------------------------


ECHO = """
from bot.api import command

@command
def echo(ctx, args):
    \"\"\"echo TEXT -- say TEXT back\"\"\"
    return args
"""


class TimerTransport(NullTransport):
    """A transport whose timers the test fires by hand."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.timers: list[Callable[[], None]] = []

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.timers.append(fn)

    def fire(self) -> None:
        timers, self.timers = self.timers, []
        for fn in timers:
            fn()


def test_a_run_of_reloads_schedules_one_collection_that_frees_every_old_version(
    tmp_path: Path,
) -> None:
    transports: list[TimerTransport] = []

    def transport(*args: object) -> TimerTransport:
        transports.append(TimerTransport(*args))
        return transports[-1]

    app = make_app(tmp_path, {"echo.py": ECHO}, transport=transport)
    try:
        assert app.load_all().ok
        (net,) = transports
        net.fire()
        old = [weakref.ref(module(app, "echo"))]
        for _ in range(5):
            assert app.reload(["echo"]).ok
            old.append(weakref.ref(module(app, "echo")))
        assert len(net.timers) == 1  # one collection for the five reloads

        net.fire()
        assert [r() is None for r in old] == [True] * 5 + [False]
        assert app.reload(["echo"]).ok
        assert len(net.timers) == 1  # and the next reload schedules its own
    finally:
        close_app(app)


def test_modules_is_one_line_in_a_channel_and_details_on_request(
    make: Callable[..., App],
) -> None:
    app = started(make, {"a.py": ALPHA_V1, "b.py": ALPHA_V1.replace("alpha", "beta")})
    assert say(app, "!modules") == [
        "2 modules: a, b -- !modules NAME, or ask in private, for their commands"
    ]
    assert say(app, "!modules b") == ["b: beta"]
    assert say(app, "!modules", channel=None) == ["a: alpha", "b: beta"]  # type: ignore[arg-type]
    assert say(app, "!modules zzz") == ["modules: no module 'zzz' is loaded"]
