"""Command line: ``python -m bot`` (or ``reloadbot``) runs, checks, or demos the bot.

Owns argument parsing, logging set-up, signals and exit codes; everything else
is the App's.
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.config
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot import __version__, hints
from bot.app import App
from bot.auth import parse_admin_rule
from bot.config import Config, ConfigError, load_config
from bot.loader import format_exception
from bot.storage import StateError, StateLocked, check_integrity

log = logging.getLogger("bot")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="reloadbot",
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
    parser.add_argument(
        "--demo",
        action="store_true",
        help="start a throwaway local IRC server (ngircd) and connect to it instead",
    )
    add_console_option(parser)
    parser.add_argument("--version", action="version", version=f"reloadbot {__version__}")
    sub = add_new_command(parser)
    add_init(sub)
    args = parser.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(LOG_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    if args.subcommand == "new-command":
        return new_command(args.name, args.config)
    if args.subcommand == "init":
        return init(args.dir)
    if args.console:
        try:
            return console(args.config)
        except StateError as exc:
            return _state_problem(exc)
    count: list[int] = []
    config = _load(args.config, count)
    if config is None:
        if not args.check:
            return 2
        print(_summary(sum(count)), file=sys.stderr)
        return 1  # --check: 1 for any problem, as documented
    logging.getLogger().setLevel(config.log_level)

    if args.check:
        return check(config)
    if not _configure_logging(config):
        return 1
    try:
        # the demo stops its IRC server before the process may exit
        status = demo(config) if args.demo else run(config)
    except StateError as exc:
        status = _state_problem(exc)
    _leave_stuck_threads_behind()
    return status


def _state_problem(exc: StateError) -> int:
    """The state database is held by another bot (2), or damaged (1): one line, no traceback."""
    print(str(exc), file=sys.stderr)
    return 2 if isinstance(exc, StateLocked) else 1  # StateCorrupt and the rest: 1


def _configure_logging(config: Config) -> bool:
    """Apply the config's ``logging`` (a ``logging.config.dictConfig`` dict); False if unusable.

    The bot's own loggers exist already: they are kept unless the dict says
    ``disable_existing_loggers: true``.
    """
    if not config.logging:
        return True
    settings = {"disable_existing_loggers": False, **config.logging}
    try:
        logging.config.dictConfig(settings)
    except Exception as exc:
        cause = exc.__cause__
        why = f"{exc} ({cause})" if cause is not None else str(exc)
        print(f"config error: logging: {' '.join(why.split())}", file=sys.stderr)
        return False
    return True


class _Formatter(logging.Formatter):
    """Tracebacks show each command module's text as it ran, even after a reload."""

    def formatException(self, ei: Any) -> str:
        exc = ei[1]
        if exc is None:
            return super().formatException(ei)
        return format_exception(exc).rstrip("\n")


def _load(path: Path, count: list[int] | None = None) -> Config | None:
    """The validated config, or None after printing every problem (key, file:line).

    ``count`` gets the number of problems printed appended.
    """
    problems: list[object] = []
    if not path.exists():
        problems.append(
            f"{path}: no such file (`{hints.reloadbot('init')}` writes a"
            " commented config.yaml and the standard commands here)"
        )
    else:
        try:
            return load_config(path)
        except ConfigError as exc:
            problems += exc.problems
    for problem in problems:
        print(f"config error: {problem}", file=sys.stderr)
    if count is not None:
        count.append(len(problems))
    return None


def _summary(problems: int) -> str:
    return f"{problems} problem{'s' if problems != 1 else ''} found"


def add_console_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--console",
        action="store_true",
        help="chat with the bot in this terminal instead of connecting to IRC",
    )


def add_new_command(parser: argparse.ArgumentParser) -> Any:
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    new = sub.add_parser(
        "new-command",
        help="write commands/NAME.py and tests/test_NAME.py from a template",
        description="Write a new command module and its test (never overwrites a file).",
    )
    new.add_argument("name", metavar="NAME", help="the command (and module) name, e.g. roll")
    new.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="config file")
    return sub


def add_init(sub: Any) -> None:
    new = sub.add_parser(
        "init",
        help="write a commented config.yaml and the standard commands/ into DIR",
        description=(
            "Start a bot's folder: a commented config.yaml and the standard command"
            " modules in DIR/commands. Never overwrites config.yaml."
        ),
    )
    new.add_argument("dir", metavar="DIR", nargs="?", type=Path, default=Path("."))


def init(target: Path) -> int:
    """init [DIR]: config.yaml and commands/ from the skeleton the package ships."""
    from bot.init import InitError, ask
    from bot.init import init as make

    def questions(template: str) -> str:
        print(f"A few questions for {_shown(target / 'config.yaml')} (Enter keeps the default):")
        return ask(template, input, print)

    interactive = sys.stdin.isatty() and sys.stdout.isatty()  # a pipe or CI: ask nothing
    try:
        made = make(target, questions if interactive else None)
    except (EOFError, KeyboardInterrupt):
        print("\ninit: stopped; nothing was written", file=sys.stderr)
        return 1
    except InitError as exc:
        print(f"init: {exc}", file=sys.stderr)
        return 1
    kept = f" (kept {len(made.kept)} already there)" if made.kept else ""
    config, commands = _shown(made.config), _shown(made.commands)
    print(f"wrote {config} and {len(made.copied)} modules in {commands}/{kept}")
    steps = [] if target.resolve() == Path.cwd().resolve() else [f"cd {_shown(target)}"]
    steps += [
        "edit config.yaml (server, nick, channels, admins)",
        f"`{hints.reloadbot('--check')}`",
        f"`{hints.reloadbot()}`",
    ]
    print("next: " + ", then ".join(steps))
    return 0


def console(path: Path) -> int:
    """--console: the real bot with a terminal for a transport (see bot.console)."""
    from bot.console import default_config, run_console

    if path == Path("config.yaml") and not path.exists():
        config = default_config(Path("commands").absolute())
        print("-- no config.yaml here: using ./commands and defaults", file=sys.stderr)
    else:
        loaded = _load(path)
        if loaded is None:
            return 2
        config = loaded
    root = logging.getLogger()
    root.setLevel(config.log_level)
    for handler in list(root.handlers):  # the console shows warnings in the chat instead
        root.removeHandler(handler)
    return run_console(config)


def new_command(name: str, path: Path) -> int:
    """new-command NAME: scaffold a command module and its test (see bot.templates)."""
    from bot.templates import ScaffoldError, scaffold

    config = None
    if path.exists() or path != Path("config.yaml"):
        config = _load(path)
        if config is None:
            return 2
    try:
        made = scaffold(name, config=config)
    except ScaffoldError as exc:
        print(f"new-command: {exc}", file=sys.stderr)
        return 1
    module, test = (_shown(p) for p in (made.module, made.test))
    prefix = config.prefix if config else "!"
    print(
        f"wrote {module} and {test}\n"
        f"next: edit {module}, run `{hints.pytest(test)}`, and try it with"
        f" `{hints.reloadbot('--console')}` (say {prefix}{name} hello)"
    )
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def check(config: Config) -> int:
    """Validate config and load every module without connecting; 1 if anything is wrong.

    Prints each problem once, then one summary line that matches the exit status.
    """
    quiet = _ReportedByCheck()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        app = App(replace(config, state_db=None))  # a check writes nothing
    except StateError as exc:
        print(str(exc), file=sys.stderr)
        print(_summary(1), file=sys.stderr)
        return 1
    try:
        report = app.load_all()
        problems = [str(p) for p in (*report.errors, *report.skipped)]
        if config.state_db is not None:  # read-only, no lock: safe while the bot runs
            damage = check_integrity(config.state_db)
            problems += [damage] if damage else []
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(_summary(len(problems)), file=sys.stderr)
            return 1
        modules = app.registry.command_modules()
        commands = sum(len(m.commands) for m in modules)
        print(f"config ok; {len(modules)} modules, {commands} commands", file=sys.stderr)
        return 0
    finally:
        app.close()
        for handler in handlers:
            handler.removeFilter(quiet)


class _ReportedByCheck(logging.Filter):
    """Drops the log lines of what ``check`` prints itself (a module that failed to
    load, a file skipped): the reloader logs each as it happens, and a check lists
    them all at the end, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "bot.reloader":
            return True
        failed = record.msg == "load failed: %s"
        skipped = record.msg == "%s" and record.levelno == logging.WARNING
        return not (failed or skipped)


def demo(config: Config) -> int:
    """Run against a throwaway local ngircd, so a newcomer needs nothing else."""
    from bot.ircd import IrcdError, Ngircd, free_port

    busy = not _port_free(DEMO_PORT)
    port = free_port() if busy else DEMO_PORT
    try:
        server = Ngircd(port=port).start()
    except IrcdError as exc:
        print(f"could not start a local IRC server: {exc}", file=sys.stderr)
        return 1
    if busy:
        print(
            f"port {DEMO_PORT} is busy; the demo's server runs on 127.0.0.1:{server.port} instead",
            file=sys.stderr,
        )
    channel = config.channels[0] if config.channels else "#bot"
    irssi = "irssi -c 127.0.0.1" + ("" if server.port == 6667 else f" -p {server.port}")
    saved = (
        "save it and the bot says in the channel what it reloaded"
        if config.watch
        else f"say {config.prefix}reload"
    )
    print(
        f"\n  A local IRC server is running on 127.0.0.1:{server.port}.\n"
        f"  Connect any IRC client to it (e.g. `{irssi}`),\n"
        f"  join {channel} and say {config.prefix}help. Clients on this machine are admins\n"
        f"  here, so {config.prefix}reload works: edit a file in {_shown(config.commands_dir)}/,\n"
        f"  {saved}, and try it.\n"
        f"  No IRC client? Run `{hints.reloadbot('--console')}` instead. Ctrl-C stops both.\n",
        file=sys.stderr,
    )
    local_admin = parse_admin_rule("*!*@127.0.0.1")

    def on_local_server(config: Config) -> Config:
        # Applied to config.yaml whenever it is read, so a rehash keeps the demo's setup.
        local = replace(config.server, host="127.0.0.1", port=server.port, tls=False)
        here = config.channels[0] if config.channels else channel
        # Automatic reloads and refused configs are said in the demo's channel.
        notify = config.notify if here in config.notify else (*config.notify, here)
        return replace(config, server=local, admins=(*config.admins, local_admin), notify=notify)

    try:
        return run(config, overlay=on_local_server)
    finally:
        server.stop()


#: The demo's IRC server port, when it is free: what IRC clients try by default.
DEMO_PORT = 6667


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def run(config: Config, overlay: Callable[[Config], Config] | None = None) -> int:
    app = App(config, overlay=overlay)
    # Everything imported so far lives as long as the process. Freezing it keeps the
    # full collection each reload runs (to free the old version) from walking it all
    # again: measured 4.7 ms -> 0.01 ms per collection. Command modules load after
    # this, so their old versions stay collectable.
    gc.freeze()
    if threading.current_thread() is threading.main_thread():
        stopping = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            if stopping.is_set():  # asked twice: no more waiting for anything
                log.warning("received %s again; exiting now", signal.Signals(signum).name)
                _exit_now(1)
            stopping.set()
            log.info("received %s; quitting", signal.Signals(signum).name)
            app.stop("Shutting down")

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        # The terminal was closed (tmux killed, ssh dropped): stop as cleanly, so the
        # demo's ngircd stops too instead of holding port 6667 for the next try.
        signal.signal(signal.SIGHUP, on_signal)
    app.run()
    return 0


#: Seconds the process waits at exit for threads that modules or stuck calls left running.
EXIT_GRACE = 2.0


def _leave_stuck_threads_behind() -> None:
    """End the process within EXIT_GRACE seconds, whatever threads are still running.

    Python waits at exit for every non-daemon thread (the command workers, threads a
    module started) and runs the modules' atexit handlers: a stuck one would keep the
    process alive until SIGKILL (under systemd, a TimeoutStopSec for every stop).
    """
    deadline = time.monotonic() + EXIT_GRACE
    main = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [
        t.name for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()
    ]
    if stuck:
        log.warning("exiting with %d thread(s) still running: %s", len(stuck), ", ".join(stuck))
        _exit_now(0)
    # atexit handlers of modules run after this; a stuck one must not hold the exit either.
    watchdog = threading.Timer(EXIT_GRACE, _exit_now, (0,))
    watchdog.daemon = True
    watchdog.start()


def _exit_now(status: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
