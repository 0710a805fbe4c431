"""ctx.fetch (bot/web.py) against a real HTTP server on loopback.

Nothing here sends traffic beyond 127.0.0.1: refused addresses are checked with
a connector that records (and fails) instead of connecting, so a test proves the
refusal happened before any connection, not after one.
"""

from __future__ import annotations

import gzip
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from helpers import self_signed_certificate
from hypothesis import given, settings
from hypothesis import strategies as st
from webserver import WebServer

from bot.api import FetchError
from bot.charsets import detect_encoding
from bot.config_sections import http_config
from bot.netguard import system_connect, system_resolve
from bot.testing import LoadCommand
from bot.web import HttpConfig, Web

LOOPBACK = ("127.0.0.1",)


class Connections:
    """A connector that records every address it is asked to connect to.

    ``real``: connect for real (to the loopback test server); otherwise refuse,
    so no test can send traffic to an address it names."""

    def __init__(self, real: bool = True) -> None:
        self.real = real
        self.addresses: list[str] = []

    def __call__(self, family: int, sockaddr: tuple[Any, ...], timeout: float | None):
        self.addresses.append(sockaddr[0])
        if not self.real:
            raise ConnectionRefusedError("test connector: not connecting anywhere")
        return system_connect(family, sockaddr, timeout)


def fake_dns(table: dict[str, list[str]]) -> Callable[[str, int], list[tuple[int, tuple]]]:
    """A resolver answering from ``table`` (names not in it: the system's, for literals)."""

    def resolve(host: str, port: int) -> list[tuple[int, tuple]]:
        if host not in table:
            return system_resolve(host, port)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, (a, port)) for a in table[host]]

    return resolve


def web(**options: Any) -> Web:
    options.setdefault("allow_private", LOOPBACK)
    return Web(HttpConfig(**options))


# -- what comes back -------------------------------------------------------------------


def test_a_page_comes_back_with_status_headers_and_text(web_server: WebServer) -> None:
    url = web_server.route("/a", "<title>Ünïcode</title>")
    response = web().fetch(url, params={"q": "a b&c"})
    assert (response.status, response.ok, response.content_type) == (200, True, "text/html")
    assert response.text == "<title>Ünïcode</title>"
    assert response.url == url + "?q=a+b%26c"
    assert web_server.paths == ["/a?q=a+b%26c"]
    sent = web_server.requests[0].headers
    assert sent["user-agent"].startswith("reloadbot/")
    assert "gzip" in sent["accept-encoding"]


def test_an_error_status_is_a_response_not_an_exception(web_server: WebServer) -> None:
    response = web().fetch(web_server.url + "/missing")
    assert (response.status, response.ok) == (404, False)


def test_json_and_a_body_that_is_not(web_server: WebServer) -> None:
    good = web_server.route("/j", '{"a": [1, 2]}', content_type="application/json")
    bad = web_server.route("/n", "<html>", content_type="application/json")
    client = web()
    assert client.fetch(good).json() == {"a": [1, 2]}
    with pytest.raises(FetchError, match="not JSON") as caught:
        client.fetch(bad).json()
    assert caught.value.reason == "invalid"


def test_international_names_and_paths_go_out_encoded(web_server: WebServer) -> None:
    web_server.route("/wiki/K%C3%A4se", "ok")
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[tuple[int, tuple]]:
        asked.append(host)
        return [(socket.AF_INET, ("127.0.0.1", port))]

    client = Web(HttpConfig(allow_private=LOOPBACK), resolve=resolve)
    assert client.fetch(f"http://BÜCHER.example:{web_server.port}/wiki/Käse").ok
    assert asked == ["xn--bcher-kva.example"]
    assert web_server.requests[0].headers["host"] == f"xn--bcher-kva.example:{web_server.port}"
    assert web_server.paths == ["/wiki/K%C3%A4se"]
    with pytest.raises(FetchError) as caught:
        client.fetch("http://" + "a" * 70 + ".example/")  # a label longer than DNS allows
    assert caught.value.reason == "invalid"


def test_not_a_web_address_is_refused_without_resolving() -> None:
    connections = Connections(real=False)
    client = Web(HttpConfig(), connect=connections)
    odd = ("http://[::1", "http://[zz]/", "http://ho st/", "http://\x00/", "http://%zz/", "")
    for url in ("ftp://example.com/x", "file:///etc/passwd", "http:///nohost", "gopher://x", *odd):
        with pytest.raises(FetchError) as caught:
            client.fetch(url)
        assert caught.value.reason == "invalid", url
    assert connections.addresses == []


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(lambda s, rest: s + rest, st.sampled_from(["http://", "https://"]), st.text()),
    )
)
def test_any_text_as_a_url_gives_a_response_or_a_fetch_error(url: str) -> None:
    """No hostile link makes fetch raise anything a module would not expect."""
    connections = Connections(real=False)
    resolve = fake_dns({})  # literals as the system reads them; names:
    client = Web(
        HttpConfig(per_host_per_minute=100_000),
        resolve=lambda host, port: resolve(host, port) if host[:1].isdigit() else [],
        connect=connections,
    )
    with pytest.raises(FetchError):
        client.fetch(url)
    assert all(not ipaddress.ip_address(a).is_private for a in connections.addresses)


# -- addresses -------------------------------------------------------------------------

ODD_SPELLINGS = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://0/",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:169.254.169.254]/",
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo: client 127.0.0.1
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://[2001:db8::1]/",  # documentation
]


@pytest.mark.parametrize("url", ODD_SPELLINGS)
def test_private_addresses_in_any_spelling_are_refused_before_connecting(url: str) -> None:
    connections = Connections(real=False)
    client = Web(HttpConfig(), connect=connections)
    with pytest.raises(FetchError, match="refused") as caught:
        client.fetch(url)
    assert caught.value.reason == "refused"
    assert connections.addresses == []


def test_a_name_that_resolves_to_a_private_address_is_refused() -> None:
    connections = Connections(real=False)
    resolve = fake_dns({"rebind.example": ["127.0.0.1"], "meta.example": ["169.254.169.254"]})
    client = Web(HttpConfig(), resolve=resolve, connect=connections)
    for url in ("http://rebind.example/", "https://meta.example/"):
        with pytest.raises(FetchError, match="refused"):
            client.fetch(url)
    assert connections.addresses == []


def test_a_host_that_does_not_resolve_or_refuses_is_said_so(web_server: WebServer) -> None:
    def no_such_host(host: str, port: int) -> list[tuple[int, tuple]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(FetchError, match=r"^nowhere.example: no such host$") as caught:
        Web(HttpConfig(), resolve=no_such_host).fetch("http://nowhere.example/")
    assert caught.value.reason == "network"
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
    port = closed.getsockname()[1]
    try:
        with pytest.raises(FetchError, match=r"^127.0.0.1: cannot connect") as caught:
            web().fetch(f"http://127.0.0.1:{port}/")
    finally:
        closed.close()
    assert caught.value.reason == "network"


def test_only_the_public_addresses_of_a_name_are_connected_to() -> None:
    connections = Connections(real=False)
    resolve = fake_dns({"mixed.example": ["10.0.0.7", "::1", "93.184.216.34", "2606:2800::1"]})
    client = Web(HttpConfig(), resolve=resolve, connect=connections)
    with pytest.raises(FetchError) as caught:
        client.fetch("http://mixed.example/")
    assert caught.value.reason == "network"  # the test connector refuses the public ones
    assert connections.addresses == ["93.184.216.34", "2606:2800::1"]


def test_a_redirect_to_a_private_address_is_refused_before_connecting(
    web_server: WebServer,
) -> None:
    web_server.redirect("/go", f"http://127.0.0.2:{web_server.port}/inside")
    web_server.redirect("/meta", "http://169.254.169.254/latest/meta-data/")
    web_server.redirect("/named", f"http://rebind.example:{web_server.port}/inside")
    connections = Connections()
    resolve = fake_dns({"rebind.example": ["127.0.0.2"]})
    client = Web(HttpConfig(allow_private=LOOPBACK), resolve=resolve, connect=connections)
    for path in ("/go", "/meta", "/named"):
        with pytest.raises(FetchError, match="refused") as caught:
            client.fetch(web_server.url + path)
        assert caught.value.reason == "refused"
    assert set(connections.addresses) == {"127.0.0.1"}  # the server, never a target
    assert web_server.paths == ["/go", "/meta", "/named"]


def test_allow_private_takes_addresses_and_networks(web_server: WebServer) -> None:
    web_server.route("/a", "ok")
    resolve = fake_dns({"intranet.test": ["127.0.0.1"]})
    url = f"http://intranet.test:{web_server.port}/a"
    assert Web(HttpConfig(allow_private=("127.0.0.0/8",)), resolve=resolve).fetch(url).ok
    assert Web(HttpConfig(allow_private=("127.0.0.1",)), resolve=resolve).fetch(url).ok
    for other in ((), ("10.0.0.0/8",), ("127.0.0.2",), ("::1",)):
        with pytest.raises(FetchError, match="refused"):
            Web(HttpConfig(allow_private=other), resolve=resolve).fetch(url)


def test_allow_private_entries_are_checked_in_config() -> None:
    assert http_config({"allow_private": ["10.1.2.3", "fd00::/8"]}).allow_private == (
        "10.1.2.3/32",
        "fd00::/8",
    )
    with pytest.raises(ValueError, match=r"allow_private\[1\].*IP address or network"):
        http_config({"allow_private": ["10.0.0.1", "intranet"]})
    with pytest.raises(ValueError, match="unknown key"):
        http_config({"timout": 3})


# -- TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh self-signed certificate (and its key) for 127.0.0.1."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_server(certificate: tuple[Path, Path]) -> Iterator[WebServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = WebServer(tls=context)
    yield server
    server.close()


def test_https_checks_the_certificate_against_the_links_host(
    https_server: WebServer, certificate: tuple[Path, Path]
) -> None:
    url = https_server.route("/a", "secret")
    with pytest.raises(FetchError, match="TLS failed") as caught:
        web().fetch(url)  # self-signed: not trusted
    assert caught.value.reason == "network"
    trusting = Web(HttpConfig(allow_private=LOOPBACK), ca_certs=str(certificate[0]))
    assert trusting.fetch(url).text == "secret"
    # The address is chosen by the bot, the name is still what TLS checks:
    resolve = fake_dns({"elsewhere.test": ["127.0.0.1"]})
    other = Web(HttpConfig(allow_private=LOOPBACK), resolve=resolve, ca_certs=str(certificate[0]))
    with pytest.raises(FetchError, match="TLS failed"):
        other.fetch(f"https://elsewhere.test:{https_server.port}/a")
    assert https_server.paths == ["/a"]


# -- limits ----------------------------------------------------------------------------


def test_a_10_mb_page_is_cut_at_the_cap(web_server: WebServer) -> None:
    page = b"<title>big</title>" + b"x" * (10 * 1024 * 1024)
    url = web_server.route("/big", page)
    started = time.monotonic()
    response = web().fetch(url)
    assert response.truncated
    assert len(response.content) == 1_000_000
    assert response.content.startswith(b"<title>big</title>")
    small = web().fetch(url, max_bytes=4096)
    assert (len(small.content), small.truncated) == (4096, True)
    assert time.monotonic() - started < 5


def _bomb(megabytes: int, layers: int = 1) -> bytes:
    """``megabytes`` of zeros, gzipped ``layers`` times (about a thousandth the size)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    body = b"".join([packer.compress(zeros) for _ in range(megabytes)] + [packer.flush()])
    for _ in range(layers - 1):
        body = gzip.compress(body, 9)
    return body


@pytest.mark.parametrize("layers", [1, 2])
def test_a_gzip_bomb_is_decompressed_only_up_to_the_cap(web_server: WebServer, layers: int) -> None:
    bomb = _bomb(200, layers)
    assert len(bomb) < 400_000  # 200 MB inflated
    encoding = ", ".join(["gzip"] * layers)
    url = web_server.route("/bomb", bomb, headers={"Content-Encoding": encoding})
    client = web()
    tracemalloc.start()
    try:
        response = client.fetch(url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (len(response.content), response.truncated) == (1_000_000, True)
    assert peak < 20 * 1024 * 1024, f"{peak / 1e6:.0f} MB held while inflating"


def trickle(handler: BaseHTTPRequestHandler, headers_too: bool = False) -> None:
    """A response that dribbles out one byte a second."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100\r\n\r\n"
    try:
        if headers_too:
            for byte in head:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(1)
        else:
            handler.wfile.write(head)
        for _ in range(100):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(1)  # the server misbehaving on purpose, not the test waiting
    except OSError:
        return


@pytest.mark.parametrize("headers_too", [False, True])
def test_a_trickling_server_is_cut_off_at_the_total_timeout(
    web_server: WebServer, headers_too: bool
) -> None:
    url = web_server.route("/slow", lambda h: trickle(h, headers_too))
    started = time.monotonic()
    with pytest.raises(FetchError, match="did not answer in time") as caught:
        web(timeout=1.5).fetch(url)
    elapsed = time.monotonic() - started
    assert caught.value.reason == "timeout"
    assert 1.4 < elapsed < 3.0, elapsed


def test_the_timeout_of_one_fetch_can_be_shorter(web_server: WebServer) -> None:
    url = web_server.route("/slow", trickle)
    started = time.monotonic()
    with pytest.raises(FetchError, match="in time"):
        web().fetch(url, timeout=0.5)
    assert time.monotonic() - started < 2.5


def test_thirty_redirects_stop_at_the_limit(web_server: WebServer) -> None:
    for i in range(30):
        web_server.redirect(f"/r{i}", f"/r{i + 1}")
    web_server.route("/r30", "<title>end</title>")
    with pytest.raises(FetchError, match="more than 5 redirects") as caught:
        web().fetch(web_server.url + "/r0")
    assert caught.value.reason == "redirects"
    assert web_server.paths == [f"/r{i}" for i in range(6)]
    response = web(max_redirects=30, per_host_per_minute=100).fetch(web_server.url + "/r0")
    assert (response.text, response.url) == ("<title>end</title>", web_server.url + "/r30")


def test_a_redirect_out_of_the_web_is_refused(web_server: WebServer) -> None:
    web_server.redirect("/file", "file:///etc/passwd")
    web_server.redirect("/gopher", "gopher://127.0.0.1:70/")
    for path in ("/file", "/gopher"):
        with pytest.raises(FetchError, match="not a web address") as caught:
            web().fetch(web_server.url + path)
        assert caught.value.reason == "invalid"


def test_credentials_do_not_follow_a_redirect_to_another_host(web_server: WebServer) -> None:
    web_server.redirect("/here", "/there")
    web_server.route("/there", "ok")
    web_server.redirect("/away", f"http://localhost:{web_server.port}/there")
    client = web()
    secret = {"Authorization": "Bearer s3cret", "Cookie": "session=1", "X-Api": "k"}
    assert client.fetch(web_server.url + "/here", headers=secret).ok
    assert client.fetch(web_server.url + "/away", headers=secret).ok
    same, other = web_server.requests[1].headers, web_server.requests[3].headers
    assert same["authorization"] == "Bearer s3cret" and same["cookie"] == "session=1"
    assert "authorization" not in other and "cookie" not in other
    assert other["x-api"] == "k"  # not a credential header: the module chose to send it


def test_per_host_limits_say_busy(web_server: WebServer) -> None:
    web_server.route("/a", "ok")
    client = web(per_host_per_minute=3, cache_ttl=0)
    for _ in range(3):
        assert client.fetch(web_server.url + "/a").ok
    with pytest.raises(FetchError, match="too many requests") as caught:
        client.fetch(web_server.url + "/a")
    assert caught.value.reason == "busy"
    assert len(web_server.paths) == 3


def test_the_limits_of_idle_hosts_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.web.MAX_HOSTS", 10)
    now = [0.0]
    client = Web(HttpConfig(), connect=Connections(real=False), clock=lambda: now[0])
    for n in range(25):  # a flood of links to ever new hosts
        with pytest.raises(FetchError):
            client.fetch(f"http://93.184.216.{n}/")
        now[0] += 10
    assert len(client._hosts) <= 10


def test_at_most_n_fetches_run_at_once_per_host(web_server: WebServer) -> None:
    release = web_server.hold("/held", "ok")
    client = web(per_host_concurrent=2, cache_ttl=0)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(client.fetch(web_server.url + "/held")))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    # Until two requests are at the server and all three fetches hold or wait for a slot:
    while not (len(web_server.paths) >= 2 and client._hosts["127.0.0.1"].users == 3):
        assert time.monotonic() < deadline, web_server.paths
        time.sleep(0.01)
    assert len(web_server.paths) == 2  # the third waits for a slot
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(results) == 3 and len(web_server.paths) == 3


def test_responses_are_cached_for_their_ttl(web_server: WebServer) -> None:
    url = web_server.route("/a", "ok")
    now = [100.0]
    client = Web(HttpConfig(allow_private=LOOPBACK, cache_ttl=60), clock=lambda: now[0])
    first = client.fetch(url)
    assert client.fetch(url) is first
    with pytest.raises(TypeError):  # shared between callers, so it cannot be changed
        first.headers["content-type"] = "text/evil"  # type: ignore[index]
    now[0] += 61
    assert client.fetch(url) is not first
    assert len(web_server.paths) == 2


def test_a_config_change_applies_to_the_next_fetch(web_server: WebServer) -> None:
    url = web_server.route("/a", "ok")
    client = Web(HttpConfig(cache_ttl=0))
    with pytest.raises(FetchError, match="refused"):
        client.fetch(url)
    client.configure(HttpConfig(allow_private=LOOPBACK, cache_ttl=0))
    assert client.fetch(url).ok
    # A kept-alive connection, checked under the old policy, is not reused under the new.
    client.configure(HttpConfig(cache_ttl=0))
    with pytest.raises(FetchError, match="refused"):
        client.fetch(url)
    assert web_server.paths == ["/a"]


def test_fetch_refuses_to_run_on_the_connection_thread(web_server: WebServer) -> None:
    client = web()
    client.forbidden_thread = threading.current_thread()
    with pytest.raises(RuntimeError, match="block the connection"):
        client.fetch(web_server.url + "/a")
    assert web_server.paths == []


# -- charsets --------------------------------------------------------------------------

CAFE = "Café “quoted” — ok"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/html; charset=utf-8", CAFE.encode("utf-8"), "utf-8"),
        ("text/html; charset=windows-1252", CAFE.encode("cp1252"), "cp1252"),
        # wrong: declared UTF-8, sent windows-1252
        ("text/html; charset=utf-8", CAFE.encode("cp1252"), "cp1252"),
        # wrong: declared latin-1 (a common server default), sent UTF-8
        ("text/html; charset=ISO-8859-1", CAFE.encode("utf-8"), "utf-8"),
        # missing: the page's <meta> says it
        ("text/html", b'<meta charset="koi8-r">' + "Привет".encode("koi8_r"), "koi8-r"),
        (
            "text/html",
            b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
            + "こんにちは".encode("shift_jis"),
            "shift_jis",
        ),
        # missing everywhere: UTF-8 if it is valid UTF-8, else a guess
        ("text/html", CAFE.encode("utf-8"), "utf-8"),
        ("text/plain", ("Ceci est un café très " * 20).encode("cp1252"), "cp1252"),
        # a charset that does not exist
        ("text/html; charset=no-such-thing", CAFE.encode("utf-8"), "utf-8"),
        ("text/html", b"\xff\xfe" + "hi".encode("utf-16-le"), "utf-16"),
    ],
)
def test_the_charset_is_found(content_type: str, body: bytes, expected: str) -> None:
    found = detect_encoding(content_type, body)
    if "charset=utf-8" in content_type and expected == "cp1252":  # guessed: any that reads it
        assert body.decode(found) == CAFE
    else:
        assert found == expected


def test_a_multibyte_character_cut_by_the_cap_does_not_change_the_charset(
    web_server: WebServer,
) -> None:
    url = web_server.route("/u", ("é" * 3000).encode(), content_type="text/html")
    response = web().fetch(url, max_bytes=4097)  # cuts the last é in half
    assert response.truncated and response.encoding == "utf-8"
    assert response.text.startswith("é" * 2048)


def test_text_decodes_with_the_detected_charset(web_server: WebServer) -> None:
    url = web_server.route("/w", CAFE.encode("cp1252"), content_type="text/html; charset=utf-8")
    assert web().fetch(url).text == CAFE


# -- from a module -----------------------------------------------------------------------

FETCHER = '''
from bot.api import Context, FetchError, command

@command
def get(ctx: Context, args: str) -> str:
    """get URL -- what the page says"""
    response = ctx.fetch(args.strip())
    return f"{response.status} {response.text}"

def setup(bot) -> None:
    bot.state["setup"] = bot.fetch(bot.settings.url).text if bot.settings.url else ""

from dataclasses import dataclass

@dataclass(frozen=True)
class Settings:
    url: str = ""
'''


@pytest.mark.parametrize("isolated", [False, True])
def test_a_module_fetches_and_a_refusal_reaches_the_user(
    load_command: LoadCommand, tmp_path: Path, web_server: WebServer, isolated: bool
) -> None:
    path = tmp_path / "fetcher.py"
    path.write_text(FETCHER)
    url = web_server.route("/a", "hello")
    bot = load_command(
        path, isolated=isolated, settings={"url": url}, http={"allow_private": ["127.0.0.1"]}
    )
    assert bot.say(f"!get {url}") == ["200 hello"]
    assert bot.say(f"!get http://127.0.0.2:{web_server.port}/a") == [
        "127.0.0.2: refused, it is a private or local address"
    ]
    assert bot.say("!get http://[::1]/") == ["::1: refused, it is a private or local address"]
    assert web_server.paths == ["/a"]  # setup's: the command's came from the cache


def test_a_bot_that_never_fetches_never_imports_urllib3(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from helpers import close_app, make_app\n"
        "app = make_app(__import__('pathlib').Path(sys.argv[1]), {})\n"
        "assert app.load_all().ok\n"
        "assert 'urllib3' not in sys.modules, 'imported at start-up'\n"
        "app.fetch  # the method exists; the client is made on the first call\n"
        "close_app(app)\n"
    )
    tests = Path(__file__).resolve().parent
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=tests.parent,
        env={**os.environ, "PYTHONPATH": str(tests)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
