"""``!reload NAME`` and the command round trip only, ours and Sopel side by side.

    python bench/reload_live.py [--rounds 3] [--reloads 60] [--only ours --only sopel]

The same figures as ``bench/run.py`` ("!reload NAME p50", "round trip p50"),
measured the same way (``run.BotProcess``, ``run.admin_command``,
``driver.round_trips``), with the bots taking turns round by round so a change in
the machine's load hits each alike: the loop for working on the reload path.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import driver  # noqa: E402
import peers  # noqa: E402
import run  # noqa: E402

from bot.ircd import Ngircd  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reloads", type=int, default=60, help="per bot per round")
    parser.add_argument("--rtt", type=int, default=200, help="round trips per bot per round")
    parser.add_argument("--only", action="append", choices=sorted(peers.KINDS))
    parser.add_argument("--venvs", type=Path, default=peers.DEFAULT_VENVS)
    parser.add_argument("--our-python", help="python for our bot (default: a Debian-python venv)")
    args = parser.parse_args(argv)
    src = peers.snapshot(Path(tempfile.mkdtemp(prefix="bench-src-")))
    try:
        kinds = run.prepare(
            argparse.Namespace(
                only=args.only or ["ours", "sopel"],
                venvs=args.venvs,
                our_python=args.our_python,
                quick=False,
            ),
            src,
        )
        reloads: dict[str, list[float]] = {n: [] for n in kinds}
        rtts: dict[str, list[float]] = {n: [] for n in kinds}
        with Ngircd() as server:
            observer = driver.User(server.host, server.port, "observer").connect()
            observer.join(peers.CHANNEL)
            try:
                for _ in range(args.rounds):
                    for name, kind in kinds.items():
                        bot = run.BotProcess(kind, server)
                        users = []
                        try:
                            bot.start(observer)
                            users = driver.connect_all(
                                server.host, server.port, ["user", peers.ADMIN]
                            )
                            user, admin = users
                            tokens = driver.Tokens(f"{name[0]}x")
                            driver.round_trips(user, kind.nick, kind.command, tokens, 20)
                            times, _ = driver.round_trips(
                                user, kind.nick, kind.command, tokens, args.rtt
                            )
                            rtts[name] += times
                            run.admin_command(admin, kind, kind.reload_one)  # warm-up
                            for _ in range(args.reloads):
                                reloads[name].append(
                                    run.admin_command(admin, kind, kind.reload_one)[0]
                                )
                        finally:
                            for u in users:
                                u.close()
                            bot.cleanup()
            finally:
                observer.close()
    finally:
        shutil.rmtree(src, ignore_errors=True)
    print(f"{args.rounds} rounds, bots in turn; p50 over all rounds")
    for name in kinds:
        print(
            f"  {name:9} !reload NAME p50 {driver.median(reloads[name]) * 1000:5.2f} ms"
            f"   round trip p50 {driver.percentile(rtts[name], 50) * 1000:5.2f} ms"
        )
    if "ours" in kinds:
        for name in kinds:
            if name != "ours":
                r = driver.median(reloads["ours"]) / driver.median(reloads[name])
                t = driver.percentile(rtts["ours"], 50) / driver.percentile(rtts[name], 50)
                print(f"  ours / {name}: !reload NAME {r:.2f} x, round trip {t:.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
