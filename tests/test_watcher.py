"""Tests for bot.watcher: real temp directories, real watchdog (inotify), no sleeps to wait.

Every wait is a bounded ``Condition.wait_for``: positive checks wait up to TIMEOUT for a
batch, negative checks ("no batch") wait a fixed multiple of the quiet period for one
that must not come.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.watcher import DebouncedWatcher, is_python_source

QUIET = 0.1
TIMEOUT = 5.0

Factory = Callable[..., DebouncedWatcher]


class Batches:
    """An ``on_batch`` callback that records batches and lets tests wait for them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.items: list[frozenset[Path]] = []

    def __call__(self, batch: frozenset[Path]) -> None:
        with self._cond:
            self.items.append(batch)
            self._cond.notify_all()

    def wait(self, count: int = 1, timeout: float = TIMEOUT) -> list[frozenset[Path]]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.items) >= count, timeout)
            assert ok, f"expected {count} batch(es) within {timeout}s, got {self.items}"
            return list(self.items)

    def wait_quiet(self, period: float) -> None:
        """Wait until no new batch has come for ``period`` seconds (at most TIMEOUT)."""
        deadline = time.monotonic() + TIMEOUT
        with self._cond:
            while True:
                seen = len(self.items)
                self._cond.wait_for(lambda seen=seen: len(self.items) > seen, period)
                if len(self.items) == seen:
                    return
                assert time.monotonic() < deadline, f"batches kept coming: {self.items}"

    def assert_no_more(self, count: int, within: float = QUIET * 3) -> None:
        with self._cond:
            extra = self._cond.wait_for(lambda: len(self.items) > count, within)
            assert not extra, f"unexpected batch after {count}: {self.items[count:]}"


def write(path: Path, text: str) -> None:
    """In-place save: open for writing, write, close."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_save(path: Path, text: str) -> None:
    """Temp file in the same directory, then os.replace over the target."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp, text)
    os.replace(tmp, path)


def vim_save(path: Path, text: str) -> None:
    """vim with backupcopy=auto: rename original to backup, write new file, drop backup."""
    probe = path.with_name("4913")
    write(probe, "")
    probe.unlink()
    backup = path.with_name(path.name + "~")
    os.replace(path, backup)
    write(path, text)
    backup.unlink()


@pytest.fixture
def commands(tmp_path: Path) -> Path:
    directory = tmp_path / "commands"
    directory.mkdir()
    return directory


@pytest.fixture
def make_watcher() -> Iterator[Factory]:
    started: list[DebouncedWatcher] = []

    def factory(
        directory: Path,
        on_batch: Callable[[frozenset[Path]], None],
        *,
        accept: Callable[[Path], bool] = is_python_source,
        quiet_period: float = QUIET,
        check_interval: float = 1.0,
    ) -> DebouncedWatcher:
        watcher = DebouncedWatcher(
            directory,
            accept,
            on_batch,
            quiet_period=quiet_period,
            check_interval=check_interval,
        )
        watcher.start()
        started.append(watcher)
        return watcher

    yield factory
    for watcher in started:
        watcher.stop()


# -- the accept filter ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["dice.py", "_util.py", "__init__.py", "sedate.py", "a.py"])
def test_is_python_source_accepts(name: str) -> None:
    assert is_python_source(Path("/bot/commands") / name)


@pytest.mark.parametrize(
    "name",
    [
        "dice.py~",
        ".dice.py.swp",
        ".dice.py.swx",
        "4913",
        "5036",
        ".#dice.py",
        "#dice.py#",
        "sedODdFqE",
        "dice.py.tmp",
        ".dice.py.tmp123",
        ".py",
        ".hidden.py",
        "dice.pyc",
        "dice.txt",
        "dice.py.bak",
        "config.yaml",
    ],
)
def test_is_python_source_rejects(name: str) -> None:
    assert not is_python_source(Path("/bot/commands") / name)


def test_is_python_source_rejects_pycache() -> None:
    assert not is_python_source(Path("/bot/commands/__pycache__/dice.py"))
    assert not is_python_source(Path("/bot/commands/__pycache__/dice.cpython-311.pyc"))


# -- editor save patterns --------------------------------------------------------------


def test_in_place_write(commands: Path, make_watcher: Factory) -> None:
    batches = Batches()
    make_watcher(commands, batches)
    write(commands / "dice.py", "x = 1\n")
    assert batches.wait() == [frozenset({commands / "dice.py"})]


def test_atomic_replace_names_target_not_temp(commands: Path, make_watcher: Factory) -> None:
    target = commands / "dice.py"
    write(target, "x = 1\n")
    batches = Batches()
    make_watcher(commands, batches)
    atomic_save(target, "x = 2\n")
    assert batches.wait() == [frozenset({target})]
    assert target.read_text() == "x = 2\n"


def test_vim_style_save(commands: Path, make_watcher: Factory) -> None:
    target = commands / "dice.py"
    write(target, "x = 1\n")
    batches = Batches()
    make_watcher(commands, batches)
    vim_save(target, "x = 2\n")
    assert batches.wait() == [frozenset({target})]
    assert target.read_text() == "x = 2\n"
    assert not (commands / "dice.py~").exists()


@pytest.mark.skipif(shutil.which("sed") is None, reason="needs GNU sed")
def test_sed_in_place(commands: Path, make_watcher: Factory) -> None:
    # sed -i writes ./sedXXXXXX and renames it over the file.
    target = commands / "dice.py"
    write(target, "x = 1\n")
    batches = Batches()
    make_watcher(commands, batches)
    subprocess.run(["sed", "-i", "s/1/2/", str(target)], check=True)
    assert batches.wait() == [frozenset({target})]
    assert target.read_text() == "x = 2\n"


def test_delete_then_recreate(commands: Path, make_watcher: Factory) -> None:
    target = commands / "dice.py"
    write(target, "x = 1\n")
    batches = Batches()
    make_watcher(commands, batches)
    target.unlink()
    write(target, "x = 2\n")
    assert batches.wait() == [frozenset({target})]
    assert target.exists()


def test_deletion_alone(commands: Path, make_watcher: Factory) -> None:
    target = commands / "dice.py"
    write(target, "x = 1\n")
    batches = Batches()
    make_watcher(commands, batches)
    target.unlink()
    assert batches.wait() == [frozenset({target})]
    assert not target.exists()


def test_moved_out_of_directory_is_reported(
    commands: Path, tmp_path: Path, make_watcher: Factory
) -> None:
    # An unpaired IN_MOVED_FROM: watchdog holds it 0.5 s, then reports a deletion.
    target = commands / "dice.py"
    write(target, "x = 1\n")
    batches = Batches()
    make_watcher(commands, batches)
    os.replace(target, tmp_path / "elsewhere.py")
    assert batches.wait() == [frozenset({target})]


def test_several_files_in_one_burst(commands: Path, make_watcher: Factory) -> None:
    batches = Batches()
    make_watcher(commands, batches)
    write(commands / "a.py", "a = 1\n")
    atomic_save(commands / "b.py", "b = 1\n")
    write(commands / "_util.py", "u = 1\n")
    assert batches.wait() == [
        frozenset({commands / "a.py", commands / "b.py", commands / "_util.py"})
    ]


def test_a_burst_of_saves_is_coalesced(commands: Path, make_watcher: Factory) -> None:
    quiet = 0.25
    target = commands / "dice.py"
    batches = Batches()
    make_watcher(commands, batches, quiet_period=quiet)
    for i in range(20):
        if i % 2:
            atomic_save(target, f"x = {i}\n")
        else:
            write(target, f"x = {i}\n")
    batches.wait()
    batches.wait_quiet(quiet * 3)
    # One batch, as a rule. A pause of the process longer than the quiet period while
    # watchdog's threads hand the events over (a full collection in a big test run,
    # a descheduled thread) rightly splits it: a split is a second, idle reload.
    assert 1 <= len(batches.items) <= 3, batches.items
    assert set(batches.items) == {frozenset({target})}
    assert target.read_text() == "x = 19\n"


# -- things that must not produce a batch ------------------------------------------------


def test_editor_junk_alone_gives_no_batch(commands: Path, make_watcher: Factory) -> None:
    batches = Batches()
    make_watcher(commands, batches)
    write(commands / ".dice.py.swp", "swap")
    write(commands / "dice.py~", "backup")
    write(commands / "4913", "")
    (commands / "4913").unlink()
    write(commands / ".#dice.py", "lock")
    write(commands / "sedODdFqE", "sed temp")
    write(commands / "dice.py.tmp", "temp")
    (commands / "__pycache__").mkdir()
    write(commands / "__pycache__" / "dice.cpython-311.pyc", "bytecode")
    batches.assert_no_more(0)
    # Events are delivered in order: a real save now yields exactly that file.
    write(commands / "dice.py", "x = 1\n")
    assert batches.wait() == [frozenset({commands / "dice.py"})]


def test_reading_files_gives_no_batch(commands: Path, make_watcher: Factory) -> None:
    for name in ("a.py", "b.py"):
        write(commands / name, f"# {name}\n")
    batches = Batches()
    make_watcher(commands, batches)
    for _ in range(5):
        for path in sorted(commands.iterdir()):
            path.read_bytes()
            with open(path, encoding="utf-8") as f:
                f.read()
            path.stat()
    batches.assert_no_more(0)


def test_on_batch_reading_the_file_does_not_loop(commands: Path, make_watcher: Factory) -> None:
    recorder = Batches()

    def loader(batch: frozenset[Path]) -> None:
        for path in batch:
            if path.exists():
                path.read_bytes()
        recorder(batch)

    make_watcher(commands, loader)
    write(commands / "dice.py", "x = 1\n")
    assert recorder.wait() == [frozenset({commands / "dice.py"})]
    recorder.assert_no_more(1)


# -- robustness ---------------------------------------------------------------------------


def test_on_batch_raising_keeps_watching(
    commands: Path, make_watcher: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Batches()

    def flaky(batch: frozenset[Path]) -> None:
        recorder(batch)
        if len(recorder.items) == 1:
            raise RuntimeError("boom in on_batch")

    watcher = make_watcher(commands, flaky)
    with caplog.at_level(logging.ERROR, logger="bot.watcher"):
        write(commands / "a.py", "a = 1\n")
        recorder.wait(1)
        write(commands / "b.py", "b = 1\n")
        assert recorder.wait(2) == [frozenset({commands / "a.py"}), frozenset({commands / "b.py"})]
    assert watcher.running
    assert any(r.exc_info and "boom in on_batch" in str(r.exc_info[1]) for r in caplog.records)


def test_accept_raising_is_logged_and_ignored(
    commands: Path, make_watcher: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    def accept(path: Path) -> bool:
        if path.name == "bad.py":
            raise ValueError("boom in accept")
        return is_python_source(path)

    batches = Batches()
    with caplog.at_level(logging.ERROR, logger="bot.watcher"):
        make_watcher(commands, batches, accept=accept)
        write(commands / "bad.py", "")
        write(commands / "good.py", "")
        assert batches.wait() == [frozenset({commands / "good.py"})]
    assert any(r.exc_info and "boom in accept" in str(r.exc_info[1]) for r in caplog.records)


def test_on_batch_never_runs_concurrently(commands: Path, make_watcher: Factory) -> None:
    recorder = Batches()
    release = threading.Event()
    active = 0
    max_active = 0
    lock = threading.Lock()

    def slow(batch: frozenset[Path]) -> None:
        nonlocal active, max_active
        with lock:
            active += 1
            max_active = max(max_active, active)
        recorder(batch)
        if len(recorder.items) == 1:
            release.wait(TIMEOUT)
        with lock:
            active -= 1

    make_watcher(commands, slow)
    write(commands / "a.py", "")
    recorder.wait(1)
    write(commands / "b.py", "")  # arrives while the first batch is still being handled
    recorder.assert_no_more(1)
    release.set()
    assert recorder.wait(2)[1] == frozenset({commands / "b.py"})
    assert max_active == 1


def test_dead_observer_is_restarted_by_supervision(
    commands: Path, make_watcher: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    write(commands / "a.py", "")
    batches = Batches()
    with caplog.at_level(logging.WARNING, logger="bot.watcher"):
        watcher = make_watcher(commands, batches, check_interval=0.05)
        observer = watcher._observer
        assert observer is not None
        observer.stop()  # simulate watchdog's dispatcher thread dying
        observer.join(TIMEOUT)
        # After a restart the watcher reports every accepted file present (events may be lost).
        assert batches.wait() == [frozenset({commands / "a.py"})]
        write(commands / "b.py", "")
        assert batches.wait(2)[1] == frozenset({commands / "b.py"})
    assert watcher._observer is not observer
    assert any("restart" in r.getMessage() for r in caplog.records)


def test_start_restarts_dead_observer(commands: Path, make_watcher: Factory) -> None:
    batches = Batches()
    watcher = make_watcher(commands, batches, check_interval=60.0)
    observer = watcher._observer
    assert observer is not None
    observer.stop()
    observer.join(TIMEOUT)
    watcher.start()  # running already: only repairs the observer, synchronously
    write(commands / "a.py", "")
    assert batches.wait() == [frozenset({commands / "a.py"})]


def test_stop_is_idempotent_and_joins_threads(commands: Path) -> None:
    before = set(threading.enumerate())
    batches = Batches()
    watcher = DebouncedWatcher(commands, is_python_source, batches, quiet_period=QUIET)
    watcher.stop()  # before start: no-op
    assert not watcher.running
    watcher.start()
    assert watcher.running
    write(commands / "a.py", "")
    batches.wait()
    watcher.stop()
    watcher.stop()
    assert not watcher.running
    leftover = [t for t in threading.enumerate() if t not in before]
    assert leftover == []
    # A stopped watcher can be started again.
    watcher.start()
    try:
        write(commands / "b.py", "")
        assert batches.wait(2)[1] == frozenset({commands / "b.py"})
    finally:
        watcher.stop()
    assert [t for t in threading.enumerate() if t not in before] == []


def test_stop_from_inside_on_batch(commands: Path) -> None:
    before = set(threading.enumerate())
    recorder = Batches()
    watcher: DebouncedWatcher

    def stop_now(batch: frozenset[Path]) -> None:
        watcher.stop()
        recorder(batch)

    watcher = DebouncedWatcher(commands, is_python_source, stop_now, quiet_period=QUIET)
    watcher.start()
    write(commands / "a.py", "")
    recorder.wait()
    assert not watcher.running
    watcher.start()  # joins the finished debounce thread, then starts afresh
    watcher.stop()
    assert [t for t in threading.enumerate() if t not in before] == []


def test_start_on_missing_directory_raises(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    watcher = DebouncedWatcher(tmp_path / "missing", is_python_source, Batches())
    with pytest.raises(FileNotFoundError):
        watcher.start()
    assert not watcher.running
    watcher.stop()
    assert [t for t in threading.enumerate() if t not in before] == []


# -- config.yaml ----------------------------------------------------------------------------


def is_config(path: Path) -> bool:
    return path.name == "config.yaml"


def test_config_rename_save(tmp_path: Path, make_watcher: Factory) -> None:
    config = tmp_path / "config.yaml"
    write(config, "nick: a\n")
    write(tmp_path / "other.yaml", "x: 1\n")
    batches = Batches()
    make_watcher(tmp_path, batches, accept=is_config)
    write(tmp_path / "other.yaml", "x: 2\n")
    new = tmp_path / "config.yaml.new"
    write(new, "nick: b\n")
    os.replace(new, config)
    assert batches.wait() == [frozenset({config})]
    assert config.read_text() == "nick: b\n"
    vim_save(config, "nick: c\n")
    assert batches.wait(2)[1] == frozenset({config})


def test_config_created_after_start(tmp_path: Path, make_watcher: Factory) -> None:
    config = tmp_path / "config.yaml"
    batches = Batches()
    make_watcher(tmp_path, batches, accept=is_config)
    atomic_save(config, "nick: a\n")
    assert batches.wait() == [frozenset({config})]
