"""``python -m bot new-command NAME``: a new command module and its test, from templates.

The templates follow every rule of docs/writing-commands.md (module docstring,
``from __future__ import annotations``, a typed ``def NAME(ctx: Context, args:
str) -> str`` whose docstring is ``NAME ARGS -- summary``), are ruff-clean under
the project's settings, and the test uses the pytest plugin's ``load_command``
fixture, so it passes as generated.
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bot.builtins import NAMES
from bot.config import Config

# A command name (bot.api) that is also a module name (bot.loader) and a function name.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
# The built-in commands' names: the loader refuses modules that reuse them.
RESERVED = NAMES

COMMAND_TEMPLATE = '''\
"""{name}: TODO say in one line what this module's commands are for.

Edit and save, then say {prefix}reload: the bot runs the new code at once. Module
globals start afresh on every reload; keep what must last in ctx.state.
"""

from __future__ import annotations

from bot.api import CommandError, Context, command


@command
def {name}(ctx: Context, args: str) -> str:
    """{name} TEXT -- TODO: say what it does (this line is its help)"""
    if not args:
        raise CommandError({usage})
    return f"{{ctx.nick}}: {{args}}"
'''

TEST_TEMPLATE = '''\
"""Tests for {name}, with reloadbot's pytest plugin."""

from __future__ import annotations

from pathlib import Path

from bot.testing import LoadCommand

MODULE = {module_path}
PREFIX = {prefix_literal}
NAME = "{name}"


def test_{name}_answers(load_command: LoadCommand) -> None:
    bot = load_command(MODULE{options})
    assert bot.say(f"{{PREFIX}}{{NAME}} hello", nick="alice") == ["alice: hello"]


def test_{name}_usage(load_command: LoadCommand) -> None:
    bot = load_command(MODULE{options})
    assert bot.say(f"{{PREFIX}}{{NAME}}") == [f"usage: {{PREFIX}}{{NAME}} TEXT"]


def test_{name}_help(load_command: LoadCommand) -> None:
    bot = load_command(MODULE{options})
    assert bot.say(f"{{PREFIX}}help {{NAME}}")[0].startswith(f"{{NAME}} TEXT -- ")
'''


class ScaffoldError(Exception):
    """The name is unusable, or a file is already there (nothing was written)."""


@dataclass(frozen=True)
class Scaffold:
    module: Path
    test: Path


def check_name(name: str) -> str:
    """``name`` if it can be a command module, its command, and its function; else raise."""
    if not _NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a usable name: use 1-32 lowercase letters, digits and '_',"
            " starting with a letter (it becomes the file, the function and the command)"
        )
    if keyword.iskeyword(name):
        raise ScaffoldError(f"{name!r} is a Python keyword; pick another name")
    if name in RESERVED:
        raise ScaffoldError(f"{name!r} is a built-in command; pick another name")
    return name


def scaffold(name: str, *, config: Config | None = None, root: Path | None = None) -> Scaffold:
    """Write ``commands/NAME.py`` and ``tests/test_NAME.py``; refuse to overwrite either.

    With a config, the module goes to its ``commands_dir`` and the test to
    ``tests/`` next to config.yaml; without one, both go under ``root``
    (default: the current directory).
    """
    check_name(name)
    if config is not None:
        base = config.path.parent if config.path is not None else Path.cwd()
        commands_dir, prefix = config.commands_dir, config.prefix
    else:
        base = root or Path.cwd()
        commands_dir, prefix = base / "commands", "!"
    module = commands_dir / f"{name}.py"
    test = base / "tests" / f"test_{name}.py"
    if module.exists():
        raise ScaffoldError(
            f"not overwriting {module}: {name!r} is a module already; pick another name"
        )
    owner = used_by(name, commands_dir)
    if owner is not None:
        raise ScaffoldError(f"{name!r} is already {owner}; pick another name")
    existing = [str(p) for p in (module, test) if p.exists()]
    if existing:
        raise ScaffoldError(f"not overwriting {' and '.join(existing)}; nothing was written")
    options = "" if prefix == "!" else ", prefix=PREFIX"
    texts = {
        module: COMMAND_TEMPLATE.format(
            name=name,
            prefix="" if set(prefix) & set('\\"') else prefix,  # it goes into a docstring
            usage=json.dumps(f"usage: {prefix}{name} TEXT"),
        ),
        test: TEST_TEMPLATE.format(
            name=name,
            prefix_literal=json.dumps(prefix),
            options=options,
            module_path=_path_from(test, module),
        ),
    }
    written: list[Path] = []
    try:
        for path, text in texts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as f:  # "x": never overwrite
                f.write(text)
            written.append(path)
    except FileExistsError as exc:
        for path in written:
            path.unlink()
        raise ScaffoldError(f"not overwriting {exc.filename}; nothing was written") from None
    return Scaffold(module, test)


def used_by(name: str, commands_dir: Path) -> str | None:
    """Which module in ``commands_dir`` has a command ``name`` already
    ("a command of commands/dice.py:52"), or None.

    Reads the files' source without running any of it: a command is a function
    decorated ``@command`` (its name, or ``name=``, and its ``aliases=``).
    """
    try:
        files = sorted(commands_dir.glob("*.py"))
    except OSError:
        return None
    for path in files:
        for command, line in _commands_in(path):
            if command == name:
                return f"a command of {commands_dir.name}/{path.name}:{line}"
    return None


def _commands_in(path: Path) -> list[tuple[str, int]]:
    """(name, line) of every command name and alias ``@command`` gives in ``path``."""
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call is not None else decorator
            if not (
                (isinstance(target, ast.Name) and target.id == "command")
                or (isinstance(target, ast.Attribute) and target.attr == "command")
            ):
                continue
            names = [node.name]
            for keyword_ in call.keywords if call is not None else ():
                value = keyword_.value
                if keyword_.arg == "name" and isinstance(value, ast.Constant):
                    names[0] = str(value.value)
                elif keyword_.arg == "aliases" and isinstance(value, ast.List | ast.Tuple):
                    names += [str(e.value) for e in value.elts if isinstance(e, ast.Constant)]
            line = node.decorator_list[0].lineno  # where the loader says a command is
            found += [(n.lower(), line) for n in names]
    return found


def _path_from(test: Path, module: Path) -> str:
    """Python for the module's path, relative to the test file (so the project can move)."""
    relative = Path(os.path.relpath(module.absolute(), test.absolute().parent))
    ups = len([p for p in relative.parts if p == ".."])
    rest = relative.parts[ups:]
    if any(p == ".." for p in rest):
        return f"Path({str(module.absolute())!r})"
    start = f"Path(__file__).resolve().parents[{ups}]"  # parents[0] is the test's folder
    return " / ".join([start, *(json.dumps(p) for p in rest)])
