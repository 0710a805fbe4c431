"""docs/writing-commands.md: its example files load, pass their tests, lint clean, and its
console session replays exactly."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_config
from bot.console import Console
from bot.testing import CommandBot

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "writing-commands.md"
FENCE = re.compile(r"^```(\S*)[ \t]*([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PROMPT = re.compile(r"^\S+ (?:\(admin\) )?<[^>]+> (.*)$")


def blocks(language: str) -> list[tuple[str, str]]:
    """(info, text) of the page's fenced blocks in ``language``."""
    return [
        (info, text) for lang, info, text in FENCE.findall(PAGE.read_text()) if lang == language
    ]


def example_files() -> dict[str, str]:
    """The ``python file=PATH`` blocks: the page's example files, by path."""
    files = {}
    for info, text in blocks("python"):
        if info.startswith("file="):
            files[info.removeprefix("file=")] = text
    return files


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, text in example_files().items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "config.yaml").write_text(
        'server: {host: 127.0.0.1}\nnick: reloadbot\nchannels: ["#bot"]\nprefix: "!"\n'
        "admins: []\ncommands_dir: commands\nstate_db: null\n"
    )
    return tmp_path


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_page_has_examples() -> None:
    files = example_files()
    assert {"commands/greet.py", "commands/_words.py", "tests/test_counter.py"} <= set(files)
    assert len(blocks("text")) == 1


def test_every_example_module_loads(project: Path) -> None:
    modules = sorted((project / "commands").glob("[!_]*.py"))
    assert modules
    for module in modules:
        with CommandBot.load(module) as bot:
            commands = bot.app.registry.modules[module.stem].commands
            assert all(" -- " in spec.summary for spec in commands), module.name


def test_the_examples_of_the_first_section_do_what_the_text_says(project: Path) -> None:
    with CommandBot.load(project / "commands" / "greet.py") as bot:
        assert bot.say("!greet") == ["hello, alice!"]
        assert bot.say("!hi bob") == ["hello, bob!"]
    with CommandBot.load(project / "commands" / "shout.py") as bot:
        assert bot.say("!shout hey") == ["HEY!"]
        assert bot.say("!shout") == ["usage: shout TEXT"]


def test_the_example_tests_pass(project: Path) -> None:
    result = run(
        "-m",
        "pytest",
        "-p",
        "bot.testing",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests",
        cwd=project,
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b4 passed\b", result.stdout), result.stdout


def test_the_examples_are_lint_clean_and_typed(project: Path) -> None:
    files = [str(project / name) for name in example_files()]
    config = str(REPO / "pyproject.toml")
    for check in (["check"], ["format", "--check"]):
        lint = run("-m", "ruff", *check, "--config", config, *files, cwd=project)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    # commands/ as a package (no __init__.py needed), so `from ._words import loud` resolves
    modules = [name for name in example_files() if name.startswith("commands/")]
    mypy = ["-m", "mypy", "--strict", "--no-incremental", "--explicit-package-bases"]
    typed = run(*mypy, *modules, cwd=project)
    assert typed.returncode == 0, typed.stdout + typed.stderr


def test_the_console_session_replays(project: Path) -> None:
    [(_, session)] = blocks("text")
    expected = session.splitlines()
    typed = [m[1] for line in expected if (m := PROMPT.match(line))]
    out = io.StringIO()
    console = Console(
        load_config(project / "config.yaml"),
        stdin=io.StringIO("".join(f"{line}\n" for line in typed)),
        stdout=out,
        interactive=False,
        nick="alice",
    )
    assert console.run() == 0
    shown = out.getvalue().splitlines()
    banner = [line for line in shown if line.startswith("-- reloadbot console")]
    assert banner
    assert shown[3:] == expected  # after the three banner lines
