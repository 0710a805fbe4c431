"""From a chat message to a command call on a worker thread, and its replies to the outbox.

The firewall: nothing a command does (raise, return garbage, hang) escapes
here. A ``CommandError`` is shown to the user as-is; any other exception gets
the user one line naming the file:line, and the traceback goes to the log.
Runs on the connection thread only long enough to look the command up; the
command itself runs on the worker pool, so a slow command never stops the bot
from answering PINGs or other users.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bot.api import CommandError, Event
from bot.auth import is_admin
from bot.config import Config
from bot.loader import LoadedModule
from bot.message import Message
from bot.registry import Registry

log = logging.getLogger(__name__)


class Host(Protocol):
    """What the dispatcher needs from the app (kept narrow so tests can fake it)."""

    config: Config
    registry: Registry
    swap_lock: threading.Lock

    @property
    def nick(self) -> str: ...

    def say(self, target: str, text: str) -> None: ...

    def state_for(self, module: str) -> MutableMapping[str, Any]: ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> None: ...


@dataclass
class CallContext:
    """The ``Context`` a command receives (see ``bot.api.Context``)."""

    nick: str
    channel: str | None
    bot_nick: str
    is_admin: bool
    state: MutableMapping[str, Any]
    log: logging.Logger
    reply_target: str
    _say: Callable[[str, str], None] = field(repr=False)
    replies: int = 0

    def reply(self, text: str) -> None:
        self.replies += 1
        self._say(self.reply_target, str(text))


@dataclass
class Running:
    """A call in progress (command, listener or timer), for timeouts and ``!modules``."""

    name: str
    nick: str
    started: float
    user: str = ""  # user@host, for per-user limits that survive nick changes
    command: bool = True  # a user's command (not a listener or timer)
    pooled: bool = True  # on the shared worker pool (not the built-ins' thread)
    stuck: bool = False  # still running after command_timeout
    future: Future[None] | None = None


@dataclass
class Job:
    """One call to run on a worker: what to call, with which context, on whose behalf."""

    name: str  # command name, or module.function for listeners and timers
    module: LoadedModule | None  # None for built-ins
    ctx: CallContext
    call: Callable[[CallContext], object]
    report_errors: bool = True  # commands tell the user; listeners and timers only log
    user: str = ""  # user@host of who asked
    audit: str | None = None  # for admin commands: who ran what, logged with the outcome


class RateLimiter:
    """Sliding-window counts per key (a user, a channel); not thread-safe by design.

    Only the connection thread calls it, once per command.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, limit: int, window: float) -> bool:
        now = self._clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= limit:
            return False
        hits.append(now)
        if len(self._hits) > 10_000:  # forget idle keys so memory stays bounded
            self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - window}
        return True


class Dispatcher:
    #: Stuck calls (past ``command_timeout``) one user may have before their new
    #: commands are refused, so one user's hanging commands cannot take every
    #: worker. Quick commands are never refused for this: a burst just queues.
    max_stuck_per_user = 2

    def __init__(self, host: Host, executor: ThreadPoolExecutor) -> None:
        self.host = host
        self.executor = executor
        # Built-ins (help, reload, modules...) get their own thread: an admin can
        # still reload a fix while every worker is stuck in a hung command.
        self.builtin_executor = ThreadPoolExecutor(1, thread_name_prefix="builtin")
        self.limiter = RateLimiter()
        self._running: dict[int, Running] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def handle(self, message: Message) -> None:
        """Called for every PRIVMSG; returns at once."""
        with self.host.swap_lock:
            self._handle(message)

    def _handle(self, message: Message) -> None:
        registry = self.host.registry  # one snapshot for this whole message
        config = self.host.config
        admin = is_admin(message.source, config.admins)
        for spec, module in registry.listeners():
            match = spec.pattern.search(message.text) if spec.pattern else None
            if match is not None:
                ctx = self._context(module.name, message.source.nick, message.channel, admin)
                call = _bind(spec.func, match)
                self.start(Job(_label(module, spec.func), module, ctx, call, report_errors=False))

        if not message.text.startswith(config.prefix):
            return
        name, _, args = message.text[len(config.prefix) :].partition(" ")
        entry = registry.find(name) if name else None
        if entry is None:
            return  # unknown commands get no reply: no noise in channels
        if entry.spec.admin and not admin:
            log.warning("refused %s%s to %s", config.prefix, entry.spec.name, message.source.mask)
            text = f"{message.source.nick}: {config.prefix}{entry.spec.name} is for admins only"
            self.host.say(message.reply_target, text)
            return
        if not admin and not self._within_limits(message, entry.spec.name):
            return
        audit = f"{message.source.mask}: {message.text[:200]}" if entry.spec.admin else None
        module_name = entry.module.name if entry.module else "builtins"
        ctx = self._context(module_name, message.source.nick, message.channel, admin)
        call = _bind(entry.spec.func, args.strip())
        job = Job(entry.spec.name, entry.module, ctx, call, user=_user_key(message), audit=audit)
        self.start(job)

    def _within_limits(self, message: Message, name: str) -> bool:
        """Per-user and per-channel command rates, and room left by stuck calls."""
        rate = self.host.config.command_rate
        source = message.source
        user = _user_key(message)
        if not self.limiter.allow(f"user:{user}", rate.per_user, rate.window):
            log.warning("rate limit: dropped %s from %s", name, source.mask)
            return False
        channel = message.channel
        if channel and not self.limiter.allow(
            f"chan:{channel.lower()}", rate.per_channel, rate.window
        ):
            log.warning("rate limit: dropped %s in %s", name, channel)
            return False
        with self._lock:
            stuck = [r for r in self._running.values() if r.stuck and r.pooled]
        if sum(1 for r in stuck if r.user == user) >= self.max_stuck_per_user:
            self.host.say(
                message.reply_target, f"{source.nick}: still busy with your last commands"
            )
            return False
        if len(stuck) >= self.executor._max_workers:  # a new call would wait for a hung one
            self.host.say(message.reply_target, f"{source.nick}: busy, try again in a moment")
            return False
        return True

    def handle_event(self, event: Event) -> None:
        """Joins, parts, quits, nick changes and kicks, for ``@on_event`` listeners."""
        with self.host.swap_lock:
            for spec, module in self.host.registry.listeners():
                if event.kind in spec.events:
                    ctx = self._context(module.name, event.nick, event.channel, False)
                    call = _bind(spec.func, event)
                    self.start(Job(_label(module, spec.func), module, ctx, call, False))

    def run_timer(self, module: LoadedModule, func: Callable[[], object]) -> None:
        ctx = self._context(module.name, "", None, False)
        with self.host.swap_lock:
            if module.activity.retired:
                return  # replaced since the timer fired
            self.start(Job(_label(module, func), module, ctx, lambda ctx: func(), False))

    def _context(self, module: str, nick: str, channel: str | None, admin: bool) -> CallContext:
        return CallContext(
            nick=nick,
            channel=channel,
            bot_nick=self.host.nick,
            is_admin=admin,
            state=self.host.state_for(module),
            log=logging.getLogger(f"commands.{module}"),
            reply_target=channel or nick,
            _say=self.host.say,
        )

    def start(self, job: Job) -> None:
        """Run ``job`` on the worker pool; its module version stays alive until it ends."""
        if job.module is not None:
            job.module.activity.enter()  # the old version's teardown waits for this call
        call_id = next(self._ids)
        pooled = job.module is not None
        running = Running(
            job.name, job.ctx.nick, time.monotonic(), job.user, job.report_errors, pooled
        )
        with self._lock:
            self._running[call_id] = running
        executor = self.executor if pooled else self.builtin_executor
        try:
            running.future = executor.submit(self._run, call_id, job)
        except RuntimeError:  # executor shut down: we are stopping
            self._done(call_id, job.module)

    def _run(self, call_id: int, job: Job) -> None:
        ctx = job.ctx
        if job.report_errors:  # timed from the start of the call, not from queueing
            timeout = self.host.config.command_timeout
            self.host.call_later(timeout, lambda: self._check_timeout(call_id, ctx, timeout))
        outcome = "failed"
        said: list[str] = []
        try:
            for line in _lines(job.call(ctx)):
                ctx.reply(line)
                said.append(line)
            outcome = " / ".join(said)[:300]
        except CommandError as exc:
            outcome = f"refused: {exc}"
            ctx.reply(str(exc) or f"{job.name}: invalid arguments (see help {job.name})")
        except Exception as exc:
            folder = job.module.path.parent if job.module else None
            where = _where(exc, folder)
            trace = "".join(traceback.format_exception(exc))
            log.error("%s (%s) failed for %s:\n%s", job.name, where, ctx.nick or "-", trace)
            if job.report_errors:
                detail = f": {str(exc).splitlines()[0][:200]}" if str(exc).strip() else ""
                ctx.reply(f"{job.name} failed: {type(exc).__name__}{detail} ({where})")
        finally:
            if job.audit:
                log.info("admin command by %s -> %s", job.audit, outcome)
            self._done(call_id, job.module)

    def _done(self, call_id: int, module: LoadedModule | None) -> None:
        with self._lock:
            self._running.pop(call_id, None)
        if module is not None:
            module.activity.exit()

    def _check_timeout(self, call_id: int, ctx: CallContext, timeout: float) -> None:
        with self._lock:
            running = self._running.get(call_id)
        if running is not None:
            running.stuck = True
            log.warning("%s for %s still running after %.0f s", running.name, running.nick, timeout)
            ctx.reply(f"{running.name}: timed out after {timeout:g} s")

    def running(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())


def _user_key(message: Message) -> str:
    """Who a user is for limits: user@host, which survives nick changes."""
    return f"{message.source.user}@{message.source.host}".lower()


def _bind(func: Callable[..., object], arg: object) -> Callable[[CallContext], object]:
    return lambda ctx: func(ctx, arg)


def _label(module: LoadedModule, func: object) -> str:
    return f"{module.name}.{getattr(func, '__name__', 'timer')}"


def _lines(result: Any) -> Iterable[str]:
    if result is None:
        return ()
    if isinstance(result, str):
        return (result,)
    if isinstance(result, bytes):
        return (result.decode("utf-8", "replace"),)
    return (str(item) for item in result)


def _where(exc: BaseException, folder: Path | None) -> str:
    """file:line of the deepest frame inside the commands folder (or the deepest at all)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if folder is not None:
        inside = [f for f in frames if Path(f.filename).parent == folder]
        frames = inside or frames
    if not frames:
        return "unknown location"
    last = frames[-1]
    return f"{Path(last.filename).parent.name}/{Path(last.filename).name}:{last.lineno}"
