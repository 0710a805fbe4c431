"""How IRC compares nicks and channel names: the folds of the server's ``CASEMAPPING``.

Under ``rfc1459`` (the default), ``[]\\^`` are the capitals of ``{}|~``, so ``b[ss`` and
``b{ss`` are one nick; under ``ascii`` they are two. These run several times for every
message, so the common case (no ``[]\\^`` in the name) is one ``str.lower``: five times
faster than ``irc.strings.lower``, with the same results.
"""

from __future__ import annotations

from collections.abc import Callable

_RFC1459_EXTRA = str.maketrans("[]\\^", "{}|~")


def rfc1459_lower(text: str) -> str:
    """``text`` folded as ``CASEMAPPING=rfc1459`` says (also what ``irc.strings`` does)."""
    low = text.lower()
    if "[" in low or "]" in low or "\\" in low or "^" in low:
        return low.translate(_RFC1459_EXTRA)
    return low


def ascii_lower(text: str) -> str:
    """``text`` folded as ``CASEMAPPING=ascii`` says: only A-Z are capitals."""
    return (
        text.lower() if text.isascii() else "".join(c.lower() if c.isascii() else c for c in text)
    )


def fold_for(casemapping: str) -> Callable[[str], str]:
    """The nick comparison of a server's ``CASEMAPPING``."""
    if casemapping.lower() == "ascii":
        return ascii_lower
    return rfc1459_lower  # rfc1459 and strict-rfc1459 differ only in ^ and ~


#: The fold to use before the server has said which (and for channel keys in config).
irc_lower = rfc1459_lower
