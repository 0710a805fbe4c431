"""``time.time()`` following a ``bot.testing`` bot's fake clock, for command tests."""

from __future__ import annotations

import time
from typing import Any

import pytest


class WallClock:
    """Makes ``time.time()`` follow a ``bot.testing`` bot's fake clock.

    The plugin's clock drives timers only; modules that keep absolute times
    (reminders, "last seen") read the wall clock, so a test that moves the fake
    clock needs the wall clock to move with it. ``follow(bot)`` switches to a new
    bot (after a restart) without the time jumping; ``skip(seconds)`` moves it on
    by itself (while no bot runs).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, start: float = 1_700_000_000.0) -> None:
        self._base = start
        self._bot: Any = None
        monkeypatch.setattr(time, "time", self)

    def __call__(self) -> float:
        return self._base + (self._bot.now if self._bot is not None else 0.0)

    def skip(self, seconds: float) -> None:
        """Time passes while no bot runs (a restart's downtime)."""
        self._base += seconds

    def follow(self, bot: Any) -> None:
        current = self()
        self._bot = bot
        self._base = current - bot.now
