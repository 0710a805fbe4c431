"""Build step only (the project is described in pyproject.toml).

The wheel carries the top-level ``config.yaml`` and ``commands/`` as ``bot/skeleton/``,
what ``reloadbot init`` writes. They are copied here, at build time, so the
repository keeps one copy of each file.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithSkeleton(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "bot" / "skeleton"
        (target / "commands").mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "config.yaml", target / "config.yaml")
        for module in (ROOT / "commands").glob("*.py"):
            shutil.copy2(module, target / "commands" / module.name)


setup(cmdclass={"build_py": BuildWithSkeleton})
