"""Loads command modules by file path into fresh module objects, all or nothing.

Owns the traps of reloading Python code:

* every load executes a *fresh* module object compiled from the bytes on disk
  (never ``importlib.reload``, never a ``.pyc``), so nothing deleted from a file
  survives and no stale bytecode is ever used;
* modules live in ``sys.modules`` under ``<namespace>.<stem>`` (never a bare name,
  so ``commands/json.py`` cannot shadow the standard library), resolved only by a
  finder sealed to the commands folder;
* helpers (``_name.py``) are found through a static import graph, so changing a
  helper re-executes every module that imports it;
* a transaction either commits a complete new set of modules or restores
  ``sys.modules`` exactly as it was, and errors are plain text with file:line
  (a kept exception would pin the failed generation in memory).

It never touches the live registry: the app swaps registries after ``commit()``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import linecache
import os
import re
import stat
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bot.api import CommandSpec, ListenerSpec, command_spec, listener_specs

IDENTIFIER_HINT = "module names are file stems made of letters, digits and '_', like 'dice'"


@dataclass(frozen=True)
class LoadError:
    """One problem with one file, as text (never an exception object)."""

    module: str
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: {self.message}"
            if self.line
            else f"{self.file}: {self.message}"
        )


class LoadFailed(Exception):
    """A transaction could not be built; nothing changed."""

    def __init__(self, errors: list[LoadError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True, eq=False)
class LoadedModule:
    """One executed file: a command module or a helper."""

    name: str
    path: Path
    module: types.ModuleType
    source: bytes  # exactly what was executed
    imports: frozenset[str]
    commands: tuple[CommandSpec, ...] = ()
    listeners: tuple[ListenerSpec, ...] = ()
    activity: Activity = field(default_factory=lambda: Activity())

    @property
    def is_helper(self) -> bool:
        return self.name.startswith("_")


class Activity:
    """Counts calls running in one module version so its teardown waits for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._on_idle: list[Callable[[], None]] = []
        self.retired = False

    def enter(self) -> None:
        with self._lock:
            self._running += 1

    def exit(self) -> None:
        with self._lock:
            self._running -= 1
            callbacks = self._take_callbacks()
        _run_all(callbacks)

    def retire(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` now if idle, else when the last running call exits."""
        with self._lock:
            self.retired = True
            self._on_idle.append(callback)
            callbacks = self._take_callbacks()
        _run_all(callbacks)

    @property
    def running(self) -> int:
        return self._running

    def _take_callbacks(self) -> list[Callable[[], None]]:
        if self._running or not self.retired:
            return []
        callbacks, self._on_idle = self._on_idle, []
        return callbacks


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


# -- reading files -------------------------------------------------------------


def is_module_name(name: str) -> bool:
    return name.isidentifier() and name.isascii()


_Stamp = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns

# A file whose last change (ctime, and mtime) is older than this when it is read cannot
# change again within the same timestamp tick without its stamp changing: git's rule
# for "racily clean" files. Younger files are compared by content every time.
RACY_NS = 2_000_000_000


def _stamp(st: os.stat_result) -> _Stamp:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class CommandsDir:
    """The folder of command files; the only place modules are ever read from."""

    def __init__(self, path: Path, clock: Callable[[], int] = time.time_ns) -> None:
        self.path = Path(path).resolve()
        self._clock = clock
        # path -> (stamp, bytes): the file had these bytes while it had this stamp.
        self._known: dict[str, tuple[_Stamp, bytes]] = {}

    def read(self, path: Path) -> bytes:
        """The file's bytes; remembers its stamp when the stamp can vouch for them later."""
        now = self._clock()
        with open(path, "rb") as file:
            st = os.fstat(file.fileno())
            data = file.read()
        if max(st.st_ctime_ns, st.st_mtime_ns) < now - RACY_NS:
            self._known[os.fspath(path)] = (_stamp(st), data)
        else:
            self._known.pop(os.fspath(path), None)
        return data

    def holds(self, path: Path, source: bytes) -> bool:
        """Whether ``path`` still holds exactly ``source``.

        Content decides, never mtime alone: a same-size edit with its mtime put back
        is a change. A file read long enough after its last change is vouched for by
        its full stamp (inode, size, mtime and ctime: any write or ``utime`` moves
        ctime), so ``!reload`` of all costs a ``stat`` per unchanged file, not a read.
        """
        key = os.fspath(path)  # str keys: hashing a Path costs more than the stat
        try:
            st = os.stat(key)
        except OSError:
            self._known.pop(key, None)
            return False
        known = self._known.get(key)
        if known is not None and known[0] == _stamp(st) and known[1] == source:
            return True
        try:
            return self.read(path) == source
        except OSError:
            return False

    def file_for(self, name: str) -> Path | None:
        """The file for module ``name`` if it is a regular file directly inside the folder.

        Symlinks are allowed only when they resolve inside the folder, so nothing
        outside ``commands/`` can ever be loaded.
        """
        if not is_module_name(name):
            return None
        candidate = self.path / f"{name}.py"
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):  # only a link can lead out of the (resolved) folder
            resolved = candidate.resolve()
            if resolved.parent != self.path or not resolved.is_file():
                return None
        elif not stat.S_ISREG(mode):
            return None
        return candidate

    def scan(self) -> dict[str, Path]:
        """Every loadable module in the folder: ``stem -> path``."""
        found = {}
        if self.path.is_dir():
            for entry in sorted(self.path.glob("*.py")):
                path = self.file_for(entry.stem)
                if path is not None:
                    found[entry.stem] = path
        return found

    def display(self, path: Path) -> str:
        """A short name for messages: ``commands/dice.py``."""
        path = Path(path)
        if path.parent == self.path:  # the usual case; resolving costs a syscall per part
            return f"{self.path.name}/{path.name}"
        try:
            return f"{self.path.name}/{Path(path).resolve().relative_to(self.path)}"
        except ValueError:
            return str(path)


@dataclass(frozen=True)
class SourceInfo:
    imports: frozenset[str]
    problems: tuple[tuple[int, str], ...]


# An import that is not at the top level: indented, or after ";" or ":" on one line.
_NESTED_IMPORT = re.compile(rb"^[ \t]+(?:from|import)\b|[;:][ \t]*(?:from|import)\b", re.M)


def may_import_siblings(source: bytes, namespace: str) -> bool:
    """False only when ``source`` cannot import a sibling: no ``from .``, no ``namespace``.

    Most command modules import no sibling; for them no syntax tree is needed at all.
    """
    return (
        re.search(rb"\bfrom[\s\\]*\.|\b" + re.escape(namespace.encode()) + rb"\b", source)
        is not None
    )


def inspect_source(source: bytes, namespace: str, tree: ast.Module | None = None) -> SourceInfo:
    """Static facts about a module: which sibling modules it imports, and rule violations.

    Sibling imports must be at module level (``from . import _x`` or
    ``from ._x import y``): an import inside a function would run against
    whatever generation is current at call time, not the one the function
    belongs to. ``tree`` is the parsed ``source``, when the caller has it.
    """
    if tree is None:
        if not may_import_siblings(source, namespace):
            return SourceInfo(frozenset(), ())
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return SourceInfo(frozenset(), ())  # compile() reports it with file:line
    imports: set[str] = set()
    problems: list[tuple[int, str]] = []
    top_level = set(map(id, tree.body))
    # Walking every node costs milliseconds on a big file; imports below the top
    # level need an indented line or a one-liner; without one the top level is enough.
    nodes = ast.walk(tree) if _NESTED_IMPORT.search(source) else iter(tree.body)

    for node in nodes:
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            elif node.level > 1:
                problems.append(
                    (
                        node.lineno,
                        "command modules live in one flat folder; use 'from . import name'",
                    )
                )
            elif node.module and node.module.split(".")[0] == namespace:
                parts = node.module.split(".")
                names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [
                a.name.split(".")[1]
                for a in node.names
                if a.name.split(".")[0] == namespace and "." in a.name
            ]
        if names and isinstance(node, ast.stmt):
            imports.update(names)
            if id(node) not in top_level:
                problems.append(
                    (
                        node.lineno,
                        f"import {', '.join(names)} at the top of the file,"
                        " not inside a function or block",
                    )
                )
    return SourceInfo(frozenset(imports), tuple(problems))


# -- the import machinery ------------------------------------------------------


class _CompileLoader(importlib.abc.Loader):
    """Compiles the bytes on disk on every load; never reads or writes ``__pycache__``."""

    def __init__(self, path: Path, source: bytes, finder: _SealedFinder) -> None:
        self.path = path
        self.source = source
        self.finder = finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        filename = str(self.path)
        compiled: ast.Module | bytes = self.source
        if may_import_siblings(self.source, self.finder.namespace):
            # Parsed once, for inspect_source() too: a tree compiles in half the time.
            compiled = ast.parse(self.source, filename)
            self.finder.trees[self.path.stem] = compiled
        code = compile(compiled, filename, "exec", dont_inherit=True)
        # Pin the text that runs so tracebacks show it even after the file changes
        # (linecache would otherwise read the *current* file). mtime None: never invalidated.
        lines = self.source.decode("utf-8", "replace").splitlines(True)
        linecache.cache[filename] = (len(self.source), None, lines, filename)
        exec(code, module.__dict__)


class _SealedFinder(importlib.abc.MetaPathFinder):
    """Resolves ``<namespace>.<stem>`` to a file in the commands folder, and nothing else."""

    def __init__(self, namespace: str, folder: CommandsDir, sources: dict[str, bytes]) -> None:
        self.namespace = namespace
        self.folder = folder
        self.sources = sources  # stem -> the exact bytes executed
        self.trees: dict[str, ast.Module] = {}  # stem -> its syntax tree, if one was parsed

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != self.namespace:
            return None
        file = self.folder.file_for(name)
        if file is None:
            return None
        source = self.folder.read(file)
        self.sources[name] = source
        return importlib.util.spec_from_file_location(
            fullname, file, loader=_CompileLoader(file, source, self)
        )


# -- transactions --------------------------------------------------------------


class Loader:
    """Builds new module sets for one commands folder under one ``sys.modules`` namespace."""

    def __init__(self, folder: Path, namespace: str = "commands") -> None:
        self.folder = CommandsDir(folder)
        self.namespace = namespace
        self._lock = threading.Lock()

    def prepare(
        self,
        current: Mapping[str, LoadedModule],
        want: Iterable[str],
        fresh: Iterable[str],
        reserved: Mapping[str, str] | None = None,
    ) -> Transaction:
        """Execute a new module set; the caller must ``commit()`` or ``rollback()`` it.

        ``want`` are the command modules that should be loaded afterwards;
        ``fresh`` are modules (commands or helpers) to execute again from disk.
        Modules that import a fresh one, directly or not, are executed again too.
        Every other wanted module keeps its current object. ``reserved`` maps
        command names that are taken already (built-ins) to who owns them.
        Raises LoadFailed, with ``sys.modules`` untouched, if anything fails.
        """
        self._lock.acquire()  # released exactly once, by the transaction's commit() / rollback()
        txn = Transaction(self, current)
        try:
            self._prepare(txn, set(want), set(fresh), dict(reserved or {}))
        except BaseException:
            txn.rollback()  # restores sys.modules if anything was taken out; releases the lock
            raise
        return txn

    def _prepare(
        self,
        txn: Transaction,
        want: set[str],
        fresh: set[str],
        reserved: dict[str, str],
    ) -> None:
        current = txn.current
        execute = self._closure(current, want, fresh)
        # Only what runs is read from disk; a kept module keeps its loaded version.
        errors = [
            LoadError(name, f"{self.folder.path.name}/{name}.py", None, "no such file")
            for name in sorted(want & execute)
            if self.folder.file_for(name) is None
        ]
        if errors:
            raise LoadFailed(errors)

        keep = {n: m for n, m in current.items() if n not in execute}
        sources: dict[str, bytes] = {}
        finder = _SealedFinder(self.namespace, self.folder, sources)
        txn.begin(execute)
        sys.meta_path.insert(0, finder)
        try:
            for name in sorted(n for n in want if n in execute):
                try:
                    importlib.import_module(f"{self.namespace}.{name}")
                except (Exception, SystemExit) as exc:  # a module may even call sys.exit()
                    errors.append(self._describe(name, exc, at_import=True))
        finally:
            sys.meta_path.remove(finder)

        modules = dict(keep)
        for name, source in sources.items():
            module = sys.modules.get(f"{self.namespace}.{name}")
            if module is None:
                continue  # failed; already reported
            info = inspect_source(source, self.namespace, finder.trees.pop(name, None))
            path = self.folder.path / f"{name}.py"
            shown = self.folder.display(path)
            errors += [LoadError(name, shown, line, msg) for line, msg in info.problems]
            specs, problems = _collect_commands(module, name)
            errors += [LoadError(name, shown, line, msg) for line, msg in problems]
            modules[name] = LoadedModule(
                name=name,
                path=path,
                module=module,
                source=source,
                imports=info.imports,
                commands=specs if not name.startswith("_") else (),
                listeners=_collect_listeners(module) if not name.startswith("_") else (),
            )
        modules = {n: m for n, m in modules.items() if n in want or n.startswith("_")}
        errors += _duplicates(modules, reserved, self.folder, execute)
        if errors:
            # A broken helper fails once per importer: report it once.
            raise LoadFailed(list(dict.fromkeys(errors)))  # prepare() rolls back
        txn.modules = _prune_helpers(modules, want)

    def _closure(
        self, current: Mapping[str, LoadedModule], want: set[str], fresh: set[str]
    ) -> set[str]:
        """Which modules to execute: fresh ones, new ones, and everything that imports them."""
        execute = set(fresh) | {n for n in want if n not in current}
        graph = {n: m.imports for n, m in current.items()}
        changed = True
        while changed:
            changed = False
            for name, imports in graph.items():
                if name not in execute and imports & execute:
                    execute.add(name)
                    changed = True
        return execute

    def _describe(self, name: str, exc: BaseException, *, at_import: bool = False) -> LoadError:
        """Turn an exception from module ``name`` into text with the most useful file:line.

        ``at_import``: the exception ended the import of ``name``; blame the module whose
        body was running (a broken helper, not each of its importers).
        """
        default = self.folder.display(self.folder.path / f"{name}.py")
        try:
            if isinstance(exc, SyntaxError):
                path = Path(exc.filename) if exc.filename else None
                file = self.folder.display(path) if path else default
                culprit = (
                    path.stem
                    if at_import and path and _inside(str(path), self.folder.path)
                    else name
                )
                return LoadError(culprit, file, exc.lineno, f"{type(exc).__name__}: {exc.msg}")
            frames = traceback.extract_tb(exc.__traceback__)
            inside = [f for f in frames if _inside(f.filename, self.folder.path)]
            where = inside[-1] if inside else None
            file = self.folder.display(Path(where.filename)) if where else default
            bodies = [f for f in inside if f.name == "<module>"]
            culprit = Path(bodies[-1].filename).stem if at_import and bodies else name
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return LoadError(culprit, file, where.lineno if where else None, message)
        finally:
            # A kept traceback pins the failed generation's globals in memory.
            traceback.clear_frames(exc.__traceback__)
            exc.__traceback__ = None


class Transaction:
    """A new module set, executed but not yet live."""

    def __init__(self, loader: Loader, current: Mapping[str, LoadedModule]) -> None:
        self.loader = loader
        self.current = current
        self.execute: set[str] = set()
        self.modules: dict[str, LoadedModule] = {}
        self._saved: dict[str, types.ModuleType] = {}
        self._lines: dict[str, Any] = {}
        self._folder_prefix = os.path.join(loader.folder.path, "")
        self._begun = False
        self._done = False

    def begin(self, execute: set[str]) -> None:
        """Take the modules being replaced out of ``sys.modules`` (kept for rollback)."""
        self.execute = execute
        self._begun = True
        ns = self.loader.namespace
        self._saved = {k: v for k, v in sys.modules.items() if k == ns or k.startswith(ns + ".")}
        # Loading pins each executed file's text in linecache; a rollback must put back the
        # text of the versions that keep serving, or their tracebacks would show the new file.
        files = (str(self.loader.folder.path / f"{name}.py") for name in execute)
        self._lines = {f: linecache.cache[f] for f in files if f in linecache.cache}
        package = sys.modules.get(ns)
        for name in self.execute:
            sys.modules.pop(f"{ns}.{name}", None)
            # `from . import _x` takes the package attribute when there is one, so the
            # old version must go from there too, or importers bind the stale helper.
            if package is not None and isinstance(getattr(package, name, None), types.ModuleType):
                delattr(package, name)
        if package is None:
            package = types.ModuleType(ns, f"Command modules from {self.loader.folder.path}")
            package.__path__ = []  # children resolve only through our sealed finder
            package.__spec__ = importlib.machinery.ModuleSpec(ns, None, is_package=True)
            sys.modules[ns] = package

    @property
    def replaced(self) -> dict[str, LoadedModule]:
        """Old versions that stop serving at commit: re-executed or dropped modules."""
        return {
            n: m
            for n, m in self.current.items()
            if n not in self.modules or self.modules[n] is not m
        }

    def commit(self) -> None:
        self._finish(self.modules)

    def rollback(self) -> None:
        if self._done:
            return
        if not self._begun:  # nothing was taken out of sys.modules yet
            self._done = True
            self.loader._lock.release()
            return
        ns = self.loader.namespace
        for key in [k for k in sys.modules if k == ns or k.startswith(ns + ".")]:
            del sys.modules[key]  # the package too, if this transaction created it
        sys.modules.update(self._saved)
        # Modules that keep serving and were not executed were never touched here.
        for key in [k for k in linecache.cache if self._in_folder(k)]:
            stem = Path(key).stem
            if stem in self.execute or stem not in self.current:
                del linecache.cache[key]
        linecache.cache.update(self._lines)
        self._finish(self.current)

    def _in_folder(self, filename: str) -> bool:
        return filename.startswith(self._folder_prefix)

    def _finish(self, modules: Mapping[str, LoadedModule]) -> None:
        if self._done:
            return
        ns = self.loader.namespace
        for key in [k for k in sys.modules if k.startswith(ns + ".")]:
            if key.split(".", 1)[1] not in modules:
                del sys.modules[key]
        # The import system sets children as package attributes; rebuild them so the
        # package never holds on to a replaced or failed module.
        package = sys.modules.get(ns)
        if package is not None:
            for attr in [a for a, v in vars(package).items() if isinstance(v, types.ModuleType)]:
                delattr(package, attr)
            for name, loaded in modules.items():
                sys.modules[f"{ns}.{name}"] = loaded.module
                setattr(package, name, loaded.module)
        self._saved, self._lines = {}, {}
        self._done = True
        self.loader._lock.release()


def _inside(filename: str, folder: Path) -> bool:
    try:
        return Path(filename).resolve().parent == folder
    except (OSError, ValueError):
        return False


def _collect_commands(
    module: types.ModuleType, name: str
) -> tuple[tuple[CommandSpec, ...], list[tuple[int | None, str]]]:
    specs = []
    problems: list[tuple[int | None, str]] = []
    for value in list(vars(module).values()):
        spec = _marked(command_spec, value)
        if spec is None or getattr(spec.func, "__module__", None) != module.__name__:
            continue  # imported from a helper: it belongs to the helper
        line = getattr(getattr(spec.func, "__code__", None), "co_firstlineno", None)
        if name.startswith("_"):
            problems.append(
                (
                    line,
                    f"helper modules (named _*) cannot define commands;"
                    f" move {spec.name!r} to a command module",
                )
            )
        elif not spec.help.strip():
            problems.append(
                (line, f"command {spec.name!r} has no docstring; its docstring is its help text")
            )
        else:
            specs.append(spec)
    return tuple(sorted(specs, key=lambda s: s.name)), problems


def _collect_listeners(module: types.ModuleType) -> tuple[ListenerSpec, ...]:
    found: list[ListenerSpec] = []
    for value in list(vars(module).values()):
        if _marked(lambda v: getattr(v, "__module__", None), value) == module.__name__:
            found += _marked(listener_specs, value) or ()
    return tuple(found)


T = TypeVar("T")


def _marked(read: Callable[[object], T], value: object) -> T | None:
    """``read(value)``, or None when looking at ``value`` raises.

    Module globals may be objects whose attribute lookup raises something other than
    AttributeError (lazy proxies, some mocks); they are simply not commands.
    """
    try:
        return read(value)
    except Exception:
        return None


def _duplicates(
    modules: Mapping[str, LoadedModule],
    reserved: dict[str, str],
    folder: CommandsDir,
    fresh: set[str],
) -> list[LoadError]:
    """Every command name or alias claimed twice; blamed on the module being (re)loaded."""
    owners: dict[str, str | tuple[LoadedModule, CommandSpec]] = dict(reserved)
    errors = []
    # Unchanged modules first, so a clash is reported at the file that introduced it.
    for name in sorted(modules, key=lambda n: (n in fresh, n)):
        loaded = modules[name]
        for spec in loaded.commands:
            for alias in spec.names:
                owner = owners.setdefault(alias, (loaded, spec))
                if not isinstance(owner, str) and owner[1] is spec:
                    continue  # its own name again (aliases=["x"] on x): no clash
                where = owner if isinstance(owner, str) else _where(folder, *owner)
                message = f"command name {alias!r} is already used by {where}"
                line = _line(spec)
                errors.append(LoadError(name, folder.display(loaded.path), line, message))
    return errors


def _line(spec: CommandSpec) -> int | None:
    return getattr(getattr(spec.func, "__code__", None), "co_firstlineno", None)


def _where(folder: CommandsDir, loaded: LoadedModule, spec: CommandSpec) -> str:
    return f"{folder.display(loaded.path)}:{_line(spec)}"


def _prune_helpers(modules: dict[str, LoadedModule], want: set[str]) -> dict[str, LoadedModule]:
    """Keep helpers only while a wanted module still imports them (directly or not)."""
    needed: set[str] = set()
    stack = [n for n in modules if n in want]
    while stack:
        name = stack.pop()
        if name in needed or name not in modules:
            continue
        needed.add(name)
        stack.extend(modules[name].imports)
    return {n: m for n, m in modules.items() if n in needed}
