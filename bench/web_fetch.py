"""In process: what ``ctx.fetch`` (bot/web.py) adds to a local fetch over bare urllib3.

    python bench/web_fetch.py [--runs 300] [--repeat 7] [--size 16384]

One loopback HTTP server (the tests' ``tests/webserver.py``, Nagle off) serves
one HTML page of ``--size`` bytes. Rounds alternate, side by side:

* **bare**: ``urllib3.PoolManager().request("GET", url).data.decode()``: keep-alive, body read
  whole, no checks;
* **fetch**: ``Web.fetch(url)`` with the cache off and the per-host limits out of
  the way (the address check, the deadline thread, the size-capped ``read1``
  loop, the charset detection all run), keep-alive through its own pools;
* **fetch, cached**: the same with the cache on (every call after the first is a hit).

Each call asks for a different query string, so no HTTP cache anywhere serves
it. Reported: microseconds per fetch (median of ``--repeat`` rounds of
``--runs`` calls) and fetch/bare, the ratio that is comparable across machines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import urllib3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from webserver import WebServer  # noqa: E402

from bot.web import HttpConfig, Web  # noqa: E402


def per_call(runs: int, call: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for i in range(runs):
        call(i)
    return (time.perf_counter() - started) / runs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--size", type=int, default=16384)
    args = parser.parse_args()

    server = WebServer()
    page = "<html><head><title>bench</title></head><body>" + "x" * args.size + "</body></html>"
    url = server.route("/page", page)
    quick = dict(allow_private=("127.0.0.1",), per_host_per_minute=10**9, per_host_concurrent=4)
    uncached = Web(HttpConfig(cache_ttl=0, **quick))  # type: ignore[arg-type]
    cached = Web(HttpConfig(cache_ttl=3600, **quick))  # type: ignore[arg-type]
    bare = urllib3.PoolManager()

    cases: dict[str, Callable[[int], object]] = {
        "bare urllib3": lambda i: bare.request("GET", url, fields={"i": str(i)}).data.decode(),
        "ctx.fetch": lambda i: uncached.fetch(url, params={"i": str(i)}).text,
        "ctx.fetch, cached": lambda i: cached.fetch(url).text,
    }
    for call in cases.values():  # warm pools and imports
        per_call(20, call)
    rounds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, call in cases.items():
            rounds[name].append(per_call(args.runs, call))
    base = statistics.median(rounds["bare urllib3"])
    print(f"{args.runs} fetches x {args.repeat} rounds of a {len(page)}-byte page on loopback")
    for name, figures in rounds.items():
        median = statistics.median(figures)
        print(
            f"  {name:18} {median:8.1f} us/fetch  (spread {min(figures):.1f}-{max(figures):.1f})"
            f"  x{median / base:.2f} of bare"
        )
    server.close()


if __name__ == "__main__":
    main()
