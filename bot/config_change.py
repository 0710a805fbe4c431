"""What differs between two configs, and how a notice says it (the running bot's rehash).

Owns one rule set: which keys apply at once, which on the next reconnect, which
need a restart, and which values a notice may repeat (never a secret).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from bot.config import Config


@dataclass(frozen=True)
class ConfigChange:
    """What differs between two configs, in the terms the app applies them."""

    join: tuple[str, ...] = ()
    part: tuple[str, ...] = ()
    nick: str | None = None
    changed: tuple[str, ...] = ()  # top-level keys that differ
    needs_reconnect: tuple[str, ...] = ()
    needs_restart: tuple[str, ...] = ()
    values: Mapping[str, str] = field(default_factory=dict)  # key -> its new value, shown

    def describe(self) -> str:
        if not self.changed:
            return "no changes"
        parts = []
        if self.join:
            parts.append(f"joining {', '.join(self.join)}")
        if self.part:
            parts.append(f"leaving {', '.join(self.part)}")
        if self.nick:
            parts.append(f"nick -> {self.nick}")
        later = ("nick", *self.needs_reconnect, *self.needs_restart)
        if self.join or self.part:
            later += ("channels",)  # said as joining/leaving
        if self.nick:
            later += ("alt_nicks",)  # the default alternatives follow the nick
        live = [k for k in self.changed if k not in later]
        if live:
            shown = [f"{k} = {self.values[k]}" if k in self.values else k for k in live]
            parts.append(f"applied {', '.join(shown)}")
        if self.needs_reconnect:
            keys = ", ".join(self.needs_reconnect)
            parts.append(f"{keys}: takes effect on the next reconnect (!reconnect)")
        if self.needs_restart:
            parts.append(f"{', '.join(self.needs_restart)}: takes effect on restart")
        return "; ".join(parts)


def diff(old: Config, new: Config) -> ConfigChange:
    from bot.casemap import irc_lower as lower

    changed = tuple(
        f.name
        for f in fields(Config)
        if f.name not in ("path", "lines", "channel_options")
        and getattr(old, f.name) != getattr(new, f.name)
    )
    if "channels" not in changed and old.channel_options != new.channel_options:
        changed += ("channels",)  # a key, a switch or an override in a channel's entry
    old_ch = {lower(c): c for c in old.channels}
    new_ch = {lower(c): c for c in new.channels}
    return ConfigChange(
        join=tuple(c for k, c in new_ch.items() if k not in old_ch),
        part=tuple(c for k, c in old_ch.items() if k not in new_ch),
        nick=new.nick if new.nick != old.nick else None,
        changed=changed,
        needs_reconnect=tuple(k for k in changed if k in _RECONNECT_KEYS),
        needs_restart=tuple(k for k in changed if k in _RESTART_KEYS),
        values={k: _shown(getattr(new, k), getattr(old, k)) for k in changed if k in _SHOWN},
    )


# Keys whose new value a config notice repeats: short, and never a secret (server
# passwords, SASL, module settings and channel keys are only named).
_SHOWN = frozenset(
    {
        "prefix", "watch", "notify", "log_level", "command_timeout", "reload_timeout",
        "rejoin_delay", "join_on_invite", "ping_interval", "ping_timeout", "rate_limit",
        "command_rate", "addressing", "isolate", "isolate_memory_mb", "ignore", "admins", "http",
    }
)  # fmt: skip


def _shown(value: Any, old: Any) -> str:
    """A config value as a notice says it: ``"!"``, ``[#a, #b]``, and of a section only
    what changed: ``{burst: 3}``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changed = [f.name for f in fields(value) if getattr(value, f.name) != getattr(old, f.name)]
        inner = ", ".join(f"{name}: {_plain(getattr(value, name))}" for name in changed)
        text = "{" + inner + "}"
    elif isinstance(value, tuple):
        text = "[" + ", ".join(str(getattr(v, "text", v)) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= 120 else text[:119] + "…"


def _plain(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return repr(value)


# Keys a running bot cannot apply in place; everything else is applied at once.
_RECONNECT_KEYS = ("server", "username", "realname", "sasl")
_RESTART_KEYS = ("commands_dir", "state_db", "workers", "logging", "backup")
