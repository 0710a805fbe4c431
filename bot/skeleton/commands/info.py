"""Info about the bot itself: uptime and version."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

from bot.api import Bot, Context, command

from ._common import format_duration, now

FALLBACK_VERSION = "unknown version"


def process_start(proc: Path = Path("/proc")) -> float | None:
    """When this process started (epoch seconds), from /proc on Linux; None elsewhere."""
    try:
        stat = (proc / "self" / "stat").read_text()
        # Field 2 (the command) may contain spaces and parentheses: split after the last ')'.
        # The fields after it start at field 3, so starttime (field 22) is index 19.
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1])
            for line in (proc / "stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def setup(bot: Bot) -> None:
    # Module globals die with a reload, so the start time lives in state, keyed by the
    # pid: a reload keeps it, a restart (new pid) records a new one.
    pid = os.getpid()
    if bot.state.get("pid") != pid:
        bot.state.update(pid=pid, started=process_start() or now())


@command
def uptime(ctx: Context, args: str) -> str:
    """uptime -- how long the bot has been running"""
    started = ctx.state.get("started") if ctx.state.get("pid") == os.getpid() else None
    if started is None:
        started = process_start() or now()
    return f"up {format_duration(max(0.0, now() - started))}"


def bot_version() -> str:
    try:
        return importlib.metadata.version("reloadbot")
    except importlib.metadata.PackageNotFoundError:
        return FALLBACK_VERSION


@command
def version(ctx: Context, args: str) -> str:
    """version -- which reloadbot (and Python) this is"""
    return f"reloadbot {bot_version()} (Python {platform.python_version()})"
