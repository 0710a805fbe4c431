"""``reloadbot init [DIR]``: a new bot's folder, from the skeleton the package ships.

The skeleton is the project's commented ``config.yaml`` and its standard command
modules: in a wheel, ``bot/skeleton/`` (setup.py copies them there at build time);
in a checkout (an editable install), the top-level files themselves. Never
overwrites a file.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PACKAGED = Path(__file__).resolve().parent / "skeleton"
CHECKOUT = Path(__file__).resolve().parents[1]


def skeleton() -> Path:
    """Where ``config.yaml`` and ``commands/`` come from: the wheel's copy, else the checkout."""
    return PACKAGED if (PACKAGED / "config.yaml").is_file() else CHECKOUT


class InitError(Exception):
    """Nothing was written: say why in one line."""


@dataclass
class Made:
    config: Path
    commands: Path
    copied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def skeleton_files() -> tuple[Path, list[Path]]:
    """The skeleton's config template and its command modules (sorted)."""
    folder = skeleton()
    config = folder / "config.yaml"
    modules = sorted((folder / "commands").glob("*.py"))
    if not config.is_file() or not modules:
        raise InitError(f"this installation has no skeleton in {folder}; reinstall reloadbot")
    return config, modules


#: The questions ``init`` asks in a terminal: the template's line each answer replaces.
#: (label, pattern of the line's value, how the answer is written, check)
QUESTIONS: list[tuple[str, str, Callable[[str], str], Callable[[str], bool]]] = [
    (
        "IRC server host",
        r"(?m)^(  host: )(\S+)",
        str,
        lambda a: re.fullmatch(r"[\w.:-]+", a) is not None,
    ),
    (
        "port (6697: TLS)",
        r"(?m)^(  port: )(\d+)",
        str,
        lambda a: a.isdigit() and 0 < int(a) < 65536,
    ),
    (
        "the bot's nick",
        r'(?m)^(nick: )("[^"\n]*")',
        json.dumps,
        lambda a: re.fullmatch(r"[^\s,:!@#&][^\s,!@]*", a) is not None,
    ),
    (
        "channel to join",
        r'(?m)^(channels: \[)("[^"\n]*")',
        json.dumps,
        lambda a: re.fullmatch(r"[#&][^\s,\x07]+", a) is not None,
    ),
]


def ask(template: str, prompt: Callable[[str], str], say: Callable[[str], None]) -> str:
    """``template`` with the answers to QUESTIONS (Enter keeps the value shown)."""
    for label, pattern, written, valid in QUESTIONS:
        found = re.search(pattern, template)
        if found is None:
            continue
        default = found[2].strip('"')
        while True:
            answer = prompt(f"{label} [{default}]: ").strip() or default
            if valid(answer):
                break
            say(f"  {answer!r} will not do as the {label}")
        start, end = found.span(2)
        template = template[:start] + written(answer) + template[end:]
        if label.startswith("port") and answer == "6697":  # the IRC port for TLS
            template = re.sub(r"(?m)^(  tls: )false\b", r"\1true", template, count=1)
    return template


def init(target: Path, prepare: Callable[[str], str] | None = None) -> Made:
    """Write ``target/config.yaml`` and ``target/commands/*.py``.

    ``prepare`` may change the config template's text first (``ask``). Refuses
    (InitError, nothing written) when ``target/config.yaml`` exists; a module
    already in ``target/commands`` is kept as it is.
    """
    template, modules = skeleton_files()
    config = target / "config.yaml"
    if config.exists() or config.is_symlink():
        raise InitError(f"{config} already exists; not overwriting it (nothing was written)")
    if target.exists() and not target.is_dir():
        raise InitError(f"{target} is not a folder")
    text = template.read_text(encoding="utf-8")
    if prepare is not None:
        text = prepare(text)
    commands = target / "commands"
    made = Made(config, commands)
    try:
        commands.mkdir(parents=True, exist_ok=True)
        with config.open("x", encoding="utf-8") as f:  # "x": never overwrite
            f.write(text)
        for module in modules:
            destination = commands / module.name
            if destination.exists() or destination.is_symlink():
                made.kept.append(module.name)
                continue
            shutil.copyfile(module, destination)
            made.copied.append(module.name)
    except FileExistsError as exc:
        raise InitError(f"{exc.filename} already exists; not overwriting it") from None
    except OSError as exc:
        raise InitError(f"cannot write {exc.filename or target}: {exc.strerror or exc}") from None
    return made
