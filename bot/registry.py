"""The live set of commands: an immutable snapshot, replaced by one assignment.

Readers (the dispatcher, on every message) take ``app.registry`` once and use
that snapshot to the end, so a reload never changes the code under a running
command and readers never lock.
"""

from __future__ import annotations

from collections.abc import Mapping
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
