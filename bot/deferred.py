"""Owns deferred imports at start-up: modules the ``irc`` library's dependencies import
for features the bot never uses are executed only if something touches them.

``irc.client`` imports ``jaraco.text``, ``jaraco.context`` and ``tempora``, which
import ``urllib.request`` (and with it ``http.client``, ``email``, ``ssl``),
``subprocess``, ``tempfile``, ``dateutil.parser`` and ``importlib.metadata`` for
tarball downloads, date parsing and version look-ups. Executing those costs every
start ~6 MB of memory and ~20 ms (bench/focus.py start; docs/benchmarks.md).

While ``deferring(names)`` is active (``python -m bot`` wraps its imports in it), a
module in ``names`` that is imported for the first time gets a stand-in in
``sys.modules``: a module with its spec attributes set (``__name__``, ``__file__``,
``__spec__``..., what the import machinery and ``inspect`` read) whose first use
of any other attribute (read, set or delete) executes the real module: once,
under a lock, for whichever thread asks first, while other threads wait for it
to finish. After that it is an ordinary module. Only modules loaded from Python
files are deferred; anything else, and any module imported after start-up,
imports as usual.
"""

from __future__ import annotations

# Imported before the deferral starts, so kept to what the interpreter has loaded
# already: importlib.abc, for one, would import importlib.resources and tempfile.
import importlib.machinery
import sys
import threading
import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.abc import Loader

# Imported at start-up by irc.client's dependencies and never used by the bot. One
# that turns out to be used at import time is simply executed then: no saving, no harm.
UNUSED_AT_START = (
    "urllib.request",  # jaraco.context: tarball downloads
    "http.client",
    "email.message",
    "email.parser",
    "ssl",  # through urllib.request; the bot imports it itself only for TLS
    "hashlib",
    "subprocess",  # jaraco.context
    "tempfile",
    "dateutil.parser",  # tempora: parsing dates from text
    "importlib.metadata",  # irc: its version string, read only by irc.bot/irc.server
    "csv",
    "calendar",
)

# What the import machinery, module repr and inspect.getmodule() read from a module.
_SPEC_ATTRS = frozenset(
    {
        "__name__",
        "__spec__",
        "__loader__",
        "__package__",
        "__path__",
        "__file__",
        "__cached__",
        "__class__",
        "__dict__",
    }
)


class _Pending:
    """How to execute a deferred module, kept on its spec until that happens."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader
        self.lock = threading.RLock()
        self.executing: int | None = None  # the thread executing it


class DeferredModule(types.ModuleType):
    """A module not executed yet; using any attribute but its spec's executes it."""

    def __getattribute__(self, name: str) -> Any:
        if name not in _SPEC_ATTRS:
            _execute(self)
        # a module's own lookup, so a module-level __getattr__ (PEP 562) still works
        return types.ModuleType.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _SPEC_ATTRS:
            _execute(self)  # or the module's own code would overwrite the value later
        types.ModuleType.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if name not in _SPEC_ATTRS:
            _execute(self)
        types.ModuleType.__delattr__(self, name)


def _execute(module: types.ModuleType) -> None:
    spec = object.__getattribute__(module, "__spec__")
    pending = spec.loader_state
    if not isinstance(pending, _Pending):
        return  # executed already
    with pending.lock:
        if pending.executing == threading.get_ident():
            return  # the module's own code, while it executes: attributes as they are
        if type(module) is not DeferredModule:
            return  # another thread executed it while this one waited
        pending.executing = threading.get_ident()
        try:
            spec.loader = module.__loader__ = pending.loader
            pending.loader.exec_module(module)
        except BaseException:
            # as a failed import: the half-executed module leaves sys.modules
            if sys.modules.get(spec.name) is module:
                del sys.modules[spec.name]
            raise
        finally:
            pending.executing = None
            object.__setattr__(module, "__class__", types.ModuleType)
            spec.loader_state = None


class _DeferringLoader:  # the import system's loader protocol
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object, as a source file's loader makes

    def exec_module(self, module: types.ModuleType) -> None:
        module.__class__ = DeferredModule


class _DeferringFinder:  # the import system's meta path finder protocol
    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Any = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        source_loaders = (
            importlib.machinery.SourceFileLoader,
            importlib.machinery.SourcelessFileLoader,
        )
        if not isinstance(loader, source_loaders) or spec.loader_state is not None:
            return spec  # an extension or frozen module: imported as usual
        spec.loader_state = _Pending(loader)
        spec.loader = _DeferringLoader()  # type: ignore[assignment]  # a Loader by protocol
        return spec


@contextmanager
def deferring(names: Iterable[str] = UNUSED_AT_START) -> Iterator[None]:
    """Within this block, the first import of a module in ``names`` is deferred."""
    finder = _DeferringFinder(frozenset(names))
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def deferred_modules() -> list[str]:
    """Names of the modules in ``sys.modules`` that were deferred and never executed."""
    return sorted(n for n, m in list(sys.modules.items()) if type(m) is DeferredModule)
