"""Built-in commands: help for everyone; module and config control for admins.

They use the same Context as any command module, but are not reloadable and
their names are reserved. They reach the bot through one narrow protocol,
``Admin``, so this file knows nothing of how the bot is built.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Protocol

from bot.api import CommandError, CommandSpec, Context
from bot.dispatch import Running
from bot.folder import IDENTIFIER_HINT, is_module_name
from bot.ignores import IgnoreError, Ignores, normalise, parse_duration
from bot.isolated import worker_of
from bot.registry import Registry


class Report(Protocol):
    def summary(self) -> str: ...


class Admin(Protocol):
    """What the built-in commands may see and do."""

    @property
    def prefix(self) -> str: ...

    @property
    def registry(self) -> Registry: ...

    def reload(self, names: Iterable[str] = (), *, force: bool = False) -> Report: ...
    def load(self, name: str) -> Report: ...
    def unload(self, name: str) -> Report: ...
    def rehash(self) -> str: ...
    def reconnect(self) -> None: ...
    def running(self) -> list[Running]: ...
    def flush(self, target: str | None) -> int: ...
    def off(self, channel: str | None, module: str | None, command: str) -> bool: ...

    @property
    def ignores(self) -> Ignores: ...


#: The built-in commands' names: no module may take them (see bot.templates too).
NAMES = frozenset(
    [
        "help",
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


class Builtins:
    def __init__(self, app: Admin) -> None:
        self.app = app

    def specs(self) -> tuple[CommandSpec, ...]:
        return (
            CommandSpec("help", (), False, self.help),
            CommandSpec("reload", (), True, self.reload),
            CommandSpec("load", (), True, self.load),
            CommandSpec("unload", (), True, self.unload),
            CommandSpec("modules", (), True, self.modules),
            CommandSpec("rehash", (), True, self.rehash),
            CommandSpec("reconnect", (), True, self.reconnect),
            CommandSpec("ignore", (), True, self.ignore),
            CommandSpec("unignore", (), True, self.unignore),
            CommandSpec("ignores", (), True, self.list_ignores),
            CommandSpec("flush", (), True, self.flush),
        )

    @property
    def prefix(self) -> str:
        return self.app.prefix

    def help(self, ctx: Context, args: str) -> str:
        """help [COMMAND] -- list the commands, or show how to use one"""
        name = args.strip().removeprefix(self.prefix).lower()
        registry = self.app.registry
        if not name:
            visible = [
                e.spec.name
                for e in registry.commands()
                if (ctx.is_admin or not e.spec.admin) and not self._off(ctx, e)
            ]
            return f"commands: {', '.join(visible)} -- say {self.prefix}help COMMAND for details"
        entry = registry.find(name)
        if entry is None or self._off(ctx, entry):
            raise CommandError(f"no command {name!r}; say {self.prefix}help for the list")
        spec = entry.spec
        text = spec.help.replace("\n\n", "\n")
        if spec.aliases:
            text += f"\n(also: {', '.join(self.prefix + a for a in spec.aliases)})"
        if spec.admin:
            text += "\n(admins only)"
        return text

    def _off(self, ctx: Context, entry: Any) -> bool:
        module = entry.module.name if entry.module is not None else None
        return self.app.off(ctx.channel, module, entry.spec.name)

    def reload(self, ctx: Context, args: str) -> str:
        """reload [--force] [MODULE...] -- reload changed modules (--force: all) or named ones"""
        words = args.split()
        force = "--force" in words or "-f" in words
        names = _module_names([w for w in words if w not in ("--force", "-f")])
        return "reload: " + self.app.reload(names, force=force).summary()

    def load(self, ctx: Context, args: str) -> str:
        """load MODULE -- load a command module from the commands folder"""
        return "load: " + self.app.load(self._one_module(args, "load")).summary()

    def unload(self, ctx: Context, args: str) -> str:
        """unload MODULE -- stop serving a command module's commands"""
        return "unload: " + self.app.unload(self._one_module(args, "unload")).summary()

    def modules(self, ctx: Context, args: str) -> list[str]:
        """modules [NAME] -- the loaded modules (in a channel: one line; NAME, or in
        private: each with its commands), and calls still running"""
        loaded = list(self.app.registry.command_modules())
        wanted = args.strip().lower()
        if wanted:
            loaded = [m for m in loaded if m.name.lower() == wanted]
            if not loaded:
                raise CommandError(f"modules: no module {wanted!r} is loaded")
        lines = [self._module_line(m) for m in loaded] or ["no modules loaded"]
        if ctx.channel is not None and not wanted:  # a channel gets one line, not a page
            names = ", ".join(m.name for m in loaded) or "none"
            lines = [
                f"{len(loaded)} modules: {names} -- {self.prefix}modules NAME, or ask in"
                " private, for their commands"
            ]
        # Calls stuck past their timeout or running for a second or more: a quick one
        # (this message's own listeners, this very command) is not news.
        now = time.monotonic()
        slow = [
            r
            for r in self.app.running()
            if r.name != "modules" and (r.stuck or now - r.started >= 1)
        ]
        if slow:
            busy = ", ".join(f"{r.name} for {r.nick} ({now - r.started:.0f}s)" for r in slow)
            lines.append(f"running: {busy}")
        return lines

    @staticmethod
    def _module_line(loaded: Any) -> str:
        names = ", ".join(s.name for s in loaded.commands) or "no commands"
        helpers = sorted(loaded.imports)
        uses = f" (uses {', '.join(helpers)})" if helpers else ""
        worker = worker_of(loaded.module)
        isolated = f" [{worker.describe()}]" if worker else ""
        return f"{loaded.name}: {names}{uses}{isolated}"

    def rehash(self, ctx: Context, args: str) -> str:
        """rehash -- re-read config.yaml and apply what changed, without reconnecting"""
        return "rehash: " + self.app.rehash()

    def reconnect(self, ctx: Context, args: str) -> str:
        """reconnect -- drop the connection on purpose and connect again (new server settings)"""
        self.app.reconnect()
        return "reconnecting"

    def ignore(self, ctx: Context, args: str) -> str:
        """ignore MASK|account:NAME [DURATION] [REASON] -- ignore a user for 30s, 10m, 2h, 1d...

        Without a DURATION, until unignored. A bare nick means nick!*@*.
        """
        words = args.split()
        if not words:
            raise CommandError(f"usage: {self.prefix}ignore MASK|account:NAME [DURATION] [REASON]")
        mask, rest = words[0], words[1:]
        seconds = None
        try:
            if rest and rest[0][:1].isdigit():
                seconds = parse_duration(rest.pop(0))
            entry = self.app.ignores.add(mask, seconds, " ".join(rest), by=ctx.nick)
        except IgnoreError as exc:
            raise CommandError(str(exc)) from None
        return f"ignoring {entry.mask} ({entry.left(time.time())})"

    def unignore(self, ctx: Context, args: str) -> str:
        """unignore MASK|account:NAME -- stop ignoring a user"""
        mask = args.strip()
        if not mask:
            raise CommandError(f"usage: {self.prefix}unignore MASK|account:NAME")
        try:
            found = self.app.ignores.remove(mask)
        except IgnoreError as exc:
            raise CommandError(str(exc)) from None
        return f"no longer ignoring {normalise(mask)}" if found else f"{mask} was not ignored"

    def list_ignores(self, ctx: Context, args: str) -> str:
        """ignores -- who is ignored, for how long, and why"""
        now = time.time()
        entries = [
            f"{e.mask} ({e.left(now)}{', ' + e.reason if e.reason else ''}, by {e.by or '?'})"
            for e in self.app.ignores.entries()
        ]
        return "ignored: " + "; ".join(entries) if entries else "nobody is ignored"

    def flush(self, ctx: Context, args: str) -> str:
        """flush [TARGET|*] -- drop the lines waiting to be sent to TARGET (here by default;
        * for everyone)"""
        target = args.strip() or ctx.channel or ctx.nick
        dropped = self.app.flush(None if target == "*" else target)
        where = "everyone" if target == "*" else target
        return f"flush: dropped {dropped} waiting line{'' if dropped == 1 else 's'} to {where}"

    def _one_module(self, args: str, verb: str) -> str:
        names = _module_names(args.split())
        if len(names) != 1:
            raise CommandError(f"usage: {self.prefix}{verb} MODULE")
        return names[0]


def _module_names(words: list[str]) -> list[str]:
    names = [w.removesuffix(".py") for w in words]
    for name in names:
        if not is_module_name(name):
            raise CommandError(f"{name!r} is not a module name: {IDENTIFIER_HINT}")
    return names
