"""From a chat message to a command call on a worker thread, and its replies to the outbox.

The firewall: nothing a command does (raise anything, even ``SystemExit``,
return garbage, hang) escapes here. A ``CommandError`` is shown to the user
as-is; anything else gets the user one line naming the file:line, and the
traceback goes to the log. Runs on the connection thread only long enough to
look the command up; the command itself runs on the worker pool, so a slow
command never stops the bot from answering PINGs or other users.

Every call's timeout counts from the moment it is queued; one timer watches
them all. Calls for a module that is being switched wait (``Live.held``) and
run on its new version.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from bot.api import CommandError, Event, Response, State
from bot.channels import at_least
from bot.config import Config
from bot.context import CallContext
from bot.ignores import Ignores
from bot.loader import LoadedModule, format_exception
from bot.message import Message, Source
from bot.policy import Policy, user_id, user_key
from bot.registry import Entry, Live

log = logging.getLogger(__name__)


class Host(Protocol):
    """What the dispatcher needs from the app (kept narrow so tests can fake it)."""

    config: Config

    @property
    def nick(self) -> str: ...

    def say(self, target: str, text: str) -> None: ...

    def reply(
        self,
        target: str,
        text: str,
        *,
        urgent: bool = False,
        room: int | None = None,
        kind: str = "message",
    ) -> tuple[int, int]: ...

    def state_for(self, module: str) -> State: ...

    def settings_for(self, module: str, channel: str | None = None) -> Any: ...

    def fetch(self, url: str, **options: Any) -> Response: ...

    def notice(self, target: str, text: str) -> None: ...

    def modes_of(self, channel: str | None, nick: str) -> frozenset[str]: ...

    @property
    def ignores(self) -> Ignores: ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> None: ...

    def fold(self) -> Callable[[str], str]: ...


class Cut(list[str]):
    """Lines of a result already cut short elsewhere (in a worker process): ``unread``
    more were not sent here (None: a generator that was stopped)."""

    def __init__(self, lines: list[str], unread: int | None) -> None:
        super().__init__(lines)
        self.unread = unread


@dataclass
class Running:
    """A call queued or in progress (command, listener or timer), for timeouts and ``!modules``."""

    name: str
    nick: str
    started: float  # when it was queued: its timeout counts from here
    user: str = ""  # user@host, for per-user limits that survive nick changes
    command: bool = True  # a user's command (not a listener or timer)
    pooled: bool = True  # on the shared worker pool (not the built-ins' threads)
    timeout: float | None = None  # seconds from queueing; None: no limit
    stuck: bool = False  # still running (or still queued) after its timeout
    began: bool = False  # a worker has picked it up
    future: Future[None] | None = None
    notify: Callable[[str], None] | None = field(default=None, repr=False)

    @property
    def deadline(self) -> float | None:
        return None if self.timeout is None else self.started + self.timeout


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
    timeout: float | None = None  # None: the config's command_timeout
    # Event listeners and timers wait behind commands and message listeners, which keep
    # their order: "bob++" then "!karma bob" counts the vote first, however busy.
    background: bool = False


class Dispatcher:
    #: Stuck calls (past their timeout) one user may have, admins included, before
    #: their new commands are refused, so one user's hanging commands cannot take
    #: every worker. Quick commands are never refused for this: a burst just queues.
    max_stuck_per_user = 2
    #: Listener and timer calls waiting for a worker, per worker, before more are
    #: dropped (a flood of chatter must not pile up without end).
    max_queued_per_worker = 32
    #: Commands waiting for a worker, per worker, before users are told "busy". Each
    #: also times out from when it was said, so a long queue answers late, not never.
    max_queued_commands_per_worker = 256
    #: Threads for the built-in commands: one may wait on a reload, the others answer.
    builtin_threads = 2

    def __init__(self, host: Host, live: Live, executor: ThreadPoolExecutor) -> None:
        self.host = host
        self.live = live
        self.executor = executor
        # Built-ins (help, reload, modules...) get their own threads: an admin can
        # still reload a fix while every worker is stuck in a hung command.
        self.builtin_executor = ThreadPoolExecutor(
            self.builtin_threads, thread_name_prefix="builtin"
        )
        self.policy = Policy(
            lambda: host.config, host.ignores, host.say, host.notice, fold=host.fold
        )
        self._running: dict[int, Running] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sweep_at: float | None = None  # when the timeout check is due next
        # The transport's clock, which the timeout check is scheduled on (the test
        # plugin's is fake); calls are timed from queueing on it.
        self.clock: Callable[[], float] = time.monotonic
        self._dropped = 0  # calls turned away because the queue was full, since last logged
        self._waiting = 0  # calls on the worker pool not picked up by a worker yet
        # Calls waiting for a worker: commands and message listeners first, then event
        # listeners and timers, so a JOIN flood's listener calls never delay a command.
        self._lanes: tuple[deque[tuple[int, Running, Job]], ...] = (deque(), deque())
        # ...and at most a quarter of the workers run those at once, so a flood of them
        # (5,000 joins to record) leaves workers, and the GIL, free for commands.
        self._background_running = 0
        self._deferred = 0  # worker turns given back while the background share was full

    @property
    def registry(self) -> Any:
        return self.live.registry

    # -- messages and events in ------------------------------------------------------

    def handle(self, message: Message) -> None:
        """Called for every PRIVMSG; returns at once."""
        policy = self.policy
        admin = policy.is_admin(message.source)
        if not admin and policy.ignored(message.source):
            return  # an ignored user reaches no command and no listener
        with self.live.lock:
            self._listeners(message, admin, None)
            self._command(message, admin, check_limits=True)

    def handle_event(self, event: Event, source: Source | None = None) -> None:
        """Joins, parts, quits, nick changes, kicks and actions, for ``@on_event``
        listeners; ``source`` (who did it) gives their ``ctx.user_id``."""
        user_id = self._id_of(source) if source is not None and source.host else ""
        with self.live.lock:
            self._event(event, None, user_id)

    def run_timer(self, module: LoadedModule, func: Callable[[], object]) -> None:
        ctx = self._context(module.name, "", None, False)
        with self.live.lock:
            if module.activity.retired:
                return  # replaced since the timer fired
            self.start(
                Job(_label(module, func), module, ctx, lambda ctx: func(), False, background=True)
            )

    # The three below run under ``live.lock``; ``only`` limits them to one module's
    # listeners when they run again after a switch.

    def _listeners(self, message: Message, admin: bool, only: str | None) -> None:
        held = self.live.held
        for spec, module in self.live.registry.listeners():
            if only is not None and module.name != only:
                continue
            match = spec.pattern.search(message.text) if spec.pattern else None
            if match is None or self.policy.off(message.channel, module.name):
                continue
            if module.name in held:
                if only is None:  # once per module: the retry runs all its listeners
                    only_this = module.name
                    self.live.wait_for_switch(
                        lambda m=only_this: self._listeners(message, admin, m)  # type: ignore[misc]
                    )
                    held = held - {module.name}
                continue
            ctx = self._message_context(module.name, message, admin)
            self.start(Job(_label(module, spec.func), module, ctx, _bind(spec.func, match), False))

    def _command_text(self, message: Message) -> str | None:
        """What follows the prefix, the bot's nick (``NICK: help``, ``NICK, help``) or,
        in private, the whole text; None when the message is not addressed to the bot."""
        text, config = message.text, self.host.config
        if text.startswith(config.prefix):
            return text[len(config.prefix) :]
        if config.addressing.nick:
            nick = self.host.nick
            if text[len(nick) : len(nick) + 1] in (":", ",") and len(text) > len(nick):
                fold = self.host.fold()
                if fold(text[: len(nick)]) == fold(nick):
                    return text[len(nick) + 1 :].lstrip().removeprefix(config.prefix)
        if config.addressing.private and message.is_private:
            return text
        return None

    def _command(self, message: Message, admin: bool, *, check_limits: bool) -> None:
        config, policy = self.host.config, self.policy
        body = self._command_text(message)
        if body is None:
            return
        name, _, args = body.partition(" ")
        entry = self.live.registry.find(name) if name else None
        if entry is None:
            return  # unknown commands get no reply: no noise in channels
        spec, module = entry.spec, entry.module
        if policy.off(message.channel, module.name if module else None, spec.name):
            return  # turned off in this channel: as if it were not there
        if check_limits and not (admin or policy.within_rate(message, spec.name)):
            return
        said = f"{config.prefix}{spec.name}"
        if not admin:
            why = self._refusal(message, entry)
            if why is not None:
                log.warning("refused %s to %s: %s", said, message.source.mask, why)
                policy.refuse(message, f"{said} {why}")
                return
        if check_limits and module is not None and not self._room_for(message, admin):
            return
        if module is not None and module.name in self.live.held:
            # Its module is being switched: run it on the new version (limits are passed).
            self.live.wait_for_switch(lambda: self._command(message, admin, check_limits=False))
            return
        self._start_command(message, entry, args, admin)

    def _refusal(self, message: Message, entry: Entry) -> str | None:
        """Why a non-admin may not run ``entry`` here (None: they may)."""
        spec = entry.spec
        if spec.admin:
            return "is for admins only"
        modes = self.host.modes_of(message.channel, message.source.nick)
        why = self.policy.permitted(message, spec.name, modes)
        if why is None and spec.require and not at_least(modes, spec.require):
            where = "in this channel" if message.channel else "in the channel: say it there"
            why = f"needs {spec.require} {where}"
        return why

    def _start_command(self, message: Message, entry: Entry, args: str, admin: bool) -> None:
        config = self.host.config
        audit = f"{message.source.mask}: {message.text[:200]}" if entry.spec.admin else None
        module_name = entry.module.name if entry.module else "builtins"
        ctx = self._message_context(module_name, message, admin)
        call = _bind(entry.spec.func, args.strip())
        # Built-in admin work (a reload) has its own deadline: reload_timeout.
        timeout = None
        if entry.module is None and entry.spec.admin:
            timeout = max(config.command_timeout, config.reload_timeout + config.command_timeout)
        job = Job(
            entry.spec.name, entry.module, ctx, call, True, user_key(message.source), audit, timeout
        )
        self.start(job)

    def _event(self, event: Event, only: str | None, user_id: str = "") -> None:
        held = self.live.held
        for spec, module in self.live.registry.listeners():
            if event.kind not in spec.events or (only is not None and module.name != only):
                continue
            if self.policy.off(event.channel, module.name):
                continue
            if module.name in held:
                if only is None:
                    self.live.wait_for_switch(
                        lambda m=module.name: self._event(event, m, user_id)  # type: ignore[misc]
                    )
                    held = held - {module.name}
                continue
            ctx = self._context(module.name, event.nick, event.channel, False, user_id)
            call = _bind(spec.func, event)
            self.start(Job(_label(module, spec.func), module, ctx, call, False, background=True))

    def _room_for(self, message: Message, admin: bool) -> bool:
        """Room on the worker pool (admins too): not too many stuck calls, a queue not full."""
        user = user_key(message.source)
        with self._lock:
            stuck = [r for r in self._running.values() if r.stuck and r.pooled]
        if sum(1 for r in stuck if r.user == user) >= self.max_stuck_per_user:
            self.policy.refuse(message, "still busy with your last commands", admin=admin)
            return False
        workers = self.executor._max_workers
        full = self._queued() >= workers * self.max_queued_commands_per_worker
        if len(stuck) >= workers or full:
            self.policy.refuse(message, "busy, try again in a moment", admin=admin)
            return False
        return True

    def _queued(self) -> int:
        return self._waiting  # an int read: no lock needed for a limit

    def _context(
        self, module: str, nick: str, channel: str | None, admin: bool, user_id: str = ""
    ) -> CallContext:
        config = self.host.config
        return CallContext(
            nick=nick,
            channel=channel,
            bot_nick=self.host.nick,
            is_admin=admin,
            module=module,
            log=logging.getLogger(f"commands.{module}"),
            reply_target=channel or nick,
            _reply=self.host.reply,
            _state_for=self.host.state_for,
            fetch=self.host.fetch,
            settings=self.host.settings_for(module, channel),
            user_modes=self.host.modes_of(channel, nick),
            user_id=user_id,
            # the built-ins' output is ours, and bounded; a module's is capped
            max_lines=_UNCAPPED if module == "builtins" else config.rate_limit.per_reply,
            urgent=admin,
        )

    def _message_context(self, module: str, message: Message, admin: bool) -> CallContext:
        """The context of a call a message started: who, where, and the server's stamps."""
        ctx = self._context(
            module, message.source.nick, message.channel, admin, self._id_of(message.source)
        )
        ctx.time = server_time(message.tags.get("time")) or ctx.time
        ctx.msgid = message.tags.get("msgid") or None
        return ctx

    def _id_of(self, source: Source) -> str:
        return user_id(source, self.host.fold())

    # -- running calls -----------------------------------------------------------------

    def start(self, job: Job) -> None:
        """Queue ``job`` on the worker pool; its module version counts it until it ends."""
        pooled = job.module is not None
        if pooled and not job.report_errors and self._queued() >= self._queue_limit():
            self._dropped += 1  # a listener or timer while every worker is busy
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning("workers busy: dropped %d listener/timer call(s)", self._dropped)
            return
        if job.module is not None:
            job.module.activity.enter()  # a switch of this module waits for this call
        call_id = next(self._ids)
        timeout = job.timeout if job.timeout is not None else self.host.config.command_timeout
        running = Running(
            job.name,
            job.ctx.nick,
            self.clock(),
            job.user,
            job.report_errors,
            pooled,
            timeout,
            notify=job.ctx.reply if job.report_errors else None,
        )
        with self._lock:
            self._running[call_id] = running
            self._waiting += pooled
            self._arm(running)
        try:
            if pooled:
                running.future = Future()
                with self._lock:
                    self._lanes[1 if job.background else 0].append((call_id, running, job))
                self.executor.submit(self._run_next)
            else:
                running.future = self.builtin_executor.submit(self._run, call_id, running, job)
        except RuntimeError:  # executor shut down: we are stopping
            with self._lock:
                self._waiting -= pooled
            self._done(call_id, job.module)

    def _run_next(self) -> None:
        """One worker turn: the oldest waiting command, else the oldest other call if
        fewer than the background share run (else the turn is given back, and taken
        again when one of those ends)."""
        with self._lock:
            if self._lanes[0]:
                call_id, running, job = self._lanes[0].popleft()
            elif self._background_running < self._background_share():
                call_id, running, job = self._lanes[1].popleft()
                self._background_running += 1
            else:
                self._deferred += 1
                return
        try:
            self._run(call_id, running, job)
        finally:
            if running.future is not None:
                running.future.set_result(None)
            if job.background:
                with self._lock:
                    self._background_running -= 1
                    resume, self._deferred = self._deferred > 0, max(0, self._deferred - 1)
                if resume:
                    with contextlib.suppress(RuntimeError):  # shut down: we are stopping
                        self.executor.submit(self._run_next)

    def _background_share(self) -> int:
        return max(1, self.executor._max_workers // 4)

    def _queue_limit(self) -> int:
        return self.executor._max_workers * self.max_queued_per_worker

    def _run(self, call_id: int, running: Running, job: Job) -> None:
        with self._lock:
            running.began = True
            self._waiting -= running.pooled
        if running.stuck:  # timed out while it waited for a worker; the user was told
            log.warning("%s for %s not run: it waited past its timeout", job.name, running.nick)
            self._done(call_id, job.module)
            return
        ctx = job.ctx
        outcome = "failed"
        said: list[str] = []
        try:
            result = job.call(ctx)
            items = _lines(result)
            sized = items if isinstance(items, tuple) else result
            unread: int | None = 0
            for line in items:
                if ctx.full:  # a never-ending generator stops here
                    known = isinstance(sized, list | tuple)
                    unread = len(sized) - len(said) if known else None
                    break
                ctx.reply(line)
                said.append(line)
            if isinstance(result, Cut) and unread is not None:
                unread = None if result.unread is None else unread + result.unread
            ctx.said_enough(unread)
            # who ran what and how it went; what it said is the command's own business
            # (a reload logs its report itself: once)
            outcome = f"answered in {len(said)} line{'' if len(said) == 1 else 's'}"
        except CommandError as exc:
            outcome = f"refused: {exc}"
            ctx.reply(str(exc) or f"{job.name}: invalid arguments (see help {job.name})")
        except BaseException as exc:  # SystemExit from argparse, KeyboardInterrupt...: all caught
            folder = job.module.path.parent if job.module else None
            where = _where(exc, folder)
            log.error(
                "%s (%s) failed for %s:\n%s",
                job.name,
                where,
                ctx.nick or "-",
                format_exception(exc),
            )
            if job.report_errors:
                text = _first_line(exc)
                detail = f": {text}" if text else ""
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

    # -- timeouts: one timer for all calls ----------------------------------------------

    def _arm(self, running: Running) -> None:
        """Have the timeout check run by ``running``'s deadline (``_lock`` held)."""
        deadline = running.deadline
        if deadline is None or not running.command:
            return
        if self._sweep_at is not None and self._sweep_at <= deadline:
            return
        self._sweep_at = deadline
        delay = max(0.0, deadline - self.clock())
        self.host.call_later(delay, functools.partial(self._sweep, deadline))

    def _sweep(self, armed: float) -> None:
        """Tell the users of calls past their timeout, once each; re-arm for the next."""
        now = self.clock()
        with self._lock:
            if self._sweep_at == armed:
                self._sweep_at = None
            due = []
            for running in self._running.values():
                deadline = running.deadline
                if running.stuck or deadline is None or not running.command:
                    continue
                if deadline <= now:
                    running.stuck = True
                    due.append(running)
                else:
                    self._arm(running)
        for running in due:
            log.warning(
                "%s for %s still %s after %.0f s",
                running.name,
                running.nick,
                "running" if running.began else "waiting for a worker",
                running.timeout,
            )
            if running.notify is not None:
                running.notify(f"{running.name}: timed out after {running.timeout:g} s")

    def running(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    def close(self) -> None:
        """Start no more calls; calls still running are not waited for."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.builtin_executor.shutdown(wait=False, cancel_futures=True)


_UNCAPPED = 1_000_000


def server_time(stamp: str | None) -> datetime | None:
    """An IRCv3 ``time`` tag (``2026-12-01T23:59:00.123Z``) as an aware datetime."""
    if not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None  # a malformed tag: the time it arrived will do
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


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


def _first_line(exc: BaseException) -> str:
    try:
        text = str(exc).strip()
    except Exception:
        return "(its message could not be shown)"
    return text.splitlines()[0][:200] if text else ""


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
