"""A JSON-RPC proxy on 127.0.0.1 that injects network faults in front of a real node (anvil).

    with RpcProxy(anvil.rpc_url) as proxy:
        w3 = Web3(Web3.HTTPProvider(proxy.url, exception_retry_configuration=None))
        proxy.fail_next(2, status=503, methods="eth_blockNumber")  # HTTP 503, not forwarded
        proxy.reset_next(1)                                      # connection reset, no answer
        hold = proxy.hang_next(1, methods="eth_getTransactionReceipt")
        ...                                                      # the client times out
        hold.wait_hung()                                         # a request is blocked on it
        hold.release()                                           # it is forwarded now (or on close)
        hold = proxy.hang_next(1, methods="eth_sendRawTransaction", after_forward=True)
        hold.wait_hung()                                         # the node has it; its answer is held
        proxy.down(); hold.release()                             # the answer is lost (connection reset)
        proxy.delay_next(1, 2.0, methods="eth_call")             # a slow node: forwarded after 2 s
        proxy.down()                                             # port closed: connection refused
        proxy.up()                                               # listening again, same URL
        proxy.drop_method("eth_sendRawTransaction")              # fake hash back, node never sees it
        proxy.undrop("eth_sendRawTransaction")
        assert proxy.count("eth_sendRawTransaction") == 0        # calls that reached the node
        proxy.requests                                           # [(method, outcome), ...]

Each POST body is forwarded verbatim (single calls and batches alike) with httpx and the node's
status and body are returned. Faults armed with fail_next/reset_next/hang_next/delay_next are consumed in the
order they were armed, by the next requests matching their method filter (a batch matches when any
of its calls does). A request that was held and then released goes on to be dropped or forwarded;
one released by close() is answered with nothing.

down() really stops listening: the port stays bound by a socket that does not listen (so nothing
else can take it) and every connection is refused, as by a dead node; up() listens on that same
socket again. Connections are HTTP/1.0 (closed after each answer), so no client keeps a connection
that would survive down(). Hanging handlers wait on threading.Events that close() sets, never on
timed sleeps, and close() joins every handler thread.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple

import httpx
from eth_utils import keccak

Outcome = Literal["forwarded", "failed", "reset", "hung", "delayed", "refused", "dropped", "upstream-error"]
"""What the proxy did with a request:

forwarded       sent to the node, the node's answer returned
failed          answered with an injected HTTP error status (fail_next)
reset           connection reset without an answer (reset_next)
hung            held by hang_next; once released it is forwarded or dropped (see count()); with
                after_forward=True it was forwarded first and its answer was held
delayed         held for delay_next's seconds, then forwarded or dropped (reset if the proxy went
                down or closed meanwhile)
refused         arrived while down() was taking effect; its connection was reset (connections
                attempted while the proxy is down are refused by the OS and never logged)
dropped         swallowed: a fake success was returned and the node never saw the call (or, in a
                batch, at least one of its calls)
upstream-error  the node could not be reached; answered 502
"""

Methods = str | Iterable[str] | None
"""A method filter: one JSON-RPC method name, several, or None for every request."""

SEND_RAW_TRANSACTION = "eth_sendRawTransaction"
UPSTREAM_TIMEOUT_S = 10.0

_DEFAULT = object()  # drop_method's "no result given"
_OUTCOMES: dict[str, Outcome] = {"fail": "failed", "reset": "reset", "hang": "hung", "delay": "delayed"}


class LoggedRequest(NamedTuple):
    """One request as the proxy handled it: its method (a list for a batch) and the outcome."""

    method: str | list[str] | None
    outcome: Outcome


class Hold(threading.Event):
    """The handle hang_next returns: matching requests block until it is set (release()).

    Setting it releases every request already held and lets later matches pass straight through.
    close() sets it too. `hung` counts the requests that have blocked on it so far.
    """

    def __init__(self) -> None:
        super().__init__()
        self._arrivals = threading.Condition()
        self._hung = 0

    def release(self) -> None:
        self.set()

    @property
    def hung(self) -> int:
        with self._arrivals:
            return self._hung

    def wait_hung(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until `count` requests have blocked on this hold; False if that took too long."""
        with self._arrivals:
            return self._arrivals.wait_for(lambda: self._hung >= count, timeout)

    def _arrived(self) -> None:
        with self._arrivals:
            self._hung += 1
            self._arrivals.notify_all()


@dataclass
class _Rule:
    kind: Literal["fail", "reset", "hang", "delay"]
    remaining: int
    methods: frozenset[str] | None
    status: int = 503
    body: bytes = b""
    hold: Hold | None = None
    after_forward: bool = False  # hang: hold the node's answer rather than the request
    seconds: float = 0.0  # delay

    def matches(self, methods: list[str]) -> bool:
        return self.methods is None or any(m in self.methods for m in methods)


class _Server(ThreadingHTTPServer):
    # Handler threads are joined on close, so no thread outlives the proxy.
    daemon_threads = False
    block_on_close = True

    def __init__(self, owner: RpcProxy) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # SO_REUSEPORT lets down() bind the non-listening placeholder before closing this socket,
        # so the port is never free (SO_REUSEADDR, set by HTTPServer, covers TIME_WAIT).
        if hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout) makes the late write fail; recorded, not printed.
        self.owner.errors.append(sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # Bounds a read from a client that connected but never sent a request (closing joins threads).
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send(405, b"JSON-RPC proxy: POST only\n", "text/plain")

    def do_POST(self) -> None:
        owner = self.server.owner
        owner._enter()
        try:
            self._serve(owner)
        finally:
            owner._leave()

    def _serve(self, owner: RpcProxy) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        calls, methods, label = _parse(body)
        action, rule = owner._decide(methods, label)
        if action in ("refused", "reset"):
            self._reset()
            return
        if action == "fail":
            assert rule is not None
            self._send(rule.status, rule.body, "text/plain")
            return
        if action == "delay":
            assert rule is not None
            # The wait is the fault (a slow node), not a synchronisation; close() cuts it short.
            if owner.closing.wait(rule.seconds) or owner.is_down:
                self._reset()
                return
        if action == "hang" and rule is not None and rule.after_forward:
            assert rule.hold is not None
            # The node executes the call now; only its answer waits (a node dying mid-answer).
            status, answer, content_type = owner._answer(body, calls, methods, label, logged=True)
            rule.hold._arrived()
            rule.hold.wait()
            if owner.closing.is_set() or owner.is_down:
                self._reset()  # the node did it, the client never hears
                return
            self._send(status, answer, content_type)
            return
        if action == "hang":
            assert rule is not None and rule.hold is not None
            rule.hold._arrived()
            rule.hold.wait()
            if owner.closing.is_set() or owner.is_down:
                # Released by close() (nobody may wait for an answer), or the "node" went down
                # while this request was in flight: no answer, as from a dead node.
                self._reset()
                return
        logged = action in ("hang", "delay")
        status, answer, content_type = owner._answer(body, calls, methods, label, logged=logged)
        self._send(status, answer, content_type)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first
        self.close_connection = True

    def _reset(self) -> None:
        """Close the connection with a TCP RST and no answer."""
        self.close_connection = True
        # Linger on, timeout 0: close() discards everything and sends RST instead of FIN.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket is only really closed once rfile (a makefile() of it) is closed as well; the
        # server's own shutdown_request then fails quietly on the closed socket.
        self.rfile.close()
        self.connection.close()


class RpcProxy:
    """A fault-injecting JSON-RPC proxy in front of `upstream_url`; serving from construction."""

    def __init__(self, upstream_url: str, *, upstream_timeout: float = UPSTREAM_TIMEOUT_S) -> None:
        self.upstream_url = upstream_url
        self.closing = threading.Event()
        self.errors: list[BaseException | None] = []
        self.dropped: list[dict[str, Any]] = []  # the JSON-RPC calls drop_method swallowed
        self._client = httpx.Client(timeout=upstream_timeout, trust_env=False)
        self._lock = threading.Lock()  # faults, log and counters
        self._state = threading.RLock()  # serving / down / closed transitions
        self._rules: list[_Rule] = []
        self._holds: list[Hold] = []
        self._drops: dict[str, Any] = {}
        self._log: list[LoggedRequest] = []
        self._forwarded: Counter[str] = Counter()
        self._down = False
        self._closed = False
        self._placeholder: socket.socket | None = None
        self._active = 0
        self._idle = threading.Condition(self._lock)
        self._server = _Server(self)
        self._port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None
        self._serve()

    # -- lifecycle ---------------------------------------------------------------------

    def _serve(self) -> None:
        # 0.05 s poll: shutdown() returns within one poll interval.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"RpcProxy:{self._port}",
            daemon=True,
        )
        self._thread.start()

    def _stop_serving(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Release every hold (held requests get no answer), stop serving, join every handler."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            self.closing.set()
            with self._lock:
                holds = list(self._holds)
            for hold in holds:
                hold.set()
            self._stop_serving()
            self._server.server_close()  # closes the listening socket, joins handler threads
            if self._placeholder is not None:
                self._placeholder.close()
                self._placeholder = None
            self._client.close()

    def __enter__(self) -> RpcProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- addresses ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """e.g. http://127.0.0.1:41234 (unchanged by down()/up())."""
        return f"http://127.0.0.1:{self._port}"

    # -- faults ------------------------------------------------------------------------

    def fail_next(
        self, n: int = 1, *, status: int = 503, methods: Methods = None, body: str | None = None
    ) -> None:
        """Answer the next `n` matching requests with HTTP `status` and a short text body, unforwarded."""
        text = body if body is not None else f"{status} injected by RpcProxy\n"
        self._arm(_Rule("fail", n, _filter(methods), status=status, body=text.encode()))

    def reset_next(self, n: int = 1, *, methods: Methods = None) -> None:
        """Reset the connection (TCP RST, no answer) of the next `n` matching requests, unforwarded."""
        self._arm(_Rule("reset", n, _filter(methods)))

    def hang_next(self, n: int = 1, *, methods: Methods = None, after_forward: bool = False) -> Hold:
        """Hold the next `n` matching requests until the returned handle is released or the proxy closes.

        A request released by the handle goes on as usual (dropped or forwarded, even if its
        client has timed out meanwhile, as a slow node would still execute it); one released by
        close() or while the proxy is down gets its connection reset.

        after_forward=True holds the node's answer instead: the request is forwarded (or dropped)
        first, so once wait_hung() returns the node has executed it; released while the proxy is
        down (or by close()) the answer is lost and the connection reset, as when a node dies
        between doing something and saying so.
        """
        hold = Hold()
        with self._lock:
            self._holds.append(hold)
        if self.closing.is_set():
            hold.set()
        self._arm(_Rule("hang", n, _filter(methods), hold=hold, after_forward=after_forward))
        return hold

    def delay_next(self, n: int = 1, seconds: float = 1.0, *, methods: Methods = None) -> None:
        """Forward the next `n` matching requests only after `seconds`: a slow node.

        Whether that is a fault depends on the client's timeout: a client that gives up first sees
        a timeout while the node still executes the request afterwards. A request whose delay
        ends while the proxy is down (or closing) is reset unforwarded.
        """
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        self._arm(_Rule("delay", n, _filter(methods), seconds=seconds))

    def drop_method(self, method: str, *, result: Any = _DEFAULT) -> None:
        """Swallow calls to `method` until undrop(): answer success without forwarding.

        The fake result is `result` (JSON null when not given), except that eth_sendRawTransaction
        answers, by default, the hash the transaction would have (keccak256 of the raw bytes), so
        the client believes it was sent although the node never saw it.
        """
        with self._lock:
            self._drops[method] = result

    def undrop(self, method: str) -> None:
        with self._lock:
            self._drops.pop(method, None)

    def clear_faults(self) -> None:
        """Disarm every pending fail/reset/hang/delay and every drop (held requests stay held)."""
        with self._lock:
            self._rules.clear()
            self._drops.clear()

    def down(self) -> None:
        """Stop listening: connections are refused (ECONNREFUSED) until up(), on the same port."""
        with self._state:
            if self._closed:
                raise RuntimeError("RpcProxy is closed")
            if self._down:
                return
            with self._lock:
                self._down = True  # a connection accepted meanwhile is reset, logged "refused"
            placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            bound = False
            if hasattr(socket, "SO_REUSEPORT"):
                placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                try:
                    placeholder.bind(("127.0.0.1", self._port))  # port held while still listening
                    bound = True
                except OSError:
                    pass
            self._stop_serving()
            self._server.socket.close()  # backlogged connections get RST; new ones are refused
            if not bound:
                try:
                    placeholder.bind(("127.0.0.1", self._port))
                except OSError:
                    placeholder.close()
                    raise
            self._placeholder = placeholder

    def up(self) -> None:
        """Listen again on the same port after down()."""
        with self._state:
            if self._closed:
                raise RuntimeError("RpcProxy is closed")
            if not self._down:
                return
            assert self._placeholder is not None
            self._server.socket = self._placeholder
            self._placeholder = None
            self._server.server_activate()  # listen()
            with self._lock:
                self._down = False
            self._serve()

    @property
    def is_down(self) -> bool:
        with self._lock:
            return self._down

    # -- log ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request handled so far, in arrival order: (method or list of methods, outcome)."""
        with self._lock:
            return list(self._log)

    def count(self, method: str) -> int:
        """How many calls to `method` reached the node (each call of a batch counts)."""
        with self._lock:
            return self._forwarded[method]

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being handled (e.g. a released one still being forwarded)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    # -- request handling (handler threads) --------------------------------------------

    def _arm(self, rule: _Rule) -> None:
        if rule.remaining < 1:
            raise ValueError(f"n must be at least 1, got {rule.remaining}")
        with self._lock:
            self._rules.append(rule)

    def _enter(self) -> None:
        with self._lock:
            self._active += 1

    def _leave(self) -> None:
        with self._lock:
            self._active -= 1
            self._idle.notify_all()

    def _decide(self, methods: list[str], label: str | list[str] | None) -> tuple[str, _Rule | None]:
        """("refused" | "fail" | "reset" | "hang" | "delay" | "pass", the fault rule): consumed and logged,
        except "pass" (to be dropped or forwarded), which is logged once that is done."""
        with self._lock:
            if self._down:
                self._log.append(LoggedRequest(label, "refused"))
                return "refused", None
            for rule in self._rules:
                if rule.matches(methods):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    self._log.append(LoggedRequest(label, _OUTCOMES[rule.kind]))
                    return rule.kind, rule
            return "pass", None

    def _answer(
        self,
        body: bytes,
        calls: list[dict[str, Any]] | None,
        methods: list[str],
        label: str | list[str] | None,
        *,
        logged: bool,
    ) -> tuple[int, bytes, str]:
        """Drop and/or forward the request; returns (status, body, content type)."""
        with self._lock:
            drops = dict(self._drops)
        dropped = [c for c in calls or () if c.get("method") in drops]
        if not dropped:
            return self._forward(body, methods, label, logged=logged)
        fakes = {id(c): _fake_response(c, drops[c["method"]]) for c in dropped}
        with self._lock:
            self.dropped.extend(dropped)
            if not logged:
                self._log.append(LoggedRequest(label, "dropped"))
        is_batch = isinstance(label, list)
        if not is_batch:
            return 200, json.dumps(fakes[id(dropped[0])]).encode(), "application/json"
        assert calls is not None
        rest = [c for c in calls if id(c) not in fakes]
        answers: dict[int, Any] = {}
        if rest:
            status, text, content_type = self._forward(
                json.dumps(rest).encode(), [c.get("method", "") for c in rest], label, logged=True
            )
            try:
                replies = json.loads(text) if status == 200 else None
            except ValueError:
                replies = None
            if not isinstance(replies, list) or len(replies) != len(rest):
                return status, text, content_type  # the node's error, as it gave it
            by_id = {json.dumps(r.get("id")): r for r in replies if isinstance(r, dict)}
            answers = {id(c): by_id.get(json.dumps(c.get("id"))) for c in rest}
        merged = [fakes[id(c)] if id(c) in fakes else answers.get(id(c)) for c in calls]
        return 200, json.dumps(merged).encode(), "application/json"

    def _forward(
        self, body: bytes, methods: list[str], label: str | list[str] | None, *, logged: bool
    ) -> tuple[int, bytes, str]:
        try:
            reply = self._client.post(
                self.upstream_url, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            with self._lock:
                self.errors.append(exc)
                if not logged:
                    self._log.append(LoggedRequest(label, "upstream-error"))
            return 502, f"RpcProxy: upstream unreachable: {exc!r}\n".encode(), "text/plain"
        with self._lock:
            self._forwarded.update(methods)
            if not logged:
                self._log.append(LoggedRequest(label, "forwarded"))
        return reply.status_code, reply.content, reply.headers.get("Content-Type", "application/json")


def _filter(methods: Methods) -> frozenset[str] | None:
    if methods is None:
        return None
    if isinstance(methods, str):
        return frozenset({methods})
    return frozenset(methods)


def _parse(body: bytes) -> tuple[list[dict[str, Any]] | None, list[str], str | list[str] | None]:
    """(the calls, their method names, the log label: a name, a list for a batch, None if unparsable)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None, [], None
    if isinstance(data, dict):
        method = data.get("method")
        name = method if isinstance(method, str) else None
        return [data], [name] if name else [], name
    if isinstance(data, list):
        calls = [c for c in data if isinstance(c, dict)]
        names = [c.get("method") if isinstance(c.get("method"), str) else "" for c in calls]
        return (calls if len(calls) == len(data) else None), [n for n in names if n], names
    return None, [], None


def _fake_response(call: dict[str, Any], result: Any) -> dict[str, Any]:
    if result is _DEFAULT:
        result = None
        if call.get("method") == SEND_RAW_TRANSACTION:
            params = call.get("params") or [""]
            raw = str(params[0])
            result = "0x" + keccak(bytes.fromhex(raw.removeprefix("0x"))).hex()
    return {"jsonrpc": "2.0", "id": call.get("id"), "result": result}
