"""Tests for bot.storage: persistence, validation, isolation, concurrency, crash safety."""

from __future__ import annotations

import math
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.storage import ModuleState, StateError, Storage

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "state.sqlite3"


@pytest.fixture
def storage(db: Path):
    s = Storage(db)
    yield s
    s.close()


SAMPLES = {
    "str": "héllo, wörld ☃",
    "empty": "",
    "int": 42,
    "bigint": 2**70,
    "neg": -7,
    "float": 3.25,
    "tiny": 1e-300,
    "true": True,
    "false": False,
    "none": None,
    "list": [1, "two", 3.0, None, [True]],
    "dict": {"a": 1, "b": [1, 2, {"c": None}], "": "empty key"},
}


def test_creates_parent_dirs_and_uses_wal(db: Path, storage: Storage) -> None:
    assert db.exists()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = [r[1] for r in conn.execute("PRAGMA table_info(kv)")]
        assert cols == ["module", "key", "value"]
    finally:
        conn.close()


def test_round_trip_and_survives_restart(db: Path) -> None:
    s = Storage(db)
    st_ = s.state("karma")
    for k, v in SAMPLES.items():
        st_[k] = v
    for k, v in SAMPLES.items():
        got = st_[k]
        assert got == v and type(got) is type(v)
    s.close()

    s2 = Storage(db)  # a "restart"
    try:
        st2 = s2.state("karma")
        assert dict(st2) == SAMPLES
        assert len(st2) == len(SAMPLES)
        assert sorted(st2) == sorted(SAMPLES)
        for k, v in SAMPLES.items():
            assert type(st2[k]) is type(v)
    finally:
        s2.close()


def test_mapping_api(storage: Storage) -> None:
    s = storage.state("m")
    assert len(s) == 0 and list(s) == [] and "x" not in s
    with pytest.raises(KeyError):
        s["x"]
    assert s.get("x") is None and s.get("x", 5) == 5
    assert s.setdefault("x", [1]) == [1]
    assert s.setdefault("x", [2]) == [1]
    s["x"] = 2  # overwrite
    assert s["x"] == 2 and "x" in s and 1 not in s
    s.update({"a": 1}, b=2)
    s.update([("c", 3)])
    assert dict(s) == {"x": 2, "a": 1, "b": 2, "c": 3}
    assert s.pop("a") == 1 and s.pop("a", "gone") == "gone"
    with pytest.raises(KeyError):
        s.pop("a")
    del s["b"]
    with pytest.raises(KeyError):
        del s["b"]
    assert s.popitem() in {("c", 3), ("x", 2)}
    assert len(s) == 1
    s.clear()
    assert len(s) == 0 and dict(s) == {}
    with pytest.raises(KeyError):
        s.popitem()


def test_same_object_per_module(storage: Storage) -> None:
    a = storage.state("a")
    assert storage.state("a") is a
    assert storage.state("b") is not a
    assert isinstance(a, ModuleState) and a.module == "a"
    with pytest.raises(StateError):
        storage.state("")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({1, 2}, "value of type set is not JSON-serialisable"),
        (object(), "value of type object is not JSON-serialisable"),
        (math.nan, "not JSON-serialisable"),
        (math.inf, "not JSON-serialisable"),
        ([1, {"deep": {3}}], "not JSON-serialisable"),
        ((1, 2), "would not read back equal"),
        ({1: "int key"}, "would not read back equal"),
    ],
)
def test_unserialisable_value_rejected_and_nothing_written(
    db: Path, storage: Storage, value: object, fragment: str
) -> None:
    s = storage.state("karma")
    s["x"] = "old"
    with pytest.raises(StateError) as ei:
        s["x"] = value
    msg = str(ei.value)
    assert "module 'karma', key 'x'" in msg and fragment in msg
    with pytest.raises(StateError, match="key 'new'"):
        s["new"] = value
    assert s["x"] == "old" and "new" not in s
    storage.close()
    with Storage(db) as again:
        assert dict(again.state("karma")) == {"x": "old"}


def test_circular_value_rejected(storage: Storage) -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(StateError, match="module 'm', key 'k'"):
        storage.state("m")["k"] = loop


@pytest.mark.parametrize("key", [1, None, b"bytes", ("t",)])
def test_non_str_key_rejected(storage: Storage, key: object) -> None:
    s = storage.state("m")
    with pytest.raises(StateError, match=r"module 'm'.*key must be str"):
        s[key] = 1  # type: ignore[index]
    with pytest.raises(StateError):
        s[key]  # type: ignore[index]
    with pytest.raises(StateError):
        del s[key]  # type: ignore[arg-type]
    assert key not in s
    assert len(s) == 0


def test_namespaces_isolated(db: Path, storage: Storage) -> None:
    a, b = storage.state("a"), storage.state("b")
    a["k"] = "from a"
    b["k"] = "from b"
    b["only_b"] = 1
    assert a["k"] == "from a" and b["k"] == "from b"
    assert "only_b" not in a and len(a) == 1 and len(b) == 2
    a.clear()
    assert len(a) == 0 and dict(b) == {"k": "from b", "only_b": 1}
    del b["k"]
    storage.close()
    with Storage(db) as s2:
        assert dict(s2.state("a")) == {}
        assert dict(s2.state("b")) == {"only_b": 1}


def test_reads_are_copies(storage: Storage) -> None:
    s = storage.state("m")
    original = {"l": [1, 2], "d": {"x": 1}}
    s["v"] = original
    original["l"].append(99)  # mutating what was written does not reach storage
    got = s["v"]
    got["l"].append(3)
    got["d"]["x"] = 2
    assert s["v"] == {"l": [1, 2], "d": {"x": 1}}
    assert s["v"] is not s["v"]
    got_list = s.get("v")["l"]
    got_list.clear()
    assert s["v"]["l"] == [1, 2]
    s["v"] = got  # assigning back is what persists the change
    assert s["v"] == {"l": [1, 2, 3], "d": {"x": 2}}


def test_concurrent_transactions_lose_no_updates(storage: Storage) -> None:
    s = storage.state("counter")
    other = storage.state("other")
    n_threads, n_incr = 8, 200
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            for j in range(n_incr):
                with s.transaction() as t:
                    t["n"] = t.get("n", 0) + 1
                    t.setdefault("seen", 0)
                if j % 50 == 0:  # interleave plain writes to another module
                    other[f"t{i}"] = j
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert s["n"] == n_threads * n_incr == 1600
    assert len(other) == n_threads


def test_failing_transaction_rolls_back(db: Path, storage: Storage) -> None:
    s = storage.state("m")
    s["n"] = 1
    s["keep"] = "x"
    with pytest.raises(RuntimeError, match="boom"), s.transaction() as t:
        t["n"] = t["n"] + 1
        t["added"] = True
        del t["keep"]
        t.clear()
        assert len(t) == 0  # the transaction sees its own writes
        raise RuntimeError("boom")
    assert dict(s) == {"n": 1, "keep": "x"}

    # An invalid value aborts the whole transaction too, not just that write.
    with pytest.raises(StateError), s.transaction() as t:
        t["n"] = 5
        t["bad"] = {1, 2}
    assert s["n"] == 1 and "bad" not in s

    # update() is all-or-nothing.
    with pytest.raises(StateError):
        s.update({"a": 1, "b": object()})
    assert "a" not in s

    # Storage is still fully usable afterwards, and commits work.
    with s.transaction() as t:
        t["n"] = t["n"] + 10
    storage.close()
    with Storage(db) as again:
        assert dict(again.state("m")) == {"n": 11, "keep": "x"}


def test_nested_transactions_use_savepoints(storage: Storage) -> None:
    a, b = storage.state("a"), storage.state("b")
    with a.transaction():
        a["x"] = 1
        with pytest.raises(ValueError), b.transaction():
            b["y"] = 1
            raise ValueError
        with b.transaction():
            b["z"] = 2
        a["w"] = 3
    assert dict(a) == {"x": 1, "w": 3} and dict(b) == {"z": 2}


def test_closed_storage_raises_state_error(db: Path) -> None:
    s = Storage(db)
    m = s.state("m")
    with m.transaction(), pytest.raises(StateError, match="inside"):
        s.close()
    s.close()
    s.close()  # idempotent
    with pytest.raises(StateError, match="closed"):
        m["x"] = 1
    with pytest.raises(StateError, match="closed"):
        s.state("m")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.text(), value=json_values)
def test_property_any_json_value_round_trips(storage: Storage, key: str, value: object) -> None:
    s = storage.state("prop")
    s[key] = value
    assert s[key] == value
    assert key in s


# -- crash durability ------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bot.storage import Storage

    state = Storage(Path(sys.argv[1])).state(sys.argv[2])
    i = 0
    while True:
        state[f"k{i}"] = {"i": i, "pad": "x" * (i % 50)}
        sys.stdout.write(f"k{i}\\n")  # acknowledgement: the write has returned
        sys.stdout.flush()
        i += 1
    """
)


def _expected(i: int) -> dict[str, object]:
    return {"i": i, "pad": "x" * (i % 50)}


def _pump(stream, q: queue.Queue[str | None]) -> None:
    for line in stream:
        q.put(line)
    q.put(None)


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "crash.sqlite3"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    rng = random.Random()
    for iteration in range(10):
        module = f"crash{iteration}"  # same file every time: recovery after repeated kills
        target = rng.randint(1, 60)
        acked: list[str] = []
        with subprocess.Popen(
            [sys.executable, str(script), str(db), module],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ) as child:
            q: queue.Queue[str | None] = queue.Queue()
            pump = threading.Thread(target=_pump, args=(child.stdout, q), daemon=True)
            pump.start()
            deadline = time.monotonic() + 10
            try:
                while len(acked) < target:
                    line = q.get(timeout=max(0.0, deadline - time.monotonic()))
                    if line is None:
                        pytest.fail(f"child exited early: {child.stderr.read()}")  # type: ignore[union-attr]
                    if line.endswith("\n"):  # a torn line is not an acknowledgement
                        acked.append(line.strip())
            except queue.Empty:
                pytest.fail(f"only {len(acked)}/{target} acknowledgements before the deadline")
            finally:
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=10)
                pump.join(timeout=10)
        assert child.returncode == -signal.SIGKILL

        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
        with Storage(db) as s:
            state = dict(s.state(module))
        assert acked == [f"k{i}" for i in range(len(acked))]
        for i, key in enumerate(acked):
            assert state.get(key) == _expected(i), (iteration, key)
        # The child may have committed more writes than we read acknowledgements for; those
        # must be intact too, and the keys must be a gap-free prefix k0 .. k{n-1}.
        assert sorted(state) == sorted(f"k{i}" for i in range(len(state)))
        assert all(state[f"k{i}"] == _expected(i) for i in range(len(state)))


def test_in_memory_storage_has_the_same_api(tmp_path: Path) -> None:
    with Storage(":memory:") as storage:
        state = storage.state("m")
        with state.transaction() as s:
            s["n"] = s.get("n", 0) + 1
        assert dict(state.items()) == {"n": 1}
    assert not (tmp_path / ":memory:").exists()


def test_items_is_one_consistent_read_while_others_delete(tmp_path: Path) -> None:
    with Storage(tmp_path / "s.db") as storage:
        state = storage.state("m")
        for i in range(200):
            state[f"k{i}"] = i
        stop = threading.Event()

        def churn() -> None:
            while not stop.is_set():
                for i in range(200):
                    state.pop(f"k{i}", None)
                    state[f"k{i}"] = i

        thread = threading.Thread(target=churn)
        thread.start()
        try:
            for _ in range(50):
                snapshot = dict(state.items())  # the mixin version raises KeyError here
                assert all(snapshot[k] == int(k[1:]) for k in snapshot)
                assert list(state.values()) is not None
        finally:
            stop.set()
            thread.join()
