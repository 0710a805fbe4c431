"""server-time and msgid reach a command as ctx.time and ctx.msgid (scripted server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakeserver import FakeServer, Script, running_app

STAMPS = '''
from bot.api import command


@command
def stamp(ctx, args):
    """stamp -- when and which message"""
    return f"{ctx.time.isoformat()} {ctx.msgid}"
'''


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_server_time_and_msgid_are_on_ctx(tmp_path: Path, isolated: bool) -> None:
    script = Script(cap_ls=["message-tags server-time"])
    with (
        FakeServer(script) as server,
        running_app(
            tmp_path,
            server.port,
            commands={"stamp.py": STAMPS},
            isolate=["stamp"] if isolated else [],
        ),
    ):
        session = server.wait_registered(timeout=3)
        since = session.mark()
        session.send(
            "@time=2026-12-01T23:59:58.250Z;msgid=abc123 :alice!a@a.example PRIVMSG #c :!stamp"
        )
        line = session.wait_for(r"^PRIVMSG #c :2026", since=since, timeout=10)
        assert line == "PRIVMSG #c :2026-12-01T23:59:58.250000+00:00 abc123"
        since = session.mark()
        session.send("@time=garbage :alice!a@a.example PRIVMSG #c :!stamp")  # ignored
        line = session.wait_for(r"^PRIVMSG #c :\d{4}-", since=since, timeout=10)
        assert line.endswith(" None") and "+00:00" in line
