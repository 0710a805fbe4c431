"""One group of figures only, the bots taking turns: the loop for working on a figure.

    python bench/focus.py start  [--rounds 9] [--only ours --only limnoria]
    python bench/focus.py reload [--rounds 3] [--only ours --only sopel]

``start``: start -> JOIN seen and idle RSS (default bots: ours and Limnoria, the
targets' base). ``reload``: ``!reload NAME`` p50 and the command round trip p50
(default: ours and Sopel). Each is measured exactly as ``bench/run.py`` measures
it (``run.BotProcess``, ``run.admin_command``, ``driver.round_trips``), but the
bots take turns round by round, so a change in the machine's load hits each bot
alike, and nothing else is measured: seconds to a minute instead of minutes.
"""

from __future__ import annotations

import argparse
import shutil
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

# figure group -> default bots, default rounds
GROUPS = {"start": (["ours", "limnoria"], 9), "reload": (["ours", "sopel"], 3)}


# What our start cannot do without: the interpreter and `import irc.client` (with the
# start-up deferral of bot.deferred), timed from process start to exit.
IRC_IMPORT = "from bot.deferred import deferring\nwith deferring():\n    import irc.client\n"


def start_round(kind: peers.BotKind, server: Ngircd, observer: driver.User, args) -> dict:
    bot = run.BotProcess(kind, server)
    try:
        join = bot.start(observer)
        time.sleep(args.settle)  # idle time before RSS, as run.py
        got = {"start -> JOIN (ms)": [join * 1000], "idle RSS (MB)": [bot.rss_mb()]}
        if kind.name == "ours":
            launch = bot.launch
            t0 = time.monotonic()
            subprocess.run(
                [launch.argv[0], "-c", IRC_IMPORT], env=launch.env, cwd=launch.cwd, check=True
            )
            got["python + import irc.client (ms)"] = [(time.monotonic() - t0) * 1000]
        return got
    finally:
        bot.cleanup()


def reload_round(kind: peers.BotKind, server: Ngircd, observer: driver.User, args) -> dict:
    bot = run.BotProcess(kind, server)
    users: list[driver.User] = []
    try:
        bot.start(observer)
        written = run.write_helper_module(kind, bot) if kind.helper_module else 0.0
        users = driver.connect_all(server.host, server.port, ["user", peers.ADMIN])
        user, admin = users
        tokens = driver.Tokens(f"{kind.name[0]}x")
        driver.round_trips(user, kind.nick, kind.command, tokens, 20)  # warm-up
        times, _ = driver.round_trips(user, kind.nick, kind.command, tokens, args.rtt)
        run.admin_command(admin, kind, kind.reload_one)  # warm-up
        reloads = [run.admin_command(admin, kind, kind.reload_one)[0] for _ in range(args.reloads)]
        got = {
            "!reload NAME (ms)": [t * 1000 for t in reloads],
            "round trip (ms)": [t * 1000 for t in times],
        }
        if kind.helper_module:
            helper = run.reload_helper_module(kind, admin, written, args.reloads)
            got["!reload NAME, with helper (ms)"] = [t * 1000 for t in helper]
        return got
    finally:
        for u in users:
            u.close()
        bot.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("group", choices=sorted(GROUPS))
    parser.add_argument("--rounds", type=int, help="default: 9 for start, 3 for reload")
    parser.add_argument("--only", action="append", choices=sorted(peers.KINDS))
    parser.add_argument("--settle", type=float, default=2.0, help="start: idle s before RSS")
    parser.add_argument("--reloads", type=int, default=60, help="reload: per bot per round")
    parser.add_argument("--rtt", type=int, default=200, help="reload: round trips per round")
    parser.add_argument("--venvs", type=Path, default=peers.DEFAULT_VENVS)
    parser.add_argument("--our-python", help="python for our bot (default: a Debian-python venv)")
    args = parser.parse_args(argv)
    bots, rounds = GROUPS[args.group]
    rounds = args.rounds or rounds
    measure = start_round if args.group == "start" else reload_round
    src = peers.snapshot(Path(tempfile.mkdtemp(prefix="bench-src-")))
    try:
        options = argparse.Namespace(
            only=args.only or bots, venvs=args.venvs, our_python=args.our_python, quick=False
        )
        kinds = run.prepare(options, src)
        figures: dict[str, dict[str, list[float]]] = {n: {} for n in kinds}
        with Ngircd() as server:
            observer = driver.User(server.host, server.port, "observer").connect()
            observer.join(peers.CHANNEL)
            try:
                for i in range(rounds + (args.group == "start")):  # start: one warm-up
                    for name, kind in kinds.items():
                        got = measure(kind, server, observer, args)
                        if args.group == "start" and i == 0:
                            continue  # the first start only warms the caches
                        for key, values in got.items():
                            figures[name].setdefault(key, []).extend(values)
            finally:
                observer.close()
    finally:
        shutil.rmtree(src, ignore_errors=True)
    print(f"{args.group}: {rounds} rounds, bots in turn; medians over all rounds")
    for name, values in figures.items():
        cells = [f"{key} {driver.median(v):7.2f}" for key, v in values.items()]
        print(f"  {name:9} " + "   ".join(cells))
    if "ours" in figures:
        for name in figures:
            if name != "ours":
                ratios = [
                    f"{key} {driver.median(v) / driver.median(figures[name][key]):.2f} x"
                    for key, v in figures["ours"].items()
                    if key in figures[name]
                ]
                if args.group == "start":
                    floor = driver.median(figures["ours"]["python + import irc.client (ms)"])
                    join = driver.median(figures[name]["start -> JOIN (ms)"])
                    ratios.append(f"python + import irc.client alone {floor / join:.2f} x")
                print(f"  ours / {name}: " + ", ".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
