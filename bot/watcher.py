"""Turn file-system events in one directory into debounced batches of changed paths.

This module owns exactly one thing: watching a directory with watchdog and, once
the directory has been quiet for ``quiet_period`` seconds, calling ``on_batch``
with the set of accepted paths that were touched in the burst. It never imports,
reads or interprets the watched files (command code, ``config.yaml``); it only
reports paths. The callback decides from the disk what actually happened (file
present: load or reload; file absent: unload), so a batch is a trigger, not a
diff, and lost or duplicated events are harmless.

Design notes (see ``shared/notes/libraries-and-reload.md``, section B):

* One non-recursive watchdog ``Observer`` per watcher. Only content events
  count: created, modified, moved (both ``src_path`` and ``dest_path``), deleted
  and closed-after-write. Opened, closed-without-write, attrib and directory
  events are ignored, and are also left out of the inotify mask, so the
  consumer reading the files cannot cause a feedback loop.
* Editors save in many ways (in place, temp file + rename, vim's
  rename-to-backup + new file, ``sed -i``). Watching the directory and filtering
  by name covers all of them, including files that do not exist yet.
* ``on_batch`` runs on one dedicated thread, never concurrently with itself and
  never on watchdog's dispatcher thread. No exception ever escapes into watchdog
  (an escaping exception kills its observer for good); everything is logged.
* Supervision: the debounce thread periodically checks that the observer and
  its emitter are alive, and restarts them with a warning if not. After a
  restart it reports every accepted file currently in the directory, because
  events may have been lost while nothing was watching.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

__all__ = ["DebouncedWatcher", "is_python_source"]

logger = logging.getLogger(__name__)

# Event kinds that can mean "the content of this path changed". Passed to watchdog as
# ``event_filter`` too, which keeps IN_OPEN / IN_CLOSE_NOWRITE out of the inotify mask.
_RELEVANT_EVENTS: tuple[type[FileSystemEvent], ...] = (
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    FileClosedEvent,
)

# Names that are never source, whatever they end with: backups, swap and temp files.
_JUNK_SUFFIXES = ("~", ".swp", ".swx", ".swo", ".tmp", ".bak", ".orig")


def is_python_source(path: Path) -> bool:
    """Accept filter for a commands directory: is ``path`` a Python source file?

    True for ``name.py`` (helpers such as ``_util.py`` included). False for hidden
    files (``.x.py.swp``, emacs lock files ``.#x.py``), anything inside
    ``__pycache__``, editor backups and temp files (``x.py~``, ``*.tmp``, vim's
    ``4913`` probe, ``sed -i``'s ``sedXXXXXX``) and emacs autosaves (``#x.py#``).
    """
    name = path.name
    if "__pycache__" in path.parts:
        return False
    if name.startswith((".", "#")) or name.endswith(_JUNK_SUFFIXES):
        return False
    if name.isdigit() or (name.startswith("sed") and len(name) == 9 and name.isalnum()):
        # vim's writability probe (4913, then +123 while taken) and sed -i's temp file.
        return False
    return name.endswith(".py")


class _Handler(FileSystemEventHandler):
    """Forward every event to ``sink``; nothing may escape into watchdog."""

    def __init__(self, sink: Callable[[FileSystemEvent], None]) -> None:
        super().__init__()
        self._sink = sink

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._sink(event)
        except Exception:
            logger.exception("watcher: failed to handle %r", event)


class DebouncedWatcher:
    """Watch ``directory`` (non-recursively) and report touched paths in quiet batches.

    Every content event on a path for which ``accept(path)`` is true adds the
    (absolute) path to the pending set and restarts a ``quiet_period`` timer.
    When the timer expires, ``on_batch(frozenset(pending))`` is called once on
    the watcher's own thread. Events for rejected paths are ignored entirely (they
    neither add paths nor delay a batch). An empty batch is never delivered.
    Pending paths are discarded by :meth:`stop`.

    ``check_interval`` is how often the debounce thread checks that watchdog's
    threads are still alive.
    """

    def __init__(
        self,
        directory: Path,
        accept: Callable[[Path], bool],
        on_batch: Callable[[frozenset[Path]], None],
        *,
        quiet_period: float = 0.3,
        check_interval: float = 1.0,
    ) -> None:
        if quiet_period < 0:
            raise ValueError(f"quiet_period must be >= 0, got {quiet_period!r}")
        if check_interval <= 0:
            raise ValueError(f"check_interval must be > 0, got {check_interval!r}")
        self._directory = Path(directory).absolute()
        self._accept = accept
        self._on_batch = on_batch
        self._quiet_period = quiet_period
        self._check_interval = check_interval

        # Serialises start/stop/restart of the threads below.
        self._lifecycle = threading.Lock()
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._stop_event.set()
        self._restart_failing = False

        # Debounce state, guarded by _cond.
        self._cond = threading.Condition()
        self._pending: set[Path] = set()
        self._deadline = 0.0

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return not self._stop_event.is_set()

    def start(self) -> None:
        """Start watching. Watches are registered before this returns.

        Raises ``OSError`` (for example ``FileNotFoundError``) if the directory
        cannot be watched. On a running watcher, restarts a dead observer.
        """
        with self._lifecycle:
            if self.running:
                self._ensure_observer_locked()
                return
            previous = self._thread
        if previous is not None and previous is not threading.current_thread():
            # After stop() from inside on_batch that thread may still be finishing:
            # join it (outside the lock, which it may need) so batches never overlap.
            previous.join()
        with self._lifecycle:
            if self.running:
                return
            with self._cond:
                self._pending.clear()
            self._observer = self._new_observer()
            self._restart_failing = False
            stop_event = threading.Event()
            self._stop_event = stop_event
            self._thread = threading.Thread(
                target=self._run,
                args=(stop_event,),
                name=f"watcher-debounce:{self._directory}",
                daemon=True,
            )
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop watching and join all threads. Idempotent; safe to call from ``on_batch``.

        ``timeout``: wait at most that long for a batch callback still running.
        """
        with self._lifecycle:
            thread, observer = self._thread, self._observer
            self._observer = None
            with self._cond:
                self._stop_event.set()
                self._pending.clear()
                self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if observer is not None:
            _shutdown_observer(observer)

    # -- watchdog side (runs on watchdog's dispatcher thread) -----------------

    def _on_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or not isinstance(event, _RELEVANT_EVENTS):
            return
        raw_paths = [event.src_path]
        if isinstance(event, FileSystemMovedEvent):
            raw_paths.append(event.dest_path)
        accepted: set[Path] = set()
        for raw in raw_paths:
            if not raw:
                continue
            path = Path(os.fsdecode(raw))
            try:
                if self._accept(path):
                    accepted.add(path)
            except Exception:
                logger.exception("watcher: accept(%s) raised; ignoring that path", path)
        if accepted:
            self._add_pending(accepted)

    def _add_pending(self, paths: set[Path]) -> None:
        with self._cond:
            self._pending |= paths
            self._deadline = time.monotonic() + self._quiet_period
            self._cond.notify_all()

    # -- debounce thread ------------------------------------------------------

    def _run(self, stop_event: threading.Event) -> None:
        next_check = time.monotonic() + self._check_interval
        while True:
            batch: frozenset[Path] | None = None
            with self._cond:
                while not stop_event.is_set():
                    now = time.monotonic()
                    if self._pending and now >= self._deadline:
                        batch = frozenset(self._pending)
                        self._pending.clear()
                        break
                    if now >= next_check:
                        break
                    wake = min(next_check, self._deadline) if self._pending else next_check
                    self._cond.wait(wake - now)
                else:  # the loop ended because stop_event is set (not by a break)
                    return
            if batch is not None:
                self._deliver(batch)
            else:
                next_check = time.monotonic() + self._check_interval
                try:
                    with self._lifecycle:
                        if not stop_event.is_set():
                            self._ensure_observer_locked()
                except Exception:
                    logger.exception("watcher: supervision of %s failed", self._directory)

    def _deliver(self, batch: frozenset[Path]) -> None:
        try:
            self._on_batch(batch)
        except Exception:
            names = ", ".join(sorted(p.name for p in batch))
            logger.exception("watcher: on_batch failed for %s (%s)", self._directory, names)

    # -- observer management (callers hold self._lifecycle) -------------------

    def _new_observer(self) -> BaseObserver:
        observer = Observer()
        observer.name = f"watcher-observer:{self._directory}"
        try:
            observer.schedule(
                _Handler(self._on_event),
                str(self._directory),
                recursive=False,
                event_filter=list(_RELEVANT_EVENTS),
            )
            observer.start()
        except BaseException:
            _shutdown_observer(observer)
            raise
        return observer

    def _ensure_observer_locked(self) -> None:
        observer = self._observer
        if observer is not None and _is_healthy(observer):
            return
        if not self._restart_failing:
            logger.warning("watcher: observer for %s is dead; restarting it", self._directory)
        if observer is not None:
            self._observer = None
            _shutdown_observer(observer)
        try:
            self._observer = self._new_observer()
        except OSError as exc:
            if not self._restart_failing:
                logger.warning(
                    "watcher: cannot watch %s yet (%s); will retry", self._directory, exc
                )
            self._restart_failing = True
            return
        self._restart_failing = False
        logger.warning("watcher: observer for %s restarted", self._directory)
        # Events may have been lost while nothing was watching: report what is there now.
        present = self._accepted_entries()
        if present:
            self._add_pending(present)

    def _accepted_entries(self) -> set[Path]:
        found: set[Path] = set()
        try:
            with os.scandir(self._directory) as entries:
                for entry in entries:
                    path = self._directory / entry.name
                    try:
                        if self._accept(path):
                            found.add(path)
                    except Exception:
                        logger.exception("watcher: accept(%s) raised; ignoring that path", path)
        except OSError:
            logger.exception("watcher: cannot list %s", self._directory)
        return found


def _is_healthy(observer: BaseObserver) -> bool:
    return observer.is_alive() and all(emitter.is_alive() for emitter in list(observer.emitters))


def _shutdown_observer(observer: BaseObserver) -> None:
    """Stop ``observer`` and join its threads, whatever state it is in."""
    try:
        observer.stop()
    except Exception:
        logger.exception("watcher: error while stopping observer %s", observer.name)
    if observer.is_alive():
        observer.join()
