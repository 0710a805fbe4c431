"""A call's output is bounded: ``rate_limit.per_reply`` lines, then "... N more lines
dropped"; a never-ending generator is stopped (in-process and in a worker process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import app_factory, replies, say

from bot.app import App

CHATTY = '''
from bot.api import command


@command
def huge(ctx, args):
    """huge -- five megabytes in one string"""
    return "x" * 5_000_000


@command
def many(ctx, args):
    """many -- 25 lines"""
    return [f"line {i}" for i in range(25)]


@command
def forever(ctx, args):
    """forever -- a generator that never ends"""
    n = 0
    while True:
        n += 1
        yield f"line {n}"


@command
def talks(ctx, args):
    """talks -- ctx.reply in a loop, then a return value"""
    for i in range(12):
        ctx.reply(f"said {i}")
    return "and returned"
'''


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., App]]:
    with app_factory(tmp_path) as factory:
        yield factory


def started(make: Callable[..., App], per_reply: int = 10, **config: object) -> App:
    fast = {"burst": 10_000, "per_second": 100_000, "per_reply": per_reply}
    app = make({"chatty.py": CHATTY}, rate_limit=fast, **config)
    assert not app.load_all().errors
    return app


@pytest.mark.parametrize("isolate", [[], ["chatty"]])
def test_a_call_sends_at_most_per_reply_lines(make: Callable[..., App], isolate: list[str]) -> None:
    app = started(make, isolate=isolate)
    lines = say(app, "!many", admin=False)
    assert lines == [*(f"line {i}" for i in range(10)), "... 15 more lines dropped"]
    huge = say(app, "!huge", admin=False)
    assert (
        len(huge) == 11 and huge[-1].startswith("... ") and huge[-1].endswith(" more lines dropped")
    )
    assert int(huge[-1].split()[1]) > 10_000  # 5 MB of text: about 12,500 lines
    talked = say(app, "!talks", admin=False)
    assert talked == [*(f"said {i}" for i in range(10)), "... 3 more lines dropped"]


@pytest.mark.parametrize("isolate", [[], ["chatty"]])
def test_a_never_ending_generator_is_stopped_at_the_cap(
    make: Callable[..., App], isolate: list[str]
) -> None:
    app = started(make, per_reply=3, isolate=isolate)
    began = time.monotonic()
    assert say(app, "!forever", admin=False) == [
        "line 1",
        "line 2",
        "line 3",
        "... more lines dropped",
    ]
    assert time.monotonic() - began < 5  # stopped, not run out of memory
    assert replies(app) == []
