"""Whose services account is whose, when the server does not tag each message with it.

With ``account-tag`` the tag on a message is the truth and nothing here is needed.
Without it, accounts are followed from what the server tells us while we share a
channel with someone: ``extended-join``, ``account-notify`` (``ACCOUNT``) and our own
WHOX query on joining. What we can no longer see is forgotten, so an impostor who
takes a nick never inherits an account (see ``forget``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

WHOX_TOKEN = "42"  # marks replies to our own WHOX queries


class Accounts:
    """nick (folded as the server folds) -> account, for one connection."""

    def __init__(self, fold: Callable[[str], str]) -> None:
        self._fold = fold  # read at each use: CASEMAPPING may arrive after we connect
        self._known: dict[str, str | None] = {}
        self.whox = False  # the server supports WHO %tna (ISUPPORT WHOX)

    def reset(self) -> None:
        """A new connection: nothing known yet."""
        self._known, self.whox = {}, False

    def of(self, nick: str, tags: Mapping[str, str | None], tagged: bool) -> str | None:
        """The account behind a message from ``nick``; ``tagged``: account-tag is on,
        so the tag alone decides (no tag: not logged in)."""
        if tagged:
            return tags.get("account") or None
        return self._known.get(self._fold(nick))

    def logged(self, nick: str, account: str | None) -> None:
        """``nick`` is logged in as ``account`` (``*``, ``0`` or None: not logged in)."""
        self._known[self._fold(nick)] = None if account in ("*", "0", None) else account

    def whox_reply(self, args: list[str]) -> None:
        """A reply to our ``WHO #chan %tna,42``: ``42 nick account`` (``0``: none)."""
        if len(args) == 3 and args[0] == WHOX_TOKEN:
            self.logged(args[1], args[2])

    def whox_query(self, channel: str) -> str:
        return f"WHO {channel} %tna,{WHOX_TOKEN}"

    def renamed(self, old: str, new: str) -> None:
        key = self._fold(old)
        if key in self._known:
            self._known[self._fold(new)] = self._known.pop(key)

    def forget(self, nick: str, *, everyone: bool = False) -> None:
        """Someone left a channel we share (``everyone``: we left one).

        Accounts come from events that only reach us while we share a channel. Once
        they have left, a logout or a nick change goes unseen, and an impostor could
        take the nick and inherit the account. Forgetting errs on the safe side: the
        account is learned again from their next JOIN or ACCOUNT.
        """
        if everyone:
            self._known.clear()
        else:
            self._known.pop(self._fold(nick), None)
