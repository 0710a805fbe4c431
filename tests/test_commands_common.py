"""commands/_common.py: helpers shared by the standard modules."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.loader import Loader
from bot.storage import Storage

COMMANDS = Path(__file__).resolve().parents[1] / "commands"


def _load_helper(name: str):  # type: ignore[no-untyped-def]
    """A fresh execution of ``commands/<name>.py``, as the bot's loader runs it."""
    loader = Loader(COMMANDS, f"cmdtest_{uuid.uuid4().hex}")
    source = loader.source(name)
    assert source is not None, f"no commands/{name}.py"
    with loader.transaction({}) as txn:
        modules = txn.execute([source], {name})
        txn.commit()
    return modules[name].module


common = _load_helper("_common")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("5m", 300), ("2h", 7200), ("1d30m", 88200), ("1w", 604800), ("1H5M", 3900)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert common.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "m", "5x", "1h 5m", "5m5m", "-5m", "1.5h", "s10"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        common.parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.6, "1m"), (61, "1m 1s"), (3600, "1h"), (90061, "1d 1h"), (-5, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert common.format_duration(seconds) == text


@given(st.integers(1, 10**7))
def test_format_then_parse_roughly_round_trips(seconds: int) -> None:
    text = common.format_duration(seconds).replace(" ", "")
    assert 0 <= seconds - common.parse_duration(text) < 3600


def test_ago(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_700_000_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    assert common.ago(now) == "just now"
    assert common.ago(now - 90) == "1m 30s ago"


def test_irc_lower_and_nicks() -> None:
    assert common.irc_lower("Bob[Away]\\~") == "bob{away}|^"
    assert common.same_nick("FOO|x", "foo|X")
    assert common.is_nick("a_b-c[1]")
    assert not common.is_nick("#chan")
    assert not common.is_nick("1abc")
    assert not common.is_nick("x" * 33)


def test_snapshot_is_a_copy_read_in_one_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = Storage(":memory:")
    state = storage.state("x")
    state["a"] = 1
    opened = []
    real = type(state).transaction
    monkeypatch.setattr(type(state), "transaction", lambda self: opened.append(1) or real(self))
    copy = common.snapshot(state)
    assert copy == {"a": 1} and opened == [1]
    copy["b"] = 2
    assert "b" not in state
    storage.close()


def test_clip() -> None:
    assert common.clip("abc", 3) == "abc"
    assert common.clip("abcd", 3) == "ab…"
