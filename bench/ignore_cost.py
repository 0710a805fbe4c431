"""In process: what the ignore check costs a message (the issue's budget: 20 us).

    python bench/ignore_cost.py [--entries 50] [--runs 100000]

An ignore list of N masks and N accounts (none matching), then ``Ignores.match``
for a user who is not ignored (the every-message case) and for one who is.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from bot.ignores import Ignores  # noqa: E402
from bot.message import Source  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    state: dict[str, object] = {}
    ignores = Ignores(lambda: state)  # type: ignore[arg-type,return-value]
    for n in range(args.entries):
        ignores.add(f"spam{n}!*@*.example{n}", 3600.0, "", "bench")
        ignores.add(f"account:troll{n}", None, "", "bench")
    ignores.add("pest!*@*", None, "", "bench")
    someone = Source("alice", "alice", "host.example", account="alice")
    pest = Source("pest", "p", "elsewhere.example")
    for label, source in (("not ignored", someone), ("ignored", pest)):
        start = time.perf_counter()
        for _ in range(args.runs):
            ignores.match(source)
        each = (time.perf_counter() - start) / args.runs * 1e6
        print(f"match, {label:12s} {args.entries} masks + {args.entries} accounts: {each:.2f} us")


if __name__ == "__main__":
    main()
