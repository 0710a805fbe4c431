"""commands/echo.py: say it back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.testing import LoadCommand

COMMANDS = Path(__file__).resolve().parents[1] / "commands"


def test_echo_says_it_back_where_it_was_said(load_command: LoadCommand) -> None:
    bot = load_command(COMMANDS / "echo.py")
    assert bot.say("!echo hello there") == ["hello there"]
    assert bot.say("!echo in private", channel=None) == ["in private"]
    assert bot.sent[-1].target == "alice"


def test_echo_without_text_is_a_usage_error(load_command: LoadCommand) -> None:
    bot = load_command(COMMANDS / "echo.py")
    assert bot.say("!echo") == ["usage: echo TEXT"]
