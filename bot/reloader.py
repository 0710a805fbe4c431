"""Every reload rule in one place: load all, reload, load, unload, and sync with the disk.

Owns what a change in the commands folder means for the running bot: which
modules run again and which keep their object (the walks of the import graph,
all in one section below), the module versions with their handles, the calls of
``setup``/``teardown``/``migrate``, and the swap of the registry the dispatcher
reads. The loader below it only executes what it is told to.

One transaction runs at a time; a request made meanwhile is answered at once
("a reload is still running"). Every transaction ends in a commit or a
rollback, whatever is raised, within ``reload_timeout`` seconds: module code
runs through a Runner, which stops waiting for code that is stuck.

The order of a switch, as peer bots have it: calls for the modules being
replaced are held; calls already running on the old versions finish (up to
``command_timeout``); the old versions' timers stop and their ``teardown``
runs; then the new versions' ``migrate`` and ``setup``; then the registry
swaps and the held calls run on the new code. If anything fails after the
old ``teardown``, the new versions are torn down, migrated state is put back,
and the old versions are set up again.
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.api import CommandSpec
from bot.config import Config
from bot.handles import ModuleHandle, RunTimer
from bot.loader import (
    CARRIED,
    SETTINGS,
    WORKER,
    Isolate,
    LoadedModule,
    Loader,
    LoadError,
    LoadFailed,
    SourceFile,
    in_import_order,
)
from bot.registry import Live, Registry
from bot.runner import Overrun, Runner
from bot.settings import Scoped, build_scoped, declared_at, scopes, settings_class
from bot.storage import ModuleState

log = logging.getLogger(__name__)

#: Seconds the undo of a failed switch may take (teardowns, state, old setups again).
ROLLBACK_SECONDS = 5.0
#: Seconds one module's teardown may take when the bot shuts down.
CLOSE_TEARDOWN_SECONDS = 2.0
#: Seconds after a reload before the collection that frees the old version.
COLLECT_AFTER = 0.05
# Where each module's STATE_VERSION is kept; a helper-style name no module can own.
STATE_VERSIONS = "__state_versions__"


@dataclass
class ReloadReport:
    """What a load/reload/unload did, for the admin's reply and the log."""

    reloaded: list[str] = field(default_factory=list)  # modules executed again
    loaded: list[str] = field(default_factory=list)  # newly loaded
    unloaded: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)  # command names
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    failed_modules: list[str] = field(default_factory=list)  # modules named by the errors
    ran: list[str] = field(default_factory=list)  # files whose code ran in a failed attempt
    skipped: list[str] = field(default_factory=list)  # files newly found unloadable
    busy: bool = False  # refused: another reload was running

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.busy:
            return self.errors[0]
        parts = []
        if self.errors:
            errors = " | ".join(self.errors)
            if not self.ran:
                parts.append(f"failed, nothing changed (the old code keeps serving): {errors}")
            else:
                files = ", ".join(self.ran[:3]) + (
                    f" and {len(self.ran) - 3} more" if len(self.ran) > 3 else ""
                )
                parts.append(
                    f"failed, the old code keeps serving: {errors}; not undone: what the code"
                    f" of {files} did outside its own module (patches, threads...)"
                )
        else:
            for label, items in (
                ("reloaded", self.reloaded),
                ("loaded", self.loaded),
                ("unloaded", self.unloaded),
                ("commands added", self.added),
                ("commands removed", self.removed),
            ):
                if items:
                    parts.append(f"{label}: {', '.join(items)}")
            if not parts:
                parts.append("nothing changed")
                if self.unchanged:
                    parts.append(f"{_count(self.unchanged, 'module')} loaded")
            elif self.unchanged:
                parts.append(f"{self.unchanged} unchanged")
        if self.skipped:
            parts.append("skipped: " + " | ".join(self.skipped))
        return "; ".join(parts)

    @property
    def changed(self) -> bool:
        return bool(self.reloaded or self.loaded or self.unloaded)


class Host(Protocol):
    """What the reloader needs from the rest of the bot."""

    @property
    def config(self) -> Config: ...

    def state_for(self, module: str) -> ModuleState: ...

    def say(self, target: str, text: str) -> None: ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> None: ...


# -- the one walk of the import graph ---------------------------------------------


@dataclass
class _Plan:
    """What a transaction executes (helpers first) and which command modules it keeps."""

    sources: list[SourceFile]
    want: set[str]
    errors: list[LoadError]
    gone: set[str] = field(default_factory=set)  # loaded helpers whose file is gone


def users_of(graph: Mapping[str, Iterable[str]], names: set[str]) -> set[str]:
    """``names`` and every module of ``graph`` that imports one of them, directly or not."""
    users = set(names)
    while grown := {n for n, imports in graph.items() if n not in users and users & set(imports)}:
        users |= grown
    return users


# -- the reloader -------------------------------------------------------------------


@dataclass
class _Busy:
    what: str
    since: float = field(default_factory=time.monotonic)


@dataclass
class _Undo:
    """What a switch did so far, so a failure can put it back."""

    paused: list[LoadedModule] = field(default_factory=list)
    torn_down: list[LoadedModule] = field(default_factory=list)
    migrated: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    set_up: list[LoadedModule] = field(default_factory=list)


class Reloader:
    """Loads, reloads and unloads the command modules; one transaction at a time."""

    def __init__(self, loader: Loader, live: Live, host: Host, run_timer: RunTimer) -> None:
        self.loader = loader
        self.live = live
        self.host = host
        self.run_timer = run_timer
        self.runner = Runner(loader.folder.path)
        self.builtins: tuple[CommandSpec, ...] = ()
        self._turn = threading.Condition()
        self._busy: _Busy | None = None
        self._closed = False
        self._handles: dict[LoadedModule, ModuleHandle] = {}  # live versions
        self._unloaded_by_admin: set[str] = set()  # the watcher does not bring these back
        # Modules found on their own (start-up, !reload, the watcher); None: all. The
        # test plugin's bot serves one module of a folder that may hold others.
        self.scope: set[str] | None = None
        self.isolation: Isolate | None = None  # modules that run in worker processes
        # Skipped files already logged, and already told to each audience.
        self.settings: dict[str, Scoped] = {}  # module -> its Settings now in force
        self._skips_logged: set[str] = set()
        self._skips_told: dict[str, set[str]] = {}
        self._collect_pending = False

    @property
    def registry(self) -> Registry:
        return self.live.registry

    def set_builtins(self, specs: tuple[CommandSpec, ...]) -> None:
        """The built-in commands: always in the registry, their names reserved."""
        self.builtins = specs
        with self.live.lock:
            self.live.registry = Registry.build(self.live.registry.modules, specs)

    # -- what admins, the watcher and start-up ask for ---------------------------

    def load_all(self) -> ReloadReport:
        """Load every module in the folder; broken ones are reported and skipped."""
        return self._exclusive("loading every module", self._load_all, wait=True)

    def reload(self, names: Iterable[str] = (), *, force: bool = False) -> ReloadReport:
        """Reload ``names``; by default every changed, new or deleted file (all if ``force``)."""
        names = list(names)
        return self._exclusive("reload", lambda: self._reload(names, force))

    def load(self, name: str) -> ReloadReport:
        return self._exclusive(f"load {name}", lambda: self._load(name))

    def unload(self, name: str) -> ReloadReport:
        return self._exclusive(f"unload {name}", lambda: self._unload(name))

    def sync_with_disk(self, names: set[str]) -> ReloadReport:
        """Load new files, reload changed ones, unload deleted ones, among ``names``.

        For the file watcher: waits for a reload that is running instead of refusing.
        """
        return self._exclusive("auto-reload", lambda: self._sync(names), wait=True)

    def busy_text(self) -> str | None:
        """ "a reload is still running (since N s, in FILE)", or None when none runs."""
        busy = self._busy
        if busy is None:
            return None
        label = self.runner.label
        where = self.runner.where_now()
        doing = f", in {label}" if label else f", {busy.what}"
        at = f" at {where}" if where and label else ""
        return f"a reload is still running (since {time.monotonic() - busy.since:.0f} s{doing}{at})"

    def close(self, seconds: float = 5.0) -> None:
        """Tear down every module (each within a bounded time) and refuse further reloads.

        Never waits for a transaction that is running: it is rolled back when it
        reaches its commit.
        """
        with self._turn:
            self._closed = True
            self._turn.notify_all()
        deadline = time.monotonic() + seconds
        runner = Runner(self.loader.folder.path, "teardown-at-exit")
        for loaded in reversed(self.live.registry.command_modules()):
            left = min(CLOSE_TEARDOWN_SECONDS, deadline - time.monotonic())
            if left <= 0:
                log.warning("no time left to tear down %s at shutdown", loaded.name)
                continue
            try:
                self._teardown(loaded, time.monotonic() + left, runner)
            except Overrun as exc:
                log.warning("teardown at shutdown: %s; not waiting", exc)
            self._forget(loaded)
        runner.close()
        self.runner.close()
        self.live.switch(Registry.build({}, self.builtins))

    # -- the operations, run one at a time ------------------------------------------

    def _exclusive(
        self, what: str, operation: Callable[[], ReloadReport], *, wait: bool = False
    ) -> ReloadReport:
        with self._turn:
            if wait:  # at most as long as the running one can take
                config = self.host.config
                longest = config.reload_timeout + config.command_timeout + ROLLBACK_SECONDS
                self._turn.wait_for(lambda: self._busy is None or self._closed, longest)
            if self._closed:
                return ReloadReport(errors=["the bot is shutting down"], busy=True)
            if self._busy is not None:
                return ReloadReport(errors=[self.busy_text() or "a reload is running"], busy=True)
            self._busy = _Busy(what)
        try:
            return operation()
        finally:
            with self._turn:
                self._busy = None
                self._turn.notify_all()

    def _command_modules(self) -> set[str]:
        return {n for n, m in self.live.registry.modules.items() if not m.is_helper}

    def _load_all(self) -> ReloadReport:
        on_disk, skipped = self.loader.folder.scan_all()
        skips = self._new_skips(skipped, "start")
        want = {n for n in on_disk if not self._kept_out(n)} | self._command_modules()
        errors: list[str] = []
        while True:
            report = self._apply(want, set())
            if report.ok:
                break
            errors += report.errors
            bad = users_of(self._graph_on_disk(), set(report.failed_modules)) & want
            if not bad:
                break
            want -= bad
        report.errors = errors
        report.skipped = skips
        return report

    def _reload(self, names: list[str], force: bool) -> ReloadReport:
        current = self.live.registry.modules
        want = self._command_modules()
        if names:
            missing = [n for n in names if n not in current]
            if missing:
                return ReloadReport(errors=[f"not loaded: {', '.join(missing)} (use load NAME)"])
            return self._apply(want, set(names))
        folder = self.loader.folder
        on_disk, skipped = folder.scan_all()
        fresh: set[str] = set()
        gone: set[str] = set()
        for name, loaded in current.items():
            if name not in on_disk:
                # A deleted helper runs again: its importers fail, and nothing changes.
                (fresh if loaded.is_helper else gone).add(name)
            elif force or not folder.holds(loaded.path, loaded.source):
                fresh.add(name)
        new = {n for n in on_disk if n not in current and not self._kept_out(n)}
        report = self._apply((want - gone) | new, fresh | new)
        report.skipped = self._new_skips(skipped, "!reload")
        return report

    def _load(self, name: str) -> ReloadReport:
        folder = self.loader.folder
        if name.startswith("_"):
            return ReloadReport(
                errors=[f"{name} is a helper; helpers load with the modules that import them"]
            )
        if name in self.live.registry.modules:
            return ReloadReport(errors=[f"{name} is already loaded (use reload {name})"])
        if folder.file_for(name) is None:
            _, skipped = folder.scan_all()
            why = [s.reason for s in skipped if s.file == f"{folder.path.name}/{name}.py"]
            reason = f": {why[0]}" if why else ""
            return ReloadReport(errors=[f"no module {name!r} in {folder.path.name}/{reason}"])
        report = self._apply(self._command_modules() | {name}, {name})
        if report.ok:
            self._unloaded_by_admin.discard(name)
            if self.scope is not None:
                self.scope.add(name)
        return report

    def _unload(self, name: str) -> ReloadReport:
        loaded = self.live.registry.modules.get(name)
        if loaded is None or loaded.is_helper:
            return ReloadReport(errors=[f"{name} is not a loaded command module"])
        report = self._apply(self._command_modules() - {name}, set())
        if report.ok:
            self._unloaded_by_admin.add(name)
        return report

    def _sync(self, names: set[str]) -> ReloadReport:
        folder = self.loader.folder
        current = self.live.registry.modules
        want = self._command_modules()
        before = set(want)
        fresh: set[str] = set()
        for name in names:
            exists = folder.file_for(name) is not None
            loaded = current.get(name)
            if loaded is not None and not exists:
                want.discard(name)
                if loaded.is_helper:
                    fresh.add(name)  # its importers reload, and fail if they still use it
            elif loaded is not None and not folder.holds(loaded.path, loaded.source):
                fresh.add(name)
            elif loaded is None and exists and not self._kept_out(name):
                want.add(name)
                fresh.add(name)
        skips = self._new_skips(folder.scan_all()[1], "watcher")
        if want == before and not fresh:
            return ReloadReport(unchanged=len(current), skipped=skips)
        report = self._apply(want, fresh)
        report.skipped = skips
        return report

    def _isolated(self, name: str) -> bool:
        return self.isolation is not None and self.isolation.wants(name)

    def _kept_out(self, name: str) -> bool:
        """Not loaded unless asked for by name: helpers, modules an admin unloaded."""
        if self.scope is not None and name not in self.scope:
            return True
        return name.startswith("_") or name in self._unloaded_by_admin

    def _new_skips(self, skipped: Iterable[object], audience: str) -> list[str]:
        """Skipped files ``audience`` (``!reload`` replies, the watcher's notices) was
        not told of yet; each is logged once. A file fixed and broken again is news."""
        texts = [str(s) for s in skipped]
        for text in texts:
            if text not in self._skips_logged:
                log.warning("%s", text)
        self._skips_logged = set(texts)
        told = self._skips_told.get(audience, set())
        self._skips_told[audience] = set(texts)
        return [t for t in texts if t not in told]

    def _graph_on_disk(self) -> dict[str, frozenset[str]]:
        graph = {}
        for name in self.loader.folder.scan():
            source = self.loader.source(name)
            if source is not None:
                graph[name] = source.imports
        return graph

    # -- one transaction --------------------------------------------------------------

    def _plan(self, current: Mapping[str, LoadedModule], want: set[str], fresh: set[str]) -> _Plan:
        """Which files run: ``fresh`` and new modules, the helpers they import that are new
        or changed on disk, and every module that imports something that runs, directly or
        not. Every other module keeps its loaded object."""
        folder = self.loader.folder
        asked, want = want, set(want)
        graph = {n: m.imports for n, m in current.items()}
        sources: dict[str, SourceFile] = {}
        gone: set[str] = set()
        errors: list[LoadError] = []
        pending = set(fresh) | (want - current.keys())
        while pending:
            name = pending.pop()
            source = None if name in sources or name in gone else self.loader.source(name)
            if source is not None:
                sources[name] = source
                graph[name] = source.imports
                for dependency in source.imports - sources.keys() - gone:
                    loaded = current.get(dependency)
                    if loaded is None:
                        pending.add(dependency)  # new: a command module imported is loaded too
                        if not dependency.startswith("_"):
                            want.add(dependency)
                    elif loaded.is_helper and not folder.holds(loaded.path, loaded.source):
                        pending.add(dependency)
                    elif vars(loaded.module).get(CARRIED) and not self._isolated(name):
                        pending.add(dependency)  # only workers ran it: now the bot needs it
            elif name not in sources and name not in gone:
                gone.add(name)  # an import of nothing: its importers fail at their import line
                if name not in asked:
                    want.discard(name)
                elif name in want:
                    shown = f"{folder.path.name}/{name}.py"
                    errors.append(LoadError(name, shown, None, "no such file"))
            if not pending:  # what imports a module that runs again (or is gone) runs again
                pending = {
                    n
                    for n, imports in graph.items()
                    if n not in sources
                    and n not in gone
                    and (imports & sources.keys() or imports & gone)
                    and (n in want or n.startswith("_"))
                }
        errors += self._still_imported(current, want, graph)
        return _Plan(in_import_order(sources), want, errors, gone & current.keys())

    def _still_imported(
        self,
        current: Mapping[str, LoadedModule],
        want: set[str],
        graph: Mapping[str, frozenset[str]],
    ) -> list[LoadError]:
        """A command module may not go (unload, deleted file) while a module kept imports it."""
        users: dict[str, list[str]] = {}
        for name in sorted(want):
            for dependency in graph.get(name, frozenset()):
                loaded = current.get(dependency)
                if loaded is not None and not loaded.is_helper and dependency not in want:
                    users.setdefault(dependency, []).append(name)
        return [
            LoadError(
                name,
                self.loader.folder.display(current[name].path),
                None,
                f"{name} is imported by {', '.join(names)}",
            )
            for name, names in sorted(users.items())
        ]

    def _apply(self, want: set[str], fresh: set[str]) -> ReloadReport:
        """The one transactional path: plan, execute, switch. All or nothing."""
        deadline = time.monotonic() + self.host.config.reload_timeout
        current = self.live.registry.modules
        plan = self._plan(current, want, fresh)
        if plan.errors:
            return _failed(plan.errors, ())
        kept = {n for n, m in current.items() if not m.is_helper}
        if not plan.sources and not plan.gone and plan.want == kept:
            return ReloadReport(unchanged=len(current))
        with self.loader.transaction(current) as txn:
            try:
                txn.execute(
                    plan.sources,
                    plan.want,
                    self.live.registry.reserved_names(),
                    self._bounded(deadline),
                    drop=plan.gone,
                    isolate=self.isolation,
                    deadline=deadline,
                )
            except LoadFailed as exc:
                return _failed(exc.errors, exc.ran)
            except Overrun as exc:
                return _failed([self._stuck(exc)], txn.ran)
            try:
                settings, errors = self._build_settings(
                    txn.modules, current, self.host.config, self._bounded(deadline)
                )
            except Overrun as exc:
                return _failed([self._stuck(exc)], txn.ran)
            if errors:
                return _failed(errors, txn.ran)
            return self._switch(txn.modules, txn.replaced, txn.commit, txn.ran, deadline, settings)

    def _build_settings(
        self,
        modules: Mapping[str, LoadedModule],
        current: Mapping[str, LoadedModule],
        config: Config,
        run: Callable[[str, Callable[[], Any]], Any],
        everyone: bool = False,
    ) -> tuple[dict[str, Any], list[LoadError]]:
        """The ``Settings`` of each new version (of every module: ``everyone``), or errors.

        Reading a ``Settings`` class runs module code (its annotations, its
        ``__post_init__``): on the runner, like the rest.
        """
        built: dict[str, Scoped] = {}
        errors: list[LoadError] = []
        for name, loaded in modules.items():
            fresh = current.get(name) is not loaded
            if loaded.is_helper or not (fresh or everyone) or WORKER in vars(loaded.module):
                continue
            found = scopes(config, name)
            shown = self.loader.folder.display(loaded.path)
            cls = settings_class(loaded.module)
            if cls is None:
                for key in (key for scope in found for key in scope.given):
                    line = config.lines.get(key)
                    message = (
                        f"{key}: {shown} declares no Settings (a dataclass named Settings)"
                        " to read it"
                    )
                    errors.append(LoadError(name, _config_file(config), line, message))
                continue
            label = f"the Settings of {shown}"
            instance, problems = run(label, functools.partial(build_scoped, cls, found))
            declared = declared_at(loaded.source)
            where = shown + (f":{declared}" if declared else "")
            for problem in problems:
                section = problem.key.rsplit(".", 1)[0]
                line = config.lines.get(problem.key) or config.lines.get(section)
                message = f"{problem.key}: {problem.message} (Settings in {where})"
                errors.append(LoadError(name, _config_file(config), line, message))
            if not problems:
                built[name] = instance
        return built, errors

    def check_settings(self, config: Config) -> list[str]:
        """Would ``config``'s ``modules:`` suit every loaded module? Its problems (none: it
        is now in force)."""

        def check() -> ReloadReport:
            current = self.live.registry.modules
            deadline = time.monotonic() + config.reload_timeout
            run = self._bounded(deadline)
            namespaces = [vars(m.module) for m in current.values()]
            workers = [ns[SETTINGS] for ns in namespaces if SETTINGS in ns]
            label = "the settings of an isolated module"
            try:
                built, errors = self._build_settings(current, current, config, run, everyone=True)
                texts = [str(e) for e in errors]
                for check in workers:  # isolated modules: their workers check (phase one)
                    texts += run(label, functools.partial(check, config, False))
                if not texts:
                    for check in workers:  # and use it (phase two)
                        run(label, functools.partial(check, config, True))
            except Overrun as exc:
                return _failed([self._stuck(exc)], ())
            if texts:
                return ReloadReport(errors=texts)
            if not errors:
                for name, scoped in built.items():
                    self.settings[name] = scoped
                    for loaded, handle in self._handles.items():
                        if loaded.name == name:
                            handle.settings = scoped.default
            return ReloadReport(errors=[str(e) for e in errors])

        report = self._exclusive("settings", check, wait=True)
        return report.errors

    def _bounded(self, deadline: float) -> Callable[[str, Callable[[], Any]], Any]:
        def run(label: str, fn: Callable[[], Any]) -> Any:
            return self.runner.call(label, fn, deadline - time.monotonic())

        return run

    def _switch(
        self,
        modules: dict[str, LoadedModule],
        replaced: dict[str, LoadedModule],
        commit: Callable[[], None],
        ran: list[str],
        deadline: float,
        settings: dict[str, Any],
    ) -> ReloadReport:
        """Hold, drain, tear down the old, migrate and set up the new, swap (see the top)."""
        current = self.live.registry.modules
        old = [m for m in replaced.values() if not m.is_helper]
        new = [m for n, m in modules.items() if current.get(n) is not m and not m.is_helper]
        for loaded in new:
            handle = ModuleHandle(self.host, self.run_timer, loaded)
            scoped = settings.get(loaded.name)
            handle.settings = scoped.default if scoped is not None else None
            self._handles[loaded] = handle
        self.live.hold({m.name for m in old} | {m.name for m in new}, old)
        undo = _Undo()
        try:
            error = self._replace(old, new, deadline, undo)
            if error is None and self._closed:
                error = LoadError("", "", None, "the bot is shutting down")
        except BaseException:  # a bug of ours: never leave calls held or old code torn down
            self._undo(undo, new)
            self.live.switch(None, revived=old)
            raise
        if error is not None:
            self._undo(undo, new)
            self.live.switch(None, revived=old)
            return _failed([error], ran)
        commit()
        for name in [n for n in self.settings if n not in modules]:
            del self.settings[name]
        self.settings.update(settings)
        registry = Registry.build(modules, self.builtins)
        for loaded in new:
            self._handles[loaded].go_live()
        self.live.switch(registry)
        for loaded in old:
            self._forget(loaded)
        report = _report(current, modules, replaced)
        self._schedule_collection()
        what = self._busy.what if self._busy is not None else "reload"
        log.info("%s: %s", what, report.summary())
        return report

    def _replace(
        self, old: list[LoadedModule], new: list[LoadedModule], deadline: float, undo: _Undo
    ) -> LoadError | None:
        try:
            for loaded in old:
                self._handle(loaded).pause()
                undo.paused.append(loaded)
            drained = min(time.monotonic() + self.host.config.command_timeout, deadline)
            for loaded in old:
                if not loaded.activity.wait_idle(drained - time.monotonic()):
                    log.warning(
                        "%s: %d call(s) still running on the old version; tearing it down anyway",
                        loaded.name,
                        loaded.activity.running,
                    )
            for loaded in old:
                self._teardown(loaded, deadline)
                undo.torn_down.append(loaded)
            for loaded in new:
                error = self._migrate(loaded, deadline, undo)
                if error is None:
                    error = self._hook(loaded, "setup", deadline)
                if error is not None:
                    return error
                undo.set_up.append(loaded)
        except Overrun as exc:
            return self._stuck(exc)
        return None

    def _undo(self, undo: _Undo, new: list[LoadedModule]) -> None:
        """Put back what a failed switch did: the old versions serve again, set up again."""
        deadline = time.monotonic() + ROLLBACK_SECONDS
        try:
            for loaded in reversed(undo.set_up):
                self._teardown(loaded, deadline)
            for name, version, snapshot in reversed(undo.migrated):
                restore = functools.partial(self._restore, name, version, snapshot)
                self.runner.call(
                    f"putting back the state of {name}", restore, deadline - time.monotonic()
                )
            for loaded in [] if self._closed else undo.torn_down:
                self._handle(loaded).torn_down = False
                error = self._hook(loaded, "setup", deadline)
                if error is not None:
                    log.error("the old version's setup failed when set up again: %s", error)
        except Overrun as exc:
            log.error("undoing a failed reload: %s; the rest is not undone", exc)
        for loaded in new:
            handle = self._handles.pop(loaded, None)
            if handle is not None:
                handle.forget()
        for loaded in undo.paused:
            self._handle(loaded).go_live()

    def _handle(self, loaded: LoadedModule) -> ModuleHandle:
        handle = self._handles.get(loaded)
        if handle is None:  # versions from before a failed attempt always have one
            handle = self._handles[loaded] = ModuleHandle(self.host, self.run_timer, loaded)
        return handle

    def _forget(self, loaded: LoadedModule) -> None:
        handle = self._handles.pop(loaded, None)
        if handle is not None:
            handle.forget()

    # -- module code: hooks and migrations, on the runner -------------------------------

    def _teardown(
        self, loaded: LoadedModule, deadline: float, runner: Runner | None = None
    ) -> None:
        """Stop a module version: its timers, then its ``teardown(bot)``. Raises Overrun."""
        handle = self._handles.get(loaded)
        if handle is not None:
            if handle.torn_down:
                return
            handle.torn_down = True
            handle.pause()
        error = self._hook(loaded, "teardown", deadline, runner)
        if error is not None:
            log.error("teardown failed (the reload goes on): %s", error)
        if handle is not None:
            handle.drop_timers()

    def _hook(
        self, loaded: LoadedModule, hook: str, deadline: float, runner: Runner | None = None
    ) -> LoadError | None:
        """Call ``setup``/``teardown`` of a version; what it raised, as text. Raises Overrun."""
        fn = vars(loaded.module).get(hook)  # vars(): a module __getattr__ is module code
        handle = self._handles.get(loaded)
        if not callable(fn) or handle is None:
            return None
        shown = self.loader.folder.display(loaded.path)

        def call() -> LoadError | None:
            try:
                fn(handle)
            except BaseException as exc:  # module code may raise anything, even SystemExit
                error = self.loader.describe(loaded.name, exc)
                return LoadError(
                    error.module, error.file, error.line, f"{hook}() raised {error.message}"
                )
            return None

        runner = runner or self.runner
        result: LoadError | None = runner.call(
            f"{hook}() of {shown}", call, deadline - time.monotonic()
        )
        return result

    def _migrate(self, loaded: LoadedModule, deadline: float, undo: _Undo) -> LoadError | None:
        """Run ``migrate(state, old_version)`` when ``STATE_VERSION`` went up. Raises Overrun."""
        version = vars(loaded.module).get("STATE_VERSION")
        if not isinstance(version, int) or isinstance(version, bool):
            return None
        migrate = vars(loaded.module).get("migrate")
        name = loaded.name
        shown = self.loader.folder.display(loaded.path)

        def call() -> LoadError | tuple[int, dict[str, Any]] | None:
            versions = self.host.state_for(STATE_VERSIONS)
            old = versions.get(name, 0)
            if version <= old:
                return None
            state = self.host.state_for(name)
            snapshot = state.copy()
            try:
                if callable(migrate):
                    with state.transaction() as atomic:
                        migrate(atomic, old)
            except BaseException as exc:  # module code may raise anything, even SystemExit
                error = self.loader.describe(name, exc)
                message = f"migrate() from state version {old} raised {error.message}"
                return LoadError(error.module, error.file, error.line, message)
            versions[name] = version
            if snapshot:  # (a module's first start, with nothing stored, is no migration)
                log.info("migrated the state of %s from version %d to %d", name, old, version)
            return old, snapshot

        result = self.runner.call(f"migrate() of {shown}", call, deadline - time.monotonic())
        if isinstance(result, tuple):
            undo.migrated.append((name, *result))
            return None
        return result

    def _restore(self, name: str, version: int, snapshot: dict[str, Any]) -> None:
        state = self.host.state_for(name)
        with state.transaction():
            state.clear()
            state.update(snapshot)
        versions = self.host.state_for(STATE_VERSIONS)
        if version:
            versions[name] = version
        else:
            versions.pop(name, None)

    def _stuck(self, overrun: Overrun) -> LoadError:
        """An overrun as an error naming where the code is stuck."""
        where = overrun.where
        in_function = f", in {where.function}" if where else ""
        message = (
            f"still running after {self.host.config.reload_timeout:g} s"
            f" ({overrun.label}{in_function});"
            " abandoned and rolled back, and the stuck code was asked to stop"
        )
        if where is None:
            return LoadError("", "", None, message)
        module = where.file.rsplit("/", 1)[-1].removesuffix(".py")
        return LoadError(module, where.file, where.line, message)

    def _schedule_collection(self) -> None:
        # Functions and their module's globals form cycles: only the cyclic GC frees an
        # old version. Collect just after the reply has gone out, not before it; one
        # collection for a run of reloads.
        if not self._collect_pending:
            self._collect_pending = True
            self.host.call_later(COLLECT_AFTER, self._collect)

    def _collect(self) -> None:
        self._collect_pending = False  # first: a reload from now on schedules its own
        gc.collect()


def _config_file(config: Config) -> str:
    return config.path.name if config.path is not None else "config.yaml"


def _failed(errors: list[LoadError], ran: Iterable[str]) -> ReloadReport:
    for error in errors:
        log.error("load failed: %s", error)
    return ReloadReport(
        errors=[str(e) for e in errors],
        failed_modules=sorted({e.module for e in errors if e.module}),
        ran=list(dict.fromkeys(ran)),
    )


def _report(
    before: Mapping[str, LoadedModule],
    after: Mapping[str, LoadedModule],
    replaced: Mapping[str, LoadedModule],
) -> ReloadReport:
    old_names = {s.name for m in before.values() for s in m.commands}
    new_names = {s.name for m in after.values() for s in m.commands}
    return ReloadReport(
        reloaded=sorted(n for n in replaced if n in after),
        loaded=sorted(n for n in after if n not in before),
        unloaded=sorted(n for n in before if n not in after),
        added=sorted(new_names - old_names),
        removed=sorted(old_names - new_names),
        unchanged=sum(1 for n, m in after.items() if before.get(n) is m),
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
