"""config.yaml: parse and validate it into a frozen Config.

Owns the user contract of config.yaml: key names, defaults, and error messages
that name the key, the line, and what was expected. The sections of plain
values (server, sasl, rates, ctcp, backup, http...) are parsed in
``bot.config_sections``; how each value is checked is ``bot.config_values``; what
a re-read changes is ``bot.config_change``. It never applies anything: the app
decides what a change means for the running bot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from bot import config_sections as sections
from bot import config_values as check
from bot.auth import AdminRule, AdminRuleError, Grant, GrantError, parse_admin_rule, parse_grant
from bot.config_sections import (
    Addressing,
    BackupConfig,
    CommandRate,
    CtcpConfig,
    HttpConfig,
    RateLimit,
    SaslConfig,
    ServerConfig,
)
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
    found: list[check.Invalid] = []
    raw = check.section(key, value, _CHANNEL_KEYS, found)

    def name() -> str:
        if "name" not in raw:
            raise check.Invalid(f"{key}.name", "missing; expected the channel's name, e.g. '#bot'")
        return _channel(f"{key}.name", raw["name"])

    def secret() -> str | None:
        if raw.get("key") is None:
            return None
        given = _reference(f"{key}.key", check.text(f"{key}.key", str(raw["key"])))
        if any(c in given for c in " ,\r\n\x00"):
            raise check.Invalid(f"{key}.key", "expected a key without spaces or commas")
        return given

    def switch(where: str, item: Any) -> str:
        ok = isinstance(item, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", item) is not None
        check.expect(ok, where, "a module or command name, as !help names it", item)
        if item.lower() in _ALWAYS_ON:
            raise check.Invalid(where, f"{item!r} is an admin command; it cannot be turned off")
        return str(item).lower()

    parts = check.collect(
        {
            "name": name,
            "key": secret,
            "disable": lambda: frozenset(
                check.items(f"{key}.disable", raw.get("disable", []), switch)
            ),
            "modules": lambda: _module_sections(raw.get("modules", {}), f"{key}.modules"),
        },
        found,
    )
    return ChannelOptions(**parts)


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

    def grant(key: str, entry: Any) -> Grant:
        check.expect(isinstance(entry, str), key, "op, halfop, voice, a mask", entry)
        try:
            return parse_grant(entry)
        except GrantError as exc:
            raise check.Invalid(key, str(exc)) from None

    def grants(name: Any, who: Any) -> Callable[[], tuple[Grant, ...]]:
        def parse() -> tuple[Grant, ...]:
            key = f"permissions.{name}"
            ok = isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) is not None
            check.expect(ok, key, "a command name, as !help names it", name)
            return tuple(check.items(key, who, grant))

        return parse

    checked = check.collect({str(name): grants(name, who) for name, who in raw.items()}, [])
    return {name.lower(): given for name, given in checked.items()}


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


def _prefix(key: str, value: Any) -> str:
    ok = isinstance(value, str) and 1 <= len(value) <= 5 and not any(c.isspace() for c in value)
    check.expect(ok, key, "1 to 5 characters without spaces, e.g. '!'", value)
    return str(value)


def _admins(value: Any) -> tuple[AdminRule, ...]:
    def rule(key: str, entry: Any) -> AdminRule:
        expected = "a hostmask 'nick!user@host' or 'account:NAME'"
        check.expect(isinstance(entry, str), key, expected, entry)
        try:
            return parse_admin_rule(entry)
        except AdminRuleError as exc:
            raise check.Invalid(key, str(exc)) from None

    return tuple(check.items("admins", value, rule))


def _log_level(key: str, value: Any) -> str:
    ok = isinstance(value, str) and value.upper() in _LOG_LEVELS
    check.expect(ok, key, f"one of {', '.join(_LOG_LEVELS)}", value)
    return str(value).upper()


def channel_options(entries: list[Any]) -> dict[str, ChannelOptions]:
    """A ``channels:`` list as config.yaml takes it (names, or mappings with ``name``,
    ``key``, ``disable``, ``modules``); ValueError naming the entry if wrong."""
    try:
        return _channels(list(entries))
    except check.Invalid as exc:
        raise ValueError(f"channels: {exc.key}: {exc.message}") from None


def _channels(value: Any) -> dict[str, ChannelOptions]:
    """Every channel's options by irc-lowered name, in the order given; no name twice."""
    from bot.casemap import irc_lower as lower

    if value is None:  # "channels: #bot" reads as "channels:" and a comment
        raise check.Invalid("channels", HASH_HINT)
    entries = check.items("channels", value, _channel_entry)
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
        return tuple(check.items(key, raw.get(key, []), parse))

    return {
        "server": lambda: sections.server(raw["server"], base_dir),
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
        "rate_limit": lambda: sections.rate_limit(raw.get("rate_limit", {})),
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
        "sasl": lambda: sections.sasl(raw.get("sasl")),
        "command_rate": lambda: sections.command_rate(raw.get("command_rate", {})),
        "rejoin_delay": lambda: check.number("rejoin_delay", raw.get("rejoin_delay", 5), 0, 3600),
        "join_on_invite": lambda: check.flag("join_on_invite", raw.get("join_on_invite", False)),
        "state_db": lambda: _state_db(raw.get("state_db", "data/state.sqlite3"), base_dir),
        "log_level": lambda: _log_level("log_level", raw.get("log_level", "INFO")),
        "modules": lambda: _module_sections(raw.get("modules", {})),
        "ping_interval": lambda: check.number(
            "ping_interval", raw.get("ping_interval", 60), 1, 3600
        ),
        "ping_timeout": lambda: check.number("ping_timeout", raw.get("ping_timeout", 30), 1, 3600),
        "addressing": lambda: sections.addressing(raw.get("addressing", {})),
        "ctcp": lambda: sections.ctcp(raw.get("ctcp", {})),
        "logging": lambda: sections.logging_schema(raw.get("logging")),
        "backup": lambda: sections.backup(raw.get("backup"), base_dir),
        "http": lambda: sections.http(raw.get("http", {})),
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
