"""``reloadbot init [DIR]``: a new bot's folder from the skeleton the package ships, and a
fresh virtualenv outside the repository that goes from ``pip install`` to a bot answering."""

from __future__ import annotations

import filecmp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ircclient import IrcClient

from bot.config import load_config
from bot.init import skeleton

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def reloadbot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_in_a_checkout_the_skeleton_is_the_repositorys_own_files() -> None:
    """One copy of each file: a checkout's init reads ./config.yaml and ./commands/;
    a wheel carries them as bot/skeleton/ (setup.py; see the fresh-virtualenv test)."""
    assert skeleton() == REPO


def _same_as_the_repository(bot: Path) -> None:
    assert filecmp.cmp(REPO / "config.yaml", bot / "config.yaml", shallow=False)
    shipped = sorted(p.name for p in (REPO / "commands").glob("*.py"))
    assert sorted(p.name for p in (bot / "commands").glob("*.py")) == shipped
    _, mismatch, errors = filecmp.cmpfiles(
        REPO / "commands", bot / "commands", shipped, shallow=False
    )
    assert not mismatch and not errors, mismatch + errors


def test_init_writes_a_config_and_the_commands_and_the_check_passes(tmp_path: Path) -> None:
    result = reloadbot("init", "mybot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    bot = tmp_path / "mybot"
    assert (bot / "config.yaml").read_text() == (REPO / "config.yaml").read_text()
    assert "# " in (bot / "config.yaml").read_text()  # commented
    modules = sorted(p.name for p in (bot / "commands").glob("*.py"))
    assert modules == sorted(p.name for p in (REPO / "commands").glob("*.py"))
    assert "_common.py" in modules
    assert result.stdout.startswith("wrote mybot/config.yaml and ")
    assert "cd mybot" in result.stdout and "--check" in result.stdout

    checked = reloadbot("--check", cwd=bot)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip().splitlines()[-1].startswith("config ok; ")
    assert not (bot / "data").exists()  # a check writes nothing


def test_init_defaults_to_the_current_folder(tmp_path: Path) -> None:
    result = reloadbot("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "config.yaml").is_file()
    assert (tmp_path / "commands" / "echo.py").is_file()
    assert "cd " not in result.stdout


def test_init_refuses_to_overwrite_a_config(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("# mine\n")
    result = reloadbot("init", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr  # one line
    assert "config.yaml already exists; not overwriting it" in result.stderr
    assert (tmp_path / "config.yaml").read_text() == "# mine\n"
    assert not (tmp_path / "commands").exists()  # nothing written


def test_init_keeps_a_module_already_there(tmp_path: Path) -> None:
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "echo.py").write_text("# mine\n")
    result = reloadbot("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "commands" / "echo.py").read_text() == "# mine\n"
    assert "(kept 1 already there)" in result.stdout


def test_without_a_config_the_bot_says_init_writes_one(tmp_path: Path) -> None:
    result = reloadbot(cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "init` writes a commented config.yaml" in result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the repository with the checkout ``pip install``-ed.

    The checkout is copied first (its files as git sees them would do; the working
    tree is what is tested here), so the build writes nothing into the repository.
    """
    root = tmp_path_factory.mktemp("fresh")
    source = root / "checkout"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "*.egg-info", "__pycache__", ".*_cache", "data"
        ),
    )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    result = subprocess.run(
        [*pip, "--disable-pip-version-check", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.rmtree(source)  # the installed bot must not need the checkout
    return venv


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_a_fresh_virtualenv_goes_from_pip_install_to_a_bot_answering_help(
    installed: Path, tmp_path: Path, ngircd
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    script = installed / "bin" / "reloadbot"

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    made = run("init", "mybot", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    bot = tmp_path / "mybot"
    _same_as_the_repository(bot)  # the wheel's skeleton is the repository's files
    checked = run("--check", cwd=bot)
    assert checked.returncode == 0, checked.stderr
    assert "config ok; " in checked.stderr

    config = bot / "config.yaml"
    text = config.read_text()
    assert "  port: 6667 " in text
    config.write_text(text.replace("  port: 6667 ", f"  port: {ngircd.port} ", 1))
    process = subprocess.Popen(
        [str(script)],
        cwd=bot,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with IrcClient(ngircd.host, ngircd.port, "newcomer").connect() as client:
            client.join("#bot")
            answer = r"^:reloadbot\S*!\S+ PRIVMSG #bot :commands: "
            deadline = time.monotonic() + 60
            while True:  # until the bot has started, connected and joined
                assert process.poll() is None, process.communicate()[0]
                since = client.mark()
                client.privmsg("#bot", "!help")
                try:
                    client.wait_for(answer, timeout=3, since=since)
                    break
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output


def test_in_a_terminal_init_asks_a_few_questions(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "bot", "init", "mybot"],
        cwd=str(tmp_path),
        env=ENV,
        encoding="utf-8",
        timeout=30,
    )
    try:
        child.expect_exact("IRC server host [127.0.0.1]: ")
        child.sendline("irc.example.net")
        child.expect_exact("port (6697: TLS) [6667]: ")
        child.sendline("6697")
        child.expect_exact("the bot's nick [reloadbot]: ")
        child.sendline("bad nick")
        child.expect_exact("will not do")
        child.expect_exact("the bot's nick [reloadbot]: ")
        child.sendline("mybot")
        child.expect_exact("channel to join [#bot]: ")
        child.sendline("")  # Enter keeps the default
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    config = load_config(tmp_path / "mybot" / "config.yaml")
    assert (config.server.host, config.server.port, config.server.tls) == (
        "irc.example.net",
        6697,
        True,
    )
    assert (config.nick, config.channels) == ("mybot", ("#bot",))
    assert "# " in (tmp_path / "mybot" / "config.yaml").read_text()  # the comments stay
