"""What a module version's ``setup(bot)``/``teardown(bot)`` receive, and its timers.

A ``ModuleHandle`` is the ``bot.api.Bot`` of one version of one module. It owns
that version's timers: they run only while the version is live, stop the moment
a switch begins, and are dropped with the version, so ten reloads never mean
ten timers and a pending timer never keeps an old version alive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from bot.api import Response
from bot.loader import LoadedModule
from bot.storage import ModuleState


class Host(Protocol):
    """What a handle needs from the bot."""

    def state_for(self, module: str) -> ModuleState: ...

    def say(self, target: str, text: str) -> None: ...

    def fetch(self, url: str, **options: Any) -> Response: ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> None: ...


RunTimer = Callable[[LoadedModule, Callable[[], object]], None]


class ModuleTimer:
    """A timer of one module version (see ``bot.api.Timer``).

    Cancelling drops the references to the module's code at once, so a pending
    timer never keeps an old version alive until its due time.
    """

    def __init__(self, func: Callable[[], object], delay: float, interval: float | None) -> None:
        self.func: Callable[[], object] | None = func
        self.delay = delay
        self.interval = interval

    def cancel(self) -> None:
        self.func = None

    @property
    def cancelled(self) -> bool:
        return self.func is None


class ModuleHandle:
    """What ``setup(bot)``/``teardown(bot)`` receive (see ``bot.api.Bot``).

    Owns the module version's timers: they run while the version is live and stop
    the moment it is paused (a switch begins) or forgotten (it was replaced).
    """

    def __init__(self, host: Host, run_timer: RunTimer, loaded: LoadedModule) -> None:
        self._host = host
        self._run_timer = run_timer
        self._loaded: LoadedModule | None = loaded
        self.module = loaded.name
        self.log = module_log(loaded.name)
        self._timers: list[ModuleTimer] = []
        self._live = False
        self._epoch = 0  # a timer scheduled in an earlier live period does not fire
        self.torn_down = False  # teardown ran (or runs): not again, until set up again
        self.settings: object = None  # its Settings (see bot.settings), kept up to date

    @property
    def state(self) -> ModuleState:
        return self._host.state_for(self.module)

    def say(self, target: str, text: str) -> None:
        self._host.say(target, text)

    def fetch(self, url: str, **options: Any) -> Response:
        return self._host.fetch(url, **options)

    def after(self, seconds: float, func: Callable[[], object]) -> ModuleTimer:
        return self._add(ModuleTimer(func, seconds, None))

    def every(self, seconds: float, func: Callable[[], object]) -> ModuleTimer:
        if seconds <= 0:
            raise ValueError("every() needs a positive interval")
        return self._add(ModuleTimer(func, seconds, seconds))

    def _add(self, timer: ModuleTimer) -> ModuleTimer:
        self._timers.append(timer)
        if self._live:
            self._schedule(timer, timer.delay)
        return timer

    def go_live(self) -> None:
        self._live = True
        self._epoch += 1
        for timer in self._timers:
            self._schedule(timer, timer.delay)

    def pause(self) -> None:
        """Stop the timers from firing (they start again with ``go_live``)."""
        self._live = False
        self._epoch += 1

    def drop_timers(self) -> None:
        """The timers belong to a setup that was torn down: cancel them for good."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def forget(self) -> None:
        """Drop the module version (after its teardown) so nothing here pins it."""
        self.pause()
        self.drop_timers()
        self._loaded = None

    def _schedule(self, timer: ModuleTimer, delay: float) -> None:
        epoch = self._epoch
        self._host.call_later(max(0.0, delay), lambda: self._fire(timer, epoch))

    def _fire(self, timer: ModuleTimer, epoch: int) -> None:
        func, loaded = timer.func, self._loaded
        if func is None or loaded is None or not self._live or epoch != self._epoch:
            return
        if timer.interval is None:
            timer.cancel()
            self._timers.remove(timer)
        else:
            self._schedule(timer, timer.interval)
        self._run_timer(loaded, func)


def module_log(name: str) -> logging.Logger:
    return logging.getLogger(f"commands.{name}")
