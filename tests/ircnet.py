"""The tests' InspIRCd + Atheme network: accounts, SASL PLAIN, IRCv3 tags (not shipped).

This file owns :class:`InspircdAtheme` (InspIRCd 3 linked to Atheme services:
NickServ accounts, SASL PLAIN and the IRCv3 ``account-tag``/``message-tags``/
``extended-join``/``account-notify`` capabilities), its two config templates,
the client limits tests pick from (:data:`NO_THROTTLES`, :data:`DEBIAN_STOCK`),
the blocking connection the fixture itself uses, and :func:`split_line` (also
used by ``bench/driver.py``).  Only the project's tests and benchmarks need it,
so it lives here and not in the ``bot`` package; the shared helpers (free
ports, spawning and stopping a binary, polling) and the ``_Server`` base come
from :mod:`bot.ircd`, which keeps what the demo's ngIRCd needs.

Both servers listen on 127.0.0.1 only, on free ports, and keep every file in a
private temporary directory; they run as child processes in their own session.
Stdlib only (plus ``bot.ircd``).  Every wait polls with a deadline.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from bot.ircd import (
    HOST,
    IrcdError,
    _find_binary,
    _poll,
    _Server,
    _spawn,
    _tail,
    _terminate,
    free_ports,
)

__all__ = ["DEBIAN_STOCK", "NO_THROTTLES", "InspircdAtheme", "split_line"]


class _RawConnection:
    """A minimal blocking IRC connection used by the fixtures themselves."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._buf = b""
        self.lines: list[str] = []

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def read_until(self, predicate: Callable[[str], bool], timeout: float) -> str:
        """Return the first received line matching ``predicate``; answer PINGs meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buf:
                raw, self._buf = self._buf.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode(errors="replace")
                self.lines.append(line)
                if line.startswith("PING"):
                    self.send("PONG" + line[4:])
                if predicate(line):
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching line; last lines:\n" + "\n".join(self.lines[-20:]))
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionError(
                    "server closed the connection:\n" + "\n".join(self.lines[-20:])
                )
            self._buf += data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def split_line(line: str) -> tuple[str, str, list[str]]:
    """Split a raw line into (source nick, command, params); tags are dropped."""
    if line.startswith("@"):
        line = line.split(" ", 1)[1] if " " in line else ""
    source = ""
    if line.startswith(":"):
        prefix, _, line = line.partition(" ")
        source = prefix[1:].split("!", 1)[0]
    trailing = None
    if " :" in line:
        line, trailing = line.split(" :", 1)
    parts = line.split()
    params = parts[1:] + ([trailing] if trailing is not None else [])
    return source, (parts[0].upper() if parts else ""), params


# --------------------------------------------------------------------------- InspIRCd + Atheme

_INSPIRCD_CONF = """\
# InspIRCd 3 (Debian package "inspircd"): one server, loopback only,
# linked to Atheme services.  {dir} is a private temporary directory.
<server name="irc.test" description="Test IRC server" network="TestNet" id="001">
<admin name="Test" nick="admin" email="admin@irc.test">

# Keep InspIRCd out of /etc, /var/lib and /run; every file path is absolute.
<path configdir="{dir}" datadir="{dir}" logdir="{dir}" runtimedir="{dir}">

<bind address="127.0.0.1" port="{client_port}" type="clients">
<bind address="127.0.0.1" port="{link_port}" type="servers">

# {connect_comment}
# No DNS or ident lookups; connectban/connflood modules are not loaded.
<connect name="main" allow="*" {connect}
         localmax="10000" globalmax="10000" limit="100000" maxchans="100"
         resolvehostnames="no" useident="no" maxconnwarn="no">
<dns server="127.0.0.1" timeout="1">
<options casemapping="rfc1459" syntaxhints="no" announcets="yes"
         hostintopic="yes" pingwarning="0" serverpingfreq="1m">
<performance clonesonconnect="no" quietbursts="yes" softlimit="1024"
             somaxconn="128" netbuffersize="10240">
<security hideulines="no" userstats="Pu" maxtargets="20" flatlinks="no"
          hidesplits="no">
<files motd="{dir}/motd.txt">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{dir}/ircd.log">

<module name="cap">
<module name="ircv3">
<ircv3 accountnotify="yes" awaynotify="yes" extendedjoin="yes">
<module name="ircv3_accounttag">
<module name="ircv3_ctctags">
<module name="ircv3_msgid">
<module name="ircv3_servertime">
<module name="ircv3_capnotify">
<module name="ircv3_echomessage">
<module name="ircv3_chghost">
<module name="ircv3_batch">

# An operator for tests that change a user's host (CHGHOST); from loopback only.
<class name="HostChange" commands="CHGHOST">
<type name="TestOper" classes="HostChange">
<oper name="testoper" password="{oper_password}" host="*@127.0.0.1" type="TestOper">

# "sasl" is only advertised while services.test is linked.
<module name="sasl">
<sasl target="services.test" requiressl="no">
<module name="services_account">
<module name="svshold">
<module name="chghost">
<module name="cban">

<module name="spanningtree">
<link name="services.test" ipaddr="127.0.0.1" port="{link_port}"
      allowmask="127.0.0.1/32" sendpass="{password}" recvpass="{password}"
      timeout="10s">
<uline server="services.test" silent="yes">
"""

_ATHEME_CONF = """\
/* Atheme 7.2 (Debian package "atheme-services"), linked to InspIRCd 3. */
loadmodule "modules/protocol/inspircd";
loadmodule "modules/backend/opensex";
loadmodule "modules/crypto/pbkdf2v2";

loadmodule "modules/nickserv/main";
loadmodule "modules/nickserv/help";
loadmodule "modules/nickserv/register";
loadmodule "modules/nickserv/identify";
loadmodule "modules/nickserv/logout";
loadmodule "modules/nickserv/info";
loadmodule "modules/nickserv/status";
loadmodule "modules/nickserv/drop";
loadmodule "modules/nickserv/ghost";
loadmodule "modules/nickserv/set_core";
loadmodule "modules/nickserv/set_password";
loadmodule "modules/nickserv/set_email";

loadmodule "modules/saslserv/main";
loadmodule "modules/saslserv/plain";
/* No SCRAM-SHA-256: it needs Atheme 7.3 (saslserv/scram-sha, and pbkdf2v2's digest
 * "SCRAM-SHA-256"). 7.2 has no such module and ignores that digest (using SHA512). */

serverinfo {{
\tname = "services.test";
\tdesc = "Atheme IRC Services";
\tnumeric = "42X";
\trecontime = 1;
\tnetname = "TestNet";
\thidehostsuffix = "users.test";
\tadminname = "Test";
\tadminemail = "admin@irc.test";
\tregisteremail = "noreply@irc.test";
\tloglevel = {{ error; info; admin; network; register; }};
\tmaxlogins = 100;
\tmaxusers = 0;
\tmdlimit = 30;
\temaillimit = 10;
\temailtime = 300;
\tauth = none;
\tcasemapping = rfc1459;
}};

uplink "irc.test" {{
\thost = "127.0.0.1";
\tport = {link_port};
\tpassword = "{password}";
}};

nickserv {{
\tnick = "NickServ";
\tuser = "NickServ";
\thost = "services.test";
\treal = "Nickname Services";
\tmaxnicks = 5;
\texpire = 0;
}};

saslserv {{
\tnick = "SaslServ";
\tuser = "SaslServ";
\thost = "services.test";
\treal = "SASL Authentication Agent";
}};

/* Cheapest settings allowed (test use only): ~4 ms per REGISTER/SASL login. */
pbkdf2v2 {{
\tdigest = "SHA256";
\trounds = 10000;
}};

general {{
\tflood_msgs = 0;
\tflood_time = 10;
\tkline_time = 7;
\tcommit_interval = 5;
\tuplink_sendq_limit = 1048576;
\tlanguage = "en";
\texempts {{
\t}};
\timmune_level = immune;
}};

operclass "user" {{ }};
"""


#: No throttles: no fakelag, a huge command rate and queues (tests of everything else).
NO_THROTTLES = {
    "timeout": "60",
    "pingfreq": "5m",
    "hardsendq": "4M",
    "softsendq": "1M",
    "recvq": "64K",
    "threshold": "1000",
    "commandrate": "1000000",
    "fakelag": "no",
}

#: The connect class of Debian's stock /etc/inspircd/inspircd.conf: fakelag on (the
#: default), 10 commands of burst, then the default command rate (1 a second), an 8 KiB
#: receive queue.  A client that sends faster is lagged, then "RecvQ exceeded".
DEBIAN_STOCK = {
    "timeout": "60",
    "pingfreq": "120",
    "hardsendq": "262144",
    "softsendq": "8192",
    "recvq": "8192",
    "threshold": "10",
}


class InspircdAtheme(_Server):
    """InspIRCd 3 linked to Atheme services on loopback: accounts, SASL PLAIN, IRCv3 tags.

    :meth:`start` returns once NickServ answers, i.e. SASL and REGISTER work.
    While running, a background connection sends a PING just after every
    wall-clock second, which makes InspIRCd's once-a-second registration tick
    happen right away: a new client gets ``001`` after 0-1 s (0.5 s on average)
    instead of always 1 s.  Connect the clients a test needs in parallel.
    """

    name = "irc.test"
    services_name = "services.test"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        tick: bool = True,
        start_timeout: float = 20.0,
        connect_class: dict[str, str] | None = None,
    ) -> None:
        self.host = HOST
        self.port = 0
        self.link_port = 0
        self._workdir = Path(workdir) if workdir is not None else None
        self.dir: Path | None = None
        self.tick = tick
        self.oper_password = secrets.token_hex(8)  # OPER testoper <this>: may CHGHOST
        # every client's limits (NO_THROTTLES, DEBIAN_STOCK or your own)
        self.connect_class = dict(NO_THROTTLES if connect_class is None else connect_class)
        self.start_timeout = start_timeout
        self.inspircd_binary = _find_binary("inspircd", "/usr/sbin/inspircd", "inspircd")
        self.atheme_binary = _find_binary(
            "atheme-services", "/usr/bin/atheme-services", "atheme-services"
        )
        self.inspircd: subprocess.Popen[bytes] | None = None
        self.atheme: subprocess.Popen[bytes] | None = None
        self._own_dir = False
        self._registrar: _RawConnection | None = None
        self._registrar_nick = ""
        self._registrar_lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._stop_ticker = threading.Event()

    # -- public API ------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self.inspircd, self.atheme))

    def start(self) -> Self:
        """Start InspIRCd, then Atheme; return when NickServ answers a client."""
        if self.running:
            raise IrcdError(f"the network is already running on port {self.port}")
        deadline = time.monotonic() + self.start_timeout
        try:
            self._prepare_dir()
            self._start_inspircd(deadline)
            self._start_atheme()
            self._wait_for_services(deadline)
        except BaseException as exc:
            # Keep the directory: its logs explain what went wrong.
            self._stop_processes()
            if isinstance(exc, IrcdError | OSError):
                raise IrcdError(f"{exc}\n(files kept in {self.dir})\n{self._logs()}") from exc
            raise
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop Atheme, then InspIRCd (SIGTERM, SIGKILL after 5 s); remove the directory."""
        atexit.unregister(self.stop)
        self._stop_processes()
        if self.dir is not None and self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def register_account(self, name: str, password: str) -> None:
        """Register NickServ account ``name`` (its nick) with ``password``.

        Uses the fixture's own, already registered connection: ``NICK name``,
        ``REGISTER``, ``LOGOUT``, then back to its own nick, so the nick is free
        again for the test's clients.  Raises :class:`IrcdError` with NickServ's
        reply if the account exists or REGISTER is refused.
        """
        if self._registrar is None:
            raise IrcdError("the network is not running")
        with self._registrar_lock:
            conn = self._registrar
            try:
                self._change_nick(conn, name)
                try:
                    notices = self._nickserv(conn, f"REGISTER {password} noreply@irc.test")
                    if not any(" is now registered to " in n for n in notices):
                        raise IrcdError(
                            f"NickServ refused to register {name!r}: " + " / ".join(notices)
                        )
                    conn.send("PRIVMSG NickServ :LOGOUT")
                    conn.read_until(lambda line: split_line(line)[1] in {"901", "NOTICE"}, 10)
                    # (a 901 RPL_LOGGEDOUT and a NickServ notice; drained by the next command)
                finally:
                    self._change_nick(conn, self._registrar_nick)
            except (OSError, TimeoutError, ConnectionError) as exc:
                raise IrcdError(f"registering {name!r} failed: {exc}") from exc

    # -- start-up --------------------------------------------------------------

    def _prepare_dir(self) -> None:
        if self._workdir is not None:
            self._workdir.mkdir(parents=True, exist_ok=True)
            self.dir, self._own_dir = self._workdir.resolve(), False
        else:
            self.dir, self._own_dir = Path(tempfile.mkdtemp(prefix="ircnet-")), True
        (self.dir / "motd.txt").write_text("reloadbot test network\n")

    def _write_configs(self) -> None:
        assert self.dir is not None
        password = secrets.token_hex(16)
        values = {
            "dir": self.dir,
            "client_port": self.port,
            "link_port": self.link_port,
            "password": password,
            "oper_password": self.oper_password,
            "connect": " ".join(f'{k}="{v}"' for k, v in self.connect_class.items()),
            "connect_comment": (
                "No throttles: no fakelag, a huge command rate and queues."
                if self.connect_class == NO_THROTTLES
                else "Client limits as the test asked for."
            ),
        }
        (self.dir / "inspircd.conf").write_text(_INSPIRCD_CONF.format(**values))
        (self.dir / "atheme.conf").write_text(_ATHEME_CONF.format(**values))

    def _start_inspircd(self, deadline: float) -> None:
        assert self.dir is not None
        out = self.dir / "inspircd.out"
        argv = [self.inspircd_binary, "--config", str(self.dir / "inspircd.conf")]
        argv += ["--nofork", "--nopid"]
        if os.geteuid() == 0:
            argv.append("--runasroot")
        for _attempt in range(3):
            self.port, self.link_port = free_ports(2)
            self._write_configs()
            out.write_bytes(b"")
            self.inspircd = _spawn(argv, out, self.dir)
            state = ""

            def done() -> bool:
                nonlocal state
                text = out.read_text(errors="replace")
                if "failed to bind" in text:
                    state = "bind"
                elif "InspIRCd is now running" in text:
                    state = "running"
                elif self.inspircd is not None and self.inspircd.poll() is not None:
                    state = "exited"
                return bool(state)

            _poll(done, max(0.0, deadline - time.monotonic()))
            if state == "running":
                return
            _terminate(self.inspircd)
            if state != "bind":
                status = self.inspircd.returncode if self.inspircd else None
                self.inspircd = None
                what = f"exited with status {status}" if state else "did not start in time"
                raise IrcdError(f"inspircd {what}")
            self.inspircd = None  # a port was taken meanwhile: new ports, new try
        raise IrcdError("inspircd failed to bind its ports three times")

    def _start_atheme(self) -> None:
        assert self.dir is not None
        argv = [self.atheme_binary, "-n", "-c", str(self.dir / "atheme.conf")]
        argv += ["-D", str(self.dir), "-l", str(self.dir / "atheme.log")]
        argv += ["-p", str(self.dir / "atheme.pid")]
        self.atheme = _spawn(argv, self.dir / "atheme.out", self.dir)

    def _sasl_advertised(self) -> bool:
        """Fast link check: InspIRCd lists sasl=...PLAIN only once Atheme has burst."""
        try:
            conn = _RawConnection(self.host, self.port, timeout=2)
        except OSError:
            return False
        try:
            conn.send("CAP LS 302")
            line = conn.read_until(lambda line: split_line(line)[1] == "CAP", 2)
            caps = split_line(line)[2][-1].split()
            return any(c.startswith("sasl=") and "PLAIN" in c for c in caps)
        except (OSError, TimeoutError, ConnectionError):
            return False
        finally:
            conn.close()

    def _connect_user(self, nick: str) -> _RawConnection:
        conn = _RawConnection(self.host, self.port)
        conn.send(f"NICK {nick}")
        conn.send(f"USER {nick} 0 * :reloadbot fixture")
        return conn

    def _wait_for_services(self, deadline: float) -> None:
        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        def alive() -> bool:
            for name, proc in (("inspircd", self.inspircd), ("atheme-services", self.atheme)):
                if proc is None or proc.poll() is not None:
                    status = proc.returncode if proc else None
                    raise IrcdError(f"{name} exited with status {status} during start-up")
            return True

        # Both fixture connections register on the same one-second tick,
        # while we poll CAP LS for the services link on fresh connections.
        nick = "regbot" + secrets.token_hex(3)
        self._registrar, self._registrar_nick = self._connect_user(nick), nick
        ticker = self._connect_user("tickbot" + secrets.token_hex(3)) if self.tick else None
        try:
            if not _poll(lambda: alive() and self._sasl_advertised(), left()):
                raise IrcdError("services did not link (no sasl=PLAIN in CAP LS)")
            welcome = {"001", "433", "ERROR"}
            for conn in filter(None, (self._registrar, ticker)):
                line = conn.read_until(lambda ln: split_line(ln)[1] in welcome, left())
                if split_line(line)[1] != "001":
                    raise IrcdError(f"fixture connection was not accepted: {line}")
            # Definitive check: NickServ itself answers (a 401 means "not linked yet").
            while True:
                self._registrar.send("PRIVMSG NickServ :HELP")
                line = self._registrar.read_until(
                    lambda ln: split_line(ln)[0] == "NickServ" or split_line(ln)[1] == "401", left()
                )
                if split_line(line)[0] == "NickServ":
                    break
                alive()
                if left() <= 0:
                    raise IrcdError("NickServ did not answer")
                time.sleep(0.02)  # poll interval before asking again
            self._registrar.read_until(lambda ln: "End of Help" in ln, left())
        except BaseException:
            if ticker is not None:
                ticker.close()
            raise
        if ticker is not None:
            self._stop_ticker.clear()
            self._ticker = threading.Thread(
                target=self._tick, args=(ticker,), name="ircnet-ticker", daemon=True
            )
            self._ticker.start()

    def _tick(self, conn: _RawConnection) -> None:
        """PING just after each wall-clock second, so InspIRCd's loop wakes up then."""
        try:
            while not self._stop_ticker.wait(1.002 - time.time() % 1.0):
                conn.send("PING :tick")
                with contextlib.suppress(TimeoutError):  # drain PONGs, answer server PINGs
                    conn.read_until(lambda line: False, 0.05)
        except (OSError, ConnectionError):
            pass  # the server went away; nothing to keep awake
        finally:
            conn.close()

    # -- NickServ --------------------------------------------------------------

    @staticmethod
    def _change_nick(conn: _RawConnection, nick: str) -> None:
        conn.send(f"NICK {nick}")

        def answer(line: str) -> bool:
            _, command, params = split_line(line)
            if command == "NICK":
                return params[:1] == [nick] or params[-1:] == [nick]
            return command in {"432", "433", "436"}

        line = conn.read_until(answer, 10)
        if split_line(line)[1] != "NICK":
            raise IrcdError(f"cannot take nick {nick!r}: {line}")

    @staticmethod
    def _nickserv(conn: _RawConnection, command: str) -> list[str]:
        """Send a NickServ command; return its notices (ends at an end marker)."""
        marker = "ENDMARKER" + secrets.token_hex(4)
        conn.send(f"PRIVMSG NickServ :{command}")
        conn.send(f"PRIVMSG NickServ :{marker}")
        notices: list[str] = []
        while True:
            line = conn.read_until(
                lambda ln: split_line(ln)[0] == "NickServ" and split_line(ln)[1] == "NOTICE", 10
            )
            text = split_line(line)[2][-1].replace("\x02", "")
            if text.startswith("Invalid command") or marker in text:
                return notices
            notices.append(text)

    # -- shutdown and diagnostics ------------------------------------------------

    def _stop_processes(self) -> None:
        self._stop_ticker.set()
        if self._ticker is not None:
            self._ticker.join(5)
            self._ticker = None
        if self._registrar is not None:
            self._registrar.close()
            self._registrar = None
        _terminate(self.atheme)
        _terminate(self.inspircd)
        self.atheme = self.inspircd = None

    def _logs(self) -> str:
        if self.dir is None:
            return ""
        names = ("inspircd.out", "ircd.log", "atheme.out", "atheme.log")
        return "\n".join(_tail(self.dir / name) for name in names)
