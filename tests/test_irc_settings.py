"""Module settings through IRC (ngircd): valid, invalid, a missing secret, a live change,
and a secret that never shows up in a reply or a log line."""

from __future__ import annotations

import logging
import uuid

import pytest

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-" + uuid.uuid4().hex

WEATHER = '''
from dataclasses import dataclass
from typing import Literal

from bot.api import Secret, command


@dataclass(frozen=True)
class Settings:
    api_key: Secret
    units: Literal["metric", "imperial"] = "metric"


@command
def weather(ctx, args):
    """weather -- its settings"""
    return f"{ctx.settings.units} {ctx.settings}"
'''


def test_settings_through_irc(
    running_bot, irc_client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("IRC_WEATHER_KEY", SECRET)
    good = {"weather": {"api_key": "${IRC_WEATHER_KEY}"}}
    bot = running_bot({"weather.py": WEATHER}, modules=good, notify=True, watch=True)
    boss = irc_client("boss")
    boss.join(bot.channel)
    assert bot.ask(boss, "!weather").startswith("metric Settings(api_key=Secret('***')")

    mark = boss.mark()  # a live change: applied without a reload
    bot.write_config(modules={"weather": {"api_key": "${IRC_WEATHER_KEY}", "units": "imperial"}})
    assert bot.wait_reply(boss, mark, r"^config.yaml: ") == "config.yaml: applied modules"
    assert bot.ask(boss, "!weather").startswith("imperial ")

    mark = boss.mark()  # a wrong change is refused, and said where
    bot.write_config(modules={"weather": {"api_key": "${IRC_WEATHER_KEY}", "units": "kelvin"}})
    refusal = bot.wait_reply(boss, mark, r"^config.yaml: ")
    assert refusal.startswith("config.yaml: not applied, old config kept: config.yaml:")
    assert "modules.weather.units: expected one of metric, imperial, got 'kelvin'" in refusal
    assert bot.ask(boss, "!weather").startswith("imperial ")

    mark = boss.mark()  # a missing secret is refused too, by name
    bot.write_config(modules={"weather": {"api_key": "${NO_SUCH_KEY_IN_ENV}"}})
    refusal = bot.wait_reply(boss, mark, r"^config.yaml: ")
    assert "the environment variable NO_SUCH_KEY_IN_ENV is not set" in refusal

    assert not [line for line in boss.lines_since(0) if SECRET in line]
    assert SECRET not in caplog.text
