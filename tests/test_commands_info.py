"""commands/info.py: uptime and version."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.testing import LoadCommand

COMMANDS = Path(__file__).resolve().parents[1] / "commands"
INFO = COMMANDS / "info.py"


def test_version_names_the_package(load_command: LoadCommand) -> None:
    bot = load_command(INFO)
    [reply] = bot.say("!version")
    assert re.fullmatch(r"reloadbot \S+ \(Python 3\.\d+\.\d+\S*\)", reply), reply


def test_version_fallback(load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch) -> None:
    bot = load_command(INFO)

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert bot.module.bot_version() == bot.module.FALLBACK_VERSION
    python = platform.python_version()
    assert bot.say("!version") == [f"reloadbot {bot.module.FALLBACK_VERSION} (Python {python})"]


def test_process_start_from_proc(load_command: LoadCommand) -> None:
    bot = load_command(INFO)
    start = bot.module.process_start()
    if not Path("/proc/self/stat").exists():
        assert start is None
        return
    assert start is not None
    assert time.time() - 6 * 3600 < start <= time.time() + 1  # this pytest process


def test_process_start_without_proc(load_command: LoadCommand, tmp_path: Path) -> None:
    bot = load_command(INFO)
    assert bot.module.process_start(tmp_path) is None


def test_uptime_survives_reload_but_not_restart(
    load_command: LoadCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No process start time (as off Linux): setup() records the wall clock instead.
    # (A reload executes the module afresh, so its process_start cannot be patched.)
    sysconf = os.sysconf

    def no_clock_ticks(name: str | int) -> int:
        if name == "SC_CLK_TCK":
            raise OSError("not here")
        return sysconf(name)

    monkeypatch.setattr(os, "sysconf", no_clock_ticks)
    start = 1_700_000_000.0
    monkeypatch.setattr(time, "time", lambda: start)
    bot = load_command(INFO)
    assert bot.module.process_start() is None
    assert bot.state == {"pid": os.getpid(), "started": start}
    # the module reads time.time(); from here on it follows the bot's fake clock
    monkeypatch.setattr(time, "time", lambda: start + bot.now)

    bot.advance(3 * 3600 + 5 * 60)
    assert bot.say("!uptime") == ["up 3h 5m"]
    bot.reload(force=True)  # a reload: same pid, the start stays
    assert bot.say("!uptime") == ["up 3h 5m"]
    bot.state["pid"] = -1  # as if written by an earlier process
    bot.reload(force=True)
    assert bot.say("!uptime") == ["up 0s"]


def test_uptime_and_version_through_the_bot(load_command: LoadCommand) -> None:
    bot = load_command(INFO)
    started = bot.state["started"]
    assert bot.state["pid"] == os.getpid()
    assert re.fullmatch(r"up \d+[dhms]( \d+[hms])?", bot.say("!uptime")[0])
    assert bot.say("!version")[0].startswith("reloadbot ")
    for _ in range(3):
        bot.reload(force=True)
    assert bot.state["started"] == started
    assert bot.say("!uptime")[0].startswith("up ")
