"""Strict Transport Security (IRCv3 ``sts``): once a server asks for TLS, only TLS.

A server offers ``sts=port=6697`` on a plain connection: the bot drops it and
connects again with TLS on that port. Over TLS it offers ``sts=duration=N``: for N
seconds from then, the bot connects to that host only with TLS on that port, even
after a restart and whatever config.yaml says (``duration=0`` ends it). The policies
are kept in the state database, so a downgrade attempt by someone on the path finds
nothing to downgrade.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

STATE_KEY = "_sts"  # the state database's name for the policies (no module has it)


@dataclass(frozen=True)
class StsOffer:
    port: int | None  # where TLS is (given on plain connections)
    duration: int | None  # seconds to keep the policy (given over TLS)


def parse_offer(value: str) -> StsOffer:
    """``port=6697,duration=300`` (the ``sts`` capability's value); bad numbers ignored."""
    fields = dict(part.partition("=")[::2] for part in value.split(",") if part)
    port, duration = fields.get("port", ""), fields.get("duration", "")
    return StsOffer(
        int(port) if port.isdigit() and 0 < int(port) < 65536 else None,
        int(duration) if duration.isdigit() else None,
    )


class StsPolicies:
    """host -> (TLS port, until when), in a mapping that outlives the process."""

    def __init__(
        self,
        store: Callable[[], MutableMapping[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        memory: dict[str, Any] = {}
        self._store = store or (lambda: memory)
        self._clock = clock

    def port_for(self, host: str) -> int | None:
        """The TLS port a policy holds ``host`` to, if one is in force."""
        policy = self._store().get(host.lower())
        if not policy or policy["until"] <= self._clock():
            return None
        return int(policy["port"])

    def remember(self, host: str, port: int, duration: int) -> None:
        """A policy offered over TLS: keep it ``duration`` s (0: forget the host)."""
        store = self._store()
        if duration <= 0:
            store.pop(host.lower(), None)
        else:
            store[host.lower()] = {"port": port, "until": self._clock() + duration}
