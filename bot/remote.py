"""What a module in a worker process reaches of the bot: ``ctx``, ``bot``, its state,
its timers and logging, each travelling back to the bot over the one connection.

Owns the worker's side of that connection (``Link``: thread-safe sends and
requests that wait for their answer) and the stand-ins built on it, which give a
module exactly the ``bot.api`` it would get in the bot's own process.
``bot.worker`` runs the module with them; ``bot.isolated`` is the bot's side.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from bot.api import State
from bot.web import Web


class Link:
    """The worker's end of the connection: thread-safe sends, and requests that wait."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._send = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._ids = iter(range(1, sys.maxsize))
        self._ids_lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send:
            self.conn.send(message)

    def request(self, kind: str, *args: Any) -> Any:
        """Send ``(kind, id, *args)`` and wait for the bot's ``("result", id, ok, value)``."""
        with self._ids_lock:
            rid = next(self._ids)
        done: threading.Event = threading.Event()
        box: list[Any] = []
        self._waiting[rid] = (done, box)
        self.send((kind, rid, *args))
        done.wait()
        ok, value = box
        if not ok:
            raise value
        return value

    def answer(self, rid: int, ok: bool, value: Any) -> None:
        entry = self._waiting.pop(rid, None)
        if entry is not None:
            entry[1][:] = [ok, value]
            entry[0].set()


class RemoteState(State):
    """``ctx.state`` in a worker: the bot's storage, one request per operation.

    ``transaction()`` holds the bot's transaction for the module from begin to
    commit; other threads of this worker wait for it, as they would in process.
    """

    def __init__(self, link: Link, module: str) -> None:
        self._link = link
        self.module = module
        self._lock = threading.RLock()
        self._depth = 0

    def _op(self, op: str, *args: Any) -> Any:
        with self._lock:
            return self._link.request("state", self.module, op, args)

    def __getitem__(self, key: str) -> Any:
        return self._op("get", key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._op("set", key, value)

    def __delitem__(self, key: str) -> None:
        self._op("del", key)

    def __contains__(self, key: object) -> bool:
        return bool(self._op("contains", key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._op("keys"))

    def __len__(self) -> int:
        return int(self._op("len"))

    def copy(self) -> dict[str, Any]:
        return dict(self._op("copy"))

    def clear(self) -> None:
        self._op("clear")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[RemoteState]:
        with self._lock:
            self._op("begin")
            try:
                yield self
            except BaseException:
                self._op("rollback")
                raise
            self._op("commit")


class RemoteContext:
    """The ``Context`` a call receives in a worker (see ``bot.api.Context``)."""

    def __init__(
        self,
        link: Link,
        rid: int,
        info: dict[str, Any],
        state: RemoteState,
        settings: Any,
        web: Web,
    ) -> None:
        self._link = link
        self._rid = rid
        self.settings = settings
        self.fetch = web.fetch
        self.nick: str = info["nick"]
        self.channel: str | None = info["channel"]
        self.bot_nick: str = info["bot_nick"]
        self.is_admin: bool = info["is_admin"]
        self.user_modes: frozenset[str] = info.get("user_modes", frozenset())
        self.max_lines: int = info.get("max_lines", 10)
        self.user_id: str = info.get("user_id", "")
        self.time: datetime = info.get("time") or datetime.now(UTC)
        self.msgid: str | None = info.get("msgid")
        self.is_op = bool(self.user_modes & {"q", "a", "o"})
        self.state = state
        self.log = logging.getLogger(f"commands.{state.module}")

    def reply(self, text: str, *, private: bool = False) -> None:
        self._link.send(("reply", self._rid, str(text), "private" if private else "message"))

    def action(self, text: str) -> None:
        self._link.send(("reply", self._rid, str(text), "action"))

    def notice(self, text: str) -> None:
        self._link.send(("reply", self._rid, str(text), "notice"))


class RemoteHandle:
    """What ``setup(bot)``/``teardown(bot)`` receive in a worker (see ``bot.api.Bot``)."""

    def __init__(
        self, link: Link, module: str, state: RemoteState, timers: Timers, web: Web
    ) -> None:
        self._link = link
        self.fetch = web.fetch
        self.module = module
        self.state = state
        self.log = logging.getLogger(f"commands.{module}")
        self._timers = timers
        self.settings: Any = None

    def say(self, target: str, text: str) -> None:
        self._link.send(("say", str(target), str(text)))

    def after(self, seconds: float, func: Callable[[], object]) -> Timer:
        return self._timers.add(seconds, None, func)

    def every(self, seconds: float, func: Callable[[], object]) -> Timer:
        if seconds <= 0:
            raise ValueError("every() needs a positive interval")
        return self._timers.add(seconds, seconds, func)


class Timer:
    def __init__(self, func: Callable[[], object], interval: float | None) -> None:
        self.func: Callable[[], object] | None = func
        self.interval = interval

    def cancel(self) -> None:
        self.func = None


class Timers:
    """``bot.after``/``bot.every`` in a worker: one thread, calls run on the pool."""

    def __init__(self, pool: ThreadPoolExecutor, on_error: Callable[[str], None]) -> None:
        self._pool = pool
        self._on_error = on_error
        self._due: list[tuple[float, int, Timer]] = []
        self._cond = threading.Condition()
        self._seq = 0
        self.stopped = False
        threading.Thread(target=self._run, name="timers", daemon=True).start()

    def add(self, delay: float, interval: float | None, func: Callable[[], object]) -> Timer:
        timer = Timer(func, interval)
        self._push(time.monotonic() + max(0.0, delay), timer)
        return timer

    def stop(self) -> None:
        with self._cond:
            self.stopped = True
            for _, _, timer in self._due:
                timer.cancel()
            self._due.clear()
            self._cond.notify_all()

    def _push(self, at: float, timer: Timer) -> None:
        import heapq

        with self._cond:
            self._seq += 1
            heapq.heappush(self._due, (at, self._seq, timer))
            self._cond.notify_all()

    def _run(self) -> None:
        import heapq

        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.monotonic():
                    if self.stopped:
                        return
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._cond.wait(wait)
                _, _, timer = heapq.heappop(self._due)
            func = timer.func
            if func is None:
                continue
            if timer.interval is None:
                timer.cancel()
            else:
                self._push(time.monotonic() + timer.interval, timer)
            self._pool.submit(self._fire, func)

    def _fire(self, func: Callable[[], object]) -> None:
        try:
            func()
        except BaseException as exc:  # module code may raise anything, even SystemExit
            self._on_error("".join(traceback.format_exception(exc)))


class LogToBot(logging.Handler):
    """Log records of the worker go to the bot's log, where an operator looks."""

    def __init__(self, link: Link) -> None:
        super().__init__()
        self._link = link

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += "\n" + "".join(traceback.format_exception(record.exc_info[1]))
            self._link.send(("log", record.name, record.levelno, text))
        except Exception:
            self.handleError(record)
