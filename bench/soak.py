"""Soak: the keeper through N simulated hours on its own anvil — a market, a manager, an operator
and faults of every kind — then the invariants of DESIGN.md checked against the chain.

    .venv/bin/python -m bench.soak [--hours 1000] [--seed N] [--json]

The world, hour by hour (15 simulated minutes a tick, four ticks an hour):
- the market: every demo feed answers again each hour (MockV3Aggregator.updateAnswer from anvil
  dev account #3, never the engine's key), each asset on a seeded random walk, now and then a
  volatility shock (6-9 % in an hour: the high-volatility cadence) or a jump of BTC or gold
  (x1.6 with no fund activity: held, then approved by the operator) that reverts hours later;
- the manager (dev account #1) sometimes trades in a fund, at market prices (emergency publish);
- source faults: a feed left stale, two of three stale (cached price, NAV estimated), all three
  stale for two hours (the fund cannot be valued; the breaker and the on-chain ripcord), a feed
  manipulated (+50 %) or answering zero or a negative number, the HTTP price API of BTC (a local
  server, the generic adapter) answering an error page, garbage or a negative price;
- RPC faults, between the engine and anvil (tests.rpcproxy.RpcProxy): HTTP 503s, connection
  resets, refused or lost sends and receipts, a send the node never sees, the RPC down for up to
  three ticks; and the keeper process restarting, or dying right after a broadcast;
- the operator approves a held NAV (publisher.store approve) with some delay.

Why the keeper's tick and not `Publisher.cycle()`: the tick is what runs in production. It
decides which funds are due from the schedule (cadence, high-volatility mode from the cycles'
prices), follows the vault's Traded events for emergency publishes and keeps its cursor in the
store; a bare cycle() would publish every fund every time and exercise none of that. The tick
runs on a fake clock equal to the chain's time (set exactly with evm_setNextBlockTimestamp and
anvil's one-second block interval, so a seed replays the same chain times); the engine itself
reads the chain's clock (NAVPUB_CLOCK=chain) through the faulty RPC, like every other read.

At the end the faults are lifted, the operator approves what is held, the keeper ticks until
the outbox is empty, and the invariants are checked — straight against anvil, never through the
proxy: every hour of every fund has a confirmed NAV or a recorded decision with its reason (or
a recorded tick failure); the hub's records have strictly increasing asOf per fund and as many
as the vault's round, and match the store's confirmed reports one for one; no report is left
pending, approved or sent and no publication signed or sent; the high-water mark on chain and in
the store is the highest NAV published; the gas ledger equals the receipts' gasUsed and every
transaction the engine's key mined is in it; no error escaped a tick but the injected crashes.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
from web3 import Web3
from web3.contract import Contract

from publisher import demo
from publisher._exceptions import NavPubError
from publisher.artifacts import load_artifact
from publisher.chain import connect, contract_at
from publisher.config import Settings, load_settings
from publisher.deploy import deploy_demo
from publisher.deployment import Deployment
from publisher.gas import ledger
from publisher.keeper import Keeper, TickResult
from publisher.keys import dev_account, load_account
from publisher.localchain import REPO_ROOT, AnvilNode, free_port, load_anvil_config, start_anvil
from publisher.localhttp import LocalJsonServer
from publisher.navlog import nav_records
from publisher.publish import Publisher
from publisher.sender import Hooks
from publisher.store import Attempt, Report, Store
from tests.faultkit import FakeTime, SimulatedCrash
from tests.rpcproxy import RpcProxy

HOUR = 3600
TICKS_PER_HOUR = 4  # the high-volatility cadence (900 s): a fund in that mode is due every tick
TICK_S = HOUR // TICKS_PER_HOUR
FUNDS = (1, 2, 3)
ORACLE, MANAGER = 3, 1  # anvil dev accounts of the market and the funds' manager
# Gas for the world's own transactions, given explicitly: with automine off nothing can be
# estimated against transactions not mined yet (a trade needs the mint before it).
GAS = {"updateAnswer": 200_000, "mint": 150_000, "trade": 400_000}
# A receipt wait the engine's (fake) clock lets expire at once: a dropped send is replaced and
# left in the outbox within the tick, without waiting real seconds.
RECEIPT_TIMEOUT_S = 30
# Reports and publications that are done; anything else after the final settle is lost work.
FINAL_REPORTS = {"none", "held", "confirmed", "superseded", "failed"}
FINAL_PUBLICATIONS = {"confirmed", "replaced", "failed", "dropped"}
SETTLE_TICKS = 12

CHECK_EXPLAINED = "every due NAV published or explained"
CHECK_DUPLICATES = "no duplicate round on chain"
CHECK_MATCH = "chain records == confirmed reports"
CHECK_LOST = "no lost report (all final)"
CHECK_HWM = "HWM == max published NAV per share (chain and store)"
CHECK_GAS = "gas ledger == sum of receipts"
CHECK_ESCAPES = "no error escaped a tick"


@dataclass(frozen=True)
class Scenario:
    """How often each thing happens (seeded): per hour, per fund-hour or per tick."""

    p_trade: float = 0.04  # per fund and hour
    p_vol_shock: float = 0.03  # per hour: one asset moves 6-9 %
    p_jump: float = 0.012  # per hour: BTC or XAUT x1.6 with no activity, reverting 2-6 h later
    p_source_fault: float = 0.12  # per hour
    p_rpc_fault: float = 0.08  # per tick
    p_restart: float = 0.006  # per tick: the keeper process restarts between two ticks
    p_crash_mid_publish: float = 0.006  # per tick: the process dies right after a broadcast
    p_approve: float = 0.5  # per tick while a fund has a held NAV


# -- the chain, straight (never through the proxy) ---------------------------------------------


class Anvil:
    """JSON-RPC straight to anvil: the world's transactions and clock, and the final checks."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=30, trust_env=False)
        self.w3 = Web3(Web3.HTTPProvider(url))
        self._ids = iter(range(1, 1 << 62))

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        reply = self.client.post(self.url, json=self._req(method, params)).json()
        if "error" in reply:
            raise RuntimeError(f"anvil {method}: {reply['error']}")
        return reply["result"]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one round trip; results in the calls' order."""
        if not calls:
            return []
        requests = [self._req(m, p) for m, p in calls]
        by_id = {r["id"]: r for r in self.client.post(self.url, json=requests).json()}
        out = []
        for (method, _), req in zip(calls, requests, strict=True):
            reply = by_id[req["id"]]
            if "error" in reply:
                raise RuntimeError(f"anvil {method}: {reply['error']}")
            out.append(reply["result"])
        return out

    def _req(self, method: str, params: list[Any] | None) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}

    def now(self) -> int:
        return int(self.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def mine_at(self, timestamp: int, txs: list[dict[str, Any]]) -> None:
        """`txs` (eth_sendTransaction from unlocked dev accounts) and the clock moved to
        `timestamp`, in one block; every one of them must succeed."""
        # Nonces given explicitly: anvil may handle a batch's calls concurrently, and two of one
        # sender's transactions would then both take its next nonce.
        senders = sorted({tx["from"] for tx in txs})
        counts = self.batch([("eth_getTransactionCount", [a, "pending"]) for a in senders])
        nonces = {a: int(n, 16) for a, n in zip(senders, counts, strict=True)}
        for tx in txs:
            tx["nonce"] = hex(nonces[tx["from"]])
            nonces[tx["from"]] += 1
        self.call("evm_setAutomine", [False])
        try:
            hashes = self.batch([("eth_sendTransaction", [tx]) for tx in txs])
            self.call("evm_setNextBlockTimestamp", [max(timestamp, self.now() + 1)])
            self.call("evm_mine")
        finally:
            self.call("evm_setAutomine", [True])
        receipts = self.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        failed = [
            (tx["to"], tx["data"][:10], r and r["gasUsed"])
            for tx, r in zip(txs, receipts, strict=True)
            if r is None or r["status"] != "0x1"
        ]
        if failed:
            raise RuntimeError(f"the soak's own transactions failed (to, selector, gas used): {failed[:3]}")

    def close(self) -> None:
        self.client.close()


# -- the world: market, manager, HTTP price API ------------------------------------------------


VOLATILITY = {
    "USDC": Decimal("0.0001"),
    "USDT": Decimal("0.0001"),
    "DAI": Decimal("0.0001"),
    "XAUT": Decimal("0.002"),
    "BTC": Decimal("0.004"),
    "ETH": Decimal("0.005"),
}
DEFAULT_VOLATILITY = Decimal("0.006")
HTTP_FAULTS = ("error_page", "garbage", "negative", "truncated", "wrong_field")


@dataclass
class Faults:
    """Source faults in force, each until an hour (exclusive)."""

    silent: dict[tuple[str, int], int] = field(default_factory=dict)  # feeds not answering
    skewed: dict[tuple[str, int], tuple[Decimal, int]] = field(default_factory=dict)  # factor
    absolute: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)  # raw answer
    http: tuple[str, int] | None = None

    def expire(self, hour: int) -> None:
        self.silent = {k: u for k, u in self.silent.items() if u > hour}
        self.skewed = {k: v for k, v in self.skewed.items() if v[1] > hour}
        self.absolute = {k: v for k, v in self.absolute.items() if v[1] > hour}
        if self.http is not None and self.http[1] <= hour:
            self.http = None

    def clear(self) -> None:
        self.silent.clear()
        self.skewed.clear()
        self.absolute.clear()
        self.http = None


class World:
    """Everything outside the engine: prices, feeds, the manager's trades, the HTTP price API."""

    def __init__(
        self,
        anvil: Anvil,
        deployment: Deployment,
        settings: Settings,
        rng: random.Random,
        scenario: Scenario,
        counts: Counter[str],
    ) -> None:
        self.anvil = anvil
        self.d = deployment
        self.rng = rng
        self.scenario = scenario
        self.counts = counts  # faults injected by kind
        self.prices = {a.symbol: a.price_usd for a in demo.ASSETS}
        self.faults = Faults()
        self.reverts: list[tuple[int, str, Decimal]] = []  # (hour, symbol, factor) of pending jumps
        self.oracle = dev_account(settings, ORACLE).address
        self.manager = dev_account(settings, MANAGER).address
        w3 = anvil.w3
        self.feed_abi = w3.eth.contract(abi=load_artifact("MockV3Aggregator").abi)
        self.erc20 = w3.eth.contract(abi=load_artifact("MockERC20").abi)
        self.vault: Contract = contract_at(w3, "FundVault", deployment.vault)
        self.api = LocalJsonServer(self._http_answer, "soak-price-api")

    # -- the HTTP price API (BTC through the generic adapter) ---------------------------------

    def _http_answer(self, path: str) -> tuple[int, bytes] | None:
        if path != "/price/BTC":
            return None
        mode = self.faults.http[0] if self.faults.http else None
        price = self.prices["BTC"].quantize(Decimal("0.01"))
        return {
            None: (200, f'{{"price": "{price}"}}'.encode()),
            "error_page": (503, b""),  # the server's HTML error page
            "garbage": (200, b"<html><body>Bad gateway</body></html>"),
            "negative": (200, f'{{"price": "-{price}"}}'.encode()),
            "truncated": (200, f'{{"price": "{price}'.encode()),
            "wrong_field": (200, f'{{"last": "{price}"}}'.encode()),
        }[mode]

    def sources_toml(self) -> str:
        return (
            "[http_sources.soakapi]\n"
            'adapter = "generic"\n'
            f'base_url = "{self.api.url}"\n'
            "timeout_s = 5\nmax_age_s = 300\n\n"
            "[assets.BTC]\n"
            'http = [{ source = "soakapi", instrument = "BTC", path = "/price/{instrument}", '
            'price_field = "price" }]\n'
        )

    # -- one hour of market ---------------------------------------------------------------------

    def new_hour(self, hour: int) -> None:
        """Faults expire or start, prices walk, shocks and jumps happen."""
        rng, sc = self.rng, self.scenario
        self.faults.expire(hour)
        for symbol in self.prices:
            sigma = VOLATILITY.get(symbol, DEFAULT_VOLATILITY)
            step = Decimal(str(round(rng.gauss(0, 1), 6))) * sigma
            self.prices[symbol] = max(self.prices[symbol] * (1 + step), Decimal("0.0001"))
        if rng.random() < sc.p_vol_shock:
            symbol = rng.choice(["BTC", "ETH", "SOL", "LINK", "XAUT"])
            move = Decimal(str(round(rng.uniform(0.06, 0.09), 4))) * rng.choice([1, -1])
            self.prices[symbol] *= 1 + move
            self.counts["market: volatility shock"] += 1
        for _, symbol, factor in [r for r in self.reverts if r[0] <= hour]:
            self.prices[symbol] *= factor
            self.counts["market: jump reverted"] += 1
        self.reverts = [r for r in self.reverts if r[0] > hour]
        if rng.random() < sc.p_jump and not self.reverts:
            symbol = rng.choice(["BTC", "XAUT"])
            self.prices[symbol] *= Decimal("1.6")
            self.reverts.append((hour + rng.randint(2, 6), symbol, 1 / Decimal("1.6")))
            self.counts["market: jump x1.6"] += 1
        if rng.random() < sc.p_source_fault:
            self._source_fault(hour)

    def _source_fault(self, hour: int) -> None:
        rng = self.rng
        symbol = rng.choice(sorted(self.d.feeds))
        n = len(self.d.feeds[symbol])
        kind = rng.choice(["stale_feed", "stale_majority", "outage", "outlier", "zero", "negative", "http"])
        until = hour + 1
        if kind == "stale_feed":
            self.faults.silent[(symbol, rng.randrange(n))] = until
        elif kind == "stale_majority":
            until += rng.randint(0, 2)
            for i in rng.sample(range(n), 2):
                self.faults.silent[(symbol, i)] = until
        elif kind == "outage":
            until += 1  # two hours: past the cached price's hour, the fund cannot be valued
            for i in range(n):
                self.faults.silent[(symbol, i)] = until
        elif kind == "outlier":
            self.faults.skewed[(symbol, rng.randrange(n))] = (Decimal("1.5"), until)
        elif kind in ("zero", "negative"):
            self.faults.absolute[(symbol, rng.randrange(n))] = (0 if kind == "zero" else -1, until)
        else:
            mode = rng.choice(HTTP_FAULTS)
            self.faults.http = (mode, until)
            kind = f"http {mode}"
        self.counts[f"source: {kind}"] += 1

    def feed_txs(self) -> list[dict[str, Any]]:
        """Every feed that answers this hour, answering."""
        txs = []
        for symbol, feeds in self.d.feeds.items():
            for i, (feed, skew) in enumerate(zip(feeds, demo.FEED_SKEW, strict=True)):
                key = (symbol, i)
                if key in self.faults.silent:
                    continue
                if key in self.faults.absolute:
                    answer = self.faults.absolute[key][0]
                else:
                    factor = self.faults.skewed[key][0] if key in self.faults.skewed else Decimal(1)
                    answer = demo.feed_answer(self.prices[symbol] * factor, feed.decimals, skew)
                data = self.feed_abi.encode_abi("updateAnswer", [answer])
                txs.append(self._tx(self.oracle, feed.address, data, GAS["updateAnswer"]))
        return txs

    # -- the manager ------------------------------------------------------------------------------

    def trade_txs(self, fund_id: int) -> list[dict[str, Any]]:
        """The manager swaps $1k-20k of one holding for another of the fund's assets at market
        prices (a mint of what it buys first: the mock tokens are open)."""
        rng = self.rng
        by_address = {t.address.lower(): s for s, t in self.d.tokens.items()}
        assets, amounts = self.vault.functions.getAllHoldings(fund_id).call()
        values = {}
        for address, amount in zip(assets, amounts, strict=True):
            symbol = by_address[address.lower()]
            values[symbol] = Decimal(amount).scaleb(-self.d.tokens[symbol].decimals) * self.prices[symbol]
        usd = Decimal(rng.randint(1_000, 20_000))
        sellable = sorted(s for s, v in values.items() if v >= 3 * usd)
        if len(values) < 2 or not sellable:
            return []
        sell = rng.choice(sellable)
        buy = rng.choice(sorted(s for s in values if s != sell))
        t_sell, t_buy = self.d.tokens[sell], self.d.tokens[buy]
        amount_sell = int((usd / self.prices[sell]).scaleb(t_sell.decimals))
        amount_buy = int((usd / self.prices[buy]).scaleb(t_buy.decimals))
        if amount_sell == 0 or amount_buy == 0:
            return []
        mint = self.erc20.encode_abi("mint", [self.manager, amount_buy])
        trade = self.vault.encode_abi(
            "trade", [fund_id, t_sell.address, amount_sell, t_buy.address, amount_buy]
        )
        self.counts["manager: trade"] += 1
        return [
            self._tx(self.manager, t_buy.address, mint, GAS["mint"]),
            self._tx(self.manager, self.vault.address, trade, GAS["trade"]),
        ]

    @staticmethod
    def _tx(sender: str, to: str, data: str, gas: int) -> dict[str, Any]:
        return {"from": sender, "to": Web3.to_checksum_address(to), "data": data, "gas": hex(gas)}

    def close(self) -> None:
        self.api.close()


# -- the engine's process ----------------------------------------------------------------------


@dataclass
class CrashSwitch:
    """Armed, the next broadcast is the process's last act (between send and receipt)."""

    armed: bool = False

    def __call__(self, _: Attempt) -> None:
        if self.armed:
            self.armed = False
            raise SimulatedCrash


# -- figures -----------------------------------------------------------------------------------


@dataclass
class Figures:
    hours: int
    seed: int
    ticks: int = 0  # every 15 simulated minutes, the final settle included
    cycles: int = 0  # ticks that ran a publish cycle
    failed_ticks: int = 0  # failed (RPC unreachable, ...), crashed, or no process could start
    navs_published: int = 0  # NAV updates on chain (the hub's records)
    transactions: int = 0  # the engine's mined transactions (NAV batches, single NAVs, ripcords)
    decisions: dict[str, int] = field(default_factory=dict)  # per fund and cycle
    hours_accounted: dict[str, int] = field(default_factory=dict)  # per fund-hour: how
    faults: dict[str, int] = field(default_factory=dict)  # injected, by kind
    bad_inputs_rejected: int = 0  # source answers the engine refused (deviating, invalid, failed)
    holds: int = 0  # held decisions (jumps with no activity)
    approvals: int = 0
    restarts: int = 0
    escaped_errors: dict[str, int] = field(default_factory=dict)  # anything but NavPubError out of a tick
    duplicates: int = 0
    lost_reports: int = 0
    gas_used: int = 0
    invariant_checks_passed: int = 0
    invariant_checks: dict[str, str] = field(default_factory=dict)  # name -> "ok" or what failed
    dropped_but_mined: int = 0  # publications marked dropped whose own transaction is on chain
    wall_s: float = 0.0
    sim_wall_s: float = 0.0  # the simulated hours alone (no anvil start, deploy or checks)

    @property
    def ok(self) -> bool:
        return all(v == "ok" for v in self.invariant_checks.values())


# -- the soak -------------------------------------------------------------------------------------


class Soak:
    def __init__(
        self,
        node: AnvilNode,
        proxy: RpcProxy,
        state: Path,
        hours: int,
        seed: int,
        scenario: Scenario,
        progress: Callable[[str], None],
    ) -> None:
        self.hours = hours
        # One stream each for the world, the faults and the operator: what the product decides
        # (a hold the operator then approves) never shifts the market or the faults of a seed.
        self.rng = random.Random(f"{seed}:world")
        self.fault_rng = random.Random(f"{seed}:faults")
        self.operator_rng = random.Random(f"{seed}:operator")
        self.scenario = scenario
        self.progress = progress
        self.proxy = proxy
        self.anvil = Anvil(node.rpc_url)
        self.figures = Figures(hours=hours, seed=seed)
        self.faults: Counter[str] = Counter()
        base = {"chain_id": node.config.chain_id, "state_dir": state, "anvil_env": REPO_ROOT / "anvil.env"}
        deployer_settings = load_settings(rpc_url=node.rpc_url, **base)
        account = load_account(deployer_settings)
        self.deployment = deploy_demo(connect(deployer_settings), deployer_settings, account, account.address)
        self.engine_address = account.address
        self.world = World(self.anvil, self.deployment, deployer_settings, self.rng, scenario, self.faults)
        sources = state / "soak-sources.toml"
        sources.write_text(self.world.sources_toml(), encoding="utf-8")
        self.settings = load_settings(
            rpc_url=proxy.url,
            clock="chain",
            retry_backoff_s=0,
            sources_file=sources,
            receipt_timeout_s=RECEIPT_TIMEOUT_S,
            receipt_poll_s=1,
            rpc_timeout_s=10,
            **base,
        )
        # Every block one second after its parent, and each tick's block at an exact time: the
        # chain's clock does not depend on how fast this machine is, so a seed replays exactly.
        self.anvil.call("anvil_setBlockTimestampInterval", [1])
        self.start_nonce = int(
            self.anvil.call("eth_getTransactionCount", [self.engine_address, "latest"]), 16
        )
        self.start_block = int(self.anvil.call("eth_blockNumber"), 16)
        self.t0 = self.anvil.now() + TICK_S
        self.now = self.t0
        self.time = FakeTime()
        self.crash = CrashSwitch()
        self.keeper: Keeper | None = self.start_keeper()
        assert self.keeper is not None  # no fault is armed yet
        self.keeper.follower.poll()  # the demo's deposits are history, not news
        self.store = Store.for_settings(self.settings)
        self.down_until: int | None = None  # tick index at which the RPC comes back
        self.hour_starts: list[int] = []
        self.unstarted: list[int] = []  # ticks at which no keeper process could start (RPC down)
        self._seen_cycle: int | None = None

    # -- the keeper's process ----------------------------------------------------------------

    def start_keeper(self) -> Keeper | None:
        """A (re)started keeper process; None while it cannot even start (RPC down)."""
        try:
            pub = Publisher.from_settings(
                self.settings,
                hooks=Hooks(after_broadcast=self.crash),
                monotonic=self.time.monotonic,
                sleep=self.time.sleep,
            )
        except NavPubError:
            return None
        keeper = Keeper(pub, clock=lambda: self.now)
        return keeper

    def tick(self) -> TickResult | None:
        """One tick of the keeper's process, started first if it is not running."""
        self.figures.ticks += 1
        if self.keeper is None:
            self.keeper = self.start_keeper()
            if self.keeper is None:
                self.figures.failed_ticks += 1
                self.unstarted.append(self.now)  # as a supervisor's log would show it
                return None
        try:
            result = self.keeper.tick()
        except SimulatedCrash:
            self.keeper = None  # the process is gone; the next tick starts a new one
            self.figures.failed_ticks += 1
            self.figures.restarts += 1
            return None
        except Exception as exc:
            # A tick must only ever fail with the product's own errors (it logs and alerts
            # those, and goes on); anything else would end the keeper's process.
            name = f"{type(exc).__name__} from {_origin(exc)}"
            self.figures.escaped_errors[name] = self.figures.escaped_errors.get(name, 0) + 1
            self.keeper = None
            self.figures.failed_ticks += 1
            self.figures.restarts += 1
            return None
        if result.error:
            self.figures.failed_ticks += 1
        if result.outcomes:
            self.figures.cycles += 1
            for o in result.outcomes:
                self.figures.decisions[o.decision] = self.figures.decisions.get(o.decision, 0) + 1
                self.figures.holds += o.decision == "held"
            cycle = self.keeper.publisher.last_cycle
            if cycle is not None and id(cycle) != self._seen_cycle:
                self._seen_cycle = id(cycle)
                self.figures.bad_inputs_rejected += sum(
                    1 for agg in cycle.aggregates.values() for v in agg.verdicts if v.status != "used"
                )
        return result

    # -- faults on the RPC ---------------------------------------------------------------------

    def rpc_fault(self, index: int) -> None:
        p = self.proxy
        if self.down_until is not None:
            if index < self.down_until:
                return
            p.up()
            self.down_until = None
        p.clear_faults()
        rng = self.fault_rng
        if rng.random() < self.scenario.p_restart and self.keeper is not None:
            self.keeper = None
            self.figures.restarts += 1
            self.faults["process: restart"] += 1
        if rng.random() < self.scenario.p_crash_mid_publish:
            self.crash.armed = True
            self.faults["process: crash after broadcast"] += 1
        if rng.random() >= self.scenario.p_rpc_fault:
            return
        kind = rng.choice(["503", "reset", "send_refused", "receipt_lost", "send_dropped", "down"])
        n = rng.randint(1, 4)
        if kind == "503":
            p.fail_next(n, status=503)
        elif kind == "reset":
            p.reset_next(n)
        elif kind == "send_refused":
            p.fail_next(n, status=502, methods="eth_sendRawTransaction")
        elif kind == "receipt_lost":
            p.reset_next(n, methods="eth_getTransactionReceipt")
        elif kind == "send_dropped":
            p.drop_method("eth_sendRawTransaction")  # this tick only: the node never sees a send
        else:
            p.down()
            self.down_until = index + rng.randint(1, 3)
        self.faults[f"rpc: {kind}"] += 1

    # -- the operator --------------------------------------------------------------------------

    def operator(self, approve_all: bool = False) -> None:
        for fund_id in FUNDS:
            if self.store.held_report(fund_id) is None:
                continue
            if approve_all or self.operator_rng.random() < self.scenario.p_approve:
                self.store.approve(fund_id, "soak operator", self.now)
                self.figures.approvals += 1

    # -- the run -------------------------------------------------------------------------------

    def step(self, index: int, txs: list[dict[str, Any]]) -> None:
        self.now = self.t0 + index * TICK_S
        self.anvil.mine_at(self.now, txs)

    def run(self) -> Figures:
        started = time.perf_counter()
        for hour in range(self.hours):
            for k in range(TICKS_PER_HOUR):
                index = hour * TICKS_PER_HOUR + k
                txs: list[dict[str, Any]] = []
                if k == 0:
                    self.world.new_hour(hour)
                    txs += self.world.feed_txs()
                for fund_id in FUNDS:
                    if self.rng.random() < self.scenario.p_trade / TICKS_PER_HOUR:
                        txs += self.world.trade_txs(fund_id)
                self.step(index, txs)
                if k == 0:
                    self.hour_starts.append(self.now)
                self.rpc_fault(index)
                self.tick()
                self.operator()
            if self.progress and (hour + 1) % 50 == 0:
                self.progress(
                    f"hour {hour + 1}/{self.hours}: {self.figures.ticks} ticks, "
                    f"{time.perf_counter() - started:.0f} s"
                )
        self.figures.sim_wall_s = round(time.perf_counter() - started, 1)
        self.settle(self.hours * TICKS_PER_HOUR)
        self.figures.faults = dict(sorted(self.faults.items()))
        self.check()
        return self.figures

    def settle(self, first: int) -> None:
        """Faults lifted, feeds fresh, held NAVs approved; tick until the outbox is empty."""
        self.hour_starts.append(self.t0 + first * TICK_S)  # the end of the last simulated hour
        if self.down_until is not None:
            self.proxy.up()
            self.down_until = None
        self.proxy.clear_faults()
        self.crash.armed = False
        self.world.faults.clear()
        for i in range(SETTLE_TICKS):
            index = first + i
            self.step(index, self.world.feed_txs())
            self.operator(approve_all=True)
            self.tick()
            busy = self.store.unfinished_publications() or self.store.pending_reports()
            if i >= 1 and not busy and not any(self.store.held_report(f) for f in FUNDS):
                break

    # -- the invariants ------------------------------------------------------------------------

    def check(self) -> None:
        fig = self.figures
        w3 = self.anvil.w3
        vault = contract_at(w3, "FundVault", self.deployment.vault)
        hub = contract_at(w3, "AnalyticsHub", self.deployment.hub)
        records = nav_records(hub, None, self.start_block)
        reports = self.store.reports(limit=10**9)
        pubs = self.store.publications()
        checks: dict[str, str] = {}

        # 1. Every due NAV published or explained, per fund and simulated hour.
        alerts = [a for a in self.store.alerts(limit=10**9) if a["kind"] == "keeper_tick_failed"]
        starts = self.hour_starts

        def hour_of(t: int) -> int | None:
            h = bisect_right(starts, t) - 1
            return h if 0 <= h < self.hours else None

        by_hour: dict[tuple[int, int], list[Report]] = {}
        for r in reports:
            if (h := hour_of(r.created_at)) is not None:
                by_hour.setdefault((h, r.fund_id), []).append(r)
        failed_hours = {h for a in alerts if (h := hour_of(a["created_at"])) is not None}
        unstarted_hours = {h for t in self.unstarted if (h := hour_of(t)) is not None}
        names = {"skip": "skipped", "hold": "held", "fail": "failed"}
        how: Counter[str] = Counter()
        unexplained = []
        for h in range(self.hours):
            for fund_id in FUNDS:
                mine = by_hour.get((h, fund_id), [])
                decided = [r for r in mine if r.decision in names and r.reason]
                if any(r.status == "confirmed" for r in mine):
                    how["published"] += 1
                elif decided:
                    how[names[decided[0].decision]] += 1
                elif any(r.status in ("superseded", "failed") for r in mine):
                    how["sent, then superseded by a newer NAV or failed with its error"] += 1
                elif h in failed_hours:
                    how["tick failed (alert recorded)"] += 1
                elif h in unstarted_hours:
                    how["keeper could not start (RPC down)"] += 1
                else:
                    unexplained.append((h, fund_id))
        fig.hours_accounted = dict(how)
        checks[CHECK_EXPLAINED] = (
            "ok" if not unexplained else f"{len(unexplained)} fund-hours unexplained, e.g. {unexplained[:5]}"
        )

        # 2. No duplicate round: strictly increasing asOf per fund, as many records as rounds.
        problems = []
        for fund_id in FUNDS:
            mine = [r for r in records if r.fund_id == fund_id]
            stamps = [r.timestamp for r in mine]
            fig.duplicates += sum(1 for a, b in pairwise(stamps) if b <= a)
            rnd = vault.functions.navState(fund_id).call()[2]
            if rnd != len(mine):
                problems.append(f"fund {fund_id}: round {rnd} but {len(mine)} records")
        if fig.duplicates:
            problems.append(f"{fig.duplicates} records not newer than the one before")
        checks[CHECK_DUPLICATES] = "ok" if not problems else "; ".join(problems)
        fig.navs_published = len(records)

        # Publications the store calls dropped although one of their own transactions was mined.
        dropped = [(p, a.tx_hash) for p in pubs if p.status == "dropped" for a in p.attempts]
        answers = self.anvil.batch([("eth_getTransactionReceipt", [h]) for _, h in dropped])
        fig.dropped_but_mined = len({p.id for (p, _), rc in zip(dropped, answers, strict=True) if rc})

        # 3. The chain's records are the store's confirmed reports, one for one.
        on_chain = Counter((r.fund_id, r.timestamp, r.nav) for r in records)
        confirmed = Counter((r.fund_id, r.as_of, r.nav) for r in reports if r.status == "confirmed")
        missing, extra = on_chain - confirmed, confirmed - on_chain
        checks[CHECK_MATCH] = (
            "ok"
            if not missing and not extra
            else f"on chain, not confirmed in the store: {list(missing)[:3]}; "
            f"confirmed, not on chain: {list(extra)[:3]}"
        )

        # 4. No lost report after the final settle.
        stuck = [(r.id, r.status) for r in reports if r.status not in FINAL_REPORTS]
        open_pubs = [(p.id, p.status) for p in pubs if p.status not in FINAL_PUBLICATIONS]
        fig.lost_reports = len(stuck)
        checks[CHECK_LOST] = (
            "ok" if not stuck and not open_pubs else f"reports {stuck[:5]}, publications {open_pubs[:5]}"
        )

        # 5. The high-water mark is the highest NAV per share published, on chain and in the store.
        problems = []
        stored = self.store.high_water_marks()
        for fund_id in FUNDS:
            per_share = [r.nav_per_share for r in records if r.fund_id == fund_id]
            hwm = vault.functions.navState(fund_id).call()[5]
            if per_share and not hwm == stored.get(fund_id) == max(per_share):
                problems.append(
                    f"fund {fund_id}: chain {hwm}, store {stored.get(fund_id)}, max {max(per_share)}"
                )
        checks[CHECK_HWM] = "ok" if not problems else "; ".join(problems)

        # 6. The gas ledger is the receipts' gas, and holds every transaction the engine mined.
        mined = [p for p in pubs if p.tx_hash is not None and p.status in ("confirmed", "failed")]
        receipts = self.anvil.batch([("eth_getTransactionReceipt", [p.tx_hash]) for p in mined])
        problems = []
        for p, rc in zip(mined, receipts, strict=True):
            gas, price = int(rc["gasUsed"], 16), int(rc["effectiveGasPrice"], 16)
            if (gas, gas * price) != (p.gas_used, p.cost_wei):
                problems.append(f"publication {p.id}: ledger {p.gas_used} gas, receipt {gas}")
        report = ledger(pubs)
        receipts_gas = sum(
            int(rc["gasUsed"], 16) for p, rc in zip(mined, receipts, strict=True) if p.status == "confirmed"
        )
        if report.gas != receipts_gas:
            problems.append(f"ledger total {report.gas} != receipts {receipts_gas}")
        end_nonce = int(self.anvil.call("eth_getTransactionCount", [self.engine_address, "latest"]), 16)
        fig.transactions = end_nonce - self.start_nonce
        unknown = fig.transactions - len(mined)
        if unknown:
            problems.append(
                f"the engine mined {fig.transactions} transactions, the ledger knows {len(mined)}"
            )
        fig.gas_used = report.gas
        # The ledger as the product reads it (`navpub gas`, /api/gas, the keeper's metrics).
        shown = ledger(self.store.publications()).gas
        if shown != report.gas:
            problems.append(f"`navpub gas` reads {shown:,} gas of the store's {report.gas:,}")
        checks[CHECK_GAS] = "ok" if not problems else "; ".join(problems[:5])

        # 7. Nothing but the product's own errors (and the injected crashes) left a tick.
        checks[CHECK_ESCAPES] = (
            "ok" if not fig.escaped_errors else f"{sum(fig.escaped_errors.values())} escaped"
        )
        fig.invariant_checks = checks
        fig.invariant_checks_passed = sum(v == "ok" for v in checks.values())


def _origin(exc: BaseException) -> str:
    """Where in the product an exception left from: the innermost publisher/ frame."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/publisher/" in f.filename]
    if not frames:
        return "outside publisher/"
    f = frames[-1]
    return f"publisher/{f.filename.rsplit('/publisher/', 1)[1]}:{f.lineno} ({f.name})"


@contextmanager
def own_anvil() -> Iterator[AnvilNode]:
    config = load_anvil_config(REPO_ROOT / "anvil.env").model_copy(update={"port": free_port()})
    with tempfile.TemporaryDirectory(prefix="navpub-soak-anvil-") as tmp:
        # Past states in memory only, the last 256 (the engine reads at the latest block; a revert
        # reason replays one block back): a full history on disk grew ~40 GB over 1,000 hours.
        node = start_anvil(config, log_path=Path(tmp) / "anvil.log", extra_args=("--prune-history", "256"))
        try:
            yield node
        finally:
            node.stop()


def run(
    hours: int = 1000,
    seed: int = 1,
    scenario: Scenario | None = None,
    progress: Callable[[str], None] | None = None,
    keep_state: Path | None = None,
) -> Figures:
    """The soak on its own anvil (free port, temporary state directory, always stopped);
    `keep_state` keeps the store and state files there instead, to look into afterwards."""
    started = time.perf_counter()
    with (
        own_anvil() as node,
        RpcProxy(node.rpc_url) as proxy,
        tempfile.TemporaryDirectory(prefix="navpub-soak-") as tmp,
    ):
        soak = Soak(
            node,
            proxy,
            keep_state or Path(tmp) / "state",
            hours,
            seed,
            scenario or Scenario(),
            progress or (lambda _: None),
        )
        try:
            figures = soak.run()
        finally:
            soak.world.close()
            soak.anvil.close()
    figures.wall_s = round(time.perf_counter() - started, 1)
    return figures


def render(f: Figures) -> str:
    lines = [
        f"soak: {f.hours} simulated hours (seed {f.seed}) in {f.wall_s:.0f} s wall "
        f"({f.sim_wall_s:.0f} s simulating)",
        f"  ticks {f.ticks:,}   publish cycles {f.cycles:,}   failed ticks {f.failed_ticks:,}   "
        f"restarts {f.restarts}",
        f"  NAVs published {f.navs_published:,} in {f.transactions:,} transactions, {f.gas_used:,} gas",
        f"  decisions: {', '.join(f'{k} {v:,}' for k, v in sorted(f.decisions.items()))}",
        f"  fund-hours: {', '.join(f'{k} {v:,}' for k, v in sorted(f.hours_accounted.items()))}",
        f"  holds {f.holds:,}, approvals {f.approvals:,}; bad inputs rejected {f.bad_inputs_rejected:,}",
        "  faults injected:",
        *(f"    {k:<36}{v:>6,}" for k, v in f.faults.items()),
        f"  duplicates {f.duplicates}   lost reports {f.lost_reports}   "
        f"escaped errors {sum(f.escaped_errors.values())}",
        f"  invariant checks passed {f.invariant_checks_passed} of {len(f.invariant_checks)}:",
        *(
            f"    {'ok  ' if v == 'ok' else 'FAIL'} {k}{'' if v == 'ok' else ': ' + v}"
            for k, v in f.invariant_checks.items()
        ),
    ]
    if f.escaped_errors:
        lines += ["  escaped errors:", *(f"    {v:>4} x {k}" for k, v in f.escaped_errors.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="show the engine's log (warnings and up)")
    parser.add_argument("--hours", type=int, default=1000, help="simulated hours (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the scenario (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not args.verbose:
        # Thousands of injected faults make thousands of warnings; the figures say what happened.
        logging.getLogger("navpub").setLevel(logging.CRITICAL)
    figures = run(args.hours, args.seed, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({**asdict(figures), "ok": figures.ok}, indent=2) if args.json else render(figures))
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
