"""The reply queue: nothing a user types becomes a raw IRC line; long text is split, not cut."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.outbox import Outbox, OutboxError, TokenBucket, sanitize_lines, split_utf8


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drain(outbox: Outbox) -> list[str]:
    """The raw lines allowed out now, as the socket gets them."""
    lines, _ = outbox.take()
    return [line.raw for line in lines]


@pytest.mark.parametrize("evil", ["a\r\nQUIT :x", "a\rQUIT :x", "a\nQUIT :x", "a\x00QUIT :x"])
def test_line_breaks_and_nul_never_reach_the_wire(evil: str) -> None:
    outbox = Outbox(rate=1000, burst=1000)
    outbox.put("#c", evil)
    lines = drain(outbox)
    assert lines == ["PRIVMSG #c :a", "PRIVMSG #c :QUIT :x"]
    assert all("\r" not in line and "\n" not in line and "\0" not in line for line in lines)


@pytest.mark.parametrize("target", ["#c d", "#c,#d", ":x", "", "a\rb", "#c\x00"])
def test_bad_targets_are_refused(target: str) -> None:
    with pytest.raises(OutboxError):
        Outbox().put(target, "hi")


def test_long_text_is_split_to_fit_with_the_servers_prefix() -> None:
    outbox = Outbox(rate=1000, burst=1000, source_length=lambda: 60)
    text = " ".join(f"word{i}é" for i in range(400))
    outbox.put("#chan", text)
    lines = drain(outbox)
    assert len(lines) > 1
    for line in lines:
        relayed = f":{'x' * 60} {line}\r\n"
        assert len(relayed.encode()) <= 512
    assert " ".join(line.split(" :", 1)[1] for line in lines) == text


@given(st.text(min_size=1, max_size=3000), st.integers(min_value=4, max_value=500))
def test_split_utf8_keeps_every_character_and_fits(text: str, budget: int) -> None:
    pieces = split_utf8(text, budget)
    assert all(len(p.encode()) <= budget for p in pieces)
    # Only the spaces we split on may disappear.
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")


@given(st.text())
def test_sanitize_never_leaves_line_breaks(text: str) -> None:
    for line in sanitize_lines(text):
        assert not set(line) & {"\r", "\n", "\0"}


def test_token_bucket_releases_burst_then_rate() -> None:
    clock = FakeClock()
    outbox = Outbox(rate=2, burst=3, clock=clock)
    for i in range(10):
        outbox.put("#c", f"m{i}")
    lines, delay = outbox.take()
    assert [line.raw for line in lines] == ["PRIVMSG #c :m0", "PRIVMSG #c :m1", "PRIVMSG #c :m2"]
    assert delay == pytest.approx(0.5)
    assert outbox.take()[0] == []
    clock.now = 1.0
    assert drain(outbox) == ["PRIVMSG #c :m3", "PRIVMSG #c :m4"]
    assert outbox.pending() == 5


def test_targets_take_turns_so_one_flood_cannot_starve_others() -> None:
    outbox = Outbox(rate=1000, burst=4)
    for i in range(10):
        outbox.put("#flood", f"f{i}")
    outbox.put("#quiet", "hello")
    lines = drain(outbox)
    assert "PRIVMSG #quiet :hello" in lines[:2]


def test_bucket_reconfigure_caps_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=10, clock=clock)
    bucket.configure(rate=1, burst=2)
    assert [bucket.take() for _ in range(3)] == [True, True, False]


# -- fairness: caps per target, the admins' lane, flushing ---------------------------


def test_each_targets_queue_is_capped_and_the_rest_counted() -> None:
    outbox = Outbox(rate=1000, burst=1000, max_queued=3)
    assert outbox.put("#c", "\n".join(f"l{i}" for i in range(5))) == 3
    assert outbox.put("#c", "more") == 0
    assert outbox.put("bob", "own queue") == 1
    assert outbox.dropped == 3
    assert drain(outbox) == [
        "PRIVMSG #c :l0",
        "PRIVMSG bob :own queue",
        "PRIVMSG #c :l1",
        "PRIVMSG #c :l2",
    ]


def test_urgent_lines_go_out_before_every_other_target() -> None:
    clock = FakeClock()
    outbox = Outbox(rate=1, burst=1, clock=clock)
    for n in range(20):
        outbox.put(f"user{n}", "you are refused")
    outbox.put("#c", "the admin's answer", urgent=True)
    assert drain(outbox) == ["PRIVMSG #c :the admin's answer"]
    clock.now += 1
    assert drain(outbox) == ["PRIVMSG user0 :you are refused"]


def test_drop_empties_one_target_or_all() -> None:
    outbox = Outbox(rate=1000, burst=1000)
    outbox.put("#Chan", "a\nb")
    outbox.put("#chan", "c", urgent=True)
    outbox.put("bob", "d")
    assert outbox.drop("#CHAN") == 3  # both spellings of it, and its urgent line
    assert outbox.pending() == 1
    assert outbox.clear() == 1 and drain(outbox) == []
