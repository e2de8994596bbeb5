"""`navpub keeper`: the long-running service. Every tick it follows the vault's activity events
(a trade publishes that fund at once), takes `navpub trigger` requests, and publishes every fund
whose cadence is due — all of them in one batched transaction — switching funds between the
standard and the high-volatility cadence as their assets move.

SIGTERM or SIGINT lets the tick in flight finish (a publication is never cut in half) and the
keeper exits with status 0. Everything it needs to resume — the outbox, the event cursor —
is in the store.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from prometheus_client import CONTENT_TYPE_LATEST

from publisher._exceptions import NavPubError
from publisher.events import ActivityFollower
from publisher.metrics import Metrics
from publisher.publish import FundOutcome, Publisher
from publisher.schedule import FundSchedule, Sample, ScheduleRules, hourly_move_bps, trim, update_mode

log = logging.getLogger("navpub.keeper")
HEARTBEAT = "heartbeat"
# 15 s: a trade is published within one tick, four times faster than a mainnet minute, and
# an idle tick costs two cheap RPC calls (block number, logs).
TICK_S = 15.0


@dataclass
class TickResult:
    now: int
    emergency: set[int] = field(default_factory=set)
    scheduled: set[int] = field(default_factory=set)
    outcomes: list[FundOutcome] = field(default_factory=list)
    error: str | None = None


class Keeper:
    """The schedule, the event follower and the publisher, ticking on an injected clock."""

    def __init__(
        self,
        publisher: Publisher,
        *,
        clock: Callable[[], int] | None = None,
        rules: ScheduleRules | None = None,
        tick_s: float = TICK_S,
    ) -> None:
        s = publisher.settings
        self.publisher = publisher
        self.store = publisher.store
        self.clock = clock or publisher.engine.clock
        self.rules = rules or ScheduleRules(s.cadence_s, s.high_volatility_cadence_s)
        self.tick_s = tick_s
        engine = publisher.engine
        self.follower = ActivityFollower(lambda: engine.w3, engine.deployment.vault, self.store,
                                         engine.deployment.deploy_block)  # fmt: skip
        self.schedules: dict[int, FundSchedule] = {}
        self.samples: dict[str, list[Sample]] = {}
        self.metrics = Metrics()
        self.last_tick_at: int | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()

    # -- one tick ---------------------------------------------------------------------------

    def tick(self) -> TickResult:
        now = self.clock()
        result = TickResult(now)
        self.store.set_state(HEARTBEAT, json.dumps({"pid": os.getpid(), "at": now}))
        engine = self.publisher.engine
        try:
            # Through the retrying wrapper like every other read: a transient RPC error is a
            # failed tick (RpcUnreachable, loud) rather than an exception out of the keeper.
            polled = engine.rpc_call(self.follower.poll, "vault events")
            result.emergency = polled | self.store.take_triggers(now)
            count = engine.rpc_call(lambda: engine.vault.functions.fundCount().call(), "fund count")
            for fid in range(1, count + 1):
                self.schedules.setdefault(fid, FundSchedule(fid))
            result.scheduled = {f for f, sch in self.schedules.items() if sch.due(now, self.rules)}
            due = sorted(result.scheduled | result.emergency)
            if not due:
                return result
            for fid in result.emergency:
                log.info("fund %s: activity on the vault, emergency publish", fid)
            started = time.monotonic()
            result.outcomes = self.publisher.cycle(due, trigger="scheduled", emergency=result.emergency)
            self.metrics.cycle_seconds.observe(time.monotonic() - started)
            self._after_cycle(due, now, result.outcomes)
        except NavPubError as exc:
            # Loud, not fatal: the outbox and the cursor keep everything for the next tick.
            result.error = str(exc)
            log.error("tick failed: %s", exc, extra={"kind": "keeper_tick_failed"})
            self.store.add_alert("keeper_tick_failed", str(exc), now)
            self.metrics.failures.labels("tick").inc()
        finally:
            self.last_tick_at = now
            self.last_error = result.error
            self.metrics.last_tick.set(now)
        overdue = set(self.health()["funds_overdue"])  # type: ignore[arg-type]
        for fid in self.schedules:
            if fid in overdue:
                self.publisher.alerter.fire("overdue", f"fund {fid}: no NAV for more than twice its cadence",
                                            fund_id=fid)  # fmt: skip
            else:
                self.publisher.alerter.resolve("overdue", f"fund {fid}: NAV current again", fund_id=fid)
        for o in result.outcomes:
            tx = f" tx {o.tx_hash}" if o.tx_hash else ""
            report = self.store.report(o.report_id) if o.report_id else None
            # The on-chain round this NAV became (published) or would have become.
            rnd = None if report is None or report.previous_round is None else report.previous_round + 1
            context = {"fund": o.fund_id, "tx": o.tx_hash, "round": rnd}
            log.info("fund %s: %s (%s)%s", o.fund_id, o.decision, o.reason, tx, extra=context)
        return result

    def health(self) -> dict[str, object]:
        """Alive and current: the last tick, funds overdue by more than their cadence, open breakers."""
        now = self.clock()
        overdue = [
            f for f, sch in self.schedules.items()
            if (nd := sch.next_due(self.rules)) is not None and now - nd > sch.cadence(self.rules)
        ]  # fmt: skip
        breakers = [f for f in self.schedules if self.store.fund_record(f).guard.breaker_open]
        age = None if self.last_tick_at is None else now - self.last_tick_at
        alive = age is not None and age <= max(60, int(3 * self.tick_s))
        return {
            "alive": alive,
            "last_tick_at": self.last_tick_at,
            "last_tick_age_s": age,
            "last_error": self.last_error,
            "funds_overdue": overdue,
            "breakers_open": breakers,
            "healthy": alive and not overdue and not breakers and self.last_error is None,
        }

    def _after_cycle(self, funds: list[int], now: int, outcomes: list[FundOutcome]) -> None:
        cycle = self.publisher.last_cycle
        if cycle is None:
            return
        breakers = {f.fund_id: self.store.fund_record(f.fund_id).guard.breaker_open for f in cycle.funds}
        self.metrics.record_cycle(cycle, outcomes, breakers)
        self.metrics.record_publications(self.store.publications(("confirmed",)))
        engine = self.publisher.engine
        address = self.publisher.sender.account.address
        balance = engine.rpc_call(lambda: engine.w3.eth.get_balance(address), "engine balance")
        self.metrics.balance.set(Decimal(balance).scaleb(-18))
        alerter = self.publisher.alerter
        floor = self.publisher.settings.low_balance_wei
        shown = f"{Decimal(balance).scaleb(-18)} {self.publisher.settings.native_symbol}"
        if balance < floor:
            limit = Decimal(floor).scaleb(-18)
            alerter.fire("low_balance", f"the NAV engine's key holds {shown}, below {limit}", key="engine")
        else:
            alerter.resolve("low_balance", f"the NAV engine's key holds {shown} again", key="engine")
        for symbol, price in cycle.prices.items():
            self.samples[symbol] = trim([*self.samples.get(symbol, []), (now, price.price)], now)
        moves = {s: hourly_move_bps(v, now) for s, v in self.samples.items()}
        for f in cycle.funds:
            if f.fund_id not in funds:
                continue
            assets = [a.asset for a in f.valuation.assets] if f.valuation else []
            state, why = update_mode(self.schedules[f.fund_id], moves, assets, self.rules)
            if why:
                log.warning("fund %s: %s", f.fund_id, why)
                self.store.add_alert("volatility_mode", f"fund {f.fund_id}: {why}", now, f.fund_id)
            self.schedules[f.fund_id] = replace(state, last_run=now)

    # -- the loop -----------------------------------------------------------------------------

    def stop(self, *_: object) -> None:
        """Asks the loop to end after the tick in flight."""
        self._stop.set()

    def run(self, *, max_ticks: int | None = None, wait: Callable[[float], None] | None = None) -> int:
        """Ticks until stopped (SIGTERM/SIGINT) or `max_ticks`; returns the exit status (0)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        ticks = 0
        while not self._stop.is_set() and (max_ticks is None or ticks < max_ticks):
            self.tick()
            ticks += 1
            if wait is not None:
                wait(self.tick_s)
            else:
                self._stop.wait(self.tick_s)  # returns at once when a signal asks to stop
        log.info("keeper stopped after %d tick(s)", ticks)
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.warning("signal %s: finishing the tick in flight, then exiting", signum)
        self.stop()


def serve_http(keeper: Keeper, host: str, port: int) -> ThreadingHTTPServer:
    """/health (JSON; 200 when healthy, 503 otherwise) and /metrics (Prometheus), in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                report = keeper.health()
                body, status, ctype = (
                    json.dumps(report).encode(),
                    200 if report["healthy"] else 503,
                    "application/json",
                )
            elif self.path == "/metrics":
                body, status, ctype = keeper.metrics.exposition(), 200, CONTENT_TYPE_LATEST
            else:
                body, status, ctype = b'{"error": "not found"}', 404, "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="navpub-http", daemon=True).start()
    return server


def running_keeper(publisher: Publisher, stale_after_s: float = 3 * TICK_S) -> int | None:
    """The pid of a keeper whose heartbeat is fresh and whose process is alive, else None."""
    raw = publisher.store.get_state(HEARTBEAT)
    if raw is None:
        return None
    beat = json.loads(raw)
    if time.time() - beat["at"] > stale_after_s and publisher.engine.clock() - beat["at"] > stale_after_s:
        return None
    try:
        os.kill(int(beat["pid"]), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return None
    return int(beat["pid"])
