"""The bots under test: virtualenvs, configs and the one-command test module of each.

Three ``BotKind``s: ``ours`` (reloadbot, this repository), ``sopel`` (Sopel 8.x)
and ``limnoria``.  Each one is given equivalent settings:

* the same server, channel, command prefix ``!`` and admin (``benchadmin``,
  matched by hostmask for ours and Limnoria, by nick for Sopel, which has no
  hostmask admins);
* output throttling and command-flood protection off unless ``defaults=True``;
* a test module with one command, ``!bping TOKEN`` -> ``pong TOKEN``, loaded
  next to the modules the bot ships with.

All three run on Debian's ``/usr/bin/python3`` in virtualenvs the harness builds
in a world-readable folder (``/var/tmp/reloadbot-bench`` by default).  As root,
Sopel and Limnoria (which refuse to run as root) run as ``nobody:nogroup``
through ``setpriv``; ours runs as the calling user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = "/usr/bin/python3"
DEFAULT_VENVS = Path(os.environ.get("BENCH_VENVS", "/var/tmp/reloadbot-bench"))

ADMIN = "benchadmin"
CHANNEL = "#bench"
SOPEL_REQ = "sopel>=8,<9"
LIMNORIA_REQ = "limnoria"


class SetupError(RuntimeError):
    """A bot could not be prepared (venv, packages)."""


# -- virtualenvs ---------------------------------------------------------------


def _run(argv: list[str], log: Path) -> None:
    with log.open("ab") as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise SetupError(f"{' '.join(argv)} failed ({proc.returncode}):\n" + "\n".join(tail))


def ensure_venv(root: Path, name: str, requirements: list[str]) -> Path:
    """A venv ``root/name`` from Debian's python with ``requirements``; returns its python."""
    venv = root / name
    python = venv / "bin" / "python"
    stamp = venv / ".bench-requirements"
    wanted = "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not Path(DEBIAN_PYTHON).exists():
        raise SetupError(f"{DEBIAN_PYTHON} is missing (apt-get install python3 python3-venv)")
    old_umask = os.umask(0o022)
    try:
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        log = root / f"{name}.install.log"
        log.write_text("")
        if venv.exists():
            shutil.rmtree(venv)
        try:
            _run([DEBIAN_PYTHON, "-m", "venv", str(venv)], log)
        except SetupError as exc:
            raise SetupError(f"{exc}\n(apt-get install python3-venv may fix this)") from exc
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        _run([*pip, *requirements], log)
        stamp.write_text(wanted)
    finally:
        os.umask(old_umask)
    return python


def our_requirements() -> list[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return list(data["project"]["dependencies"])


def source_version() -> str:
    """``<commit>`` of the work tree, ``+dirty`` when bot/ or commands/ differ from it."""

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        )
        return out.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "bot", "commands")
    return commit + ("+dirty" if dirty else "")


def snapshot(dest: Path) -> Path:
    """Copy bot/ and commands/ of the work tree, so one run measures one version."""
    for name in ("bot", "commands"):
        shutil.copytree(
            REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return dest


def package_version(python: Path, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


# -- running as an unprivileged user -------------------------------------------


def unprivileged() -> tuple[int, int] | None:
    """(uid, gid) of nobody:nogroup when we are root (peers refuse root), else None."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def chown_tree(path: Path, ids: tuple[int, int] | None) -> None:
    if ids is None:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, *ids)
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), *ids)


def as_user(argv: list[str], ids: tuple[int, int] | None) -> list[str]:
    if ids is None:
        return argv
    return ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups", *argv]


# -- the bots ------------------------------------------------------------------


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    module_file: Path  # the test module's file (edited by the syntax-error test)
    modules_dir: Path  # where extra generated modules go


class BotKind:
    name = ""
    nick = ""
    label = ""
    version = ""
    reload_one = ""  # what the admin says to reload the test module
    helper_module = ""  # a module that imports a helper of its own, and its files:
    helper_files: dict[str, str] = {}  # path in the bot's module folder -> text
    python: Path | None = None

    def setup(self, venvs: Path) -> None:
        raise NotImplementedError

    def launch(
        self, home: Path, host: str, port: int, *, defaults: bool, all_admins: bool = False
    ) -> Launch:
        raise NotImplementedError

    def command(self, token: str) -> str:
        return f"!bping {token}"

    @staticmethod
    def env(home: Path) -> dict[str, str]:
        return {
            "HOME": str(home),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }


_OURS_MODULE = '''\
"""Benchmark module: one command."""

from bot.api import Context, command

VERSION = 0


@command
def bping(ctx: Context, args: str) -> str:
    """bping TOKEN -- answer pong TOKEN"""
    return "pong " + args
'''

HELPER = 'def pong(text):\n    return "pong " + text\n'

_OURS_HELPER = '''\
from bot.api import Context, command
from . import _benchhelper

@command
def bhelp(ctx: Context, args: str) -> str:
    """bhelp TOKEN -- answer pong TOKEN"""
    return _benchhelper.pong(args)
'''

# A module as the 50-module figures load it: a few imports, a helper, two commands.
GENERATED_MODULE = '''\
"""Generated benchmark module {i}."""

import json
import random
import re

from bot.api import Context, command

VERSION = {version}
_WORD = re.compile(r"\\w+")


def _count(text: str) -> int:
    return len(_WORD.findall(text))


@command
def g{i:02d}(ctx: Context, args: str) -> str:
    """g{i:02d} TEXT -- count the words of TEXT"""
    return json.dumps({{"words": _count(args), "v": VERSION}})


@command
def r{i:02d}(ctx: Context, args: str) -> str:
    """r{i:02d} -- a random number"""
    return str(random.randint(1, 6))
'''


# Outbound token bucket and inbound command rates off (the maxima config.py accepts).
OURS_THROTTLE_OFF = (
    "rate_limit: {burst: 10000, per_second: 100000}\n"
    "command_rate: {per_user: 100000, per_channel: 100000, window: 0.1}\n"
)


class Ours(BotKind):
    name = "ours"
    nick = "ReloadBot"
    label = "reloadbot"
    reload_one = "!reload benchmod"
    helper_module = "benchhelp"
    helper_files = {"_benchhelper.py": HELPER, "benchhelp.py": _OURS_HELPER}

    def __init__(self, python: str | None = None, src: Path = REPO) -> None:
        self.python = Path(python) if python else None
        self.src = src  # where bot/ and commands/ are read from (a snapshot of the work tree)
        self.pycache = DEFAULT_VENVS / "pycache-ours"

    def setup(self, venvs: Path) -> None:
        self.pycache = venvs / "pycache-ours"
        if self.python is None:
            try:
                self.python = ensure_venv(venvs, "ours", our_requirements())
            except SetupError as exc:
                print(f"[ours] cannot build a Debian-python venv ({exc}); using {sys.executable}")
                self.python = Path(sys.executable)
        self.version = source_version()

    def launch(
        self, home: Path, host: str, port: int, *, defaults: bool, all_admins: bool = False
    ) -> Launch:
        commands = home / "commands"
        commands.mkdir(parents=True, exist_ok=True)
        for shipped in sorted((self.src / "commands").glob("*.py")):
            shutil.copy(shipped, commands / shipped.name)
        module = commands / "benchmod.py"
        module.write_text(_OURS_MODULE)
        rate = "" if defaults else OURS_THROTTLE_OFF
        (home / "config.yaml").write_text(
            f"server: {{host: {host}, port: {port}}}\n"
            f"nick: {self.nick}\n"
            f'channels: ["{CHANNEL}"]\n'
            'prefix: "!"\n'
            f'admins: ["{"*" if all_admins else ADMIN}!*@127.0.0.1"]\n'
            "commands_dir: commands\n"
            "state_db: null\n"
            "log_level: WARNING\n" + rate
        )
        env = self.env(home)
        env["PYTHONPATH"] = str(self.src)
        # Bytecode for bot/ as any install has it (the peers' site-packages have theirs),
        # kept out of the work tree.
        env["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        assert self.python is not None
        argv = [str(self.python), "-m", "bot", "--config", str(home / "config.yaml")]
        return Launch(argv, env, home, module, commands)


_SOPEL_MODULE = '''\
"""Benchmark plugin: one command."""

from sopel import plugin

VERSION = 0


@plugin.command("bping")
def bping(bot, trigger):
    """bping TOKEN -- answer pong TOKEN"""
    bot.say("pong " + (trigger.group(2) or ""))
'''

# Sopel 8 imports a plugin file as a top-level module: only a plugin folder has siblings.
_SOPEL_HELPER = '''\
from sopel import plugin
from . import _benchhelper

@plugin.command("bhelp")
def bhelp(bot, trigger):
    """bhelp TOKEN -- answer pong TOKEN"""
    bot.say(_benchhelper.pong(trigger.group(2) or ""))
'''

# Plugins that reach the Internet at start-up or on a timer (no network here).
SOPEL_EXCLUDED = ("find_updates", "safety", "tld", "pronouns")
SOPEL_THROTTLE_OFF = {
    "flood_burst_lines": "1000000",
    "flood_refill_rate": "1000000",
    "flood_empty_wait": "0",
    "flood_max_wait": "0",
    "flood_penalty_ratio": "0",
    "antiloop_threshold": "0",
}


class Sopel(BotKind):
    name = "sopel"
    nick = "SopelBot"
    label = "Sopel"
    reload_one = "!reload benchmod"
    helper_module = "benchhelp"
    helper_files = {"benchhelp/_benchhelper.py": HELPER, "benchhelp/__init__.py": _SOPEL_HELPER}

    def setup(self, venvs: Path) -> None:
        self.python = ensure_venv(venvs, "sopel", [SOPEL_REQ])
        self.version = package_version(self.python, "sopel")

    def launch(
        self, home: Path, host: str, port: int, *, defaults: bool, all_admins: bool = False
    ) -> Launch:
        plugins = home / "plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        module = plugins / "benchmod.py"
        module.write_text(_SOPEL_MODULE)
        lines = [
            "[core]",
            f"nick = {self.nick}",
            f"host = {host}",
            f"port = {port}",
            "use_ssl = false",
            f"owner = {ADMIN}",
            f"admins = {ADMIN}",
            f"channels = {CHANNEL}",
            "prefix = !",
            f"homedir = {home}",
            f"logdir = {home}/logs",
            "logging_level = WARNING",
            "exclude =",
            *(f"    {name}" for name in SOPEL_EXCLUDED),
        ]
        if not defaults:
            lines += [f"{k} = {v}" for k, v in SOPEL_THROTTLE_OFF.items()]
        (home / "bench.cfg").write_text("\n".join(lines) + "\n")
        assert self.python is not None
        sopel = self.python.parent / "sopel"
        argv = [str(sopel), "start", "-c", str(home / "bench.cfg")]
        return Launch(argv, self.env(home), home, module, plugins)


_LIMNORIA_INIT = '''\
"""Benchmark plugin: one command."""

import supybot
from supybot import world  # noqa: F401

__version__ = "1"
__author__ = supybot.authors.unknown
__contributors__ = {}
__url__ = ""

from importlib import reload

from . import config, plugin

reload(config)
reload(plugin)

Class = plugin.Class
configure = config.configure
'''

_LIMNORIA_CONFIG = """\
from supybot import conf


def configure(advanced):
    conf.registerPlugin("Bench", True)


Bench = conf.registerPlugin("Bench")
"""

_LIMNORIA_PLUGIN = '''\
from supybot import callbacks
from supybot.commands import wrap

VERSION = 0


class Bench(callbacks.Plugin):
    """Benchmark plugin: one command."""

    def bping(self, irc, msg, args, text):
        """<token>

        Answers pong <token>."""
        irc.reply("pong " + text, prefixNick=False)

    bping = wrap(bping, ["text"])


Class = Bench
'''

LIMNORIA_PLUGINS = ("Admin", "Channel", "Config", "Misc", "Owner", "User", "Utilities")
LIMNORIA_THROTTLE_OFF = {
    "supybot.protocols.irc.throttleTime": "0",
    "supybot.abuse.flood.command": "False",
    "supybot.abuse.flood.command.invalid": "False",
}


class Limnoria(BotKind):
    name = "limnoria"
    nick = "LimBot"
    label = "Limnoria"
    reload_one = "!reload Bench"

    def setup(self, venvs: Path) -> None:
        self.python = ensure_venv(venvs, "limnoria", [LIMNORIA_REQ])
        self.version = package_version(self.python, "limnoria")

    def launch(
        self, home: Path, host: str, port: int, *, defaults: bool, all_admins: bool = False
    ) -> Launch:
        plugins = home / "plugins"
        pdir = plugins / "Bench"
        pdir.mkdir(parents=True, exist_ok=True)
        (pdir / "__init__.py").write_text(_LIMNORIA_INIT)
        (pdir / "config.py").write_text(_LIMNORIA_CONFIG)
        module = pdir / "plugin.py"
        module.write_text(_LIMNORIA_PLUGIN)
        for sub in ("conf", "data", "data/tmp", "data/web", "backup", "logs"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        for empty in ("channels.conf", "networks.conf", "ignores.conf"):
            (home / "conf" / empty).write_text("")
        (home / "conf" / "users.conf").write_text(
            "user 1\n"
            f"  name {ADMIN}\n"
            "  ignore False\n"
            "  secure False\n"
            "  capability owner\n"
            f"  hostmask {ADMIN}!*@127.0.0.1\n"
            "\n"
        )
        names = sorted((*LIMNORIA_PLUGINS, "Bench"))
        settings = {
            "supybot.nick": self.nick,
            "supybot.ident": "limbot",
            "supybot.user": "limbot",
            "supybot.networks": "bench",
            "supybot.networks.bench.servers": f"{host}:{port}",
            "supybot.networks.bench.channels": CHANNEL,
            "supybot.networks.bench.ssl": "False",
            "supybot.directories.conf": f"{home}/conf",
            "supybot.directories.data": f"{home}/data",
            "supybot.directories.data.tmp": f"{home}/data/tmp",
            "supybot.directories.data.web": f"{home}/data/web",
            "supybot.directories.backup": f"{home}/backup",
            "supybot.directories.log": f"{home}/logs",
            "supybot.directories.plugins": str(plugins),
            "supybot.plugins": " ".join(names),
            "supybot.reply.whenAddressedBy.chars": "!",
            "supybot.log.level": "WARNING",
            "supybot.log.stdout.level": "WARNING",
        }
        settings.update({f"supybot.plugins.{n}": "True" for n in names})
        if not defaults:
            settings.update(LIMNORIA_THROTTLE_OFF)
        (home / "bench.conf").write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))
        assert self.python is not None
        limnoria = self.python.parent / "limnoria"
        argv = [str(limnoria), str(home / "bench.conf")]
        return Launch(argv, self.env(home), home, module, plugins)


KINDS = {"ours": Ours, "sopel": Sopel, "limnoria": Limnoria}
