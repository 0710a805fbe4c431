"""commands/info.py: uptime and version."""

from __future__ import annotations

import importlib.metadata
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from command_fakes import COMMANDS, FakeClock, FakeContext, load, run

if TYPE_CHECKING:
    from bot.testing import LoadCommand


info = load("info")


class FakeBot:
    def __init__(self, state: dict[str, object]) -> None:
        self.state = state


def test_version_names_the_package() -> None:
    [reply] = run(info, "version", "", FakeContext())
    assert re.fullmatch(r"reloadbot \S+ \(Python 3\.\d+\.\d+\S*\)", reply), reply


def test_version_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert info.bot_version() == info.FALLBACK_VERSION


def test_process_start_from_proc() -> None:
    start = info.process_start()
    if not Path("/proc/self/stat").exists():
        assert start is None
        return
    assert start is not None
    assert time.time() - 6 * 3600 < start <= time.time() + 1  # this pytest process


def test_process_start_without_proc(tmp_path: Path) -> None:
    assert info.process_start(tmp_path) is None


def test_uptime_survives_reload_but_not_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monkeypatch)
    monkeypatch.setattr(info, "process_start", lambda: None)
    state: dict[str, object] = {}
    info.setup(FakeBot(state))
    clock.advance(3 * 3600 + 5 * 60)
    info.setup(FakeBot(state))  # a reload: same pid, the start stays
    assert run(info, "uptime", "", FakeContext(state=state)) == ["up 3h 5m"]
    state["pid"] = -1  # as if written by an earlier process
    info.setup(FakeBot(state))
    assert run(info, "uptime", "", FakeContext(state=state)) == ["up 0s"]


# -- through the bot (bot.testing) -----------------------------------------------------


def test_uptime_and_version_through_the_bot(load_command: LoadCommand) -> None:
    bot = load_command(COMMANDS / "info.py")
    started = bot.state["started"]
    assert bot.state["pid"] == os.getpid()
    assert re.fullmatch(r"up \d+[dhms]( \d+[hms])?", bot.say("!uptime")[0])
    assert bot.say("!version")[0].startswith("reloadbot ")
    for _ in range(3):
        bot.reload(force=True)
    assert bot.state["started"] == started
    assert bot.say("!uptime")[0].startswith("up ")
