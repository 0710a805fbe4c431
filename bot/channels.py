"""Who is in each channel the bot is in, with their channel modes (op, halfop, voice...).

Owns channel membership as the server tells it: NAMES replies (with
``multi-prefix``, every prefix of a member), JOIN, PART, KICK, QUIT, NICK and
MODE, read with the server's own ISUPPORT ``PREFIX`` (which modes give which
prefix), ``CHANMODES`` (which modes take a parameter) and ``CASEMAPPING`` (how
nicks compare: ``[a]`` and ``{a}`` are one nick under rfc1459, two under ascii).
Pure data: the connection feeds it, commands read it through their context.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable

from bot.casemap import fold_for, rfc1459_lower

#: Prefix modes from the most to the least powerful, as most servers have them.
RANKS = ("q", "a", "o", "h", "v")
#: What ``require=`` and ``permissions:`` accept, and the mode each means.
LEVELS = {"op": "o", "halfop": "h", "voice": "v"}


class Channels:
    """Members and their prefix modes, per channel; safe to read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fold: Callable[[str], str] = rfc1459_lower
        self.prefixes: dict[str, str] = {"@": "o", "+": "v"}  # symbol -> mode
        self.list_modes = "beI"  # modes with a parameter both ways (type A)
        self.param_modes = "k"  # always a parameter (type B)
        self.set_param_modes = "lfj"  # a parameter when set (type C)
        # channel -> folded nick -> its prefix modes as a string ("", "o", "ov"). Strings,
        # not sets: 100,000 memberships are then no objects the garbage collector walks
        # (a set each took 20 MB and made every full collection pause the bot).
        self._members: dict[str, dict[str, str]] = {}

    # -- what the server says about itself ----------------------------------------------

    def isupport(self, tokens: Iterable[str]) -> None:
        """ISUPPORT tokens: ``PREFIX=(ov)@+``, ``CHANMODES=b,k,l,imnt``, ``CASEMAPPING=ascii``."""
        for token in tokens:
            name, _, value = token.partition("=")
            if name == "PREFIX" and value.startswith("(") and ")" in value:
                modes, symbols = value[1:].split(")", 1)
                if len(modes) == len(symbols):
                    self.prefixes = dict(zip(symbols, modes, strict=True))
            elif name == "CHANMODES":
                kinds = [*value.split(","), "", "", ""][:4]
                self.list_modes, self.param_modes, self.set_param_modes = kinds[:3]
            elif name == "CASEMAPPING" and value:
                with self._lock:
                    self.fold = fold_for(value)
                    self._members = {
                        self.fold(c): {self._key(n): m for n, m in people.items()}
                        for c, people in self._members.items()
                    }

    # -- what happens in channels -------------------------------------------------------

    def names(self, channel: str, entries: Iterable[str]) -> None:
        """One RPL_NAMREPLY: ``@+nick`` (or ``@nick!user@host`` with userhost-in-names)."""
        with self._lock:
            people = self._members.setdefault(self.fold(channel), {})
            prefixes = self.prefixes
            for entry in entries:
                modes = ""
                while entry and entry[0] in prefixes:
                    modes += prefixes[entry[0]]
                    entry = entry[1:]
                nick = entry.split("!", 1)[0]
                if nick:
                    people[self._key(nick)] = "".join(sorted(modes)) if len(modes) > 1 else modes

    def joined(self, channel: str, nick: str) -> None:
        with self._lock:
            self._members.setdefault(self.fold(channel), {})[self._key(nick)] = ""

    def left(self, channel: str, nick: str, *, me: bool = False) -> None:
        """PART or KICK; ``me``: the bot left, so it knows nothing of the channel now."""
        with self._lock:
            if me:
                self._members.pop(self.fold(channel), None)
            else:
                self._members.get(self.fold(channel), {}).pop(self.fold(nick), None)

    def quit(self, nick: str) -> None:
        with self._lock:
            key = self.fold(nick)
            for people in self._members.values():
                people.pop(key, None)

    def renamed(self, old: str, new: str) -> None:
        with self._lock:
            before, after = self.fold(old), self._key(new)
            for people in self._members.values():
                if before in people:
                    people[after] = people.pop(before)

    def mode(self, channel: str, changes: list[str]) -> None:
        """A channel MODE: ``["+o-v", "alice", "bob"]``; prefix modes change members."""
        if not changes:
            return
        args = iter(changes[1:])
        adding = True
        with self._lock:
            people = self._members.get(self.fold(channel))
            for char in changes[0]:
                if char in "+-":
                    adding = char == "+"
                elif char in self.prefixes.values():
                    nick = next(args, None)
                    if people is not None and nick is not None:
                        key = self.fold(nick)
                        modes = people.get(key)
                        if modes is not None:
                            changed = (set(modes) | {char}) if adding else set(modes) - {char}
                            people[key] = "".join(sorted(changed))
                elif self._takes_parameter(char, adding):
                    next(args, None)

    def _key(self, nick: str) -> str:
        """``nick`` folded, as one string shared by every channel it is in (interned
        strings are freed once no channel holds them)."""
        return sys.intern(self.fold(nick))

    def _takes_parameter(self, mode: str, adding: bool) -> bool:
        if mode in self.list_modes or mode in self.param_modes:
            return True
        return adding and mode in self.set_param_modes

    def clear(self) -> None:
        """Disconnected: the next connection learns everything again."""
        with self._lock:
            self._members.clear()

    # -- what commands ask -------------------------------------------------------------

    def modes_of(self, channel: str | None, nick: str) -> frozenset[str]:
        """``nick``'s prefix modes in ``channel`` (``{"o"}`` for an op); empty elsewhere."""
        if channel is None:
            return frozenset()
        with self._lock:
            return frozenset(self._members.get(self.fold(channel), {}).get(self.fold(nick), ()))

    def members(self, channel: str) -> list[str]:
        with self._lock:
            return sorted(self._members.get(self.fold(channel), {}))


def at_least(modes: frozenset[str], level: str) -> bool:
    """Whether ``modes`` reach ``level`` (``op``, ``halfop``, ``voice``): an op can voice."""
    wanted = RANKS.index(LEVELS[level])
    return any(mode in RANKS and RANKS.index(mode) <= wanted for mode in modes)
