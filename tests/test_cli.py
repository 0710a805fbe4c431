"""`python -m bot --check`: a pre-deploy check that names every problem and sets the exit code."""

from __future__ import annotations

import functools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ircclient import IrcClient

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


def test_each_problem_is_printed_once_and_the_summary_matches_the_exit_status(
    tmp_path: Path,
) -> None:
    result = check(project(tmp_path, hi=GOOD, bad="x = 1\ndef broken(:\n"))
    assert result.returncode == 1
    assert result.stderr.count("SyntaxError") == 1, result.stderr
    assert "config ok" not in result.stderr
    assert result.stderr.splitlines()[-1] == "1 problem found"


def test_skipped_files_are_problems_too(tmp_path: Path) -> None:
    result = check(project(tmp_path, **{"hi": GOOD, "my-cmd": GOOD}))
    assert result.returncode == 1
    assert result.stderr.count("my-cmd.py") == 1, result.stderr
    assert result.stderr.splitlines()[-1] == "1 problem found"


def test_a_good_project_ends_with_the_ok_summary(tmp_path: Path) -> None:
    result = check(project(tmp_path, hi=GOOD))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "config ok; 1 modules, 1 commands"


SHIPPED_ROLL = (REPO / "commands" / "dice.py").read_text()
NEW_ROLL = '''
from bot.api import command


@command
def roll(ctx, args):
    """roll -- mine"""
    return "mine"
'''


@pytest.mark.parametrize("new", ["zroll", "aroll"])  # after, and before, dice in name order
def test_a_duplicate_command_name_blames_the_new_file(tmp_path: Path, new: str) -> None:
    """The shipped dice.py was there first (older); the new file is the one to blame."""
    root = project(tmp_path, dice=SHIPPED_ROLL)
    old = time.time() - 3600
    os.utime(root / "commands" / "dice.py", (old, old))
    (root / "commands" / f"{new}.py").write_text(NEW_ROLL)
    result = check(root)
    assert result.returncode == 1
    assert f"commands/{new}.py:5: command name 'roll' is already used by commands/dice.py" in (
        result.stderr
    )


def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fails: Exception) -> int:
    import bot.cli

    project(tmp_path, CONFIG + "state_db: null\n")

    def run(config: object, overlay: object = None) -> int:
        raise fails

    monkeypatch.setattr(bot.cli, "run", run)
    monkeypatch.setattr(bot.cli, "_leave_stuck_threads_behind", lambda: None)
    return bot.cli.main(["--config", str(tmp_path / "config.yaml")])


def test_a_locked_state_database_is_one_line_and_status_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.storage import StateLocked

    message = "data/state.sqlite3 is in use by another bot (PID 4242)"
    assert run_cli(monkeypatch, tmp_path, StateLocked(message)) == 2
    assert capsys.readouterr().err == message + "\n"


def test_a_corrupt_state_database_is_one_line_and_status_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.storage import StateCorrupt

    message = "data/state.sqlite3 is damaged: restore a backup"
    assert run_cli(monkeypatch, tmp_path, StateCorrupt(message)) == 1
    assert capsys.readouterr().err == message + "\n"


def env_without_venv() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PYTHONPATH": str(REPO)}


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="the tests do not run in a venv")
def test_hints_name_the_venvs_script_when_the_venv_is_not_activated(tmp_path: Path) -> None:
    run = functools.partial(
        subprocess.run, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    command = [sys.executable, "-m", "bot", "new-command", "hello"]
    result = run(command, env=env_without_venv())
    assert result.returncode == 0, result.stderr
    script = Path(sys.prefix) / "bin" / "reloadbot"
    shown = min(str(script), os.path.relpath(script, tmp_path), key=len)
    assert f"`{shown} --console`" in result.stdout
    assert "python -m bot" not in result.stdout

    activated = env_without_venv() | {"VIRTUAL_ENV": sys.prefix}
    result = run([*command[:-1], "hello2"], env=activated)
    assert result.returncode == 0, result.stderr
    assert "`reloadbot --console`" in result.stdout
    assert "`pytest tests/test_hello2.py`" in result.stdout


SYSTEM_PYTHON = "/usr/bin/python3"


def test_a_missing_dependency_is_one_line_that_says_how_to_install(tmp_path: Path) -> None:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"no {SYSTEM_PYTHON}")
    probe = subprocess.run([SYSTEM_PYTHON, "-s", "-c", "import irc"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"{SYSTEM_PYTHON} has the irc package")
    # -s, not -I: -I would ignore PYTHONPATH, and the checkout is found through it
    result = subprocess.run(
        [SYSTEM_PYTHON, "-s", "-m", "bot", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("reloadbot needs the package 'irc'")
    assert "pip install " in result.stderr


def test_the_demo_says_a_busy_port_tells_its_channel_about_reloads_and_stops_on_hangup(
    tmp_path: Path,
) -> None:
    demo_config = CONFIG.replace('["#bot"]', '["#demo"]') + "watch: true\nstate_db: null\n"
    root = project(tmp_path, demo_config, hi=GOOD)
    holder = socket.socket()
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 6667))
        holder.listen()
    except OSError:
        pass  # busy already: what the test needs
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(root / "config.yaml"), "--demo"],
        cwd=root,
        env=env_without_venv(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr or ()), daemon=True)
    reader.start()
    try:
        busy = re.compile(
            r"port 6667 is busy; the demo's server runs on 127\.0\.0\.1:(\d+) instead"
        )
        deadline = time.monotonic() + 30
        while not (said := [m for line in list(lines) if (m := busy.search(line))]):
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
            time.sleep(0.05)
        port = int(said[0][1])
        with IrcClient("127.0.0.1", port, "newcomer").connect() as client:
            client.join("#demo")
            while True:  # until the bot is in the channel
                since = client.mark()
                client.privmsg("#demo", "!hi")
                try:
                    client.wait_for(r"PRIVMSG #demo :hi$", timeout=3, since=since)
                    break
                except AssertionError:
                    assert time.monotonic() < deadline + 30, "".join(lines)
            since = client.mark()
            (root / "commands" / "added.py").write_text(GOOD.replace("hi", "added"))
            told = client.wait_for(r"PRIVMSG #demo :.*\badded\b", timeout=20, since=since)
            assert told.startswith(":bot!"), told  # the bot, not the server or a user
        process.send_signal(signal.SIGHUP)  # its terminal closed
        assert process.wait(timeout=30) == 0, "".join(lines)
        assert any("received SIGHUP; quitting" in line for line in lines), "".join(lines)
        with pytest.raises(OSError):  # and its ngircd went with it
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        holder.close()
        if process.poll() is None:  # SIGTERM first: the demo stops its ngircd on the way out
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(5)
        if process.stderr is not None:
            process.stderr.close()


RUN_WITHOUT_CONNECTING = """\
import logging, sys
import bot.cli

def run(config, overlay=None):
    logging.getLogger("bot.somewhere").warning("hello from the bot")
    return 0

bot.cli.run = run
bot.cli._leave_stuck_threads_behind = lambda: None
sys.exit(bot.cli.main(sys.argv[1:]))
"""


def start_without_connecting(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_CONNECTING, "--config", str(root / "config.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_the_configs_logging_is_applied(tmp_path: Path) -> None:
    log = tmp_path / "bot.log"
    logging_config = (
        "logging:\n"
        "  version: 1\n"
        "  formatters: {plain: {format: '%(levelname)s %(name)s %(message)s'}}\n"
        "  handlers:\n"
        f"    file: {{class: logging.FileHandler, filename: '{log}', formatter: plain}}\n"
        "  root: {handlers: [file], level: INFO}\n"
    )
    root = project(tmp_path, CONFIG + "state_db: null\n" + logging_config, hi=GOOD)
    result = start_without_connecting(root)
    assert result.returncode == 0, result.stderr
    assert "WARNING bot.somewhere hello from the bot" in log.read_text()


def test_an_unusable_logging_config_is_one_line_and_status_1(tmp_path: Path) -> None:
    logging_config = (
        "logging:\n"
        "  version: 1\n"
        "  handlers: {file: {class: logging.NoSuchHandler}}\n"
        "  root: {handlers: [file]}\n"
    )
    root = project(tmp_path, CONFIG + "state_db: null\n" + logging_config, hi=GOOD)
    result = start_without_connecting(root)
    assert result.returncode == 1
    assert result.stderr.startswith("config error: logging: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "hello from the bot" not in result.stderr


def test_a_bad_config_ends_with_the_problem_count(tmp_path: Path) -> None:
    bad = CONFIG.replace("port: 6667", "port: lots").replace("nick: bot\n", "")
    result = check(project(tmp_path, bad))
    assert result.returncode == 1
    assert "config ok" not in result.stderr
    assert result.stderr.splitlines()[-1] == "2 problems found", result.stderr


def test_no_config_says_init_writes_one(tmp_path: Path) -> None:
    result = check(tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "init` writes a commented config.yaml" in lines[0]
    assert lines[1:] == ["1 problem found"]


def test_a_second_bot_on_the_same_state_database_exits_2_with_one_line(tmp_path: Path) -> None:
    """End to end, with bot.storage's lock: the first bot (reconnecting to a closed port)
    holds data/state.sqlite3; the second says so in one line."""
    root = project(tmp_path, CONFIG.replace("port: 6667", "port: 1"), hi=GOOD)
    command = [sys.executable, "-m", "bot", "--config", str(root / "config.yaml")]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    first = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=root
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(first.stderr or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while not any("connecting to 127.0.0.1:1" in line for line in list(lines)):
            assert time.monotonic() < deadline and first.poll() is None, "".join(lines)
            time.sleep(0.05)
        second = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, cwd=root
        )
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("\n") == 1, second.stderr
        assert "Traceback" not in second.stderr
        assert "state.sqlite3" in second.stderr and str(first.pid) in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
        reader.join(5)
        if first.stderr is not None:
            first.stderr.close()


def test_check_reports_a_damaged_state_database(tmp_path: Path) -> None:
    root = project(tmp_path, CONFIG + "state_db: state.sqlite3\n", hi=GOOD)
    (root / "state.sqlite3").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    result = check(root)
    assert result.returncode == 1
    damaged = [line for line in result.stderr.splitlines() if "state.sqlite3" in line]
    assert len(damaged) == 1, result.stderr
    assert result.stderr.rstrip().endswith("1 problem found")
