"""Loads command modules by file path into fresh module objects: the mechanism of a reload.

Owns the traps of loading Python code, never the decisions (which modules to
load, keep or reload, and when, are ``bot.reloader``'s):

* the folder: which files are loadable, which are skipped and why; only files
  directly inside it are ever read;
* every load executes a *fresh* module object compiled from the bytes on disk
  (never ``importlib.reload``, never a ``.pyc``), so nothing deleted from a file
  survives and no stale bytecode is ever used;
* modules live in ``sys.modules`` under ``<namespace>.<stem>`` (never a bare name,
  so ``commands/json.py`` cannot shadow the standard library); a module's sibling
  imports are read from its source, and a transaction executes helpers before the
  modules that import them, so a module body finds its helpers already loaded;
* a transaction either commits a complete new set of modules or puts
  ``sys.modules``, the package's attributes and linecache back exactly as they
  were, whatever was raised; errors are plain text with file:line (a kept
  exception would pin the failed generation in memory).

Module code (a file's body, and reading the marks off its globals) runs through
the ``run`` callable a transaction is given, so the caller can bound it.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import linecache
import os
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bot.api import CommandSpec, ListenerSpec, command_spec, listener_specs
from bot.folder import (
    CommandsDir,
    SourceInfo,
    inspect_source,
    may_import_siblings,
)

T = TypeVar("T")


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
    """A transaction could not be built; ``ran`` names the files whose code ran anyway."""

    def __init__(self, errors: list[LoadError], ran: Iterable[str] = ()) -> None:
        self.errors = errors
        self.ran = tuple(ran)
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
    """Counts the calls running in one module version, so a reload can wait for them."""

    def __init__(self) -> None:
        self._idle = threading.Condition(threading.Lock())
        self._running = 0
        self.retired = False  # replaced: its timers no longer start calls

    def enter(self) -> None:
        with self._idle:
            self._running += 1

    def exit(self) -> None:
        with self._idle:
            self._running -= 1
            if not self._running:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no call runs (True), or ``timeout`` s (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._running, max(0.0, timeout))

    @property
    def running(self) -> int:
        return self._running


# -- sources --------------------------------------------------------------------


@dataclass(eq=False)
class SourceFile:
    """One file read for a transaction: its bytes, its sibling imports, its code."""

    name: str
    path: Path
    data: bytes
    imports: frozenset[str]
    problems: tuple[tuple[int, str], ...]
    tree: ast.Module | None = None  # parsed to find the imports; compiles faster than bytes
    code: types.CodeType | None = None

    def compile(self) -> types.CodeType:
        if self.code is None:
            compiled: ast.Module | bytes = self.tree if self.tree is not None else self.data
            self.code = compile(compiled, str(self.path), "exec", dont_inherit=True)
            self.tree = None
        return self.code


def in_import_order(sources: dict[str, SourceFile]) -> list[SourceFile]:
    """``sources`` with each module after the modules it imports (a cycle: any order)."""
    order: list[SourceFile] = []
    placed: set[str] = set()

    def place(name: str, path: frozenset[str]) -> None:
        if name in placed or name in path or name not in sources:
            return
        for dependency in sorted(sources[name].imports):
            place(dependency, path | {name})
        if name not in placed:
            placed.add(name)
            order.append(sources[name])

    for name in sorted(sources):
        place(name, frozenset())
    return order


# -- the import machinery ------------------------------------------------------


class _CompileLoader(importlib.abc.Loader):
    """Executes a file's compiled bytes; never reads or writes ``__pycache__``.

    Each module version keeps its loader (``module.__loader__``), so its text stays
    known for tracebacks of calls that still run on it after the file changed.
    """

    def __init__(self, source: SourceFile, txn: Transaction) -> None:
        self.filename = str(source.path)
        self.source = source.data
        self._file: SourceFile | None = source
        self._txn: Transaction | None = txn

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        source, txn = self._file, self._txn
        assert source is not None and txn is not None, "a module version executes once"
        self._file = self._txn = None
        code = source.compile()
        # Pin the text that runs so tracebacks show it even after the file changes
        # (linecache would otherwise read the *current* file). mtime None: never invalidated.
        lines = self.source.decode("utf-8", "replace").splitlines(True)
        linecache.cache[self.filename] = (len(self.source), None, lines, self.filename)
        txn.started(source, module)
        exec(code, module.__dict__)

    def line(self, lineno: int) -> str | None:
        """Line ``lineno`` of the text this version ran."""
        lines = self.source.decode("utf-8", "replace").splitlines()
        return lines[lineno - 1] if 0 < lineno <= len(lines) else None


class Isolate(Protocol):
    """Runs some modules in worker processes (see ``bot.isolated``)."""

    def wants(self, name: str) -> bool: ...

    def load_into(
        self,
        module: types.ModuleType,
        name: str,
        folder: str,
        namespace: str,
        sources: dict[str, tuple[str, bytes]],
        timeout: float,
    ) -> None: ...


#: A module object may carry this: called when its version is rolled back (a worker
#: process started for it stops).
DISCARD = "__reloadbot_discard__"
#: Names the worker process behind an isolated module (``bot.isolated``).
WORKER = "__reloadbot_worker__"
#: An isolated module's ``(config, apply) -> problems``: its worker checks its settings.
SETTINGS = "__reloadbot_settings__"
#: Marks a helper that only isolated modules import: its code runs in their workers,
#: never in the bot; the bot keeps its text and imports only.
CARRIED = "__reloadbot_carried__"


class _IsolatedLoader(importlib.abc.Loader):
    """Fills a module with forwarders to a worker process that runs the file's code."""

    def __init__(
        self,
        source: SourceFile,
        txn: Transaction,
        isolate: Isolate,
        sources: dict[str, tuple[str, bytes]],
        timeout: float,
    ) -> None:
        self.filename = str(source.path)
        self.source = source.data
        self._file = source
        self._txn = txn
        self._isolate = isolate
        self._sources = sources
        self._timeout = timeout

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        self._txn.started(self._file, module)
        loader = self._txn.loader
        self._isolate.load_into(
            module,
            self._file.name,
            str(loader.folder.path),
            loader.namespace,
            self._sources,
            self._timeout,
        )


class _SealedFinder(importlib.abc.MetaPathFinder):
    """Resolves ``<namespace>.<stem>`` to a file in the commands folder, and nothing else.

    A transaction executes the modules it knows of itself; this finder serves the
    imports it could not foresee: an import cycle, or ``importlib.import_module``.
    """

    def __init__(self, txn: Transaction, prepared: dict[str, SourceFile]) -> None:
        self.txn = txn
        self.prepared = prepared

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        loader = self.txn.loader
        if package != loader.namespace:
            return None
        source = self.prepared.get(name) or loader.source(name)
        if source is None:
            folder = loader.folder
            if (folder.path / name).is_dir():
                raise ImportError(
                    f"{folder.path.name}/{name}/ is a folder, and packages are not supported:"
                    f" put the code in a helper file such as {folder.path.name}/_{name}.py",
                    name=fullname,
                )
            return None
        return importlib.util.spec_from_file_location(
            fullname, source.path, loader=_CompileLoader(source, self.txn)
        )


def format_exception(exc: BaseException) -> str:
    """``traceback.format_exception``, showing each command module's lines as they ran.

    linecache knows one text per file name: the version now loaded. A call that
    started on an older version shows that version's text here.
    """
    formatted = traceback.TracebackException.from_exception(exc, lookup_lines=False)
    _version_lines(formatted, exc, set())
    return "".join(formatted.format())


def _version_lines(
    formatted: traceback.TracebackException | None, exc: BaseException | None, seen: set[int]
) -> None:
    if formatted is None or exc is None or id(exc) in seen:
        return
    seen.add(id(exc))
    frames = traceback.walk_tb(exc.__traceback__)
    for summary, (frame, lineno) in zip(formatted.stack, frames, strict=False):
        loader = frame.f_globals.get("__loader__")
        if isinstance(loader, _CompileLoader) and loader.filename == summary.filename:
            line = loader.line(lineno)
            if line is not None:
                summary._line = line  # type: ignore[attr-defined]
    _version_lines(formatted.__cause__, exc.__cause__, seen)
    _version_lines(formatted.__context__, exc.__context__, seen)


# -- transactions --------------------------------------------------------------


def _direct(label: str, fn: Callable[[], T]) -> T:
    return fn()


Run = Callable[[str, Callable[[], Any]], Any]


class Loader:
    """Reads one commands folder and builds new module sets under one namespace."""

    def __init__(self, folder: Path, namespace: str = "commands") -> None:
        self.folder = CommandsDir(folder)
        self.namespace = namespace
        self._sources: dict[str, SourceFile] = {}  # module -> the last file read for it

    def source(self, name: str) -> SourceFile | None:
        """Read and inspect the file of module ``name``; None if there is no such file.

        The last file read for each module is kept with its code: when the file still
        holds exactly those bytes (``CommandsDir.holds``), they are not parsed and
        compiled again. Content decides, so this can never run stale code; each
        load still executes into a fresh module object.
        """
        path = self.folder.file_for(name)
        if path is None:
            return None
        known = self._sources.get(name)
        compiled = known is not None and known.path == path and known.code is not None
        if compiled and self.folder.holds(path, known.data):  # type: ignore[union-attr]
            return known
        try:
            data = self.folder.read(path)
        except OSError:
            return None
        source = self.inspect(name, path, data)
        self._sources[name] = source
        return source

    def inspect(self, name: str, path: Path, data: bytes) -> SourceFile:
        """``data`` as the source of module ``name`` at ``path``: its sibling imports."""
        tree = None
        if may_import_siblings(data, self.namespace):
            try:
                tree = ast.parse(data, str(path))
            except (SyntaxError, ValueError):
                tree = None  # compile() reports it with file:line
        info = inspect_source(data, self.namespace, tree) if tree else SourceInfo(frozenset(), ())
        return SourceFile(name, path, data, info.imports, info.problems, tree)

    def transaction(self, current: Mapping[str, LoadedModule]) -> Transaction:
        """A new module set built from ``current``: ``with loader.transaction(c) as t:``."""
        return Transaction(self, current)

    def describe(self, name: str, exc: BaseException, *, at_import: bool = False) -> LoadError:
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
            remote = getattr(exc, "remote_where", "")  # raised in a worker process
            file, _, line = remote.rpartition(":")
            if file and line.isdigit():
                return LoadError(name, file, int(line), _message(exc))
            frames = traceback.extract_tb(exc.__traceback__)
            inside = [f for f in frames if _inside(f.filename, self.folder.path)]
            where = inside[-1] if inside else None
            file = self.folder.display(Path(where.filename)) if where else default
            bodies = [f for f in inside if f.name == "<module>"]
            culprit = Path(bodies[-1].filename).stem if at_import and bodies else name
            return LoadError(culprit, file, where.lineno if where else None, _message(exc))
        finally:
            # A kept traceback pins the failed generation's globals in memory.
            traceback.clear_frames(exc.__traceback__)
            exc.__traceback__ = None


class Transaction:
    """A new module set, executed but not yet live; ends in ``commit()`` or ``rollback()``.

    As a context manager it rolls back on leaving unless it was committed, whatever
    was raised: ``sys.modules``, the package's attributes and linecache are then
    exactly as before.
    """

    def __init__(self, loader: Loader, current: Mapping[str, LoadedModule]) -> None:
        self.loader = loader
        self.current = current
        self.execute_names: set[str] = set()
        self.modules: dict[str, LoadedModule] = {}
        self.ran: list[str] = []  # files whose code started running, for honest replies
        self._started: dict[str, tuple[SourceFile, types.ModuleType]] = {}
        self._marks: dict[str, _Marks] = {}
        self._saved: dict[str, types.ModuleType] = {}
        self._lines: dict[str, Any] = {}
        self._folder_prefix = os.path.join(loader.folder.path, "")
        self._begun = False
        self._done = False

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.rollback()  # nothing to do after commit()

    @property
    def done(self) -> bool:
        return self._done

    def execute(
        self,
        sources: list[SourceFile],
        want: set[str],
        reserved: Mapping[str, str] | None = None,
        run: Run = _direct,
        *,
        drop: Iterable[str] = (),
        isolate: Isolate | None = None,
        deadline: float | None = None,
    ) -> dict[str, LoadedModule]:
        """Execute ``sources`` (helpers before their importers) into fresh modules.

        Every other module of ``current`` keeps its object. ``want`` are the command
        modules loaded afterwards; ``reserved`` maps command names taken already
        (built-ins) to who owns them. ``run(label, fn)`` runs each piece of module
        code; ``drop`` are modules of ``current`` that are gone (their importers
        must not find them). Modules ``isolate`` wants run in a worker process,
        which must have loaded by ``deadline`` (a ``time.monotonic()`` value).
        Raises LoadFailed if anything fails (then roll back), Overrun if ``run``
        gave up on a piece of module code.
        """
        errors = []
        for source in sources:  # every file compiles, or no code runs at all
            try:
                source.compile()
            except (SyntaxError, ValueError) as exc:
                errors.append(self.loader.describe(source.name, exc, at_import=True))
        if errors:
            raise LoadFailed(errors)
        carried = self._carried(sources, want, isolate) if isolate is not None else set()
        self._begin({s.name for s in sources} | set(drop))
        finder = _SealedFinder(self, {s.name: s for s in sources})
        sys.meta_path.insert(0, finder)
        try:
            errors = self._run_bodies(sources, run, isolate, deadline, carried)
        finally:
            sys.meta_path.remove(finder)
        if errors:
            raise LoadFailed(list(dict.fromkeys(errors)), self.ran)
        executed = dict(self._started)
        marks = self._marks
        modules = {n: m for n, m in self.current.items() if n not in self.execute_names}
        for name, (source, module) in executed.items():
            shown = self.loader.folder.display(source.path)
            errors += [LoadError(name, shown, line, msg) for line, msg in source.problems]
            specs, listeners, problems = marks[name]
            errors += [LoadError(name, shown, line, msg) for line, msg in problems]
            modules[name] = LoadedModule(
                name, source.path, module, source.data, source.imports, specs, listeners
            )
        modules = {n: m for n, m in modules.items() if n in want or n.startswith("_")}
        errors += _duplicates(modules, dict(reserved or {}), self.loader.folder, self.execute_names)
        if errors:
            raise LoadFailed(list(dict.fromkeys(errors)), self.ran)
        self.modules = _prune_helpers(modules, want)
        return self.modules

    def _run_bodies(
        self,
        sources: list[SourceFile],
        run: Run,
        isolate: Isolate | None = None,
        deadline: float | None = None,
        carried: set[str] | None = None,
    ) -> list[LoadError]:
        ns = self.loader.namespace
        given = {s.name: s for s in sources}
        package = sys.modules[ns]
        failed: set[str] = set()
        errors: list[LoadError] = []
        for source in sources:
            if source.name in self._started:
                continue  # executed already, through an import cycle
            if source.imports & failed:
                failed.add(source.name)  # its helper failed: reported once, there
                continue
            fullname = f"{ns}.{source.name}"
            if carried and source.name in carried:
                self._carry(source, fullname, package)
                continue
            module_loader: importlib.abc.Loader = _CompileLoader(source, self)
            if isolate is not None and isolate.wants(source.name):
                left = (deadline - time.monotonic()) if deadline is not None else 30.0
                files = self._closure(source, given)
                module_loader = _IsolatedLoader(source, self, isolate, files, max(0.1, left - 0.2))
            spec = importlib.util.spec_from_file_location(
                fullname, source.path, loader=module_loader
            )
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[fullname] = module
            label = f"{self.loader.folder.display(source.path)} (at import)"
            body = functools.partial(self._exec, spec.loader, module, source.name)
            failures = run(label, body)
            if failures:
                if sys.modules.get(fullname) is module:
                    del sys.modules[fullname]
                failed.add(source.name)
                errors += failures
            else:
                setattr(package, source.name, module)
        return errors

    def _carried(self, sources: list[SourceFile], want: set[str], isolate: Isolate) -> set[str]:
        """The helpers among ``sources`` that no module running in the bot imports."""
        imports = {n: m.imports for n, m in self.current.items()}
        imports |= {s.name: s.imports for s in sources}
        stack = [n for n in want if not isolate.wants(n)]
        reached: set[str] = set()
        while stack:
            name = stack.pop()
            if name not in reached:
                reached.add(name)
                stack += imports.get(name, ())
        return {s.name for s in sources if s.name.startswith("_") and s.name not in reached}

    def _carry(self, source: SourceFile, fullname: str, package: types.ModuleType) -> None:
        """A helper only workers run: a module object with no code run, to keep its text."""
        module = types.ModuleType(fullname, f"{source.name}: runs in the workers that import it")
        module.__file__ = str(source.path)
        setattr(module, CARRIED, True)
        self._started[source.name] = (source, module)
        self._marks[source.name] = ((), (), [])
        sys.modules[fullname] = module
        setattr(package, source.name, module)

    def _closure(
        self, source: SourceFile, given: dict[str, SourceFile]
    ) -> dict[str, tuple[str, bytes]]:
        """``source`` and the helpers it imports, directly or not: what a worker executes."""
        files: dict[str, tuple[str, bytes]] = {}
        stack = [source.name]
        while stack:
            name = stack.pop()
            if name in files:
                continue
            file = given.get(name)
            loaded = self.current.get(name)
            if file is not None:
                files[name] = (str(file.path), file.data)
                stack += file.imports
            elif loaded is not None:
                files[name] = (str(loaded.path), loaded.source)
                stack += loaded.imports
        return files

    def _exec(self, loader: importlib.abc.Loader, module: types.ModuleType, name: str) -> Any:
        """Run on the caller's ``run``: a module body, then reading its marks (the
        commands and listeners in its globals: looking at them is module code too).
        Returns its failures as text (none: it loaded)."""
        try:
            loader.exec_module(module)
            for started, (_, new_module) in list(self._started.items()):
                if started not in self._marks:  # this one, and any it imported
                    self._marks[started] = _read_marks(started, new_module)
        except LoadFailed as exc:  # from a worker process: its own file:line errors
            self._started.pop(name, None)
            return exc.errors
        except BaseException as exc:  # module code may raise anything, even SystemExit
            self._started.pop(name, None)
            return [self.loader.describe(name, exc, at_import=True)]
        return []

    def started(self, source: SourceFile, module: types.ModuleType) -> None:
        """A module's code starts running (called by its loader)."""
        self._started[source.name] = (source, module)
        self.ran.append(self.loader.folder.display(source.path))

    def _begin(self, execute: set[str]) -> None:
        """Take the modules being replaced out of ``sys.modules`` (kept for rollback)."""
        self.execute_names = execute
        self._begun = True
        ns = self.loader.namespace
        # Only the entries this namespace can hold: scanning all of sys.modules (hundreds
        # of entries) took a quarter of a one-module reload.
        keys = [ns, *(f"{ns}.{name}" for name in self.current.keys() | execute)]
        self._saved = {k: sys.modules[k] for k in keys if k in sys.modules}
        # Loading pins each executed file's text in linecache; a rollback must put back the
        # text of the versions that keep serving, or their tracebacks would show the new file.
        files = (str(self.loader.folder.path / f"{name}.py") for name in execute)
        self._lines = {f: linecache.cache[f] for f in files if f in linecache.cache}
        package = sys.modules.get(ns)
        if package is None:
            package = types.ModuleType(ns, f"Command modules from {self.loader.folder.path}")
            package.__path__ = []  # children resolve only through our sealed finder
            package.__spec__ = importlib.machinery.ModuleSpec(ns, None, is_package=True)
            sys.modules[ns] = package
        # `from . import _x` takes the package attribute when there is one: exactly the
        # modules that stay, so nobody binds a replaced one (or one a stuck thread left).
        _set_children(package, {n: m for n, m in self.current.items() if n not in execute})
        for name in execute:
            sys.modules.pop(f"{ns}.{name}", None)

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
            return
        ns = self.loader.namespace
        for key in [k for k in sys.modules if k == ns or k.startswith(ns + ".")]:
            del sys.modules[key]  # the package too, if this transaction created it
        sys.modules.update(self._saved)
        # Modules that keep serving and were not executed were never touched here.
        for key in [k for k in linecache.cache if self._in_folder(k)]:
            stem = Path(key).stem
            if stem in self.execute_names or stem not in self.current:
                del linecache.cache[key]
        linecache.cache.update(self._lines)
        for _, module in self._started.values():
            discard = vars(module).get(DISCARD)
            if callable(discard):
                with contextlib.suppress(Exception):
                    discard()
        self._started.clear()
        self._marks.clear()
        self._finish(self.current)

    def _in_folder(self, filename: str) -> bool:
        return filename.startswith(self._folder_prefix)

    def _finish(self, modules: Mapping[str, LoadedModule]) -> None:
        if self._done:
            return
        ns = self.loader.namespace
        for name in (self.current.keys() | self.execute_names) - modules.keys():
            sys.modules.pop(f"{ns}.{name}", None)
        package = sys.modules.get(ns)
        if package is not None:
            for name, loaded in modules.items():
                sys.modules[f"{ns}.{name}"] = loaded.module
            _set_children(package, modules)
        self._saved, self._lines = {}, {}
        self._started.clear()
        self._marks.clear()
        self._done = True


def _message(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _set_children(package: types.ModuleType, modules: Mapping[str, LoadedModule]) -> None:
    """Make the package's module attributes exactly ``modules``."""
    for attr in [a for a, v in vars(package).items() if isinstance(v, types.ModuleType)]:
        delattr(package, attr)
    for name, loaded in modules.items():
        setattr(package, name, loaded.module)


_Marks = tuple[tuple[CommandSpec, ...], tuple[ListenerSpec, ...], list[tuple[int | None, str]]]


def _read_marks(name: str, module: types.ModuleType) -> _Marks:
    """The commands, listeners and problems of a new module (reads its globals)."""
    specs, problems = _collect_commands(module, name)
    if name.startswith("_"):
        return (), (), problems
    return specs, _collect_listeners(module), problems


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

    # Unchanged modules first, then the least recently saved, so a clash is reported at
    # the file that introduced it (at start-up every module is fresh: a new aroll.py
    # that takes "roll" is blamed, not the dice.py that had it first).
    def age(name: str) -> tuple[bool, int, str]:
        try:
            saved = os.stat(modules[name].path).st_mtime_ns
        except OSError:
            saved = 0
        return name in fresh, saved, name

    for name in sorted(modules, key=age):
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
