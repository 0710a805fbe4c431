"""``python -m bot new-command NAME``: the generated module and test follow the rules and pass."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.config import load_config
from bot.templates import RESERVED, ScaffoldError, check_name, scaffold
from bot.testing import CommandBot

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=60
    )


def run_pytest(project: Path, test: Path) -> subprocess.CompletedProcess[str]:
    """The generated test, as a user runs it: pytest with the plugin (and nothing else)."""
    env = {**ENV, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "bot.testing", "-q", "-p", "no:cacheprovider", test],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_new_command_without_a_config(tmp_path: Path) -> None:
    result = run("-m", "bot", "new-command", "roll", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    module, test = tmp_path / "commands" / "roll.py", tmp_path / "tests" / "test_roll.py"
    assert result.stdout.startswith("wrote commands/roll.py and tests/test_roll.py\n")
    assert "--console` (say !roll hello)" in result.stdout
    assert "python -m bot" not in result.stdout  # works only in an activated venv

    source = module.read_text()
    assert source.startswith('"""roll: ')
    assert "from __future__ import annotations\n" in source
    assert "def roll(ctx: Context, args: str) -> str:\n" in source
    assert '    """roll TEXT -- ' in source

    tested = run_pytest(tmp_path, test)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "3 passed" in tested.stdout


def test_generated_files_are_lint_clean_and_typed(tmp_path: Path) -> None:
    made = scaffold("a_rather_long_command_name_here", root=tmp_path)
    files = [str(made.module), str(made.test)]
    config = str(REPO / "pyproject.toml")
    for check in (["check"], ["format", "--check"]):
        lint = run("-m", "ruff", *check, "--config", config, *files, cwd=tmp_path)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    typed = run("-m", "mypy", "--strict", "--no-incremental", str(made.module), cwd=REPO)
    assert typed.returncode == 0, typed.stdout + typed.stderr


def test_new_command_follows_the_config(tmp_path: Path) -> None:
    config = tmp_path / "bot" / "config.yaml"
    config.parent.mkdir()
    config.write_text(
        textwrap.dedent(
            """\
            server: {host: 127.0.0.1}
            nick: robot
            channels: ["#dev"]
            prefix: "."
            admins: []
            commands_dir: plugins/chat
            state_db: null
            """
        )
    )
    result = run("-m", "bot", "new-command", "greet", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    module = tmp_path / "bot" / "plugins" / "chat" / "greet.py"
    test = tmp_path / "bot" / "tests" / "test_greet.py"
    assert module.is_file() and test.is_file()
    assert 'raise CommandError("usage: .greet TEXT")' in module.read_text()
    assert "Path(__file__).resolve().parents[1] / " in test.read_text()

    with CommandBot.load(module, prefix=".") as bot:  # the module, loaded as the bot would
        assert bot.say(".greet hi", nick="zoe") == ["zoe: hi"]
    tested = run_pytest(tmp_path, test)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    test = tmp_path / "tests" / "test_roll.py"
    test.parent.mkdir()
    test.write_text("# mine\n")
    result = run("-m", "bot", "new-command", "roll", cwd=tmp_path)
    assert result.returncode == 1
    assert "not overwriting" in result.stderr and "test_roll.py" in result.stderr
    assert test.read_text() == "# mine\n"
    assert not (tmp_path / "commands" / "roll.py").exists()  # nothing half-written

    made = scaffold("dice", root=tmp_path)
    with pytest.raises(ScaffoldError, match="not overwriting"):
        scaffold("dice", root=tmp_path)
    assert made.module.is_file()


@pytest.mark.parametrize(
    "name",
    ["Roll", "1roll", "my-roll", "_roll", "roll.py", "", "a" * 33, "class", "import", *RESERVED],
)
def test_refuses_bad_names(name: str) -> None:
    with pytest.raises(ScaffoldError):
        check_name(name)


@pytest.mark.parametrize("name", ["roll", "r2d2", "long_name_" + "x" * 22, "match"])
def test_accepts_good_names(name: str) -> None:
    assert check_name(name) == name


def test_bad_name_from_the_command_line(tmp_path: Path) -> None:
    result = run("-m", "bot", "new-command", "Bad-Name", cwd=tmp_path)
    assert result.returncode == 1
    assert "new-command: 'Bad-Name' is not a usable name" in result.stderr
    assert not list(tmp_path.iterdir())


def test_uses_the_config_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "server: {host: 127.0.0.1}\nnick: b\nchannels: []\nprefix: '!'\nadmins: []\n"
        "commands_dir: cmds\n"
    )
    assert load_config(tmp_path / "config.yaml").commands_dir == tmp_path / "cmds"
    result = run("-m", "bot", "new-command", "hello", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cmds" / "hello.py").is_file()


def shipped(tmp_path: Path) -> Path:
    """A project with the shipped command modules."""
    shutil.copytree(REPO / "commands", tmp_path / "commands")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "owner"),
    [("roll", "commands/dice.py:52"), ("math", "commands/calc.py:120"), ("pick", "choose.py")],
)
def test_refuses_a_command_name_a_module_has_already(tmp_path: Path, name: str, owner: str) -> None:
    result = run("-m", "bot", "new-command", name, cwd=shipped(tmp_path))
    assert result.returncode == 1
    assert f"new-command: {name!r} is already a command of " in result.stderr
    assert owner in result.stderr
    assert not (tmp_path / "tests").exists()  # nothing written


def test_refuses_the_name_of_a_module_file(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="'echo' is a module already"):
        scaffold("echo", root=shipped(tmp_path))


CLOCK = '''\
from bot import api


@api.command(name="now", aliases=("when",))
def tell_time(ctx, args):
    """now -- the time"""
'''


def test_a_name_given_with_name_or_aliases(tmp_path: Path) -> None:
    commands = tmp_path / "commands"
    commands.mkdir()
    (commands / "clock.py").write_text(CLOCK)
    for taken in ("now", "when"):
        with pytest.raises(ScaffoldError, match=f"'{taken}' is already a command of"):
            scaffold(taken, root=tmp_path)
    assert scaffold("tell_time", root=tmp_path).module.is_file()  # the function's name is free


def test_the_guides_first_example_name_is_free(tmp_path: Path) -> None:
    guide = (REPO / "docs" / "writing-commands.md").read_text()
    names = re.findall(r"reloadbot new-command (\w+)", guide)
    assert names, "the guide's first example runs new-command"
    result = run("-m", "bot", "new-command", names[0], cwd=shipped(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"# writes commands/{names[0]}.py and tests/test_{names[0]}.py" in guide
