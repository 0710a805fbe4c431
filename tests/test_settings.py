"""Module settings (issue 13, first part): a module's Settings from config.yaml's modules:.

A real App on real files (config.yaml included, so ``rehash`` re-reads it); no
IRC server. Secrets come from the environment and must never be printed.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import NullTransport, close_app, say

from bot.app import App
from bot.config import load_config

REPO = Path(__file__).resolve().parents[1]
SECRET = "hunter2-" + uuid.uuid4().hex  # must never show up anywhere

WEATHER = '''
from dataclasses import dataclass
from typing import Literal

from bot.api import Secret, command


@dataclass(frozen=True)
class Settings:
    api_key: Secret
    units: Literal["metric", "imperial"] = "metric"
    timeout: float = 5.0


@command
def weather(ctx, args):
    """weather -- shows its settings"""
    key = ctx.settings.api_key
    return f"{ctx.settings.units} {ctx.settings.timeout} key={key} len={len(key.reveal())}"


def setup(bot):
    bot.state["units at setup"] = bot.settings.units
'''


class Project:
    """A folder with config.yaml and commands/, and the App built on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "commands").mkdir()
        self.raw: dict[str, Any] = {
            "server": {"host": "127.0.0.1"},
            "nick": "setbot",
            "channels": ["#c"],
            "prefix": "!",
            "admins": ["boss!*@trusted.example"],
            "commands_dir": "commands",
            "state_db": None,
            "rate_limit": {"burst": 10_000, "per_second": 100_000},
        }
        self.app: App | None = None

    def write(self, name: str, source: str) -> None:
        (self.path / "commands" / f"{name}.py").write_text(textwrap.dedent(source).lstrip("\n"))

    def config(self, **changes: Any) -> None:
        self.raw.update(changes)
        (self.path / "config.yaml").write_text(yaml.safe_dump(self.raw, sort_keys=False))

    def start(self) -> App:
        config = load_config(self.path / "config.yaml")
        namespace = f"set_{uuid.uuid4().hex[:8]}"
        self.app = App(config, namespace=namespace, transport=NullTransport)
        return self.app


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.setenv("WEATHER_KEY", SECRET)
    made = Project(tmp_path)
    made.write("weather", WEATHER)
    yield made
    if made.app is not None:
        close_app(made.app)


def line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


def test_a_module_reads_its_settings(project: Project) -> None:
    project.config(modules={"weather": {"api_key": "${WEATHER_KEY}", "units": "imperial"}})
    app = project.start()
    assert app.load_all().ok
    answer = say(app, "!weather")
    assert answer == [f"imperial 5.0 key=Secret('***') len={len(SECRET)}"]
    assert app.state_for("weather")["units at setup"] == "imperial"  # bot.settings in setup


def test_every_wrong_value_is_named_with_its_line_and_the_settings_line(
    project: Project,
) -> None:
    project.config(
        modules={"weather": {"api_key": "${WEATHER_KEY}", "units": "kelvin", "colour": "red"}}
    )
    app = project.start()
    report = app.load_all()
    config_text = (project.path / "config.yaml").read_text()
    declared = line_of(textwrap.dedent(WEATHER).lstrip("\n"), "class Settings")
    where = f"(Settings in commands/weather.py:{declared})"
    assert sorted(report.errors) == sorted(
        [
            f"config.yaml:{line_of(config_text, 'colour')}: modules.weather.colour: unknown"
            f" setting (its settings: api_key, units, timeout) {where}",
            f"config.yaml:{line_of(config_text, 'units')}: modules.weather.units: expected one"
            f" of metric, imperial, got 'kelvin' {where}",
        ]
    )
    assert "weather" not in app.registry.modules


def test_a_missing_secret_is_a_clear_error(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEATHER_KEY")
    project.config(modules={"weather": {"api_key": "${WEATHER_KEY}"}})
    app = project.start()
    (error,) = app.load_all().errors
    assert "modules.weather.api_key: the environment variable WEATHER_KEY is not set" in error


def test_a_secret_can_come_from_a_file(project: Project) -> None:
    secret_file = project.path / "weather.key"
    secret_file.write_text(SECRET + "\n")
    project.config(modules={"weather": {"api_key": f"${{file:{secret_file}}}"}})
    app = project.start()
    assert app.load_all().ok
    assert say(app, "!weather") == [f"metric 5.0 key=Secret('***') len={len(SECRET)}"]


def test_a_change_applies_live_and_a_wrong_one_is_refused(project: Project) -> None:
    project.config(modules={"weather": {"api_key": "${WEATHER_KEY}"}})
    app = project.start()
    assert app.load_all().ok
    module = app.registry.modules["weather"].module

    project.config(modules={"weather": {"api_key": "${WEATHER_KEY}", "units": "imperial"}})
    assert app.rehash() == "applied modules"
    assert say(app, "!weather")[0].startswith("imperial")
    assert app.registry.modules["weather"].module is module  # no reload of its code

    project.config(modules={"weather": {"api_key": "${WEATHER_KEY}", "timeout": "soon"}})
    refusal = app.rehash()
    assert refusal.startswith("not applied, old config kept: config.yaml:")
    assert "modules.weather.timeout: expected a number, got 'soon'" in refusal
    assert say(app, "!weather")[0].startswith("imperial 5.0")  # the last valid settings


def test_a_section_for_a_module_without_settings_is_an_error(project: Project) -> None:
    project.write(
        "echo",
        "from bot.api import command\n\n@command\ndef echo(ctx, args):\n"
        '    """echo -- echo"""\n    return args\n',
    )
    project.config(modules={"echo": {"loud": True}, "weather": {"api_key": "x"}})
    app = project.start()
    (error,) = app.load_all().errors
    assert error.endswith(
        "modules.echo: commands/echo.py declares no Settings (a dataclass named Settings)"
        " to read it"
    )


def test_a_secret_is_never_printed(project: Project, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    project.write(
        "leaky",
        WEATHER.replace("def weather", "def leaky").replace(
            '"""weather -- shows its settings"""',
            '"""leaky -- fails with its settings"""\n    raise ValueError(repr(ctx.settings))',
        ),
    )
    project.config(
        modules={
            "weather": {"api_key": "${WEATHER_KEY}"},
            "leaky": {"api_key": "${WEATHER_KEY}", "timeout": "${WEATHER_KEY}"},  # not a number
        }
    )
    app = project.start()
    report = app.load_all()
    assert report.errors  # leaky's timeout is wrong
    project.config(
        modules={"weather": {"api_key": "${WEATHER_KEY}"}, "leaky": {"api_key": "${WEATHER_KEY}"}}
    )
    app.rehash()
    assert app.load("leaky").ok
    replies = say(app, "!weather") + say(app, "!leaky") + say(app, "!modules")
    assert not [r for r in replies if SECRET in r], replies
    assert SECRET not in caplog.text
    assert "modules.leaky.timeout: expected a number, got a value not shown" in report.errors[0]


def test_check_never_prints_a_secret(project: Project) -> None:
    project.config(modules={"weather": {"api_key": "${WEATHER_KEY}", "units": "kelvin"}})
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(project.path / "config.yaml"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "WEATHER_KEY": SECRET},
    )
    assert result.returncode == 1
    assert "modules.weather.units: expected one of metric, imperial" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_an_isolated_module_reads_its_settings_and_follows_changes(project: Project) -> None:
    project.config(modules={"weather": {"api_key": "${WEATHER_KEY}"}}, isolate=["weather"])
    app = project.start()
    assert app.load_all().ok, app.load_all().errors
    assert say(app, "!weather") == [f"metric 5.0 key=Secret('***') len={len(SECRET)}"]
    project.config(modules={"weather": {"api_key": "${WEATHER_KEY}", "units": "imperial"}})
    assert app.rehash() == "applied modules"
    assert say(app, "!weather")[0].startswith("imperial")
    project.config(modules={"weather": {"api_key": "${WEATHER_KEY}", "units": "kelvin"}})
    assert "expected one of metric, imperial" in app.rehash()
    assert say(app, "!weather")[0].startswith("imperial")


def test_the_pytest_plugin_passes_settings(project: Project, load_command: Any) -> None:
    bot = load_command(project.path / "commands" / "weather.py", settings={"api_key": "k"})
    assert bot.say("!weather") == ["metric 5.0 key=Secret('***') len=1"]
