"""Issue 11 through IRC: a reloader that cannot wedge (real ngIRCd, real sockets).

Each test plays a hostile module author against a running bot and checks that
the bot keeps answering, tells the admin what went wrong and where (file:line),
and leaves nothing half-applied. Admins are clients whose nick starts with
``boss`` (see ``running_bot`` in conftest.py).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ECHO = '''
from bot.api import command


@command
def echo(ctx, args):
    """echo TEXT -- repeat TEXT back"""
    return args
'''

X_V1 = '''
from bot.api import command


@command
def x(ctx, args):
    """x -- answers with its version"""
    return "x v1"
'''


def line_of(source: str, marker: str) -> int:
    lines = source.lstrip("\n").splitlines()
    return next(i for i, text in enumerate(lines, 1) if marker in text)


@pytest.fixture
def gate() -> Iterator[types.ModuleType]:
    """A module outside the commands folder that command code imports to be steered."""
    module = types.ModuleType(f"rbwedge_{uuid.uuid4().hex[:8]}")
    module.started = threading.Event()  # type: ignore[attr-defined]
    module.release = threading.Event()  # type: ignore[attr-defined]
    module.events = []  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    module.release.set()  # type: ignore[attr-defined]
    del sys.modules[module.__name__]


def admin_and_bot(running_bot, irc_client, files: dict[str, str], **config):  # type: ignore[no-untyped-def]
    bot = running_bot(files, **config)
    boss = irc_client("boss")
    boss.join(bot.channel)
    return bot, boss


def still_serving(bot, boss) -> None:  # type: ignore[no-untyped-def]
    """The built-ins and the modules answer, and a reload goes through."""
    assert bot.ask(boss, "!help echo").startswith("echo TEXT")
    assert bot.ask(boss, "!modules echo", r"^echo: echo")
    assert bot.ask(boss, "!echo still here", r"^still here$")


# -- 1. BaseExceptions from setup() and migrate() -----------------------------------------

HOOK_RAISES = {
    "setup-cancelled": (
        "import asyncio\n\ndef setup(bot):\n    raise asyncio.CancelledError()\n",
        "raise asyncio",
        "setup() raised CancelledError",
    ),
    "migrate-keyboard-interrupt": (
        "STATE_VERSION = 2\n\ndef migrate(state, old):\n    raise KeyboardInterrupt\n",
        "raise Keyboard",
        "migrate() from state version 0 raised KeyboardInterrupt",
    ),
    "setup-custom-base-exception": (
        "class Boom(BaseException):\n    pass\n\ndef setup(bot):\n    raise Boom('out')\n",
        "raise Boom",
        "setup() raised Boom: out",
    ),
}


@pytest.mark.parametrize("case", list(HOOK_RAISES))
def test_a_base_exception_from_setup_or_migrate_fails_the_reload_and_nothing_wedges(
    running_bot, irc_client, case: str
) -> None:
    bot, boss = admin_and_bot(running_bot, irc_client, {"echo.py": ECHO, "x.py": X_V1})
    hook, marker, message = HOOK_RAISES[case]
    v2 = X_V1.replace("x v1", "x v2") + "\n" + hook
    bot.write("x", v2)

    reply = bot.ask(boss, "!reload")

    line = line_of(v2, marker)
    assert reply.startswith("reload: failed, the old code keeps serving: "), reply
    assert f"commands/x.py:{line}: {message}" in reply
    assert bot.ask(boss, "!x") == "x v1"
    still_serving(bot, boss)
    bot.write("x", X_V1.replace("x v1", "x v3"))
    assert bot.ask(boss, "!reload") == "reload: reloaded: x; 1 unchanged"
    assert bot.ask(boss, "!x") == "x v3"
    # and the bot still stops on request (the fixture fails if it takes over 10 s)


def test_a_base_exception_at_import_at_start_up_skips_the_module(
    running_bot, irc_client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    bad = "import sys\n\nraise KeyboardInterrupt('at import')\n"
    bot = running_bot({"echo.py": ECHO, "bad.py": bad}, wait=False)
    bot.wait_joined()
    user = irc_client("user")
    user.join(bot.channel)
    assert bot.ask(user, "!echo up") == "up"
    assert "bad" not in bot.app.registry.modules
    assert "commands/bad.py:3: KeyboardInterrupt: at import" in caplog.text


# -- 2. a migration is undone with the reload it belonged to ------------------------------

COUNTER_V1 = '''
from bot.api import command


@command
def count(ctx, args):
    """count -- counts, with the state as a plain number"""
    ctx.state["n"] = ctx.state.get("n", 0) + 1
    return "count %d" % ctx.state["n"]
'''

COUNTER_V2 = '''
from bot.api import command

STATE_VERSION = 2


def migrate(state, old):
    state["n"] = {"value": state.get("n", 0)}


@command
def count(ctx, args):
    """count -- counts, with the state as a mapping"""
    with ctx.state.transaction() as state:
        state["n"] = {"value": state["n"]["value"] + 1}
    return "count v2 %d" % ctx.state["n"]["value"]
'''

SETUP_FAILS = '''
from bot.api import command


@command
def other(ctx, args):
    """other -- fails to set up"""
    return "other"


def setup(bot):
    raise RuntimeError("not today")
'''


def test_a_migration_is_undone_when_a_later_setup_fails(running_bot, irc_client) -> None:
    bot, boss = admin_and_bot(
        running_bot, irc_client, {"echo.py": ECHO, "counter.py": COUNTER_V1, "other.py": X_V1}
    )
    assert bot.ask(boss, "!count") == "count 1"
    bot.write("counter", COUNTER_V2)
    bot.write("other", SETUP_FAILS)

    reply = bot.ask(boss, "!reload")

    assert reply.startswith("reload: failed"), reply
    assert "setup() raised RuntimeError: not today" in reply
    assert bot.ask(boss, "!count") == "count 2"  # the old code, on the old data
    assert "counter" not in bot.app.state_for("__state_versions__")
    bot.write("other", SETUP_FAILS.replace('raise RuntimeError("not today")', "pass"))
    assert bot.ask(boss, "!reload").startswith("reload: reloaded: counter, other")
    assert bot.ask(boss, "!count") == "count v2 3"


# -- 3. SystemExit and KeyboardInterrupt from commands, listeners, timers, imports ---------

ARGPARSE = '''
import argparse

from bot.api import command, on_message


@command
def args(ctx, text):
    """args --count N -- parses its arguments with argparse"""
    parser = argparse.ArgumentParser(prog="args", add_help=False)
    parser.add_argument("--count", type=int, required=True)
    return "count=%d" % parser.parse_args(text.split()).count


@on_message(r"^interrupt me$")
def interrupted(ctx, match):
    raise KeyboardInterrupt("from a listener")


def setup(bot):
    bot.after(0.01, tick)


def tick():
    raise SystemExit("from a timer")
'''


def test_system_exit_and_keyboard_interrupt_from_calls_are_reported(
    running_bot, irc_client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    bot, _ = admin_and_bot(running_bot, irc_client, {"echo.py": ECHO, "args.py": ARGPARSE})
    user = irc_client("user")
    user.join(bot.channel)

    line = line_of(ARGPARSE, "parse_args(")
    assert bot.ask(user, "!args --count 3") == "count=3"
    assert bot.ask(user, "!args --oops") == f"args failed: SystemExit: 2 (commands/args.py:{line})"
    mark = user.mark()
    user.privmsg(bot.channel, "interrupt me")
    assert bot.ask(user, "!echo after") == "after"
    assert bot.replies(user, mark) == ["after"]  # a listener's failure is only logged
    bot.wait_until(lambda: "KeyboardInterrupt: from a listener" in caplog.text, "the log line")
    bot.wait_until(lambda: "SystemExit: from a timer" in caplog.text, "the timer's log line")


def test_keyboard_interrupt_at_import_on_load_is_a_failed_load(running_bot, irc_client) -> None:
    bot, boss = admin_and_bot(running_bot, irc_client, {"echo.py": ECHO})
    source = "import os\n\nraise KeyboardInterrupt\n"
    bot.write("y", source)
    reply = bot.ask(boss, "!load y")
    assert reply == (
        "load: failed, the old code keeps serving: commands/y.py:3: KeyboardInterrupt;"
        " not undone: what the code of commands/y.py did outside its own module"
        " (patches, threads...)"
    )
    still_serving(bot, boss)


TEARDOWN_EXITS = '''
import {gate}
from bot.api import command


@command
def t(ctx, args):
    """t -- answers"""
    return "t {v}"


def teardown(bot):
    {gate}.events.append("teardown t {v}")
    raise SystemExit(5)
'''

LAST_TEARDOWN = '''
import {gate}
from bot.api import command


@command
def z(ctx, args):
    """z -- answers"""
    return "z"


def teardown(bot):
    {gate}.events.append("teardown z")
'''


def test_a_teardown_raising_system_exit_loses_neither_the_reply_nor_the_shutdown(
    running_bot, irc_client, gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    files = {
        "echo.py": ECHO,
        "t.py": TEARDOWN_EXITS.format(gate=gate.__name__, v="v1"),
        "z.py": LAST_TEARDOWN.format(gate=gate.__name__),
    }
    bot, boss = admin_and_bot(running_bot, irc_client, files)
    bot.write("t", TEARDOWN_EXITS.format(gate=gate.__name__, v="v2"))

    assert bot.ask(boss, "!reload") == "reload: reloaded: t; 2 unchanged"
    assert bot.ask(boss, "!t") == "t v2"
    audit = [r.getMessage() for r in caplog.records if "admin command by" in r.getMessage()]
    assert audit and audit[-1].endswith("-> answered in 1 line"), audit

    bot.stop()  # t's teardown exits again: z is torn down all the same, storage is closed
    assert set(gate.events) == {"teardown t v1", "teardown t v2", "teardown z"}
    assert bot.app.storage.closed


# -- 4. hung imports and slow teardowns: the deadline -------------------------------------

SPINS = "import os\n\nwhile True:\n    pass\n"
SLEEPS = "import time\n\ntime.sleep(3600)\n"


@pytest.mark.parametrize("body", [SPINS, SLEEPS], ids=["busy-loop", "blocking-sleep"])
def test_a_hung_import_is_abandoned_and_the_fixed_file_loads(
    running_bot, irc_client, body: str
) -> None:
    bot, boss = admin_and_bot(running_bot, irc_client, {"echo.py": ECHO}, reload_timeout=1)
    bot.write("hang", body)
    mark = boss.mark()
    boss.privmsg(bot.channel, "!load hang")
    # while it hangs, the built-ins answer, and another reload is told why it waits
    assert bot.ask(boss, "!help echo").startswith("echo TEXT")
    running = bot.app.reloader.busy_text
    bot.wait_until(lambda: "at commands/hang.py:" in (running() or ""), "the import to run")
    busy = bot.ask(boss, "!reload")
    assert re.match(
        r"reload: a reload is still running \(since \d+ s, in commands/hang\.py \(at import\)"
        r" at commands/hang\.py:\d+ in <module>\)",
        busy,
    ), busy

    reply = bot.wait_reply(boss, mark, r"^load: ", timeout=5)
    assert reply.startswith("load: failed, the old code keeps serving: "), reply
    assert re.search(r"commands/hang\.py:[34]: still running after 1 s", reply), reply
    assert "abandoned and rolled back" in reply
    assert "hang" not in bot.app.registry.modules

    bot.write("hang", X_V1.replace("def x(", "def hang(").replace('"""x --', '"""hang --'))
    assert bot.ask(boss, "!load hang") == "load: loaded: hang; commands added: hang; 1 unchanged"
    assert bot.ask(boss, "!hang") == "x v1"
    still_serving(bot, boss)


SLOW_TEARDOWN = '''
import time

from bot.api import command


@command
def x(ctx, args):
    """x -- answers with its version"""
    return "x {v}"


def teardown(bot):
    time.sleep(3600)
'''


def test_a_slow_teardown_is_abandoned_and_the_bot_keeps_answering(running_bot, irc_client) -> None:
    files = {"echo.py": ECHO, "x.py": SLOW_TEARDOWN.format(v="v1")}
    bot, boss = admin_and_bot(running_bot, irc_client, files, reload_timeout=1)
    bot.write("x", SLOW_TEARDOWN.format(v="v2"))
    mark = boss.mark()
    boss.privmsg(bot.channel, "!reload")
    assert bot.ask(boss, "!help echo").startswith("echo TEXT")
    reply = bot.wait_reply(boss, mark, r"^reload: ", timeout=5)
    line = line_of(SLOW_TEARDOWN, "time.sleep")
    assert reply.startswith("reload: failed"), reply
    assert f"commands/x.py:{line}: still running after 1 s (teardown() of commands/x.py" in reply
    assert bot.ask(boss, "!x") == "x v1"  # the old version serves again
    still_serving(bot, boss)


def test_a_hung_file_saved_with_watch_on_is_reported_and_the_fix_loads(
    running_bot, irc_client
) -> None:
    bot, boss = admin_and_bot(
        running_bot, irc_client, {"echo.py": ECHO}, watch=True, notify=True, reload_timeout=1
    )
    mark = boss.mark()
    bot.write("hang", SPINS)
    notice = bot.wait_reply(boss, mark, r"^auto-reload: ", timeout=5)
    assert re.search(r"commands/hang\.py:[34]: still running after 1 s", notice), notice
    still_serving(bot, boss)
    mark = boss.mark()
    bot.write("hang", X_V1.replace("def x(", "def hang(").replace('"""x --', '"""hang --'))
    notice = bot.wait_reply(boss, mark, r"^auto-reload: ", timeout=5)
    assert notice.startswith("auto-reload: loaded: hang"), notice


# -- 4b. stuck admin commands cannot take every worker; timeouts count from queueing ------

HANG = '''
import {gate}
from bot.api import command


@command
def hang(ctx, args):
    """hang -- waits for the test"""
    {gate}.started.set()
    {gate}.release.wait(30)
    return "released"
'''


def test_stuck_admin_commands_cannot_take_every_worker(running_bot, irc_client, gate) -> None:
    files = {"echo.py": ECHO, "hang.py": HANG.format(gate=gate.__name__)}
    bot, boss = admin_and_bot(running_bot, irc_client, files, workers=3, command_timeout=0.3)
    user = irc_client("user")
    user.join(bot.channel)
    mark = boss.mark()
    boss.privmsg(bot.channel, "!hang")
    boss.privmsg(bot.channel, "!hang")
    timed_out = "hang: timed out after 0.3 s"
    bot.wait_until(lambda: bot.replies(boss, mark).count(timed_out) == 2, "both to time out")
    assert bot.ask(boss, "!hang") == f"{boss.nick}: still busy with your last commands"
    assert bot.ask(user, "!echo a worker is left", r"^a worker is left$")
    gate.release.set()


def test_a_queued_call_times_out_from_when_it_was_queued(running_bot, irc_client, gate) -> None:
    files = {"echo.py": ECHO, "hang.py": HANG.format(gate=gate.__name__)}
    bot, boss = admin_and_bot(running_bot, irc_client, files, workers=1, command_timeout=0.5)
    user = irc_client("user")
    user.join(bot.channel)
    user.privmsg(bot.channel, "!hang")
    assert gate.started.wait(5)
    # the only worker is taken: the admin's command waits, and is told it timed out
    mark = boss.mark()
    boss.privmsg(bot.channel, "!echo queued")
    assert bot.wait_reply(boss, mark, r"^echo: ") == "echo: timed out after 0.5 s"
    gate.release.set()
    bot.wait_until(lambda: not bot.app.dispatcher.running(), "the calls to end")
    assert "queued" not in bot.replies(boss, mark)  # told it timed out: it does not run late
    assert bot.ask(boss, "!echo free again", r"^free again$")


# -- 5. hook order: the old teardown runs before the new setup ----------------------------

BINDS = '''
import socket

from bot.api import command

PORT = {port}
server = None


def setup(bot):
    global server
    server = socket.socket()
    server.bind(("127.0.0.1", PORT))
    server.listen()
    bot.state["generation"] = bot.state.get("saved", 0) + 1


def teardown(bot):
    server.close()
    bot.state["saved"] = bot.state["generation"]


@command
def listener(ctx, args):
    """listener -- which generation holds the port"""
    return "{tag} generation %d" % ctx.state["generation"]
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_module_that_binds_a_port_in_setup_can_be_reloaded(running_bot, irc_client) -> None:
    port = free_port()
    files = {"echo.py": ECHO, "port.py": BINDS.format(port=port, tag="v1")}
    bot, boss = admin_and_bot(running_bot, irc_client, files)
    assert bot.ask(boss, "!listener") == "v1 generation 1"
    for generation, tag in ((2, "v2"), (3, "v3")):
        bot.write("port", BINDS.format(port=port, tag=tag))
        assert bot.ask(boss, "!reload") == "reload: reloaded: port; 1 unchanged"
        assert bot.ask(boss, "!listener") == f"{tag} generation {generation}"


# -- 6. a command module another module imports cannot vanish under it -------------------

LIBRARY = '''
from bot.api import command


def shout(text):
    return text.upper() + "!"


@command
def lib(ctx, args):
    """lib -- answers"""
    return "lib"
'''

USES_LIBRARY = '''
from bot.api import command

from . import lib


@command
def user(ctx, args):
    """user TEXT -- shouts TEXT through lib"""
    return lib.shout(args)
'''


def test_deleting_a_module_another_imports_is_refused_like_unload(running_bot, irc_client) -> None:
    files = {"echo.py": ECHO, "lib.py": LIBRARY, "user.py": USES_LIBRARY}
    bot, boss = admin_and_bot(running_bot, irc_client, files)
    refusal = (
        "failed, nothing changed (the old code keeps serving): commands/lib.py:"
        " lib is imported by user"
    )
    assert bot.ask(boss, "!unload lib") == f"unload: {refusal}"
    bot.delete("lib")
    assert bot.ask(boss, "!reload") == f"reload: {refusal}"
    assert bot.ask(boss, "!user hey") == "HEY!"
    assert bot.ask(boss, "!lib") == "lib"


# -- 7. a traceback of a call on the old code shows the old code -------------------------

RAISES_LATER = '''
import {gate}
from bot.api import command


@command
def boom(ctx, args):
    """boom -- fails, later"""
    {gate}.started.set()
    {gate}.release.wait(30)
    return int("{text}")
'''


def test_a_traceback_of_a_call_on_the_old_version_shows_its_own_text(
    running_bot, irc_client, gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    old = RAISES_LATER.format(gate=gate.__name__, text="old text ran")
    bot, boss = admin_and_bot(running_bot, irc_client, {"echo.py": ECHO, "boom.py": old})
    mark = boss.mark()
    boss.privmsg(bot.channel, "!boom")
    assert gate.started.wait(5)
    bot.write("boom", RAISES_LATER.format(gate=gate.__name__, text="NEW TEXT"))
    boss.privmsg(bot.channel, "!reload")
    bot.wait_until(lambda: "boom" in bot.app.live.held, "the new version to be executed")
    gate.release.set()

    failed = bot.wait_reply(boss, mark, r"^boom failed: ")
    assert failed.startswith("boom failed: ValueError")
    assert bot.wait_reply(boss, mark, r"^reload: ") == "reload: reloaded: boom; 1 unchanged"
    assert 'return int("old text ran")' in caplog.text
    assert "NEW TEXT" not in caplog.text


# -- 8. !reload loads a new file -------------------------------------------------------------


def test_reload_loads_a_new_file(running_bot, irc_client) -> None:
    bot, boss = admin_and_bot(running_bot, irc_client, {"echo.py": ECHO})
    bot.write("x", X_V1)
    assert bot.ask(boss, "!reload") == "reload: loaded: x; commands added: x; 1 unchanged"
    assert bot.ask(boss, "!x") == "x v1"


# -- 9. files that cannot load are named -------------------------------------------------


def test_reload_names_each_file_it_skips_once(running_bot, irc_client) -> None:
    bot, boss = admin_and_bot(running_bot, irc_client, {"echo.py": ECHO})
    bot.write("my-cmd", X_V1)
    reply = bot.ask(boss, "!reload")
    assert reply == (
        "reload: nothing changed; 1 module loaded; skipped: commands/my-cmd.py: not loaded:"
        " module names are file stems made of letters, digits and '_', like 'dice'"
        " (rename it to my_cmd.py)"
    )
    assert bot.ask(boss, "!reload") == "reload: nothing changed; 1 module loaded"  # not news


# -- honest replies: code that ran is not undone -------------------------------------------

PATCHES_THEN_RAISES = """
import {gate}

{gate}.patched = True  # a monkeypatch of another module
raise RuntimeError("after patching")
"""


def test_a_failed_load_does_not_vouch_for_what_its_code_did(running_bot, irc_client, gate) -> None:
    bot, boss = admin_and_bot(running_bot, irc_client, {"echo.py": ECHO})
    bot.write("patcher", PATCHES_THEN_RAISES.format(gate=gate.__name__))
    reply = bot.ask(boss, "!load patcher")
    assert "nothing changed" not in reply
    assert reply.startswith("load: failed, the old code keeps serving: commands/patcher.py:4:")
    assert "not undone: what the code of commands/patcher.py did outside its own module" in reply
    assert gate.patched is True  # indeed not undone


# -- SIGTERM ends the process, whatever is stuck --------------------------------------------

STUCK_EVERYWHERE = '''
import threading
import time

from bot.api import command


def forever():
    time.sleep(3600)


def setup(bot):
    threading.Thread(target=forever, name="module-thread", daemon=False).start()


def teardown(bot):
    time.sleep(3600)


@command
def stuck(ctx, args):
    """stuck -- never returns"""
    time.sleep(3600)


@command
def endless(ctx, args):
    """endless -- an endless generator"""
    while True:
        time.sleep(0.01)
        yield from ()
'''


def start_bot_process(files, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:  # type: ignore[no-untyped-def]
    """``python -m bot`` on ``files`` (from ``bot_files``); its log goes to a file."""
    repo = Path(__file__).resolve().parents[1]
    log_path = tmp_path / "bot.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(files.config_path)],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(repo)},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    return process, log_path


def wait_answering(client, channel: str, log_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Poll until the bot is in ``channel`` and answers ``!echo``."""
    client.join(channel)
    deadline = time.monotonic() + 15
    while True:
        mark = client.mark()
        client.privmsg(channel, "!echo up")
        try:
            client.wait_for(lambda raw: raw.endswith(" :up"), since=mark, timeout=0.5)
            return
        except AssertionError:
            assert time.monotonic() < deadline, log_path.read_text()


def stop_process(process: subprocess.Popen[bytes]) -> float:
    """SIGTERM; the seconds the process took to exit."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)
    return time.monotonic() - started


def test_sigterm_ends_the_process_within_seconds_whatever_is_stuck(
    bot_files, irc_client, tmp_path
) -> None:
    files = bot_files({"echo.py": ECHO, "stuck.py": STUCK_EVERYWHERE})
    process, log_path = start_bot_process(files, tmp_path)
    try:
        witness = irc_client("witness")
        wait_answering(witness, files.channel, log_path)
        mark = witness.mark()
        witness.privmsg(files.channel, "!stuck")
        witness.privmsg(files.channel, "!endless")
        witness.privmsg(files.channel, "!echo answered")
        witness.wait_for(lambda raw: raw.endswith(" :answered"), since=mark, timeout=10)
        took = stop_process(process)
        quit_line = witness.wait_for(lambda raw: " QUIT " in raw, since=mark, timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = log_path.read_text()
    assert took < 10, f"took {took:.1f} s to exit:\n{log}"
    assert quit_line.lstrip(":").startswith(files.nick) and "Shutting down" in quit_line
    assert re.search(r"exiting with \d+ thread\(s\) still running: .*module-thread", log), log
    assert not Path(f"{files.raw['state_db']}-wal").exists(), "the state database was not closed"


def test_sigterm_with_nothing_stuck_exits_at_once_and_quietly(
    bot_files, irc_client, tmp_path
) -> None:
    files = bot_files({"echo.py": ECHO})
    process, log_path = start_bot_process(files, tmp_path)
    try:
        witness = irc_client("witness")
        wait_answering(witness, files.channel, log_path)
        mark = witness.mark()
        witness.privmsg(files.channel, "!help echo")  # the built-ins' threads exist now
        witness.wait_for(lambda raw: " :echo TEXT" in raw, since=mark, timeout=5)
        took = stop_process(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = log_path.read_text()
    assert process.returncode == 0, log
    assert took < 1.5, f"took {took:.1f} s to exit:\n{log}"  # no thread waited for
    assert "still running" not in log, log


def test_the_demo_stops_its_server_even_when_a_command_is_stuck(tmp_path) -> None:
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "echo.py").write_text(ECHO)
    (tmp_path / "commands" / "stuck.py").write_text(STUCK_EVERYWHERE)
    (tmp_path / "config.yaml").write_text(
        'server: {host: 127.0.0.1}\nnick: demobot\nchannels: ["#demo"]\nprefix: "!"\n'
        'admins: ["nobody!*@nowhere.example"]\ncommands_dir: commands\nstate_db: null\n'
    )
    repo = Path(__file__).resolve().parents[1]
    log_path = tmp_path / "demo.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", "config.yaml", "--demo"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(repo)},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        deadline = time.monotonic() + 15
        while not (found := re.search(r"running on 127\.0\.0\.1:(\d+)", log_path.read_text())):
            assert time.monotonic() < deadline and process.poll() is None, log_path.read_text()
            time.sleep(0.05)  # poll interval
        port = int(found[1])
        from ircclient import IrcClient

        client = IrcClient("127.0.0.1", port, "visitor").connect(10)
        try:
            wait_answering(client, "#demo", log_path)
            client.privmsg("#demo", "!stuck")
            took = stop_process(process)
        finally:
            client.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert took < 10, log_path.read_text()
    with socket.socket() as probe:  # the demo's ngircd is gone with it
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the demo left its IRC server running"
