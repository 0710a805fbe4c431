"""Benchmarks of reloadbot side by side with Sopel and Limnoria, on one local ngIRCd.

    python bench/run.py [--quick] [--only ours|sopel|limnoria] [--rounds N] [--json PATH]

Starts a throwaway ngIRCd (bot.ircd.Ngircd: loopback, penalties and connection
limits off), builds the peers' virtualenvs (bench/peers.py), then for each bot
in turn: starts it, times start -> JOIN and reads its idle RSS, and drives raw
socket users (bench/driver.py) through the round-trip, burst, reload, soak and
syntax-error figures.  Ours also gets the 50-module reload figures and the
in-process reload-leak figure (bench/inproc.py).  One table at the end: every
figure of every bot from this run, and the ratios.  See docs/benchmarks.md.

Figures are reported, never asserted: the exit status is 0 whenever the
harness itself worked, whatever the figures say.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import driver  # noqa: E402
import peers  # noqa: E402

from bot.folder import RACY_NS  # noqa: E402
from bot.ircd import Ngircd  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    starts: int = 3
    settle: float = 2.0  # idle seconds after JOIN before RSS is read
    rtt: int = 500
    burst_users: int = 10
    burst_each: int = 100
    reload_one: int = 30
    soak_seconds: float = 20.0
    soak_users: int = 5
    soak_rate: float = 500.0
    soak_reload_every: float = 0.05
    syntax_commands: int = 50
    fifty: int = 50
    fifty_reloads: int = 30
    inproc_reloads: int = 10_000
    floor: int = 500
    defaults_each: int = 10  # --defaults: commands per user with default throttles


FULL = Sizes()
QUICK = Sizes(
    starts=1,
    settle=1.0,
    rtt=100,
    reload_one=10,
    soak_seconds=3.0,
    syntax_commands=20,
    fifty_reloads=5,
    inproc_reloads=1000,
    floor=100,
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- one running bot -------------------------------------------------------------


class BotProcess:
    def __init__(
        self,
        kind: peers.BotKind,
        server: Ngircd,
        *,
        defaults: bool = False,
        keep: bool = False,
        all_admins: bool = False,
    ) -> None:
        self.kind = kind
        self.server = server
        self.home = Path(tempfile.mkdtemp(prefix=f"bench-{kind.name}-"))
        self.home.chmod(0o755)
        self.launch = kind.launch(
            self.home, server.host, server.port, defaults=defaults, all_admins=all_admins
        )
        self.ids = None if kind.name == "ours" else peers.unprivileged()
        self.proc: subprocess.Popen[bytes] | None = None
        self.keep = keep
        self.started = 0.0

    def prepare(self) -> None:
        """Call after adding files to the home; hands it to the unprivileged user."""
        peers.chown_tree(self.home, self.ids)

    def start(self, observer: driver.User, timeout: float = 60.0) -> float:
        """Start the bot; return seconds from process start to its JOIN seen by ``observer``."""
        self.prepare()
        mark = observer.mark()
        out = (self.home / "bench.out").open("ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            peers.as_user(self.launch.argv, self.ids),
            env=self.launch.env,
            cwd=self.launch.cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        nick = self.kind.nick.lower()
        seen = observer.wait(
            lambda r: r.command == "JOIN" and r.source.lower() == nick, timeout, since=mark
        )
        if seen is None:
            self.stop()
            raise RuntimeError(f"{self.kind.name} did not join within {timeout} s\n{self.tail()}")
        return seen.t - self.started

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def tail(self, lines: int = 30) -> str:
        text = ""
        for path in sorted(self.home.rglob("*")):
            if path.is_file() and (path.suffix in (".out", ".log") or path.parent.name == "logs"):
                body = path.read_text(errors="replace").splitlines()[-lines:]
                text += f"--- {path} ---\n" + "\n".join(body) + "\n"
        return text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if not self.keep:
            shutil.rmtree(self.home, ignore_errors=True)


def bot_reply(kind: peers.BotKind) -> Any:
    """A line from the bot that answers something other than ``!bping`` (a reload)."""
    nick = kind.nick.lower()

    def pred(r: driver.Received) -> bool:
        return (
            r.source.lower() == nick
            and r.command in ("PRIVMSG", "NOTICE")
            and not driver.TOKEN.search(r.text)
        )

    return pred


def sync(
    kind: peers.BotKind, user: driver.User, tokens: driver.Tokens, timeout: float = 60
) -> bool:
    """One command from ``user``, waited for: whatever the bot had queued before is done."""
    tok = tokens.next()
    user.privmsg(kind.nick, kind.command(tok))
    return user.wait_token(tok, timeout) is not None


def admin_command(
    admin: driver.User, kind: peers.BotKind, text: str, timeout: float = 30.0
) -> tuple[float, str]:
    """Say ``text`` to the bot as the admin; (seconds to the first reply, the reply)."""
    mark = admin.mark()
    t0 = time.monotonic()
    admin.privmsg(kind.nick, text)
    r = admin.wait(bot_reply(kind), timeout, since=mark)
    if r is None:
        return float("nan"), ""
    return r.t - t0, r.text


def write_helper_module(kind: peers.BotKind, bot: BotProcess) -> float:
    """Put the files of ``kind.helper_module`` beside the running bot's; when (monotonic)."""
    for name, text in kind.helper_files.items():
        (bot.launch.modules_dir / name).parent.mkdir(exist_ok=True)
        (bot.launch.modules_dir / name).write_text(text)
    bot.prepare()  # Sopel's user owns them, so it caches their bytecode as for its others
    return time.monotonic()


def reload_helper_module(
    kind: peers.BotKind, admin: driver.User, written: float, count: int
) -> list[float]:
    """``!load`` it once older than our loader's "racily clean" window (as deployed files
    are, see bench_fifty), then ``!reload NAME`` of it: a warm-up and ``count`` timed."""
    time.sleep(max(0.0, written + RACY_NS / 1e9 + 0.1 - time.monotonic()))
    text = admin_command(admin, kind, f"!load {kind.helper_module}")[1]
    if kind.helper_module not in text:
        raise RuntimeError(f"{kind.name}: !load {kind.helper_module} answered {text!r}")
    reload = f"!reload {kind.helper_module}"
    return [admin_command(admin, kind, reload)[0] for _ in range(count + 1)][1:]


# -- the figures of one bot ------------------------------------------------------


@dataclass
class Figures:
    values: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def bench_bot(
    kind: peers.BotKind, server: Ngircd, sizes: Sizes, observer: driver.User, keep: bool
) -> Figures:
    fig = Figures()
    joins, rss = [], []
    bot: BotProcess | None = None
    for i in range(sizes.starts + 1):  # start 0 warms caches (bytecode, page cache) only
        if bot is not None:
            bot.cleanup()
        bot = BotProcess(kind, server, keep=keep)
        join = bot.start(observer)
        time.sleep(sizes.settle if i else 0.2)
        if i:
            joins.append(join)
            rss.append(bot.rss_mb())
            log(f"{kind.name}: start {i}: JOIN after {join * 1000:.0f} ms, RSS {rss[-1]:.1f}")
    assert bot is not None
    fig.values["join_ms"] = driver.median(joins) * 1000
    fig.values["rss_mb"] = driver.median(rss)
    try:
        bench_running(kind, bot, server, sizes, fig)
    except Exception:
        print(bot.tail(), file=sys.stderr)
        raise
    finally:
        bot.cleanup()
    return fig


def bench_running(
    kind: peers.BotKind, bot: BotProcess, server: Ngircd, sizes: Sizes, fig: Figures
) -> None:
    tokens = driver.Tokens(f"{kind.name[0]}{int(time.time()) % 100000}x")
    nicks = [f"u{i}" for i in range(max(sizes.burst_users, sizes.soak_users))]
    users = driver.connect_all(server.host, server.port, [*nicks, peers.ADMIN])
    admin = users.pop()
    written = write_helper_module(kind, bot) if kind.helper_module else 0.0
    try:
        # warm-up: first calls import and compile lazily in every bot
        driver.round_trips(users[0], kind.nick, kind.command, tokens, 20)

        times, lost = driver.round_trips(users[0], kind.nick, kind.command, tokens, sizes.rtt)
        fig.values["rtt_p50_ms"] = driver.percentile(times, 50) * 1000
        fig.values["rtt_p99_ms"] = driver.percentile(times, 99) * 1000
        fig.values["rtt_lost"] = lost
        log(
            f"{kind.name}: round trip p50 {fig.values['rtt_p50_ms']:.2f} ms, "
            f"p99 {fig.values['rtt_p99_ms']:.2f} ms, lost {lost}"
        )

        measure_burst(kind, users, tokens, sizes, fig)
        time.sleep(0.5)

        reloads = []
        admin_command(admin, kind, kind.reload_one)  # warm-up, as for the helper row
        for _ in range(sizes.reload_one):
            dt, text = admin_command(admin, kind, kind.reload_one)
            reloads.append(dt)
        fig.values["reload_one_p50_ms"] = driver.median(reloads) * 1000
        fig.notes["reload_one"] = text[:120]
        log(f"{kind.name}: reload one p50 {fig.values['reload_one_p50_ms']:.1f} ms ({text[:80]!r})")
        if kind.helper_module:
            times = reload_helper_module(kind, admin, written, sizes.reload_one)
            fig.values["reload_helper_p50_ms"] = driver.median(times) * 1000
            log(f"{kind.name}: reload one with helper p50 {driver.median(times) * 1000:.1f} ms")

        measure_soak(kind, users, admin, tokens, sizes, fig)
        time.sleep(0.5)

        # syntax error, then reload: who still answers?
        if not sync(kind, admin, tokens):
            log(f"{kind.name}: no answer to a command within 60 s after the soak")
        module = bot.launch.module_file
        original = module.read_text()
        module.write_text(original + "\n\ndef broken(:\n    pass\n")
        dt, text = admin_command(admin, kind, kind.reload_one)
        fig.notes["syntax_reload_reply"] = text[:160]
        answered = driver.paced(users[0], kind.nick, kind.command, tokens, sizes.syntax_commands)
        fig.values["syntax_served_pct"] = 100.0 * answered / sizes.syntax_commands
        module.write_text(original)
        log(
            f"{kind.name}: after a broken reload {answered}/{sizes.syntax_commands} commands "
            f"answered (reload reply {text[:100]!r})"
        )
    finally:
        for u in [*users, admin]:
            u.close()


def measure_burst(
    kind: peers.BotKind,
    users: list[driver.User],
    tokens: driver.Tokens,
    sizes: Sizes,
    fig: Figures,
    suffix: str = "",
) -> None:
    b = driver.burst(users[: sizes.burst_users], kind.nick, kind.command, tokens, sizes.burst_each)
    fig.values["burst_rate" + suffix] = b.rate
    fig.values["burst_lost" + suffix] = b.lost
    fig.values["burst_dup" + suffix] = b.duplicates
    fig.values["burst_refused" + suffix] = b.refused
    log(
        f"{kind.name}{suffix}: burst {b.sent}: {b.rate:.0f} replies/s, lost {b.lost} "
        f"(refused with another reply: {b.refused}), dup {b.duplicates}, {b.elapsed:.2f} s"
    )


def measure_soak(
    kind: peers.BotKind,
    users: list[driver.User],
    admin: driver.User,
    tokens: driver.Tokens,
    sizes: Sizes,
    fig: Figures,
    suffix: str = "",
) -> None:
    s = driver.soak(
        users[: sizes.soak_users],
        admin,
        kind.nick,
        kind.command,
        kind.reload_one,
        bot_reply(kind),
        tokens,
        sizes.soak_seconds,
        total_rate=sizes.soak_rate,
        reload_every=sizes.soak_reload_every,
        sync=lambda: sync(kind, admin, tokens),
    )
    fig.values["soak_sent" + suffix] = s.sent
    fig.values["soak_lost" + suffix] = s.lost
    fig.values["soak_dup" + suffix] = s.duplicates
    fig.values["soak_refused" + suffix] = s.refused
    fig.values["soak_reloads" + suffix] = s.reloads_sent
    fig.values["soak_reload_replies" + suffix] = s.reloads_answered
    log(
        f"{kind.name}{suffix}: soak {s.sent} commands, {s.reloads_sent} reloads: lost {s.lost} "
        f"(refused with another reply: {s.refused}), dup {s.duplicates}, "
        f"reload replies {s.reloads_answered}"
    )


def bench_unlimited(
    kind: peers.BotKind, server: Ngircd, sizes: Sizes, observer: driver.User
) -> Figures:
    """Ours with every user an admin: the per-user limits (not configurable) are bypassed."""
    fig = Figures()
    bot = BotProcess(kind, server, all_admins=True)
    tokens = driver.Tokens(f"a{int(time.time()) % 100000}x")
    try:
        bot.start(observer)
        nicks = [f"u{i}" for i in range(max(sizes.burst_users, sizes.soak_users))]
        users = driver.connect_all(server.host, server.port, [*nicks, peers.ADMIN])
        admin = users.pop()
        try:
            driver.round_trips(users[0], kind.nick, kind.command, tokens, 20)
            measure_burst(kind, users, tokens, sizes, fig, "_admins")
            time.sleep(0.5)
            measure_soak(kind, users, admin, tokens, sizes, fig, "_admins")
        finally:
            for u in [*users, admin]:
                u.close()
    except Exception:
        print(bot.tail(), file=sys.stderr)
        raise
    finally:
        bot.cleanup()
    return fig


def bench_defaults(
    kind: peers.BotKind, server: Ngircd, sizes: Sizes, observer: driver.User
) -> Figures:
    """Each bot with its default output throttle and flood protection: a small burst."""
    fig = Figures()
    bot = BotProcess(kind, server, defaults=True)
    tokens = driver.Tokens(f"d{int(time.time()) % 100000}x")
    try:
        bot.start(observer)
        users = driver.connect_all(
            server.host, server.port, [f"u{i}" for i in range(sizes.burst_users)]
        )
        try:
            b = driver.burst(
                users, kind.nick, kind.command, tokens, sizes.defaults_each, settle=10, limit=90
            )
        finally:
            for u in users:
                u.close()
        fig.values["burst_rate_defaults"] = b.rate
        fig.values["burst_lost_defaults"] = b.lost
        fig.values["burst_refused_defaults"] = b.refused
        log(
            f"{kind.name} (defaults): burst {b.sent}: {b.rate:.1f} replies/s, lost {b.lost} "
            f"(refused with another reply: {b.refused}), {b.elapsed:.1f} s"
        )
    except Exception:
        print(bot.tail(), file=sys.stderr)
        raise
    finally:
        bot.cleanup()
    return fig


# -- ours only: 50 modules, and the in-process leak check ----------------------------------


def bench_fifty(
    kind: peers.BotKind, server: Ngircd, sizes: Sizes, observer: driver.User
) -> Figures:
    fig = Figures()
    bot = BotProcess(kind, server)
    commands = bot.launch.modules_dir
    for path in commands.glob("*.py"):
        if path.name != "benchmod.py":
            path.unlink()
    for i in range(sizes.fifty - 1):
        (commands / f"gen{i:02d}.py").write_text(peers.GENERATED_MODULE.format(i=i, version=0))
    # Deployed modules are older than the bot's "racily clean" window (bot/folder.py):
    # a file changed within it is compared by content on every !reload, not by stat.
    time.sleep(RACY_NS / 1e9 + 0.1)
    try:
        bot.start(observer)
        (admin,) = driver.connect_all(server.host, server.port, [peers.ADMIN])
        _, text = admin_command(admin, kind, "!reload --force")  # warm-up
        changed, forced = [], []
        for n in range(sizes.fifty_reloads):
            (commands / "gen07.py").write_text(peers.GENERATED_MODULE.format(i=7, version=n + 1))
            dt, text = admin_command(admin, kind, "!reload")
            changed.append(dt)
        fig.notes["reload_changed"] = text[:120]
        for _ in range(sizes.fifty_reloads):
            dt, text = admin_command(admin, kind, "!reload --force")
            forced.append(dt)
        fig.notes["reload_force"] = text[:120]
        fig.values["reload_changed_p50_ms"] = driver.median(changed) * 1000
        fig.values["reload_force_p50_ms"] = driver.median(forced) * 1000
        log(
            f"ours, {sizes.fifty} modules: !reload with one changed p50 "
            f"{fig.values['reload_changed_p50_ms']:.1f} ms; --force p50 "
            f"{fig.values['reload_force_p50_ms']:.1f} ms ({text[:80]!r})"
        )
        admin.close()
    except Exception:
        print(bot.tail(), file=sys.stderr)
        raise
    finally:
        bot.cleanup()
    return fig


def bench_inproc(kind: peers.BotKind, sizes: Sizes) -> Figures:
    fig = Figures()
    assert kind.python is not None
    assert isinstance(kind, peers.Ours)
    env = {**os.environ, "PYTHONPATH": str(kind.src)}
    argv = [str(kind.python), str(HERE / "inproc.py"), "--reloads", str(sizes.inproc_reloads)]
    out = subprocess.run(
        [*argv, "--src", str(kind.src)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"inproc.py failed:\n{out.stdout}\n{out.stderr}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    fig.values.update(data)
    log(
        f"ours in-process: {sizes.inproc_reloads} reloads: RSS growth "
        f"{data['leak_rss_growth_mb']:.3f} MB, generations alive {data['leak_alive']:.0f}, "
        f"{data['leak_reload_ms']:.2f} ms per reload"
    )
    return fig


# -- the table ---------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    fmt: str
    target: str
    base: str | None = None  # ratio against which peer
    check: Any = None  # (ours, peer value or None) -> bool


ROWS = [
    Row("rtt_p50_ms", "round trip p50 (ms)", "{:.2f}", "<= 0.5 x Sopel", "sopel",
        lambda o, p: o <= 0.5 * p),
    Row("rtt_p99_ms", "round trip p99 (ms)", "{:.2f}", "<= 0.5 x Sopel", "sopel",
        lambda o, p: o <= 0.5 * p),
    Row("burst_rate", "burst 10x100: replies/s", "{:.0f}", ">= 2 x Sopel", "sopel",
        lambda o, p: o >= 2 * p),
    Row("burst_lost", "burst 10x100: replies lost", "{:.0f}", "0", None, lambda o, p: o == 0),
    Row("burst_refused", "  of which refused ('busy')", "{:.0f}", "(info)"),
    Row("burst_rate_admins", "burst, users admins: replies/s", "{:.0f}", ">= 2 x Sopel",
        "sopel:burst_rate", lambda o, p: o >= 2 * p),
    Row("burst_lost_admins", "burst, users admins: lost", "{:.0f}", "0", None,
        lambda o, p: o == 0),
    Row("reload_one_p50_ms", "!reload NAME p50 (ms)", "{:.1f}", "<= 0.5 x Sopel", "sopel",
        lambda o, p: o <= 0.5 * p),
    Row("reload_helper_p50_ms", "!reload NAME, with helper (ms)", "{:.1f}", "<= 0.5 x Sopel",
        "sopel", lambda o, p: o <= 0.5 * p),
    Row("reload_changed_p50_ms", "!reload, 50 loaded, 1 changed (ms)", "{:.1f}",
        "<= Sopel reload one", "sopel:reload_one_p50_ms", lambda o, p: o <= p),
    Row("reload_force_p50_ms", "!reload --force, 50 modules (ms)", "{:.1f}", "<= 100 ms", None,
        lambda o, p: o <= 100),
    Row("leak_rss_growth_mb", "RSS growth over N reloads (MB)", "{:.3f}", "< 0.1 MB", None,
        lambda o, p: o < 0.1),
    Row("leak_alive", "old generations alive after", "{:.0f}", "0", None, lambda o, p: o == 0),
    Row("rss_mb", "idle RSS after start (MB)", "{:.1f}", "<= 0.8 x Limnoria", "limnoria",
        lambda o, p: o <= 0.8 * p),
    Row("join_ms", "start -> JOIN seen (ms)", "{:.0f}", "<= 0.5 x Limnoria", "limnoria",
        lambda o, p: o <= 0.5 * p),
    Row("burst_rate_defaults", "defaults: burst 10x10 replies/s", "{:.1f}", "(info)", "sopel"),
    Row("burst_lost_defaults", "defaults: burst 10x10 lost", "{:.0f}", "(info)"),
    Row("soak_lost", "soak: commands lost", "{:.0f}", "0", None, lambda o, p: o == 0),
    Row("soak_refused", "  of which refused ('busy')", "{:.0f}", "(info)"),
    Row("soak_dup", "soak: answered twice", "{:.0f}", "0", None, lambda o, p: o == 0),
    Row("soak_lost_admins", "soak, users admins: lost", "{:.0f}", "0", None,
        lambda o, p: o == 0),
    Row("syntax_served_pct", "broken reload: served by old code %", "{:.0f}", "100 %", None,
        lambda o, p: o == 100),
]  # fmt: skip


def fmt(row: Row, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return row.fmt.format(value)


def table(results: dict[str, Figures], labels: dict[str, str], sizes: Sizes) -> str:
    names = [n for n in ("ours", "sopel", "limnoria") if n in results]
    head = ["figure", *(labels[n] for n in names), "ratio", "target", "met"]
    body = []
    for row in ROWS:
        vals = {n: results[n].values.get(row.key) for n in names}
        if all(v is None for v in vals.values()):
            continue  # not measured in this run (e.g. --defaults not given)
        ours = vals.get("ours")
        peer = None
        ratio = "-"
        if row.base:
            base_name, _, base_key = row.base.partition(":")
            if base_name in results:
                peer = results[base_name].values.get(base_key or row.key)
            if ours is not None and peer:
                ratio = f"{ours / peer:.2f} x {labels[base_name]}"
        met = "-"
        known = ours is not None and not (isinstance(ours, float) and math.isnan(ours))
        if known and row.check is not None and (row.base is None or peer is not None):
            met = "yes" if row.check(ours, peer) else "NO"
        label = row.label.replace("N reloads", f"{sizes.inproc_reloads} reloads")
        body.append([label, *(fmt(row, vals[n]) for n in names), ratio, row.target, met])
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in body:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(lines)


def merge(rounds: list[Figures]) -> Figures:
    """Median of each figure over the rounds."""
    out = Figures()
    keys = {k for f in rounds for k in f.values}
    for k in sorted(keys):
        out.values[k] = driver.median(f.values[k] for f in rounds if k in f.values)
    for f in rounds:
        out.notes.update(f.notes)
    return out


# -- main ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (CI): < 2 minutes")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(peers.KINDS),
        help="bench only this bot (repeatable); default: all three",
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat everything; medians")
    parser.add_argument("--venvs", type=Path, default=peers.DEFAULT_VENVS)
    parser.add_argument("--our-python", help="python for our bot (default: a Debian-python venv)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--keep", action="store_true", help="keep the bots' temporary homes")
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="also run a small burst against each bot with its default throttles",
    )
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace, src: Path) -> dict[str, peers.BotKind]:
    """Build the venvs; in quick mode a peer whose venv cannot be built is skipped."""
    kinds: dict[str, peers.BotKind] = {}
    for name in args.only or ["ours", "sopel", "limnoria"]:
        kind = peers.Ours(args.our_python, src) if name == "ours" else peers.KINDS[name]()
        log(f"preparing {name} (venvs in {args.venvs})")
        try:
            kind.setup(args.venvs)
        except (peers.SetupError, OSError) as exc:
            if args.quick and name != "ours":
                log(f"skipping {name}: {exc}")
                continue
            raise
        kinds[name] = kind
    if "ours" in kinds:
        log(f"ours: work tree at {kinds['ours'].version}, copied to {src}")
    return kinds


def measure(
    args: argparse.Namespace, kinds: dict[str, peers.BotKind], sizes: Sizes
) -> tuple[dict[str, list[Figures]], list[float]]:
    rounds: dict[str, list[Figures]] = {n: [] for n in kinds}
    with Ngircd() as server:
        log(f"ngircd on {server.host}:{server.port}")
        floor = driver.loopback_floor(server.host, server.port, sizes.floor)
        log(
            f"loopback floor (raw client -> server -> raw client -> server -> back): "
            f"p50 {driver.percentile(floor, 50) * 1000:.3f} ms, "
            f"p99 {driver.percentile(floor, 99) * 1000:.3f} ms"
        )
        observer = driver.User(server.host, server.port, "observer").connect()
        observer.join(peers.CHANNEL)
        try:
            for r in range(args.rounds):
                for name, kind in kinds.items():
                    log(f"round {r + 1}/{args.rounds}: {name}")
                    fig = bench_bot(kind, server, sizes, observer, args.keep)
                    extras = []
                    if name == "ours":
                        extras.append(bench_unlimited(kind, server, sizes, observer))
                        extras.append(bench_fifty(kind, server, sizes, observer))
                    if args.defaults:
                        extras.append(bench_defaults(kind, server, sizes, observer))
                    for extra in extras:
                        fig.values.update(extra.values)
                        fig.notes.update(extra.notes)
                    rounds[name].append(fig)
        finally:
            observer.close()
    if "ours" in kinds:
        leak = bench_inproc(kinds["ours"], sizes)
        for fig in rounds["ours"]:
            fig.values.update(leak.values)
    return rounds, floor


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The bots and ngircd run in their own sessions: on SIGTERM unwind through the
    # finally blocks that stop them, as on ^C.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sizes = QUICK if args.quick else FULL
    t_start = time.monotonic()
    src = peers.snapshot(Path(tempfile.mkdtemp(prefix="bench-src-")))
    try:
        kinds = prepare(args, src)
        rounds, floor = measure(args, kinds, sizes)
    finally:
        if not args.keep:
            shutil.rmtree(src, ignore_errors=True)
    labels = {n: f"{k.label} {k.version}".strip() for n, k in kinds.items()}
    labels["ours"] = "ours"
    ours_version = kinds["ours"].version if "ours" in kinds else None

    results = {n: merge(f) for n, f in rounds.items() if f}
    print()
    print(
        f"reloadbot benchmarks ({'quick' if args.quick else 'full'}, {args.rounds} round(s), "
        f"medians; {time.monotonic() - t_start:.0f} s)"
    )
    print(table(results, labels, sizes))
    if ours_version:
        print(f"ours: work tree at {ours_version}")
    print(
        f"loopback floor through ngircd (two raw clients): p50 "
        f"{driver.percentile(floor, 50) * 1000:.3f} ms, p99 "
        f"{driver.percentile(floor, 99) * 1000:.3f} ms"
    )
    for name, fig in results.items():
        for k, v in sorted(fig.notes.items()):
            print(f"  {name} {k}: {v}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "quick": args.quick,
                "rounds": args.rounds,
                "labels": labels,
                "ours_version": ours_version,
                "sizes": sizes.__dict__,
                "floor_p50_ms": driver.percentile(floor, 50) * 1000,
                "floor_p99_ms": driver.percentile(floor, 99) * 1000,
                "results": {n: {"values": f.values, "notes": f.notes} for n, f in results.items()},
                "rounds_raw": {n: [f.values for f in fs] for n, fs in rounds.items()},
            },
            indent=2,
        )
    )
    log(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
