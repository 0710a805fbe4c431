"""A real HTTP server on 127.0.0.1 for the web tests: routes set per test, requests recorded.

The machines have no internet and tests talk only to loopback, so pages, JSON
APIs, redirects, bombs and trickles are served from here, in the shape the real
services send them. Use the ``web_server`` fixture (tests/conftest.py)::

    def test_title(web_server):
        web_server.route("/a", "<title>Hi</title>")
        ... fetch(web_server.url + "/a") ...
        assert web_server.paths == ["/a"]
"""

from __future__ import annotations

import contextlib
import ssl
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

#: A route's body: bytes, text (sent as UTF-8), or a function writing the whole
#: response itself through the handler (for trickles, bombs and broken servers).
Body = bytes | str | Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Route:
    body: Body
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """One request the server got."""

    path: str  # with its query string
    headers: Mapping[str, str]  # lower-case names

    @property
    def query(self) -> str:
        return urlsplit(self.path).query


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up early (a size cap, a timeout) is what tests do on purpose."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class WebServer:
    """Serves the routes a test sets; 404 for the rest. ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: serve HTTPS with this server-side context (``url`` is then https)."""
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._holds: list[threading.Event] = []
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # shutdown() waits for a poll, after every test
            daemon=True,
        )
        self._thread.start()

    def route(
        self,
        path: str,
        body: Body = b"",
        *,
        status: int = 200,
        content_type: str | None = "text/html; charset=utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Serve ``body`` at ``path`` (matched without its query string); returns its URL."""
        sent = dict(headers or {})
        if content_type is not None:
            sent.setdefault("Content-Type", content_type)
        self.routes[path] = Route(body, status, sent)
        return self.url + path

    def hold(
        self,
        path: str,
        body: bytes | str = b"{}",
        *,
        content_type: str = "text/html; charset=utf-8",
        most: float = 10.0,
    ) -> threading.Event:
        """Serve ``body`` at ``path`` only once the returned event is set (or ``most``
        seconds passed, or the server closes): a slow site, for timeouts and limits."""
        release = threading.Event()
        self._holds.append(release)
        data = body.encode() if isinstance(body, str) else body

        def answer(handler: BaseHTTPRequestHandler) -> None:
            release.wait(most)
            with contextlib.suppress(OSError):  # the client gave up waiting
                handler.send_response(200)
                handler.send_header("Content-Type", content_type)
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)

        self.route(path, answer)
        return release

    def redirect(self, path: str, to: str, status: int = 302) -> str:
        """Answer ``path`` with a redirect to ``to`` (absolute, or relative to the server)."""
        return self.route(path, b"", status=status, content_type=None, headers={"Location": to})

    @property
    def paths(self) -> list[str]:
        """The paths requested so far (with query strings), oldest first."""
        with self._lock:
            return [r.path for r in self.requests]

    def close(self) -> None:
        for release in self._holds:  # held answers end, so no handler outlives the test
            release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes

            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append(
                        Request(self.path, {k.lower(): v for k, v in self.headers.items()})
                    )
                route = server.routes.get(urlsplit(self.path).path)
                if route is None:
                    route = Route(b"not found", 404, {"Content-Type": "text/plain"})
                if callable(route.body):
                    route.body(self)
                    return
                body = route.body.encode() if isinstance(route.body, str) else route.body
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client stopped reading (a cap)
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def web_server_fixture() -> Iterator[WebServer]:
    server = WebServer()
    try:
        yield server
    finally:
        server.close()
