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
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import ItemsView, Iterable, Iterator, Mapping, MutableMapping, ValuesView
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ModuleState", "StateError", "Storage"]

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


class StateError(Exception):
    """A value or key cannot be stored, or the storage is no longer usable."""


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
        """Open (or create) the database at ``path``; ``":memory:"`` keeps it in memory."""
        in_memory = str(path) == ":memory:"
        self.path = Path(path)
        if not in_memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
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
            conn.execute(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()  # guards _conn, _depth and _states
        self._depth = 0  # nesting level of transaction() on the thread holding _lock
        self._states: dict[str, ModuleState] = {}

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
            return True
        finally:
            self._lock.release()

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

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One SQLite transaction (a savepoint when nested); caller holds ``self._lock``."""
        conn = self._connection()
        depth = self._depth
        # IMMEDIATE takes the write lock up front, so another process touching the file can
        # only make us wait (busy_timeout) at BEGIN, never fail half-way through the body.
        conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
        self._depth = depth + 1
        try:
            yield
        except BaseException:
            self._depth = depth
            if depth == 0:
                conn.execute("ROLLBACK")
            else:
                conn.execute(f"ROLLBACK TO sp{depth}")
                conn.execute(f"RELEASE sp{depth}")
            raise
        self._depth = depth
        try:
            conn.execute("COMMIT" if depth == 0 else f"RELEASE sp{depth}")
        except BaseException:
            if depth == 0 and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


class ModuleState(MutableMapping[str, Any]):
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
            row = (
                self._storage._connection()
                .execute("SELECT value FROM kv WHERE module = ? AND key = ?", (self.module, key))
                .fetchone()
            )
        if row is None:
            raise KeyError(key)
        return json.loads(row[0])

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        with self._storage._lock:
            row = (
                self._storage._connection()
                .execute("SELECT 1 FROM kv WHERE module = ? AND key = ?", (self.module, key))
                .fetchone()
            )
        return row is not None

    def copy(self) -> dict[str, Any]:
        """All keys and values, read in one query: a consistent snapshot."""
        with self._storage._lock:
            rows = (
                self._storage._connection()
                .execute("SELECT key, value FROM kv WHERE module = ? ORDER BY key", (self.module,))
                .fetchall()
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
            rows = (
                self._storage._connection()
                .execute("SELECT key FROM kv WHERE module = ? ORDER BY key", (self.module,))
                .fetchall()
            )
        return iter([r[0] for r in rows])

    def __len__(self) -> int:
        with self._storage._lock:
            row = (
                self._storage._connection()
                .execute("SELECT COUNT(*) FROM kv WHERE module = ?", (self.module,))
                .fetchone()
            )
        return int(row[0])

    # -- MutableMapping --------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        key = self._check_key(key)
        text = self._encode(key, value)  # validate before touching the database
        with self._storage._lock:
            self._storage._connection().execute(
                "INSERT INTO kv (module, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (module, key) DO UPDATE SET value = excluded.value",
                (self.module, key, text),
            )

    def __delitem__(self, key: str) -> None:
        key = self._check_key(key)
        with self._storage._lock:
            cur = self._storage._connection().execute(
                "DELETE FROM kv WHERE module = ? AND key = ?", (self.module, key)
            )
        if cur.rowcount == 0:
            raise KeyError(key)

    def clear(self) -> None:
        """Delete every key of this module, in one statement."""
        with self._storage._lock:
            self._storage._connection().execute("DELETE FROM kv WHERE module = ?", (self.module,))

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
