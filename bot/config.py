"""config.yaml: parse, validate into a frozen Config, and describe the change between two.

Owns the user contract of config.yaml: key names, defaults, and error messages
that name the key, the line, and what was expected. It never applies anything;
the app decides what a change means for the running bot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from bot import config_values as check
from bot.auth import AdminRule, AdminRuleError, Grant, GrantError, parse_admin_rule, parse_grant
from bot.web import HttpConfig
from bot.yaml_mistakes import HASH_HINT, duplicates, runaway_quotes, syntax_problem

_CHANNEL = re.compile(r"[#&+!][^\x00\x07\r\n ,:]{1,49}")
_NICK = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,29}")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    message: str
    file: str = "config.yaml"
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """config.yaml is unusable; ``problems`` says every key that is wrong and why."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


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


@dataclass(frozen=True)
class ChannelOptions:
    """A ``channels:`` entry written as a mapping: its key, what is off there, overrides."""

    name: str
    key: str | None = None  # the channel's +k key, sent with JOIN
    disable: frozenset[str] = frozenset()  # module or command names turned off there
    modules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # settings there


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    nick: str
    channels: tuple[str, ...]
    prefix: str
    admins: tuple[AdminRule, ...]
    commands_dir: Path
    watch: bool = False
    alt_nicks: tuple[str, ...] = ()
    username: str = "reloadbot"
    realname: str = "reloadbot"
    notify: tuple[str, ...] = ()
    rate_limit: RateLimit = field(default_factory=RateLimit)
    command_timeout: float = 10.0
    reload_timeout: float = 30.0
    isolate: tuple[str, ...] = ()  # module names or globs run in worker processes
    ignore: tuple[str, ...] = ()  # masks or account:NAME the bot never listens to
    isolate_memory_mb: int = 512
    workers: int = 8
    sasl: SaslConfig | None = None
    command_rate: CommandRate = field(default_factory=CommandRate)
    rejoin_delay: float = 5.0
    join_on_invite: bool = False
    state_db: Path | None = None
    log_level: str = "INFO"
    modules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # raw sections
    # irc-lowered channel name -> its options (every channel, mapping entry or not)
    channel_options: Mapping[str, ChannelOptions] = field(default_factory=dict)
    permissions: Mapping[str, tuple[Grant, ...]] = field(default_factory=dict)  # command -> who
    ping_interval: float = 60.0  # seconds of silence from the server before we PING it
    ping_timeout: float = 30.0  # seconds after that PING before the server counts as dead
    addressing: Addressing = field(default_factory=Addressing)
    ctcp: CtcpConfig = field(default_factory=CtcpConfig)
    logging: dict[str, Any] | None = None  # a logging.config.dictConfig schema, as written
    backup: BackupConfig = field(default_factory=BackupConfig)
    http: HttpConfig = field(default_factory=HttpConfig)  # ctx.fetch's limits
    path: Path | None = None
    lines: Mapping[str, int] = field(default_factory=dict, compare=False)  # key -> line

    @property
    def nicks(self) -> tuple[str, ...]:
        """The nick, then the alternatives to try when it is taken."""
        return (self.nick, *self.alt_nicks)


# -- parsing -------------------------------------------------------------------


def _nick(key: str, value: Any) -> str:
    check.expect(isinstance(value, str) and bool(_NICK.fullmatch(value)), key, "an IRC nick", value)
    return str(value)


def _channel(key: str, value: Any) -> str:
    if value is None:  # "- #bot": the name was read as a comment
        raise check.Invalid(key, HASH_HINT)
    ok = isinstance(value, str) and bool(_CHANNEL.fullmatch(value))
    check.expect(ok, key, "a channel name like '#bot' (quote it: # starts a YAML comment)", value)
    return str(value)


_CHANNEL_KEYS = {"name", "key", "disable", "modules"}
# The admins' built-ins: never turned off, or an admin could lock themselves out.
_ALWAYS_ON = frozenset(
    [
        "reload",
        "load",
        "unload",
        "modules",
        "rehash",
        "reconnect",
        "ignore",
        "unignore",
        "ignores",
        "flush",
    ]
)


def _channel_entry(key: str, value: Any) -> ChannelOptions:
    """``"#bot"``, or ``{name: "#b", key: K, disable: [karma], modules: {weather: {...}}}``."""
    if not isinstance(value, dict):
        return ChannelOptions(_channel(key, value))
    raw = check.mapping(key, value, _CHANNEL_KEYS)
    if "name" not in raw:
        raise check.Invalid(f"{key}.name", "missing; expected the channel's name, e.g. '#bot'")
    name = _channel(f"{key}.name", raw["name"])
    secret = None
    if raw.get("key") is not None:
        secret = _reference(f"{key}.key", check.text(f"{key}.key", str(raw["key"])))
        if any(c in secret for c in " ,\r\n\x00"):
            raise check.Invalid(f"{key}.key", "expected a key without spaces or commas")
    disabled = []
    for i, item in enumerate(check.listed(f"{key}.disable", raw.get("disable", []))):
        where = f"{key}.disable[{i}]"
        ok = isinstance(item, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", item) is not None
        check.expect(ok, where, "a module or command name, as !help names it", item)
        if item.lower() in _ALWAYS_ON:
            raise check.Invalid(where, f"{item!r} is an admin command; it cannot be turned off")
        disabled.append(item.lower())
    modules = _module_sections(raw.get("modules", {}), f"{key}.modules")
    return ChannelOptions(name, secret, frozenset(disabled), modules)


def _reference(key: str, value: str) -> str:
    """``${NAME}`` from the environment, ``${file:PATH}`` from a file (as module settings)."""
    from bot.settings import resolve_references

    resolved, problems = resolve_references({"value": value}, key)
    if problems:
        raise check.Invalid(key, problems[0].message)
    assert resolved is not None
    found: Any = resolved["value"]
    return found.reveal() if hasattr(found, "reveal") else str(found)


def _permissions(value: Any) -> dict[str, tuple[Grant, ...]]:
    """``permissions: {COMMAND: [op, voice, MASK, "account:NAME"]}``."""
    raw = value if value is not None else {}
    check.expect(isinstance(raw, dict), "permissions", "a mapping of command names to lists", value)
    checked: dict[str, tuple[Grant, ...]] = {}
    for name, who in raw.items():
        key = f"permissions.{name}"
        ok = isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) is not None
        check.expect(ok, key, "a command name, as !help names it", name)
        grants = []
        for i, entry in enumerate(check.listed(key, who)):
            check.expect(isinstance(entry, str), f"{key}[{i}]", "op, halfop, voice, a mask", entry)
            try:
                grants.append(parse_grant(entry))
            except GrantError as exc:
                raise check.Invalid(f"{key}[{i}]", str(exc)) from None
        checked[name.lower()] = tuple(grants)
    return checked


def _ignore_mask(key: str, value: Any) -> str:
    from bot.ignores import IgnoreError, normalise

    check.expect(isinstance(value, str), key, "a mask like nick!user@host or account:NAME", value)
    try:
        return normalise(str(value))
    except IgnoreError as exc:
        raise check.Invalid(key, str(exc)) from None


def _module_sections(value: Any, where: str = "modules") -> dict[str, dict[str, Any]]:
    """``modules: {NAME: {setting: value}}``; each module checks its own section."""
    sections = value if value is not None else {}
    check.expect(isinstance(sections, dict), where, "a mapping of module names to settings", value)
    checked: dict[str, dict[str, Any]] = {}
    for name, section in sections.items():
        key = f"{where}.{name}"
        check.expect(isinstance(name, str) and name.isidentifier(), key, "a module name", name)
        section = section if section is not None else {}
        check.expect(isinstance(section, dict), key, "a mapping of settings", section)
        for setting in section:
            check.expect(isinstance(setting, str), f"{key}.{setting}", "a setting name", setting)
        checked[name] = dict(section)
    return checked


_MODULE_GLOB = re.compile(r"[A-Za-z0-9_*?\[\]!]{1,64}")


def _module_glob(key: str, value: Any) -> str:
    ok = isinstance(value, str) and _MODULE_GLOB.fullmatch(value) is not None
    check.expect(ok, key, "a module name or a glob such as 'weather' or '*'", value)
    return str(value)


def _target(key: str, value: Any) -> str:
    if value is None or (isinstance(value, str) and value[:1] in "#&+!"):
        return _channel(key, value)
    return _nick(key, value)


def _server(value: Any, base_dir: Path) -> ServerConfig:
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
                "password": lambda: optional("password"),
                "tls_cert": cert,
            },
            found,
        )
    )


def _sasl(value: Any) -> SaslConfig | None:
    if value is None:
        return None
    raw = check.mapping("sasl", value, {f.name for f in fields(SaslConfig)})
    mechanism = str(raw.get("mechanism", "PLAIN")).upper()
    known = mechanism in ("PLAIN", "EXTERNAL", "SCRAM-SHA-256")
    check.expect(known, "sasl.mechanism", "PLAIN, EXTERNAL or SCRAM-SHA-256", mechanism)
    if mechanism != "EXTERNAL":
        for key in ("account", "password"):
            if key not in raw:
                why = f"missing; SASL {mechanism} needs account and password"
                raise check.Invalid(f"sasl.{key}", why)
    return SaslConfig(
        account=check.text("sasl.account", raw["account"]) if "account" in raw else "",
        password=check.text("sasl.password", raw["password"]) if "password" in raw else "",
        mechanism=mechanism,
        required=check.flag("sasl.required", raw.get("required", True)),
    )


def _command_rate(value: Any) -> CommandRate:
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


def _addressing(value: Any) -> Addressing:
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


def _ctcp(value: Any) -> CtcpConfig:
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


def _rate_limit(value: Any) -> RateLimit:
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


def _prefix(key: str, value: Any) -> str:
    ok = isinstance(value, str) and 1 <= len(value) <= 5 and not any(c.isspace() for c in value)
    check.expect(ok, key, "1 to 5 characters without spaces, e.g. '!'", value)
    return str(value)


def _admins(value: Any) -> tuple[AdminRule, ...]:
    rules = []
    for i, entry in enumerate(check.listed("admins", value)):
        key = f"admins[{i}]"
        check.expect(
            isinstance(entry, str), key, "a hostmask 'nick!user@host' or 'account:NAME'", entry
        )
        try:
            rules.append(parse_admin_rule(entry))
        except AdminRuleError as exc:
            raise check.Invalid(key, str(exc)) from None
    return tuple(rules)


def _log_level(key: str, value: Any) -> str:
    ok = isinstance(value, str) and value.upper() in _LOG_LEVELS
    check.expect(ok, key, f"one of {', '.join(_LOG_LEVELS)}", value)
    return str(value).upper()


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


def _logging(value: Any) -> dict[str, Any] | None:
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


def _backup(value: Any, base_dir: Path) -> BackupConfig:
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


def _http(value: Any) -> HttpConfig:
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
    networks, wrong = [], []
    for i, entry in enumerate(check.listed("http.allow_private", value)):
        try:
            networks.append(_network(f"http.allow_private[{i}]", entry))
        except check.Invalid as exc:
            wrong.append(exc)
    if wrong:
        raise check.Invalids(wrong)
    return tuple(networks)


def http_config(section: Mapping[str, Any]) -> HttpConfig:
    """An ``http:`` section as config.yaml takes it; ValueError naming the key if wrong."""
    try:
        return _http(dict(section))
    except check.Invalid as exc:
        raise ValueError(f"http: {exc.key}: {exc.message}") from None


def channel_options(entries: list[Any]) -> dict[str, ChannelOptions]:
    """A ``channels:`` list as config.yaml takes it (names, or mappings with ``name``,
    ``key``, ``disable``, ``modules``); ValueError naming the entry if wrong."""
    try:
        return _channels(list(entries))
    except check.Invalid as exc:
        raise ValueError(f"channels: {exc.key}: {exc.message}") from None


def _network(key: str, value: Any) -> str:
    """An address or a network (CIDR) ``http.allow_private`` lets the bot fetch from."""
    import ipaddress

    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        expected = f"expected an IP address or network like 10.0.0.0/8, got {value!r}"
        raise check.Invalid(key, expected) from None


def _channels(value: Any) -> dict[str, ChannelOptions]:
    """Every channel's options by irc-lowered name, in the order given; no name twice."""
    from bot.casemap import irc_lower as lower

    if value is None:  # "channels: #bot" reads as "channels:" and a comment
        raise check.Invalid("channels", HASH_HINT)
    entries = [
        _channel_entry(f"channels[{i}]", v) for i, v in enumerate(check.listed("channels", value))
    ]
    options: dict[str, ChannelOptions] = {}
    for i, entry in enumerate(entries):
        first = options.setdefault(lower(entry.name), entry)
        if first is not entry:
            at = entries.index(first)
            raise check.Invalid(f"channels[{i}]", f"{entry.name} is listed twice (channels[{at}])")
    return options


def _state_db(value: Any, base_dir: Path) -> Path | None:
    return None if value is None else base_dir / check.text("state_db", value)


# Required keys have no default; a missing one is reported, not parsed.
_REQUIRED = ("server", "nick", "channels", "prefix", "admins", "commands_dir")


def _parsers(raw: dict[str, Any], base_dir: Path) -> dict[str, Callable[[], Any]]:
    """Each top-level key: how to parse it (with its default when it is not given)."""

    def each(key: str, parse: Callable[[str, Any], Any]) -> tuple[Any, ...]:
        return tuple(
            parse(f"{key}[{i}]", v) for i, v in enumerate(check.listed(key, raw.get(key, [])))
        )

    return {
        "server": lambda: _server(raw["server"], base_dir),
        "nick": lambda: _nick("nick", raw["nick"]),
        "channels": lambda: _channels(raw["channels"]),  # split into two fields by _build
        "permissions": lambda: _permissions(raw.get("permissions", {})),
        "prefix": lambda: _prefix("prefix", raw["prefix"]),
        "admins": lambda: _admins(raw["admins"]),
        "commands_dir": lambda: base_dir / check.text("commands_dir", raw["commands_dir"]),
        "watch": lambda: check.flag("watch", raw.get("watch", False)),
        "alt_nicks": lambda: each("alt_nicks", _nick) if "alt_nicks" in raw else None,
        "username": lambda: _nick("username", raw.get("username", "reloadbot")),
        "realname": lambda: check.text("realname", raw.get("realname", "reloadbot")),
        "notify": lambda: each("notify", _target),
        "rate_limit": lambda: _rate_limit(raw.get("rate_limit", {})),
        "command_timeout": lambda: check.number(
            "command_timeout", raw.get("command_timeout", 10), 0.1, 3600
        ),
        "reload_timeout": lambda: check.number(
            "reload_timeout", raw.get("reload_timeout", 30), 0.1, 3600
        ),
        "isolate": lambda: each("isolate", _module_glob),
        "ignore": lambda: each("ignore", _ignore_mask),
        "isolate_memory_mb": lambda: check.whole(
            "isolate_memory_mb", raw.get("isolate_memory_mb", 512), 32, 65536
        ),
        "workers": lambda: check.whole("workers", raw.get("workers", 8), 1, 256),
        "sasl": lambda: _sasl(raw.get("sasl")),
        "command_rate": lambda: _command_rate(raw.get("command_rate", {})),
        "rejoin_delay": lambda: check.number("rejoin_delay", raw.get("rejoin_delay", 5), 0, 3600),
        "join_on_invite": lambda: check.flag("join_on_invite", raw.get("join_on_invite", False)),
        "state_db": lambda: _state_db(raw.get("state_db", "data/state.sqlite3"), base_dir),
        "log_level": lambda: _log_level("log_level", raw.get("log_level", "INFO")),
        "modules": lambda: _module_sections(raw.get("modules", {})),
        "ping_interval": lambda: check.number(
            "ping_interval", raw.get("ping_interval", 60), 1, 3600
        ),
        "ping_timeout": lambda: check.number("ping_timeout", raw.get("ping_timeout", 30), 1, 3600),
        "addressing": lambda: _addressing(raw.get("addressing", {})),
        "ctcp": lambda: _ctcp(raw.get("ctcp", {})),
        "logging": lambda: _logging(raw.get("logging")),
        "backup": lambda: _backup(raw.get("backup"), base_dir),
        "http": lambda: _http(raw.get("http", {})),
    }


def _build(raw: dict[str, Any], base_dir: Path) -> Config | list[check.Invalid]:
    """The Config, or what is wrong: every key is parsed, so one run names every mistake."""
    kwargs: dict[str, Any] = {}
    wrong: list[check.Invalid] = []
    for key, parse in _parsers(raw, base_dir).items():
        if key in _REQUIRED and key not in raw:
            continue  # already reported as missing
        try:
            kwargs[key] = parse()
        except check.Invalids as exc:
            wrong += exc.problems
        except check.Invalid as exc:
            wrong.append(exc)
    if wrong or any(key not in raw for key in _REQUIRED):
        return wrong  # (empty when only missing keys are wrong: parse_config names them)
    options = kwargs["channels"]
    kwargs["channels"] = tuple(o.name for o in options.values())
    kwargs["channel_options"] = options
    nick = kwargs["nick"]
    if kwargs["alt_nicks"] is None:
        kwargs["alt_nicks"] = (f"{nick}_", f"{nick}__")
    return Config(**kwargs)


_KNOWN = {f.name for f in fields(Config)} - {"path", "lines", "channel_options"}


def parse_config(text: str, *, base_dir: Path, file: str = "config.yaml") -> Config:
    """Parse and validate config text; raise ConfigError naming every problem found."""
    lines = text.splitlines()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        key, message, at = syntax_problem(exc, lines)
        raise ConfigError([ConfigProblem(key, message, file, at)]) from None
    runaway = [ConfigProblem(k, m, file, n) for k, m, n in runaway_quotes(root, lines)]
    if runaway:  # what follows an unclosed quote was swallowed: other problems would mislead
        raise ConfigError(runaway)
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else repr(raw)
        raise ConfigError([ConfigProblem("", f"expected a mapping of settings, got {got}", file)])

    problems = [ConfigProblem(k, m, file, n) for k, m, n in duplicates(root)]
    problems += [
        ConfigProblem(str(k), check.unknown(str(k), _KNOWN), file, _line(root, str(k)))
        for k in raw
        if k not in _KNOWN
    ]
    problems += [
        ConfigProblem(k, f"missing; this key is required (see {_EXAMPLE_HINT})", file)
        for k in _REQUIRED
        if k not in raw
    ]
    built = _build(raw, base_dir)
    if isinstance(built, list):
        problems += [ConfigProblem(e.key, e.message, file, _line(root, e.key)) for e in built]
    if problems:
        # in file order, as an editor shows them; missing keys (no line) last
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(problems)
    assert isinstance(built, Config)
    return replace(built, lines=_module_lines(built, root))


def _module_lines(config: Config, root: yaml.Node | None) -> dict[str, int]:
    """Lines of the module sections and settings, for the modules' own error messages."""
    keys = [f"modules.{n}.{k}" for n, section in config.modules.items() for k in section]
    keys += [f"modules.{n}" for n in config.modules]
    for i, options in enumerate(config.channel_options.values()):
        for n, section in options.modules.items():
            keys += [
                f"channels[{i}].modules.{n}",
                *(f"channels[{i}].modules.{n}.{k}" for k in section),
            ]
    return {key: line for key in keys if (line := _line(root, key)) is not None}


_EXAMPLE_HINT = "the config reference in README.md"


def load_config(path: Path) -> Config:
    """Read and validate a config file; relative paths in it resolve against its folder."""
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem("", f"cannot read: {exc}", str(path))]) from None
    config = parse_config(text, base_dir=path.parent, file=path.name)
    return replace(config, path=path)


def _line(root: yaml.Node | None, key: str) -> int | None:
    """Line (1-based) of ``key`` such as ``server.port`` or ``channels[1]`` in the YAML tree."""
    node: yaml.Node | None = root
    line = None
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == part), None)
            if match is None:
                return line
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and part.startswith("["):
            index = int(part[1:-1])
            if index >= len(node.value):
                return line
            node = node.value[index]
            line = node.start_mark.line + 1
        else:
            return line
    return line
