"""Owns persistent per-module state in one embedded SQLite database.

Command modules are hot-reloaded, so nothing they keep in module globals survives a
reload, let alone a restart.  Instead each module asks the :class:`Storage` for its
:class:`ModuleState` -- a ``MutableMapping[str, Any]`` backed by the ``kv`` table -- and the
storage hands back the *same* object every time, so a freshly reloaded module picks up
exactly where the old one left off without reopening anything.

Values are stored as JSON text.  Every plain write is its own committed transaction, so it
is durable (against the process being killed) once ``state[key] = value`` returns; a
read-modify-write that must not interleave with other threads goes inside
``state.transaction()``::

    with state.transaction() as s:
        s["count"] = s.get("count", 0) + 1

Safety of the file (see "The state database" in docs/operating.md): the database, its
``-wal``/``-shm`` and ``.lock`` files are created 0600 and a folder made for them 0700,
whatever the umask; one process at a time may use a database (:class:`StateLocked`
otherwise); a damaged one is refused at open and a write to one raises
(:class:`StateCorrupt`) instead of being acknowledged and lost; :meth:`Storage.backup`
copies it consistently while the bot runs (``bot.backups`` takes them on a schedule).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.api import State

__all__ = [
    "ModuleState",
    "StateCorrupt",
    "StateError",
    "StateLocked",
    "Storage",
    "check_integrity",
]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    module TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,  -- JSON
    PRIMARY KEY (module, key)
) WITHOUT ROWID
"""

BUSY_TIMEOUT_MS = 5000
_MISSING: Any = object()


FILE_MODE = 0o600  # the database, its -wal, -shm and .lock files, and backups
DIR_MODE = 0o700  # a folder the storage creates for them
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


class StateError(Exception):
    """A value or key cannot be stored, or the storage is no longer usable."""


class StateLocked(StateError):
    """Another process (a second bot) has the same state database open."""


class StateCorrupt(StateError):
    """The state database file is damaged; its one-line message says what to do."""


def _corrupt_message(path: Path, detail: str) -> str:
    return (
        f'{path} is damaged ({detail}); restore a backup (see "The state database" in '
        "docs/operating.md) or move the file away to start afresh"
    )


def _is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPT_CODES
    text = str(exc)
    return "malformed" in text or "not a database" in text


def _wrap(path: Path, exc: sqlite3.Error) -> StateError:
    """The StateError to raise for an SQLite error on the file at ``path``."""
    if _is_corruption(exc):
        return StateCorrupt(_corrupt_message(path, str(exc)))
    if str(exc).startswith("no such table"):  # made at open: the file was emptied since
        return StateCorrupt(_corrupt_message(path, f"{exc}: the file was emptied"))
    return StateError(f"{path}: {exc}")


def _make_dirs(folder: Path) -> None:
    """Create ``folder`` and any missing parents, each made here 0700 whatever the umask."""
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    for parent in reversed(missing):
        with contextlib.suppress(FileExistsError):
            parent.mkdir(mode=DIR_MODE)
            os.chmod(parent, DIR_MODE)  # mkdir's mode is filtered by the umask
    if not folder.is_dir():
        raise StateError(f"{folder} is not a folder")


def _open_private(path: Path, flags: int) -> int:
    """``os.open`` that creates ``path`` 0600 whatever the umask (an existing file is kept)."""
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        if os.fstat(fd).st_size == 0:  # just created (or empty): nothing to keep
            with contextlib.suppress(PermissionError):  # someone else's empty file
                os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lock_file(db: Path) -> int:
    """Take the exclusive lock ``<db>.lock`` for this process; its fd holds it until closed."""
    lock_path = db.with_name(db.name + ".lock")
    fd = _open_private(lock_path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            pid = holder if holder.isdigit() else "unknown"
            raise StateLocked(
                f"{db} is in use by another reloadbot (pid {pid}); "
                "stop it first, or give this one its own state_db"
            ) from None
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, FILE_MODE)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_integrity(path: Path | str) -> str | None:
    """``PRAGMA quick_check`` of the database at ``path``: None if sound (or absent), else
    one line naming the file, the first problem and what to do.  Takes no lock, so it may
    run while the bot does (``--check``)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return f"{path}: cannot open ({exc})"
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.Error as exc:
        if _is_corruption(exc):
            return _corrupt_message(path, str(exc))
        return f"{path}: cannot check ({exc})"
    finally:
        conn.close()
    if rows == ["ok"]:
        return None
    more = f" and {len(rows) - 1} more" if len(rows) > 1 else ""
    return _corrupt_message(path, f"{rows[0]}{more}")


def _describe(module: str, key: object) -> str:
    return f"module {module!r}, key {key!r}"


class Storage:
    """One SQLite database holding every module's state, shared by all threads.

    Threading design: a single connection (``check_same_thread=False``) guarded by one
    re-entrant lock.  Why not a connection per thread: SQLite transactions belong to a
    connection, so ``transaction()`` has to own the connection for its whole body anyway;
    per-thread connections would only add concurrency for reads while burdening us with
    connections leaked by short-lived worker threads, ones that ``close()`` cannot reach
    from another thread, and "database is locked" errors between our own threads once a
    transaction outlives ``busy_timeout``.  One connection keeps ``close()`` exact and a
    reload free of any reopening; write throughput is bounded by SQLite's single writer
    either way.
    """

    def __init__(self, path: Path | str) -> None:
        """Open (or create) the database at ``path``; ``":memory:"`` keeps it in memory.

        Raises :class:`StateLocked` if another process has it open, :class:`StateCorrupt`
        if it is damaged (``PRAGMA quick_check`` at open).
        """
        in_memory = str(path) == ":memory:"
        self.path = Path(path)
        self._in_memory = in_memory
        self._lock_fd: int | None = None
        self._identity = (0, 0)  # the file's (st_dev, st_ino) once open
        if not in_memory:
            _make_dirs(self.path.parent)
            self._lock_fd = _lock_file(self.path)
        try:
            if not in_memory:
                os.close(_open_private(self.path, os.O_RDWR))  # 0600 before SQLite makes it
            conn = self._open(in_memory)
            if not in_memory:
                st = os.stat(self.path)
                self._identity = (st.st_dev, st.st_ino)
        except BaseException:
            self._release_lock()
            raise
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()  # guards _conn, _depth and _states
        self._depth = 0  # nesting level of transaction() on the thread holding _lock
        self._states: dict[str, ModuleState] = {}

    def _open(self, in_memory: bool) -> sqlite3.Connection:
        # isolation_level=None: the sqlite3 module never opens transactions behind our back;
        # a lone statement autocommits and transaction() issues BEGIN/COMMIT itself.
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != ("memory" if in_memory else "wal"):
                raise StateError(f"{self.path}: cannot enable WAL journal mode (got {mode!r})")
            # In WAL mode NORMAL is durable against the process being killed (the commit is
            # in the WAL file, i.e. the OS page cache); only power loss can drop the last
            # commits, never corrupt the database.  FULL would fsync every single write.
            conn.execute("PRAGMA synchronous = NORMAL")
            problems = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise StateCorrupt(_corrupt_message(self.path, problems[0]))
            conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            conn.close()
            raise _wrap(self.path, exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the flock

    # -- public API --------------------------------------------------------------------

    def state(self, module: str) -> ModuleState:
        """Return the state of ``module``; the same object on every call with that name."""
        if not isinstance(module, str) or not module:
            raise StateError(f"module name must be a non-empty str, not {module!r}")
        st = self._states.get(module)  # no lock: a stuck call inside a transaction holds it
        if st is not None and self._conn is not None:
            return st
        with self._lock:
            self._connection()  # refuse to hand out states of a closed storage
            st = self._states.get(module)
            if st is None:
                st = self._states[module] = ModuleState(self, module)
            return st

    def close(self, timeout: float | None = None) -> bool:
        """Close the database.  Idempotent; later use of any of its states raises StateError.

        ``timeout``: give up (return False) if another thread holds the storage that
        long, e.g. a stuck call inside ``transaction()``; the process exits anyway.
        """
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            if self._depth:
                raise StateError("cannot close the storage inside one of its transactions")
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()
                self._release_lock()
            return True
        finally:
            self._lock.release()

    def integrity_problems(self) -> list[str]:
        """``PRAGMA quick_check`` of the file as it is on disk now: [] when sound."""
        with self._lock:
            conn = self._connection()
            try:
                self._reread(conn)
                rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
                tables = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'kv'").fetchall()
            except (sqlite3.Error, StateError) as exc:
                return [str(exc)]
        problems = [] if rows == ["ok"] else rows
        if not tables:  # made at open: the file was emptied since
            problems.append("the kv table is missing: the file was emptied")
        return problems

    def backup(self, dest: Path | str) -> Path:
        """Copy the database to ``dest`` (made 0600) with SQLite's online backup API.

        Consistent while the bot runs: the copy is one read transaction, so writers carry
        on and it holds exactly the commits made before it began.  The copy is checked
        (``quick_check``) before it replaces ``dest``: a damaged database raises
        :class:`StateCorrupt` and leaves ``dest`` alone.  ``dest`` is one self-contained
        file (rollback journal, not WAL): restore it by copying it over the state file.
        """
        dest = Path(dest)
        _make_dirs(dest.parent)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        os.close(_open_private(tmp, os.O_RDWR | os.O_TRUNC))
        try:
            target = sqlite3.connect(tmp)
            try:
                if self._in_memory:
                    with self._lock:
                        self._connection().backup(target)
                else:
                    self._connection()  # refuse once closed
                    uri = f"{self.path.absolute().as_uri()}?mode=ro"
                    source = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
                    try:
                        source.backup(target)
                    finally:
                        source.close()
                target.execute("PRAGMA journal_mode = DELETE")
                problems = [r[0] for r in target.execute("PRAGMA quick_check").fetchall()]
                if problems != ["ok"]:
                    raise StateCorrupt(_corrupt_message(self.path, problems[0]))
            finally:
                target.close()
            os.replace(tmp, dest)
        except sqlite3.Error as exc:
            tmp.unlink(missing_ok=True)
            raise _wrap(self.path, exc) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Storage {str(self.path)!r}{' closed' if self.closed else ''}>"

    # -- internals used by ModuleState (call with self._lock held) -------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"storage {str(self.path)!r} is closed")
        return self._conn

    def _reread(self, conn: sqlite3.Connection) -> None:
        """Drop the connection's page cache, so the next statement reads the file itself.

        In WAL mode SQLite trusts its cached pages while the WAL index is unchanged, so
        with a file damaged under it (overwritten, truncated) a write would still succeed
        -- into the WAL, acknowledged, and lost at the next open.  Reading the pages
        afresh (from the OS cache: microseconds) makes that write raise StateCorrupt.
        """
        if self._in_memory:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != self._identity:
            # Written to, the old file would be acknowledged and lost with it.
            raise StateCorrupt(
                f"{self.path} was removed or replaced while in use; stop the bot before "
                'restoring a backup (see "The state database" in docs/operating.md)'
            )
        conn.execute("PRAGMA shrink_memory")

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """All rows of one read (caller holds ``self._lock``); SQLite errors -> StateError."""
        conn = self._connection()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _wrap(self.path, exc) from exc

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """One write statement, committed unless inside transaction(); the rows it changed.

        Raises StateError (StateCorrupt for a damaged file) instead of acknowledging it.
        """
        conn = self._connection()
        try:
            if self._depth == 0:
                self._reread(conn)
            return conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise _wrap(self.path, exc) from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One SQLite transaction (a savepoint when nested); caller holds ``self._lock``."""
        conn = self._connection()
        depth = self._depth
        try:
            if depth == 0:
                self._reread(conn)
            # IMMEDIATE takes the write lock up front, so another process touching the file
            # can only make us wait (busy_timeout) at BEGIN, never fail half-way through.
            conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
        except sqlite3.Error as exc:
            raise _wrap(self.path, exc) from exc
        self._depth = depth + 1
        try:
            yield
        except BaseException:
            self._depth = depth
            try:
                if depth == 0:
                    conn.execute("ROLLBACK")
                else:
                    conn.execute(f"ROLLBACK TO sp{depth}")
                    conn.execute(f"RELEASE sp{depth}")
            except sqlite3.Error as exc:
                raise _wrap(self.path, exc) from exc
            raise
        self._depth = depth
        try:
            conn.execute("COMMIT" if depth == 0 else f"RELEASE sp{depth}")
        except BaseException as exc:
            if depth == 0 and conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _wrap(self.path, exc) from exc
            raise


class ModuleState(State):
    """A persistent ``dict[str, JSON]`` for one module; obtain it via :meth:`Storage.state`.

    Reads return freshly deserialised copies: mutating a returned list or dict changes
    nothing until it is assigned back.  Each write is committed before it returns.
    """

    def __init__(self, storage: Storage, module: str) -> None:
        self._storage = storage
        self.module = module
        # Always taken *after* the storage lock (see transaction()), so it can never be part
        # of a lock-order deadlock, even with transactions of several modules nested.
        self._lock = threading.RLock()

    # -- validation ------------------------------------------------------------------------

    def _check_key(self, key: object) -> str:
        if not isinstance(key, str):
            raise StateError(
                f"{_describe(self.module, key)}: key must be str, not {type(key).__name__}"
            )
        return key

    def _encode(self, key: str, value: object) -> str:
        where = _describe(self.module, key)
        try:
            text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        except TypeError as exc:
            raise StateError(
                f"{where}: value of type {type(value).__name__} is not JSON-serialisable ({exc})"
            ) from exc
        except (ValueError, RecursionError) as exc:  # NaN/Infinity, circular reference
            raise StateError(f"{where}: value is not JSON-serialisable ({exc})") from exc
        # json.dumps quietly turns tuples into lists and int dict keys into str ones; refuse
        # rather than hand back something different from what was stored.
        if json.loads(text) != value:
            raise StateError(
                f"{where}: value of type {type(value).__name__} would not read back equal "
                "(tuples and non-str dict keys do not survive JSON)"
            )
        return text

    # -- Mapping ---------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        key = self._check_key(key)
        with self._storage._lock:
            rows = self._storage._rows(
                "SELECT value FROM kv WHERE module = ? AND key = ?", (self.module, key)
            )
        if not rows:
            raise KeyError(key)
        return json.loads(rows[0][0])

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        with self._storage._lock:
            rows = self._storage._rows(
                "SELECT 1 FROM kv WHERE module = ? AND key = ?", (self.module, key)
            )
        return bool(rows)

    def copy(self) -> dict[str, Any]:
        """All keys and values, read in one query: a consistent snapshot."""
        with self._storage._lock:
            rows = self._storage._rows(
                "SELECT key, value FROM kv WHERE module = ? ORDER BY key", (self.module,)
            )
        return {key: json.loads(value) for key, value in rows}

    def items(self) -> ItemsView[str, Any]:
        # The mixin would list the keys, then read each: a key deleted in between
        # by another thread would raise KeyError.
        return self.copy().items()

    def values(self) -> ValuesView[Any]:
        return self.copy().values()

    def __iter__(self) -> Iterator[str]:
        # A snapshot: the caller may modify the state while iterating.
        with self._storage._lock:
            rows = self._storage._rows(
                "SELECT key FROM kv WHERE module = ? ORDER BY key", (self.module,)
            )
        return iter([r[0] for r in rows])

    def __len__(self) -> int:
        with self._storage._lock:
            rows = self._storage._rows("SELECT COUNT(*) FROM kv WHERE module = ?", (self.module,))
        return int(rows[0][0])

    # -- MutableMapping --------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        key = self._check_key(key)
        text = self._encode(key, value)  # validate before touching the database
        with self._storage._lock:
            self._storage._write(
                "INSERT INTO kv (module, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (module, key) DO UPDATE SET value = excluded.value",
                (self.module, key, text),
            )

    def __delitem__(self, key: str) -> None:
        key = self._check_key(key)
        with self._storage._lock:
            changed = self._storage._write(
                "DELETE FROM kv WHERE module = ? AND key = ?", (self.module, key)
            )
        if changed == 0:
            raise KeyError(key)

    def clear(self) -> None:
        """Delete every key of this module, in one statement."""
        with self._storage._lock:
            self._storage._write("DELETE FROM kv WHERE module = ?", (self.module,))

    # The inherited versions of these are several statements each; make them atomic.

    def setdefault(self, key: str, default: Any = None) -> Any:
        with self.transaction():
            try:
                return self[key]
            except KeyError:
                self[key] = default
                return default

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        with self.transaction():
            try:
                value = self[key]
            except KeyError:
                if default is _MISSING:
                    raise
                return default
            del self[key]
            return value

    def popitem(self) -> tuple[str, Any]:
        with self.transaction():
            for key in self:
                return key, self.pop(key)
            raise KeyError("popitem(): state is empty")

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Like ``dict.update``, but all-or-nothing and a single commit."""
        items: Iterable[tuple[Any, Any]]
        if isinstance(other, Mapping):
            items = list(other.items())
        elif hasattr(other, "keys"):
            keys = other.keys()  # the dict.update protocol: keys(), then getitem
            items = [(k, other[k]) for k in keys]
        else:
            items = list(other)
        with self.transaction():
            for key, value in items:
                self[key] = value
            for key, value in kwargs.items():
                self[key] = value

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[ModuleState]:
        """Hold this module's lock and one SQLite transaction for the ``with`` body.

        Reads and writes inside are atomic with respect to other threads; everything is
        committed on normal exit and rolled back if the body raises.  Nesting (also across
        modules) is allowed and uses savepoints.  Keep the body short: other threads' storage
        calls wait for it.
        """
        with self._storage._lock, self._lock, self._storage._transaction():
            yield self

    def __repr__(self) -> str:
        return f"<ModuleState {self.module!r} of {self._storage!r}>"
