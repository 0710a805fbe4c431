"""Runs module code (a file's body, ``setup``, ``teardown``, ``migrate``) with a deadline.

Owns one rule: the bot's own bookkeeping never waits on module code without a
deadline. Each call runs on the runner's thread while the caller waits up to
``timeout``. A Python thread cannot be killed, so past the deadline the caller
stops waiting: it gets ``Overrun`` naming the file:line the code is stuck at,
the thread is asked to stop (``Abandoned`` is raised in it asynchronously, which
ends a pure-Python loop but not a blocking call such as ``time.sleep``), and it
is left behind; later calls get a new thread. Nothing the stuck code does
afterwards reaches the caller.
"""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Abandoned", "CpuFollower", "Location", "Overrun", "Runner"]


class Abandoned(BaseException):
    """Raised asynchronously in module code whose caller stopped waiting for it."""


@dataclass(frozen=True)
class Location:
    """Where a thread is: ``commands/x.py:12 in setup``."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"


class Overrun(Exception):
    """Module code still ran at its deadline; the caller has stopped waiting for it."""

    def __init__(self, label: str, where: Location | None, seconds: float) -> None:
        self.label = label
        self.where = where
        self.seconds = seconds
        at = f", stuck at {where}" if where else ""
        super().__init__(f"{label} still running after {seconds:.3g} s{at}")


class _Call(Generic[T]):
    __slots__ = ("abandoned", "done", "error", "finished", "fn", "result")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn: Callable[[], T] | None = fn
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.finished = False
        self.abandoned = False


class _Worker:
    """One thread serving calls from a queue until it is told to stop or is abandoned."""

    def __init__(self, name: str, lock: threading.Lock) -> None:
        self.queue: queue.SimpleQueue[_Call[object] | None] = queue.SimpleQueue()
        self._lock = lock
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            while self._serve_one(self.queue.get()):
                pass
        except Abandoned:
            return  # arrived after the module code had returned: nothing left to stop

    def _serve_one(self, call: _Call[object] | None) -> bool:
        """Run one call; False when this thread should end. Keeps no reference after."""
        if call is None:
            return False
        try:
            assert call.fn is not None
            call.result = call.fn()
        except BaseException as exc:  # module code may raise anything, even SystemExit
            call.error = exc
        call.fn = None
        with self._lock:
            call.finished = True
            abandoned = call.abandoned
        call.done.set()
        return not abandoned  # abandoned: a new worker serves the calls after this one


class Runner:
    """Runs one call of module code at a time, on a thread of its own, with a deadline.

    ``folder`` is the commands folder: an overrun names the innermost line in it.
    """

    def __init__(self, folder: Path, name: str = "module-code") -> None:
        self.folder = Path(folder)
        self._name = name
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._count = itertools.count(1)
        self.label: str | None = None  # what runs now, for "a reload is still running"
        self.abandoned = 0  # threads left behind so far
        self.cpu_follower: CpuFollower | None = None  # see CpuFollower

    def call(self, label: str, fn: Callable[[], T], timeout: float) -> T:
        """``fn()``'s result, or what it raised; Overrun if it runs past ``timeout`` s."""
        if timeout <= 0:  # the deadline passed before this call: do not start it
            raise Overrun(label, None, 0.0)
        worker = self._worker
        if worker is None or not worker.thread.is_alive():
            worker = self._worker = _Worker(f"{self._name}-{next(self._count)}", self._lock)
        call: _Call[T] = _Call(fn)
        self.label = label
        if self.cpu_follower is not None:
            self.cpu_follower.follow(worker.thread.native_id)
        try:
            worker.queue.put(call)  # type: ignore[arg-type]
            if not call.done.wait(max(0.0, timeout)):
                with self._lock:
                    call.abandoned = not call.finished
                if call.abandoned:
                    where = self.where(worker.thread)
                    self._worker = None
                    self.abandoned += 1
                    _interrupt(worker.thread)
                    raise Overrun(label, where, timeout)
            if call.error is not None:
                error, call.error = call.error, None
                raise error
            result, call.result = call.result, None
            return result  # type: ignore[return-value]
        finally:
            self.label = None

    def where_now(self) -> Location | None:
        """The file:line the current call is at, if one is running."""
        worker = self._worker
        return self.where(worker.thread) if worker and self.label else None

    def where(self, thread: threading.Thread) -> Location | None:
        """The innermost line of ``thread`` in the folder (else its innermost line)."""
        frame = sys._current_frames().get(thread.ident or -1)
        innermost = None
        while frame is not None:
            innermost = innermost or frame
            if Path(frame.f_code.co_filename).parent == self.folder:
                return _describe(frame, self.folder)
            frame = frame.f_back
        return _describe(innermost, self.folder) if innermost else None

    def close(self) -> None:
        """Let the thread end once it is idle (a stuck one is already left behind)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.queue.put(None)


class CpuFollower:
    """Moves threads that are about to be woken to the CPU their waker runs on.

    On a machine with few CPUs, waking a thread that sleeps on another CPU costs a
    cross-CPU wake-up: measured 45-64 us for a call to another thread and back on a
    2-vCPU machine, 8 us when the thread was moved to the caller's CPU first.
    Linux only; elsewhere (or where a container forbids it) ``make`` returns None.
    """

    def __init__(self) -> None:
        import ctypes  # ~3 ms to import: make one off the way to connecting

        self._cpu_now = ctypes.CDLL(None, use_errno=True).sched_getcpu
        self._cpu_now.restype = ctypes.c_int
        self._cpu_now.argtypes = []
        self._placed: dict[int, int] = {}  # native thread id -> CPU it is pinned to
        os.sched_getaffinity(0)  # AttributeError where the platform has no affinity

    @classmethod
    def make(cls) -> CpuFollower | None:
        try:
            return cls()
        except (OSError, AttributeError, ImportError):
            return None

    def follow(self, *threads: int | None) -> None:
        """Pin ``threads`` (native ids) to the calling thread's CPU, if not there yet."""
        cpu = self._cpu_now()
        if cpu < 0:
            return
        for tid in threads:
            if tid is None or self._placed.get(tid) == cpu:
                continue
            try:
                os.sched_setaffinity(tid, {cpu})
            except OSError:
                continue  # gone, or forbidden: the wake-up only takes longer
            if len(self._placed) > 64:  # threads that ended: forget them
                self._placed.clear()
            self._placed[tid] = cpu


def _describe(frame: FrameType, folder: Path) -> Location:
    path = Path(frame.f_code.co_filename)
    shown = f"{folder.name}/{path.name}" if path.parent == folder else str(path)
    return Location(shown, frame.f_lineno, frame.f_code.co_name)


def _interrupt(thread: threading.Thread) -> None:
    """Raise Abandoned in ``thread`` at its next bytecode (a blocking call finishes first)."""
    import ctypes  # only when something overran

    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(Abandoned)
        )
