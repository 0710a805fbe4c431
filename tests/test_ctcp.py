"""CTCP answers and the lines the bot sends for actions and notices (no server)."""

from __future__ import annotations

import re

import pytest

from bot.config import CtcpConfig
from bot.ctcp import CtcpAnswers
from bot.outbox import Outbox


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_each_query_has_its_answer(clock: Clock) -> None:
    answers = CtcpAnswers(clock, wall_clock=lambda: 0.0)
    config = CtcpConfig(version="testbot 1.0", source="https://example.org/bot")
    asked = {}
    for n, query in enumerate(["VERSION", "ping", "TIME", "CLIENTINFO", "SOURCE"]):
        answer = answers.answer(config, f"user{n}@host", query, "12345")
        assert answer is not None, query
        asked[answer.query] = answer.text
    # the bot's local time, with its offset (this machine's time zone may be any)
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", asked.pop("TIME"))
    assert asked == {
        "VERSION": "testbot 1.0",
        "PING": "12345",
        "CLIENTINFO": "ACTION CLIENTINFO PING SOURCE TIME VERSION",
        "SOURCE": "https://example.org/bot",
    }


def test_unknown_queries_and_unset_source_get_nothing(clock: Clock) -> None:
    answers, config = CtcpAnswers(clock), CtcpConfig()
    assert answers.answer(config, "a@h", "DCC", "SEND x") is None
    assert answers.answer(config, "b@h", "SOURCE", "") is None
    assert answers.answer(config, "c@h", "CLIENTINFO", "").text == (  # type: ignore[union-attr]
        "ACTION CLIENTINFO PING TIME VERSION"
    )
    version = answers.answer(config, "d@h", "VERSION", "")
    assert version is not None and version.text.startswith("reloadbot ")
    assert CtcpAnswers(clock).answer(CtcpConfig(enabled=False), "e@h", "VERSION", "") is None


def test_one_answer_per_user_every_2_s_and_10_a_minute_in_all(clock: Clock) -> None:
    answers, config = CtcpAnswers(clock), CtcpConfig()
    assert answers.answer(config, "a@h", "PING", "1") is not None
    assert answers.answer(config, "a@h", "PING", "2") is None
    clock.now += 2.0
    assert answers.answer(config, "a@h", "PING", "3") is not None
    answered = [answers.answer(config, f"u{n}@h", "PING", "x") for n in range(20)]
    assert sum(a is not None for a in answered) == 8  # 10 a minute, 2 already used
    clock.now += 60.0
    assert answers.answer(config, "z@h", "PING", "x") is not None


def test_an_action_is_framed_and_split_to_fit() -> None:
    outbox = Outbox(source_length=lambda: 40)
    lines = [o.raw for o in outbox.lines("#c", "waves " + "x" * 600 + "\x01evil", ctcp="ACTION")]
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("PRIVMSG #c :\x01ACTION ") and line.endswith("\x01")
        assert line.count("\x01") == 2  # nothing in the text ends the frame early
        assert len(f":{'x' * 40} {line}\r\n".encode()) <= 512
    notice = [o.raw for o in outbox.lines("bob", "\x01VERSION\x01 hi", "NOTICE", ctcp="VERSION")]
    assert notice == ["NOTICE bob :\x01VERSION VERSION hi\x01"]
