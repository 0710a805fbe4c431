"""SASL, services accounts and who counts as an admin.

Three layers: config validation (no server), the scripted fake server for exact
SASL and account-tracking edge cases, and the real InspIRCd + Atheme network
(``ircnet``) for the end-to-end path: the bot logs in with SASL PLAIN, an admin
logged in as ``admin1`` may ``!reload``, an impostor holding the nick ``admin1``
may not.
"""

from __future__ import annotations

import base64
import itertools
import logging
import re
import uuid
from pathlib import Path

import pytest
import yaml
from fakeserver import (
    BASE_CONFIG,
    FakeServer,
    Script,
    Session,
    assert_alive,
    running_app,
    wait_until,
)
from helpers import ensure_account
from ircclient import ClientFactory, IrcClient, connect_all
from ircnet import InspircdAtheme

from bot.auth import parse_admin_rule
from bot.config import ConfigError, load_config
from bot.connection import Backoff
from bot.message import Source

# --------------------------------------------------------------------------- config


def _config_with_admins(tmp_path: Path, admins: list[str]) -> Path:
    raw = {**BASE_CONFIG, "server": {"host": "127.0.0.1"}, "admins": admins}
    (tmp_path / "commands").mkdir(exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_bare_nick_in_admins_is_rejected_at_load_with_the_reason(tmp_path: Path) -> None:
    path = _config_with_admins(tmp_path, ["account:admin1", "boss"])
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "admins[1]" in message
    assert "'boss' is a bare nick, which anyone can take" in message
    assert "boss!*@your.host" in message and "account:boss" in message
    assert caught.value.problems[0].line is not None  # points at the line in the file


@pytest.mark.parametrize("entry", ["boss!*@*", "boss!?*@*?"])
def test_nick_only_hostmask_in_admins_is_rejected_like_a_bare_nick(
    tmp_path: Path, entry: str
) -> None:
    with pytest.raises(ConfigError, match="anyone who takes the nick 'boss'"):
        load_config(_config_with_admins(tmp_path, [entry]))


def test_account_and_hostmask_admins_load(tmp_path: Path) -> None:
    config = load_config(_config_with_admins(tmp_path, ["account:Admin1", "*!*trusted@*.example"]))
    by_account, by_mask = config.admins
    assert by_account.matches(Source("x", "u", "h", account="admin1"))  # accounts fold case
    assert not by_account.matches(Source("Admin1", "u", "h"))  # a nick is not an account
    assert by_mask.matches(Source("anyone", "~trusted", "box.example"))
    assert not by_mask.matches(Source("anyone", "~trusted", "box.example.evil"))


def test_admin_masks_compare_nicks_by_the_servers_casemapping() -> None:
    """rfc1459 (the default): [a] and {a} are one nick; ascii: two."""
    from bot.casemap import fold_for

    rule = parse_admin_rule("[boss]!*@host.example")
    curly = Source("{BOSS}", "u", "host.example")
    assert rule.matches(curly) and rule.matches(curly, fold_for("rfc1459"))
    assert not rule.matches(curly, fold_for("ascii"))
    assert rule.matches(Source("[Boss]", "u", "host.example"), fold_for("ascii"))
    account = parse_admin_rule("account:[Boss]")
    assert account.matches(Source("x", "u", "h", account="{boss}"))
    assert not account.matches(Source("x", "u", "h", account="{boss}"), fold_for("ascii"))


# --------------------------------------------------------------------------- SASL (fake server)

SASL_CAPS = ["multi-prefix account-tag sasl=PLAIN,EXTERNAL"]


def _sasl(account: str = "botacct", password: str = "right", **extra: object) -> dict[str, object]:
    return {"account": account, "password": password, **extra}


def test_sasl_plain_logs_in_before_registering(tmp_path: Path) -> None:
    script = Script(cap_ls=SASL_CAPS, accounts={"botacct": "right"})
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, sasl=_sasl()) as app,
    ):
        session = server.wait_registered()
        assert session.account == "botacct"
        assert session.lines.index("AUTHENTICATE PLAIN") < session.lines.index("CAP END")
        wait_until(lambda: app.connection.account == "botacct")
        assert_alive(session, "logged-in")


def test_sasl_external_takes_the_account_name_from_the_server(tmp_path: Path) -> None:
    script = Script(cap_ls=SASL_CAPS, external_account="certuser")
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, sasl={"mechanism": "EXTERNAL"}) as app,
    ):
        session = server.wait_registered()
        assert "AUTHENTICATE EXTERNAL" in session.lines and "AUTHENTICATE +" in session.lines
        wait_until(lambda: app.connection.registered.is_set())
        assert app.connection.account == "certuser"


def _failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "SASL login" in r.getMessage()]


@pytest.mark.parametrize(
    "script",
    [
        Script(cap_ls=SASL_CAPS, accounts={"botacct": "other"}),  # wrong password
        Script(cap_ls=["multi-prefix"]),  # no SASL offered
        Script(cap_ls=["sasl=EXTERNAL"]),  # not our mechanism
        Script(cap_ls=SASL_CAPS, cap_req="nak"),  # sasl refused
        Script(cap_ls=SASL_CAPS, answer_sasl=False),  # AUTHENTICATE never answered
    ],
    ids=["wrong password", "no sasl", "other mechanism", "sasl NAKed", "no answer"],
)
def test_required_sasl_failure_never_registers_and_retries(
    tmp_path: Path, script: Script, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, sasl=_sasl(), settings={"cap_timeout": 0.3}) as app,
    ):
        for index in range(3):
            session = server.wait_session(index)
            session.wait_for(r"^CAP LS")
            assert session.closed.wait(3), "the bot kept a connection without its account"
        assert not any(s.registered.is_set() for s in server.sessions)
        assert all("CAP END" not in s.lines for s in server.sessions[:3])
        assert app.connection.connects == 0
        assert len(_failures(caplog)) >= 2
        assert "not running without the account" in _failures(caplog)[0].getMessage()


def test_optional_sasl_failure_registers_without_an_account(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = Script(cap_ls=SASL_CAPS, accounts={"botacct": "other"})
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, sasl=_sasl(required=False)) as app,
    ):
        session = server.wait_registered()
        assert_alive(session, "no-account")
        assert app.connection.account is None
        assert any("continuing without an account" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("length", [600, 284])  # 284: the payload is exactly 400 bytes
def test_long_sasl_payload_is_sent_in_400_byte_chunks(tmp_path: Path, length: int) -> None:
    password = "p" * length
    payload = base64.b64encode(f"botacct\0botacct\0{password}".encode()).decode()
    script = Script(cap_ls=SASL_CAPS, accounts={"botacct": password})
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, sasl=_sasl(password=password)) as app,
    ):
        session = server.wait_registered()
        sent = [ln.split(" ", 1)[1] for ln in session.lines if ln.startswith("AUTHENTICATE ")]
        chunks = [payload[i : i + 400] for i in range(0, len(payload), 400)]
        if len(chunks[-1]) == 400:
            chunks.append("+")
        assert sent == ["PLAIN", *chunks]
        wait_until(lambda: app.connection.account == "botacct")


# --------------------------------------------------------------------------- accounts (fake)

MODULES_ANSWER = r"^PRIVMSG {target} :echo: echo$"
REFUSED = r"^PRIVMSG {target} :{nick}: !modules is for admins only$"


def _modules(session: Session, source: str, tags: str = "", target: str = "#c") -> bool:
    """``source`` says ``!modules``: True if answered as an admin, False if refused."""
    since = session.mark()
    session.send(f"{tags}:{source} PRIVMSG {target} :!modules echo")
    reply_to = target if target.startswith("#") else source.split("!")[0]
    nick = source.split("!")[0]
    admin = MODULES_ANSWER.format(target=reply_to)
    refused = REFUSED.format(target=reply_to, nick=re.escape(nick))
    line = session.wait_for(rf"{admin}|{refused}", since=since)
    return line.endswith("echo: echo")


def test_account_tag_is_authoritative(tmp_path: Path) -> None:
    script = Script(cap_ls=["account-tag extended-join account-notify"])
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, admins=["account:admin1"]),
    ):
        session = server.wait_registered()
        session.wait_for(r"^JOIN #c$")
        # extended-join says admin1, but this message carries no account tag.
        session.send(":admin1!a@h.example JOIN #c admin1 :Real Name")
        assert not _modules(session, "admin1!a@h.example")
        assert _modules(session, "admin1!a@h.example", tags="@account=admin1 ")
        assert _modules(session, "someone!s@s.example", tags="@account=Admin1;time=x ")
        assert not _modules(session, "admin1!a@h.example", tags="@account=admin2 ")
        assert not _modules(session, "admin1!a@h.example", tags="@account ")


def test_account_tracking_without_account_tag(tmp_path: Path) -> None:
    """Fallback to extended-join + account-notify; what we can no longer see is forgotten."""
    script = Script(cap_ls=["extended-join account-notify"])
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, admins=["account:admin1"]),
    ):
        session = server.wait_registered()
        session.wait_for(r"^JOIN #c$")
        session.send(":admin1!a@h.example JOIN #c admin1 :Real Name")
        assert _modules(session, "admin1!a@h.example")

        session.send(":admin1!a@h.example NICK :renamed")  # the account follows the nick
        assert _modules(session, "renamed!a@h.example")
        session.send(":impostor!i@i.example NICK :admin1")  # the old nick does not
        assert not _modules(session, "admin1!i@i.example")

        session.send(":renamed!a@h.example ACCOUNT *")  # logged out
        assert not _modules(session, "renamed!a@h.example")
        session.send(":renamed!a@h.example ACCOUNT admin1")  # logged in again
        assert _modules(session, "renamed!a@h.example")
        session.send(":renamed!a@h.example QUIT :gone")
        assert not _modules(session, "renamed!x@elsewhere.example", target="testbot")


def test_tracked_accounts_follow_the_servers_casemapping(tmp_path: Path) -> None:
    """Under CASEMAPPING=ascii, b[ss and b{ss are two people: one's account is not the other's."""
    script = Script(cap_ls=["extended-join account-notify"])
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, admins=["account:admin1"]),
    ):
        session = server.wait_registered()
        session.wait_for(r"^JOIN #c$")
        session.send(":fake.test 005 testbot CASEMAPPING=ascii :are supported by this server")
        session.send(":b[ss!a@h.example JOIN #c admin1 :Real Name")
        assert _modules(session, "b[ss!a@h.example")
        assert not _modules(session, "b{ss!x@other.example")


def test_whox_fills_in_accounts_of_users_already_in_the_channel(tmp_path: Path) -> None:
    """Without account-tag, who was there before the bot joined is learned with WHOX."""

    def join_with_whox(session: Session, channel: str) -> None:
        session.send(f":fake.test 005 {session.nick} WHOX :are supported")
        session.send(f":{session.mask} JOIN {channel}")

    script = Script(cap_ls=["extended-join account-notify"], join=join_with_whox)
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, admins=["account:admin1"]),
    ):
        session = server.wait_registered()
        who = session.wait_for(r"^WHO #c %tna,42$")
        assert who
        assert not _modules(session, "early!e@e.example")
        session.send(":fake.test 354 testbot 42 early admin1")
        session.send(":fake.test 354 testbot 42 other 0")
        session.send(":fake.test 315 testbot #c :End of WHO list")
        assert _modules(session, "early!e@e.example")
        assert not _modules(session, "other!o@o.example")


def test_account_is_forgotten_when_the_user_leaves_our_channels(tmp_path: Path) -> None:
    """After PART/KICK we no longer see the user's NICK or ACCOUNT changes.

    The real admin1 leaves, then changes nick and logs out unseen; an impostor
    takes the nick ``admin1`` and messages the bot privately. The bot must not
    remember the old account for that nick.
    """
    script = Script(cap_ls=["extended-join account-notify"])
    with (
        FakeServer(script) as server,
        running_app(tmp_path, server.port, admins=["account:admin1"]),
    ):
        session = server.wait_registered()
        session.wait_for(r"^JOIN #c$")
        for leave in (
            ":admin1!a@h.example PART #c :bye",
            ":op!o@o.example KICK #c admin1 :out",
            ":op!o@o.example KICK #c testbot :you too",  # we left: we see nobody now
        ):
            session.send(":admin1!a@h.example JOIN #c admin1 :Real Name")
            assert _modules(session, "admin1!a@h.example")
            session.send(leave)
            assert not _modules(session, "admin1!evil@evil.example", target="testbot")


# --------------------------------------------------------------------------- real network

PASSWORD = "botacct-secret"
ADMIN_PASSWORD = "admin1-secret"


_unique = itertools.count(1)


def _suffix() -> str:
    return f"{next(_unique)}{uuid.uuid4().hex[:4]}"


def _change_nick(client: IrcClient, new: str) -> None:
    old = client.nick
    client.send(f"NICK {new}")
    client.wait_for(rf"^:{old}!\S+ NICK :?{new}$", timeout=5)
    client.nick = new


@pytest.mark.integration
@pytest.mark.services
def test_sasl_login_account_admins_and_impostor(
    ircnet: InspircdAtheme, irc_client: ClientFactory, tmp_path: Path
) -> None:
    ensure_account(ircnet, "botacct", PASSWORD)
    ensure_account(ircnet, "admin1", ADMIN_PASSWORD)
    channel = f"#svc{_suffix()}"
    admin = irc_client(nick="admin1", server=ircnet, sasl=("admin1", ADMIN_PASSWORD), connect=False)
    impostor = irc_client("imp", server=ircnet, connect=False)
    by_host = irc_client("hostadm", server=ircnet, user="trusted", connect=False)
    config = {
        "nick": f"sb{_suffix()}",
        "channels": [channel],
        "admins": ["account:admin1", "*!*trusted@*"],
        "sasl": {"account": "botacct", "password": PASSWORD},
    }
    with running_app(tmp_path, ircnet.port, **config) as app:
        connect_all([admin, impostor, by_host])  # registers on the same tick as the bot
        connection = app.connection
        wait_until(connection.registered.is_set, timeout=10, what="the bot to register")
        assert connection.account == "botacct"
        assert "account-tag" in connection.caps
        for client in (admin, impostor, by_host):
            client.join(channel)
        wait_until(lambda: channel in connection.joined, what="the bot to join")
        bot = config["nick"]

        admin.privmsg(channel, "!reload")
        admin.wait_for(rf"^:{bot}!\S+ PRIVMSG {channel} :reload: ")
        by_host.privmsg(channel, "!reload")  # hostmask admins keep working
        by_host.wait_for(rf"^:{bot}!\S+ PRIVMSG {channel} :reload: ")

        # The real admin1 moves away (still logged in); the impostor takes the nick.
        _change_nick(admin, "admin1away")
        _change_nick(impostor, "admin1")
        impostor.privmsg(channel, "!reload")
        impostor.wait_for(rf"PRIVMSG {channel} :admin1: !reload is for admins only$")
        admin.privmsg(channel, "!reload")  # the account, not the nick, is what counts
        admin.wait_for(rf"^:{bot}!\S+ PRIVMSG {channel} :reload: ")
        impostor.privmsg(channel, "!echo still a user")  # refused as admin, served as user
        impostor.wait_for(rf"PRIVMSG {channel} :still a user$")


@pytest.mark.integration
@pytest.mark.services
def test_sasl_wrong_password_does_not_register_and_backs_off(
    ircnet: InspircdAtheme,
    irc_client: ClientFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.connection")
    ensure_account(ircnet, "botacct", PASSWORD)
    channel = f"#svc{_suffix()}"
    nick = f"bad{_suffix()}"
    watcher = irc_client("watch", server=ircnet, connect=False)
    config = {
        "nick": nick,
        "channels": [channel],
        "sasl": {"account": "botacct", "password": "wrong-password"},
    }
    backoff = Backoff(first=0.3, cap=2.0)
    with running_app(tmp_path, ircnet.port, backoff=backoff, **config) as app:
        connect_all([watcher])
        watcher.join(channel)
        seen = len(_failures(caplog))
        wait_until(lambda: len(_failures(caplog)) >= max(2, seen + 1), timeout=10)

        failures = _failures(caplog)
        assert "SASL login as botacct failed" in failures[0].getMessage()
        assert app.connection.connects == 0 and not app.connection.registered.is_set()
        assert not any(f":{nick}!" in line and " JOIN " in line for line in watcher.lines)
        attempts = [r.created for r in caplog.records if r.getMessage().startswith("connecting")]
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        assert gaps and all(gap >= 0.3 * 0.5 * 0.9 for gap in gaps), gaps  # no tight loop
        assert backoff.attempts >= 2
