"""The commands folder: which files are modules, which are skipped and why, what they import.

Owns reading: only files directly inside the folder are ever read, symlinks only
when they stay inside it, and a file's bytes are vouched for by its stat stamp
when it is old enough (git's "racily clean" rule), so checking a loaded module
for changes costs a stat. It also reads a module's sibling imports from its
source. It never executes anything: that is ``bot.loader``'s.
"""

from __future__ import annotations

import ast
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

IDENTIFIER_HINT = "module names are file stems made of letters, digits and '_', like 'dice'"


def is_module_name(name: str) -> bool:
    return name.isidentifier() and name.isascii()


_Stamp = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns

# A file whose last change (ctime, and mtime) is older than this when it is read cannot
# change again within the same timestamp tick without its stamp changing: git's rule
# for "racily clean" files. Younger files are compared by content every time.
RACY_NS = 2_000_000_000


def _stamp(st: os.stat_result) -> _Stamp:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class Skipped:
    """A file or folder in the commands folder that is not loaded, and why."""

    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: not loaded: {self.reason}"


class CommandsDir:
    """The folder of command files; the only place modules are ever read from."""

    def __init__(self, path: Path, clock: Callable[[], int] = time.time_ns) -> None:
        self.path = Path(path).resolve()
        self._text = os.fspath(self.path)
        self._paths: dict[str, Path] = {}  # module name -> its file's path (valid names only)
        self._clock = clock
        # path -> (stamp, bytes): the file had these bytes while it had this stamp.
        self._known: dict[str, tuple[_Stamp, bytes]] = {}
        # The last listing of the folder, while the folder's stamp vouches for it.
        self._listing: tuple[tuple[int, ...], dict[str, Path], list[Skipped]] | None = None

    def read(self, path: Path) -> bytes:
        """The file's bytes; remembers its stamp when the stamp can vouch for them later."""
        now = self._clock()
        with open(path, "rb") as file:
            st = os.fstat(file.fileno())
            data = file.read()
        if max(st.st_ctime_ns, st.st_mtime_ns) < now - RACY_NS:
            self._known[os.fspath(path)] = (_stamp(st), data)
        else:
            self._known.pop(os.fspath(path), None)
        return data

    def holds(self, path: Path, source: bytes) -> bool:
        """Whether ``path`` still holds exactly ``source``.

        Content decides, never mtime alone: a same-size edit with its mtime put back
        is a change. A file read long enough after its last change is vouched for by
        its full stamp (inode, size, mtime and ctime: any write or ``utime`` moves
        ctime), so ``!reload`` of all costs a ``stat`` per unchanged file, not a read.
        """
        key = os.fspath(path)  # str keys: hashing a Path costs more than the stat
        try:
            st = os.stat(key)
        except OSError:
            self._known.pop(key, None)
            return False
        known = self._known.get(key)
        if known is not None and known[0] == _stamp(st) and known[1] == source:
            return True
        try:
            return self.read(path) == source
        except OSError:
            return False

    def file_for(self, name: str) -> Path | None:
        """The file for module ``name`` if it is a regular file directly inside the folder.

        Symlinks are allowed only when they resolve inside the folder, so nothing
        outside ``commands/`` can ever be loaded.
        """
        candidate = self._paths.get(name)
        if candidate is None:
            if not is_module_name(name):
                return None
            candidate = self._paths[name] = self.path / f"{name}.py"  # pathlib is not free
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):  # only a link can lead out of the (resolved) folder
            resolved = candidate.resolve()
            if resolved.parent != self.path or not resolved.is_file():
                return None
        elif not stat.S_ISREG(mode):
            return None
        return candidate

    def scan(self) -> dict[str, Path]:
        """Every loadable module in the folder: ``stem -> path``."""
        return self.scan_all()[0]

    def scan_all(self) -> tuple[dict[str, Path], list[Skipped]]:
        """Every loadable module (``stem -> path``), and what is skipped, with why.

        Files that are not ``.py`` are not ours to judge, and ``__pycache__`` and
        hidden entries are nobody's concern; anything else that cannot load is named.
        """
        found: dict[str, Path] = {}
        skipped: list[Skipped] = []
        now = self._clock()
        try:
            st = os.stat(self.path)
            # Adding, removing or renaming an entry changes the folder's stamp: an unchanged
            # stamp (old enough to be trusted, as for files) vouches for the last listing.
            stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
            if self._listing is not None and self._listing[0] == stamp:
                return dict(self._listing[1]), list(self._listing[2])
            entries = sorted(os.scandir(self.path), key=lambda e: e.name)
        except OSError:
            return found, skipped
        folder = self.path.name
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name == "__pycache__":
                continue
            if entry.is_dir():
                helper = "_" + re.sub(r"\W", "_", name.removesuffix(".py")).lstrip("_")
                skipped.append(
                    Skipped(
                        f"{folder}/{name}/",
                        "a folder, and packages are not supported: put shared code in"
                        f" a helper file such as {folder}/{helper}.py",
                    )
                )
            elif name.endswith(".py"):
                stem = name[:-3]
                path = self.file_for(stem)
                if path is not None:
                    found[stem] = path
                else:
                    skipped.append(Skipped(f"{folder}/{name}", self._why_not(stem)))
        trusted = max(st.st_mtime_ns, st.st_ctime_ns) < now - RACY_NS
        self._listing = (stamp, dict(found), list(skipped)) if trusted else None
        return found, skipped

    def _why_not(self, stem: str) -> str:
        if not is_module_name(stem):
            fixed = re.sub(r"\W", "_", stem.encode("ascii", "replace").decode()).strip("_")
            rename = f" (rename it to {fixed}.py)" if is_module_name(fixed) else ""
            return IDENTIFIER_HINT + rename
        candidate = self.path / f"{stem}.py"
        if candidate.is_symlink():
            if not candidate.exists():
                return "a symlink to nothing"
            return f"a symlink to a file outside {self.path.name}/"
        return "not a regular file"

    def display(self, path: Path) -> str:
        """A short name for messages: ``commands/dice.py``."""
        text = os.fspath(path)
        if os.path.dirname(text) == self._text:  # the usual case: no Path, no syscall
            return f"{self.path.name}/{os.path.basename(text)}"
        path = Path(path)
        try:
            return f"{self.path.name}/{Path(path).resolve().relative_to(self.path)}"
        except ValueError:
            return str(path)


@dataclass(frozen=True)
class SourceInfo:
    imports: frozenset[str]
    problems: tuple[tuple[int, str], ...]


# An import that is not at the top level: indented, or after ";" or ":" on one line.
_NESTED_IMPORT = re.compile(rb"^[ \t]+(?:from|import)\b|[;:][ \t]*(?:from|import)\b", re.M)


def may_import_siblings(source: bytes, namespace: str) -> bool:
    """False only when ``source`` cannot import a sibling: no ``from .``, no ``namespace``.

    Most command modules import no sibling; for them no syntax tree is needed at all.
    """
    return (
        re.search(rb"\bfrom[\s\\]*\.|\b" + re.escape(namespace.encode()) + rb"\b", source)
        is not None
    )


def inspect_source(source: bytes, namespace: str, tree: ast.Module | None = None) -> SourceInfo:
    """Static facts about a module: which sibling modules it imports, and rule violations.

    Sibling imports must be at module level (``from . import _x`` or
    ``from ._x import y``): an import inside a function would run against
    whatever generation is current at call time, not the one the function
    belongs to. ``tree`` is the parsed ``source``, when the caller has it.
    """
    if tree is None:
        if not may_import_siblings(source, namespace):
            return SourceInfo(frozenset(), ())
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return SourceInfo(frozenset(), ())  # compile() reports it with file:line
    imports: set[str] = set()
    problems: list[tuple[int, str]] = []
    top_level = set(map(id, tree.body))
    # Walking every node costs milliseconds on a big file; imports below the top
    # level need an indented line or a one-liner; without one the top level is enough.
    nodes = ast.walk(tree) if _NESTED_IMPORT.search(source) else iter(tree.body)

    for node in nodes:
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            elif node.level > 1:
                problems.append(
                    (
                        node.lineno,
                        "command modules live in one flat folder; use 'from . import name'",
                    )
                )
            elif node.module and node.module.split(".")[0] == namespace:
                parts = node.module.split(".")
                names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [
                a.name.split(".")[1]
                for a in node.names
                if a.name.split(".")[0] == namespace and "." in a.name
            ]
        if names and isinstance(node, ast.stmt):
            imports.update(names)
            if id(node) not in top_level:
                problems.append(
                    (
                        node.lineno,
                        f"import {', '.join(names)} at the top of the file,"
                        " not inside a function or block",
                    )
                )
    return SourceInfo(frozenset(imports), tuple(problems))
