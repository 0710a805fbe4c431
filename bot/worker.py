"""The other side of an isolated module: the worker process that runs its code.

Owns everything that happens inside a worker: limits on itself (memory, its own
process group, dying with its parent), loading one command module (and its
helpers) from the exact bytes the bot sent, and running its commands,
listeners, ``setup``/``teardown``/``migrate`` and timers on threads of its own.
What the module reaches of the bot (``ctx.reply``, ``ctx.state``, ``bot.say``,
logging) travels back over the one connection as plain tuples (``bot.remote``).
The bot side of the connection is ``bot.isolated``; the message shapes are listed
there.

A module cannot tell it runs here: it gets the same ``bot.api`` objects.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import signal
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bot.api import CommandError
from bot.loader import Loader, LoadFailed, in_import_order
from bot.remote import Link, LogToBot, RemoteContext, RemoteHandle, RemoteState, Timers
from bot.web import HttpConfig, Web

WORKER_THREADS = 8


class Worker:
    """One loaded module version, serving the bot's requests until told to stop."""

    def __init__(self, conn: Connection) -> None:
        self.link = Link(conn)
        self.pool = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="call")
        self.timers = Timers(self.pool, lambda text: self._log(logging.ERROR, text))
        self.module: Any = None
        self.name = ""
        self.folder: Path | None = None
        self.state: RemoteState | None = None
        self.calls: dict[str, Callable[..., object]] = {}  # key -> function
        self.settings: Any = None  # the module's Settings (bot.settings.Scoped), from config.yaml
        self.source = b""
        self.patterns: dict[str, re.Pattern[str]] = {}  # listener key -> its pattern
        self.web = Web()  # ctx.fetch here, configured by the load message

    def _log(self, level: int, text: str) -> None:
        self.link.send(("log", f"commands.{self.name}", level, text))

    # -- loading --------------------------------------------------------------------------

    def load(
        self,
        folder: str,
        namespace: str,
        name: str,
        sources: dict[str, tuple[str, bytes]],
        scopes: list[Any] | None = None,
        lines: dict[str, int] | None = None,
        config_file: str = "config.yaml",
        http: HttpConfig | None = None,
    ) -> None:
        """Execute module ``name`` and its helpers from ``sources`` (name -> path, bytes:
        exactly what the bot read), read its settings from ``scopes``; answer what the
        module offers."""
        self.name, self.folder = name, Path(folder)
        if http is not None:
            self.web.configure(http)
        loader = Loader(self.folder, namespace)
        files = {n: loader.inspect(n, Path(path), data) for n, (path, data) in sources.items()}
        try:
            with loader.transaction({}) as txn:
                modules = txn.execute(in_import_order(files), {name})
                txn.commit()
        except LoadFailed as exc:
            errors = [(e.module, e.file, e.line, e.message) for e in exc.errors]
            self.link.send(("failed", errors, list(exc.ran)))
            return
        loaded = modules[name]
        self.module = loaded.module
        self.source = loaded.source
        problems = self._settings(scopes, lines or {}, config_file, apply=True)
        if problems:
            self.link.send(("failed", problems, [str(loaded.path)]))
            return
        self.state = RemoteState(self.link, name)
        self.link.send(("loaded", self._manifest(loaded)))

    def _settings(
        self, found: Any, lines: dict[str, int], config_file: str, apply: bool
    ) -> list[tuple[str, str, int | None, str]]:
        """The module's ``Settings`` in each scope (see bot.settings): its problems, as load
        errors."""
        from bot.settings import build_scoped, declared_at, settings_class

        found = found or []
        cls = settings_class(self.module)
        shown = f"{self.folder.name if self.folder else ''}/{self.name}.py"
        if cls is None:
            return [
                (self.name, config_file, lines.get(key), f"{key}: {shown} declares no Settings")
                for scope in found
                for key in scope.given
            ]
        scoped, problems = build_scoped(cls, found)
        declared = declared_at(self.source)
        where = shown + (f":{declared}" if declared else "")
        if problems:
            return [
                (
                    self.name,
                    config_file,
                    lines.get(p.key) or lines.get(p.key.rsplit(".", 1)[0]),
                    f"{p.key}: {p.message} (Settings in {where})",
                )
                for p in problems
            ]
        if apply:
            self.settings = scoped
        return []

    def check_settings(
        self, rid: int, scopes: Any, lines: dict[str, int], config_file: str, apply: bool
    ) -> None:
        problems = self._settings(scopes, lines, config_file, apply)
        texts = [f"{f}:{line}: {m}" if line else f"{f}: {m}" for _, f, line, m in problems]
        self.link.send(("done", rid, texts, None))

    def _manifest(self, loaded: Any) -> dict[str, Any]:
        commands = []
        for spec in loaded.commands:
            key = f"c:{spec.name}"
            self.calls[key] = spec.func
            commands.append((key, spec.name, spec.aliases, spec.admin, spec.help, spec.require))
        listeners = []
        for i, spec in enumerate(loaded.listeners):
            key = f"l:{i}"
            self.calls[key] = spec.func
            if spec.pattern is not None:
                self.patterns[key] = spec.pattern
            pattern = (spec.pattern.pattern, spec.pattern.flags) if spec.pattern else None
            label = getattr(spec.func, "__name__", "listener")
            listeners.append((key, label, pattern, spec.events))
        namespace = vars(loaded.module)
        version = namespace.get("STATE_VERSION")
        return {
            "commands": commands,
            "listeners": listeners,
            "hooks": [h for h in ("setup", "teardown", "migrate") if callable(namespace.get(h))],
            "state_version": version if isinstance(version, int) else None,
        }

    # -- calls ----------------------------------------------------------------------------

    def call(self, rid: int, key: str, info: dict[str, Any], arg: Any) -> None:
        func = self.calls.get(key)
        assert self.state is not None
        settings = self.settings.get(info["channel"]) if self.settings is not None else None
        ctx = RemoteContext(self.link, rid, info, self.state, settings, self.web)
        if key in self.patterns:
            arg = self.patterns[key].search(arg)  # the Match itself does not travel
        self.pool.submit(self._run_call, rid, func, ctx, arg)

    def _run_call(self, rid: int, func: Callable[..., object] | None, ctx: Any, arg: Any) -> None:
        try:
            if func is None or arg is None:
                raise LookupError("no such command in this worker")
            result = func(ctx, arg)
            lines, unread = _lines(result, ctx.max_lines)
            self.link.send(("done", rid, (lines, unread), None))
        except CommandError as exc:
            self.link.send(("done", rid, [], ("CommandError", str(exc), "", "")))
        except BaseException as exc:  # module code may raise anything, even SystemExit
            self.link.send(("done", rid, [], self._failure(exc)))

    def _failure(self, exc: BaseException) -> tuple[str, str, str, str]:
        """(type, first line of the message, file:line, traceback) of an exception."""
        frames = traceback.extract_tb(exc.__traceback__)
        inside = [f for f in frames if self.folder and Path(f.filename).parent == self.folder]
        last = (inside or frames or [None])[-1]
        where = f"{Path(last.filename).parent.name}/{Path(last.filename).name}:{last.lineno}"
        try:
            text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        except Exception:
            text = "(its message could not be shown)"
        trace = "".join(traceback.format_exception(exc))
        return type(exc).__name__, text, where if last else "unknown location", trace

    def hook(self, rid: int, hook: str, args: tuple[Any, ...]) -> None:
        self.pool.submit(self._run_hook, rid, hook, args)

    def _run_hook(self, rid: int, hook: str, args: tuple[Any, ...]) -> None:
        assert self.state is not None
        fn = vars(self.module).get(hook)
        try:
            if hook == "migrate":
                with self.state.transaction() as state:
                    fn(state, *args)  # type: ignore[misc]
            else:
                if hook == "teardown":
                    self.timers.stop()
                handle = RemoteHandle(self.link, self.name, self.state, self.timers, self.web)
                handle.settings = self.settings.default if self.settings is not None else None
                fn(handle)  # type: ignore[misc]
            self.link.send(("done", rid, [], None))
        except BaseException as exc:  # module code may raise anything, even SystemExit
            self.link.send(("done", rid, [], self._failure(exc)))

    # -- the loop -------------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            try:
                message = self.link.conn.recv()
            except (EOFError, OSError):
                return  # the bot is gone: so are we
            kind = message[0]
            if kind == "call":
                self.call(*message[1:])
            elif kind == "result":
                self.link.answer(*message[1:])
            elif kind == "hook":
                self.hook(*message[1:])
            elif kind == "load":
                self.load(*message[1:])
            elif kind == "settings":
                self.check_settings(*message[1:])
            elif kind == "stop":
                return


def _lines(result: Any, limit: int) -> tuple[list[str], int | None]:
    """What a call returned, as lines: at most ``limit`` + 1 of them (the bot says only
    ``limit``), and how many more there were (None: a generator, not read to its end)."""
    if result is None:
        return [], 0
    if isinstance(result, str):
        return [result], 0
    if isinstance(result, bytes):
        return [result.decode("utf-8", "replace")], 0
    lines = [str(item) for item in itertools.islice(result, limit + 1)]
    if isinstance(result, list | tuple):
        return lines, len(result) - len(lines)
    return lines, 0 if len(lines) <= limit else None


def _limit_self(memory_mb: int) -> None:
    """A worker cannot take the machine's memory, outlive the bot, or leave children."""
    import resource

    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # its own group: the bot kills the group, children included
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def main(conn: Connection, memory_mb: int) -> None:
    """The worker process's entry point (run by the forkserver)."""
    _limit_self(memory_mb)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the bot, which stops us
    worker = Worker(conn)
    root = logging.getLogger()
    root.handlers[:] = [LogToBot(worker.link)]
    root.setLevel(logging.INFO)
    worker.serve()
    os._exit(0)  # threads the module started do not keep the process alive
