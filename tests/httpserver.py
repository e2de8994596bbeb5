"""A real HTTP server on 127.0.0.1 for tests: canned routes, hanging and cut-off answers, a request log.

    def test_something(http_server):
        http_server.route("GET", "/v2/prices/BTC-USD/spot", json={"data": {"amount": "1"}})
        slow = http_server.route("GET", "/slow", hang=True)     # answers only once released
        http_server.route("GET", "/cut", body='{"a": 1}', truncate_at=3)  # Content-Length 8, 3 bytes sent
        ... http_server.url ... http_server.requests[0].query ...
        slow.release()                                          # or leave it: closing releases it

Hanging handlers block on a threading.Event (never a timed sleep); closing the server sets every
route's event first, so shutdown is clean even while a client has given up on a hanging request.
Unknown paths answer 404 with a JSON body. Connections are HTTP/1.0 (closed after each answer),
so no handler thread lingers on a kept-alive socket.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    target: str  # path and query exactly as sent, e.g. "/0/public/Ticker?pair=XBTUSD"
    headers: dict[str, str]
    body: bytes

    def param(self, name: str) -> str | None:
        """The single value of a query parameter (None when absent)."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Route:
    """A canned answer for one method and path (the query string is not matched)."""

    method: str
    path: str
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: threading.Event | None = None
    truncate_at: int | None = None
    on_request: Callable[[RecordedRequest], None] | None = None
    hits: int = 0

    def release(self) -> None:
        """Let a hanging route answer (every request already waiting, and all later ones)."""
        if self.hang is not None:
            self.hang.set()


class _Server(ThreadingHTTPServer):
    # Handler threads are joined on close (after hanging routes are released), so a test never
    # leaves a thread writing into the next test's output.
    daemon_threads = False
    block_on_close = True

    def __init__(self, owner: LocalHTTPServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout) makes the late write fail; that is expected, not noise.
        import sys

        self.owner.errors.append(sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # Bounds a read from a client that connected but never sent a request (closing joins threads).
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            target=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        route = owner._record(request)
        if route is None:
            self._send(404, {"Content-Type": "application/json"}, b'{"error": "no route"}', None)
            return
        if route.on_request is not None:
            route.on_request(request)
        if route.hang is not None:
            route.hang.wait()
            if owner.closing.is_set():
                # Released by shutdown: the client is long gone, so close without answering.
                self.close_connection = True
                return
        self._send(route.status, route.headers, route.body, route.truncate_at)

    def _send(self, status: int, headers: dict[str, str], body: bytes, truncate_at: int | None) -> None:
        try:
            self.send_response(status)
            names = {k.lower() for k in headers}
            if "content-length" not in names:
                # The full length even when truncating: the client must see a body cut short.
                self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body if truncate_at is None else body[:truncate_at])
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first
        self.close_connection = True


class LocalHTTPServer:
    """A threaded HTTP server on 127.0.0.1 with a free port; use as a context manager or fixture."""

    def __init__(self) -> None:
        self.closing = threading.Event()
        self.errors: list[BaseException | None] = []
        self._routes: dict[tuple[str, str], Route] = {}
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> LocalHTTPServer:
        """Bind a free port and serve in a background thread."""
        self._server = _Server(self)
        # 0.05 s poll: shutdown() returns within one poll interval.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="LocalHTTPServer",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Release every hanging route, stop serving and join every handler thread."""
        if self._server is None:
            return
        self.closing.set()
        with self._lock:
            routes = list(self._routes.values())
        for route in routes:
            route.release()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- addresses ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port."""
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:41234."""
        return f"http://127.0.0.1:{self.port}"

    # -- routes ------------------------------------------------------------------------

    def route(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        body: str | bytes | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
        hang: bool | threading.Event = False,
        truncate_at: int | None = None,
        on_request: Callable[[RecordedRequest], None] | None = None,
    ) -> Route:
        """Answer `method path` with `status` and `body` (or `json`, serialised; Decimals as numbers).

        hang: True (or an Event) holds the answer until the route is released or the server closes.
        truncate_at: send only that many body bytes while announcing the full Content-Length.
        on_request: called with each request before answering (e.g. to release another route).
        """
        if body is not None and json is not None:
            raise ValueError("give body or json, not both")
        if json is not None:
            data = _dumps(json).encode()
            default_type = "application/json"
        elif isinstance(body, str):
            data = body.encode()
            default_type = "application/json"
        else:
            data = body or b""
            default_type = "application/octet-stream"
        all_headers = {"Content-Type": content_type or default_type, **(headers or {})}
        event = hang if isinstance(hang, threading.Event) else (threading.Event() if hang else None)
        route = Route(
            method=method.upper(),
            path=path,
            status=status,
            body=data,
            headers=all_headers,
            hang=event,
            truncate_at=truncate_at,
            on_request=on_request,
        )
        with self._lock:
            self._routes[(route.method, path)] = route
        if self.closing.is_set():
            route.release()
        return route

    def _record(self, request: RecordedRequest) -> Route | None:
        with self._lock:
            self._requests.append(request)
            route = self._routes.get((request.method, request.path))
            if route is not None:
                route.hits += 1
            return route

    # -- log ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The requests whose path (without query) is `path`."""
        return [r for r in self.requests if r.path == path]


def _dumps(value: Any) -> str:
    """JSON text where Decimals are written as exact numbers (json.dumps cannot)."""
    texts: list[str] = []

    def convert(v: Any) -> Any:
        if isinstance(v, Decimal):
            texts.append(str(v))
            return f"\x00{len(texts) - 1}\x00"  # a placeholder string, swapped for the number below
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [convert(x) for x in v]
        return v

    text = json.dumps(convert(value))
    for i, number in enumerate(texts):
        text = text.replace(f'"\\u0000{i}\\u0000"', number)
    return text


@contextmanager
def refused_url() -> Iterator[str]:
    """A URL on 127.0.0.1 whose port is bound but not listening: every connection is refused.

    Holding the bound socket (rather than picking a port and closing it) means no other process
    can start listening there during the test.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture
def http_server() -> Iterator[LocalHTTPServer]:
    """A started LocalHTTPServer, closed (hanging routes released) after the test."""
    with LocalHTTPServer() as server:
        yield server
