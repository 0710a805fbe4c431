"""Module state over real IRC: it survives reloads, restarts and SIGKILL (issue 5)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from bot.app import App
from bot.config import load_config

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]

COUNTER = '''
"""Counts, in persistent state."""
from bot.api import command


@command
def count(ctx, args):
    """count -- add one to the counter and say it"""
    with ctx.state.transaction() as state:
        state["n"] = state.get("n", 0) + 1
        n = state["n"]
    return f"count {n} {VERSION}"

VERSION = "v0"
'''


def restart(bot, running_bot_cls):
    """Stop ``bot`` and run a new App on the same files (same state_db)."""
    bot.stop()
    app = App(load_config(bot.config_path), namespace=f"cmds_{uuid.uuid4().hex[:8]}")
    fresh = running_bot_cls(**{k: v for k, v in vars(bot).items() if k not in ("app", "thread")})
    fresh.app, fresh.crashed = app, []
    fresh.thread = threading.Thread(target=app.run, daemon=True)
    fresh.thread.start()
    fresh.wait_joined()
    return fresh


def test_state_survives_fifty_reloads_and_a_restart(running_bot, irc_client) -> None:
    bot = running_bot({"count.py": COUNTER})
    user = irc_client("boss")
    user.join(bot.channel)
    assert bot.ask(user, "!count") == "count 1 v0"
    for i in range(1, 51):
        bot.write("count.py", COUNTER.replace('"v0"', f'"v{i}"'))
        assert bot.ask(user, "!reload count", "^reload:").startswith("reload: reloaded: count")
    assert bot.ask(user, "!count") == "count 2 v50"

    from conftest import RunningBot

    bot = restart(bot, RunningBot)
    assert bot.ask(user, "!count") == "count 3 v50"
    bot.stop()


def test_a_reminder_fires_exactly_once_after_a_reload_in_between(running_bot, irc_client) -> None:
    remind = (REPO / "commands" / "remind.py").read_text()
    common = (REPO / "commands" / "_common.py").read_text()
    bot = running_bot({"remind.py": remind, "_common.py": common, "echo.py": ECHO})
    user = irc_client("boss")
    user.join(bot.channel)
    assert bot.ask(user, "!remind 2s tea").startswith("ok, I'll remind you")
    for _ in range(3):
        assert bot.ask(user, "!reload --force", "^reload:").startswith("reload: reloaded:")
    mark = user.mark()
    bot.wait_reply(user, mark, "reminder: tea", timeout=10)
    # A duplicate timer would be due at the same moment: by the time a later command is
    # answered, it would have fired too.
    assert bot.ask(user, "!echo marker") == "marker"
    reminders = [text for text in bot.replies(user, mark) if "reminder: tea" in text]
    assert len(reminders) == 1, reminders


ECHO = '''
from bot.api import command


@command
def echo(ctx, args):
    """echo TEXT -- say it back"""
    return args
'''


def test_sigkill_during_writes_loses_no_acknowledged_write(bot_files, irc_client) -> None:
    """Kill a real bot process mid-stream, many times: every count it answered is kept."""
    files = bot_files({"count.py": COUNTER})
    db = Path(files.raw["state_db"])
    user = irc_client("boss")
    user.join(files.channel)
    acknowledged = 0
    rng = random.Random(1)
    for _round in range(4):
        proc = _start_bot(files)
        try:
            user.wait_for(rf"^:{files.nick}!\S+ JOIN :?{files.channel}$", timeout=20)
            target = acknowledged + rng.randint(3, 30)
            mark = user.mark()
            for _ in range(target - acknowledged + 40):  # more than it will answer
                user.privmsg(files.channel, "!count")
            while acknowledged < target:
                line = user.wait_for(rf"PRIVMSG {files.channel} :count \d+", since=mark)
                mark = user.lines.index(line) + 1
                # Workers run in parallel, so answers may come slightly out of order.
                acknowledged = max(acknowledged, int(line.rsplit(":count ", 1)[1].split()[0]))
            proc.send_signal(signal.SIGKILL)  # while it is still busy writing the rest
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # Answers may have been cut off after a write, so the stored count can be ahead.
        assert _stored_count(db) >= acknowledged
        acknowledged = _stored_count(db)

    proc = _start_bot(files)
    try:
        user.wait_for(rf"^:{files.nick}!\S+ JOIN :?{files.channel}$", timeout=20)
        mark = user.mark()
        user.privmsg(files.channel, "!count")
        line = user.wait_for(rf"PRIVMSG {files.channel} :count \d+", since=mark)
        assert f":count {acknowledged + 1} " in line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def _start_bot(files) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(files.config_path.parent / "bot.log", "ab") as log:  # the child keeps its copy
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(files.config_path)],
            env=env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )


def _stored_count(db: Path) -> int:
    import json

    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT value FROM kv WHERE module = 'count' AND key = 'n'").fetchone()
    return json.loads(row[0]) if row else 0
