"""Time: the current time in a zone (UTC by default)."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache

from bot.api import CommandError, Context, command

from ._common import clip, now

_OFFSET = re.compile(r"(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)


@cache
def _zones() -> dict[str, str]:
    """Lower-cased zone name -> its proper spelling, for case-insensitive lookup."""
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def find_zone(name: str) -> tuple[tzinfo, str]:
    """The zone called ``name`` (``Europe/Berlin``, ``utc``, ``UTC+2``) and its proper name."""
    text = name.strip()
    if text.upper() in ("", "UTC", "GMT", "Z"):
        return UTC, "UTC"
    offset = _OFFSET.fullmatch(text)
    if offset is not None:
        hours, minutes = int(offset[2]), int(offset[3] or 0)
        if hours > 14 or minutes >= 60:
            raise CommandError(f"time: {clip(text, 40)!r} is not a UTC offset")
        delta = timedelta(hours=hours, minutes=minutes) * (-1 if offset[1] == "-" else 1)
        return timezone(delta), _offset_name(delta)
    proper = _zones().get(text.lower().replace(" ", "_"))
    if proper is None:
        raise CommandError(
            f"time: unknown time zone {clip(text, 40)!r} (try e.g. Europe/Berlin or UTC+2)"
        )
    return zoneinfo.ZoneInfo(proper), proper


def _offset_name(delta: timedelta | None) -> str:
    minutes = int((delta or timedelta()).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def describe(at: datetime, name: str) -> str:
    offset = _offset_name(at.utcoffset())
    abbreviation = at.tzname() or ""
    if abbreviation[:1] in ("+", "-"):
        abbreviation = ""  # tzdata's "+14" says nothing the offset does not
    label = name if abbreviation in (name, offset, "") else f"{name} ({abbreviation})"
    suffix = "" if offset == name or name == "UTC" else f", {offset}"
    return f"{at:%Y-%m-%d %H:%M:%S} {label}{suffix} ({at:%A})"


@command(name="time")
def time_command(ctx: Context, args: str) -> str:
    """time [ZONE] -- the current time in ZONE (default UTC), e.g. time Europe/Berlin"""
    zone, name = find_zone(args)
    return describe(datetime.fromtimestamp(now(), zone), name)
