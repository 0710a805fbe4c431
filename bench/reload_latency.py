"""In process: `!reload NAME` said to the dispatcher -> its reply in the outbox, p50.

    python bench/reload_latency.py [--runs 3000]

An App with no network, holding a plain module (`benchmod`), a module that
imports a helper of its own (`benchhelp`), and a command for scale. Unlike
`bench/reload_cost.py` it includes the built-ins' thread hand-off and the reply.
The CPU follower the running bot turns on after start-up (bot/runner.py) is on
here too. The App's timers (the collection after a reload) run every 50 rounds,
about as often as the bot's loop runs them under back-to-back reloads.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from bot.app import App  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.message import Message, Source  # noqa: E402

RACY_NS = 2_000_000_000  # bot/folder.py: files younger than this are read every time

HELPER = 'def pong(text):\n    return "pong " + text\n'
WITH_HELPER = '''from bot.api import Context, command
from . import _benchhelper


@command
def bhelp(ctx: Context, args: str) -> str:
    """bhelp TOKEN -- answer pong TOKEN"""
    return _benchhelper.pong(args)
'''
PLAIN = '''from bot.api import Context, command


@command
def bping(ctx: Context, args: str) -> str:
    """bping TOKEN -- answer pong TOKEN"""
    return "pong " + args
'''
CONFIG = """
server: {host: 127.0.0.1}
nick: bench
channels: ["#bench"]
prefix: "!"
admins: ["admin!*@127.0.0.1"]
commands_dir: commands
state_db: null
rate_limit: {burst: 10000, per_second: 100000}
"""


class Transport:
    """No network: ``wake`` (a reply is queued) sets an event; timers wait in a list."""

    def __init__(self, config, outbox, on_message, on_event) -> None:  # type: ignore[no-untyped-def]
        self.nick = config.nick
        self.replied = threading.Event()
        self.timers: list[Callable[[], None]] = []

    def run(self) -> None: ...
    def stop(self, message: str = "") -> None: ...
    def wake(self) -> None:
        self.replied.set()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.timers.append(fn)

    def set_channels(self, channels: object) -> None: ...
    def change_nick(self, nicks: object) -> None: ...
    def reconnect(self, reason: str = "") -> None: ...
    def update_settings(self, settings: object) -> None: ...
    def source_length(self) -> int:
        return 80


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000)
    runs = parser.parse_args().runs
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115
    times: dict[str, list[float]] = {
        "!reload benchmod": [],
        "!reload benchhelp": [],
        "!bping x": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "commands"
        folder.mkdir()
        (folder / "_benchhelper.py").write_text(HELPER)
        (folder / "benchhelp.py").write_text(WITH_HELPER)
        (folder / "benchmod.py").write_text(PLAIN)
        time.sleep(RACY_NS / 1e9 + 0.1)  # deployed files are older than the racy window
        app = App(parse_config(CONFIG, base_dir=Path(tmp)), transport=Transport)
        gc.freeze()
        app.load_all()
        if hasattr(app, "reloader"):  # absent before the reloader of issue 11
            from bot.runner import CpuFollower

            app.reloader.runner.cpu_follower = CpuFollower.make()
        transport = app.connection
        assert isinstance(transport, Transport)
        admin = Source("admin", "u", "127.0.0.1")
        for i in range(runs):
            for text, taken in times.items():
                transport.replied.clear()
                start = time.perf_counter()
                app.dispatcher.handle(Message(admin, "#bench", text, False))
                transport.replied.wait(5)
                taken.append(time.perf_counter() - start)
                app.outbox.take()
            if i % 50 == 0:
                due, transport.timers = transport.timers, []
                for fn in due:
                    fn()
        app.close()
    for text, taken in times.items():
        taken.sort()
        print(f"{text:20s} p50 {taken[len(taken) // 2] * 1000:.3f} ms")


if __name__ == "__main__":
    main()
