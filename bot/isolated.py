"""Isolated modules: each runs in a worker process of its own; this is the bot's side.

Owns the life of worker processes: starting them from one forkserver warmed
with the bot's modules, loading a module version into one (the exact bytes the
bot read), forwarding calls and hooks to it, answering its requests (replies,
state, ``say``, log lines), killing it when a call overruns, and restarting it
when it dies, with a back-off and a crash-loop stop. The worker's side is
``bot.worker``.

To the rest of the bot an isolated module is an ordinary module object whose
commands, listeners and hooks are forwarders (``load_into``): the reloader, the
registry and the dispatcher treat it like any other.

Messages (tuples, sent with ``multiprocessing.connection``, which frames and
pickles them; chosen because it is the standard library's and costs ~60 us a
round trip here, well inside the budget):

* bot -> worker: ``("load", folder, namespace, name, sources, settings, lines,
  file, http)`` (http: config.yaml's ``http:``, for ``ctx.fetch`` in the worker),
  ``("call", id, key, info, arg)``, ``("hook", id, name, args)``,
  ``("result", id, ok, value)`` (answers a state request), ``("stop",)``;
* worker -> bot: ``("loaded", manifest)`` / ``("failed", errors, modules, ran)``,
  ``("reply", id, text, kind)`` (kind: message, private, action or notice),
  ``("done", id, lines, failure)``,
  ``("state", id, module, op, args)``, ``("say", target, text)``,
  ``("log", logger, level, text)``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fnmatch
import itertools
import logging
import os
import queue
import re
import signal
import threading
import time
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from bot.api import CommandError, ListenerSpec, command
from bot.dispatch import Cut
from bot.loader import DISCARD, SETTINGS, WORKER, LoadError, LoadFailed

log = logging.getLogger(__name__)

#: Restarts after a death: the first within 1 s, then doubling up to 30 s.
FIRST_RESTART = 0.5
LAST_RESTART = 30.0
#: This many deaths within CRASH_WINDOW seconds is a crash loop: no more restarts.
CRASH_DEATHS = 5
CRASH_WINDOW = 60.0
#: Seconds a worker may take to stop by itself before it is killed.
STOP_GRACE = 1.0


class Host(Protocol):
    """What the isolation needs from the bot."""

    @property
    def config(self) -> Any: ...

    def say(self, target: str, text: str) -> None: ...

    def state_for(self, module: str) -> Any: ...

    def notify(self, text: str) -> None: ...


class Isolation:
    """Which modules are isolated, and the workers that run them."""

    def __init__(self, host: Host, patterns: Iterable[str] = (), memory_mb: int = 512) -> None:
        self.host = host
        self.patterns = tuple(patterns)
        self.memory_mb = memory_mb
        self.command_timeout = 10.0
        self.hook_timeout = 30.0  # a worker's setup/teardown/migrate: then it is killed
        self._context: Any = None
        self._lock = threading.Lock()
        self.versions: set[RemoteVersion] = set()  # live and draining ones

    def wants(self, name: str) -> bool:
        """Whether module ``name`` runs in a worker (helpers go with their importers)."""
        return not name.startswith("_") and any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def start_process(self) -> tuple[Any, Connection]:
        """A new worker process, forked from the warmed forkserver, and its connection."""
        with self._lock:
            if self._context is None:
                import multiprocessing

                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["bot.worker"])
                self._context = context
        context = self._context
        ours, theirs = context.Pipe()
        from bot import worker

        process = context.Process(
            target=worker.main, args=(theirs, self.memory_mb), name="module-worker", daemon=True
        )
        process.start()
        theirs.close()
        return process, ours

    def load_into(
        self,
        module: types.ModuleType,
        name: str,
        folder: str,
        namespace: str,
        sources: dict[str, tuple[str, bytes]],
        timeout: float,
    ) -> None:
        """Load ``name`` in a new worker; fill ``module`` with forwarders to it.

        Raises LoadFailed with the worker's file:line errors, or when it is still
        loading after ``timeout`` seconds (then it is killed).
        """
        version = RemoteVersion(self, name, folder, namespace, sources)
        manifest = version.start(timeout)
        _fill(module, version, manifest)
        with self._lock:
            self.versions.add(version)

    def forget(self, version: RemoteVersion) -> None:
        with self._lock:
            self.versions.discard(version)

    def close(self) -> None:
        for version in list(self.versions):
            version.stop(kill_now=True)


@dataclass
class _Pending:
    done: threading.Event
    reply: dict[str, Callable[[str], None]] | None  # kind -> how the call's context sends it
    result: tuple[list[str], Any] | None = None


class RemoteVersion:
    """One module version in a worker process: its calls, its state requests, its restarts."""

    def __init__(
        self,
        isolation: Isolation,
        name: str,
        folder: str,
        namespace: str,
        sources: dict[str, tuple[str, bytes]],
    ) -> None:
        self.isolation = isolation
        self.name = name
        self.folder = folder
        self.namespace = namespace
        self.sources = sources
        self.process: Any = None
        self.conn: Connection | None = None
        self.started = 0.0
        self.restarts = 0
        self.hooks: list[str] = []
        self.stopping = False
        self.crashed = False  # a crash loop: no more restarts until reloaded
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._send = threading.Lock()
        self._deaths: collections.deque[float] = collections.deque()
        self._state_requests: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._pump: queue.SimpleQueue[tuple[Any, ...] | None] | None = None  # during a hook
        self._up = threading.Event()

    # -- starting -----------------------------------------------------------------------

    def start(self, timeout: float, serve: bool = True) -> dict[str, Any]:
        """Start a worker and load the module in it; its manifest. Raises LoadFailed.

        ``serve``: calls may come at once (a restart waits until it is set up again).
        """
        self.process, conn = self.isolation.start_process()
        self.conn = conn
        self.started = time.monotonic()
        shown = _shown(self.folder, self.name)
        config = self.isolation.host.config
        section, lines, file, problems = _section(config, self.name)
        if problems:
            self._kill()
            errors = [
                LoadError(self.name, file, lines.get(p.key), f"{p.key}: {p.message}")
                for p in problems
            ]
            raise LoadFailed(errors, [])
        load = (
            "load", self.folder, self.namespace, self.name, self.sources, section, lines, file,
            config.http,
        )  # fmt: skip
        conn.send(load)
        if not conn.poll(timeout):
            self._kill()
            message = f"still loading after {timeout:.3g} s in its worker; stopped"
            raise LoadFailed([LoadError(self.name, shown, None, message)], [shown])
        try:
            answer = conn.recv()
        except (EOFError, OSError):
            self.process.join(1)
            message = f"its worker died while loading it ({_death(self.process)})"
            raise LoadFailed([LoadError(self.name, shown, None, message)], [shown]) from None
        if answer[0] == "failed":
            self._kill()
            raise LoadFailed([LoadError(*error) for error in answer[1]], answer[2])
        manifest: dict[str, Any] = answer[1]
        self.hooks = list(manifest["hooks"])
        requests: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._state_requests = requests
        threading.Thread(
            target=self._read, args=(conn,), name=f"worker-{self.name}", daemon=True
        ).start()
        threading.Thread(
            target=self._serve_state, args=(requests,), name=f"state-{self.name}", daemon=True
        ).start()
        if serve:
            self._up.set()
        return manifest

    # -- calls and hooks ----------------------------------------------------------------

    def call(self, key: str, label: str, ctx: Any, arg: Any, timeout: float) -> Cut:
        """Run ``key`` in the worker for ``ctx``; its lines. Raises CommandError on failure."""
        if self.crashed:
            raise CommandError(f"{label}: stopped, its worker crashed too often (reload it)")
        if not self._up.is_set():
            raise CommandError(f"{label}: its worker is restarting, try again in a moment")
        info = {
            "nick": ctx.nick,
            "channel": ctx.channel,
            "bot_nick": ctx.bot_nick,
            "is_admin": ctx.is_admin,
            "user_modes": frozenset(getattr(ctx, "user_modes", ())),
            "user_id": getattr(ctx, "user_id", ""),
            "time": getattr(ctx, "time", None),
            "msgid": getattr(ctx, "msgid", None),
            "max_lines": getattr(ctx, "max_lines", 10),
        }
        rid = next(self._ids)
        sends = {kind: getattr(ctx, kind, ctx.reply) for kind in ("action", "notice")}
        sends["private"] = lambda text: ctx.reply(text, private=True)
        pending = _Pending(threading.Event(), {"message": ctx.reply, **sends})
        self._pending[rid] = pending
        try:
            self._post(("call", rid, key, info, arg))
            if not pending.done.wait(timeout):
                self._kill(f"{label} ran past command_timeout")
                return []  # the dispatcher has told the user it timed out
        finally:
            self._pending.pop(rid, None)
        if pending.result is None:
            raise CommandError(
                f"{label}: the module's worker died ({_death(self.process)}); it is restarting"
            )
        payload, failure = pending.result
        if failure is not None:
            self._fail(label, ctx, failure)
        lines, unread = payload if isinstance(payload, tuple) else (payload, 0)
        return Cut(lines, unread)

    def hook(self, hook: str, args: tuple[Any, ...] = ()) -> None:
        """Run ``setup``/``teardown``/``migrate`` in the worker; raises what it raised.

        During a migration, state requests are answered on this thread: it runs
        inside the transaction the caller holds (nothing else runs in the
        worker then). Any other hook's go to the state thread, like a call's.
        """
        rid = next(self._ids)
        pending = _Pending(threading.Event(), None)
        self._pending[rid] = pending
        pump: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        transactions: list[Any] = []  # the migration's own, inside the caller's
        if hook == "migrate":
            self._pump = pump
        try:
            self._post(("hook", rid, hook, args))
            deadline = time.monotonic() + self.isolation.hook_timeout
            while not pending.done.is_set():
                if time.monotonic() > deadline:
                    self._kill(f"{hook}() ran past reload_timeout")
                    break
                with contextlib.suppress(queue.Empty):
                    request = pump.get(timeout=0.05)
                    if request is None:
                        break
                    self._answer_state(request, transactions)
        finally:
            self._pump = None
            self._pending.pop(rid, None)
            for stack in reversed(transactions):  # left open by a worker that died
                with contextlib.suppress(Exception):
                    stack.__exit__(RuntimeError, RuntimeError("worker died"), None)
        if pending.result is None:
            raise RuntimeError(f"its worker died during {hook}() ({_death(self.process)})")
        failure = pending.result[1]
        if failure is not None:
            kind, text, where, trace = failure
            log.error("%s (%s) in the worker of %s:\n%s", hook, where, self.name, trace)
            raise remote_error(kind, text, where)

    def settings(self, config: Any, apply: bool) -> list[str]:
        """Check (and with ``apply``, use) ``config``'s section in the worker: its problems."""
        rid = next(self._ids)
        pending = _Pending(threading.Event(), None)
        self._pending[rid] = pending
        name = self.name
        section, lines, file, problems = _section(config, name)
        if problems:
            return [f"{file}:{lines.get(p.key, '')}: {p.key}: {p.message}" for p in problems]
        try:
            self._post(("settings", rid, section, lines, file, apply))
            if not pending.done.wait(self.isolation.hook_timeout):
                return [f"{file}: modules.{name}: its worker did not answer"]
        finally:
            self._pending.pop(rid, None)
        if pending.result is None:
            return [f"{file}: modules.{name}: its worker died ({_death(self.process)})"]
        return list(pending.result[0])

    def _fail(self, label: str, ctx: Any, failure: tuple[str, str, str, str]) -> None:
        kind, text, where, trace = failure
        if kind == "CommandError":
            raise CommandError(text)
        log.error("%s (%s) failed in its worker for %s:\n%s", label, where, ctx.nick, trace)
        detail = f": {text}" if text else ""
        if kind == "MemoryError":
            self._kill(f"it ran out of memory (isolate_memory_mb: {self.isolation.memory_mb})")
        raise CommandError(f"{label} failed: {kind}{detail} ({where})")

    def _post(self, message: tuple[Any, ...]) -> None:
        conn = self.conn
        if conn is None:
            raise CommandError(f"{self.name}: its worker is restarting, try again in a moment")
        try:
            with self._send:
                conn.send(message)
        except (OSError, ValueError):
            raise CommandError(f"{self.name}: its worker is restarting") from None

    # -- what the worker sends ------------------------------------------------------------

    def _read(self, conn: Connection) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "reply":
                pending = self._pending.get(message[1])
                if pending is not None and pending.reply is not None:
                    send = pending.reply.get(message[3])
                    if send is not None:
                        send(message[2])
            elif kind == "done":
                pending = self._pending.get(message[1])
                if pending is not None:
                    pending.result = (message[2], message[3])
                    pending.done.set()
            elif kind == "state":
                (self._pump or self._state_requests).put(message)
            elif kind == "say":
                self.isolation.host.say(message[1], message[2])
            elif kind == "log":
                logging.getLogger(message[1]).log(message[2], "%s", message[3])
        self._died(conn)

    def _serve_state(self, requests: queue.SimpleQueue[tuple[Any, ...] | None]) -> None:
        transactions: list[contextlib.ExitStack] = []
        while (request := requests.get()) is not None:
            self._answer_state(request, transactions)
        for stack in reversed(transactions):  # the worker died inside a transaction
            with contextlib.suppress(Exception):
                stack.__exit__(RuntimeError, RuntimeError("worker died"), None)

    def _answer_state(self, request: tuple[Any, ...], transactions: list[Any]) -> None:
        _, rid, module, op, args = request
        state = self.isolation.host.state_for(module)
        try:
            value: Any = None
            if op == "get":
                value = state[args[0]]
            elif op == "set":
                state[args[0]] = args[1]
            elif op == "del":
                del state[args[0]]
            elif op == "contains":
                value = args[0] in state
            elif op == "keys":
                value = list(state)
            elif op == "len":
                value = len(state)
            elif op == "copy":
                value = state.copy()
            elif op == "clear":
                state.clear()
            elif op == "begin":
                stack = contextlib.ExitStack()
                stack.enter_context(state.transaction())
                transactions.append(stack)
            elif op in ("commit", "rollback"):
                stack = transactions.pop()
                if op == "commit":
                    stack.close()
                else:
                    stack.__exit__(RuntimeError, RuntimeError("rolled back"), None)
            answer = ("result", rid, True, value)
        except Exception as exc:
            answer = ("result", rid, False, exc)
        with contextlib.suppress(CommandError):
            self._post(answer)

    # -- death, restart, stop ---------------------------------------------------------------

    def _died(self, conn: Connection) -> None:
        self._up.clear()
        self._state_requests.put(None)
        if self._pump is not None:
            self._pump.put(None)
        process = self.process
        if process is not None:
            process.join(1)
        self._kill_group()
        reason = _death(process)
        for pending in list(self._pending.values()):
            pending.done.set()  # no result: the caller says the worker died
        with contextlib.suppress(OSError):
            conn.close()
        if conn is not self.conn or self.stopping:
            return
        self.conn = None
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - CRASH_WINDOW:
            self._deaths.popleft()
        if len(self._deaths) >= CRASH_DEATHS:
            self.crashed = True
            self.isolation.host.notify(
                f"{self.name}: its worker died {len(self._deaths)} times within"
                f" {CRASH_WINDOW:g} s ({reason}); not restarted until it is reloaded"
            )
            return
        delay = min(LAST_RESTART, FIRST_RESTART * 2 ** (len(self._deaths) - 1))
        self.isolation.host.notify(
            f"{self.name}: its worker died ({reason}); restarting it in {delay:g} s"
        )
        timer = threading.Timer(delay, self._restart)
        timer.daemon = True
        timer.start()

    def _restart(self) -> None:
        if self.stopping:
            return
        try:
            self.start(self.isolation.command_timeout + 20, serve=False)
            if "setup" in self.hooks:
                self.hook("setup")
            self.restarts += 1
            self._up.set()  # calls again, once set up
        except Exception as exc:
            log.error("%s: restarting its worker failed: %s", self.name, exc)
            self._kill()

    def _kill(self, reason: str = "") -> None:
        if reason:
            log.warning("%s: stopping its worker: %s", self.name, reason)
        process = self.process
        if process is not None and process.pid:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                process.kill()

    def _kill_group(self) -> None:
        """Whatever the worker started (a fork, a subprocess) ends with it."""
        process = self.process
        if process is not None and process.pid:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)

    def stop(self, kill_now: bool = False) -> None:
        """After teardown: the worker exits (killed after a grace period)."""
        self.stopping = True
        with contextlib.suppress(CommandError):
            self._post(("stop",))
        process = self.process
        if process is not None and not kill_now:
            process.join(STOP_GRACE)
        self._kill()
        self.isolation.forget(self)

    def describe(self) -> str:
        """pid, memory, uptime and restarts, for ``!modules``."""
        process = self.process
        if self.crashed:
            return "worker crashed too often"
        if process is None or not process.is_alive():
            return "worker restarting"
        rss = _rss_mb(process.pid)
        uptime = time.monotonic() - self.started
        return (
            f"worker pid {process.pid}, {rss:.0f} MB, up {_duration(uptime)},"
            f" restarts {self.restarts}"
        )


class RemoteError(Exception):
    """An exception raised in a worker: its type's name, its text, the worker's file:line."""

    remote_where = ""


def remote_error(kind: str, text: str, where: str) -> RemoteError:
    """An exception named like the worker's (``IndexError``), for messages that name it."""
    error = type(kind, (RemoteError,), {})(text)
    error.remote_where = where
    return error


# -- the module object the rest of the bot sees ----------------------------------------------


def _fill(module: types.ModuleType, version: RemoteVersion, manifest: dict[str, Any]) -> None:
    """Give ``module`` forwarders for what the worker's version offers."""
    namespace = module.__dict__
    namespace[WORKER] = version
    isolation = version.isolation
    for key, name, aliases, admin, help_text, require in manifest["commands"]:

        def forward(ctx: Any, args: str, key: str = key, name: str = name) -> list[str]:
            return version.call(key, name, ctx, args, isolation.command_timeout + 0.05)

        forward.__doc__ = help_text
        forward.__name__ = forward.__qualname__ = name
        forward.__module__ = module.__name__
        mark = command(name=name, aliases=aliases, admin=admin, require=require)
        namespace[f"__command_{name}"] = mark(forward)
    for key, label, pattern, events in manifest["listeners"]:

        def listen(ctx: Any, arg: Any, key: str = key, label: str = label) -> list[str]:
            text = arg.string if isinstance(arg, re.Match) else arg  # a Match does not travel
            return version.call(key, label, ctx, text, isolation.command_timeout + 0.05)

        listen.__name__ = listen.__qualname__ = label
        listen.__module__ = module.__name__
        compiled = re.compile(pattern[0], pattern[1]) if pattern else None
        marks = (ListenerSpec(compiled, frozenset(events), listen),)
        listen.__reloadbot_listeners__ = marks  # type: ignore[attr-defined]
        namespace[f"__listener_{key}"] = listen
    if manifest["state_version"] is not None:
        namespace["STATE_VERSION"] = manifest["state_version"]
    for hook in ("setup", "migrate"):
        if hook in manifest["hooks"]:
            namespace[hook] = _hook_forwarder(version, hook)
    namespace["teardown"] = _hook_forwarder(version, "teardown")  # stops the worker too
    namespace[DISCARD] = lambda: version.stop(kill_now=True)
    namespace[SETTINGS] = version.settings


def _hook_forwarder(version: RemoteVersion, hook: str) -> Callable[..., None]:
    def forward(*args: Any) -> None:
        if hook == "migrate":
            version.hook("migrate", (args[1],))  # (state, old_version): the state is ours
            return
        try:
            if hook in version.hooks:
                version.hook(hook)
        finally:
            if hook == "teardown":
                version.stop()

    forward.__name__ = hook
    return forward


def _section(config: Any, name: str) -> tuple[Any, dict[str, int], str, list[Any]]:
    """A module's settings scopes for its worker, references read here; their lines,
    the config file's name, and problems reading the references."""
    from bot.settings import resolve_references, scopes

    found, problems = [], []
    for scope in scopes(config, name):
        section, wrong = resolve_references(scope.section, scope.prefix)
        problems += [p for p in wrong if p not in problems]
        found.append(dataclasses.replace(scope, section=section))
    wanted = (f"modules.{name}", *(k for scope in found for k in scope.given))
    lines = {k: v for k, v in config.lines.items() if k.startswith(wanted)}
    file = config.path.name if config.path is not None else "config.yaml"
    return found, lines, file, problems


def worker_of(module: types.ModuleType) -> RemoteVersion | None:
    """The worker version behind an isolated module object, or None."""
    version = vars(module).get(WORKER)
    return version if isinstance(version, RemoteVersion) else None


def _shown(folder: str, name: str) -> str:
    return f"{os.path.basename(folder)}/{name}.py"


def _death(process: Any) -> str:
    code = getattr(process, "exitcode", None)
    if code is None:
        return "killed"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit code {code}"


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
