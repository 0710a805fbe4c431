"""Issue 2, end to end: commands and reloads through IRC itself (real ngIRCd, real sockets).

Every test runs a real bot (``running_bot`` in conftest.py) and talks to it with
raw-socket clients.  Admins are clients whose nick starts with ``boss`` (the
bot's config says ``admins: ["boss*!*@127.0.0.1"]``); anyone else is a user.
"No reply" is asserted by ordering: a later command's reply must be the next
line the bot sends there.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import types
import uuid
import weakref
from collections import Counter
from collections.abc import Iterator

import pytest
from irc.strings import lower as irc_lower
from ircclient import IrcClient, parse

pytestmark = pytest.mark.integration

ECHO_UPPER = '''
from bot.api import command


@command
def echo(ctx, args):
    """echo TEXT -- repeat TEXT back, louder"""
    return args.upper()


@command
def shout(ctx, args):
    """shout TEXT -- a new command"""
    return args.upper() + "!"
'''


def echo_variant(tag: str) -> str:
    return f'''
from bot.api import command


@command
def echo(ctx, args):
    """echo TEXT -- repeat TEXT back, tagged"""
    return "{tag} " + args
'''


def bot_lines(client: IrcClient, since: int, nick: str) -> list[str]:
    """Raw lines whose source is ``nick`` (any command) since ``since``."""
    return [ln for ln in client.lines_since(since) if irc_lower(parse(ln).nick) == irc_lower(nick)]


def whois_signon(client: IrcClient, nick: str) -> str:
    """The signon time (3rd parameter of numeric 317) the server reports for ``nick``."""
    mark = client.mark()
    client.send(f"WHOIS {nick}")
    line = parse(client.wait_for(lambda ln: parse(ln).command == "317", since=mark))
    client.wait_for(lambda ln: parse(ln).command == "318", since=mark)
    assert irc_lower(line.params[1]) == irc_lower(nick), line
    return line.params[3]


# -- answering ---------------------------------------------------------------------


def test_echo_in_channel_unknown_command_and_private(running_bot, irc_client) -> None:
    bot = running_bot()
    user = irc_client("user")
    user.join(bot.channel)

    assert bot.ask(user, "!echo hi") == "hi"

    mark = user.mark()
    user.privmsg(bot.channel, "!nosuchcommand hi")
    user.privmsg(bot.channel, "!echo after")
    assert bot.wait_reply(user, mark) == "after"  # the unknown command got nothing
    assert bot.replies(user, mark) == ["after"]

    mark = user.mark()
    assert bot.ask(user, "!echo x", private=True) == "x"
    assert bot.ask(user, "!echo sentinel") == "sentinel"
    assert bot.replies(user, mark) == ["sentinel"]  # the private one was not said in channel
    assert bot.replies(user, mark, target=user.nick) == ["x"]


def test_reload_serves_new_code_and_says_what_changed(running_bot, irc_client) -> None:
    bot = running_bot()
    boss = irc_client("boss")
    boss.join(bot.channel)
    assert bot.ask(boss, "!echo hi") == "hi"

    bot.write("echo", ECHO_UPPER)
    reply = bot.ask(boss, "!reload")
    assert reply.startswith("reload: "), reply
    assert "reloaded: echo" in reply
    assert "commands added: shout" in reply
    assert bot.ask(boss, "!echo hi") == "HI"
    assert bot.ask(boss, "!shout hey") == "HEY!"

    bot.write("echo", echo_variant("v2"))
    reply = bot.ask(boss, "!reload")
    assert "reloaded: echo" in reply
    assert "commands removed: shout" in reply
    mark = boss.mark()
    boss.privmsg(bot.channel, "!shout gone")
    boss.privmsg(bot.channel, "!echo hi")
    assert bot.wait_reply(boss, mark) == "v2 hi"

    assert bot.ask(boss, "!reload") == "reload: nothing changed; 1 module loaded"


def test_the_running_bot_frees_the_old_version_by_itself(running_bot, irc_client) -> None:
    """No gc.collect() from the test: the bot collects after a reload on its own."""
    bot = running_bot()
    boss = irc_client("boss")
    boss.join(bot.channel)
    old = bot.app.registry.modules["echo"]
    old_func = weakref.ref(old.commands[0].func)
    old_module = weakref.ref(old.module)
    del old
    bot.write("echo", echo_variant("v2"))
    assert "reloaded: echo" in bot.ask(boss, "!reload")
    bot.wait_until(lambda: old_func() is None and old_module() is None, "the old version freed")


def test_fifty_reloads_never_touch_the_connection(running_bot, irc_client) -> None:
    bot = running_bot()
    boss = irc_client("boss")
    boss.join(bot.channel)
    witness = irc_client("witness")
    witness.join(bot.channel)
    conn = bot.app.connection
    socket_id = id(conn.server.socket)
    signon = whois_signon(witness, bot.app.nick)
    mark = witness.mark()

    for i in range(50):
        tag = "even" if i % 2 == 0 else "odd"
        bot.write("echo", echo_variant(tag))
        assert bot.ask(boss, "!reload") == "reload: reloaded: echo", f"reload #{i}"
        assert bot.ask(boss, f"!echo {i}") == f"{tag} {i}"

    seen = [parse(ln).command for ln in bot_lines(witness, mark, bot.app.nick)]
    assert seen and set(seen) == {"PRIVMSG"}, seen  # no QUIT, PART or JOIN
    assert conn.connects == 1
    assert id(conn.server.socket) == socket_id
    assert whois_signon(witness, bot.app.nick) == signon


X_MODULE = """\
from bot.api import command


@command
def x(ctx, args):
    "x -- say x ok"
    return "x ok"
"""


def test_syntax_error_names_file_and_line_and_old_code_keeps_serving(
    running_bot, irc_client
) -> None:
    good = X_MODULE

    bot = running_bot({"echo.py": echo_variant("e"), "x.py": good})
    boss = irc_client("boss")
    boss.join(bot.channel)
    assert bot.ask(boss, "!x") == "x ok"

    bot.write("x", good.replace('return "x ok"', 'return "x new" +'))  # line 7
    reply = bot.ask(boss, "!reload")
    assert reply.startswith("reload: failed"), reply
    assert re.search(r"commands/x\.py:7\b", reply), reply
    assert "SyntaxError" in reply
    assert bot.ask(boss, "!x") == "x ok"
    assert bot.ask(boss, "!echo 1") == "e 1"

    bot.write("x", good.replace("x ok", "x fixed"))
    assert bot.ask(boss, "!reload") == "reload: reloaded: x; 1 unchanged"
    assert bot.ask(boss, "!x") == "x fixed"


HELPER = """
def fmt(text):
    return "<" + text + ">"
"""


def uses_helper(name: str, style: str) -> str:
    """A command module ``name`` that formats its reply with the helper ``_text``."""
    if style == "from-helper":
        imports, call = "from ._text import fmt", "fmt(args)"
    else:
        imports, call = "from . import _text", "_text.fmt(args)"
    return f"""
from bot.api import command

{imports}


@command
def {name}(ctx, args):
    "{name} TEXT"
    return "{name}" + {call}
"""


@pytest.mark.parametrize(
    "styles",
    [
        pytest.param(("from-helper", "from-helper"), id="from-helper-import-name"),
        pytest.param(("from-helper", "from-package"), id="mixed"),
        pytest.param(("from-package", "from-package"), id="from-package-import-helper"),
    ],
)
def test_helper_edit_reaches_every_module_that_imports_it(
    running_bot, irc_client, styles: tuple[str, str]
) -> None:
    files = {"_text.py": HELPER, "a.py": uses_helper("a", styles[0])}
    files["b.py"] = uses_helper("b", styles[1])
    bot = running_bot(files)
    boss = irc_client("boss")
    boss.join(bot.channel)
    assert bot.ask(boss, "!a 1") == "a<1>"
    assert bot.ask(boss, "!b 2") == "b<2>"

    for i in range(2):  # the second time, every module holds the first edit's helper
        bot.write("_text", HELPER.replace('"<"', f'"{i}["'))
        reply = bot.ask(boss, "!reload")
        assert re.fullmatch(r"reload: reloaded: (_text, )?a, b", reply), reply
        assert bot.ask(boss, "!a 1") == f"a{i}[1>"
        assert bot.ask(boss, "!b 2") == f"b{i}[2>"


def test_admin_commands_are_refused_to_users_and_paths_to_admins(running_bot, irc_client) -> None:
    bot = running_bot()
    (bot.commands_dir.parent / "x.py").write_text(X_MODULE.replace('"x ok"', '"pwned"'))
    user = irc_client("user")
    user.join(bot.channel)
    boss = irc_client("boss")
    boss.join(bot.channel)

    for command in ("!reload", "!reload --force", "!load echo", "!unload echo", "!rehash"):
        name = command.split()[0]
        reply = bot.ask(user, command)
        assert reply == f"{user.nick}: {name} is for admins only", reply
    assert bot.ask(user, "!echo still here") == "still here"

    for path in ("../x", "/etc/passwd", "../../x.py"):
        reply = bot.ask(boss, f"!load {path}", "load|module")
        assert "is not a module name" in reply, reply
        assert len(reply) < 200
    mark = boss.mark()
    boss.privmsg(bot.channel, "!x")
    boss.privmsg(bot.channel, "!echo next")
    assert bot.wait_reply(boss, mark, "^(pwned|next)$") == "next"
    assert set(bot.app.registry.modules) == {"echo"}


def test_commands_during_reloads_are_answered_exactly_once(running_bot, irc_client) -> None:
    # One reload runs at a time: one asked for meanwhile is answered at once that a
    # reload is still running. Either way each gets exactly one answer.
    bot = running_bot()
    # Admins are exempt from the per-user flood limits of bot.dispatch, so this
    # burst measures reloads racing commands, not rate limiting.
    user = irc_client("bossuser")
    user.join(bot.channel)
    boss = irc_client("boss")
    boss.join(bot.channel)
    count, every = 200, 5
    mark = user.mark()

    for n in range(count):
        user.privmsg(bot.channel, f"!echo n{n}")
        if n % every == 0:
            boss.privmsg(bot.channel, "!reload --force")

    reloads = count // every
    echoed: set[str] = set()
    reloaded: list[str] = []

    def all_answered(raw: str) -> bool:
        if bot.is_reply(raw):
            text = parse(raw).params[1]
            if text.startswith("reload: "):
                reloaded.append(text)
            else:
                echoed.add(text)
        return len(echoed) == count and len(reloaded) == reloads

    user.wait_for(all_answered, timeout=20, since=mark)
    assert bot.ask(user, "!echo last") == "last"

    texts = Counter(bot.replies(user, mark))
    assert {t: c for t, c in texts.items() if c != 1 and t.startswith("n")} == {}
    assert sum(c for t, c in texts.items() if t.startswith("n")) == count
    reload_replies = [t for t in bot.replies(user, mark) if t.startswith("reload: ")]
    assert len(reload_replies) == reloads
    done = [t for t in reload_replies if t == "reload: reloaded: echo"]
    refused = [t for t in reload_replies if t.startswith("reload: a reload is still running")]
    assert done and len(done) + len(refused) == reloads, Counter(reload_replies)


@pytest.fixture
def gate() -> Iterator[types.ModuleType]:
    """A module outside the commands folder that command code imports to be steered."""
    module = types.ModuleType(f"rbgate_{uuid.uuid4().hex[:8]}")
    module.started = threading.Event()  # type: ignore[attr-defined]
    module.release = threading.Event()  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    module.release.set()  # type: ignore[attr-defined]
    del sys.modules[module.__name__]


def test_a_slow_command_does_not_block_other_users(running_bot, irc_client, gate) -> None:
    slow = f"""
import {gate.__name__} as gate

from bot.api import command


@command
def slow(ctx, args):
    "slow -- wait for the test"
    gate.started.set()
    return "slow done" if gate.release.wait(20) else "slow gave up"
"""
    bot = running_bot({"echo.py": echo_variant("e"), "slow.py": slow})
    alice = irc_client("alice")
    alice.join(bot.channel)
    bob = irc_client("bob")
    bob.join(bot.channel)

    mark = alice.mark()
    alice.privmsg(bot.channel, "!slow")
    assert gate.started.wait(5), "the slow command never started"
    started = time.monotonic()
    assert bot.ask(bob, "!echo quick", timeout=1.0) == "e quick"
    assert time.monotonic() - started < 1.0
    bot.wait_reply(alice, mark, "^e quick$")
    assert bot.replies(alice, mark) == ["e quick"]  # slow is still running
    assert bot.app.connection.registered.is_set()

    gate.release.set()
    assert bot.wait_reply(alice, mark, "^slow") == "slow done"


BOOM = """\
from bot.api import command


@command
def boom(ctx, args):
    "boom -- fail"
    raise ValueError("kaboom")  # line 7
"""


def test_a_failing_command_gets_one_line_naming_file_and_line(running_bot, irc_client) -> None:
    bot = running_bot({"echo.py": echo_variant("e"), "boom.py": BOOM})
    user = irc_client("user")
    user.join(bot.channel)

    mark = user.mark()
    reply = bot.ask(user, "!boom")
    assert reply == "boom failed: ValueError: kaboom (commands/boom.py:7)", reply
    assert bot.ask(user, "!echo alive") == "e alive"
    assert bot.replies(user, mark) == [reply, "e alive"]
    assert bot.ask(user, "!boom") == reply  # and again: the bot keeps serving


def long_text() -> str:
    return " ".join(f"wé{i:04d}" for i in range(286))


UNSAFE = """
from bot.api import command


@command
def inject(ctx, args):
    "inject"
    evil, home = args.split()
    return f"x\\r\\nJOIN {evil}\\rPART {home}\\nQUIT :injected\\x00NICK hacked"


@command
def nul(ctx, args):
    "nul"
    return "a\\x00b"


@command
def long(ctx, args):
    "long"
    return " ".join(f"wé{i:04d}" for i in range(286))
"""


def test_replies_cannot_inject_raw_lines(running_bot, irc_client) -> None:
    bot = running_bot({"echo.py": echo_variant("e"), "unsafe.py": UNSAFE})
    nick = bot.app.nick
    user = irc_client("user")
    user.join(bot.channel)
    evil = f"#evil{uuid.uuid4().hex[:6]}"
    guard = irc_client("guard")
    guard.join(evil)

    mark = user.mark()
    user.privmsg(bot.channel, f"!inject {evil} {bot.channel}")
    for text in ("x", f"JOIN {evil}", f"PART {bot.channel}", "QUIT :injected", "NICK hacked"):
        assert bot.wait_reply(user, mark, f"^{re.escape(text)}$") == text
    assert bot.ask(user, "!echo after") == "e after"
    assert bot.replies(user, mark)[-1] == "e after"
    assert {parse(ln).command for ln in bot_lines(user, mark, nick)} == {"PRIVMSG"}

    names_mark = guard.mark()
    guard.send(f"NAMES {evil}")
    guard.wait_for(lambda ln: parse(ln).command == "366", since=names_mark)
    names = " ".join(
        parse(ln).params[-1] for ln in guard.lines_since(names_mark) if parse(ln).command == "353"
    )
    assert irc_lower(nick) not in irc_lower(names).replace("@", "").split(), names
    assert bot_lines(guard, 0, nick) == []
    assert irc_lower(evil) not in bot.app.connection.joined
    assert irc_lower(bot.channel) in bot.app.connection.joined
    assert bot.app.nick == nick

    mark = user.mark()
    assert bot.ask(user, "!nul") == "a"
    assert bot.wait_reply(user, mark, "^b$") == "b"
    assert not any("\0" in ln for ln in user.lines_since(mark))


def test_long_reply_is_split_into_lines_that_fit(running_bot, irc_client) -> None:
    bot = running_bot({"echo.py": echo_variant("e"), "unsafe.py": UNSAFE})
    user = irc_client("user")
    user.join(bot.channel)
    text = long_text()
    assert len(text) >= 2000

    mark = user.mark()
    user.privmsg(bot.channel, "!long")
    pieces: list[str] = []
    while " ".join(pieces) != text:
        assert len(" ".join(pieces)) < len(text), pieces
        pieces.append(bot.wait_reply(user, None if pieces else mark))
    raw = [ln for ln in user.lines_since(mark) if bot.is_reply(ln)]
    assert len(raw) == len(pieces) >= 5
    sizes = [len(ln.encode()) + 2 for ln in raw]  # + the CRLF the client stripped
    assert max(sizes) <= 512, sizes
