"""Channel state at scale: a NAMES/JOIN flood of 500 x 200 members, RSS and command latency.

    python bench/channel_scale.py [--channels 500] [--members 200] [--late 10]
                                  [--pool 25000] [--window 4] [--every 5] [--bare]
                                  [--skip MODULE] [--bot-prelude CODE] [--runs 1]
                                  [--src DIR] [--json PATH]

A scripted IRC server on 127.0.0.1 (in this process, stdlib only) registers a real
``python -m bot`` (shipped modules plus a bench module; ``--bare``: the bench
module only) with ``multi-prefix`` and ``userhost-in-names``, ISUPPORT
``PREFIX=(qaohv)~&@%+``, ``CASEMAPPING=rfc1459`` and ``TARGMAX=JOIN:`` (no limit on the
channels of one JOIN, as UnrealIRCd says; the bot then joins 500 channels in a
few lines). The bot's config lists
``--channels`` channels; the server holds the bot's JOINs until the bot has
warmed up and its RSS is read, then sends the flood: per channel the JOIN echo,
RPL_NAMREPLY (353) lines of at most 512 bytes with ``~@+nick!user@host``
entries, 366, and the JOINs of the channel before's late joiners (``--late`` of
its ``--members`` come by JOIN, the others are in NAMES). Nicks are drawn from
a pool of ``--pool`` with Zipf-like weights, so popular users share many
channels, as on real networks.

The flood is paced like a server whose queue toward the bot is bounded: a
``PING`` after each channel, and channel k is sent once the PONG of channel
k - ``--window`` is back (``--window 0``: no pacing, as fast as the sockets take
it; then a command waits behind everything the kernel buffers hold). Meanwhile
user ``alice`` sends ``!bping TOKEN`` in private every ``--every`` ms on the same
connection, timed from the server's write to the reply's arrival (through the
bot's socket, its parser, the worker pool and the outbox). Reported: VmRSS of
the bot before and after the flood, the flood's time (first byte sent -> PONG of
a PING sent after the last line), command latency during the flood against an
idle baseline, a spot check of members' modes (``!bmodes`` in a channel), and an
in-process estimate of ``bot.channels.Channels`` alone fed the same entries
(tracemalloc, and its own time per membership).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
# --src DIR: the bot/ (and commands/) to measure, e.g. a snapshot of one commit
SRC = Path(sys.argv[sys.argv.index("--src") + 1]).resolve() if "--src" in sys.argv else HERE.parent
sys.path[:0] = [str(SRC), str(HERE)]

from bot.channels import Channels  # noqa: E402

HOST = "127.0.0.1"
SERVER = "bench.server"
NICK = "ScaleBot"
USER_MASK = "alice!alice@alice.example"
PREFIX_TOKEN = "PREFIX=(qaohv)~&@%+"
MAX_LINE = 510  # bytes before CRLF

BENCH_MODULE = '''\
"""Channel-scale bench: a ping, and the caller's channel modes as the bot knows them."""

from bot.api import Context, command


@command
def bping(ctx: Context, args: str) -> str:
    """bping TOKEN -- answer pong TOKEN"""
    return "pong " + args


@command
def bmodes(ctx: Context, args: str) -> str:
    """bmodes TOKEN -- your modes in this channel"""
    return f"modes {args} {''.join(sorted(ctx.user_modes)) or '-'}"
'''

# -- the scripted network -------------------------------------------------------------

SYLLABLES = ("ka", "ro", "mi", "tu", "ne", "sa", "vo", "li", "da", "ze", "pe", "xi", "fa")


@dataclass
class Member:
    nick: str
    userhost: str
    prefix: str = ""  # "~@", "@", "%", "@+", "+" or ""


@dataclass
class Network:
    """Who is where: per channel, the NAMES entries and the late joiners."""

    channels: list[str]
    names: list[list[Member]]  # in NAMES
    late: list[list[Member]]  # join during the flood
    pool_used: int = 0
    max_channels_per_nick: int = 0

    @property
    def memberships(self) -> int:
        return sum(len(n) + len(x) for n, x in zip(self.names, self.late, strict=True))


def make_nick(i: int, rng: random.Random) -> str:
    word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))
    nick = f"{word}{i}"
    roll = rng.random()
    if roll < 0.3:
        nick = nick.capitalize()
    elif roll < 0.35:
        nick += "|away"
    elif roll < 0.38:
        nick = f"[{nick}]"
    elif roll < 0.40:
        nick += "^"
    return nick


def make_userhost(nick: str, rng: random.Random) -> str:
    user = nick.strip("[]|^").lower()[:9]
    roll = rng.random()
    if roll < 0.4:
        host = f"user/{user}"
    elif roll < 0.8:
        a, b, c = rng.randint(1, 254), rng.randint(1, 254), rng.randint(1, 254)
        host = f"{a}-{b}-{c}.dyn.isp{rng.randint(1, 40)}.example"
    else:
        host = f"gateway/web/irccloud.com/x-{rng.getrandbits(40):010x}"
    return f"{'~' if rng.random() < 0.5 else ''}{user}@{host}"


def prefix_for(rank: int, rng: random.Random) -> str:
    if rank == 0:
        return "~@"  # the founder, multi-prefix
    roll = rng.random()
    for limit, prefix in ((0.04, "@"), (0.05, "%"), (0.06, "@+"), (0.14, "+")):
        if roll < limit:
            return prefix
    return ""


def build_network(channels: int, members: int, late: int, pool: int, seed: int = 13) -> Network:
    rng = random.Random(seed)
    nicks = [make_nick(i, rng) for i in range(pool)]
    hosts = [make_userhost(n, rng) for n in nicks]
    cum = list(itertools.accumulate(1 / (i + 20) ** 0.9 for i in range(pool)))
    names: list[list[Member]] = []
    lates: list[list[Member]] = []
    count: dict[int, int] = {}
    for _ in range(channels):
        chosen: dict[int, None] = {}
        while len(chosen) < members:
            for i in rng.choices(range(pool), cum_weights=cum, k=members):
                chosen.setdefault(i)
                if len(chosen) == members:
                    break
        picked = list(chosen)
        rng.shuffle(picked)
        for i in picked:
            count[i] = count.get(i, 0) + 1
        everyone = [Member(nicks[i], hosts[i]) for i in picked]
        split = members - late
        for rank, member in enumerate(everyone[:split]):
            member.prefix = prefix_for(rank, rng)
        names.append(everyone[:split])
        lates.append(everyone[split:])
    return Network(
        [f"#chan{k:04d}" for k in range(channels)],
        names,
        lates,
        pool_used=len(count),
        max_channels_per_nick=max(count.values()),
    )


def names_lines(channel: str, entries: list[str]) -> list[str]:
    """RPL_NAMREPLY lines of at most 512 bytes (with CRLF) holding ``entries``."""
    head = f":{SERVER} 353 {NICK} = {channel} :"
    lines, current = [], head
    for entry in entries:
        if len(current) + len(entry) + 1 > MAX_LINE and current != head:
            lines.append(current.rstrip())
            current = head
        current += entry + " "
    if current != head:
        lines.append(current.rstrip())
    return lines


def flood_chunks(net: Network) -> list[bytes]:
    """One chunk per channel: JOIN echo, 353s, 366, the previous channel's late JOINs,
    and a PING ``f<k>`` that paces the flood."""
    chunks = []
    bot_mask = f"{NICK}!reloadbot@bot.example"
    for k, channel in enumerate(net.channels):
        lines = [f":{bot_mask} JOIN {channel}"]
        entries = [f"{m.prefix}{m.nick}!{m.userhost}" for m in net.names[k]]
        lines += names_lines(channel, [*entries, f"@{bot_mask}"])
        lines.append(f":{SERVER} 366 {NICK} {channel} :End of /NAMES list.")
        if k > 0:
            before = net.channels[k - 1]
            lines += [f":{m.nick}!{m.userhost} JOIN {before}" for m in net.late[k - 1]]
        lines.append(f"PING :f{k}")
        chunks.append(("\r\n".join(lines) + "\r\n").encode())
    last = net.channels[-1]
    tail = [f":{m.nick}!{m.userhost} JOIN {last}" for m in net.late[-1]]
    if tail:
        chunks.append(("\r\n".join(tail) + "\r\n").encode())
    return chunks


class Server:
    """One scripted connection: registers the bot, records what it sends, floods it."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.sock: socket.socket | None = None
        self.cond = threading.Condition()
        self.joins: list[str] = []
        self.pongs: dict[str, float] = {}
        self.replies: dict[str, float] = {}  # pong TOKEN -> arrival
        self.modes: dict[str, str] = {}  # bmodes TOKEN -> modes
        self.registered = False
        self.closed = False
        self._nick = self._user = False
        self._cap_end = False
        self._wlock = threading.Lock()
        self._reader: threading.Thread | None = None

    def accept(self, timeout: float) -> None:
        self.listener.settimeout(timeout)
        self.sock, _ = self.listener.accept()
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = threading.Thread(target=self._read, name="scale-server", daemon=True)
        self._reader.start()

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        with self._wlock:
            self.sock.sendall(data)

    def line(self, text: str) -> None:
        self.send(text.encode() + b"\r\n")

    def wait(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
                self.cond.wait(left)

    def ping(self, token: str, timeout: float = 60.0) -> float:
        """Send ``PING :token``; the time its PONG arrived (everything before is handled)."""
        self.line(f"PING :{token}")
        self.wait(lambda: token in self.pongs, timeout, f"PONG {token}")
        return self.pongs[token]

    def close(self) -> None:
        for s in (self.sock, self.listener):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()

    def _read(self) -> None:
        assert self.sock is not None
        buf = b""
        while True:
            try:
                data = self.sock.recv(262144)
            except OSError:
                data = b""
            now = time.monotonic()
            if not data:
                break
            buf += data
            *complete, buf = buf.split(b"\n")
            with self.cond:
                for raw in complete:
                    self._handle(raw.rstrip(b"\r").decode("utf-8", "replace"), now)
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _handle(self, line: str, now: float) -> None:
        words = line.split(" ")
        command, args = words[0].upper(), words[1:]
        trailing = line.split(" :", 1)[1] if " :" in line else (args[-1] if args else "")
        if command == "PRIVMSG":
            kind, _, rest = trailing.partition(" ")
            if kind == "pong":
                self.replies.setdefault(rest, now)
            elif kind == "modes":
                token, _, modes = rest.partition(" ")
                self.modes[token] = modes
        elif command == "PONG":
            self.pongs[trailing.lstrip(":")] = now
        elif command == "JOIN":
            self.joins.extend(args[0].split(","))
        elif command == "PING":
            self.line(f":{SERVER} PONG {SERVER} :{trailing}")
        else:
            self._register(command, args, trailing)

    def _register(self, command: str, args: list[str], trailing: str) -> None:
        if command == "CAP" and args:
            sub = args[0].upper()
            if sub == "LS":
                self.line(f":{SERVER} CAP * LS :multi-prefix userhost-in-names")
            elif sub == "REQ":
                self.line(f":{SERVER} CAP * ACK :{trailing}")
            elif sub == "END":
                self._cap_end = True
        elif command == "NICK":
            self._nick = True
        elif command == "USER":
            self._user = True
        if self._nick and self._user and self._cap_end and not self.registered:
            self.registered = True
            self.line(f":{SERVER} 001 {NICK} :Welcome {NICK}!reloadbot@bot.example")
            isupport = f"CHANTYPES=# {PREFIX_TOKEN} CHANMODES=beI,k,l,imnpst CASEMAPPING=rfc1459"
            self.line(f":{SERVER} 005 {NICK} {isupport} NICKLEN=30 TARGMAX=JOIN: :are supported")
            self.line(f":{SERVER} 376 {NICK} :End of MOTD")


# -- the run --------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid``, in MB."""
    got = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            got[key] = int(value.split()[0]) / 1024
    return got


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p99": p99,
        "max": ordered[-1],
    }


@dataclass
class Timed:
    """Commands sent: token -> send time; lost = never answered."""

    server: Server
    sent: dict[str, float] = field(default_factory=dict)
    counter: itertools.count = field(default_factory=itertools.count)

    def send(self, tag: str) -> str:
        token = f"{tag}{next(self.counter)}"
        data = f":{USER_MASK} PRIVMSG {NICK} :!bping {token}\r\n".encode()
        with self.server._wlock:
            self.sent[token] = time.monotonic()
            assert self.server.sock is not None
            self.server.sock.sendall(data)
        return token

    def latencies_ms(self, tokens: list[str]) -> tuple[list[float], int]:
        with self.server.cond:
            got = [
                (self.server.replies[t] - self.sent[t]) * 1000
                for t in tokens
                if t in self.server.replies
            ]
        return got, len(tokens) - len(got)


def idle_round_trips(timed: Timed, count: int) -> list[float]:
    tokens = []
    for _ in range(count):
        token = timed.send("i")
        timed.server.wait(lambda t=token: t in timed.server.replies, 30, f"reply {token}")
        tokens.append(token)
    return timed.latencies_ms(tokens)[0]


def run_flood(server: Server, timed: Timed, chunks: list[bytes], window: int, every: float) -> dict:
    """Send the chunks (paced by PONGs when ``window``), a command every ``every`` s."""
    tokens: list[str] = []
    next_due = time.monotonic()

    def commands_due() -> None:
        nonlocal next_due
        now = time.monotonic()
        if now >= next_due:
            tokens.append(timed.send("f"))
            next_due = max(next_due + every, now)

    started = time.monotonic()
    for k, chunk in enumerate(chunks):
        if window and k >= window and f"f{k - window}" not in server.pongs:
            deadline = time.monotonic() + 120
            while f"f{k - window}" not in server.pongs:
                commands_due()
                with server.cond:
                    left = min(next_due, deadline) - time.monotonic()
                    if f"f{k - window}" not in server.pongs and left > 0:
                        server.cond.wait(left)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no PONG f{k - window} within 120 s")
        commands_due()
        server.send(chunk)
    sent_all = time.monotonic()
    server.line("PING :fend")
    # keep commanding until the bot has handled the whole flood
    while "fend" not in server.pongs:
        commands_due()
        with server.cond:
            left = next_due - time.monotonic()
            if "fend" not in server.pongs and left > 0:
                server.cond.wait(left)
        if time.monotonic() - sent_all > 300:
            raise RuntimeError("the flood was not handled within 300 s")
    done = server.pongs["fend"]
    server.wait(lambda: all(t in server.replies for t in tokens), 60, "the last replies")
    latencies, lost = timed.latencies_ms(tokens)
    return {
        "flood_s": done - started,
        "flood_sent_s": sent_all - started,
        "latency": percentiles(latencies),
        "lost": lost,
        "samples_ms": latencies,
    }


def spot_checks(net: Network) -> list[tuple[str, str, str]]:
    """(channel, mask, expected modes) for a few members whose modes are known."""
    expect = {"~@": "oq", "@": "o", "%": "h", "@+": "ov", "+": "v", "": "-"}
    checks, seen = [], set()
    for k in (0, len(net.channels) // 2, len(net.channels) - 1):
        for member in net.names[k]:
            if member.prefix not in seen:
                seen.add(member.prefix)
                checks.append(
                    (net.channels[k], f"{member.nick}!{member.userhost}", expect[member.prefix])
                )
        if net.late[k]:
            late = net.late[k][0]
            checks.append((net.channels[k], f"{late.nick}!{late.userhost}", "-"))
    outsider = "nobody0!n@nowhere.example"
    checks.append((net.channels[0], outsider, "-"))
    return checks


def check_modes(server: Server, net: Network) -> tuple[int, list[str]]:
    wrong = []
    checks = spot_checks(net)
    for i, (channel, mask, _) in enumerate(checks):
        server.line(f":{mask} PRIVMSG {channel} :!bmodes m{i}")
    server.wait(lambda: len(server.modes) >= len(checks), 30, "!bmodes answers")
    for i, (channel, mask, expected) in enumerate(checks):
        if server.modes.get(f"m{i}") != expected:
            wrong.append(f"{mask} in {channel}: {server.modes.get(f'm{i}')} != {expected}")
    return len(checks), wrong


def write_bot(home: Path, net: Network, port: int, args: argparse.Namespace) -> list[str]:
    commands = home / "commands"
    commands.mkdir(parents=True)
    if not args.bare:
        for shipped in sorted((SRC / "commands").glob("*.py")):
            if shipped.stem not in args.skip:
                shutil.copy(shipped, commands / shipped.name)
    (commands / "chanbench.py").write_text(BENCH_MODULE)
    channels = ", ".join(f'"{c}"' for c in net.channels)
    (home / "config.yaml").write_text(
        f"server: {{host: {HOST}, port: {port}}}\n"
        f"nick: {NICK}\n"
        f"channels: [{channels}]\n"
        'prefix: "!"\n'
        'admins: ["boss!*@admin.example"]\n'
        "commands_dir: commands\n"
        "state_db: null\n"
        "log_level: WARNING\n"
        "rate_limit: {burst: 10000, per_second: 100000, max_queued: 100000}\n"
        "command_rate: {per_user: 100000, per_channel: 100000, window: 1}\n"
    )
    config = ["--config", str(home / "config.yaml")]
    if args.bot_prelude:  # an experiment: code run in the bot's process before the bot
        start = "import runpy; runpy.run_module('bot', run_name='__main__', alter_sys=True)"
        return [sys.executable, "-c", f"{args.bot_prelude}\n{start}", *config]
    return [sys.executable, "-m", "bot", *config]


def one_run(net: Network, chunks: list[bytes], args: argparse.Namespace) -> dict:
    home = Path(tempfile.mkdtemp(prefix="bench-chanscale-"))
    server = Server()
    argv = write_bot(home, net, server.port, args)
    with (home / "bot.out").open("ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=str(SRC),  # python -m puts the working folder first on the path
            env=dict(os.environ, PYTHONPATH=str(SRC)),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        server.accept(30)
        server.wait(lambda: len(server.joins) >= len(net.channels), 30, "the bot's JOINs")
        timed = Timed(server)
        idle_round_trips(timed, 300)  # warm-up: every path a command takes
        idle = percentiles(idle_round_trips(timed, 300))
        server.ping("before")
        before = proc_status(proc.pid)
        flood = run_flood(server, timed, chunks, args.window, args.every / 1000)
        server.ping("after")
        after = proc_status(proc.pid)
        checked, wrong = check_modes(server, net)
        log = (home / "bot.out").read_text(errors="replace").splitlines()
        return {
            "rss_before_mb": before["VmRSS"],
            "rss_after_mb": after["VmRSS"],
            "rss_delta_mb": after["VmRSS"] - before["VmRSS"],
            "hwm_mb": after["VmHWM"],
            "idle": idle,
            **flood,
            "modes_checked": checked,
            "modes_wrong": wrong,
            "log_warnings": sum(1 for line in log if " WARNING " in line or " ERROR " in line),
            "log_tail": log[-3:],
        }
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        server.close()
        shutil.rmtree(home, ignore_errors=True)


def estimate(net: Network) -> dict:
    """``Channels`` alone, fed the flood's entries: traced bytes, top lines, time."""

    def feed(channels: Channels) -> None:
        channels.isupport([PREFIX_TOKEN, "CASEMAPPING=rfc1459"])
        for k, channel in enumerate(net.channels):
            channels.joined(channel, NICK)
            entries = [f"{m.prefix}{m.nick}!{m.userhost}" for m in net.names[k]]
            for line in names_lines(channel, entries):
                channels.names(channel, line.split(" :", 1)[1].split())
            for m in net.late[k]:
                channels.joined(channel, m.nick)

    timings = []
    for _ in range(3):
        t0 = time.perf_counter()
        feed(Channels())
        timings.append(time.perf_counter() - t0)
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    kept = Channels()
    feed(kept)
    snap = tracemalloc.take_snapshot()
    tracemalloc.stop()
    stats = snap.compare_to(base, "lineno")
    total = sum(s.size_diff for s in stats)
    top = [
        f"{Path(s.traceback[0].filename).name}:{s.traceback[0].lineno} {s.size_diff / 2**20:.1f} MB"
        for s in stats[:4]
    ]
    return {
        "traced_mb": total / 2**20,
        "what_if_mb": what_if(net),
        "top_lines": top,
        "feed_s": min(timings),
        "feed_us_per_membership": min(timings) / (net.memberships + len(net.channels)) * 1e6,
    }


def what_if(net: Network) -> float:
    """Traced MB of the same members as ``{channel: {nick: "ov"}}``, each folded nick one
    shared string and the modes a short string (the empty one shared): for comparison."""
    symbols = dict(zip("~&@%+", "qaohv", strict=True))
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    nicks: dict[str, str] = {}
    state: dict[str, dict[str, str]] = {}
    for k, channel in enumerate(net.channels):
        people = state.setdefault(channel.lower(), {})
        for m in [*net.names[k], *net.late[k]]:
            folded = m.nick.lower().translate(FOLD)
            key = nicks.setdefault(folded, folded)
            people[key] = "".join(sorted(symbols[c] for c in m.prefix))
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used / 2**20


FOLD = str.maketrans("[]\\^", "{}|~")


def report(run: dict, index: int) -> None:
    lat, idle = run["latency"], run["idle"]
    print(
        f"run {index}: RSS {run['rss_before_mb']:.1f} -> {run['rss_after_mb']:.1f} MB"
        f" (+{run['rss_delta_mb']:.1f} MB; peak {run['hwm_mb']:.1f}),"
        f" flood {run['flood_s']:.2f} s (all sent at {run['flood_sent_s']:.2f} s)",
        flush=True,
    )
    print(
        f"       !bping during the flood: n={lat.get('n')} p50 {lat.get('p50', 0):.2f}"
        f" p99 {lat.get('p99', 0):.2f} max {lat.get('max', 0):.2f} ms, lost {run['lost']};"
        f" idle p50 {idle['p50']:.2f} p99 {idle['p99']:.2f} ms;"
        f" modes {run['modes_checked'] - len(run['modes_wrong'])}/{run['modes_checked']} right,"
        f" {run['log_warnings']} warnings in the bot's log",
        flush=True,
    )
    for wrong in run["modes_wrong"]:
        print(f"       WRONG: {wrong}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=500)
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--late", type=int, default=10, help="members of each who JOIN later")
    parser.add_argument("--pool", type=int, default=25_000, help="distinct nicks to draw from")
    parser.add_argument("--window", type=int, default=4, help="channels in flight; 0: no pacing")
    parser.add_argument("--every", type=float, default=5.0, help="ms between commands")
    parser.add_argument("--bare", action="store_true", help="no shipped modules")
    parser.add_argument("--skip", action="append", default=[], help="a shipped module to leave out")
    parser.add_argument("--bot-prelude", help="Python run in the bot's process first (experiments)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--src", help="folder holding the bot/ and commands/ to measure")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    net = build_network(args.channels, args.members, args.late, args.pool)
    chunks = flood_chunks(net)
    lines = sum(c.count(b"\n") for c in chunks)
    size = sum(len(c) for c in chunks)
    print(
        f"{len(net.channels)} channels x {args.members} = {net.memberships} memberships"
        f" (+{len(net.channels)} of the bot), {net.pool_used} distinct nicks"
        f" (at most {net.max_channels_per_nick} channels each); flood {lines} lines,"
        f" {size / 2**20:.1f} MB; window {args.window or 'none'}",
        flush=True,
    )
    est = estimate(net)
    print(
        f"Channels alone (in process): {est['traced_mb']:.1f} MB traced"
        f" [{'; '.join(est['top_lines'])}], fed in {est['feed_s']:.2f} s"
        f" ({est['feed_us_per_membership']:.2f} us per membership); the same members as"
        f" shared nicks and mode strings: {est['what_if_mb']:.1f} MB",
        flush=True,
    )
    runs = []
    for i in range(args.runs):
        runs.append(one_run(net, chunks, args))
        report(runs[-1], i + 1)
    if len(runs) > 1:
        med = statistics.median
        pooled = percentiles([x for r in runs for x in r["samples_ms"]])
        print(
            f"median of {len(runs)}: RSS +{med(r['rss_delta_mb'] for r in runs):.1f} MB,"
            f" flood {med(r['flood_s'] for r in runs):.2f} s,"
            f" p50 {med(r['latency']['p50'] for r in runs):.2f}"
            f" p99 {med(r['latency']['p99'] for r in runs):.2f}"
            f" max {med(r['latency']['max'] for r in runs):.2f} ms;"
            f" all {pooled['n']} commands pooled: p50 {pooled['p50']:.2f}"
            f" p99 {pooled['p99']:.2f} max {pooled['max']:.2f} ms"
        )
    if args.json:
        args.json.write_text(json.dumps({"estimate": est, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
