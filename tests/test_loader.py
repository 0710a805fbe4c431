"""The loader's traps, on real files: stale bytecode, shadowing, import rules, start-up with
broken files, error text with file:line, and sys.modules / linecache restored on failure.
"""

from __future__ import annotations

import importlib.util
import json
import linecache
import logging
import os
import py_compile
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import app_factory, commands_dir, edit, module, namespace_modules, say, write

import bot.folder
import bot.loader
from bot.app import App
from bot.folder import CommandsDir, inspect_source
from bot.loader import Loader, LoadFailed


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., App]]:
    with app_factory(tmp_path) as factory:
        yield factory


def line_of(source: str, marker: str) -> int:
    lines = textwrap.dedent(source).lstrip("\n").splitlines()
    return next(i for i, text in enumerate(lines, 1) if marker in text)


def command_module(name: str, body: str = "", reply: str | None = None) -> str:
    """A module with one command ``name`` answering ``reply`` (default: the name)."""
    return (
        "from bot.api import command\n"
        f"{textwrap.dedent(body)}\n"
        "@command\n"
        f"def {name}(ctx, args):\n"
        f'    """{name} -- test command"""\n'
        f"    return {reply or repr(name)}\n"
    )


# -- no stale bytecode -------------------------------------------------------------------


def test_a_same_size_same_mtime_edit_is_never_served_from_a_stale_pyc(
    make: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    old, new = command_module("v", reply='"old1"'), command_module("v", reply='"new1"')
    assert len(old) == len(new)
    app = make({"a.py": old})
    assert app.load_all().ok
    assert say(app, "!v") == ["old1"]

    path = app.registry.modules["a"].path
    pyc = Path(importlib.util.cache_from_source(str(path)))
    before = os.stat(path)
    py_compile.compile(
        str(path), cfile=str(pyc), doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
    )  # fmt: skip
    stale = pyc.read_bytes()
    path.write_text(new)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    # the trap is armed: the standard file loader serves the stale pyc
    spec = importlib.util.spec_from_file_location("stale_probe", path)
    assert spec is not None and spec.loader is not None
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    assert probe.v(None, "") == "old1"

    report = app.reload()

    assert report.reloaded == ["a"], report.errors
    assert say(app, "!v") == ["new1"]
    assert module(app, "a").v(None, "") == "new1"
    # and the loader wrote no bytecode: only our stale file is there, untouched
    assert os.listdir(pyc.parent) == [pyc.name]
    assert pyc.read_bytes() == stale


# -- knowing a file is unchanged: content, or a stamp that can vouch for it ---------------


def _reads(folder: CommandsDir, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every read ``folder`` makes from now on."""
    reads: list[Path] = []
    real = folder.read

    def counted(path: Path) -> bytes:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(folder, "read", counted)
    return reads


def test_a_file_read_long_after_its_last_change_is_checked_by_a_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.py"
    path.write_bytes(b"x = 1\n")
    later = os.stat(path).st_ctime_ns + bot.folder.RACY_NS + 1
    folder = CommandsDir(tmp_path, clock=lambda: later)
    source = folder.read(path)
    reads = _reads(folder, monkeypatch)

    assert folder.holds(path, source)
    assert folder.holds(path, source)
    assert reads == []  # vouched for by the stamp: no read

    before = os.stat(path)
    path.write_bytes(b"x = 2\n")  # same size, mtime put back: only ctime tells
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not folder.holds(path, source)
    assert reads == [path]
    assert not folder.holds(path, b"x = 1\n")


def test_an_old_listing_of_the_folder_is_reused_until_an_entry_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.py").write_bytes(b"x = 1\n")
    later = os.stat(tmp_path).st_ctime_ns + bot.folder.RACY_NS + 1
    folder = CommandsDir(tmp_path, clock=lambda: later)
    assert list(folder.scan()) == ["a"]
    listed: list[object] = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: listed.append(p) or real_scandir(p))
    assert list(folder.scan()) == ["a"] and listed == []  # the folder's stamp vouches

    (tmp_path / "b.py").write_bytes(b"x = 2\n")  # a new entry moves the folder's stamp
    assert list(folder.scan()) == ["a", "b"] and len(listed) == 1
    (tmp_path / "a.py").unlink()
    assert list(folder.scan()) == ["b"]


def test_unchanged_bytes_are_not_compiled_again_and_changed_ones_are(
    make: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make({"a.py": command_module("a", reply='"one"')})
    assert app.load_all().ok
    compiled: list[str] = []
    real_compile = compile

    def counting(source: Any, filename: str, *args: Any, **kwargs: Any) -> Any:
        compiled.append(Path(filename).name)
        return real_compile(source, filename, *args, **kwargs)

    monkeypatch.setattr(bot.loader, "compile", counting, raising=False)
    first = module(app, "a")
    assert app.reload(["a"]).reloaded == ["a"]
    assert compiled == []  # the same bytes: the same code, executed into a new module
    assert module(app, "a") is not first

    path = commands_dir(app) / "a.py"
    before = os.stat(path)
    path.write_text(command_module("a", reply='"two"'))  # same size, mtime put back
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert app.reload(["a"]).reloaded == ["a"]
    assert compiled == ["a.py"]
    assert say(app, "!a") == ["two"]


def test_a_file_changed_just_before_it_was_read_is_compared_by_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two writes in one timestamp tick can leave the stamp as it was: a file whose last
    # change is younger than RACY_NS at its read is never vouched for by its stamp.
    path = tmp_path / "a.py"
    path.write_bytes(b"x = 1\n")
    folder = CommandsDir(tmp_path)  # the real clock: the file was changed just now
    source = folder.read(path)
    reads = _reads(folder, monkeypatch)
    frozen = os.stat(path)
    monkeypatch.setattr(bot.folder.os, "stat", lambda p, *a, **k: frozen)  # same stamp

    assert folder.holds(path, source)
    path.write_bytes(b"x = 2\n")
    assert not folder.holds(path, source)
    assert reads == [path, path]


def test_reload_of_all_with_every_stamp_trusted_still_sees_a_same_size_edit(
    make: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.folder, "RACY_NS", -(10**18))  # every file counts as old
    old, new = command_module("a", reply='"one"'), command_module("a", reply='"two"')
    assert len(old) == len(new)
    app = make({"a.py": old, "b.py": command_module("b")})
    assert app.load_all().ok
    assert app.reload().reloaded == []

    path = app.registry.modules["a"].path
    before = os.stat(path)
    edit(app, "a.py", new)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    report = app.reload()

    assert report.reloaded == ["a"], report.errors
    assert say(app, "!a") == ["two"]
    assert app.reload().reloaded == []


def test_loading_writes_no_pycache(
    make: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    app = make({"_h.py": "X = 1\n", "a.py": command_module("a", "from ._h import X")})
    assert app.load_all().ok
    assert app.reload(force=True).ok
    edit(app, "b.py", command_module("b"))
    assert app.load("b").ok
    assert sorted(p.name for p in (Path(app.config.commands_dir)).iterdir()) == [
        "_h.py",
        "a.py",
        "b.py",
    ]


# -- shadowing -----------------------------------------------------------------------------

JSON_MODULE = '''
from bot.api import command

NOT_THE_STDLIB = True

@command
def fmt(ctx, args):
    """fmt -- json of a dict"""
    import json as std
    return std.dumps({"a": 1})
'''

USES_JSON = '''
import json
from bot.api import command

@command
def enc(ctx, args):
    """enc -- json of a list"""
    return json.dumps([1, 2]) + " " + str(hasattr(json, "NOT_THE_STDLIB"))
'''


def test_a_command_module_named_like_a_stdlib_module_does_not_shadow_it(
    make: Callable[..., App],
) -> None:
    app = make({"json.py": JSON_MODULE, "user.py": USES_JSON})
    report = app.load_all()
    assert report.ok and report.loaded == ["json", "user"], report.errors

    assert say(app, "!fmt") == ['{"a": 1}']
    assert say(app, "!enc") == ["[1, 2] False"]
    assert sys.modules["json"] is json
    assert not hasattr(json, "NOT_THE_STDLIB")
    mine = sys.modules[f"{app.namespace}.json"]
    assert mine.NOT_THE_STDLIB is True
    assert Path(str(mine.__file__)).parent == Path(app.config.commands_dir).resolve()
    assert app.reload(force=True).ok
    assert sys.modules["json"] is json
    assert say(app, "!enc") == ["[1, 2] False"]


# -- import rules ---------------------------------------------------------------------------

LAZY_IMPORT = '''
from bot.api import command

@command
def lazy(ctx, args):
    """lazy -- imports a helper at call time"""
    from . import _h
    return _h.X
'''

PARENT_IMPORT = """
def leak():
    from .. import secrets
    return secrets
"""

BLOCK_IMPORT = """
import os
if os.environ.get("NEVER_SET_X"):
    from . import _h
"""


@pytest.mark.parametrize(
    ("source", "marker", "message"),
    [
        (LAZY_IMPORT, "from . import _h", "import _h at the top of the file"),
        (PARENT_IMPORT, "from ..", "command modules live in one flat folder"),
        (BLOCK_IMPORT, "from . import _h", "import _h at the top of the file"),
    ],
    ids=["in-function", "parent-package", "in-block"],
)
def test_imports_that_break_generations_are_rejected_with_file_and_line(
    make: Callable[..., App], source: str, marker: str, message: str
) -> None:
    app = make({"_h.py": "X = 'h'\n", "ok.py": command_module("ok")})
    assert app.load_all().ok
    before = namespace_modules(app)
    edit(app, "a.py", source)

    report = app.load("a")

    assert not report.ok
    expected = f"commands/a.py:{line_of(source, marker)}: {message}"
    assert [e for e in report.errors if e.startswith(expected)], report.errors
    assert namespace_modules(app) == before
    assert say(app, "!lazy") == []
    assert say(app, "!ok") == ["ok"]


def test_inspect_source_finds_sibling_imports_in_every_spelling() -> None:
    source = b"""
import os
from . import _a, _b
from ._c import thing
from ns import _d
from ns._e import other
import ns._f
import nsx._g
from nsx import _h
"""
    info = inspect_source(source, "ns")
    assert info.imports == {"_a", "_b", "_c", "_d", "_e", "_f"}
    assert info.problems == ()


@pytest.mark.parametrize(
    ("source", "found"),
    [
        (b"from . import _a\n", {"_a"}),
        (b"from ._c import thing\n", {"_c"}),
        (b"from \\\n    . import _a\n", {"_a"}),
        (b"from\t.\t import _a\n", {"_a"}),
        (b"import os; from . import _a\n", {"_a"}),
        (b"from ns import _d\n", {"_d"}),
        (b"import ns._f\n", {"_f"}),
        (b"import os, ns._f\n", {"_f"}),
        (b"import json\nimport nsx._g\n", set()),
    ],
)
def test_each_sibling_import_alone_is_found(source: bytes, found: set[str]) -> None:
    # inspect_source skips parsing a module that cannot import a sibling: that
    # shortcut must let every spelling through.
    assert inspect_source(source, "ns").imports == found


def test_inspect_source_reports_every_misplaced_import_line() -> None:
    source = textwrap.dedent(
        """
        def f():
            from . import _a

        class C:
            from ._b import x

        def g():
            import ns._c
        """
    ).encode()
    info = inspect_source(source, "ns")
    assert sorted(line for line, _ in info.problems) == [3, 6, 9]
    assert info.imports == {"_a", "_b", "_c"}


# -- start-up with broken files -------------------------------------------------------------

BROKEN_AT_IMPORT = '''
from bot.api import command

VALUE = nope

@command
def b(ctx, args):
    """b -- never loads"""
    return "b"
'''

BROKEN_HELPER = """
import math
RATIO = math.pi / 0
"""

USES_HELPER = '''
from bot.api import command
from ._h import RATIO

@command
def {name}(ctx, args):
    """{name} -- uses the helper"""
    return str(RATIO)
'''

CALLS_HELPER = '''
from bot.api import command
from ._h import ratio

TABLE = ratio(0)

@command
def {name}(ctx, args):
    """{name} -- calls the helper at import"""
    return str(TABLE)
'''

GOOD_HELPER_FUNCTION = """
def ratio(n):
    return 1 / n
"""


def test_one_broken_module_at_start_up_does_not_stop_the_others(
    make: Callable[..., App],
) -> None:
    app = make({"a.py": command_module("a"), "b.py": BROKEN_AT_IMPORT, "c.py": command_module("c")})
    report = app.load_all()

    assert report.loaded == ["a", "c"]
    assert report.errors == [
        f"commands/b.py:{line_of(BROKEN_AT_IMPORT, 'nope')}: NameError: name 'nope' is not defined"
    ]
    assert say(app, "!a") == ["a"] and say(app, "!c") == ["c"] and say(app, "!b") == []
    assert set(namespace_modules(app)) == {app.namespace} | {f"{app.namespace}.{n}" for n in "ac"}


def test_a_broken_helper_at_start_up_removes_only_its_importers(
    make: Callable[..., App],
) -> None:
    app = make(
        {
            "_h.py": BROKEN_HELPER,
            "a.py": USES_HELPER.format(name="a"),
            "b.py": USES_HELPER.format(name="b"),
            "c.py": command_module("c"),
        }
    )
    report = app.load_all()

    assert report.loaded == ["c"]
    line = line_of(BROKEN_HELPER, "/ 0")
    # named once (not once per importer), at the helper's line
    assert report.errors == [f"commands/_h.py:{line}: ZeroDivisionError: float division by zero"]
    assert say(app, "!c") == ["c"] and say(app, "!a") == [] and say(app, "!b") == []
    assert set(app.registry.modules) == {"c"}


def test_a_module_that_fails_inside_a_helper_call_is_blamed_alone(
    make: Callable[..., App],
) -> None:
    app = make(
        {
            "_h.py": GOOD_HELPER_FUNCTION,
            "a.py": CALLS_HELPER.format(name="a"),
            "b.py": USES_HELPER.format(name="b").replace("RATIO", "ratio"),
        }
    )
    report = app.load_all()

    # the failing line is in the helper, but the helper is fine: only a is left out
    assert report.loaded == ["_h", "b"]
    line = line_of(GOOD_HELPER_FUNCTION, "1 / n")
    assert report.errors == [f"commands/_h.py:{line}: ZeroDivisionError: division by zero"]
    assert len(say(app, "!b")) == 1


def test_a_failing_setup_at_start_up_leaves_only_that_module_out(
    make: Callable[..., App],
) -> None:
    failing = command_module("a") + "\ndef setup(bot):\n    raise KeyError('config')\n"
    app = make({"a.py": failing, "b.py": command_module("b")})
    report = app.load_all()
    assert report.loaded == ["b"]
    assert report.errors == [
        f"commands/a.py:{line_of(failing, 'KeyError')}: setup() raised KeyError: 'config'"
    ]
    assert say(app, "!a") == [] and say(app, "!b") == ["b"]


def test_a_syntax_error_in_a_helper_names_the_helper(make: Callable[..., App]) -> None:
    app = make({"_h.py": "def f(:\n    pass\n", "a.py": USES_HELPER.format(name="a")})
    report = app.load_all()
    assert report.loaded == []
    assert len(report.errors) == 1 and report.errors[0].startswith("commands/_h.py:1: SyntaxError")


def test_sys_exit_at_import_is_an_error_not_an_exit(make: Callable[..., App]) -> None:
    app = make({"a.py": "import sys\nsys.exit('bye')\n", "b.py": command_module("b")})
    report = app.load_all()
    assert report.loaded == ["b"]
    assert report.errors == ["commands/a.py:2: SystemExit: bye"]


def test_a_command_alias_equal_to_its_own_name_is_not_a_clash(make: Callable[..., App]) -> None:
    source = '''
    from bot.api import command

    @command(aliases=["x", "ex"])
    def x(ctx, args):
        """x -- aliased to itself"""
        return "x"
    '''
    app = make({"a.py": source})
    report = app.load_all()
    assert report.ok, report.errors
    assert say(app, "!ex") == ["x"]


def test_a_global_whose_attribute_lookup_raises_is_not_a_command(
    make: Callable[..., App],
) -> None:
    proxy = """
    class LazyProxy:
        def __getattr__(self, name):
            raise RuntimeError("working outside of a context")

    current = LazyProxy()
    """
    app = make({"a.py": command_module("a", proxy), "b.py": command_module("b")})
    report = app.load_all()
    assert report.ok and report.loaded == ["a", "b"], report.errors
    assert say(app, "!a") == ["a"]


# -- the loader's own transaction -----------------------------------------------------------


def execute(
    loader: Loader, current: dict[str, Any], want: set[str], fresh: set[str]
) -> dict[str, Any]:
    """One committed loader transaction executing ``fresh`` (no helpers here)."""
    sources = [loader.source(name) for name in sorted(fresh)]
    assert all(sources)
    with loader.transaction(current) as txn:
        modules = txn.execute(sources, want)  # type: ignore[arg-type]
        txn.commit()
    return modules


def test_a_failed_transaction_restores_sys_modules_and_linecache(tmp_path: Path) -> None:
    folder = tmp_path / "commands"
    write(folder / "a.py", command_module("a", "", '"v1"'))
    write(folder / "b.py", command_module("b"))
    loader = Loader(folder, "loadertest_ns")
    try:
        current = execute(loader, {}, {"a", "b"}, {"a", "b"})
        before = {k: v for k, v in sys.modules.items() if k.startswith("loadertest_ns")}
        path = str(current["a"].path)
        lines_before = linecache.cache[path]

        write(folder / "a.py", command_module("a", "", '"second version"'))
        write(folder / "b.py", "raise RuntimeError('b fails')\n")  # a runs first, then b fails
        with pytest.raises(LoadFailed) as failed, loader.transaction(current) as txn:
            txn.execute([loader.source("a"), loader.source("b")], {"a", "b"})  # type: ignore[list-item]
        assert [str(e) for e in failed.value.errors] == ["commands/b.py:1: RuntimeError: b fails"]
        assert failed.value.ran == ("commands/a.py", "commands/b.py")

        after = {k: v for k, v in sys.modules.items() if k.startswith("loadertest_ns")}
        assert after.keys() == before.keys()
        assert all(after[k] is before[k] for k in before)
        # tracebacks of the version still serving show the text that runs
        assert linecache.cache[path] is lines_before
        assert linecache.getline(path, 6) == '    return "v1"\n'
    finally:
        for key in [k for k in sys.modules if k.startswith("loadertest_ns")]:
            del sys.modules[key]


def test_a_file_that_does_not_compile_stops_the_transaction_before_any_code_runs(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "commands"
    write(folder / "a.py", "import sys\nsys.modules['ran_a_loader_test'] = sys\n")
    write(folder / "b.py", "def broken(:\n")
    loader = Loader(folder, "loadertest_ns4")
    with pytest.raises(LoadFailed) as failed, loader.transaction({}) as txn:
        txn.execute([loader.source("a"), loader.source("b")], {"a", "b"})  # type: ignore[list-item]
    assert [str(e) for e in failed.value.errors] == ["commands/b.py:1: SyntaxError: invalid syntax"]
    assert failed.value.ran == ()
    assert "ran_a_loader_test" not in sys.modules
    assert not [k for k in sys.modules if k.startswith("loadertest_ns4")]


def test_an_unexpected_error_inside_a_transaction_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "commands"
    write(folder / "a.py", command_module("a"))
    loader = Loader(folder, "loadertest_ns2")
    try:
        current = execute(loader, {}, {"a"}, {"a"})
        before = {k: v for k, v in sys.modules.items() if k.startswith("loadertest_ns2")}

        def explode(*args: object) -> None:
            raise MemoryError("simulated")

        monkeypatch.setattr(bot.loader, "_duplicates", explode)
        with pytest.raises(MemoryError), loader.transaction(current) as txn:
            txn.execute([loader.source("a")], {"a"})  # type: ignore[list-item]

        after = {k: v for k, v in sys.modules.items() if k.startswith("loadertest_ns2")}
        assert after.keys() == before.keys()
        assert all(after[k] is before[k] for k in before)
    finally:
        for key in [k for k in sys.modules if k.startswith("loadertest_ns2")]:
            del sys.modules[key]


def test_a_failed_first_load_leaves_no_namespace_package(tmp_path: Path) -> None:
    folder = tmp_path / "commands"
    write(folder / "a.py", "raise ImportError('no')\n")
    loader = Loader(folder, "loadertest_ns3")
    with pytest.raises(LoadFailed), loader.transaction({}) as txn:
        txn.execute([loader.source("a")], {"a"})  # type: ignore[list-item]
    assert not [k for k in sys.modules if k.startswith("loadertest_ns3")]


def test_an_old_generation_traceback_shows_the_code_that_ran(
    make: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    v1 = command_module("boom", "", 'int("v1 line")')
    app = make({"a.py": v1, "b.py": command_module("b")})
    assert app.load_all().ok
    # a failed reload executes the new a.py, then rolls back to v1
    edit(app, "a.py", command_module("boom", "", 'int("v2 text that never served")'))
    edit(app, "b.py", "raise RuntimeError('b fails at import')\n")
    assert not app.reload().ok

    with caplog.at_level(logging.ERROR):
        (answer,) = say(app, "!boom")
    assert answer.startswith("boom failed: ValueError") and "commands/a.py:6" in answer
    assert 'return int("v1 line")' in caplog.text
    assert "never served" not in caplog.text


# -- the folder -------------------------------------------------------------------------------


def test_commands_dir_only_resolves_plain_files_directly_inside(tmp_path: Path) -> None:
    folder = tmp_path / "commands"
    write(folder / "ok.py", "")
    write(folder / "sub" / "deep.py", "")
    write(tmp_path / "outside.py", "")
    (folder / "out.py").symlink_to(tmp_path / "outside.py")
    (folder / "alias.py").symlink_to(folder / "ok.py")
    (folder / "dir.py").mkdir()
    commands = CommandsDir(folder)

    assert commands.file_for("ok") == commands.path / "ok.py"
    assert commands.file_for("alias") == commands.path / "alias.py"  # stays inside: allowed
    for name in ["out", "dir", "sub", "deep", "sub/deep", "../outside", "..", "", "é", "missing"]:
        assert commands.file_for(name) is None, name
    assert sorted(commands.scan()) == ["alias", "ok"]
    assert commands.display(commands.path / "ok.py") == "commands/ok.py"


@pytest.mark.parametrize(
    "source",
    [
        "def f():\n    from . import _x\n",
        "def f(): from . import _x\n",
        "if True:\n\tfrom ._x import y\n",
        "x = 1; from . import _x\n",
    ],
)
def test_every_nested_sibling_import_is_found(source: str) -> None:
    info = inspect_source(source.encode(), "commands")
    assert info.imports == {"_x"}
    nested = not source.startswith("x = 1")
    assert bool(info.problems) == nested, info.problems


# -- the watcher starts after the first load ---------------------------------------------


def test_saves_between_the_first_load_and_the_watcher_start_are_applied(
    make: Callable[..., App],
) -> None:
    # run() loads, then starts the watcher on another thread (importing watchdog takes
    # ~80 ms): a save in between raises no event the watcher could see.
    app = make(
        {"a.py": command_module("a", reply='"one"'), "b.py": command_module("b")}, watch=True
    )
    assert app.load_all().ok
    edit(app, "a.py", command_module("a", reply='"two"'))
    edit(app, "c.py", command_module("c"))
    (commands_dir(app) / "b.py").unlink()

    app.start_watching()

    assert app.watching.is_set()
    assert sorted(app.registry.modules) == ["a", "c"]
    assert say(app, "!a") == ["two"]


# -- files deleted before a !reload of all ------------------------------------------------


def test_reload_of_all_unloads_a_module_whose_file_is_gone(make: Callable[..., App]) -> None:
    app = make({"a.py": command_module("a"), "b.py": command_module("b")})
    assert app.load_all().ok
    (commands_dir(app) / "b.py").unlink()

    report = app.reload()

    assert report.ok and report.unloaded == ["b"], report.summary()
    assert sorted(app.registry.modules) == ["a"]
    assert say(app, "!b") == []


def test_reload_of_all_with_a_used_helper_gone_fails_and_changes_nothing(
    make: Callable[..., App],
) -> None:
    uses_helper = command_module("a", body="from . import _h", reply="_h.WORD")
    app = make({"a.py": uses_helper, "_h.py": 'WORD = "from the helper"\n'})
    assert app.load_all().ok
    (commands_dir(app) / "_h.py").unlink()

    report = app.reload()

    assert not report.ok
    assert "_h" in " ".join(report.errors), report.errors
    assert say(app, "!a") == ["from the helper"]  # the old version keeps serving
