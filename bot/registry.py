"""The live set of commands: an immutable snapshot, replaced by one assignment.

Readers (the dispatcher, on every message) take the registry once and use that
snapshot to the end, so a reload never changes the code under a running
command. ``Live`` holds the snapshot in force and which modules are being
switched, with the one lock the dispatcher and the reloader share.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bot.api import CommandSpec, ListenerSpec
from bot.loader import LoadedModule

BUILTIN = "(built-in)"


@dataclass(frozen=True)
class Entry:
    """A command as the dispatcher finds it: the spec and the module version it came from."""

    spec: CommandSpec
    module: LoadedModule | None  # None for built-ins


@dataclass(frozen=True)
class Registry:
    modules: Mapping[str, LoadedModule] = field(default_factory=dict)
    builtins: tuple[CommandSpec, ...] = ()
    _index: Mapping[str, Entry] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls, modules: Mapping[str, LoadedModule], builtins: tuple[CommandSpec, ...]
    ) -> Registry:
        index: dict[str, Entry] = {}
        for spec in builtins:
            for name in spec.names:
                index[name] = Entry(spec, None)
        for loaded in modules.values():
            for spec in loaded.commands:
                for name in spec.names:
                    index.setdefault(name, Entry(spec, loaded))
        return cls(MappingProxyType(dict(modules)), builtins, MappingProxyType(index))

    def listeners(self) -> list[tuple[ListenerSpec, LoadedModule]]:
        return [(spec, m) for m in self.modules.values() for spec in m.listeners]

    def find(self, name: str) -> Entry | None:
        return self._index.get(name.lower())

    def commands(self) -> list[Entry]:
        """Each command once (not once per alias), sorted by name."""
        seen: dict[str, Entry] = {e.spec.name: e for e in self._index.values()}
        return [seen[n] for n in sorted(seen)]

    def command_modules(self) -> list[LoadedModule]:
        return [m for n, m in sorted(self.modules.items()) if not m.is_helper]

    def reserved_names(self) -> dict[str, str]:
        """Command names the loader must not hand out again (the built-ins)."""
        return {name: BUILTIN for spec in self.builtins for name in spec.names}


class Live:
    """The registry in force, and the modules whose calls wait for a switch to end.

    The dispatcher reads both under ``lock`` for each message and starts its calls
    under it; the reloader changes them under it. So every call either counts
    against the old version of a module (and the switch waits for it) or waits
    for the new one: none runs on a version that is being torn down.
    """

    def __init__(self, registry: Registry) -> None:
        self.lock = threading.Lock()
        self.registry = registry
        self.held: frozenset[str] = frozenset()
        self._waiting: list[Callable[[], None]] = []

    def wait_for_switch(self, retry: Callable[[], None]) -> None:
        """Under ``lock``: call ``retry()`` (under the lock) once the switch has ended."""
        self._waiting.append(retry)

    def hold(self, modules: Iterable[str], retiring: Iterable[LoadedModule]) -> None:
        """Calls for ``modules`` wait from now on; ``retiring`` versions start no timer calls."""
        with self.lock:
            self.held = frozenset(modules)
            for loaded in retiring:
                loaded.activity.retired = True

    def switch(self, registry: Registry | None, revived: Iterable[LoadedModule] = ()) -> None:
        """End a switch: ``registry`` is in force (None: the old one still is), and the
        calls that waited run against it; ``revived`` versions serve again."""
        with self.lock:
            if registry is not None:
                self.registry = registry
            for loaded in revived:
                loaded.activity.retired = False
            self.held = frozenset()
            waiting, self._waiting = self._waiting, []
            for retry in waiting:
                retry()
