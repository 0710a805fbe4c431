"""Applying config.yaml to a running App: the one rehash path, and runner overlays."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

from helpers import NullTransport, close_app

from bot.app import App
from bot.auth import parse_admin_rule
from bot.config import Config, load_config

CONFIG = """\
server: {host: irc.example.net, port: 6697, tls: true}
nick: bot
channels: ["#bot"]
prefix: "!"
admins: ["boss!*@trusted.example"]
commands_dir: commands
state_db: null
"""


def test_an_overlay_survives_every_rehash(tmp_path: Path) -> None:
    """The demo points the bot at a local server; a rehash must not undo that."""
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    (tmp_path / "commands").mkdir()
    local_admin = parse_admin_rule("*!*@127.0.0.1")

    def local(config: Config) -> Config:
        server = replace(config.server, host="127.0.0.1", port=7000, tls=False)
        return replace(config, server=server, admins=(*config.admins, local_admin))

    app = App(
        load_config(path),
        namespace=f"c_{uuid.uuid4().hex[:8]}",
        transport=NullTransport,
        overlay=local,
    )
    try:
        assert app.config.server.host == "127.0.0.1"
        assert app.rehash() == "no changes"  # the overlay is not a change
        path.write_text(CONFIG.replace('prefix: "!"', 'prefix: "?"'))
        assert app.rehash() == "applied prefix = '?'"
        assert app.config.prefix == "?"
        assert app.config.server.port == 7000
        assert local_admin in app.config.admins
    finally:
        close_app(app)


def test_a_broken_file_keeps_the_old_config_in_force(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    (tmp_path / "commands").mkdir()
    app = App(load_config(path), namespace=f"c_{uuid.uuid4().hex[:8]}", transport=NullTransport)
    try:
        before = app.config
        path.write_text(CONFIG.replace("port: 6697", "port: many"))
        reply = app.rehash()
        assert reply.startswith("not applied, old config kept: config.yaml:1: server.port")
        path.write_text(CONFIG + "nick: [\n")
        assert "invalid YAML" in app.rehash()
        assert app.config is before
    finally:
        close_app(app)


def test_a_rehash_names_every_mistake_at_once(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    (tmp_path / "commands").mkdir()
    app = App(load_config(path), namespace=f"c_{uuid.uuid4().hex[:8]}", transport=NullTransport)
    try:
        before = app.config
        path.write_text(CONFIG.replace("port: 6697", "port: many") + 'prefix: "?"\n')
        assert app.rehash() == (
            "not applied, old config kept: "
            "config.yaml:1: server.port: expected a whole number from 1 to 65535, got 'many'"
            " | config.yaml:8: prefix: given twice (first at line 4)"
        )
        assert app.config is before
    finally:
        close_app(app)


def test_backups_start_when_the_config_asks_for_them(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from helpers import make_app

    started: list[tuple[object, ...]] = []

    class Backups:
        def __init__(self, storage: object, *args: object) -> None:
            started.append(args)

        def stop(self, timeout: float | None = None) -> None:
            pass

    monkeypatch.setattr("bot.app.Backups", Backups)
    app = make_app(tmp_path, {}, backup={"interval": 3600, "keep": 3, "dir": "saved"})
    close_app(app)
    assert started == [(tmp_path / "saved", 3600.0, 3)]
    app = make_app(tmp_path / "off", {})  # interval 0 (the default): none
    close_app(app)
    assert len(started) == 1
