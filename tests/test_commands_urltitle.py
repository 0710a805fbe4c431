"""commands/urltitle.py: the titles of links said in a channel, from a loopback web server."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from webserver import WebServer

    from bot.testing import CommandBot, LoadCommand

URLTITLE = Path(__file__).resolve().parents[1] / "commands" / "urltitle.py"
LOOPBACK = {"allow_private": ["127.0.0.1"]}
PAGE = "<!doctype html><html><head><meta charset=utf-8>{head}</head><body>{body}</body></html>"


def page(head: str = "", body: str = "<p>hello</p>") -> str:
    return PAGE.format(head=head, body=body)


def load(
    load_command: LoadCommand, http: dict[str, Any] | None = None, **settings: Any
) -> CommandBot:
    return load_command(URLTITLE, settings=settings or None, http={**LOOPBACK, **(http or {})})


def test_a_title(load_command: LoadCommand, web_server: WebServer) -> None:
    url = web_server.route("/a", page("<title>Example Domain</title>"))
    bot = load(load_command)
    assert bot.say(f"look at {url} please") == ["[ Example Domain ] - 127.0.0.1"]
    assert web_server.paths == ["/a"]


def test_og_title_when_there_is_no_title(load_command: LoadCommand, web_server: WebServer) -> None:
    head = '<meta property="og:title" content="Fish &amp; chips"><title>   </title>'
    url = web_server.route("/og", page(head))
    bot = load(load_command)
    assert bot.say(url) == ["[ Fish & chips ] - 127.0.0.1"]


def test_the_title_wins_over_og_title(load_command: LoadCommand, web_server: WebServer) -> None:
    head = '<meta property="og:title" content="og"><title>the title</title>'
    url = web_server.route("/both", page(head))
    assert load(load_command).say(url) == ["[ the title ] - 127.0.0.1"]


def test_entities_whitespace_and_control_characters(
    load_command: LoadCommand, web_server: WebServer
) -> None:
    title = "<title>\n   Caf&eacute; &amp; bar\t&mdash;\x03 4&#x263A;\r\n  \u202eevil </title>"
    url = web_server.route("/e", page(title))
    assert load(load_command).say(url) == ["[ Café & bar — 4☺ evil ] - 127.0.0.1"]


def test_an_svg_title_is_not_the_page_title(
    load_command: LoadCommand, web_server: WebServer
) -> None:
    body = "<svg><title>an icon</title></svg><title>late but real</title>"
    url = web_server.route("/svg", "<html><body>" + body + "</body></html>")
    assert load(load_command).say(url) == ["[ late but real ] - 127.0.0.1"]


def test_the_length_is_capped(load_command: LoadCommand, web_server: WebServer) -> None:
    url = web_server.route("/long", page(f"<title>{'word ' * 100}</title>"))
    bot = load(load_command, max_length=30)
    (line,) = bot.say(url)
    assert line == f"[ {('word ' * 6)[:29]}… ] - 127.0.0.1"


def test_a_page_cut_inside_its_title(load_command: LoadCommand, web_server: WebServer) -> None:
    url = web_server.route("/cut", "<html><head><title>" + "x" * 5000 + "</title>")
    bot = load(load_command, max_bytes=1024, max_length=50)
    assert bot.say(url) == [f"[ {'x' * 49}… ] - 127.0.0.1"]


def test_a_redirect_names_the_final_host(load_command: LoadCommand, web_server: WebServer) -> None:
    web_server.route("/target", page("<title>moved</title>"))
    url = web_server.redirect("/short", "/target")
    assert load(load_command).say(url) == ["[ moved ] - 127.0.0.1"]
    assert web_server.paths == ["/short", "/target"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("<title>not a page</title>", "application/pdf", 200),  # not HTML
        ("<title>not a page</title>", "text/plain", 200),
        (page("<title>Not Found</title>"), "text/html", 404),  # an error page
        (page("<title>oops</title>"), "text/html", 500),
        (page(), "text/html", 200),  # no title
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png", 200),
    ],
)
def test_silent_when_there_is_no_title(
    load_command: LoadCommand,
    web_server: WebServer,
    caplog: pytest.LogCaptureFixture,
    body: str | bytes,
    content_type: str,
    status: int,
) -> None:
    url = web_server.route("/x", body, status=status, content_type=content_type)
    bot = load(load_command)
    with caplog.at_level(logging.DEBUG):
        assert bot.say(url) == []
    assert web_server.paths == ["/x"]
    assert any("no title for" in r.getMessage() for r in caplog.records)


def test_a_private_address_is_refused_silently(
    load_command: LoadCommand, web_server: WebServer, caplog: pytest.LogCaptureFixture
) -> None:
    web_server.route("/a", page("<title>secret</title>"))
    bot = load(load_command)  # only 127.0.0.1 is allowed
    with caplog.at_level(logging.DEBUG):
        assert bot.say(f"http://127.0.0.2:{web_server.port}/a") == []
    assert web_server.paths == []
    assert any("(refused)" in r.getMessage() for r in caplog.records)


def test_at_most_max_links_per_line(load_command: LoadCommand, web_server: WebServer) -> None:
    urls = [web_server.route(f"/{n}", page(f"<title>page {n}</title>")) for n in range(5)]
    bot = load(load_command)
    assert bot.say(" ".join(urls)) == [f"[ page {n} ] - 127.0.0.1" for n in range(3)]
    assert web_server.paths == ["/0", "/1", "/2"]
    bot = load(load_command, max_links=1)
    assert bot.say(f"{urls[3]} and {urls[4]}") == ["[ page 3 ] - 127.0.0.1"]


def test_the_same_link_twice_in_a_line_is_fetched_once(
    load_command: LoadCommand, web_server: WebServer
) -> None:
    url = web_server.route("/a", page("<title>once</title>"))
    assert load(load_command).say(f"{url} {url}#part ({url})") == ["[ once ] - 127.0.0.1"]
    assert web_server.paths == ["/a"]


def test_not_twice_within_the_window_per_channel(
    load_command: LoadCommand, web_server: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = web_server.route("/a", page("<title>again</title>"))
    other = web_server.route("/b", page("<title>other</title>"))
    bot = load(load_command, {"cache": {"ttl": 0}}, repeat_window=600)  # every fetch a request
    clock = [1000.0]
    monkeypatch.setattr(bot.module, "now", lambda: clock[0])
    assert bot.say(url) == ["[ again ] - 127.0.0.1"]
    clock[0] += 599
    assert bot.say(f"{url} {other}", nick="bob") == ["[ other ] - 127.0.0.1"]  # a repeat
    assert bot.say(url, channel="#elsewhere") == ["[ again ] - 127.0.0.1"]  # another channel
    clock[0] += 1
    assert bot.say(url) == ["[ again ] - 127.0.0.1"]  # the window is over
    assert web_server.paths == ["/a", "/b", "/a", "/a"]


def test_a_link_that_got_no_title_is_tried_again(
    load_command: LoadCommand, web_server: WebServer
) -> None:
    url = web_server.route("/late", "", status=503)
    bot = load(load_command, {"cache": {"ttl": 0}})
    assert bot.say(url) == []
    web_server.route("/late", page("<title>back up</title>"))
    assert bot.say(url) == ["[ back up ] - 127.0.0.1"]
    assert bot.say(url) == []  # now it was said
    assert web_server.paths == ["/late", "/late"]


def test_the_memory_of_links_is_bounded(load_command: LoadCommand, web_server: WebServer) -> None:
    bot = load(load_command)
    recent = bot.module.Recent()
    for n in range(bot.module.REMEMBERED + 500):
        assert recent.first_time("#c", f"https://example.com/{n}", 3600)
    assert len(recent._seen) == bot.module.REMEMBERED
    assert recent.first_time("#c", "https://example.com/0", 3600)  # forgotten first
    assert not recent.first_time("#c", "https://example.com/2499", 3600)


def test_ignored_domains(load_command: LoadCommand, web_server: WebServer) -> None:
    url = web_server.route("/a", page("<title>ignored</title>"))
    bot = load(load_command, ignore_domains=["127.0.0.1"])
    assert bot.say(url) == []
    assert web_server.paths == []
    ignored = bot.module.ignored
    assert ignored("example.com", ("Example.COM",))
    assert ignored("www.example.com", ("example.com",))
    assert ignored("a.b.example.com", ("*.example.com",))
    assert not ignored("notexample.com", ("example.com",))
    assert not ignored("example.com.evil", ("example.com",))


def test_a_redirect_to_an_ignored_domain(load_command: LoadCommand, web_server: WebServer) -> None:
    web_server.route("/target", page("<title>ignored</title>"))
    web_server.redirect("/go", web_server.url + "/target")  # to 127.0.0.1
    bot = load(load_command, {"allow_private": ["127.0.0.1", "::1"]}, ignore_domains=["127.0.0.1"])
    assert bot.say(f"http://localhost:{web_server.port}/go") == []
    assert web_server.paths == ["/go", "/target"]


def test_off_everywhere_and_in_one_channel(
    load_command: LoadCommand, web_server: WebServer
) -> None:
    url = web_server.route("/a", page("<title>hi</title>"))
    assert load(load_command, enabled=False).say(url) == []
    assert web_server.paths == []
    quiet = {"name": "#quiet", "modules": {"urltitle": {"enabled": False}}}
    bot = load_command(URLTITLE, http=LOOPBACK, channels=[quiet])
    assert bot.say(url, channel="#Quiet") == []
    assert web_server.paths == []
    assert bot.say(url) == ["[ hi ] - 127.0.0.1"]


def test_a_link_in_an_action_gets_its_title(
    load_command: LoadCommand, web_server: WebServer
) -> None:
    url = web_server.route("/a", page("<title>acted</title>"))
    bot = load(load_command)
    assert bot.event("action", text=f"recommends {url}") == ["[ acted ] - 127.0.0.1"]
    assert bot.event("action", text=f"whispers {url}x", channel=None) == []  # in private
    assert bot.event("action", text="waves") == []
    assert web_server.paths == ["/a"]


def test_private_messages_are_ignored(load_command: LoadCommand, web_server: WebServer) -> None:
    url = web_server.route("/a", page("<title>hi</title>"))
    assert load(load_command).say(url, channel=None) == []
    assert web_server.paths == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see https://example.com/a.", ["https://example.com/a"]),
        ("(see https://example.com/a_(b)) ok", ["https://example.com/a_(b)"]),
        (
            "<https://example.com/a>, HTTP://Example.com/B!",
            ["https://example.com/a", "HTTP://Example.com/B"],
        ),
        ("https://example.com/a#x https://example.com/a", ["https://example.com/a"]),
        ("ftp://example.com/a http:// https://:80/ nothing", []),
        ('"https://example.com/q?a=1&b=2"', ["https://example.com/q?a=1&b=2"]),
    ],
)
def test_links(load_command: LoadCommand, text: str, expected: list[str]) -> None:
    assert load(load_command).module.links(text) == expected


@pytest.mark.parametrize(
    "wrong",
    [{"max_links": 0}, {"max_links": 11}, {"repeat_window": -1}, {"max_length": 5}, {"timeout": 0}],
)
def test_settings_are_checked(load_command: LoadCommand, wrong: dict[str, Any]) -> None:
    from bot.testing import ModuleLoadError

    with pytest.raises(ModuleLoadError):
        load(load_command, **wrong)


def test_at_most_two_pages_are_fetched_at_once(
    load_command: LoadCommand, web_server: WebServer
) -> None:
    holds = [web_server.hold(f"/{name}", page("<title>slow</title>")) for name in "abc"]
    bot = load(load_command)
    bot.say(f"{web_server.url}/a", wait=False)
    bot.say(f"{web_server.url}/b", nick="bob", wait=False)
    deadline = time.monotonic() + 5
    while len(web_server.paths) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(web_server.paths) == ["/a", "/b"]
    # A third link while both are held: skipped, not queued behind them.
    assert bot.say(f"{web_server.url}/c", nick="carol") == []
    for release in holds:
        release.set()
    assert sorted(bot.wait()) == ["[ slow ] - 127.0.0.1", "[ slow ] - 127.0.0.1"]
    assert sorted(web_server.paths) == ["/a", "/b"]
