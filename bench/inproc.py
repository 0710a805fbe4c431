"""In-process reload leak check: N x ``App.reload(["benchmod"])``, RSS and live generations.

    PYTHONPATH=. python bench/inproc.py --reloads 10000

Builds an App (never connected) on a temporary commands folder holding the
benchmark module, reloads that module N times after a warm-up (2,000 reloads: long
enough for the garbage between two of the App's post-reload collections to reach
its steady size), and prints one
JSON line: RSS growth over the N reloads (MB, after a final ``gc.collect()``),
how many *old* module generations are still alive (tracked with a WeakSet, so
the tracking itself holds none and stays small), and the mean time per reload.
Like ``python -m bot`` it calls ``gc.freeze()`` after building the App and
before loading modules (``--no-freeze``: as the bot did before 44bdc12).
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import sys
import tempfile
import time
import weakref
from pathlib import Path

HERE = Path(__file__).resolve().parent
if "--src" in sys.argv:  # the run's snapshot of bot/, not the live work tree
    sys.path.insert(0, sys.argv[sys.argv.index("--src") + 1])
else:
    sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE))

import peers  # noqa: E402

from bot.app import App  # noqa: E402
from bot.config import parse_config  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class LocalTransport:
    """The App's transport without a network; its timers run when ``run_due()`` is called.

    The bot's reactor runs the App's timers between lines; this runs them between
    reloads, so the collection the App schedules after a reload happens here too.
    """

    def __init__(self, config, outbox, on_message, on_event) -> None:
        self.nick = config.nick
        self.timers: list[tuple[float, int, object]] = []

    def call_later(self, delay, fn) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, id(fn), fn))

    def run_due(self) -> None:
        while self.timers and self.timers[0][0] <= time.monotonic():
            heapq.heappop(self.timers)[2]()

    def run(self) -> None: ...
    def stop(self, message: str = "") -> None: ...
    def wake(self) -> None: ...
    def set_channels(self, channels) -> None: ...
    def change_nick(self, nicks) -> None: ...
    def reconnect(self, reason: str = "") -> None: ...
    def update_settings(self, settings) -> None: ...

    def source_length(self) -> int:
        return 83


def local_app(config) -> tuple[App, LocalTransport]:
    """An App on a LocalTransport, and that transport (to run its timers)."""
    made: list[LocalTransport] = []

    def transport(*args) -> LocalTransport:
        made.append(LocalTransport(*args))
        return made[-1]

    app = App(config, transport=transport)
    return app, made[0]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reloads", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--src", help="folder holding the bot/ package to measure")
    parser.add_argument("--no-freeze", action="store_true", help="skip gc.freeze() (as before)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-inproc-"))
    (home / "commands").mkdir()
    (home / "commands" / "benchmod.py").write_text(peers._OURS_MODULE)
    config = parse_config(
        "server: {host: 127.0.0.1, port: 6667}\n"
        "nick: LeakBot\n"
        "channels: []\n"
        'prefix: "!"\n'
        "admins: []\n"
        "commands_dir: commands\n"
        "state_db: null\n",
        base_dir=home,
    )
    app, network = local_app(config)
    if hasattr(gc, "freeze") and "--no-freeze" not in sys.argv:
        # as bot.cli.run does since 44bdc12: start-up objects out of the collector's
        # reach; command modules load after this, so old versions stay collectable
        gc.freeze()
    report = app.load_all()
    if not report.ok:
        raise SystemExit(f"load failed: {report.summary()}")
    generations: weakref.WeakSet[object] = weakref.WeakSet()

    def reload_once() -> None:
        rep = app.reload(["benchmod"])
        if not rep.ok:
            raise SystemExit(f"reload failed: {rep.summary()}")
        generations.add(app.registry.modules["benchmod"].module)
        network.run_due()

    for _ in range(args.warmup):
        reload_once()
    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    for _ in range(args.reloads):
        reload_once()
    elapsed = time.perf_counter() - t0
    gc.collect()
    after = rss_mb()
    alive = len(generations) - 1  # the current generation is alive, of course
    app.close()
    print(
        json.dumps(
            {
                "leak_rss_before_mb": before,
                "leak_rss_growth_mb": after - before,
                "leak_alive": alive,
                "leak_reload_ms": elapsed / args.reloads * 1000,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
