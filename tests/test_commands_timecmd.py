"""commands/timecmd.py: the time command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.testing import LoadCommand

COMMANDS = Path(__file__).resolve().parents[1] / "commands"
TIMECMD = COMMANDS / "timecmd.py"

NOON = 1_700_049_600.0  # 2023-11-15 12:00:00 UTC, a Wednesday


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module reads the wall clock (time.time()); stop it at NOON."""
    monkeypatch.setattr(time, "time", lambda: NOON)


@pytest.mark.parametrize(
    ("args", "reply"),
    [
        ("", "2023-11-15 12:00:00 UTC (Wednesday)"),
        ("utc", "2023-11-15 12:00:00 UTC (Wednesday)"),
        ("Europe/Berlin", "2023-11-15 13:00:00 Europe/Berlin (CET), UTC+01:00 (Wednesday)"),
        ("europe/berlin", "2023-11-15 13:00:00 Europe/Berlin (CET), UTC+01:00 (Wednesday)"),
        ("America/New York", "2023-11-15 07:00:00 America/New_York (EST), UTC-05:00 (Wednesday)"),
        ("Asia/Kolkata", "2023-11-15 17:30:00 Asia/Kolkata (IST), UTC+05:30 (Wednesday)"),
        ("UTC+2", "2023-11-15 14:00:00 UTC+02:00 (Wednesday)"),
        ("-03:30", "2023-11-15 08:30:00 UTC-03:30 (Wednesday)"),
        ("Pacific/Kiritimati", "2023-11-16 02:00:00 Pacific/Kiritimati, UTC+14:00 (Thursday)"),
    ],
)
def test_time(load_command: LoadCommand, args: str, reply: str) -> None:
    bot = load_command(TIMECMD)
    assert bot.say(f"!time {args}".rstrip()) == [reply]


UNKNOWN = "time: unknown time zone {!r} (try e.g. Europe/Berlin or UTC+2)"
NO_OFFSET = "time: {!r} is not a UTC offset"


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("Mars/Olympus", UNKNOWN.format("Mars/Olympus")),
        ("../../etc/passwd", UNKNOWN.format("../../etc/passwd")),
        ("UTC+15", NO_OFFSET.format("UTC+15")),
        ("+01:75", NO_OFFSET.format("+01:75")),
        ("x" * 99, UNKNOWN.format("x" * 39 + "…")),  # clipped to 40 characters
    ],
)
def test_unknown_zone(load_command: LoadCommand, zone: str, message: str) -> None:
    bot = load_command(TIMECMD)
    assert bot.say(f"!time {zone}") == [message]


def test_time_through_the_bot(load_command: LoadCommand) -> None:
    bot = load_command(TIMECMD)
    assert bot.say("!time Asia/Tokyo") == [
        "2023-11-15 21:00:00 Asia/Tokyo (JST), UTC+09:00 (Wednesday)"
    ]
    assert bot.say("!time Atlantis") == [
        "time: unknown time zone 'Atlantis' (try e.g. Europe/Berlin or UTC+2)"
    ]
