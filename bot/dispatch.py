"""From a chat message to a command call on a worker thread, and its replies to the outbox.

The firewall: nothing a command does (raise, return garbage, hang) escapes
here. A ``CommandError`` is shown to the user as-is; any other exception gets
the user one line naming the file:line, and the traceback goes to the log.
Runs on the connection thread only long enough to look the command up; the
command itself runs on the worker pool, so a slow command never stops the bot
from answering PINGs or other users.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bot.api import CommandError
from bot.auth import is_admin
from bot.config import Config
from bot.loader import LoadedModule
from bot.message import Message
from bot.registry import Entry, Registry

log = logging.getLogger(__name__)


class Host(Protocol):
    """What the dispatcher needs from the app (kept narrow so tests can fake it)."""

    config: Config
    registry: Registry

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
    """A command call in progress, for timeouts and ``!modules``."""

    name: str
    nick: str
    started: float
    future: Future[None] | None = None


class Dispatcher:
    def __init__(self, host: Host, executor: ThreadPoolExecutor) -> None:
        self.host = host
        self.executor = executor
        self._running: dict[int, Running] = {}
        self._lock = threading.Lock()
        self._ids = iter(range(1, 2**63))

    def handle(self, message: Message) -> None:
        """Called for every PRIVMSG; returns at once."""
        config = self.host.config
        if not message.text.startswith(config.prefix):
            return
        name, _, args = message.text[len(config.prefix) :].partition(" ")
        if not name:
            return
        registry = self.host.registry  # one snapshot for this whole call
        entry = registry.find(name)
        if entry is None:
            return  # unknown commands get no reply: no noise in channels
        admin = is_admin(message.source, config.admins)
        if entry.spec.admin and not admin:
            log.warning("refused %s%s to %s", config.prefix, entry.spec.name, message.source.mask)
            self.host.say(
                message.reply_target,
                f"{message.source.nick}: {config.prefix}{entry.spec.name} is for admins only",
            )
            return
        if entry.module is not None:
            entry.module.activity.enter()  # its teardown waits until this call ends
        self.submit(entry, message, args.strip(), admin)

    def submit(self, entry: Entry, message: Message, args: str, admin: bool) -> None:
        module_name = entry.module.name if entry.module else "builtins"
        ctx = CallContext(
            nick=message.source.nick,
            channel=message.channel,
            bot_nick=self.host.nick,
            is_admin=admin,
            state=self.host.state_for(module_name),
            log=logging.getLogger(f"commands.{module_name}"),
            reply_target=message.reply_target,
            _say=self.host.say,
        )
        call_id = next(self._ids)
        running = Running(entry.spec.name, message.source.nick, time.monotonic())
        with self._lock:
            self._running[call_id] = running
        try:
            running.future = self.executor.submit(self._run, call_id, entry, ctx, args)
        except RuntimeError:  # executor shut down: we are stopping
            self._done(call_id, entry.module)
            return
        timeout = self.host.config.command_timeout
        self.host.call_later(timeout, lambda: self._check_timeout(call_id, ctx, timeout))

    def _run(self, call_id: int, entry: Entry, ctx: CallContext, args: str) -> None:
        spec = entry.spec
        try:
            for line in _lines(spec.func(ctx, args)):
                ctx.reply(line)
        except CommandError as exc:
            ctx.reply(str(exc) or f"{spec.name}: invalid arguments (see help {spec.name})")
        except Exception as exc:
            folder = entry.module.path.parent if entry.module else None
            where = _where(exc, folder)
            log.error(
                "command %s (%s) failed for %s:\n%s",
                spec.name,
                where,
                ctx.nick,
                "".join(traceback.format_exception(exc)),
            )
            detail = f": {str(exc).splitlines()[0][:200]}" if str(exc).strip() else ""
            ctx.reply(f"{spec.name} failed: {type(exc).__name__}{detail} ({where})")
        finally:
            self._done(call_id, entry.module)

    def _done(self, call_id: int, module: LoadedModule | None) -> None:
        with self._lock:
            self._running.pop(call_id, None)
        if module is not None:
            module.activity.exit()

    def _check_timeout(self, call_id: int, ctx: CallContext, timeout: float) -> None:
        with self._lock:
            running = self._running.get(call_id)
        if running is not None:
            log.warning(
                "command %s for %s still running after %.0f s", running.name, running.nick, timeout
            )
            ctx.reply(f"{running.name}: timed out after {timeout:g} s")

    def running(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())


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
