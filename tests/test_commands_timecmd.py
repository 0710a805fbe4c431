"""commands/timecmd.py: the time command."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from command_fakes import COMMANDS, FakeClock, FakeContext, load, run

from bot.api import CommandError

if TYPE_CHECKING:
    from bot.testing import LoadCommand

timecmd = load("timecmd")

NOON = 1_700_049_600.0  # 2023-11-15 12:00:00 UTC, a Wednesday


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock(monkeypatch, start=NOON)


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
def test_time(args: str, reply: str) -> None:
    assert run(timecmd, "time", args, FakeContext()) == [reply]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "UTC+15", "+01:75", "x" * 99])
def test_unknown_zone(zone: str) -> None:
    with pytest.raises(CommandError, match="time: "):
        run(timecmd, "time", zone, FakeContext())


def test_time_through_the_bot(load_command: LoadCommand) -> None:
    bot = load_command(COMMANDS / "timecmd.py")
    assert bot.say("!time Asia/Tokyo") == [
        "2023-11-15 21:00:00 Asia/Tokyo (JST), UTC+09:00 (Wednesday)"
    ]
    assert bot.say("!time Atlantis") == [
        "time: unknown time zone 'Atlantis' (try e.g. Europe/Berlin or UTC+2)"
    ]
