"""config.yaml mistakes: all of them in one run, each at the line the user has to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import BackupConfig, ConfigError, parse_config

GOOD = """\
server: {host: 127.0.0.1, port: 6667, tls: false}
nick: bot
channels: ["#bot"]
prefix: "!"
admins: ["boss!*@trusted.example", "account:boss"]
commands_dir: commands
watch: false
"""
HASH_HINT = (
    'channel names must be quoted because # starts a YAML comment, e.g. channels: ["#bot", "#two"]'
)


def parse(text: str):
    return parse_config(text, base_dir=Path("/srv/bot"))


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return [str(p) for p in info.value.problems]


def test_every_mistake_is_reported_at_once_each_with_its_line() -> None:
    text = (
        GOOD.replace("port: 6667", "port: 99999").replace('prefix: "!"', 'prefix: "  "')
        + "chanels: []\n"
        + "command_rate: {per_user: 0}\n"
    )
    found = problems(text)
    assert len(found) == 4, found
    assert found[0].startswith("config.yaml:1: server.port: expected a whole number")
    assert found[1].startswith("config.yaml:4: prefix: expected 1 to 5 characters")
    assert found[2].startswith("config.yaml:8: chanels: unknown key (did you mean 'channels'?)")
    assert found[3].startswith("config.yaml:9: command_rate.per_user: expected a whole number")


def test_wrong_and_missing_keys_are_reported_together() -> None:
    text = GOOD.replace("nick: bot\n", "").replace("watch: false", "watch: maybe")
    found = problems(text)
    assert found[0].startswith("config.yaml:6: watch: expected true or false"), found
    assert found[1].startswith("config.yaml: nick: missing"), found
    assert len(found) == 2


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (GOOD.replace('channels: ["#bot"]', "channels: [#bot, #two]"), 3),  # mid-file
        (GOOD.replace('channels: ["#bot"]\n', "") + "channels: [#bot, #two]\n", 7),  # last
        (GOOD.replace('channels: ["#bot"]', 'channels: ["#bot", #two]'), 3),  # one unquoted
    ],
)
def test_an_unquoted_channel_in_a_flow_list_is_explained_at_its_line(text: str, line: int) -> None:
    # PyYAML reads "#bot, #two]" as a comment and gives up lines later
    assert problems(text) == [f"config.yaml:{line}: channels: {HASH_HINT}"]


def test_an_unquoted_channel_in_a_block_list_is_explained_at_its_line() -> None:
    text = GOOD.replace('channels: ["#bot"]', "channels:\n  - #bot\n  - #two")
    assert problems(text) == [  # "- #bot": None, and so is "- #two"
        f"config.yaml:4: channels[0]: {HASH_HINT}",
        f"config.yaml:5: channels[1]: {HASH_HINT}",
    ]
    text = GOOD.replace('channels: ["#bot"]', "channels: #bot")
    assert problems(text) == [f"config.yaml:3: channels: {HASH_HINT}"]


def test_an_unclosed_quote_that_swallows_the_next_lines_is_reported_at_its_line() -> None:
    # the string runs on to the quote in line 3; the file parses, with channels gone
    text = GOOD.replace("nick: bot", 'nick: "reloadbot')
    (message,) = problems(text)
    assert message.startswith("config.yaml:2: nick: unclosed quote"), message


def test_an_unclosed_quote_that_breaks_the_file_is_reported_at_its_line() -> None:
    (message,) = problems(GOOD + 'realname: "reload bot\n')
    assert message == 'config.yaml:8: realname: unclosed quote; end the value with "'
    (message,) = problems(GOOD.replace("host: 127.0.0.1", 'host: "127.0.0.1'))
    assert message.startswith("config.yaml:1: server: unclosed quote"), message


def test_a_quoted_value_may_still_span_lines() -> None:
    assert parse(GOOD + 'realname: "a long\n  name"\n').realname == "a long name"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('prefix: "?"\n', "config.yaml:8: prefix: given twice (first at line 4)"),
        (
            "modules: {a: {x: 1, x: 2}}\n",
            "config.yaml:8: modules.a.x: given twice (first at line 8)",
        ),
        (
            "modules:\n  a:\n    x: 1\n    x: 2\n",
            "config.yaml:11: modules.a.x: given twice (first at line 10)",
        ),
        (
            'channels: ["#bot"]\n',
            "config.yaml:8: channels: given twice (first at line 3)",
        ),
    ],
)
def test_a_key_given_twice_is_refused_at_the_second(extra: str, expected: str) -> None:
    assert problems(GOOD + extra) == [expected]  # PyYAML alone would keep the last


def test_logging_is_a_dictconfig_schema_kept_as_written() -> None:
    assert parse(GOOD).logging is None
    section = (
        "logging:\n  version: 1\n  handlers:\n"
        "    file: {class: logging.FileHandler, filename: bot.log}\n"
        "  root: {handlers: [file], level: INFO}\n"
    )
    assert parse(GOOD + section).logging == {
        "version": 1,
        "handlers": {"file": {"class": "logging.FileHandler", "filename": "bot.log"}},
        "root": {"handlers": ["file"], "level": "INFO"},
    }


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("logging: {version: 2}", "config.yaml:8: logging.version: expected 1"),
        ('logging: {version: "1"}', "config.yaml:8: logging.version: expected 1"),
        ("logging: {root: {level: INFO}}", "config.yaml:8: logging.version: missing"),
        ("logging: [x]", "config.yaml:8: logging: expected a mapping"),
        ("logging: {version: 1, handler: {}}", "config.yaml:8: logging.handler: unknown key"),
        ("logging: {version: 1, handlers: [x]}", "config.yaml:8: logging.handlers: expected a"),
    ],
)
def test_a_wrong_logging_section_is_named(section: str, expected: str) -> None:
    (message,) = problems(GOOD + section + "\n")
    assert message.startswith(expected), message


def test_backup_defaults_to_off_and_resolves_its_folder_beside_the_config() -> None:
    assert parse(GOOD).backup == BackupConfig(0.0, 7, Path("/srv/bot/data/backups"))
    backup = parse(GOOD + "backup: {interval: 3600, keep: 3, dir: /var/backups/bot}\n").backup
    assert backup == BackupConfig(3600.0, 3, Path("/var/backups/bot"))
    assert parse(GOOD + "backup: {dir: old}\n").backup.dir == Path("/srv/bot/old")


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("backup: {interval: 30}", "config.yaml:8: backup.interval: expected 0 (off) or"),
        ("backup: {interval: -1}", "config.yaml:8: backup.interval: expected 0 (off) or"),
        ("backup: {keep: 0}", "config.yaml:8: backup.keep: expected a whole number from 1"),
        ("backup: {keep: 1001}", "config.yaml:8: backup.keep: expected a whole number from 1"),
        ("backup: {every: 60}", "config.yaml:8: backup.every: unknown key"),
    ],
)
def test_a_wrong_backup_section_is_named(section: str, expected: str) -> None:
    (message,) = problems(GOOD + section + "\n")
    assert message.startswith(expected), message


def test_every_mistake_in_the_http_section_is_reported_with_its_line() -> None:
    text = GOOD + (
        "http:\n"
        "  timout: 5\n"
        "  max_bytes: 10\n"
        '  allow_private: ["10.0.0.0/8", "intranet", "300.1.1.1"]\n'
        "  per_host: {concurrent: 0, burst: 3}\n"
    )
    found = problems(text)
    assert [p.split(": ")[0] for p in found] == [
        "config.yaml:9",
        "config.yaml:10",
        "config.yaml:11",
        "config.yaml:11",
        "config.yaml:12",
        "config.yaml:12",
    ]
    assert "http.timout: unknown key (did you mean 'timeout'?)" in found[0]
    assert "http.max_bytes: expected a whole number from 1024" in found[1]
    assert "http.allow_private[1]: expected an IP address or network" in found[2]
    assert "'300.1.1.1'" in found[3]
    assert "http.per_host.burst: unknown key" in found[4]
    assert "http.per_host.concurrent: expected a whole number from 1 to 64, got 0" in found[5]
    good = parse(GOOD + 'http: {allow_private: ["10.0.0.0/8", "::1"], per_host: {per_minute: 5}}\n')
    assert good.http.allow_private == ("10.0.0.0/8", "::1/128")
    assert good.http.per_host_per_minute == 5


def test_every_mistake_within_a_section_is_reported() -> None:
    text = GOOD.replace(
        "server: {host: 127.0.0.1, port: 6667, tls: false}",
        "server: {hots: 127.0.0.1, port: 99999, tls: maybe}",
    ) + ("rate_limit: {burst: 0, per_second: fast, max_quued: 3}\nbackup: {interval: 5, keep: 0}\n")
    found = problems(text)
    keys = [p.split(": ")[1] for p in found]
    assert keys == [
        "server.hots",
        "server.host",
        "server.port",
        "server.tls",
        "rate_limit.max_quued",
        "rate_limit.burst",
        "rate_limit.per_second",
        "backup.interval",
        "backup.keep",
    ], found
    assert all(p.startswith(("config.yaml:1:", "config.yaml:8:", "config.yaml:9:")) for p in found)


def test_every_wrong_item_of_a_list_is_reported() -> None:
    text = (
        GOOD.replace(
            'admins: ["boss!*@trusted.example", "account:boss"]',
            'admins: ["boss", "account:boss", 7]',
        )
        + 'notify: ["#ok", "no spaces", ""]\n'
    )
    keys = [p.split(": ")[1] for p in problems(text)]
    assert keys == ["admins[0]", "admins[2]", "notify[1]", "notify[2]"]


def test_a_wrong_password_is_described_never_shown() -> None:
    text = GOOD.replace("port: 6667", "port: 6667, password: 4711") + (
        "sasl: {account: bot, password: 98765, mechanism: plain, requird: true}\n"
    )
    found = problems(text)
    assert [p.split(": ")[1] for p in found] == ["server.password", "sasl.requird", "sasl.password"]
    assert "got int (the value is not shown)" in found[0]
    assert not any("4711" in p or "98765" in p for p in found)


def test_every_mistake_in_channel_entries_and_permissions_is_reported() -> None:
    text = (
        GOOD.replace(
            'channels: ["#bot"]',
            'channels: ["#bot", {name: nohash, disable: [reload, "bad name"], kye: x}]',
        )
        + "permissions: {quote: [op, 7], kick: [bob]}\n"
    )
    keys = [p.split(": ")[1] for p in problems(text)]
    assert keys == [
        "channels[1].kye",
        "channels[1].name",
        "channels[1].disable[0]",
        "channels[1].disable[1]",
        "permissions.quote[1]",
        "permissions.kick[0]",
    ]
