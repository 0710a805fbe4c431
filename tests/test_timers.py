"""bot.timers: one heap for every transport's timers."""

from __future__ import annotations

from bot.timers import TimerHeap


def test_due_in_time_order_then_in_the_order_added() -> None:
    now = [100.0]
    timers = TimerHeap(lambda: now[0])
    ran: list[str] = []
    timers.add(5, lambda: ran.append("late"))
    timers.add(1, lambda: ran.append("first"))
    timers.add(1, lambda: ran.append("second"))
    timers.add(-3, lambda: ran.append("overdue"))  # a negative delay means now
    assert timers.wait_time(10) == 0.0 and len(timers) == 4
    while (due := timers.pop_due(now[0] + 1)) is not None:
        due[1]()
    assert ran == ["overdue", "first", "second"]
    assert timers.pop_due() is None  # "late" is not due yet
    assert timers.wait_time(10) == 5.0 and timers.wait_time(2) == 2.0
    now[0] += 5
    popped = timers.pop_due()
    assert popped is not None and popped[0] == 105.0
    assert TimerHeap().wait_time(0.5) == 0.5
