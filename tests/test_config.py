"""config.yaml: every problem is reported with the key, the line and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, parse_config
from bot.config_change import diff

GOOD = """\
server: {host: 127.0.0.1, port: 6667, tls: false}
nick: bot
channels: ["#bot"]
prefix: "!"
admins: ["boss!*@trusted.example", "account:boss"]
commands_dir: commands
watch: false
"""


def parse(text: str):
    return parse_config(text, base_dir=Path("/srv/bot"))


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return [str(p) for p in info.value.problems]


def test_the_documented_example_parses_with_defaults() -> None:
    config = parse(GOOD)
    assert config.server.port == 6667
    assert config.channels == ("#bot",)
    assert config.commands_dir == Path("/srv/bot/commands")
    assert config.nicks == ("bot", "bot_", "bot__")
    assert config.state_db == Path("/srv/bot/data/state.sqlite3")
    assert config.rate_limit.burst == 5


def test_the_shipped_config_is_valid() -> None:
    root = Path(__file__).resolve().parent.parent
    config = parse_config((root / "config.yaml").read_text(), base_dir=root)
    assert config.commands_dir == root / "commands"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("port: 6667", "config.yaml:1: server.port: expected a whole number from 1 to 65535"),
        ('prefix: "!"', "config.yaml:4: prefix: expected 1 to 5 characters"),
        ('channels: ["#bot"]', "config.yaml:3: channels[0]: expected a channel name"),
        ("watch: false", "config.yaml:7: watch: expected true or false"),
    ],
)
def test_a_wrong_value_names_key_line_and_expectation(change: str, expected: str) -> None:
    bad = {
        "port: 6667": "port: sixty",
        'prefix: "!"': 'prefix: "  "',
        'channels: ["#bot"]': 'channels: ["bot"]',
        "watch: false": "watch: maybe",
    }[change]
    (message,) = problems(GOOD.replace(change, bad))
    assert message.startswith(expected), message


def test_missing_required_keys_are_each_named() -> None:
    text = "\n".join(line for line in GOOD.splitlines() if not line.startswith(("nick", "prefix")))
    found = problems(text)
    assert any("nick: missing" in p for p in found)
    assert any("prefix: missing" in p for p in found)


def test_unknown_key_suggests_the_right_one() -> None:
    (message,) = problems(GOOD + "chanels: []\n")
    assert "config.yaml:8: chanels: unknown key (did you mean 'channels'?)" in message


def test_yaml_syntax_error_reports_line_and_column() -> None:
    (message,) = problems(GOOD + "nick: [unclosed\n")
    assert message.startswith("config.yaml:")
    assert "invalid YAML" in message and "column" in message


def test_empty_file_is_an_error_not_a_crash() -> None:
    (message,) = problems("")
    assert "expected a mapping of settings, got an empty file" in message


def test_bare_nick_admin_is_rejected_with_the_reason() -> None:
    (message,) = problems(GOOD.replace('"boss!*@trusted.example", ', '"boss", '))
    assert "admins[0]" in message and "anyone can take" in message


def test_sasl_plain_needs_account_and_password() -> None:
    (message,) = problems(GOOD + "sasl: {account: bot}\n")
    assert "sasl.password: missing" in message
    config = parse(GOOD + "sasl: {account: bot, password: pw}\n")
    assert config.sasl is not None and config.sasl.required


def test_python_tags_are_not_executed() -> None:
    (message,) = problems(GOOD + "x: !!python/object/apply:os.system ['true']\n")
    assert "invalid YAML" in message


def test_diff_describes_what_a_running_bot_will_do() -> None:
    old = parse(GOOD)
    new = parse(
        GOOD.replace('["#bot"]', '["#new", "#BOT"]')
        .replace('prefix: "!"', 'prefix: "?"')
        .replace("port: 6667", "port: 7000")
    )
    change = diff(old, new)
    assert change.join == ("#new",)
    assert change.part == ()  # channel names are compared with IRC case folding
    assert "server" in change.needs_reconnect
    text = change.describe()
    assert "joining #new" in text
    assert "applied prefix = " in text
    assert "server: takes effect on the next reconnect" in text
    assert diff(old, parse(GOOD)).describe() == "no changes"


def test_keepalive_addressing_and_ctcp_keys() -> None:
    config = parse(GOOD)
    assert (config.ping_interval, config.ping_timeout) == (60.0, 30.0)
    assert config.addressing.nick and config.addressing.private and config.ctcp.enabled
    custom = parse(
        GOOD
        + "ping_interval: 20\nping_timeout: 5\naddressing: {private: false}\n"
        + 'ctcp: {version: "mybot 2", source: ""}\n'
    )
    assert (custom.ping_interval, custom.ping_timeout) == (20.0, 5.0)
    assert custom.addressing.nick and not custom.addressing.private
    assert custom.ctcp.version == "mybot 2"
    assert problems(GOOD + "ping_timeout: 0\n") == [
        "config.yaml:8: ping_timeout: expected a number from 1 to 3600, got 0"
    ]
    assert problems(GOOD + "ctcp: {verison: x}\n")[0].startswith(
        "config.yaml:8: ctcp.verison: unknown key"
    )


def test_a_change_notice_says_new_values_but_never_secrets() -> None:
    old = parse(GOOD)
    new = parse(
        GOOD.replace("nick: bot", "nick: bot2")
        + "rate_limit: {burst: 3}\n"
        + "sasl: {account: bot, password: hunter2}\n"
        + "modules: {weather: {api_key: k3y}}\n"
    )
    text = diff(old, new).describe()
    assert text.startswith("nick -> bot2; applied rate_limit = {burst: 3}, modules; ")
    http = diff(old, parse(GOOD + 'http: {allow_private: ["127.0.0.1"], timeout: 5}\n'))
    assert http.describe() == "applied http = {timeout: 5.0, allow_private: [127.0.0.1/32]}"
    assert "alt_nicks" not in text  # the default alternatives follow the nick
    assert "sasl: takes effect on the next reconnect" in text and "modules" in text
    assert "hunter2" not in text and "k3y" not in text
