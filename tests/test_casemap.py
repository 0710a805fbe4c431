"""bot.casemap: the fast folds give what irc.strings gives, and ascii keeps []\\^ apart."""

from __future__ import annotations

import irc.strings
from hypothesis import given
from hypothesis import strategies as st

from bot.casemap import ascii_lower, fold_for, rfc1459_lower

NICKISH = st.text(alphabet=st.sampled_from("aZ09_-[]{}\\|^~`ÉéßİK"), max_size=20)


@given(NICKISH)
def test_rfc1459_is_what_the_irc_library_does(text: str) -> None:
    assert rfc1459_lower(text) == irc.strings.lower(text)


def test_the_two_casemappings() -> None:
    assert rfc1459_lower("B[SS]\\^") == "b{ss}|~"
    assert ascii_lower("B[SS]\\^") == "b[ss]\\^"
    assert ascii_lower("ÉA") == "Éa"  # only A-Z are capitals under ascii
    assert fold_for("ascii") is ascii_lower
    assert fold_for("rfc1459") is fold_for("strict-rfc1459") is rfc1459_lower
