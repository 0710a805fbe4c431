"""Who the bot ignores: hostmasks and services accounts, for a while or until removed.

Owns the ignore list: entries from config.yaml (``ignore:``, permanent) and
entries an admin adds (``!ignore``) or the flood limit adds (for
``command_rate.ignore_for`` seconds), the latter two kept in the state database
so they survive a restart. An ignored user reaches no command and no
listener. Unlike ``admins``, a nick-only mask (``nick!*@*``) is accepted here:
ignoring grants nothing.
"""

from __future__ import annotations

import fnmatch
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from bot.casemap import irc_lower
from bot.message import Source

#: Where the entries added at run time are kept: a name no module can own.
STATE_KEY = "__ignores__"

_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class IgnoreError(ValueError):
    """A mask or a duration that cannot be used."""


def parse_duration(text: str) -> float:
    """``30s``, ``10m``, ``2h``, ``1d`` (or a sum, ``1h30m``) in seconds."""
    parts = _DURATION.findall(text.lower())
    if not parts or "".join(a + b for a, b in parts) != text.lower():
        raise IgnoreError(f"{text!r} is not a duration like 30s, 10m, 2h or 1d")
    return float(sum(int(n) * _UNITS[unit] for n, unit in parts))


def normalise(mask: str) -> str:
    """``account:NAME``, or a ``nick!user@host`` glob (a bare nick means ``nick!*@*``)."""
    mask = mask.strip()
    if mask.lower().startswith("account:"):
        name = mask.split(":", 1)[1].strip()
        if not name or any(c.isspace() for c in name):
            raise IgnoreError(f"{mask!r}: expected account:NAME")
        return f"account:{irc_lower(name)}"
    if not mask or any(c.isspace() for c in mask):
        raise IgnoreError(f"{mask!r}: expected a mask like nick!user@host or account:NAME")
    if "!" not in mask:
        mask += "!*@*" if "@" not in mask else ""
    if "@" not in mask:
        mask += "@*"
    nick, rest = mask.split("!", 1)
    return f"{irc_lower(nick)}!{rest.lower()}"


@dataclass(frozen=True)
class Entry:
    mask: str  # normalised
    until: float | None  # time.time() it ends at; None: until removed
    reason: str = ""
    by: str = ""  # who added it: an admin's nick, "config.yaml", or "flood limit"

    def left(self, now: float) -> str:
        if self.until is None:
            return "until removed"
        seconds = max(0, math.ceil(self.until - now))
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size:
                return f"{seconds // size}{unit} left"
        return f"{seconds}s left"


class Ignores:
    """The ignore list; ``match`` runs for every message, so it is kept cheap."""

    def __init__(
        self,
        state: Callable[[], MutableMapping[str, Any]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = state  # the database's mapping, read once at start and on change
        self._clock = clock
        self._lock = threading.Lock()
        self._configured: dict[str, Entry] = {}
        self._stored: dict[str, Entry] = {}
        self._accounts: dict[str, Entry] = {}
        self._masks: list[tuple[re.Pattern[str], Entry]] = []
        self._any_mask: re.Pattern[str] | None = None  # all masks in one: one match a message
        self._loaded = False

    # -- reading ----------------------------------------------------------------------

    def match(self, source: Source) -> Entry | None:
        """The entry that ignores ``source``, if one does (expired ones do not)."""
        if not self._loaded:
            self._load()
        if not self._accounts and not self._masks:
            return None
        now = self._clock()
        if source.account is not None:
            entry = self._accounts.get(f"account:{irc_lower(source.account)}")
            if entry is not None and (entry.until is None or entry.until > now):
                return entry
        if self._any_mask is not None:
            full = f"{irc_lower(source.nick)}!{source.user}@{source.host}".lower()
            if self._any_mask.fullmatch(full) is None:
                return None  # the every-message case: one regex, not one per mask
            for pattern, entry in self._masks:
                if (entry.until is None or entry.until > now) and pattern.fullmatch(full):
                    return entry
        return None

    def entries(self) -> list[Entry]:
        """Every entry in force, configured ones first."""
        if not self._loaded:
            self._load()
        now = self._clock()
        self._expire(now)
        return [*self._configured.values(), *self._stored.values()]

    # -- changing ---------------------------------------------------------------------

    def configure(self, masks: Iterable[str]) -> None:
        """The permanent entries of config.yaml's ``ignore:`` (replacing the last ones)."""
        with self._lock:
            self._configured = {
                m: Entry(m, None, by="config.yaml") for m in (normalise(x) for x in masks)
            }
            self._rebuild()

    def add(self, mask: str, seconds: float | None, reason: str = "", by: str = "") -> Entry:
        mask = normalise(mask)
        until = None if seconds is None else self._clock() + seconds
        entry = Entry(mask, until, reason, by)
        with self._lock:
            if not self._loaded:
                self._load_locked()
            self._stored[mask] = entry
            self._save()
            self._rebuild()
        return entry

    def remove(self, mask: str) -> bool:
        mask = normalise(mask)
        with self._lock:
            if not self._loaded:
                self._load_locked()
            found = self._stored.pop(mask, None) is not None
            if found:
                self._save()
                self._rebuild()
        return found

    # -- internals --------------------------------------------------------------------

    def _load(self) -> None:
        with self._lock:
            if not self._loaded:
                self._load_locked()

    def _load_locked(self) -> None:
        stored = self._state().get("entries", [])
        now = self._clock()
        self._stored = {}
        for mask, until, reason, by in stored:
            if until is None or until > now:
                self._stored[mask] = Entry(mask, until, reason, by)
        self._loaded = True
        self._rebuild()

    def _save(self) -> None:
        entries = [[e.mask, e.until, e.reason, e.by] for e in self._stored.values()]
        self._state()["entries"] = entries

    def _expire(self, now: float) -> None:
        with self._lock:
            gone = [m for m, e in self._stored.items() if e.until is not None and e.until <= now]
            for mask in gone:
                del self._stored[mask]
            if gone:
                self._save()
                self._rebuild()

    def _rebuild(self) -> None:
        entries = {**self._configured, **self._stored}
        self._accounts = {m: e for m, e in entries.items() if m.startswith("account:")}
        masks = [m for m in entries if not m.startswith("account:")]
        self._masks = [(re.compile(fnmatch.translate(m)), entries[m]) for m in masks]
        alternatives = "|".join(fnmatch.translate(m) for m in masks)
        self._any_mask = re.compile(f"(?:{alternatives})") if masks else None
