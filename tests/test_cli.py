"""`python -m bot --check`: a pre-deploy check that names every problem and sets the exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
server: {host: 127.0.0.1, port: 6667}
nick: bot
channels: ["#bot"]
prefix: "!"
admins: ["boss!*@trusted.example"]
commands_dir: commands
"""

GOOD = '''
from bot.api import command


@command
def hi(ctx, args):
    """hi -- say hi"""
    return "hi"
'''


def check(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(project / "config.yaml"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def project(tmp_path: Path, config: str = CONFIG, **files: str) -> Path:
    (tmp_path / "commands").mkdir()
    (tmp_path / "config.yaml").write_text(config)
    for name, source in files.items():
        (tmp_path / "commands" / f"{name}.py").write_text(source)
    return tmp_path


def test_a_good_project_passes_and_writes_nothing(tmp_path: Path) -> None:
    result = check(project(tmp_path, hi=GOOD))
    assert result.returncode == 0, result.stderr
    assert "config ok; 1 modules, 1 commands" in result.stderr
    assert not (tmp_path / "data").exists()


def test_every_broken_module_is_named_with_file_and_line(tmp_path: Path) -> None:
    result = check(
        project(tmp_path, hi=GOOD, bad="x = 1\ndef broken(:\n", worse="import nosuchmodule\n")
    )
    assert result.returncode == 1
    assert "commands/bad.py:2: SyntaxError" in result.stderr
    assert "commands/worse.py:1: ModuleNotFoundError" in result.stderr


def test_a_bad_config_names_the_key(tmp_path: Path) -> None:
    result = check(project(tmp_path, CONFIG.replace("port: 6667", "port: lots")))
    assert result.returncode == 1
    assert "config error: config.yaml:1: server.port: expected a whole number" in result.stderr


def test_a_base_exception_at_import_is_a_named_problem_not_a_traceback(tmp_path: Path) -> None:
    exits = "import sys\n\nraise KeyboardInterrupt('no')\n"
    base = "class Stop(BaseException):\n    pass\n\nraise Stop\n"
    result = check(project(tmp_path, hi=GOOD, exits=exits, base=base))
    assert result.returncode == 1
    assert "commands/exits.py:3: KeyboardInterrupt: no" in result.stderr
    assert "commands/base.py:4: Stop" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_files_that_cannot_load_are_listed(tmp_path: Path) -> None:
    result = check(project(tmp_path, **{"hi": GOOD, "my-cmd": GOOD}))
    assert (
        "commands/my-cmd.py: not loaded: module names are file stems made of letters,"
        " digits and '_', like 'dice' (rename it to my_cmd.py)"
    ) in result.stderr
