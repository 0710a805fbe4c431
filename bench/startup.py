"""Start -> JOIN and idle RSS only, ours and the peers alternating start by start.

    python bench/startup.py [--starts 9] [--only ours --only limnoria] [--settle 2]

The same figures as ``bench/run.py`` ("start -> JOIN seen", "idle RSS after
start"), measured the same way (``run.BotProcess``), but with starts of the bots
interleaved so a change in the machine's load hits every bot alike, and without
the minutes of the other figures: the loop for working on start-up cost.
"""

from __future__ import annotations

import argparse
import shutil
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=9, help="counted starts per bot")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before RSS")
    parser.add_argument("--only", action="append", choices=sorted(peers.KINDS))
    parser.add_argument("--venvs", type=Path, default=peers.DEFAULT_VENVS)
    parser.add_argument("--our-python", help="python for our bot (default: a Debian-python venv)")
    args = parser.parse_args(argv)
    src = peers.snapshot(Path(tempfile.mkdtemp(prefix="bench-src-")))
    try:
        kinds = run.prepare(
            argparse.Namespace(
                only=args.only or ["ours", "limnoria"],
                venvs=args.venvs,
                our_python=args.our_python,
                quick=False,
            ),
            src,
        )
        joins: dict[str, list[float]] = {n: [] for n in kinds}
        rss: dict[str, list[float]] = {n: [] for n in kinds}
        with Ngircd() as server:
            observer = driver.User(server.host, server.port, "observer").connect()
            observer.join(peers.CHANNEL)
            try:
                for i in range(args.starts + 1):  # start 0 only warms the caches
                    for name, kind in kinds.items():
                        bot = run.BotProcess(kind, server)
                        try:
                            join = bot.start(observer)
                            time.sleep(args.settle)  # idle time before RSS, as run.py
                            if i:
                                joins[name].append(join * 1000)
                                rss[name].append(bot.rss_mb())
                        finally:
                            bot.cleanup()
            finally:
                observer.close()
    finally:
        shutil.rmtree(src, ignore_errors=True)
    print(f"{args.starts} starts each, interleaved; medians (min-max)")
    for name in kinds:
        j, r = joins[name], rss[name]
        print(
            f"  {name:9} start -> JOIN {driver.median(j):6.1f} ms ({min(j):.0f}-{max(j):.0f})"
            f"   idle RSS {driver.median(r):5.1f} MB ({min(r):.1f}-{max(r):.1f})"
        )
    if "ours" in kinds:
        for name in kinds:
            if name != "ours":
                print(
                    f"  ours / {name}: start -> JOIN "
                    f"{driver.median(joins['ours']) / driver.median(joins[name]):.2f} x, "
                    f"idle RSS {driver.median(rss['ours']) / driver.median(rss[name]):.2f} x"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
