"""RSS of the running bot over N ``!reload a`` through IRC, ``a`` importing a helper.

    python bench/reload_rss.py [--reloads 10000] [--every 1000] [--interleave]
                               [--timeout SECONDS] [--json PATH]

Starts a throwaway ngIRCd and ``python -m bot`` on a folder holding ``a.py``
(``from . import _helper``) and ``_helper.py``; an admin sends ``!reload a``
in private and waits for each answer (with ``--interleave``, also one ``!aping``
command after each reload). VmRSS of the bot process is read every ``every``
reloads. Growth is counted from reload 100, as the target says ("at most
1 MB after the first 100"). ``--timeout`` sets ``command_timeout``: a per-call
holder that lives that long shows as a plateau at rate x timeout.
"""

from __future__ import annotations

import argparse
import json
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

from bot.ircd import Ngircd  # noqa: E402

A_PY = '''\
"""module a: imports a helper"""
from bot.api import command

from . import _helper


@command
def aping(ctx, args):
    """aping TOKEN -- pong TOKEN"""
    return "pong " + _helper.echo(args)
'''

HELPER_PY = "def echo(text):\n    return text\n"

NICK = "RssBot"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def config(server: Ngircd, timeout: float | None) -> str:
    text = (
        f"server: {{host: {server.host}, port: {server.port}}}\n"
        f"nick: {NICK}\n"
        'channels: ["#rss"]\n'
        'prefix: "!"\n'
        'admins: ["boss*!*@127.0.0.1"]\n'
        "commands_dir: commands\n"
        "state_db: null\n"
        "log_level: WARNING\n"
        "rate_limit: {burst: 10000, per_second: 100000}\n"
        "command_rate: {per_user: 100000, per_channel: 100000, window: 1}\n"
    )
    return text + (f"command_timeout: {timeout}\n" if timeout is not None else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reloads", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--interleave", action="store_true", help="a command after each reload")
    parser.add_argument("--timeout", type=float, default=None, help="command_timeout")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="rss-bot-"))
    (home / "commands").mkdir()
    (home / "commands" / "a.py").write_text(A_PY)
    (home / "commands" / "_helper.py").write_text(HELPER_PY)
    with Ngircd() as server:
        (home / "config.yaml").write_text(config(server, args.timeout))
        boss = driver.User(server.host, server.port, "boss").connect()
        boss.join("#rss")
        mark = boss.mark()
        with (home / "bot.out").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "--config", str(home / "config.yaml")],
                cwd=str(HERE.parent),
                env=dict(os.environ, PYTHONPATH=str(HERE.parent)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            nick = NICK.lower()
            joined = boss.wait(lambda r: r.command == "JOIN" and r.source.lower() == nick, 60, mark)
            if joined is None:
                raise RuntimeError("the bot did not join:\n" + (home / "bot.out").read_text())

            def answer(r: driver.Received) -> bool:
                return r.source.lower() == nick and not driver.TOKEN.search(r.text)

            tokens = driver.Tokens("t")
            curve: list[tuple[int, int]] = [(0, rss_kb(proc.pid))]
            lost = 0
            started = time.monotonic()
            for i in range(1, args.reloads + 1):
                since = boss.mark()
                boss.privmsg(NICK, "!reload a")
                lost += boss.wait(answer, 30, since=since) is None
                if args.interleave:
                    token = tokens.next()
                    boss.privmsg(NICK, f"!aping {token}")
                    lost += boss.wait_token(token, 30) is None
                if i % 100 == 0:  # the driver keeps every line: keep the harness small
                    with boss._cond:
                        boss.lines.clear()
                        boss.tokens.clear()
                if i % args.every == 0 or i == 100:
                    curve.append((i, rss_kb(proc.pid)))
                    print(
                        f"{i:6d} reloads  RSS {curve[-1][1] / 1024:7.2f} MB"
                        f"  ({time.monotonic() - started:5.1f} s, lost {lost})",
                        flush=True,
                    )
            base = dict(curve)[100] if args.reloads >= 100 else curve[0][1]
            print(f"growth after reload 100: {(curve[-1][1] - base) / 1024:.2f} MB, lost {lost}")
            if args.json:
                args.json.write_text(json.dumps({"curve": curve, "lost": lost}))
            boss.close()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
