"""The examples in docs/operating.md and README.md are true."""

from __future__ import annotations

import contextlib
import re
from dataclasses import fields
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Config, parse_config
from bot.config_change import diff

ROOT = Path(__file__).resolve().parent.parent


def blocks(doc: str, language: str) -> list[str]:
    text = (ROOT / doc).read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


@pytest.fixture(autouse=True)
def _channel_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUSY_KEY", "letmein")  # the reference reads a key from it


def test_the_configuration_reference_parses_and_covers_every_key() -> None:
    reference = blocks("docs/operating.md", "yaml")[0]  # the reference comes first
    config = parse_config(reference, base_dir=Path("/srv/bot"))
    assert config.sasl is not None and config.sasl.mechanism == "PLAIN"
    documented = set(re.findall(r"^(\w+):", reference, re.M))
    assert documented == {f.name for f in fields(Config)} - {"path", "lines", "channel_options"}


def test_the_live_change_table_matches_what_the_bot_does() -> None:
    reference = blocks("docs/operating.md", "yaml")[0]  # the reference comes first
    old = parse_config(reference, base_dir=Path("/srv/bot"))
    doc = (ROOT / "docs/operating.md").read_text()
    row = re.search(r"\| `server`, `sasl`, `username`, `realname` \| on the next reconnect", doc)
    assert row
    new = parse_config(
        reference.replace("port: 6697", "port: 7000").replace("s3cret", "other"),
        base_dir=Path("/srv/bot"),
    )
    assert set(diff(old, new).needs_reconnect) == {"server", "sasl"}
    restart = parse_config(reference.replace("workers: 8", "workers: 9"), base_dir=Path("/"))
    assert "workers" in diff(old, restart).needs_restart


def test_the_systemd_unit_uses_real_options(capsys) -> None:
    (unit,) = blocks("docs/operating.md", "ini")
    flags = set(re.findall(r"--[a-z-]+", unit))
    with contextlib.suppress(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    assert flags and all(flag in usage for flag in flags)


def test_every_readme_config_key_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n\n", 2)[1]
    keys = set(re.findall(r"^\| `(\w+)`", table, re.M))
    assert keys and keys <= {f.name for f in fields(Config)}
