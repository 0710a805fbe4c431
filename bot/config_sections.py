"""config.yaml's sections that are mappings of plain values: what each key is, its
default, and how it is checked (``server``, ``sasl``, ``rate_limit``, ``command_rate``,
``addressing``, ``ctcp``, ``logging``, ``backup``, ``http``).

Each parser takes the section as written and returns its frozen dataclass, or
raises ``check.Invalid``/``check.Invalids`` naming every wrong key; ``bot.config``
puts the sections together and finds the lines.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bot import __version__
from bot import config_values as check


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 6667
    tls: bool = False
    tls_verify: bool = True
    password: str | None = None
    tls_cert: Path | None = None  # client certificate (PEM with key), for SASL EXTERNAL


@dataclass(frozen=True)
class SaslConfig:
    account: str = ""
    password: str = ""
    mechanism: str = "PLAIN"
    required: bool = True


@dataclass(frozen=True)
class CommandRate:
    """At most ``per_user`` commands per user and ``per_channel`` per channel each ``window`` s."""

    per_user: int = 5
    per_channel: int = 20
    window: float = 10.0
    ignore_for: float = 60.0  # a user past per_user is ignored this long (0: only dropped)
    refusals: int = 1  # "is for admins only", "busy"...: said this often per user per window


@dataclass(frozen=True)
class RateLimit:
    """Outgoing lines: ``burst`` at once, then ``per_second`` (about what stock servers
    allow before they lag or drop a client); at most ``max_queued`` waiting per target,
    and ``per_reply`` lines from one command call (the rest is dropped, and said so)."""

    burst: int = 5
    per_second: float = 1.0
    max_queued: int = 30
    per_reply: int = 10


@dataclass(frozen=True)
class Addressing:
    """Ways to give a command besides the prefix."""

    nick: bool = True  # "reloadbot: help" or "reloadbot, help" in a channel
    private: bool = True  # "help" in a private message, without the prefix


@dataclass(frozen=True)
class CtcpConfig:
    """Answers to CTCP queries: VERSION, PING, TIME, CLIENTINFO (and SOURCE if set)."""

    enabled: bool = True
    version: str = ""  # empty: "reloadbot VERSION (Python X.Y)"
    source: str = ""  # where the bot's code is; empty: SOURCE is not answered


@dataclass(frozen=True)
class BackupConfig:
    """Backups every ``interval`` seconds (0: none) into ``dir``; the newest ``keep`` stay."""

    interval: float = 0.0
    keep: int = 7
    dir: Path = Path("data/backups")  # parse_config makes it relative to the config's folder


USER_AGENT = f"reloadbot/{__version__} (IRC bot)"


@dataclass(frozen=True)
class HttpConfig:
    """config.yaml's ``http:`` section (see docs/operating.md)."""

    connect_timeout: float = 5.0
    timeout: float = 10.0  # in all: connecting, redirects, reading
    max_bytes: int = 1_000_000
    max_redirects: int = 5
    per_host_concurrent: int = 2
    per_host_per_minute: int = 30
    cache_ttl: float = 300.0  # seconds; 0: no cache
    cache_entries: int = 256
    user_agent: str = USER_AGENT
    allow_private: tuple[str, ...] = ()  # addresses or networks, matched when resolved


# -- parsing -------------------------------------------------------------------


def server(value: Any, base_dir: Path) -> ServerConfig:
    found: list[check.Invalid] = []
    raw = check.section("server", value, {f.name for f in fields(ServerConfig)}, found)

    def host() -> str:
        if "host" not in raw:
            raise check.Invalid("server.host", "missing; expected a host name, e.g. 127.0.0.1")
        return check.text("server.host", raw["host"])

    def optional(key: str) -> str | None:
        given = raw.get(key)
        return None if given is None else check.text(f"server.{key}", given)

    def cert() -> Path | None:
        path = optional("tls_cert")
        return None if path is None else base_dir / path

    return ServerConfig(
        **check.collect(
            {
                "host": host,
                "port": lambda: check.whole("server.port", raw.get("port", 6667), 1, 65535),
                "tls": lambda: check.flag("server.tls", raw.get("tls", False)),
                "tls_verify": lambda: check.flag("server.tls_verify", raw.get("tls_verify", True)),
                "password": lambda: (
                    None
                    if raw.get("password") is None
                    else check.secret("server.password", raw["password"])
                ),
                "tls_cert": cert,
            },
            found,
        )
    )


def sasl(value: Any) -> SaslConfig | None:
    if value is None:
        return None
    found: list[check.Invalid] = []
    raw = check.section("sasl", value, {f.name for f in fields(SaslConfig)}, found)
    chosen = str(raw.get("mechanism", "PLAIN")).upper()

    def mechanism() -> str:
        known = chosen in ("PLAIN", "EXTERNAL", "SCRAM-SHA-256")
        check.expect(known, "sasl.mechanism", "PLAIN, EXTERNAL or SCRAM-SHA-256", chosen)
        return chosen

    def credential(key: str) -> Callable[[], str]:
        def parse() -> str:
            if key in raw:
                read = check.secret if key == "password" else check.text
                return read(f"sasl.{key}", raw[key])
            if chosen == "EXTERNAL":
                return ""
            raise check.Invalid(f"sasl.{key}", f"missing; SASL {chosen} needs account and password")

        return parse

    return SaslConfig(
        **check.collect(
            {
                "account": credential("account"),
                "password": credential("password"),
                "mechanism": mechanism,
                "required": lambda: check.flag("sasl.required", raw.get("required", True)),
            },
            found,
        )
    )


def command_rate(value: Any) -> CommandRate:
    known = {"per_user", "per_channel", "window", "ignore_for", "refusals"}
    found: list[check.Invalid] = []
    raw = check.section("command_rate", value, known, found)

    def whole(key: str, default: int, lo: int) -> Callable[[], int]:
        return lambda: check.whole(f"command_rate.{key}", raw.get(key, default), lo, 100_000)

    def number(key: str, default: float, lo: float, hi: float) -> Callable[[], float]:
        return lambda: check.number(f"command_rate.{key}", raw.get(key, default), lo, hi)

    return CommandRate(
        **check.collect(
            {
                "per_user": whole("per_user", 5, 1),
                "per_channel": whole("per_channel", 20, 1),
                "window": number("window", 10, 0.1, 3600),
                "ignore_for": number("ignore_for", 60, 0, 86400 * 7),
                "refusals": whole("refusals", 1, 0),
            },
            found,
        )
    )


def addressing(value: Any) -> Addressing:
    found: list[check.Invalid] = []
    raw = check.section("addressing", value, {"nick", "private"}, found)
    return Addressing(
        **check.collect(
            {
                "nick": lambda: check.flag("addressing.nick", raw.get("nick", True)),
                "private": lambda: check.flag("addressing.private", raw.get("private", True)),
            },
            found,
        )
    )


def _text(key: str, value: Any) -> str:
    """Text that may be empty (one line, at most 300 characters: it is sent as is)."""
    ok = isinstance(value, str) and len(value) <= 300 and "\n" not in value
    check.expect(ok, key, "one line of text (at most 300 characters)", value)
    return str(value)


def ctcp(value: Any) -> CtcpConfig:
    found: list[check.Invalid] = []
    raw = check.section("ctcp", value, {"enabled", "version", "source"}, found)
    return CtcpConfig(
        **check.collect(
            {
                "enabled": lambda: check.flag("ctcp.enabled", raw.get("enabled", True)),
                "version": lambda: _text("ctcp.version", raw.get("version", "")),
                "source": lambda: _text("ctcp.source", raw.get("source", "")),
            },
            found,
        )
    )


def rate_limit(value: Any) -> RateLimit:
    found: list[check.Invalid] = []
    known = {"burst", "per_second", "max_queued", "per_reply"}
    raw = check.section("rate_limit", value, known, found)

    def whole(key: str, default: int, hi: int) -> Callable[[], int]:
        return lambda: check.whole(f"rate_limit.{key}", raw.get(key, default), 1, hi)

    return RateLimit(
        **check.collect(
            {
                "burst": whole("burst", 5, 10_000),
                "per_second": lambda: check.number(
                    "rate_limit.per_second", raw.get("per_second", 1.0), 0.1, 100_000
                ),
                "max_queued": whole("max_queued", 30, 1_000_000),
                "per_reply": whole("per_reply", 10, 1_000_000),
            },
            found,
        )
    )


_DICTCONFIG_KEYS = {
    "version",
    "formatters",
    "filters",
    "handlers",
    "loggers",
    "root",
    "incremental",
    "disable_existing_loggers",
}


def logging_schema(value: Any) -> dict[str, Any] | None:
    """``logging:``, kept as written for ``logging.config.dictConfig`` (the CLI applies it).

    Only its shape is checked here; dictConfig itself says what is wrong inside a handler.
    """
    if value is None:
        return None
    raw = check.mapping("logging", value, _DICTCONFIG_KEYS)
    if "version" not in raw:
        raise check.Invalid("logging.version", "missing; dictConfig needs version: 1")
    version = raw["version"]
    ok = isinstance(version, int) and not isinstance(version, bool) and version == 1
    check.expect(ok, "logging.version", "1 (the only dictConfig schema version)", version)
    for key in ("formatters", "filters", "handlers", "loggers", "root"):
        if raw.get(key) is not None:
            check.expect(isinstance(raw[key], dict), f"logging.{key}", "a mapping", raw[key])
    return raw


_BACKUP_MAX = 366 * 86400


def backup(value: Any, base_dir: Path) -> BackupConfig:
    found: list[check.Invalid] = []
    raw = check.section(
        "backup", {} if value is None else value, {"interval", "keep", "dir"}, found
    )

    def interval() -> float:
        given = raw.get("interval", 0)
        number = isinstance(given, int | float) and not isinstance(given, bool)
        # Off, or at least a minute apart: more often would only churn the disk.
        ok = number and (given == 0 or 60 <= given <= _BACKUP_MAX)
        check.expect(ok, "backup.interval", f"0 (off) or seconds from 60 to {_BACKUP_MAX}", given)
        return float(given)

    return BackupConfig(
        **check.collect(
            {
                "interval": interval,
                "keep": lambda: check.whole("backup.keep", raw.get("keep", 7), 1, 1000),
                "dir": lambda: base_dir / check.text("backup.dir", raw.get("dir", "data/backups")),
            },
            found,
        )
    )


_HTTP_KEYS = {
    "http": {"connect_timeout", "timeout", "max_bytes", "max_redirects", "per_host", "cache",
             "user_agent", "allow_private"},
    "http.per_host": {"concurrent", "per_minute"},
    "http.cache": {"ttl", "entries"},
}  # fmt: skip


def http(value: Any) -> HttpConfig:
    """The ``http:`` section, with every wrong key and value in it reported at once."""
    found: list[check.Invalid] = []

    def section(key: str, value: Any) -> dict[str, Any]:
        return check.section(key, value, _HTTP_KEYS[key], found)

    raw = section("http", value)
    per_host = section("http.per_host", raw.get("per_host", {}))
    cache = section("http.cache", raw.get("cache", {}))
    return HttpConfig(
        **check.collect(
            {
                "connect_timeout": lambda: check.number(
                    "http.connect_timeout", raw.get("connect_timeout", 5), 0.1, 300
                ),
                "timeout": lambda: check.number("http.timeout", raw.get("timeout", 10), 0.1, 600),
                "max_bytes": lambda: check.whole(
                    "http.max_bytes", raw.get("max_bytes", 1_000_000), 1024, 1 << 30
                ),
                "max_redirects": lambda: check.whole(
                    "http.max_redirects", raw.get("max_redirects", 5), 0, 30
                ),
                "per_host_concurrent": lambda: check.whole(
                    "http.per_host.concurrent", per_host.get("concurrent", 2), 1, 64
                ),
                "per_host_per_minute": lambda: check.whole(
                    "http.per_host.per_minute", per_host.get("per_minute", 30), 1, 100_000
                ),
                "cache_ttl": lambda: check.number(
                    "http.cache.ttl", cache.get("ttl", 300), 0, 86400
                ),
                "cache_entries": lambda: check.whole(
                    "http.cache.entries", cache.get("entries", 256), 0, 100_000
                ),
                "user_agent": lambda: check.text(
                    "http.user_agent", raw.get("user_agent", HttpConfig.user_agent)
                ),
                "allow_private": lambda: _networks(raw.get("allow_private", [])),
            },
            found,
        )
    )


def _networks(value: Any) -> tuple[str, ...]:
    return tuple(check.items("http.allow_private", value, _network))


def http_config(section: Mapping[str, Any]) -> HttpConfig:
    """An ``http:`` section as config.yaml takes it; ValueError naming the key if wrong."""
    try:
        return http(dict(section))
    except check.Invalid as exc:
        raise ValueError(f"http: {exc.key}: {exc.message}") from None


def _network(key: str, value: Any) -> str:
    """An address or a network (CIDR) ``http.allow_private`` lets the bot fetch from."""

    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        expected = f"expected an IP address or network like 10.0.0.0/8, got {value!r}"
        raise check.Invalid(key, expected) from None
