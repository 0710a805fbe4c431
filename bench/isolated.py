"""Isolated modules: the figures of issue 12, our in-process command side by side.

    python bench/isolated.py [--quick] [--no-sopel]

One ngIRCd; our bot (``python -m bot``) with two copies of the bench command:
``plain.py`` (``!bping``, in process) and ``iso.py`` (``!bisoping``, in a worker
process: ``isolate: ["iso"]``); then Sopel with its in-process ``!bping`` for
the burst comparison. Figures:

* round trip p50/p99 of each, interleaved (500 each, 50 with ``--quick``);
* burst: 10 users x 100 ``!bisoping`` at once: replies/s and lost (Sopel: ``!bping``);
* ``!reload iso`` (a fresh worker each time), p50 of 30;
* USS (unshared memory: Private_Clean + Private_Dirty) of the idle worker;
* during 10 s of ``!spin`` holding its worker's GIL in C (a backtracking regex),
  the round trip of ``!bping`` every 50 ms (p99): the loop that answers it is the
  one that answers the server's PINGs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import driver  # noqa: E402
import peers  # noqa: E402
import run  # noqa: E402

from bot.ircd import Ngircd  # noqa: E402

NICK = "IsoBot"
PLAIN = '''\
from bot.api import command


@command
def bping(ctx, args):
    """bping TOKEN -- answer pong TOKEN"""
    return "pong " + args
'''
ISOLATED = '''\
import re

from bot.api import command


@command
def bisoping(ctx, args):
    """bisoping TOKEN -- answer pong TOKEN, from a worker process"""
    return "pong " + args


@command
def spin(ctx, args):
    """spin -- holds this worker's GIL in C code for seconds"""
    return str(re.match(r"(a+)+$", "a" * 29 + "b"))  # ~16 s here
'''


def config(server: Ngircd) -> str:
    return (
        f"server: {{host: {server.host}, port: {server.port}}}\n"
        f"nick: {NICK}\n"
        'channels: ["#iso"]\n'
        'prefix: "!"\n'
        f'admins: ["{peers.ADMIN}!*@127.0.0.1"]\n'
        "commands_dir: commands\n"
        "state_db: null\n"
        "log_level: WARNING\n"
        'isolate: ["iso"]\n'
        "command_timeout: 60\n"
        "rate_limit: {burst: 10000, per_second: 100000}\n"
        "command_rate: {per_user: 100000, per_channel: 100000, window: 1}\n"
    )


def uss_mb(pid: int) -> float:
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total / 1024


def worker_pids(bot_pid: int) -> list[int]:
    """The bot's worker processes: children of its forkserver, itself the bot's child."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    parents: dict[int, list[int]] = {}
    for line in out.split("\n"):
        if line.strip():
            pid, ppid = map(int, line.split())
            parents.setdefault(ppid, []).append(pid)
    return [w for server in parents.get(bot_pid, []) for w in parents.get(server, [])]


def ours(server: Ngircd, count: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="bench-iso-"))
    (home / "commands").mkdir()
    (home / "commands" / "plain.py").write_text(PLAIN)
    (home / "commands" / "iso.py").write_text(ISOLATED)
    (home / "config.yaml").write_text(config(server))
    time.sleep(2.1)  # deployed files are older than the loader's "racily clean" window
    observer = driver.User(server.host, server.port, "isoobserver").connect()
    observer.join("#iso")
    mark = observer.mark()
    with (home / "bot.out").open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(home / "config.yaml")],
            cwd=str(home),
            env=dict(os.environ, PYTHONPATH=str(HERE.parent)),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    got: dict[str, float] = {}
    try:
        nick = NICK.lower()
        if (
            observer.wait(lambda r: r.command == "JOIN" and r.source.lower() == nick, 60, mark)
            is None
        ):
            raise RuntimeError("our bot did not join:\n" + (home / "bot.out").read_text())
        users = driver.connect_all(server.host, server.port, [f"i{i}" for i in range(10)])
        (admin,) = driver.connect_all(server.host, server.port, [peers.ADMIN])
        tokens = driver.Tokens(f"i{int(time.time()) % 100000}x")
        one = users[0]
        driver.round_trips(one, NICK, lambda t: f"!bping {t}", tokens, 20)  # warm-up
        driver.round_trips(one, NICK, lambda t: f"!bisoping {t}", tokens, 20)
        plain, iso = [], []
        for _ in range(count):
            plain += driver.round_trips(one, NICK, lambda t: f"!bping {t}", tokens, 1)[0]
            iso += driver.round_trips(one, NICK, lambda t: f"!bisoping {t}", tokens, 1)[0]
        got["round trip p50, in process (ms)"] = driver.percentile(plain, 50) * 1000
        got["round trip p50, isolated (ms)"] = driver.percentile(iso, 50) * 1000
        got["round trip p99, in process (ms)"] = driver.percentile(plain, 99) * 1000
        got["round trip p99, isolated (ms)"] = driver.percentile(iso, 99) * 1000

        burst = driver.burst(users, NICK, lambda t: f"!bisoping {t}", tokens, 100)
        got["burst 10x100, isolated: replies/s"] = burst.rate
        got["burst 10x100, isolated: lost"] = burst.lost

        workers = worker_pids(proc.pid)
        got["USS of the idle worker (MB)"] = max(uss_mb(pid) for pid in workers)

        reloads = [run.admin_command(admin, peers_kind(), "!reload iso")[0] for _ in range(31)]
        got["!reload iso, fresh worker, p50 (ms)"] = driver.median(reloads[1:]) * 1000

        # a worker spinning in C: the bot itself keeps answering, PINGs included
        one.privmsg(NICK, "!spin")
        time.sleep(0.2)  # let the regex start
        during: list[float] = []
        spin_end = time.monotonic() + 10
        while time.monotonic() < spin_end:  # 10 s of it, a command every 50 ms
            during += driver.round_trips(users[1], NICK, lambda t: f"!bping {t}", tokens, 1)[0]
            time.sleep(0.05)
        got["!bping p99 during 10 s of a worker spinning in C (ms)"] = (
            driver.percentile(during, 99) * 1000
        )
        got["  commands answered during it"] = len(during)
        for u in [*users, admin]:
            u.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
        observer.close()
        shutil.rmtree(home, ignore_errors=True)
    return got


def peers_kind() -> peers.BotKind:
    """Our bot as the harness knows it (for admin_command's reply matching)."""
    kind = peers.Ours()
    kind.nick = NICK
    return kind


def sopel_burst(server: Ngircd) -> float:
    args = argparse.Namespace(
        only=["sopel"], venvs=peers.DEFAULT_VENVS, our_python=None, quick=False
    )
    src = peers.snapshot(Path(tempfile.mkdtemp(prefix="bench-src-")))
    kind = run.prepare(args, src)["sopel"]
    observer = driver.User(server.host, server.port, "sobserver").connect()
    observer.join(peers.CHANNEL)
    bot = run.BotProcess(kind, server)
    try:
        bot.start(observer)
        users = driver.connect_all(server.host, server.port, [f"s{i}" for i in range(10)])
        tokens = driver.Tokens(f"s{int(time.time()) % 100000}x")
        driver.round_trips(users[0], kind.nick, kind.command, tokens, 20)
        result = driver.burst(users, kind.nick, kind.command, tokens, 100)
        for u in users:
            u.close()
        return result.rate
    finally:
        bot.cleanup()
        observer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-sopel", action="store_true")
    args = parser.parse_args()
    with Ngircd() as server:
        figures = ours(server, 50 if args.quick else 500)
        if not args.no_sopel:
            figures["burst 10x100, Sopel in process: replies/s"] = sopel_burst(server)
    for name, value in figures.items():
        print(f"{name:45s} {value:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
