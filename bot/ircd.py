"""Starts a throwaway local ngIRCd: the server ``python -m bot --demo`` talks to.

The package ships only what the demo needs: :class:`Ngircd` and the helpers it
is built from (free ports, finding and spawning a binary, stopping it, polling
with a deadline).  The project's own tests and benchmarks use it too; their
InspIRCd + Atheme network (accounts, SASL) lives in ``tests/ircnet.py`` and
builds on these helpers.

The server listens on 127.0.0.1 only, on a free port, and keeps every file in a
private temporary directory.  It runs in the foreground as a child process in
its own session, so stopping it never touches anything else on the host.
``Ngircd`` is a plain RFC server with flood penalties switched off, so a bot and
test clients can exchange thousands of lines per second.

Stdlib only.  Every wait polls with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "IrcdError",
    "Ngircd",
    "free_port",
    "free_ports",
]

HOST = "127.0.0.1"
_POLL = 0.005  # seconds between two polls of a condition


class IrcdError(RuntimeError):
    """A local IRC server could not be started, stopped or used."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free loopback ports (all sockets bound at once)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------- helpers


def _find_binary(name: str, fallback: str, package: str) -> str:
    found = shutil.which(name) or (fallback if os.access(fallback, os.X_OK) else None)
    if found is None:
        raise IrcdError(
            f"{name} not found (neither on PATH nor at {fallback}); "
            f"install it with: sudo apt-get install {package}"
        )
    return found


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"  ({path.name}: {exc.strerror})"
    body = "\n".join("  " + line for line in text.splitlines()[-lines:])
    return f"--- last lines of {path} ---\n{body or '  (empty)'}"


def _poll(predicate: Callable[[], bool], timeout: float) -> bool:
    """Call ``predicate`` until it returns true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _spawn(argv: list[str], out: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with out.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,  # own session: a ^C in the terminal does not hit it
            close_fds=True,
        )


def _terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout)


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError as exc:
        raise IrcdError("running as root, but there is no 'nobody' user for ngircd") from exc
    return entry.pw_uid, entry.pw_gid


# --------------------------------------------------------------------------- ngircd

_NGIRCD_CONF = """\
# ngIRCd 26 test server: loopback only, no throttling, no lookups.
[Global]
Name = irc.test
Info = reloadbot test server
AdminInfo1 = reloadbot tests
AdminInfo2 = loopback
AdminEMail = admin@irc.test
Listen = {host}
Ports = {port}
PidFile = {dir}/ngircd.pid
MotdPhrase = reloadbot test server
{uid_lines}
[Limits]
# 0 = unlimited
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxListSize = 0
MaxNickLength = 30
# 0 disables the per-command penalty (and the 1 s read pause it causes)
MaxPenaltyTime = 0
PingTimeout = {ping_timeout}
PongTimeout = {pong_timeout}
IdleTimeout = 0

[Options]
DNS = no
Ident = no
PAM = no
RequireAuthPing = no
# only this directory, never /etc/ngircd/ngircd.conf.d
IncludeDir = {dir}/conf.d
"""


class _Server:
    """What every server launcher shares: ``with server:`` starts and stops it.

    Subclassed by :class:`Ngircd` here and by ``InspircdAtheme`` in ``tests/ircnet.py``.
    """

    host: str
    port: int

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"


class Ngircd(_Server):
    """A throwaway ngIRCd on 127.0.0.1 with flood penalties off.

    ``Ngircd().start()`` (or ``with Ngircd() as server:``) writes a config into a
    temporary directory and runs ``ngircd -n -f <conf>`` until :meth:`stop`.
    As root, ngircd itself switches to the ``nobody`` user, so the directory is
    handed to that user.
    """

    name = "irc.test"

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        *,
        ping_timeout: int = 600,
        pong_timeout: int = 600,
        start_timeout: float = 10.0,
    ) -> None:
        self.host = HOST
        self._fixed_port = port
        self.port = port if port is not None else 0
        self._workdir = Path(workdir) if workdir is not None else None
        self.dir: Path | None = None
        self.ping_timeout = ping_timeout
        self.pong_timeout = pong_timeout
        self.start_timeout = start_timeout
        self.binary = _find_binary("ngircd", "/usr/sbin/ngircd", "ngircd")
        self.proc: subprocess.Popen[bytes] | None = None
        self._own_dir = False

    # -- public API ------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> Path:
        """ngircd's stdout/stderr (its log, since it runs in the foreground)."""
        if self.dir is None:
            raise IrcdError("the server has not been started")
        return self.dir / "ngircd.out"

    def start(self) -> Self:
        """Start the server and return once its port accepts connections."""
        if self.running:
            raise IrcdError(f"ngircd is already running on port {self.port}")
        self._cleanup_dir()  # left over from kill() or a failed start
        attempts = 1 if self._fixed_port is not None or self.port else 3
        for attempt in range(attempts):
            if not self.port:
                self.port = free_port()
            try:
                self._start_once()
                break
            except IrcdError:
                bind_failed = self.dir is not None and "Can't bind" in self._read_log()
                if attempt + 1 == attempts or not bind_failed:
                    raise
                self._cleanup_dir()
                self.port = 0
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its directory."""
        atexit.unregister(self.stop)
        _terminate(self.proc)
        self.proc = None
        self._cleanup_dir()

    def kill(self) -> None:
        """SIGKILL the server, like a crash; a later :meth:`start` reuses the same port."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> Self:
        """Stop and start again on the same port (connected clients are dropped)."""
        port = self.port
        self.stop()
        self.port = port
        return self.start()

    # -- internals -------------------------------------------------------------

    def _prepare_dir(self) -> Path:
        if self._workdir is not None:
            self._workdir.mkdir(parents=True, exist_ok=True)
            directory, self._own_dir = self._workdir.resolve(), False
        else:
            directory, self._own_dir = Path(tempfile.mkdtemp(prefix="ngircd-")), True
        (directory / "conf.d").mkdir(exist_ok=True)
        uid_lines = ""
        if os.geteuid() == 0:
            # ngircd refuses to keep uid 0 and switches to "nobody" before it writes
            # the pid file: give that user the directory.
            uid, gid = _nobody()
            uid_lines = f"ServerUID = {uid}\nServerGID = {gid}\n"
        conf = directory / "ngircd.conf"
        conf.write_text(
            _NGIRCD_CONF.format(
                host=self.host,
                port=self.port,
                dir=directory,
                uid_lines=uid_lines,
                ping_timeout=self.ping_timeout,
                pong_timeout=self.pong_timeout,
            )
        )
        if os.geteuid() == 0:
            uid, gid = _nobody()
            for path in (directory, directory / "conf.d", conf):
                os.chown(path, uid, gid)
        return directory

    def _read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, IrcdError):
            return ""

    def _start_once(self) -> None:
        self.dir = self._prepare_dir()
        log = self.dir / "ngircd.out"
        self.proc = _spawn([self.binary, "-n", "-f", str(self.dir / "ngircd.conf")], log, self.dir)
        listening = f"Now listening on [{self.host}]:{self.port} "

        def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                return True
            return listening in self._read_log() and _can_connect(self.host, self.port)

        ok = _poll(ready, self.start_timeout)
        if ok and self.running:
            return
        why = f"exited with status {self.proc.poll()}" if ok else "did not start listening"
        _terminate(self.proc)
        self.proc = None
        raise IrcdError(
            f"ngircd {why} on {self.host}:{self.port} within {self.start_timeout} s "
            f"(files kept in {self.dir})\n{_tail(log)}"
        )

    def _cleanup_dir(self) -> None:
        if self.dir is not None and self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
