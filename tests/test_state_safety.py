"""Issue 16, state safety: private files, one process per database, damage refused and never
acknowledged, online backups (bot.storage)."""

from __future__ import annotations

import calendar
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.backups import Backups, backup_into
from bot.storage import StateCorrupt, StateError, StateLocked, Storage, check_integrity

REPO_ROOT = Path(__file__).resolve().parents[1]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    """A permissive umask, as a service or a shell might have: the modes must not follow it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def fill(db: Path, n: int = 300) -> None:
    """Some state, all in the file itself (the last close checkpoints the WAL)."""
    with Storage(db) as storage, storage.state("m").transaction() as s:
        for i in range(n):
            s[f"k{i}"] = "x" * 200  # about 20 pages, so damage can miss the first ones
    assert not db.with_name(db.name + "-wal").exists()


def damage(db: Path, how: str) -> None:
    size = db.stat().st_size
    with open(db, "r+b") as f:
        if how == "truncate":
            f.truncate(0)
        elif how == "zeros":
            f.write(b"\0" * size)
        elif how == "pages":  # every page but the first (the header and the schema)
            f.seek(4096)
            f.write(os.urandom(size - 4096))
        elif how == "header":
            f.write(os.urandom(100))
        else:
            raise AssertionError(how)


# -- 1. private files ------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o000])
def test_state_files_and_new_folders_are_private_whatever_the_umask(
    tmp_path: Path, mask: int
) -> None:
    old = os.umask(mask)
    try:
        db = tmp_path / "data" / "sub" / "state.sqlite3"
        with Storage(db) as storage:
            storage.state("m")["k"] = "secret"
            files = [db, db.with_name("state.sqlite3-wal"), db.with_name("state.sqlite3-shm")]
            files.append(db.with_name("state.sqlite3.lock"))
            modes = {f.name: oct(mode(f)) if f.exists() else "missing" for f in files}
            assert modes == {f.name: "0o600" for f in files}
            assert oct(mode(db.parent)) == oct(mode(db.parent.parent)) == "0o700"
            backup = storage.backup(tmp_path / "new" / "b.sqlite3")
            assert (oct(mode(backup)), oct(mode(backup.parent))) == ("0o600", "0o700")
    finally:
        os.umask(old)


# -- 2. one process per database --------------------------------------------------------

HOLDER = """
import sys
from bot.storage import Storage
storage = Storage(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
storage.close()
print("closed", flush=True)
"""


def test_a_second_process_on_the_same_database_is_refused_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "data" / "state.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "ready\n"
        with pytest.raises(StateLocked) as caught:
            Storage(db)
        message = str(caught.value)
        assert message == (
            f"{db} is in use by another reloadbot (pid {holder.pid}); "
            "stop it first, or give this one its own state_db"
        )
        assert isinstance(caught.value, StateError)
        holder.stdin.close()
        assert holder.stdout.readline() == "closed\n"
        holder.wait(timeout=10)
    with Storage(db) as storage:  # released by close() (and by the kernel at exit)
        storage.state("m")["k"] = 1
        with pytest.raises(StateLocked, match=rf"\(pid {os.getpid()}\)"):
            Storage(db)  # the lock is per open, so it holds within one process too
    Storage(db).close()  # close() released it


def test_in_memory_state_takes_no_lock() -> None:
    with Storage(":memory:") as one, Storage(":memory:") as two:
        one.state("m")["k"] = 1
        assert "k" not in two.state("m")


# -- 3. a damaged database -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["header", "zeros", "pages"])
def test_a_damaged_file_is_refused_at_open_with_one_line(tmp_path: Path, how: str) -> None:
    db = tmp_path / "state.sqlite3"
    fill(db)
    assert check_integrity(db) is None
    damage(db, how)
    with pytest.raises(StateCorrupt) as caught:
        Storage(db)  # raised sqlite3.DatabaseError (header, zeros), or opened fine (pages)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{db} is damaged (")
    assert "restore a backup" in message and "docs/operating.md" in message
    assert "move the file away" in message
    problem = check_integrity(db)
    assert problem is not None and problem.startswith(f"{db} is damaged (")
    with Storage(tmp_path / "other.sqlite3"):  # the refused one left no lock behind
        pass
    db.rename(tmp_path / "moved.sqlite3")  # "move the file away to start afresh"
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    with Storage(db) as storage:
        assert len(storage.state("m")) == 0


def test_check_integrity_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert check_integrity(tmp_path / "absent.sqlite3") is None
    assert not (tmp_path / "absent.sqlite3").exists()


@pytest.mark.parametrize("how", ["truncate", "zeros", "pages", "header"])
def test_a_write_to_a_file_damaged_while_running_raises_instead_of_being_lost(
    tmp_path: Path, how: str
) -> None:
    db = tmp_path / "state.sqlite3"
    fill(db)
    with Storage(db) as storage:
        state = storage.state("m")
        assert len(dict(state)) == 300  # a bot that has used its state: SQLite caches it
        damage(db, how)  # e.g. a restore copied over the file while the bot runs
        # Before: each write went into the WAL from SQLite's cached pages, was acknowledged,
        # and was gone (or the file unreadable) at the next open.
        with pytest.raises(StateCorrupt, match=rf"^{db} is damaged \("):
            state["new"] = "value"
        with pytest.raises(StateCorrupt), state.transaction() as s:
            s["other"] = 1
        with pytest.raises(StateCorrupt):
            del state["k1"]
        assert storage.integrity_problems() != []


def test_a_write_after_the_file_was_replaced_while_running_raises(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    with Storage(db) as storage:
        state = storage.state("m")
        state["k"] = "old"
        backup = storage.backup(tmp_path / "b.sqlite3")
        os.replace(backup, db)  # a restore done without stopping the bot first
        # Before: the write went to the old, unlinked file: acknowledged, and gone.
        with pytest.raises(StateCorrupt, match="was removed or replaced while in use"):
            state["k"] = "new"


# -- 4. backups ------------------------------------------------------------------------------


def test_backup_is_a_consistent_single_file_copy_while_writes_go_on(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    with Storage(db) as storage:
        state = storage.state("m")
        state.update(a=0, b=0)
        stop = threading.Event()

        def writer() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                with state.transaction() as s:
                    s["a"] = n
                    s["pad"] = "x" * (n % 5000)  # the file grows and shrinks meanwhile
                    s["b"] = n

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            for i in range(20):
                copy = storage.backup(tmp_path / "backups" / f"b{i}.sqlite3")
                conn = sqlite3.connect(copy)
                try:
                    rows = dict(conn.execute("SELECT key, value FROM kv WHERE module = 'm'"))
                    assert rows["a"] == rows["b"]  # one transaction's commits, never half
                    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
                finally:
                    conn.close()
                assert not copy.with_name(copy.name + "-wal").exists()
        finally:
            stop.set()
            thread.join()
        state["restored"] = "before"
        backup = storage.backup(tmp_path / "chosen.sqlite3")
        state["restored"] = "after"
    # The documented restore: stop the bot, copy the backup over the state file, start it.
    db.write_bytes(backup.read_bytes())
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    with Storage(db) as storage:
        assert storage.state("m")["restored"] == "before"


def test_restoring_with_the_sqlite3_shell_as_documented(tmp_path: Path) -> None:
    sqlite3_shell = shutil.which("sqlite3")
    if sqlite3_shell is None:
        pytest.skip("the sqlite3 shell is not installed")
    db = tmp_path / "state.sqlite3"
    with Storage(db) as storage:
        storage.state("m")["k"] = "backed up"
        backup = backup_into(storage, tmp_path / "backups", keep=7)
        storage.state("m")["k"] = "later"
    subprocess.run([sqlite3_shell, str(db), f".restore {backup}"], check=True, timeout=60)
    with Storage(db) as storage:
        assert storage.state("m")["k"] == "backed up"
    assert oct(mode(db)) == "0o600"


def test_a_damaged_database_never_replaces_a_backup(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    fill(db)
    with Storage(db) as storage:
        good = storage.backup(tmp_path / "b.sqlite3")
        before = good.read_bytes()
        damage(db, "pages")
        with pytest.raises(StateCorrupt):
            storage.backup(good)
        assert good.read_bytes() == before
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def backups(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("state-"))


def test_backups_are_taken_every_interval_the_newest_kept_until_stopped(
    tmp_path: Path, umask: None
) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    old = [f"state-2020010{i}T000000Z.sqlite3" for i in (1, 2, 3)]
    for name in old:
        (folder / name).write_text("an older backup")
    (folder / "notes.txt").write_text("not a backup: left alone")
    storage = Storage(tmp_path / "state.sqlite3")
    try:
        storage.state("m")["n"] = 1
        started = time.time()
        taking = Backups(storage, folder, interval=0.05, keep=2)
        storage.state("m")["n"] = 2
        deadline = time.monotonic() + 10
        while True:
            names = backups(folder)
            fresh = [n for n in names if n not in old]
            if fresh and len(names) == 2:
                newest = folder / fresh[-1]
                conn = sqlite3.connect(f"{newest.as_uri()}?mode=ro", uri=True)
                try:
                    value = conn.execute("SELECT value FROM kv WHERE key = 'n'").fetchone()
                except sqlite3.Error:
                    value = None  # replaced while we read it
                finally:
                    conn.close()
                if value == ("2",):
                    break
            assert time.monotonic() < deadline, names
            time.sleep(0.01)
        assert names == [old[-1], fresh[-1]]  # the newest two
        stamp = time.strptime(fresh[-1], "state-%Y%m%dT%H%M%SZ.sqlite3")
        assert abs(calendar.timegm(stamp) - started) < 5  # UTC, not local time
        assert oct(mode(newest)) == "0o600"
        assert (folder / "notes.txt").exists()
        taking.stop()
    finally:
        storage.close()
    assert not [t for t in threading.enumerate() if t.name == "state-backups"]  # joined
