"""A small JSON API on 127.0.0.1 in a background thread: the demo's rates API and the
benchmark's price APIs, read by the engine through its HTTP adapters like real ones."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (status, JSON body) for a GET path without its query; None is a 404.
Answer = Callable[[str], tuple[int, bytes] | None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The engine opens a connection per price at once (40 for 20 assets of 2 APIs); the
    # default backlog of 5 would make the kernel drop SYNs and the client retry a second later.
    request_queue_size = 256


class LocalJsonServer:
    """Serves `answer` on a free port until close(); `url` has no trailing slash."""

    def __init__(self, answer: Answer, name: str) -> None:
        self._answer = answer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                result = answer(self.path.split("?")[0])
                if result is None:
                    self.send_error(404)
                    return
                status, body = result
                if status != 200:
                    self.send_error(status)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the demo prints its own story; request lines would drown it

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name=name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
