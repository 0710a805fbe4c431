"""Periodic backups of the state database: when they are taken, and which are kept.

Owns the schedule (one daemon thread, a backup every ``interval`` seconds, the
first one ``interval`` after start so a restart loop cannot push the older
ones out) and the rotation (files named ``state-YYYYmmddTHHMMSSZ.sqlite3``, in
UTC; the newest ``keep`` stay, nothing else in the folder is touched). The copy
itself is ``Storage.backup``: consistent while the bot writes, checked before
it replaces anything.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

from bot.storage import Storage

__all__ = ["BACKUP_NAME", "Backups", "backup_into"]

log = logging.getLogger(__name__)

BACKUP_NAME = re.compile(r"state-\d{8}T\d{6}Z\.sqlite3")


def backup_into(storage: Storage, folder: Path | str, keep: int) -> Path:
    """One backup of ``storage`` in ``folder``, then all but the newest ``keep`` of that
    name there deleted."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, not {keep!r}")
    folder = Path(folder)
    made = storage.backup(folder / time.strftime("state-%Y%m%dT%H%M%SZ.sqlite3", time.gmtime()))
    backups = sorted(p for p in folder.iterdir() if BACKUP_NAME.fullmatch(p.name))
    for old in backups[:-keep]:
        old.unlink(missing_ok=True)
    return made


class Backups:
    """``backup_into`` every ``interval`` seconds until ``stop()``; a failure is logged."""

    def __init__(self, storage: Storage, folder: Path | str, interval: float, keep: int) -> None:
        if not interval > 0 or keep < 1:
            raise ValueError(f"need interval > 0 and keep >= 1, not {interval!r}, {keep!r}")
        self.storage = storage
        self.folder = Path(folder)
        self.interval = interval
        self.keep = keep
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-backups", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """No more backups; waits up to ``timeout`` s for one under way."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                made = backup_into(self.storage, self.folder, self.keep)
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.error("state backup into %s failed: %s", self.folder, exc)
            else:
                log.debug("state backed up to %s", made)
