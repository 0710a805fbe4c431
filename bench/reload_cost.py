"""In-process cost of one reload, with the shipped command modules loaded.

    python bench/reload_cost.py [--runs 300]

Builds an App (never connected) on a copy of commands/, freezes the start-up
objects as the bot does, then times ``App.reload(["echo"])`` and, after a
one-line edit to dice.py each time, ``App.reload()`` (all, one changed).
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from inproc import local_app  # noqa: E402

import bot.folder  # noqa: E402
from bot.config import parse_config  # noqa: E402

CONFIG = """\
server: {host: 127.0.0.1}
nick: bench
channels: ["#bench"]
prefix: "!"
admins: ["admin!*@127.0.0.1"]
commands_dir: commands
state_db: null
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        shutil.copytree(REPO / "commands", base / "commands")
        # A file changed less than RACY_NS before it is read is always compared by
        # content; deployed modules are older than that. (Absent before 2026-11-23.)
        time.sleep(bot.folder.RACY_NS / 1e9 + 0.1)
        app, network = local_app(parse_config(CONFIG, base_dir=base))
        gc.freeze()
        try:
            report = app.load_all()
            print(f"loaded {len(app.registry.modules)} modules ({report.summary()[:40]}...)")
            for _ in range(20):
                app.reload(["echo"])
            start = time.perf_counter()
            for _ in range(runs):
                app.reload(["echo"])
                network.run_due()  # the collection the bot runs 50 ms after a reload
            one = (time.perf_counter() - start) / runs * 1000
            dice = base / "commands" / "dice.py"
            text = dice.read_text()
            start = time.perf_counter()
            for i in range(runs // 3):
                dice.write_text(f"{text}\n# edit {i}\n")
                app.reload()
                network.run_due()
            changed = (time.perf_counter() - start) / (runs // 3) * 1000
        finally:
            app.close()
    print(f"reload of one module:      {one:.3f} ms (mean of {runs})")
    print(f"reload all, one changed:   {changed:.3f} ms (mean of {runs // 3}, edit included)")


if __name__ == "__main__":
    main()
