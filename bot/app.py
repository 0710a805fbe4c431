"""The composition root: builds every part, runs them, applies config.yaml, and closes.

Wiring only: the reload rules are ``bot.reloader``'s, the dispatch rules
``bot.dispatch``'s. The App holds the bot-wide state in one place (the config
in force, the storage, the live registry through the reloader) and connects
the parts, so data flows one way: IRC line -> connection -> dispatcher ->
command -> outbox -> connection -> socket.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from bot.api import Event, Response
from bot.backups import Backups
from bot.builtins import Builtins
from bot.casemap import irc_lower
from bot.config import Config, ConfigError, load_config
from bot.config_change import diff
from bot.connection import Backoff, Connection, ConnectionSettings
from bot.ctcp import CtcpAnswers
from bot.dispatch import Dispatcher, Running
from bot.ignores import STATE_KEY as IGNORES
from bot.ignores import Ignores
from bot.isolated import Isolation
from bot.loader import Loader
from bot.message import Message, Source
from bot.outbox import IRC_LINE, Outbox, OutboxError
from bot.policy import user_id
from bot.registry import Live, Registry
from bot.reloader import Reloader, ReloadReport
from bot.runner import CpuFollower
from bot.storage import ModuleState, Storage
from bot.sts import STATE_KEY as STS
from bot.sts import StsPolicies

if TYPE_CHECKING:
    from bot.watcher import DebouncedWatcher
    from bot.web import Web

__all__ = ["App", "ReloadReport", "Transport", "irc_transport"]

log = logging.getLogger(__name__)

#: Seconds ``close()`` gives the modules' teardowns, and the storage, at shutdown.
CLOSE_SECONDS = 5.0


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


OnEvent = Callable[[Event, Source], None]  # what happened, and who did it
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
        only: Iterable[str] | None = None,
    ) -> None:
        """``only``: the modules found on their own (at start, by ``!reload``, by the
        watcher); others load only by name (``!load``). Default: every module."""
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
        # Without state_db, state lives in an in-memory database: same API, no file.
        self.storage = Storage(config.state_db or ":memory:")
        self.backups: Backups | None = None
        if config.state_db is not None and config.backup.interval > 0:
            backup = config.backup
            self.backups = Backups(self.storage, backup.dir, backup.interval, backup.keep)
        self.executor = ThreadPoolExecutor(config.workers, thread_name_prefix="command")
        self.outbox = Outbox(
            config.rate_limit.per_second,
            config.rate_limit.burst,
            max_queued=config.rate_limit.max_queued,
            source_length=lambda: self.connection.source_length(),
            line_length=lambda: getattr(self.connection, "line_length", IRC_LINE),
            wake=lambda: self.connection.wake(),
        )
        # ctx.fetch's client, made on the first fetch: urllib3 (a fifth of the bot's
        # import time) is loaded only by a bot whose modules use the web.
        self._web: Web | None = None
        self._web_lock = threading.Lock()
        self._loop_thread: threading.Thread | None = None  # the connection's: never blocks
        self.ignores = Ignores(lambda: self.storage.state(IGNORES))
        self.ctcp = CtcpAnswers()
        self.ignores.configure(config.ignore)
        self.live = Live(Registry.build({}, ()))
        self.dispatcher = Dispatcher(self, self.live, self.executor)
        self.isolation = Isolation(self, config.isolate, config.isolate_memory_mb)
        self._configure_isolation(config)
        self.reloader = Reloader(self.loader, self.live, self, self.dispatcher.run_timer)
        self.reloader.isolation = self.isolation
        self.reloader.set_builtins(Builtins(self).specs())
        self.reloader.scope = None if only is None else set(only)
        self.connection: Transport = transport(
            config, self.outbox, self.dispatcher.handle, self._on_event
        )
        if isinstance(self.connection, Connection):  # STS policies outlive the process
            self.connection.sts = StsPolicies(lambda: self.storage.state(STS))
        self._closed = False
        self._lock = threading.Lock()  # watchers and config changes vs. close()
        self.watching = threading.Event()  # set once the watchers run (tests wait for it)
        self._commands_watcher: DebouncedWatcher | None = None
        self._config_watcher: DebouncedWatcher | None = None

    # -- what the parts use ------------------------------------------------------

    @property
    def nick(self) -> str:
        return self.connection.nick

    @property
    def prefix(self) -> str:
        return self.config.prefix

    @property
    def registry(self) -> Registry:
        return self.live.registry

    def say(self, target: str, text: str) -> None:
        self.reply(target, text)

    def reply(
        self,
        target: str,
        text: str,
        *,
        urgent: bool = False,
        room: int | None = None,
        kind: str = "message",
    ) -> tuple[int, int]:
        """Queue ``text`` for ``target``, at most ``room`` lines of it: (queued, all).

        ``kind``: ``message`` (PRIVMSG), ``action`` (/me) or ``notice``."""
        command = "NOTICE" if kind == "notice" else "PRIVMSG"
        try:
            lines = self.outbox.lines(
                target, text, command, ctcp="ACTION" if kind == "action" else None
            )
        except OutboxError as exc:
            log.warning("reply dropped: %s", exc)
            return 0, 0
        kept = lines if room is None else lines[: max(0, room)]
        return self.outbox.put_lines(target, kept, urgent=urgent), len(lines)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.connection.call_later(delay, fn)

    def state_for(self, module: str) -> ModuleState:
        return self.storage.state(module)

    def modes_of(self, channel: str | None, nick: str) -> frozenset[str]:
        """``nick``'s modes in ``channel``, as the connection tracks them (none elsewhere)."""
        members = getattr(self.connection, "members", None)  # the IRC connection's (Channels)
        return members.modes_of(channel, nick) if members is not None else frozenset()

    def notice(self, target: str, text: str) -> None:
        try:
            self.outbox.put(target, text, command="NOTICE")
        except OutboxError as exc:
            log.warning("notice dropped: %s", exc)

    def running(self) -> list[Running]:
        return self.dispatcher.running()

    def flush(self, target: str | None) -> int:
        """Drop the lines waiting for ``target`` (None: everyone): how many."""
        dropped = self.outbox.drop(target)
        log.info("flushed %d waiting line(s) to %s", dropped, target or "everyone")
        return dropped

    def off(self, channel: str | None, module: str | None, command: str) -> bool:
        return self.dispatcher.policy.off(channel, module, command)

    def fetch(self, url: str, **options: Any) -> Response:
        return self.web.fetch(url, **options)

    @property
    def web(self) -> Web:
        with self._web_lock:
            if self._web is None:
                from bot.web import Web

                self._web = Web(self.config.http)
                self._web.forbidden_thread = self._loop_thread
            return self._web

    def settings_for(self, module: str, channel: str | None = None) -> Any:
        """``module``'s Settings in ``channel`` (with that channel's overrides)."""
        scoped = self.reloader.settings.get(module)
        return scoped.get(channel) if scoped is not None else None

    def fold(self) -> Callable[[str], str]:
        """How the server compares nicks (its CASEMAPPING), as the connection learned it."""
        members = getattr(self.connection, "members", None)
        return members.fold if members is not None else irc_lower

    def _on_event(self, event: Event, source: Source) -> None:
        """Joins, parts, quits, nick changes, kicks, actions, away changes and netsplits
        from the transport, for listeners; CTCP queries, to answer."""
        if event.kind != "kick" and self.ignores.match(source) is not None:
            return  # what an ignored user does reaches no listener (a kick is the op's)
        if event.kind == "ctcp":
            self._answer_ctcp(source, event.text)
            return
        self.dispatcher.handle_event(event, source)

    def _answer_ctcp(self, source: Source, query: str) -> None:
        name, _, arg = query.partition(" ")
        answer = self.ctcp.answer(self.config.ctcp, user_id(source, self.fold()), name, arg)
        if answer is None:
            return
        try:
            self.outbox.put(source.nick, answer.text, command="NOTICE", ctcp=answer.query)
        except OutboxError as exc:
            log.warning("CTCP %s answer dropped: %s", answer.query, exc)

    # -- the module operations (the reloader's; here for admins, tests and tools) --

    def load_all(self) -> ReloadReport:
        return self.reloader.load_all()

    def reload(self, names: Iterable[str] = (), *, force: bool = False) -> ReloadReport:
        return self.reloader.reload(names, force=force)

    def load(self, name: str) -> ReloadReport:
        return self.reloader.load(name)

    def unload(self, name: str) -> ReloadReport:
        return self.reloader.unload(name)

    def sync_with_disk(self, names: set[str]) -> ReloadReport:
        return self.reloader.sync_with_disk(names)

    # -- running -----------------------------------------------------------------

    def run(self) -> None:
        """Load modules, connect, and serve until ``stop()`` (on the calling thread)."""
        report = self.load_all()
        for error in report.errors:
            log.error("module not loaded: %s", error)
        # Importing and starting watchdog takes ~80 ms: not on the way to connecting.
        threading.Thread(target=self.start_watching, name="watchers", daemon=True).start()
        with self._web_lock:
            self._loop_thread = threading.current_thread()  # the connection's
            if self._web is not None:  # a module's setup fetched
                self._web.forbidden_thread = self._loop_thread
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
        # Module code runs on the reload's runner thread while the reload waits: keep
        # both on one CPU (see CpuFollower). It imports ctypes: off the way to connecting.
        self.reloader.runner.cpu_follower = CpuFollower.make()
        try:
            with self._lock:
                if self._closed:
                    return
                self.watch_config()
                self.watch_commands(self.config.watch)
            if self.config.watch:
                self._on_files_changed(set(self.loader.folder.scan()) | set(self.registry.modules))
        finally:
            self.watching.set()

    def close(self) -> None:
        """Stop everything within a few seconds, whatever module code is doing.

        Never waits for a reload that is running or for a stuck command: the
        reloader refuses new work at once, each teardown has a deadline, and
        storage is closed unless a stuck call holds it.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.dispatcher.close()
        self.reloader.close(CLOSE_SECONDS)
        for watcher in (self._commands_watcher, self._config_watcher):
            if watcher is not None:
                watcher.stop(timeout=1.0)
        self.isolation.close()
        if self._web is not None:
            self._web.close()
        if self.backups is not None:
            self.backups.stop(timeout=1.0)
        if not self.storage.close(timeout=1.0):
            log.warning("state database not closed: a call still holds it")
        ns = self.namespace
        for key in [k for k in sys.modules if k == ns or k.startswith(ns + ".")]:
            del sys.modules[key]

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
            watcher.stop(timeout=1.0)
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
        """The watcher's batch: the reloader decides from the disk what changed."""
        report = self.reloader.sync_with_disk(names)
        if report.ok and not report.changed and not report.skipped:
            return  # a touch, or a save that changed nothing
        self.notify(f"auto-reload: {report.summary()}")

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
        try:
            new = self.overlay(load_config(path))
        except ConfigError as exc:
            log.error("config.yaml not applied, the old config stays in force:\n%s", exc)
            return "not applied, old config kept: " + " | ".join(map(str, exc.problems))
        if _module_scopes(new) != _module_scopes(self.config):  # each module checks its own
            # (outside the lock: it may wait for a reload, and close() must not)
            problems = self.reloader.check_settings(new)
            if problems:
                text = "\n".join(problems)
                log.error("config.yaml not applied, the old config stays in force:\n%s", text)
                return "not applied, old config kept: " + " | ".join(problems)
        with self._lock:
            if self._closed:
                return "not applied: the bot is shutting down"
            old = self.config
            change = diff(old, new)
            if not change.changed:
                return "no changes"
            if new.commands_dir != old.commands_dir:
                new = replace(new, commands_dir=old.commands_dir)  # needs a restart
            self.config = new
            self.outbox.bucket.configure(new.rate_limit.per_second, new.rate_limit.burst)
            self.outbox.max_queued = new.rate_limit.max_queued
            # Server and SASL settings are read at the next connect; channel keys at a JOIN.
            self.connection.update_settings(_settings(new))
            if change.join or change.part:
                self.connection.set_channels(new.channels)
            if new.nicks != old.nicks:
                self.connection.change_nick(new.nicks)
            if new.watch != old.watch:
                self.watch_commands(new.watch)
            self._configure_isolation(new)  # modules move in or out on their next reload
            self.ignores.configure(new.ignore)
            if self._web is not None:
                self._web.configure(new.http)
            logging.getLogger().setLevel(new.log_level)
            return change.describe()

    def reconnect(self) -> None:
        self.connection.reconnect("Reconnecting (asked by an admin)")

    def _configure_isolation(self, config: Config) -> None:
        isolation = self.isolation
        isolation.patterns = config.isolate
        isolation.memory_mb = config.isolate_memory_mb
        isolation.command_timeout = config.command_timeout
        isolation.hook_timeout = config.reload_timeout


def _module_scopes(config: Config) -> tuple[Any, ...]:
    """What module settings depend on: ``modules:`` and the channels' overrides."""
    return (config.modules, [(o.name, o.modules) for o in config.channel_options.values()])


def _settings(config: Config) -> ConnectionSettings:
    return ConnectionSettings(
        host=config.server.host,
        port=config.server.port,
        tls=config.server.tls,
        tls_verify=config.server.tls_verify,
        password=config.server.password,
        nicks=config.nicks,
        channels=config.channels,
        channel_keys={c: o.key for c, o in config.channel_options.items() if o.key},
        username=config.username,
        realname=config.realname,
        tls_certfile=str(config.server.tls_cert) if config.server.tls_cert else None,
        sasl_mechanism=config.sasl.mechanism if config.sasl else None,
        sasl_account=config.sasl.account if config.sasl else "",
        sasl_password=config.sasl.password if config.sasl else "",
        sasl_required=config.sasl.required if config.sasl else False,
        rejoin_delay=config.rejoin_delay,
        join_on_invite=config.join_on_invite,
        ping_interval=config.ping_interval,
        ping_timeout=config.ping_timeout,
    )
