"""The DESIGN.md invariants under injected faults, on a real anvil.

Invariants checked after every fault (and the recovery that follows it):
- every due NAV is on chain exactly once (the hub's records, publisher.navlog.nav_records),
  or its report explains why not;
- the fund's round advanced by exactly one per NAV published — no duplicate round;
- no report lost or stuck: every report and publication ends in a final state
  (reports confirmed / superseded / skipped / failed, publications confirmed / replaced);
- the stored high-water mark equals the vault's.

Faults, one per test id:
1. the RPC: killed between the read and the send, killed while the send is held (the request
   lost, or executed with its answer lost), answering slowly (within and beyond the client's
   timeout), and a fallback RPC URL taking over mid-cycle;
2. HTTP price sources: one source hanging / answering 500 / HTML / truncated JSON / a cut-off
   body, end to end through a publish; then every source of an asset down at once (cached
   price, NAV estimated, then past the cache limit the breaker opens and pauses the fund);
3. the publishing process killed at every step of the publish path (in-process crash at each
   failpoint of publisher/failpoints.py) and then restarted; killed again while recovering; and
   a real `navpub publish` process killed (os._exit(137) at a failpoint, and SIGKILL while its
   send is held);
4. the store locked by another connection (from the start, and mid-cycle after the send), and
   the disk full (RLIMIT_FSIZE 0 in a `navpub` process: from its start, or from a failpoint on).

Never a sleep to wait for a race: the proxy's holds, failpoints and anvil's controls (evm_mine,
evm_increaseTime) order every step. The only waits are the faults themselves (a slow RPC, a
hanging HTTP source up to its timeout, a lock up to the store's busy timeout).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pytest
from web3 import Web3

from publisher import failpoints
from publisher.chain import contract_at, send
from publisher.cli import main
from publisher.config import Settings, load_settings
from publisher.deployment import Deployment, load_deployment
from publisher.keys import DEMO_GUARDIAN_INDEX, dev_account
from publisher.localchain import AnvilNode
from publisher.navlog import NavRecord, nav_records
from publisher.publish import FundOutcome, Publisher
from publisher.sender import Hooks
from publisher.snapshot import FLAG_ENGINE_PAUSE
from publisher.store import DB_FILE, Store, StoreError
from tests.chainops import advance
from tests.faultkit import SimulatedCrash, chain_settings, crash
from tests.httpserver import LocalHTTPServer, Route
from tests.rpcproxy import RpcProxy

pytestmark = pytest.mark.anvil
T = TypeVar("T")
E18 = 10**18
SEND = "eth_sendRawTransaction"
FUND1_NAV = 688_750 * E18  # the demo's fund 1 at BTC $42,000 and ETH $2,200 (README, test_publish_anvil)

# Where a report or a publication may end; anything else after a recovery is stuck.
FINAL_REPORTS = {"none", "held", "confirmed", "superseded", "failed"}  # none: skipped / failed decision
FINAL_PUBLICATIONS = {"confirmed", "replaced"}


# -- the chain as the test sees it (straight to anvil, never through the proxy) -----------------


class NavState(NamedTuple):
    """FundVault.navState's answer."""

    nav: int
    as_of: int
    round: int
    flags: int
    estimated: bool
    high_water_mark: int
    total_shares: int
    nav_per_share: int
    paused: bool
    nav_shares: int


@dataclass
class Chain:
    w3: Web3
    deployment: Deployment

    def navs(self, fund_id: int) -> list[int]:
        """Every NAV the vault ever accepted for the fund (the hub logs each one)."""
        return [r.nav for r in self.records(fund_id)]

    def records(self, fund_id: int) -> list[NavRecord]:
        hub = contract_at(self.w3, "AnalyticsHub", self.deployment.hub)
        return nav_records(hub, fund_id)

    def state(self, fund_id: int) -> NavState:
        vault = contract_at(self.w3, "FundVault", self.deployment.vault)
        return NavState(*vault.functions.navState(fund_id).call())

    def move(self, settings: Settings, factors: dict[str, Decimal]) -> None:
        """Every feed of those assets answers again, times its factor (1 just refreshes it).
        Signed by another key than the engine's: the engine's nonces stay the publisher's."""
        oracle = dev_account(settings, 3)
        for symbol, factor in factors.items():
            for f in self.deployment.feeds[symbol]:
                feed = contract_at(self.w3, "MockV3Aggregator", f.address)
                answer = feed.functions.latestAnswer().call()
                send(self.w3, oracle, feed.functions.updateAnswer(int(answer * factor)), "feed")


def assert_invariants(store: Store, chain: Chain, navs: dict[int, list[int]]) -> None:
    """Each fund's on-chain history is exactly `navs` (its round the count: no duplicate), the
    stored HWM is the vault's, and nothing in the store is left pending, sent or signed."""
    for fund_id, expected in navs.items():
        assert chain.navs(fund_id) == expected, f"fund {fund_id}"
        state = chain.state(fund_id)
        assert state.round == len(expected), f"fund {fund_id}"
        if expected:
            # The mark is per share: the highest NAV per share the hub recorded.
            per_share = max(r.nav_per_share for r in chain.records(fund_id))
            assert store.high_water_marks()[fund_id] == state.high_water_mark == per_share
    stuck = [
        (r.id, r.fund_id, r.status) for r in store.reports(limit=10_000) if r.status not in FINAL_REPORTS
    ]
    assert stuck == [], "reports not in a final state"
    open_pubs = [(p.id, p.status) for p in store.publications() if p.status not in FINAL_PUBLICATIONS]
    assert open_pubs == [], "publications not in a final state"


def decisions(outcomes: list[FundOutcome]) -> list[str]:
    return [o.decision for o in outcomes]


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def settings(proxy: RpcProxy, demo_chain: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A pristine demo chain; the publisher talks to anvil through the proxy, on the chain's clock."""
    monkeypatch.delenv(failpoints.ENV, raising=False)
    return chain_settings(
        monkeypatch, proxy.url, demo_chain, NAVPUB_RECEIPT_TIMEOUT_S="5", NAVPUB_RECEIPT_POLL_S="0.1"
    )


@pytest.fixture
def chain(anvil: AnvilNode, settings: Settings) -> Chain:
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    return Chain(w3, load_deployment(settings, w3))


@pytest.fixture
def failpoint() -> Iterator[Callable[[str, Callable[[], None]], None]]:
    """failpoints.arm, with every point disarmed when the test ends."""
    yield failpoints.arm
    failpoints.disarm()


def in_thread(fn: Callable[[], T]) -> Future[T]:
    """Runs fn in a worker thread; returns its future (the test acts on the proxy meanwhile)."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(fn)
    pool.shutdown(wait=False)
    return future


# == 1. the RPC ===================================================================================


def test_rpc_killed_between_read_and_send_then_restarted(
    settings: Settings, proxy: RpcProxy, chain: Chain, failpoint: Callable[..., None]
) -> None:
    """Fault: the RPC dies after the snapshot, static call, gas estimate and signing, before the
    broadcast. The cycle gives up after its retries with the NAV signed in the outbox; once the
    RPC is back, the same process publishes it once, at the stuck nonce."""
    pub = Publisher.from_settings(settings)
    failpoint(failpoints.AFTER_OUTBOX, proxy.down)
    (o,) = pub.cycle([1])
    failpoints.disarm()
    assert o.decision == "pending" and "outbox" in o.reason
    assert proxy.count(SEND) == 0 and chain.navs(1) == []
    (stuck,) = pub.store.unfinished_publications()
    assert stuck.status == "signed"
    assert "publish_failed" in [a["kind"] for a in pub.store.alerts(1)]

    proxy.up()
    (o2,) = pub.cycle([1])
    assert o2.decision == "published" and o2.nav == o.nav == FUND1_NAV
    fresh = pub.store.publication(pub.store.publication(stuck.id).replaced_by)
    assert fresh.nonce == stuck.nonce and fresh.status == "confirmed"  # only one could ever land
    assert pub.store.report(o.report_id).status == "superseded"
    assert_invariants(pub.store, chain, {1: [FUND1_NAV]})


@pytest.mark.parametrize("lost", ["request", "answer"])
def test_rpc_killed_while_the_send_is_held(
    settings: Settings, proxy: RpcProxy, chain: Chain, lost: str
) -> None:
    """Fault: the RPC dies while the broadcast is in flight — before the node saw it (the request
    is lost) or after the node executed it (the answer is lost: mined, but the publisher hears a
    reset). Its retries find the RPC down; once it is back, the NAV ends on chain once either way:
    sent at the stuck nonce, or found by its receipt and never sent again."""
    pub = Publisher.from_settings(settings)
    hold = proxy.hang_next(1, methods=SEND, after_forward=lost == "answer")
    running = in_thread(lambda: pub.cycle([1]))
    assert hold.wait_hung()
    proxy.down()
    hold.release()  # the held connection is reset: the proxy is down
    (o,) = running.result(timeout=60)
    assert o.decision == "pending"
    assert chain.navs(1) == ([FUND1_NAV] if lost == "answer" else [])
    assert proxy.count(SEND) == (1 if lost == "answer" else 0)

    proxy.up()
    (o2,) = pub.cycle([1])
    if lost == "answer":
        # Settled from the receipt before anything else; the chain has this NAV: skipped.
        assert o2.decision == "skipped" and pub.store.report(o.report_id).status == "confirmed"
        assert proxy.count(SEND) == 1
    else:
        assert o2.decision == "published" and pub.store.report(o.report_id).status == "superseded"
    assert_invariants(pub.store, chain, {1: [FUND1_NAV]})


@pytest.mark.parametrize(
    ("method", "delay_s", "timeout_s"),
    [
        pytest.param(SEND, 0.3, 5.0, id="send-slower-than-usual-within-timeout"),
        pytest.param(SEND, 1.5, 0.5, id="send-beyond-timeout"),
        pytest.param("eth_getTransactionReceipt", 1.5, 0.5, id="receipt-beyond-timeout"),
        pytest.param("eth_call", 1.5, 0.5, id="read-beyond-timeout"),
    ],
)
def test_rpc_answering_slowly(
    settings: Settings,
    proxy: RpcProxy,
    chain: Chain,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    delay_s: float,
    timeout_s: float,
) -> None:
    """Fault: one request answered late (the delay is the fault). Within NAVPUB_RPC_TIMEOUT_S the
    cycle just waits; beyond it the client times out and retries while the node still executes
    the late request — a late send lands as "already known" / "nonce too low", never twice."""
    monkeypatch.setenv("NAVPUB_RPC_TIMEOUT_S", str(timeout_s))
    pub = Publisher.from_settings(load_settings())
    proxy.delay_next(1, delay_s, methods=method)
    (o,) = pub.cycle([1])
    assert o.decision == "published" and o.nav == FUND1_NAV
    assert proxy.wait_idle()  # the late request has reached the node too
    assert "delayed" in [outcome for _, outcome in proxy.requests]
    if method == SEND:
        assert proxy.count(SEND) == (1 if delay_s < timeout_s else 2)  # retried only past the timeout
    assert_invariants(pub.store, chain, {1: [FUND1_NAV]})


@pytest.mark.parametrize("when", ["before-send", "mid-answer"])
def test_fallback_rpc_takes_over_mid_cycle(
    settings: Settings, proxy: RpcProxy, anvil: AnvilNode, chain: Chain,
    monkeypatch: pytest.MonkeyPatch, failpoint: Callable[..., None], when: str,
) -> None:  # fmt: skip
    """Fault: the primary RPC dies mid-cycle and NAVPUB_RPC_FALLBACK_URLS takes over within the
    same cycle — killed after the read (the send goes to the fallback), or killed after it
    executed the send but before answering (the fallback's "already known" / "nonce too low" is
    settled from the receipt). Either way the NAV is on chain once, in this cycle."""
    with RpcProxy(anvil.rpc_url) as backup:
        monkeypatch.setenv("NAVPUB_RPC_FALLBACK_URLS", backup.url)
        pub = Publisher.from_settings(load_settings())
        if when == "before-send":
            failpoint(failpoints.AFTER_OUTBOX, proxy.down)
            (o,) = pub.cycle([1])
        else:
            hold = proxy.hang_next(1, methods=SEND, after_forward=True)
            running = in_thread(lambda: pub.cycle([1]))
            assert hold.wait_hung()
            proxy.down()
            hold.release()
            (o,) = running.result(timeout=60)
        assert o.decision == "published" and o.nav == FUND1_NAV
        assert pub.engine.pool.url == backup.url
        assert proxy.count(SEND) == (0 if when == "before-send" else 1)
        assert backup.count(SEND) == 1  # the same signed transaction, or refused as known
        (p,) = pub.store.publications()
        assert len(p.attempts) == 1  # one signed transaction, never re-signed
        assert_invariants(pub.store, chain, {1: [FUND1_NAV]})


# == 2. HTTP price sources ========================================================================

BTC_SOURCES = ("coinbase", "binance", "kraken")


def sources_toml(url: str) -> str:
    """BTC priced by three HTTP APIs only (no feed), so every one of its sources can fail;
    the other assets keep their on-chain feeds. 0.5 s timeouts bound a hanging source."""
    blocks = [
        f'[http_sources.{s}]\nadapter = "{s}"\nbase_url = "{url}"\ntimeout_s = 0.5\n' for s in BTC_SOURCES
    ]
    return "\n".join(blocks) + (
        "\n[assets.BTC]\nrouter_feeds = false\nhttp = [\n"
        '  { source = "coinbase", instrument = "BTC-USD" },\n'
        '  { source = "binance", instrument = "BTCUSDT" },\n'
        '  { source = "kraken", instrument = "XXBTZUSD" },\n]\n'
    )


ROUTES = {
    "coinbase": (
        "/v2/prices/BTC-USD/spot",
        {"data": {"amount": "42000.00", "base": "BTC", "currency": "USD"}},
    ),
    "binance": ("/api/v3/ticker/price", {"symbol": "BTCUSDT", "price": "42000.00000000"}),
    "kraken": ("/0/public/Ticker", {"error": [], "result": {"XXBTZUSD": {"c": ["42000.0", "0.01"]}}}),
}

# How a source fails, and a word its reason must contain.
FAILURES: dict[str, str] = {
    "hang": "timed out",
    "500": "HTTP 500",
    "html": "HTML",
    "truncated-json": "truncated JSON",
    "cut-off-body": "broke off",
}


@dataclass
class BtcApis:
    """BTC's three price APIs on the local HTTP server."""

    server: LocalHTTPServer
    routes: list[Route] = field(default_factory=list)

    def serve(self, failing: dict[str, str] | None = None) -> None:
        """Every API healthy at $42,000, except those of `failing` (source → failure)."""
        for route in self.routes:
            # A replaced route is no longer the server's to release on close: requests still
            # hanging on it would block the server's shutdown.
            route.release()
        self.routes = []
        for source, (path, payload) in ROUTES.items():
            failure = (failing or {}).get(source)
            text = json.dumps(payload)
            route = self.server.route
            if failure is None:
                r = route("GET", path, json=payload)
            elif failure == "hang":
                r = route("GET", path, json=payload, hang=True)  # held past the 0.5 s timeout
            elif failure == "500":
                r = route("GET", path, status=500, json={"message": "internal error"})
            elif failure == "html":
                r = route("GET", path, body="<html><body>Service Unavailable</body></html>",
                          content_type="text/html")  # fmt: skip
            elif failure == "truncated-json":
                r = route("GET", path, body=text[: len(text) // 2])  # a complete answer, half a document
            elif failure == "cut-off-body":
                r = route("GET", path, body=text, truncate_at=len(text) // 2)  # connection closed early
            else:
                raise ValueError(failure)
            self.routes.append(r)


@pytest.fixture
def http_settings(
    anvil: AnvilNode, demo_chain: Path, tmp_path: Path, http_server: LocalHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:  # fmt: skip
    sources = tmp_path / "sources.toml"
    sources.write_text(sources_toml(http_server.url))
    for k, v in {"NAVPUB_RPC_URL": anvil.rpc_url, "NAVPUB_STATE_DIR": str(demo_chain),
                 "NAVPUB_CLOCK": "chain", "NAVPUB_RETRY_BACKOFF_S": "0",
                 "NAVPUB_SOURCES_FILE": str(sources)}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    return load_settings()


@pytest.fixture
def http_chain(anvil: AnvilNode, http_settings: Settings) -> Chain:
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    return Chain(w3, load_deployment(http_settings, w3))


def btc_inputs(pub: Publisher, report_id: int | None) -> dict[str, Any]:
    assert report_id is not None
    report = pub.store.report(report_id)
    assert report is not None
    inputs = report.inputs
    return inputs["prices"].get("BTC") or inputs["unpriced"]["BTC"]


@pytest.mark.parametrize("failure", list(FAILURES))
def test_one_http_source_failing_the_nav_is_published_from_the_others(
    http_settings: Settings, http_server: LocalHTTPServer, http_chain: Chain, failure: str
) -> None:
    """Fault: one of BTC's three price APIs hangs / answers 500 / an HTML page / truncated JSON /
    a body cut off mid-transfer. The NAV is still published, from the two others, exactly; its
    confidence is two thirds; the report names the failed source and why."""
    BtcApis(http_server).serve({"coinbase": failure})
    pub = Publisher.from_settings(http_settings)
    (o,) = pub.cycle([1])
    assert o.decision == "published" and o.nav == FUND1_NAV
    btc = btc_inputs(pub, o.report_id)
    assert btc["estimated"] is False and btc["sources"] == ["http:binance", "http:kraken"]
    assert btc["confidence"] == 66  # 2 agreeing of 3 configured (all three score 100)
    (failed,) = [v for v in btc["verdicts"] if v["status"] == "failed"]
    assert failed["source"] == "http:coinbase" and FAILURES[failure] in failed["reason"], failed
    assert_invariants(pub.store, http_chain, {1: [FUND1_NAV]})


def test_every_source_of_an_asset_down_cached_then_estimated_then_breaker(
    http_settings: Settings, http_server: LocalHTTPServer, http_chain: Chain
) -> None:
    """Fault: all three BTC APIs down at once (500, HTML, hanging). Within the hour the cached
    price stands in and the NAV is published flagged estimated (on chain too); past the cache
    limit BTC cannot be priced and, at breaker_after (3) bad cycles, the breaker opens and the
    fund is paused on chain. When the APIs answer again the breaker closes, the fund is unpaused
    and the live NAV published."""
    chain, w3 = http_chain, http_chain.w3
    fund1_feeds = {"ETH": Decimal(1), "USDC": Decimal(1)}  # fund 1's other assets: feeds kept fresh
    chain.move(http_settings, fund1_feeds)
    apis = BtcApis(http_server)
    apis.serve()
    pub = Publisher.from_settings(http_settings)
    (o1,) = pub.cycle([1])
    assert o1.decision == "published" and btc_inputs(pub, o1.report_id)["confidence"] == 100

    apis.serve({"coinbase": "500", "binance": "html", "kraken": "hang"})
    advance(w3, 600)
    (o2,) = pub.cycle([1])
    btc = btc_inputs(pub, o2.report_id)
    assert o2.decision == "published" and o2.estimated and o2.nav == FUND1_NAV  # the cached $42,000
    assert btc["estimated"] is True and btc["confidence"] == 0
    assert sorted(v["source"] for v in btc["verdicts"] if v["status"] == "failed") == [
        "http:binance", "http:coinbase", "http:kraken"
    ]  # fmt: skip
    state = chain.state(1)
    assert state.estimated and state.round == 2

    advance(w3, 600)
    (o3,) = pub.cycle([1])  # still estimated, nothing changed: skipped (the second bad cycle)
    assert o3.decision == "skipped" and o3.estimated

    advance(w3, 2_500)  # the cached price is now 3,700 s old: beyond the hour
    chain.move(http_settings, fund1_feeds)
    (o4,) = pub.cycle([1])
    age = re.search(r"BTC: cannot be priced: .*cached price is (\d+) s old \(limit 3600 s\)", o4.reason)
    assert o4.decision == "failed" and age is not None and int(age[1]) > 3_600, o4.reason
    assert chain.state(1).paused and pub.store.fund_record(1).guard.breaker_open
    kinds = [a["kind"] for a in pub.store.alerts(1)]
    assert "breaker_open" in kinds and "ripcord" in kinds

    apis.serve()
    (o5,) = pub.cycle([1])
    assert o5.decision == "published" and not o5.estimated
    state = chain.state(1)
    assert not state.paused and not state.estimated and state.round == 3
    assert_invariants(pub.store, chain, {1: [FUND1_NAV] * 3})


# == 3. the publishing process killed at every step ================================================

STEPS = [
    pytest.param(failpoints.BEFORE_OUTBOX, "superseded", id="before-outbox-write"),
    pytest.param(failpoints.AFTER_OUTBOX, "superseded", id="after-outbox-write-before-send"),
    pytest.param(failpoints.AFTER_SEND, "confirmed", id="after-send-before-receipt"),
    pytest.param(failpoints.AFTER_RECEIPT, "confirmed", id="after-receipt-before-store"),
    pytest.param(failpoints.AFTER_RECORD, "confirmed", id="after-store-before-accounting"),
]


def published_round_one(settings: Settings, chain: Chain) -> dict[int, int]:
    """Funds 1 and 2 published once, then ETH and XAUT up 5 %: both due again (one batch)."""
    first = Publisher.from_settings(settings).cycle([1, 2])
    assert decisions(first) == ["published"] * 2
    chain.move(settings, {"ETH": Decimal("1.05"), "XAUT": Decimal("1.05")})
    advance(chain.w3, 60)
    return {o.fund_id: o.nav for o in first if o.nav is not None}


@pytest.mark.parametrize(("step", "crashed_reports"), STEPS)
def test_crash_at_each_step_then_restart_publishes_exactly_once(
    settings: Settings, chain: Chain, failpoint: Callable[..., None], step: str, crashed_reports: str
) -> None:
    """Fault: the process dies at `step` of the publish path (a batch of two funds). The restart
    reconciles the outbox with the chain first: each fund's new NAV ends on chain exactly once,
    its round advanced by one, every report of the dead cycle confirmed (it was sent) or
    superseded (it was not), nothing stuck, the HWM recorded."""
    first = published_round_one(settings, chain)
    dying = Publisher.from_settings(settings)
    failpoint(step, crash)
    with pytest.raises(SimulatedCrash):
        dying.cycle([1, 2])
    failpoints.disarm()
    assert dying.last_cycle is not None
    crashed = {f.fund_id: f for f in dying.last_cycle.funds}
    new_navs = {fid: f.valuation.nav for fid, f in crashed.items() if f.valuation is not None}
    assert all(new_navs[fid] > first[fid] for fid in (1, 2))  # both rose: a new HWM each

    restarted = Publisher.from_settings(settings)
    outcomes = restarted.cycle([1, 2])
    sent_before_crash = crashed_reports == "confirmed"
    assert decisions(outcomes) == ["skipped" if sent_before_crash else "published"] * 2
    for f in crashed.values():
        assert restarted.store.report(f.report_id).status == crashed_reports
    assert_invariants(restarted.store, chain, {fid: [first[fid], new_navs[fid]] for fid in (1, 2)})


def test_crash_again_while_recovering_a_transaction_still_in_the_mempool(
    settings: Settings, chain: Chain, failpoint: Callable[..., None]
) -> None:
    """Fault: two crashes in a row. The first process dies after sending (the transaction sits in
    the mempool: automine off); the restart, replacing it with the newest NAVs at the same nonce,
    dies before committing the replacement. The third run must still treat the first transaction
    as in flight — replace it at its nonce, never send beside it at the next nonce — so the new
    NAVs are on chain once, whichever transaction the chain takes."""
    first = published_round_one(settings, chain)
    w3 = chain.w3
    w3.provider.make_request("evm_setAutomine", [False])
    w3.provider.make_request("evm_mine", [])  # a block for the snapshot to read
    failpoint(failpoints.AFTER_SEND, crash)
    with pytest.raises(SimulatedCrash):
        Publisher.from_settings(settings).cycle([1, 2])
    failpoints.disarm()
    failpoint(failpoints.BEFORE_OUTBOX, crash)
    second = Publisher.from_settings(settings)
    with pytest.raises(SimulatedCrash):
        second.cycle([1, 2])  # settles nothing (not mined), computes, starts replacing, dies
    failpoints.disarm()
    assert second.last_cycle is not None
    new_navs = {f.fund_id: f.valuation.nav for f in second.last_cycle.funds if f.valuation is not None}

    # The third run; a block is mined after each of its broadcasts, with whatever the mempool holds.
    mine = Hooks(after_broadcast=lambda _: w3.provider.make_request("evm_mine", []))
    restarted = Publisher.from_settings(settings, hooks=mine)
    outcomes = restarted.cycle([1, 2])
    w3.provider.make_request("evm_setAutomine", [True])
    assert decisions(outcomes) == ["published"] * 2
    assert_invariants(restarted.store, chain, {fid: [first[fid], new_navs[fid]] for fid in (1, 2)})


def navpub(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`navpub ARGS` as its own OS process, with this test's environment (the settings)."""
    return subprocess.Popen(
        [sys.executable, "-m", "publisher.cli", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.mark.parametrize("kill", ["failpoint-exit-137-after-outbox", "sigkill-while-send-held"])
def test_navpub_publish_killed_then_run_again(
    settings: Settings, proxy: RpcProxy, chain: Chain, capsys: pytest.CaptureFixture[str], kill: str
) -> None:
    """Fault: a real `navpub publish` process dies — at the failpoint after the outbox write
    (os._exit(137) via NAVPUB_FAILPOINT: signed, never sent), or by SIGKILL from the test while
    the proxy holds its eth_sendRawTransaction, which the node then receives and mines after the
    process is dead. `navpub publish` again: fund 1's NAV on chain once, nothing stuck."""
    if kill.startswith("failpoint"):
        rc, _, _ = finish(navpub("publish", "--fund", "1", env={failpoints.ENV: failpoints.AFTER_OUTBOX}))
        assert rc == failpoints.KILLED_EXIT_CODE
        assert proxy.count(SEND) == 0
        expected = "published"  # the restart sends the newest NAV at the dead one's nonce
    else:
        hold = proxy.hang_next(1, methods=SEND)
        proc = navpub("publish", "--fund", "1")
        assert hold.wait_hung(timeout=60)
        proc.send_signal(signal.SIGKILL)
        rc, _, _ = finish(proc)
        assert rc == -signal.SIGKILL
        hold.release()  # the dead process's transaction reaches the node after all
        assert proxy.wait_idle() and proxy.count(SEND) == 1
        # Accepted is not yet mined under load: a block now includes it (or is empty if mined).
        chain.w3.provider.make_request("evm_mine", [])
        assert chain.navs(1) == [FUND1_NAV]
        expected = "skipped"  # the restart finds its receipt first; the chain has this NAV
    store = Store.for_settings(settings)
    (dead,) = store.unfinished_publications()
    assert dead.status == "signed"  # the dead process never heard back

    capsys.readouterr()
    assert main(["publish", "--fund", "1", "--json"]) == 0  # run again (in-process: the same command)
    (row,) = json.loads(capsys.readouterr().out)
    assert row["decision"] == expected
    (landed,) = store.publications(("confirmed",))
    assert landed.nonce == dead.nonce  # the dead process's own transaction, or its replacement
    assert_invariants(store, chain, {1: [FUND1_NAV]})


# -- the ripcord (setFundPaused) killed mid-flight ---------------------------------------------


def pauses(chain: Chain, fund_id: int) -> list[bool]:
    """Every FundPaused of the fund, in order: True a pause, False a release."""
    vault = contract_at(chain.w3, "FundVault", chain.deployment.vault)
    logs = vault.events.FundPaused().get_logs(from_block=0, argument_filters={"fundId": fund_id})
    return [bool(e["args"]["paused"]) for e in logs]


def breaker_opening(settings: Settings, chain: Chain) -> Publisher:
    """Fund 1 published once, then 4,000 s without a feed answer (stale beyond their 3,900 s,
    the cached prices beyond the hour): the bad cycles before breaker_after run; the next one
    opens the breaker and pulls the ripcord."""
    pub = Publisher.from_settings(settings)
    assert decisions(pub.cycle([1])) == ["published"]
    advance(chain.w3, 4_000)
    for _ in range(settings.breaker_after - 1):
        assert decisions(pub.cycle([1])) == ["failed"]
    assert not chain.state(1).paused
    return pub


def refresh(settings: Settings, chain: Chain) -> None:
    """Every feed answers again, unchanged: the prices are healthy."""
    chain.move(settings, dict.fromkeys(chain.deployment.feeds, Decimal(1)))


RIPCORD_STEPS = [
    pytest.param(failpoints.AFTER_SEND, id="after-send-before-receipt"),
    pytest.param(failpoints.AFTER_RECEIPT, id="after-receipt-before-store"),
    pytest.param(failpoints.AFTER_RECORD, id="after-store-before-accounting"),
]


@pytest.mark.parametrize("step", RIPCORD_STEPS)
def test_crash_while_pulling_the_ripcord_then_restart_lifts_it(
    settings: Settings, chain: Chain, failpoint: Callable[..., None], step: str
) -> None:
    """Fault: the process dies at `step` of the pause transaction the breaker sent. The pause is
    on chain whatever the step; the restart (prices healthy again) must know it as the engine's
    own and lift it — read from the chain and the settled outbox, not a flag the crash skipped."""
    pub = breaker_opening(settings, chain)
    failpoint(step, crash)
    with pytest.raises(SimulatedCrash):
        pub.cycle([1])
    failpoints.disarm()
    assert chain.state(1).paused and pauses(chain, 1) == [True]

    refresh(settings, chain)
    restarted = Publisher.from_settings(settings)
    (o,) = restarted.cycle([1])
    assert o.decision == "published"
    assert not chain.state(1).paused and pauses(chain, 1) == [True, False]
    kinds = sorted(p.kind for p in restarted.store.publications())
    assert kinds == ["nav", "nav", "ripcord", "ripcord"]
    assert_invariants(restarted.store, chain, {1: [FUND1_NAV, FUND1_NAV]})


def test_guardian_pause_after_the_engines_release_and_repause_is_not_lifted(
    settings: Settings, chain: Chain
) -> None:
    """The engine pulls the ripcord; a guardian releases it and pauses the fund again for a reason
    of its own before the next cycle. The breaker then closes: the pause is the guardian's (the
    vault holds it as a guardian's, FLAG_ENGINE_PAUSE clear) and stays."""
    pub = breaker_opening(settings, chain)
    (o,) = pub.cycle([1])
    assert o.decision == "failed" and chain.state(1).paused
    assert chain.state(1).flags & FLAG_ENGINE_PAUSE  # the engine's own ripcord
    guardian = dev_account(settings, DEMO_GUARDIAN_INDEX)
    vault = contract_at(chain.w3, "FundVault", chain.deployment.vault)
    send(chain.w3, guardian, vault.functions.setFundPaused(1, False, "checked"), "release")
    send(chain.w3, guardian, vault.functions.setFundPaused(1, True, "custodian audit"), "pause")

    refresh(settings, chain)
    (o,) = pub.cycle([1])
    assert o.decision == "published"  # the engine publishes while paused; consumers see the flag
    assert chain.state(1).paused and pauses(chain, 1) == [True, False, True]
    assert not chain.state(1).flags & FLAG_ENGINE_PAUSE


def test_stuck_pause_no_longer_wanted_gives_its_nonce_to_the_nav(
    settings: Settings, chain: Chain, failpoint: Callable[..., None]
) -> None:
    """Fault: the process dies after committing the pause, before sending it. By the restart the
    prices are healthy: the pause is obsolete and the fund's new NAV takes its nonce — the fund
    is never paused on chain, one transaction instead of pause, NAV and release."""
    pub = breaker_opening(settings, chain)
    failpoint(failpoints.AFTER_OUTBOX, crash)
    with pytest.raises(SimulatedCrash):
        pub.cycle([1])
    failpoints.disarm()
    (stuck,) = pub.store.unfinished_publications()
    assert stuck.kind == "ripcord" and stuck.status == "signed"

    refresh(settings, chain)
    restarted = Publisher.from_settings(settings)
    (o,) = restarted.cycle([1])
    assert o.decision == "published" and pauses(chain, 1) == []
    assert restarted.store.publication(stuck.id).status == "replaced"
    (landed,) = [p for p in restarted.store.publications(("confirmed",)) if p.nonce == stuck.nonce]
    assert landed.kind == "nav"
    assert_invariants(restarted.store, chain, {1: [FUND1_NAV, FUND1_NAV]})


def test_stuck_pause_still_wanted_is_sent_not_traded_for_an_older_nav(
    settings: Settings, chain: Chain, failpoint: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: two crashes. The first leaves a NAV (ETH +5 %) pending, never committed to a
    transaction; the prices then go stale and the second dies after committing the pause. The
    restart finds the breaker still open: the pause is what it wants, so the pause is sent at
    its nonce (not replaced by the older NAV, which would leave the fund unpaused until another
    pause), then the pending NAV after it — and no second pause."""
    monkeypatch.setenv("NAVPUB_BREAKER_AFTER", "1")
    settings = load_settings()
    pub = Publisher.from_settings(settings)
    assert decisions(pub.cycle([1])) == ["published"]
    chain.move(settings, {"ETH": Decimal("1.05")})
    advance(chain.w3, 60)
    failpoint(failpoints.BEFORE_OUTBOX, crash)
    with pytest.raises(SimulatedCrash):
        pub.cycle([1])
    failpoints.disarm()
    assert pub.last_cycle is not None and pub.last_cycle.funds[0].valuation is not None
    moved_nav = pub.last_cycle.funds[0].valuation.nav
    advance(chain.w3, 4_000)
    failpoint(failpoints.AFTER_OUTBOX, crash)
    with pytest.raises(SimulatedCrash):
        Publisher.from_settings(settings).cycle([1])  # the process after the first crash
    failpoints.disarm()
    (stuck,) = pub.store.unfinished_publications()
    assert stuck.kind == "ripcord" and [r.nav for r in pub.store.pending_reports([1])] == [moved_nav]

    restarted = Publisher.from_settings(settings)
    restarted.cycle([1])
    assert restarted.store.publication(stuck.id).status == "confirmed"
    assert chain.state(1).paused and pauses(chain, 1) == [True]
    assert_invariants(restarted.store, chain, {1: [FUND1_NAV, moved_nav]})


def test_stuck_release_no_longer_wanted_is_cancelled_not_sent(
    settings: Settings, chain: Chain, failpoint: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: the process dies after committing the release of its pause, before sending it; by
    the restart the breaker is open again and no NAV waits. Sending the release would unpause a
    fund that cannot be valued, and leaving it would hold the nonce (nothing after it mined): a
    zero-value transfer takes the nonce instead, and the fund stays paused."""
    monkeypatch.setenv("NAVPUB_BREAKER_AFTER", "1")  # a single bad cycle opens the breaker
    monkeypatch.setenv("NAVPUB_CADENCE_S", "86400")  # an unchanged NAV is skipped, not due
    settings = load_settings()
    pub = breaker_opening(settings, chain)
    (o,) = pub.cycle([1])
    assert o.decision == "failed" and chain.state(1).paused
    refresh(settings, chain)
    failpoint(failpoints.AFTER_OUTBOX, crash)
    with pytest.raises(SimulatedCrash):
        pub.cycle([1])  # healthy again: the breaker closes, the release is committed, and death
    failpoints.disarm()
    (stuck,) = pub.store.unfinished_publications()
    assert stuck.kind == "ripcord" and stuck.status == "signed"

    advance(chain.w3, 4_000)  # the feeds not refreshed: stale again, the cached price too old
    restarted = Publisher.from_settings(settings)
    (o,) = restarted.cycle([1])
    assert o.decision == "failed" and restarted.store.fund_record(1).guard.breaker_open
    assert chain.state(1).paused and pauses(chain, 1) == [True]
    assert restarted.store.publication(stuck.id).status == "replaced"
    (cancel,) = [p for p in restarted.store.publications(("confirmed",)) if p.nonce == stuck.nonce]
    assert cancel.kind == "cancel" and cancel.gas_used == 21_000
    assert restarted.store.unfinished_publications() == []
    assert "ripcord_failed" not in [a["kind"] for a in restarted.store.alerts(1)]


# == 4. the store locked, the disk full ===========================================================


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def one_line_error(err: str) -> str:
    """The CLI's error: exactly one `error:` line and no traceback; returns it."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.fixture
def lock() -> Iterator[Callable[[Path], sqlite3.Connection]]:
    """Takes an exclusive write lock on a database, as another process's long transaction
    would; released (rolled back) when the test ends if the test did not release it."""
    held: list[sqlite3.Connection] = []

    def take(db: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN EXCLUSIVE")
        held.append(conn)
        return conn

    yield take
    for conn in held:
        conn.close()


@pytest.mark.parametrize("when", ["before-the-run", "after-the-send"])
def test_store_locked_publish_fails_cleanly_then_succeeds(
    settings: Settings, chain: Chain, lock: Callable[[Path], sqlite3.Connection],
    failpoint: Callable[..., None], capsys: pytest.CaptureFixture[str], when: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Fault: another connection holds the store's write lock (BEGIN EXCLUSIVE) — from before
    `navpub publish` starts, or taken just after its transaction was sent. The command waits the
    store's busy timeout (NAVPUB_STORE_BUSY_TIMEOUT_MS, here 0.5 s), then fails with one clear
    line (exit 2, no traceback). Once the lock is released the store is intact and the next
    publish ends with the NAV on chain once."""
    first = published_round_one(settings, chain)
    monkeypatch.setenv("NAVPUB_STORE_BUSY_TIMEOUT_MS", "500")
    db = settings.state_dir / DB_FILE
    if when == "before-the-run":
        holder = lock(db)
    else:
        holders: list[sqlite3.Connection] = []
        failpoint(failpoints.AFTER_SEND, lambda: holders.append(lock(db)))
    capsys.readouterr()
    assert main(["publish", "--fund", "1", "--fund", "2"]) == 2
    failpoints.disarm()
    line = one_line_error(capsys.readouterr().err)
    assert "locked" in line and "for more than 0.5 s, NAVPUB_STORE_BUSY_TIMEOUT_MS" in line, line
    if when == "before-the-run":
        assert chain.state(1).round == 1  # nothing was sent
    else:
        (holder,) = holders
        assert chain.state(1).round == 2  # sent before the lock; the store did not hear of it
    holder.rollback()
    holder.close()
    assert integrity(db) == "ok"

    capsys.readouterr()
    assert main(["publish", "--fund", "1", "--fund", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert decisions_of(rows) == (["published"] * 2 if when == "before-the-run" else ["skipped"] * 2)
    store = Store.for_settings(settings)
    expected = {fid: [first[fid], int(r["nav_raw"])] for fid, r in zip((1, 2), rows, strict=True)}
    assert_invariants(store, chain, expected)


def test_store_failing_before_the_outbox_write_leaves_no_nonce_gap(
    settings: Settings, chain: Chain, failpoint: Callable[..., None]
) -> None:
    """Fault: the store fails as the publication is written (the nonce reserved, the transaction
    signed, nothing committed or sent) in a process that keeps running, as the keeper does. Its
    next cycle must use that same nonce: a counter left past it would queue every later
    transaction behind a gap, never mined."""
    first = published_round_one(settings, chain)
    pub = Publisher.from_settings(settings)

    def store_fails() -> None:
        raise StoreError("cannot write the store: database or disk is full")

    failpoint(failpoints.BEFORE_OUTBOX, store_fails)
    with pytest.raises(StoreError):
        pub.cycle([1, 2])
    failpoints.disarm()
    assert pub.store.publications(("signed", "sent")) == [] and chain.state(1).round == 1

    outcomes = pub.cycle([1, 2])  # the same process, the same nonce counter
    assert decisions(outcomes) == ["published"] * 2
    (landed,) = pub.store.publications(("confirmed",))[1:]
    assert landed.nonce == pub.store.publications(("confirmed",))[0].nonce + 1
    assert_invariants(
        pub.store, chain, {fid: [first[fid], o.nav] for fid, o in zip((1, 2), outcomes, strict=True)}
    )


def decisions_of(rows: list[dict[str, Any]]) -> list[str]:
    return [r["decision"] for r in rows]


# `navpub ARGS` with the disk full from the start, or from a failpoint on: from then on no file
# may grow (RLIMIT_FSIZE 0; SIGXFSZ, which would kill the process, ignored), so every write
# fails with EFBIG — to SQLite, what a full disk looks like. Pipes (stdout, stderr) are not files.
DISK_FULL = """
import resource, signal, sys
from publisher import failpoints
from publisher.cli import main

def disk_full():
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
if sys.argv[1] == "start":
    disk_full()
else:
    failpoints.arm(sys.argv[1], disk_full)
sys.exit(main(sys.argv[2:]))
"""

DISK_FULL_FROM = [
    pytest.param("start", 1, id="from-the-start"),
    pytest.param(failpoints.AFTER_OUTBOX, 2, id="after-outbox-write-the-send-goes-out"),
    pytest.param(failpoints.AFTER_SEND, 2, id="after-send-receipt-unrecordable"),
    pytest.param(failpoints.AFTER_RECORD, 2, id="after-store-accounting-cut-short"),
]


@pytest.mark.parametrize(("full_from", "round_after_failure"), DISK_FULL_FROM)
def test_disk_full_publish_fails_cleanly_then_succeeds(
    settings: Settings, chain: Chain, capsys: pytest.CaptureFixture[str], full_from: str,
    round_after_failure: int,
) -> None:  # fmt: skip
    """Fault: the disk is full for `navpub publish` (an OS process), from its start or from a step
    of the publish path on. It fails with one clear line (exit 2, no traceback) — after sending,
    when the disk filled up after the outbox write. With the space back the store passes
    integrity_check and the next publish leaves each NAV on chain exactly once: what was sent is
    settled from its receipt, nothing is sent twice, no report stays pending or sent."""
    first = published_round_one(settings, chain)
    db = settings.state_dir / DB_FILE
    with sqlite3.connect(db) as conn:  # the log checkpointed: the run starts with an empty WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL, full_from, "publish", "--fund", "1", "--fund", "2"],
        capture_output=True, text=True, timeout=60, env=dict(os.environ),
    )  # fmt: skip
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    line = one_line_error(proc.stderr)
    assert "disk I/O error (is the disk full" in line and str(db) in line, line
    assert chain.state(1).round == chain.state(2).round == round_after_failure
    assert integrity(db) == "ok"

    capsys.readouterr()
    assert main(["publish", "--fund", "1", "--fund", "2", "--json"]) == 0  # the space is back
    rows = json.loads(capsys.readouterr().out)
    sent_before = round_after_failure == 2
    assert decisions_of(rows) == ["skipped" if sent_before else "published"] * 2
    store = Store.for_settings(settings)
    expected = {fid: [first[fid], int(r["nav_raw"])] for fid, r in zip((1, 2), rows, strict=True)}
    assert_invariants(store, chain, expected)
