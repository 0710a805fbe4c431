"""The composition root: builds every part, owns the live state, and applies changes.

The one place with mutable bot-wide state: the current config, the current
registry, and the storage. ``reload``/``load``/``unload`` all go through one
transactional path (``_apply``), whoever asks: an admin on IRC, the file
watcher, or a test. Data flows one way: IRC line -> connection -> dispatcher ->
command -> outbox -> connection -> socket.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from bot.api import CommandSpec, Event
from bot.builtins import Builtins
from bot.config import Config, ConfigError, diff, load_config
from bot.connection import Backoff, Connection, ConnectionSettings
from bot.dispatch import Dispatcher
from bot.loader import LoadedModule, Loader, LoadError, LoadFailed, inspect_source
from bot.message import Message, Source
from bot.outbox import Outbox, OutboxError
from bot.registry import Registry
from bot.storage import ModuleState, Storage

if TYPE_CHECKING:
    from bot.watcher import DebouncedWatcher

log = logging.getLogger(__name__)


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

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.errors:
            text = "failed, nothing changed (the old code keeps serving): " + " | ".join(
                self.errors
            )
            return text
        parts = []
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
            parts.append(f"{self.unchanged} unchanged")
        return "; ".join(parts)


class ModuleTimer:
    """A timer of one module version (see ``bot.api.Timer``).

    Cancelling drops the references to the module's code at once, so a pending
    timer never keeps an old version alive until its due time.
    """

    def __init__(self, func: Callable[[], object], interval: float | None) -> None:
        self.func: Callable[[], object] | None = func
        self.interval = interval

    def cancel(self) -> None:
        self.func = None

    @property
    def cancelled(self) -> bool:
        return self.func is None


class ModuleHandle:
    """What ``setup(bot)``/``teardown(bot)`` receive (see ``bot.api.Bot``).

    Owns the module version's timers: they start when the version goes live and
    are cancelled the moment it is replaced, so ten reloads never mean ten timers.
    """

    def __init__(self, app: App, loaded: LoadedModule) -> None:
        self._app = app
        self._loaded: LoadedModule | None = loaded
        self.module = loaded.name
        self.state = app.state_for(loaded.name)
        self.log = _module_log(loaded.name)
        self._timers: list[tuple[ModuleTimer, float]] = []
        self._live = False

    def say(self, target: str, text: str) -> None:
        self._app.say(target, text)

    def after(self, seconds: float, func: Callable[[], object]) -> ModuleTimer:
        return self._add(ModuleTimer(func, None), seconds)

    def every(self, seconds: float, func: Callable[[], object]) -> ModuleTimer:
        if seconds <= 0:
            raise ValueError("every() needs a positive interval")
        return self._add(ModuleTimer(func, seconds), seconds)

    def _add(self, timer: ModuleTimer, delay: float) -> ModuleTimer:
        self._timers.append((timer, delay))
        if self._live:
            self._schedule(timer, delay)
        return timer

    def go_live(self) -> None:
        self._live = True
        for timer, delay in self._timers:
            self._schedule(timer, delay)

    def retire(self) -> None:
        for timer, _ in self._timers:
            timer.cancel()
        self._timers.clear()
        self._live = False

    def forget(self) -> None:
        """Drop the module version (after its teardown) so nothing here pins it."""
        self._loaded = None

    def _schedule(self, timer: ModuleTimer, delay: float) -> None:
        self._app.call_later(max(0.0, delay), lambda: self._fire(timer))

    def _fire(self, timer: ModuleTimer) -> None:
        func, loaded = timer.func, self._loaded
        if func is None or loaded is None or not self._live:
            return
        if timer.interval is None:
            timer.cancel()
        else:
            self._schedule(timer, timer.interval)
        self._app.dispatcher.run_timer(loaded, func)


class Transport(Protocol):
    """Where messages come from and replies go: the IRC connection, or the console."""

    nick: str

    def run(self) -> None: ...
    def stop(self, message: str) -> None: ...
    def wake(self) -> None: ...
    def call_later(self, delay: float, fn: Callable[[], None]) -> None: ...
    def set_channels(self, channels: tuple[str, ...]) -> None: ...
    def change_nick(self, nicks: tuple[str, ...]) -> None: ...
    def reconnect(self, reason: str) -> None: ...
    def update_settings(self, settings: ConnectionSettings) -> None: ...
    def source_length(self) -> int: ...


OnEvent = Callable[[str, Source, str, list[str]], None]
TransportFactory = Callable[[Config, Outbox, Callable[[Message], None], OnEvent], Transport]


def irc_transport(
    config: Config, outbox: Outbox, on_message: Callable[[Message], None], on_event: OnEvent
) -> Connection:
    return Connection(_settings(config), outbox, on_message, on_event=on_event, backoff=Backoff())


class App:
    def __init__(
        self,
        config: Config,
        *,
        namespace: str | None = None,
        transport: TransportFactory = irc_transport,
        overlay: Callable[[Config], Config] | None = None,
    ) -> None:
        # A change the runner makes to every config, the file's and each re-read one:
        # the demo's local server, the console's admin rule.
        self.overlay = overlay or (lambda config: config)
        config = self.overlay(config)
        self.config = config
        # Each App in a process needs its own sys.modules namespace (tests run several):
        # "commands" unless another App holds it.
        self.namespace = namespace or (
            "commands" if "commands" not in sys.modules else f"commands_{id(self):x}"
        )
        self.loader = Loader(config.commands_dir, self.namespace)
        self.builtins: tuple[CommandSpec, ...] = Builtins(self).specs()
        self.registry = Registry.build({}, self.builtins)
        # Without state_db, state lives in an in-memory database: same API, no file.
        self.storage = Storage(config.state_db or ":memory:")
        self._reload_lock = threading.RLock()
        self.swap_lock = threading.Lock()  # registry swap vs. dispatcher look-up (see _apply)
        self.executor = ThreadPoolExecutor(config.workers, thread_name_prefix="command")
        self.outbox = Outbox(
            config.rate_limit.per_second,
            config.rate_limit.burst,
            source_length=lambda: self.connection.source_length(),
            wake=lambda: self.connection.wake(),
        )
        self.dispatcher = Dispatcher(self, self.executor)
        self.connection: Transport = transport(
            config, self.outbox, self.dispatcher.handle, self._on_event
        )
        self._closed = False
        self.watching = threading.Event()  # set once the watchers run (tests wait for it)
        self._collect_pending = False  # a gc.collect() is scheduled after a reload
        self._commands_watcher: DebouncedWatcher | None = None
        self._config_watcher: DebouncedWatcher | None = None
        self._unloaded_by_admin: set[str] = set()  # the watcher does not bring these back
        self._handles: dict[LoadedModule, ModuleHandle] = {}  # live and draining versions

    # -- what the dispatcher and commands use ------------------------------------

    @property
    def nick(self) -> str:
        return self.connection.nick

    def say(self, target: str, text: str) -> None:
        try:
            self.outbox.put(target, text)
        except OutboxError as exc:
            log.warning("reply dropped: %s", exc)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.connection.call_later(delay, fn)

    def _on_event(self, kind: str, source: Source, target: str, args: list[str]) -> None:
        """Joins, parts, quits, nick changes and kicks from the transport, for listeners."""
        if kind == "kick":
            nick, channel, text = (args[0] if args else ""), target, " ".join(args[1:])
        elif kind == "nick":
            nick, channel, text = source.nick, None, target
        elif kind == "quit":
            nick, channel, text = source.nick, None, " ".join(args)
        else:
            nick, channel, text = source.nick, target, " ".join(args)
        self.dispatcher.handle_event(Event(kind, nick, channel, text))

    def state_for(self, module: str) -> ModuleState:
        return self.storage.state(module)

    # -- running -----------------------------------------------------------------

    def run(self) -> None:
        """Load modules, connect, and serve until ``stop()`` (on the calling thread)."""
        report = self.load_all()
        for error in report.errors:
            log.error("module not loaded: %s", error)
        # Importing and starting watchdog takes ~80 ms: not on the way to connecting.
        threading.Thread(target=self.start_watching, name="watchers", daemon=True).start()
        try:
            self.connection.run()
        finally:
            self.close()

    def stop(self, message: str = "Shutting down") -> None:
        self.connection.stop(message)

    def start_watching(self) -> None:
        """Start the configured watchers, then catch up on what was saved before they ran.

        A file saved between the first load and the watcher's start raises no event:
        compare the folder with what is loaded once the watcher is running.
        """
        try:
            with self._reload_lock:
                if self._closed:
                    return
                self.watch_config()
                self.watch_commands(self.config.watch)
            if self.config.watch:
                self._on_files_changed(set(self.loader.folder.scan()) | set(self.registry.modules))
        finally:
            self.watching.set()

    def close(self) -> None:
        with self._reload_lock:
            self._closed = True
            self.watch_commands(False)
            if self._config_watcher is not None:
                self._config_watcher.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        with self._reload_lock:
            for loaded in self.registry.command_modules():
                self._teardown(loaded)
            self.registry = Registry.build({}, self.builtins)
        self.storage.close()
        ns = self.namespace
        for key in [k for k in sys.modules if k == ns or k.startswith(ns + ".")]:
            del sys.modules[key]

    # -- loading -----------------------------------------------------------------

    def load_all(self) -> ReloadReport:
        """Load every module in the folder; broken ones are reported and skipped."""
        with self._reload_lock:
            want = {n for n in self.loader.folder.scan() if not n.startswith("_")}
            errors: list[str] = []
            while True:
                report = self._apply(want, fresh=set())
                if report.ok:
                    report.errors = errors
                    return report
                errors += report.errors
                bad = self._users_of(set(report.failed_modules)) & want
                if not bad:
                    report.errors = errors
                    return report
                want -= bad

    def reload(self, names: Iterable[str] = (), *, force: bool = False) -> ReloadReport:
        """Reload ``names``; by default each loaded module whose file changed (all if ``force``)."""
        names = list(names)
        with self._reload_lock:
            current = self.registry.modules
            want = {n for n, m in current.items() if not m.is_helper}
            if not names:
                folder = self.loader.folder
                fresh, gone = set(), set()
                for name, loaded in current.items():
                    if not force and folder.holds(loaded.path, loaded.source):
                        continue  # unchanged, so still there: one stat, no lookup
                    if folder.file_for(name) is None and not loaded.is_helper:
                        gone.add(name)  # a deleted helper is fresh: its importers fail
                    else:
                        fresh.add(name)
                return self._apply(want - gone, fresh)
            missing = [n for n in names if n not in current]
            if missing:
                return ReloadReport(errors=[f"not loaded: {', '.join(missing)} (use load NAME)"])
            return self._apply(want, set(names) | self._changed_helpers(names))

    def load(self, name: str) -> ReloadReport:
        with self._reload_lock:
            if name.startswith("_"):
                return ReloadReport(
                    errors=[f"{name} is a helper; helpers load with the modules that import them"]
                )
            if name in self.registry.modules:
                return ReloadReport(errors=[f"{name} is already loaded (use reload {name})"])
            if self.loader.folder.file_for(name) is None:
                return ReloadReport(
                    errors=[f"no module {name!r} in {self.loader.folder.path.name}/"]
                )
            want = {n for n, m in self.registry.modules.items() if not m.is_helper} | {name}
            report = self._apply(want, {name} | self._changed_helpers([name]))
            if report.ok:
                self._unloaded_by_admin.discard(name)
            return report

    def unload(self, name: str) -> ReloadReport:
        with self._reload_lock:
            loaded = self.registry.modules.get(name)
            if loaded is None or loaded.is_helper:
                return ReloadReport(errors=[f"{name} is not a loaded command module"])
            users = sorted(n for n, m in self.registry.modules.items() if name in m.imports)
            if users:
                return ReloadReport(errors=[f"{name} is imported by {', '.join(users)}"])
            want = {n for n, m in self.registry.modules.items() if not m.is_helper} - {name}
            report = self._apply(want, set())
            if report.ok:
                self._unloaded_by_admin.add(name)
            return report

    # -- live changes: watched files and config.yaml -----------------------------

    def watch_commands(self, enabled: bool) -> None:
        """Turn automatic reloading on file change on or off."""
        from bot.watcher import DebouncedWatcher, is_python_source  # watchdog: only if used

        watcher = self._commands_watcher
        if enabled and watcher is None:
            watcher = DebouncedWatcher(
                self.loader.folder.path,
                is_python_source,
                lambda paths: self._on_files_changed({p.stem for p in paths}),
            )
            watcher.start()
            self._commands_watcher = watcher
            log.info("watching %s for changes", self.loader.folder.path)
        elif not enabled and watcher is not None:
            watcher.stop()
            self._commands_watcher = None
            log.info("stopped watching %s", self.loader.folder.path)

    def watch_config(self) -> None:
        from bot.watcher import DebouncedWatcher

        path = self.config.path
        if path is None or self._config_watcher is not None:
            return
        self._config_watcher = DebouncedWatcher(
            path.parent, lambda p: p.name == path.name, lambda paths: self._on_config_saved()
        )
        self._config_watcher.start()

    def _on_files_changed(self, names: set[str]) -> None:
        """The watcher's batch: decide from the disk what changed, then one transaction."""
        report = self.sync_with_disk(names)
        if report.ok and not (report.reloaded or report.loaded or report.unloaded):
            return  # a touch, or a save that changed nothing
        self.notify(f"auto-reload: {report.summary()}")

    def sync_with_disk(self, names: set[str]) -> ReloadReport:
        """Load new files, reload changed ones, unload deleted ones, among ``names``."""
        with self._reload_lock:
            current = self.registry.modules
            want = {n for n, m in current.items() if not m.is_helper}
            fresh: set[str] = set()
            for name in names:
                exists = self.loader.folder.file_for(name) is not None
                loaded = current.get(name)
                if loaded is not None and not exists:
                    want.discard(name)
                    if loaded.is_helper:
                        fresh.add(name)  # its importers reload, and fail if they still use it
                elif loaded and not self.loader.folder.holds(loaded.path, loaded.source):
                    fresh.add(name)
                elif loaded is None and exists and not self._admin_keeps_out(name):
                    want.add(name)
                    fresh |= {name} | self._changed_helpers([name])
            if want == {n for n, m in current.items() if not m.is_helper} and not fresh:
                return ReloadReport(unchanged=len(current))
            return self._apply(want, fresh)

    def _admin_keeps_out(self, name: str) -> bool:
        return name.startswith("_") or name in self._unloaded_by_admin

    def notify(self, text: str) -> None:
        """Tell the operators: the log always, and the ``notify`` targets if configured."""
        log.info("%s", text)
        for target in self.config.notify:
            self.say(target, text)

    def _on_config_saved(self) -> None:
        result = self.rehash()
        self.notify(f"config.yaml: {result}")

    def rehash(self) -> str:
        """Re-read config.yaml; apply it as a diff, or keep the old one and say why not."""
        path = self.config.path
        if path is None:
            return "no config file to re-read"
        with self._reload_lock:
            try:
                new = self.overlay(load_config(path))
            except ConfigError as exc:
                log.error("config.yaml not applied, the old config stays in force:\n%s", exc)
                return "not applied, old config kept: " + " | ".join(map(str, exc.problems))
            old = self.config
            change = diff(old, new)
            if not change.changed:
                return "no changes"
            if new.commands_dir != old.commands_dir:
                new = replace(new, commands_dir=old.commands_dir)  # needs a restart
            self.config = new
            self.outbox.bucket.configure(new.rate_limit.per_second, new.rate_limit.burst)
            if change.join or change.part:
                self.connection.set_channels(new.channels)
            if new.nicks != old.nicks:
                self.connection.change_nick(new.nicks)
            if new.watch != old.watch:
                self.watch_commands(new.watch)
            # Server and SASL settings are read at the next connect; the rest apply now.
            self.connection.update_settings(_settings(new))
            logging.getLogger().setLevel(new.log_level)
            return change.describe()

    def reconnect(self) -> None:
        self.connection.reconnect("Reconnecting (asked by an admin)")

    def _imports(self, source: bytes) -> frozenset[str]:
        return inspect_source(source, self.namespace).imports

    def _users_of(self, names: set[str]) -> set[str]:
        """``names`` plus every module on disk that imports one of them, directly or not."""
        graph = {
            n: inspect_source(p.read_bytes(), self.namespace).imports
            for n, p in self.loader.folder.scan().items()
        }
        users = set(names)
        while grown := {n for n, imports in graph.items() if n not in users and imports & users}:
            users |= grown
        return users

    def _changed_helpers(self, names: Iterable[str]) -> set[str]:
        """Helpers that ``names`` import (transitively, as on disk now) whose file changed."""
        current = self.registry.modules
        changed: set[str] = set()
        seen: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            path = self.loader.folder.file_for(name)
            if path is None:
                continue
            loaded = current.get(name)
            if loaded is not None and self.loader.folder.holds(path, loaded.source):
                stack += loaded.imports  # unchanged: it imports what it imported; no parse
                continue
            if name.startswith("_"):
                changed.add(name)
            try:
                stack += self._imports(self.loader.folder.read(path))
            except OSError:
                continue  # gone since file_for(); the transaction reports it
        return changed

    def _apply(self, want: set[str], fresh: set[str]) -> ReloadReport:
        """The one transactional path: build, set up, swap, retire. All or nothing."""
        current = self.registry.modules
        try:
            txn = self.loader.prepare(current, want, fresh, self.registry.reserved_names())
        except LoadFailed as exc:
            return _failed(exc.errors)
        new_versions = [
            m for n, m in txn.modules.items() if current.get(n) is not m and not m.is_helper
        ]
        started: list[LoadedModule] = []
        for loaded in new_versions:
            self._handles[loaded] = ModuleHandle(self, loaded)
            error = self._migrate(loaded) or self._call_hook(loaded, "setup")
            if error:
                for done in reversed(started):
                    self._teardown(done)
                for loaded in new_versions:
                    self._handles.pop(loaded, None)
                txn.rollback()
                return _failed([error])
            started.append(loaded)
        replaced = txn.replaced
        txn.commit()
        new_registry = Registry.build(txn.modules, self.builtins)
        # Under the swap lock, the dispatcher cannot be between looking a command up
        # in the old registry and counting its call: every call either counts
        # against the old version (whose teardown then waits) or finds the new one.
        with self.swap_lock:
            old_registry, self.registry = self.registry, new_registry
            for old in replaced.values():
                if old in self._handles:
                    self._handles[old].retire()  # its timers stop now, before the new ones
            for loaded in new_versions:
                self._handles[loaded].go_live()
            retiring = list(replaced.values())
        report = _report(old_registry, self.registry, current, txn.modules, replaced)
        for old in retiring:
            old.activity.retire(lambda old=old: self._teardown(old))
        del retiring
        del old_registry, replaced, txn, new_versions, started
        # Functions and their module's globals form cycles: only the cyclic GC frees an
        # old version. Collect just after the reply has gone out, not before it; one
        # collection for a run of reloads.
        if not self._collect_pending:
            self._collect_pending = True
            self.call_later(_COLLECT_AFTER, self._collect)
        log.info("modules %s", report.summary())
        return report

    def _collect(self) -> None:
        self._collect_pending = False  # first: a reload from now on schedules its own
        gc.collect()

    def _teardown(self, loaded: LoadedModule) -> None:
        """Stop a module version: its timers, then its ``teardown(bot)``; then forget it."""
        handle = self._handles.get(loaded)
        if handle is not None:
            handle.retire()
        error = self._call_hook(loaded, "teardown")
        if error:
            log.error("teardown failed (the new code is serving anyway): %s", error)
        handle = self._handles.pop(loaded, None)
        if handle is not None:
            handle.forget()

    def _migrate(self, loaded: LoadedModule) -> LoadError | None:
        """Run ``migrate(state, old_version)`` when ``STATE_VERSION`` went up."""
        version = getattr(loaded.module, "STATE_VERSION", None)
        if not isinstance(version, int) or isinstance(version, bool):
            return None
        versions = self.state_for(_VERSIONS)
        old = versions.get(loaded.name, 0)
        if version <= old:
            return None
        migrate = getattr(loaded.module, "migrate", None)
        state = self.state_for(loaded.name)
        try:
            if callable(migrate):
                with state.transaction() as atomic:
                    migrate(atomic, old)
        except (Exception, SystemExit) as exc:  # a module's sys.exit() must not stop the bot
            error = self.loader._describe(loaded.name, exc)
            message = f"migrate() from state version {old} raised {error.message}"
            return LoadError(error.module, error.file, error.line, message)
        versions[loaded.name] = version
        log.info("migrated the state of %s from version %d to %d", loaded.name, old, version)
        return None

    def _call_hook(self, loaded: LoadedModule, hook: str) -> LoadError | None:
        fn = getattr(loaded.module, hook, None)
        handle = self._handles.get(loaded)
        if not callable(fn) or handle is None:
            return None
        try:
            fn(handle)
        except (Exception, SystemExit) as exc:  # a module's sys.exit() must not stop the bot
            error = self.loader._describe(loaded.name, exc)
            message = f"{hook}() raised {error.message}"
            return LoadError(error.module, error.file, error.line, message)
        return None


_COLLECT_AFTER = 0.05  # seconds after a reload: its reply is out by then

# Where each module's STATE_VERSION is kept; a helper-style name no module can own.
_VERSIONS = "__state_versions__"


def _module_log(name: str) -> logging.Logger:
    return logging.getLogger(f"commands.{name}")


def _failed(errors: list[LoadError]) -> ReloadReport:
    for error in errors:
        log.error("load failed: %s", error)
    return ReloadReport(
        errors=[str(e) for e in errors], failed_modules=sorted({e.module for e in errors})
    )


def _report(
    old: Registry,
    new: Registry,
    before: dict[str, LoadedModule] | Any,
    after: dict[str, LoadedModule],
    replaced: dict[str, LoadedModule],
) -> ReloadReport:
    old_names = {e.spec.name for e in old.commands()}
    new_names = {e.spec.name for e in new.commands()}
    return ReloadReport(
        reloaded=sorted(n for n in replaced if n in after),
        loaded=sorted(n for n in after if n not in before),
        unloaded=sorted(n for n in before if n not in after),
        added=sorted(new_names - old_names),
        removed=sorted(old_names - new_names),
        unchanged=sum(1 for n, m in after.items() if before.get(n) is m),
    )


def _settings(config: Config) -> ConnectionSettings:
    return ConnectionSettings(
        host=config.server.host,
        port=config.server.port,
        tls=config.server.tls,
        tls_verify=config.server.tls_verify,
        password=config.server.password,
        nicks=config.nicks,
        channels=config.channels,
        username=config.username,
        realname=config.realname,
        tls_certfile=str(config.server.tls_cert) if config.server.tls_cert else None,
        sasl_mechanism=config.sasl.mechanism if config.sasl else None,
        sasl_account=config.sasl.account if config.sasl else "",
        sasl_password=config.sasl.password if config.sasl else "",
        sasl_required=config.sasl.required if config.sasl else False,
        rejoin_delay=config.rejoin_delay,
        join_on_invite=config.join_on_invite,
    )
