"""Command line: ``python -m bot`` (or ``reloadbot``) runs, checks, or demos the bot.

Owns argument parsing, logging set-up, signals and exit codes; everything else
is the App's.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from bot import __version__
from bot.app import App
from bot.config import ConfigError, load_config

log = logging.getLogger("bot")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="An IRC bot whose command modules reload live without dropping the connection.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("config.yaml"),
        help="config file (default: ./config.yaml)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate config and load every module, then exit (1 on any problem)",
    )
    parser.add_argument("--version", action="version", version=f"reloadbot {__version__}")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(config.log_level)

    if args.check:
        return check(config)
    return run(config)


def check(config_: object) -> int:
    from bot.config import Config

    assert isinstance(config_, Config)
    app = App(config_)
    try:
        report = app.load_all()
        for error in report.errors:
            print(error, file=sys.stderr)
        commands = sum(len(m.commands) for m in app.registry.command_modules())
        print(
            f"config ok; {len(app.registry.command_modules())} modules, {commands} commands",
            file=sys.stderr,
        )
        return 1 if report.errors else 0
    finally:
        app.close()


def run(config: object) -> int:
    from bot.config import Config

    assert isinstance(config, Config)
    app = App(config)
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, frame: object) -> None:
            log.info("received %s; quitting", signal.Signals(signum).name)
            app.stop("Shutting down")

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    app.run()
    return 0
