"""Issue 12 through IRC (ngircd): a hostile isolated module cannot touch the bot.

Each test runs a real bot whose ``hostile`` module is isolated (``isolate:
["hostile"]``), makes that module crash, hang or hog, and checks that the bot's
connection is unchanged (one registration, the same socket), that other
commands are answered, and that the admin is told.
"""

from __future__ import annotations

import os
import re
import time
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

HOSTILE = '''
import ctypes
import os
import re
import time

from bot.api import command


@command
def pid(ctx, args):
    """pid -- the worker's process id"""
    return str(os.getpid())


@command
def exits(ctx, args):
    """exits -- os._exit in a command"""
    os._exit(1)


@command
def segfault(ctx, args):
    """segfault -- reads address 0"""
    ctypes.string_at(0)


@command
def backtrack(ctx, args):
    """backtrack -- a regex that holds the GIL for a long time"""
    return str(re.match(r"(a+)+$", "a" * 32 + "b"))


@command
def hog(ctx, args):
    """hog -- asks for 2 GB"""
    return str(len(bytearray(2 * 1024 ** 3)))


@command
def spin(ctx, args):
    """spin -- never returns"""
    while True:
        pass


@command
def forks(ctx, args):
    """forks -- leaves a child process behind"""
    child = os.fork()
    if child == 0:
        time.sleep(3600)
        os._exit(0)
    return str(child)
'''


def start(running_bot, irc_client, **config):  # type: ignore[no-untyped-def]
    bot = running_bot(
        {"echo.py": ECHO, "hostile.py": HOSTILE}, isolate=["hostile"], notify=True, **config
    )
    boss = irc_client("boss")
    boss.join(bot.channel)
    connection = bot.app.connection
    return bot, boss, (connection.connects, id(connection.server.socket))


def unchanged(bot, boss, before) -> None:  # type: ignore[no-untyped-def]
    """Same connection as before, and an in-process command still answers."""
    connection = bot.app.connection
    assert (connection.connects, id(connection.server.socket)) == before
    assert bot.ask(boss, "!echo still here", r"^still here$")


def worker_pid(bot, boss, other_than: int = 0) -> int:  # type: ignore[no-untyped-def]
    """The worker's pid, polled until a worker answers (and it is not ``other_than``)."""
    deadline = time.monotonic() + 10
    while True:
        reply = bot.ask(boss, "!pid", r"^(\d+|pid: .*)$")
        if reply.isdigit() and int(reply) != other_than:
            return int(reply)
        assert time.monotonic() < deadline, reply


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone too
            return stat.read().split()[2] == "Z"
    except FileNotFoundError:  # reaped between the two looks
        return True


@pytest.mark.parametrize(
    ("command", "death"),
    [("exits", "exit code 1"), ("segfault", "signal SIGSEGV")],
)
def test_a_worker_that_dies_in_a_command_is_restarted(
    running_bot, irc_client, command: str, death: str
) -> None:
    bot, boss, before = start(running_bot, irc_client)
    first = worker_pid(bot, boss)
    listed = bot.ask(boss, "!modules hostile", r"^hostile: ")
    assert re.search(rf"\[worker pid {first}, \d+ MB, up \d+m\d\ds, restarts 0\]$", listed)
    mark = boss.mark()
    reply = bot.ask(boss, f"!{command}", rf"^{command}: ")
    assert reply == f"{command}: the module's worker died ({death}); it is restarting"
    notice = bot.wait_reply(boss, mark, r"^hostile: its worker died")
    assert notice == f"hostile: its worker died ({death}); restarting it in 0.5 s"
    unchanged(bot, boss, before)
    second = worker_pid(bot, boss, other_than=first)
    assert gone(first)
    assert f"[worker pid {second}, " in bot.ask(boss, "!modules hostile", r"^hostile: ")
    assert "restarts 1]" in bot.ask(boss, "!modules hostile", r"^hostile: ")


def test_os_exit_at_import_fails_the_load_and_nothing_else(running_bot, irc_client) -> None:
    bot, boss, before = start(running_bot, irc_client)
    bot.write("hostile", "import os\nos._exit(1)\n")
    reply = bot.ask(boss, "!reload hostile")
    assert reply.startswith("reload: failed"), reply
    assert "commands/hostile.py: its worker died while loading it (exit code 1)" in reply
    unchanged(bot, boss, before)
    assert worker_pid(bot, boss) > 0  # the old worker keeps serving


def test_an_endless_loop_at_import_on_load_is_stopped(running_bot, irc_client) -> None:
    bot, boss, before = start(running_bot, irc_client, reload_timeout=1)
    bot.write("spinner", "while True:\n    pass\n")
    # (isolate only names "hostile": make spinner isolated too, live)
    bot.write_config(isolate=["hostile", "spinner"])
    bot.wait_until(lambda: "spinner" in bot.app.isolation.patterns, "the config to apply")
    assert bot.app.isolation.wants("spinner")
    reply = bot.ask(boss, "!load spinner", r"^load: ", timeout=10)
    assert reply.startswith("load: failed"), reply
    assert re.search(r"commands/spinner\.py: still loading after [\d.]+ s in its worker", reply)
    unchanged(bot, boss, before)


def test_a_gil_holding_regex_does_not_stop_the_bot_and_is_killed_at_its_timeout(
    running_bot, irc_client
) -> None:
    bot, boss, before = start(running_bot, irc_client, command_timeout=1)
    first = worker_pid(bot, boss)
    mark = boss.mark()
    boss.privmsg(bot.channel, "!backtrack")
    # meanwhile the bot answers at once: the regex holds the worker's GIL, not ours
    started = time.monotonic()
    assert bot.ask(boss, "!echo meanwhile", r"^meanwhile$")
    assert time.monotonic() - started < 0.5
    assert bot.wait_reply(boss, mark, r"^backtrack: ") == "backtrack: timed out after 1 s"
    unchanged(bot, boss, before)
    worker_pid(bot, boss, other_than=first)
    assert gone(first)


def test_a_runaway_call_is_killed_at_command_timeout(running_bot, irc_client) -> None:
    bot, boss, before = start(running_bot, irc_client, command_timeout=1)
    first = worker_pid(bot, boss)
    assert bot.ask(boss, "!spin", r"^spin: ") == "spin: timed out after 1 s"
    worker_pid(bot, boss, other_than=first)
    bot.wait_until(lambda: gone(first), "the runaway worker to end")
    unchanged(bot, boss, before)


def test_a_memory_hog_gets_a_memory_error_and_a_fresh_worker(running_bot, irc_client) -> None:
    bot, boss, before = start(running_bot, irc_client, isolate_memory_mb=256)
    first = worker_pid(bot, boss)
    reply = bot.ask(boss, "!hog", r"^hog")
    assert reply.startswith("hog failed: MemoryError"), reply
    worker_pid(bot, boss, other_than=first)
    unchanged(bot, boss, before)


def test_a_forked_child_ends_with_its_worker(running_bot, irc_client) -> None:
    bot, boss, before = start(running_bot, irc_client)
    child = int(bot.ask(boss, "!forks", r"^\d+$"))
    assert not gone(child)
    bot.write("hostile", HOSTILE + "\n# a new version\n")
    assert bot.ask(boss, "!reload hostile") == "reload: reloaded: hostile; 1 unchanged"
    bot.wait_until(lambda: gone(child), "the forked child to end with the old worker")
    unchanged(bot, boss, before)


THREAD_AND_ATEXIT = '''
import atexit
import threading
import time

from bot.api import command

MARK = {mark!r}


def keep_writing():
    while True:
        with open(MARK, "a") as f:
            f.write("tick\\n")
        time.sleep(0.05)


def setup(bot):
    threading.Thread(target=keep_writing, daemon=False).start()
    atexit.register(lambda: open(MARK + ".atexit", "w").write("ran"))


@command
def hostile(ctx, args):
    """hostile -- {version}"""
    return "{version}"
'''


def test_a_thread_and_an_atexit_handler_are_gone_after_a_reload(
    running_bot, irc_client, tmp_path: Path
) -> None:
    from bot.isolated import worker_of

    mark = tmp_path / "ticks"
    source = THREAD_AND_ATEXIT.format(mark=str(mark), version="v1")
    bot = running_bot({"echo.py": ECHO, "hostile.py": source}, isolate=["hostile"])
    boss = irc_client("boss")
    boss.join(bot.channel)
    bot.wait_until(mark.exists, "the module's thread to write")
    old = worker_of(bot.app.registry.modules["hostile"].module)
    assert old is not None
    old_pid = old.process.pid

    bot.write("hostile", source.replace('"v1"', '"v2"').replace("-- v1", "-- v2"))
    assert bot.ask(boss, "!reload hostile") == "reload: reloaded: hostile; 1 unchanged"
    assert bot.ask(boss, "!hostile") == "v2"
    assert gone(old_pid)  # the process, and so the thread the old version started
    assert not Path(f"{mark}.atexit").exists()  # its atexit handler never ran
