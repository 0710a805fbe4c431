"""In process: what the checks before a command cost (issue 13's budget: 20 us per command).

    python bench/policy_cost.py [--entries 50] [--members 300] [--runs 20000] [--repeat 7]
                                [--src DIR]

Builds the bot as ``python -m bot`` does, without a server: ``parse_config`` of a
config.yaml text, ``App(config)`` (its IRC connection is made, never connected),
``load_all()`` of a commands folder holding ``plain``, ``restricted`` and
``voiced`` (``require="voice"``), then ``gc.freeze()``. The config has
``--entries`` ignore masks and as many ignored accounts (none matching the
users below), five admin rules (three masks, two accounts), ``permissions:`` for
three commands (``restricted: [op, voice, a mask, account:helper1,
account:helper2]``), ``#bench`` with a ``disable:`` list, and command rates high
enough that no one is limited. The connection's channel state
(``bot.channels.Channels``) holds ``--members`` members in ``#bench``, fed as
NAMES with ``multi-prefix`` and ``userhost-in-names``.

Two figures per case, in microseconds per command (median of ``--repeat``
rounds of ``--runs`` calls, and the spread):

* **checks**: the ``Policy`` calls the dispatcher makes for a command, in its
  order (``is_admin``, ``ignored``, ``off``, ``within_rate``, ``modes_of``,
  ``permitted``, ``require=``, and the refusal gate ``refuse`` when refused);
* **handle**: ``Dispatcher.handle(message)`` itself, the job start replaced by a
  no-op: the same checks plus the prefix, the registry look-up and the worker
  queue check (``_room_for``); a refused command logs its WARNING (to
  ``/dev/null`` here, with the bot's log format).

Then each check alone for the first case.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
# --src DIR: the bot/ (and commands/) to measure, e.g. a snapshot of one commit
SRC = Path(sys.argv[sys.argv.index("--src") + 1]).resolve() if "--src" in sys.argv else HERE.parent
sys.path[:0] = [str(SRC)]

from bot.app import App  # noqa: E402
from bot.channels import at_least  # noqa: E402
from bot.cli import LOG_FORMAT  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.message import Message, Source  # noqa: E402

MODULE = '''\
"""Policy bench: an open command, one under permissions:, one needing voice."""

from bot.api import Context, command


@command
def plain(ctx: Context, args: str) -> str:
    """plain TEXT -- anyone"""
    return args


@command
def restricted(ctx: Context, args: str) -> str:
    """restricted TEXT -- under permissions:"""
    return args


@command(require="voice")
def voiced(ctx: Context, args: str) -> str:
    """voiced TEXT -- voice or more"""
    return args
'''

CHANNEL = "#bench"


def config_text(entries: int) -> str:
    ignore = [f"spam{n}!*@*.example{n}" for n in range(entries)]
    ignore += [f"account:troll{n}" for n in range(entries)]
    ignored = "".join(f'  - "{mask}"\n' for mask in ignore)
    return (
        "server: {host: 127.0.0.1, port: 6667}\n"
        "nick: PolicyBot\n"
        "channels:\n"
        f'  - {{name: "{CHANNEL}", disable: [dice, karma, quote, choose, calc]}}\n'
        '  - "#other"\n'
        'prefix: "!"\n'
        "admins:\n"
        '  - "boss!*@admin.example"\n'
        '  - "root*!*@*.ops.example"\n'
        '  - "*!*@staff.example"\n'
        '  - "account:chief"\n'
        '  - "account:deputy"\n'
        "commands_dir: commands\n"
        "state_db: null\n"
        "log_level: WARNING\n"
        "command_rate: {per_user: 100000, per_channel: 100000, window: 0.1}\n"
        "rate_limit: {burst: 10000, per_second: 100000}\n"
        "permissions:\n"
        "  restricted: [op, voice, '*!*@*.trusted.example', 'account:helper1',"
        " 'account:helper2']\n"
        "  topic: [op, halfop, 'account:helper1']\n"
        "  kick: [op]\n"
        f"ignore:\n{ignored}"
    )


def fill_channel(app: App, members: int) -> None:
    """NAMES for ``#bench`` as a server with multi-prefix and userhost-in-names sends it."""
    state = app.connection.members  # type: ignore[attr-defined]
    state.isupport(["PREFIX=(qaohv)~&@%+", "CASEMAPPING=rfc1459"])
    entries = ["~@founder!f@founder.example", "+Vera!vera@vera.example", "alice!al@host.example"]
    entries += ["helper2!h@h.example", "Chief!c@c.example"]
    for n in range(members - len(entries)):
        prefix = "@" if n % 30 == 0 else "+" if n % 10 == 0 else ""
        entries.append(f"{prefix}user{n}!~u{n}@{n}.dyn.isp.example")
    for start in range(0, len(entries), 12):  # ~12 user@host entries per 512-byte line
        state.names(CHANNEL, entries[start : start + 12])


def said(nick: str, user: str, host: str, text: str, account: str | None = None) -> Message:
    return Message(Source(nick, user, host, account), CHANNEL, text, is_private=False)


# (label, message, expected outcome of the checks: None = runs)
CASES = [
    ("plain user, open command", said("alice", "al", "host.example", "!plain hi", "alice"), None),
    (
        "plain user, permissions: granted by voice",
        said("Vera", "vera", "vera.example", "!restricted hi"),
        None,
    ),
    (
        "plain user, permissions: granted by account (5th grant)",
        said("helper2", "h", "h.example", "!restricted hi", "helper2"),
        None,
    ),
    (
        "plain user, permissions: refused (gate)",
        said("alice", "al", "host.example", "!restricted hi", "alice"),
        "refused",
    ),
    ("plain user, require=voice: granted", said("Vera", "vera", "vera.example", "!voiced x"), None),
    (
        "admin (4th rule, an account), open command",
        said("Chief", "c", "c.example", "!plain hi", "chief"),
        None,
    ),
]


def checks(app: App) -> Callable[[Message], str | None]:
    """The Policy calls the dispatcher makes before a command, in its order."""
    policy = app.dispatcher.policy
    registry = app.registry

    def run(message: Message) -> str | None:
        source = message.source
        admin = policy.is_admin(source)
        if not admin and policy.ignored(source):
            return "ignored"
        name = message.text[1:].partition(" ")[0]
        entry = registry.find(name)
        assert entry is not None
        module = entry.module.name if entry.module else None
        if policy.off(message.channel, module, entry.spec.name):
            return "off"
        if admin:
            return None
        if not policy.within_rate(message, entry.spec.name):
            return "rate"
        modes = app.modes_of(message.channel, source.nick)
        why = policy.permitted(message, entry.spec.name, modes)
        if why is None and entry.spec.require and not at_least(modes, entry.spec.require):
            why = f"needs {entry.spec.require}"
        if why is not None:
            policy.refuse(message, f"!{entry.spec.name} {why}")
            return "refused"
        return None

    return run


def per_call_us(fn: Callable[[], object], runs: int, repeat: int) -> list[float]:
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(runs):
            fn()
        rounds.append((time.perf_counter() - start) / runs * 1e6)
    return rounds


def summary(rounds: list[float]) -> str:
    return f"{statistics.median(rounds):6.2f} us ({min(rounds):.2f}-{max(rounds):.2f})"


def breakdown(app: App, message: Message, args: argparse.Namespace) -> None:
    """Each check alone, for the plain user's open command."""
    policy, source, channel = app.dispatcher.policy, message.source, message.channel
    modes = app.modes_of(channel, source.nick)
    pieces: list[tuple[str, Callable[[], object]]] = [
        ("is_admin (5 rules, none matching)", lambda: policy.is_admin(source)),
        ("ignored (Ignores.match)", lambda: policy.ignored(source)),
        ("off (disable: of the channel)", lambda: policy.off(channel, "benchpol", "plain")),
        ("within_rate (user and channel)", lambda: policy.within_rate(message, "plain")),
        ("modes_of (Channels)", lambda: app.modes_of(channel, source.nick)),
        ("permitted (no permissions: entry)", lambda: policy.permitted(message, "plain", modes)),
    ]
    print(f"each check alone, {CASES[0][0]}:")
    for label, fn in pieces:
        print(f"  {label:56s} {summary(per_call_us(fn, args.runs, args.repeat))}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50, help="ignore masks, and accounts")
    parser.add_argument("--members", type=int, default=300, help="members of #bench")
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--src", help="folder holding the bot/ package to measure")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    devnull = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run
    handler = logging.StreamHandler(devnull)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])

    home = Path(tempfile.mkdtemp(prefix="bench-policy-"))
    try:
        (home / "commands").mkdir()
        (home / "commands" / "benchpol.py").write_text(MODULE)
        config = parse_config(config_text(args.entries), base_dir=home)
        app = App(config)
        report = app.load_all()
        if not report.ok:
            raise SystemExit(f"load failed: {report.summary()}")
        fill_channel(app, args.members)
        gc.freeze()  # as python -m bot does after start-up

        started: list[Message] = []
        dispatcher = app.dispatcher
        dispatcher._start_command = lambda message, *rest: started.append(message)  # type: ignore[method-assign]
        run_checks = checks(app)
        print(
            f"{args.entries} ignore masks + {args.entries} accounts, {len(config.admins)} admin"
            f" rules, permissions for {len(config.permissions)} commands,"
            f" {len(app.connection.members.members(CHANNEL))} members in {CHANNEL};"  # type: ignore[attr-defined]
            f" {args.repeat} x {args.runs} calls, us per command: median (min-max)"
        )
        print(f"{'case':58s} {'checks':28s} handle (dispatcher)")
        for label, message, expected in CASES:
            got = run_checks(message)
            before = len(started)
            dispatcher.handle(message)
            ran = len(started) > before
            if got != expected or ran != (expected is None):
                raise SystemExit(f"{label}: checks said {got!r}, dispatcher ran: {ran}")
            a = per_call_us(lambda m=message: run_checks(m), args.runs, args.repeat)
            b = per_call_us(lambda m=message: dispatcher.handle(m), args.runs, args.repeat)
            started.clear()
            print(f"{label:58s} {summary(a):28s} {summary(b)}", flush=True)
        breakdown(app, CASES[0][1], args)
        app.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
        devnull.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
