"""bot.deferred: modules imported at start-up but never used are executed only on use,
once, whichever thread touches them first."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import textwrap
import threading
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.deferred import UNUSED_AT_START, DeferredModule, deferred_modules, deferring

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def package(tmp_path: Path) -> Iterator[str]:
    """A throwaway package on sys.path; its modules record each execution in ``_log``."""
    name = f"defer_{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "_log.py").write_text("runs = []\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def module_file(package: str, name: str, body: str) -> str:
    folder = Path(importlib.import_module(package).__path__[0])
    header = f"from {package} import _log\n_log.runs.append(__name__)\n"
    (folder / f"{name}.py").write_text(header + textwrap.dedent(body))
    return f"{package}.{name}"


def runs(package: str) -> list[str]:
    return sys.modules[f"{package}._log"].runs


def test_a_deferred_module_runs_on_first_use_and_is_then_an_ordinary_module(
    package: str,
) -> None:
    full = module_file(package, "heavy", "VALUE = 42\ndef double(x):\n    return 2 * x\n")
    with deferring([full]):
        __import__(full)
    module = sys.modules[full]
    __import__(f"{package}._log")

    assert type(module) is DeferredModule and runs(package) == []
    # what the import machinery, repr and inspect read does not execute it
    assert module.__name__ == full and module.__file__.endswith("heavy.py")
    assert hasattr(module, "__spec__") and full in repr(module)
    assert inspect.getmodule(runs.__code__) is sys.modules[__name__]  # reads every __file__
    assert deferred_modules() == [full]
    assert runs(package) == []

    assert module.double(module.VALUE) == 84
    assert runs(package) == [full]  # once
    assert type(module) is types.ModuleType
    assert module.__spec__.loader_state is None
    assert full not in deferred_modules()


def test_the_first_use_may_be_a_name_the_module_makes_up_in_getattr(package: str) -> None:
    full = module_file(package, "dynamic", "def __getattr__(name):\n    return name.upper()\n")
    with deferring([full]):
        __import__(full)
    module = sys.modules[full]
    assert module.anything == "ANYTHING"  # the very access that executes it (PEP 562)
    assert module.more == "MORE"


def test_setting_an_attribute_first_executes_it_first(package: str) -> None:
    full = module_file(package, "patched", "X = 1\nY = 2\n")
    with deferring([full]):
        __import__(full)
    module = sys.modules[full]
    module.X = 5  # as a test's monkeypatch would, before anything read it
    del module.Y
    assert module.X == 5 and not hasattr(module, "Y")
    assert runs(package) == [full]


def test_only_named_modules_imported_inside_the_block_are_deferred(package: str) -> None:
    named = module_file(package, "named", "X = 1\n")
    other = module_file(package, "other", "X = 2\n")
    late = module_file(package, "late", "X = 3\n")
    with deferring([named, late]):
        __import__(named)
        __import__(other)
    __import__(late)

    assert type(sys.modules[named]) is DeferredModule
    assert type(sys.modules[other]) is types.ModuleType
    assert type(sys.modules[late]) is types.ModuleType  # imported after start-up
    assert runs(package) == [other, late]


def test_modules_that_are_not_python_files_import_as_usual() -> None:
    saved = sys.modules.pop("_bisect", None)
    try:
        with deferring(["_bisect"]):  # an extension module (or built in)
            import _bisect
        assert type(_bisect) is types.ModuleType
    finally:
        if saved is not None:
            sys.modules["_bisect"] = saved


def test_threads_that_touch_it_together_all_see_it_complete_and_it_runs_once(
    package: str,
) -> None:
    # The first thread's execution is held open until seven more threads have asked
    # for the same attribute: none of them may see a half-executed module.
    gate = module_file(package, "_gate", "import threading\nentered = threading.Event()\n")
    full = module_file(
        package,
        "slow",
        f"""
        from {package} import _gate
        _gate.entered.set()
        _gate.release.wait(10)
        VALUE = 42
        """,
    )
    gate_module = __import__(gate, fromlist=["x"])
    gate_module.release = threading.Event()
    with deferring([full]):
        __import__(full)
    module = sys.modules[full]
    results: list[object] = []

    def read() -> None:
        try:
            results.append(module.VALUE)
        except Exception as exc:
            results.append(exc)

    first = threading.Thread(target=read)
    first.start()
    assert gate_module.entered.wait(10)
    others = [threading.Thread(target=read) for _ in range(7)]
    for thread in others:
        thread.start()
    gate_module.release.set()
    for thread in [first, *others]:
        thread.join(10)

    assert results == [42] * 8
    assert runs(package).count(full) == 1


def test_a_deferred_module_that_fails_fails_like_an_import(package: str) -> None:
    full = module_file(package, "broken", "raise RuntimeError('no luck')\n")
    with deferring([full]):
        __import__(full)
    module = sys.modules[full]

    with pytest.raises(RuntimeError, match="no luck"):
        module.anything  # noqa: B018
    assert full not in sys.modules  # the next import tries again, as after a failed import
    with pytest.raises(RuntimeError, match="no luck"):
        __import__(full)


def test_the_start_up_list_defers_modules_of_the_irc_library_and_the_bot_still_works(
    tmp_path: Path,
) -> None:
    script = (
        "from bot.deferred import deferring, deferred_modules\n"
        "with deferring():\n"
        "    import bot.cli\n"
        "print(' '.join(deferred_modules()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True
    )
    deferred = out.stdout.split()
    # The list names what irc.client's dependencies import; if none of it is imported
    # any more, the list is stale (update it, see docs/benchmarks.md).
    assert deferred, "nothing deferred: is UNUSED_AT_START out of date?"
    assert set(deferred) <= set(UNUSED_AT_START)

    # python -m bot runs under the deferral: it checks the shipped modules fine
    check = subprocess.run(
        [sys.executable, "-m", "bot", "--check", "--config", str(REPO / "config.yaml")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert check.returncode == 0, check.stderr
