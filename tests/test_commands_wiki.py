"""commands/wiki.py: !wiki against a loopback server answering as the MediaWiki REST API does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from webserver import WebServer

    from bot.testing import CommandBot, LoadCommand

WIKI = Path(__file__).resolve().parents[1] / "commands" / "wiki.py"
API = "/api/rest_v1/page/summary/"
JSON = (
    'application/json; charset=utf-8; profile="https://www.mediawiki.org/wiki/Specs/Summary/1.4.0"'
)


def summary(title: str, extract: str, kind: str = "standard") -> str:
    """A page summary in the shape en.wikipedia.org sends (the fields !wiki reads, and more)."""
    slug = title.replace(" ", "_")
    return json.dumps(
        {
            "type": kind,
            "title": title,
            "displaytitle": f'<span class="mw-page-title-main">{title}</span>',
            "pageid": 18091,
            "lang": "en",
            "dir": "ltr",
            "description": "Capital city of Portugal",
            "extract": extract,
            "extract_html": f"<p>{extract}</p>",
            "content_urls": {
                "desktop": {"page": f"https://en.wikipedia.org/wiki/{slug}"},
                "mobile": {"page": f"https://en.m.wikipedia.org/wiki/{slug}"},
            },
        }
    )


NOT_FOUND = json.dumps(
    {
        "type": "https://mediawiki.org/wiki/HyperSwitch/errors/not_found",
        "title": "Not found.",
        "method": "get",
        "detail": "Page or revision not found.",
        "uri": "/en.wikipedia.org/v1/page/summary/Xyzzy_plugh",
    }
)


def load(load_command: LoadCommand, web_server: WebServer, **http: Any) -> CommandBot:
    return load_command(
        WIKI,
        settings={"endpoint": web_server.url + API},
        http={"allow_private": ["127.0.0.1"], **http},
    )


def test_found(load_command: LoadCommand, web_server: WebServer) -> None:
    extract = "Lisbon is the capital and largest city of Portugal."
    web_server.route(API + "Lisbon", summary("Lisbon", extract), content_type=JSON)
    assert load(load_command, web_server).say("!wiki Lisbon") == [
        "Lisbon: Lisbon is the capital and largest city of Portugal. "
        "https://en.wikipedia.org/wiki/Lisbon"
    ]
    assert web_server.paths == [API + "Lisbon"]


def test_a_long_extract_is_clipped_to_one_line(
    load_command: LoadCommand, web_server: WebServer
) -> None:
    extract = "Lisbon is the capital of Portugal.\n" + "It is a very old city. " * 60
    web_server.route(API + "Lisbon", summary("Lisbon", extract), content_type=JSON)
    (line,) = load(load_command, web_server).say("!wiki Lisbon")
    assert line.startswith("Lisbon: Lisbon is the capital of Portugal. It is a very old city.")
    assert line.endswith("… https://en.wikipedia.org/wiki/Lisbon")
    assert len(line.encode()) <= 350


@pytest.mark.parametrize(
    ("term", "path"),
    [
        ("São Paulo", "S%C3%A3o_Paulo"),
        ("  AC/DC  ", "AC%2FDC"),
        ("100% Pure?", "100%25_Pure%3F"),
        ("C++ (programming language)", "C%2B%2B_%28programming_language%29"),
        ("東京", "%E6%9D%B1%E4%BA%AC"),
    ],
)
def test_the_term_is_encoded(
    load_command: LoadCommand, web_server: WebServer, term: str, path: str
) -> None:
    web_server.route(API + "anything", "")  # unrouted paths answer 404: fine here
    bot = load(load_command, web_server)
    bot.say(f"!wiki {term}")
    assert web_server.paths == [API + path]


def test_not_found(load_command: LoadCommand, web_server: WebServer) -> None:
    web_server.route(API + "Xyzzy_plugh", NOT_FOUND, status=404, content_type="application/json")
    assert load(load_command, web_server).say("!wiki Xyzzy plugh") == [
        "wiki: no article named Xyzzy plugh"
    ]


def test_disambiguation(load_command: LoadCommand, web_server: WebServer) -> None:
    extract = "Mercury commonly refers to:"
    body = summary("Mercury", extract, kind="disambiguation")
    web_server.route(API + "Mercury", body, content_type=JSON)
    assert load(load_command, web_server).say("!wiki Mercury") == [
        "wiki: Mercury may mean several things, see https://en.wikipedia.org/wiki/Mercury"
    ]


@pytest.mark.parametrize("status", [500, 503])
def test_a_service_error(load_command: LoadCommand, web_server: WebServer, status: int) -> None:
    web_server.route(API + "Lisbon", "upstream gone", status=status, content_type="text/plain")
    assert load(load_command, web_server).say("!wiki Lisbon") == [
        f"wiki: the service answered {status}"
    ]


def test_not_json(load_command: LoadCommand, web_server: WebServer) -> None:
    web_server.route(API + "Lisbon", "<html>a captive portal</html>")
    (line,) = load(load_command, web_server).say("!wiki Lisbon")
    assert line.startswith("wiki: 127.0.0.1") and "not JSON" in line


def test_a_timeout(load_command: LoadCommand, web_server: WebServer) -> None:
    web_server.hold(API + "Lisbon")
    (line,) = load(load_command, web_server, timeout=1).say("!wiki Lisbon")
    assert line.startswith("wiki: 127.0.0.1")
    assert "time" in line


def test_usage_and_limits(load_command: LoadCommand, web_server: WebServer) -> None:
    bot = load(load_command, web_server)
    assert bot.say("!wiki") == ["usage: wiki TERM, e.g. !wiki Lisbon"]
    assert bot.say("!wiki   ") == ["usage: wiki TERM, e.g. !wiki Lisbon"]
    assert bot.say("!wiki " + "é" * 200) == ["wiki: that is too long for an article's title"]
    assert web_server.paths == []


def test_the_endpoint_must_be_a_url(load_command: LoadCommand) -> None:
    from bot.testing import ModuleLoadError

    with pytest.raises(ModuleLoadError, match="endpoint"):
        load_command(WIKI, settings={"endpoint": "en.wikipedia.org"})
