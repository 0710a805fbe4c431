"""bot.runner: module code runs with a deadline; stuck code is left behind, never waited for."""

from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path

import pytest

from bot.runner import Overrun, Runner


def test_results_and_exceptions_pass_through_and_are_not_kept(tmp_path: Path) -> None:
    runner = Runner(tmp_path)

    class Result:
        pass

    result = runner.call("a call", Result, timeout=5)
    ref = weakref.ref(result)
    del result
    assert ref() is None, "the runner's thread still holds the last result"
    with pytest.raises(SystemExit):
        runner.call("exits", lambda: exec("raise SystemExit(3)"), timeout=5)
    assert runner.call("after", lambda: "fine", timeout=5) == "fine"
    runner.close()


def test_a_busy_loop_is_abandoned_at_its_deadline_and_then_interrupted(tmp_path: Path) -> None:
    runner = Runner(tmp_path)
    spinning = threading.Event()
    threads: list[threading.Thread] = []

    def spin() -> None:
        threads.append(threading.current_thread())
        spinning.set()
        while True:
            pass

    started = time.monotonic()
    with pytest.raises(Overrun) as overrun:
        runner.call("spins", spin, timeout=0.2)
    assert time.monotonic() - started < 2
    assert overrun.value.where is not None and overrun.value.where.function == "spin"
    # Abandoned was raised in the stuck thread: a pure-Python loop ends
    threads[0].join(5)
    assert not threads[0].is_alive()
    assert runner.call("next", threading.current_thread, timeout=5) is not threads[0]


def test_a_blocking_call_is_left_behind_and_later_calls_get_a_new_thread(tmp_path: Path) -> None:
    runner = Runner(tmp_path)
    release = threading.Event()
    with pytest.raises(Overrun):
        runner.call("blocks", lambda: release.wait(30), timeout=0.1)
    assert runner.abandoned == 1
    assert runner.call("next", lambda: 42, timeout=1) == 42  # not queued behind the stuck one
    release.set()


def test_a_call_whose_deadline_has_passed_does_not_start(tmp_path: Path) -> None:
    runner = Runner(tmp_path)
    ran: list[int] = []
    with pytest.raises(Overrun) as overrun:
        runner.call("too late", lambda: ran.append(1), timeout=0)
    assert ran == [] and overrun.value.where is None
    assert runner.abandoned == 0  # the idle thread was not given up for nothing
    assert runner.call("in time", lambda: 7, timeout=5) == 7
