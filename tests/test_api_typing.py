"""The author API is typed: bot/api.py passes mypy --strict (as do message.py,
deferred.py, and web.py and charsets.py behind ctx.fetch), and the package ships py.typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_api_passes_mypy_strict() -> None:
    pytest.importorskip("mypy")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "bot/api.py",
            "bot/message.py",
            "bot/deferred.py",
            "bot/web.py",
            "bot/netguard.py",
            "bot/charsets.py",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_py_typed_is_shipped() -> None:
    assert (REPO / "bot" / "py.typed").is_file()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'bot = ["py.typed"]' in pyproject
