"""Tiny stand-ins for unit-testing the standard command modules in ``commands/``.

``load("dice")`` executes ``commands/dice.py`` (and the helpers it imports) through the
real loader, under a namespace of its own, and returns the module object;
``FakeContext`` is a ``Context`` with a plain dict as state; ``run(module, "roll",
"2d6", ctx)`` calls a command the way the dispatcher does and returns its reply lines;
``hear(module, "bob++", ctx)`` and ``happen(module, event, ctx)`` do the same for the
module's ``@on_message`` and ``@on_event`` listeners. ``FakeClock`` freezes
``time.time()`` and runs the timers of ``FakeBot`` handles (what ``setup(bot)`` gets) on
``advance``; a reload is ``load`` again + ``old.retire()`` + ``setup(FakeBot(...))``.
Whole-bot behaviour (reloads, timers, listeners through the dispatcher) is tested
through the ``bot.testing`` plugin instead.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.api import Event, State, command_spec, listener_specs
from bot.loader import Loader

COMMANDS = Path(__file__).resolve().parent.parent / "commands"


def load(name: str) -> types.ModuleType:
    """A fresh execution of ``commands/<name>.py``."""
    loader = Loader(COMMANDS, f"cmdtest_{uuid.uuid4().hex}")
    source = loader.source(name)
    assert source is not None, f"no commands/{name}.py"
    with loader.transaction({}) as txn:  # helpers are imported through the sealed finder
        modules = txn.execute([source], {name})
        txn.commit()
    return modules[name].module


class FakeState(State):
    """A test's dict as ``ctx.state``, with the ``transaction()`` the real state has
    (the dict itself stays the test's to look at)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self._lock = threading.RLock()

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @contextmanager
    def transaction(self) -> Iterator[FakeState]:
        with self._lock:
            yield self


def as_state(state: Any) -> Any:
    return state if hasattr(state, "transaction") else FakeState(state)


@dataclass
class FakeContext:
    nick: str = "alice"
    channel: str | None = "#test"
    bot_nick: str = "reloadbot"
    is_admin: bool = False
    user_id: str = ""  # default: the nick's own user@host
    is_op: bool = False
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    msgid: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("commands.test"))
    replies: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.user_id = self.user_id or f"{self.nick.lower()}@example.org"
        self.state = as_state(self.state)

    def reply(self, text: str, *, private: bool = False) -> None:
        self.replies.append(f"(private) {text}" if private else text)

    def action(self, text: str) -> None:
        self.replies.append(f"* {text}")

    def notice(self, text: str) -> None:
        self.replies.append(f"(notice) {text}")


def lines(result: object) -> list[str]:
    """A command's return value as reply lines, as the dispatcher sends them."""
    if result is None:
        return []
    if isinstance(result, str):
        return [result]
    assert isinstance(result, Iterable)
    return [str(line) for line in result]


def run(module: types.ModuleType, name: str, args: str, ctx: FakeContext) -> list[str]:
    """Call command ``name`` (or an alias) of ``module``; CommandError propagates."""
    for value in vars(module).values():
        spec = command_spec(value)
        if spec is not None and name in spec.names:
            return lines(spec.func(ctx, args))
    raise LookupError(f"no command {name!r} in {module.__name__}")


def hear(module: types.ModuleType, text: str, ctx: FakeContext) -> list[str]:
    """Give ``text`` (said by ``ctx.nick`` in ``ctx.channel``) to the module's message listeners."""
    replies: list[str] = []
    for value in list(vars(module).values()):
        if getattr(value, "__module__", None) != module.__name__:
            continue
        for spec in listener_specs(value):
            match = spec.pattern.search(text) if spec.pattern else None
            if match is not None:
                replies += lines(spec.func(ctx, match))
    return replies


def happen(module: types.ModuleType, event: Event, ctx: FakeContext) -> list[str]:
    """Give ``event`` to the module's event listeners."""
    replies: list[str] = []
    for value in list(vars(module).values()):
        if getattr(value, "__module__", None) != module.__name__:
            continue
        for spec in listener_specs(value):
            if event.kind in spec.events:
                replies += lines(spec.func(ctx, event))
    return replies


class FakeTimer:
    def __init__(self, func: Callable[[], object], interval: float | None) -> None:
        self.func: Callable[[], object] | None = func
        self.interval = interval

    def cancel(self) -> None:
        self.func = None


class FakeBot:
    """The ``Bot`` handle of one module version, with timers run by ``clock.advance``.

    ``retire()`` cancels its timers, as the bot does when the version is replaced.
    """

    def __init__(self, clock: FakeClock, state: dict[str, Any], module: str = "test") -> None:
        self.clock = clock
        self.module = module
        self.state = as_state(state)
        self.log = logging.getLogger(f"commands.{module}")
        self.said: list[tuple[str, str]] = []
        self.timers: list[FakeTimer] = []
        self.retired = False

    def say(self, target: str, text: str) -> None:
        self.said.append((target, text))

    def after(self, seconds: float, func: Callable[[], object]) -> FakeTimer:
        return self._add(FakeTimer(func, None), seconds)

    def every(self, seconds: float, func: Callable[[], object]) -> FakeTimer:
        return self._add(FakeTimer(func, seconds), seconds)

    def _add(self, timer: FakeTimer, delay: float) -> FakeTimer:
        if self.retired:  # like the bot: a replaced version's new timers never run
            timer.cancel()
            return timer
        self.timers.append(timer)
        self.clock.schedule(self.clock.now + max(0.0, delay), timer)
        return timer

    def retire(self) -> None:
        self.retired = True
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()

    def pending(self) -> int:
        return sum(1 for t in self.timers if t.func is not None)


class FakeClock:
    """``time.time()`` frozen at ``start``, moved only by ``advance``, which runs due timers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._queue: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()
        monkeypatch.setattr(time, "time", lambda: self.now)

    def schedule(self, due: float, timer: FakeTimer) -> None:
        heapq.heappush(self._queue, (due, next(self._order), timer))

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._queue and self._queue[0][0] <= end:
            due, _, timer = heapq.heappop(self._queue)
            self.now = max(self.now, due)
            func = timer.func
            if func is None:
                continue
            if timer.interval is None:
                timer.cancel()
            else:
                self.schedule(self.now + timer.interval, timer)
            func()
        self.now = end


class WallClock:
    """Makes ``time.time()`` follow a ``bot.testing`` bot's fake clock.

    The plugin's clock drives timers only; modules that keep absolute times
    (reminders, "last seen") read the wall clock, so a test that moves the fake
    clock needs the wall clock to move with it. ``follow(bot)`` switches to a new
    bot (after a restart) without the time jumping.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, start: float = 1_700_000_000.0) -> None:
        self._base = start
        self._bot: Any = None
        monkeypatch.setattr(time, "time", self)

    def __call__(self) -> float:
        return self._base + (self._bot.now if self._bot is not None else 0.0)

    def follow(self, bot: Any) -> None:
        current = self()
        self._bot = bot
        self._base = current - bot.now
