"""The commands the bot's hints print: ones that work from the user's shell, as it is.

``python -m bot`` works only with the Python the bot is installed in; a hint that
says it to a user whose virtualenv is not activated ends in ``ModuleNotFoundError``.
Imports nothing outside the standard library: ``bot.__main__`` uses it before it
knows the bot's dependencies are there.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

#: What the bot imports at start-up, by import name -> the package that provides it.
DEPENDENCIES = {"irc": "irc", "yaml": "PyYAML", "watchdog": "watchdog"}


def _venv() -> Path | None:
    """This Python's virtualenv when it is not the activated one (None: nothing to say)."""
    if sys.prefix == sys.base_prefix:
        return None
    active = os.environ.get("VIRTUAL_ENV")
    if active and _same(Path(active), Path(sys.prefix)):
        return None
    return Path(sys.prefix)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def shown_path(path: Path) -> str:
    """``path`` relative to the current directory when that is shorter (and still a path)."""
    text = str(path)
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return text
    if "/" not in relative:
        relative = f"./{relative}"
    return relative if len(relative) < len(text) else text


def tool(name: str, module: str) -> str:
    """How to run the console script ``name`` (or ``python -m module``) from this shell."""
    venv = _venv()
    if venv is not None:
        script = venv / "bin" / name
        if script.exists():
            return shown_path(script)
        return f"{shown_path(venv / 'bin' / 'python')} -m {module}"
    if sys.prefix != sys.base_prefix or shutil.which(name):
        return name  # the activated virtualenv's script, or one on PATH
    return f"{Path(sys.executable).name} -m {module}"


def reloadbot(args: str = "") -> str:
    """``reloadbot ARGS`` as it works here: ``.venv/bin/reloadbot ARGS`` in a venv not activated."""
    return f"{tool('reloadbot', 'bot')} {args}".rstrip()


def pytest(args: str = "") -> str:
    """``pytest ARGS`` as it works here."""
    return f"{tool('pytest', 'pytest')} {args}".rstrip()


def checkout() -> Path | None:
    """The source checkout this bot is run from, if it is one (pyproject.toml beside bot/)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def install_line(package: str) -> str:
    """One line: the bot cannot start without ``package``, and how to get it."""
    source = checkout()
    target = shown_path(source) if source is not None else "reloadbot"
    python = shown_path(Path(sys.executable))
    line = f"reloadbot needs the package {package!r}, which {python} lacks: "
    venv = source / ".venv" / "bin" / "reloadbot" if source is not None else None
    if venv is not None and venv.exists():
        return line + f"run {shown_path(venv)} instead, or pip install {target} in your virtualenv"
    return line + f"pip install {target} (in a virtualenv: python3 -m venv .venv first)"


def missing_dependency() -> str | None:
    """The install line for the first dependency this Python lacks, or None."""
    import importlib.util

    for module, package in DEPENDENCIES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return install_line(package)
    return None
