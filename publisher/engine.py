"""One NAV cycle: snapshot → price → value → guard → record.

The I/O is here and at the edges it calls (chain reads, HTTP sources, the store); the
decisions are the pure functions of price.py, value.py and guard.py. Nothing is sent on
chain here: a NAV the guard lets through is stored as ``pending`` for the publisher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from web3 import Web3
from web3.contract import Contract

from publisher._exceptions import ConfigError
from publisher.chain import contract_at
from publisher.config import Settings
from publisher.deployment import Deployment, load_deployment
from publisher.guard import Alert, Decision, GuardRules, Trigger, decide
from publisher.money import usd_str
from publisher.price import (
    Aggregate,
    AssetPrice,
    PriceRules,
    PriceUnavailable,
    SourceVerdict,
    aggregate,
    resolve,
    to_cache,
)
from publisher.quotes import SourceFailure, SourceResult
from publisher.registry import Registry, build_registry, load_sources_file
from publisher.rpc import RpcPool
from publisher.snapshot import FLAG_ESTIMATED, ChainSnapshot, FundSnapshot, NavOnChain, read_snapshot
from publisher.sources.http import fetch_quotes
from publisher.sources.offexchange import OffExchangeAccount, fetch_offexchange
from publisher.sources.onchain import read_onchain_quotes
from publisher.store import NewReport, Store
from publisher.value import UnknownAsset, Valuation, value_fund

log = logging.getLogger("navpub.engine")

Clock = Callable[[], int]
T = TypeVar("T")


def wall_clock() -> int:
    return int(time.time())


@dataclass(frozen=True)
class ChainClock:
    """The latest block's time (NAVPUB_CLOCK=chain): for local chains whose time is moved by
    evm_increaseTime (demo, tests). Each reading is an RPC round trip."""

    pool: RpcPool

    def __call__(self) -> int:
        return int(self.pool.w3.eth.get_block("latest")["timestamp"])


def price_rules(s: Settings) -> PriceRules:
    return PriceRules(s.min_confidence, s.max_deviation_bps, s.cache_max_age_s)


def guard_rules(s: Settings) -> GuardRules:
    return GuardRules(
        jump_threshold_bps=s.jump_threshold_bps,
        skip_change_bps=s.skip_change_bps,
        heartbeat_s=s.cadence_s,
        jump_baseline_max_age_s=s.jump_baseline_max_age_s,
        jump_hourly_bps=s.jump_hourly_bps,
        jump_max_bps=s.jump_max_bps,
        breaker_after=s.breaker_after,
    )


@dataclass(frozen=True)
class FundResult:
    """What one cycle concluded for one fund."""

    fund_id: int
    snapshot: FundSnapshot
    valuation: Valuation | None
    failure: Alert | None
    decision: Decision
    report_id: int | None


@dataclass(frozen=True)
class CycleResult:
    block_number: int
    now: int
    trigger: Trigger
    aggregates: Mapping[str, Aggregate]
    prices: Mapping[str, AssetPrice]
    unpriced: Mapping[str, PriceUnavailable]
    fx: Mapping[str, AssetPrice | PriceUnavailable]
    funds: Sequence[FundResult]
    offexchange: Mapping[int, OffExchangeAccount | SourceFailure] = field(default_factory=dict)
    # Seconds (time.perf_counter) spent in each stage: "snapshot" (the chain read), "price"
    # (off-exchange statements, on-chain quotes, HTTP, aggregation), "value" (valuation, guard,
    # the reports stored). Publishing happens after the engine, in publish.py.
    timings: Mapping[str, float] = field(default_factory=dict)


@dataclass
class NavEngine:
    """Everything a cycle needs; build it with :meth:`from_settings`."""

    settings: Settings
    pool: RpcPool
    deployment: Deployment
    registry: Registry
    store: Store
    clock: Clock

    @classmethod
    def from_settings(cls, settings: Settings) -> NavEngine:
        pool = RpcPool.from_settings(settings)
        w3 = pool.call(lambda w3: w3, attempts=settings.publish_attempts, backoff_s=settings.retry_backoff_s,
                       what="connect")  # fmt: skip
        deployment = load_deployment(settings, w3)
        sources = load_sources_file(settings.sources_file) if settings.sources_file else None
        return cls(
            settings=settings,
            pool=pool,
            deployment=deployment,
            registry=build_registry(deployment, sources),
            store=Store.for_settings(settings),
            clock=ChainClock(pool) if settings.clock == "chain" else wall_clock,
        )

    @property
    def w3(self) -> Web3:
        """The client of the RPC URL in use (the pool moves on after a failure)."""
        return self.pool.w3

    @property
    def vault(self) -> Contract:
        return contract_at(self.w3, "FundVault", self.deployment.vault)

    @property
    def router(self) -> Contract:
        return contract_at(self.w3, "PriceOracleRouter", self.deployment.router)

    def now_at(self, block_time: int) -> int:
        """The cycle's time when the latest block read has time `block_time`: the clock's,
        never before that block. The chain clock would only read that block's time again."""
        return block_time if isinstance(self.clock, ChainClock) else max(self.clock(), block_time)

    def rpc_call(self, fn: Callable[[], T], what: str) -> T:
        """fn() with the settings' retries on transient RPC errors (next URL after each)."""
        s = self.settings
        return self.pool.call(
            lambda _w3: fn(), attempts=s.publish_attempts, backoff_s=s.retry_backoff_s, what=what
        )

    # -- prices ---------------------------------------------------------------------------

    def gather(
        self, symbols: Sequence[str], block: int, block_time: int, now: int
    ) -> tuple[dict[str, list[SourceResult]], dict[str, list[SourceResult]]]:
        """Every source's answer for `symbols` (one chain batch, HTTP sources concurrently)
        and every FX source's answer, grouped by asset and by currency."""
        onchain = [
            (s, a.address, a.router_feeds, a.router)
            for s in symbols
            if (a := self.registry.assets.get(s)) is not None and a.address
        ]
        results = read_onchain_quotes(self.w3, self.router, onchain, block, block_time)
        for s in symbols:
            results.setdefault(s, [])
        refs = [r for s in symbols if s in self.registry.assets for r in self.registry.assets[s].http]
        refs += [r for fx_refs in self.registry.fx.values() for r in fx_refs]
        fx: dict[str, list[SourceResult]] = {cur: [] for cur in self.registry.fx}
        for r in asyncio.run(fetch_quotes(self.registry.http_sources, refs, now=lambda: now)) if refs else []:
            if r.asset.startswith("FX:"):
                fx[r.asset.removeprefix("FX:")].append(r)
            else:
                results[r.asset].append(r)
        return results, fx

    def offexchange_accounts(
        self, fund_ids: Sequence[int], now: int
    ) -> dict[int, OffExchangeAccount | SourceFailure]:
        """The off-exchange accounts of those funds that have one, fetched concurrently."""
        funds = [f for f in fund_ids if f in self.registry.offexchange]
        if not funds:
            return {}

        async def fetch_all() -> list[OffExchangeAccount | SourceFailure]:
            async with httpx.AsyncClient() as client:
                return await asyncio.gather(
                    *(
                        fetch_offexchange(self.registry.offexchange[f], now=lambda: now, client=client)
                        for f in funds
                    )
                )

        accounts: dict[int, OffExchangeAccount | SourceFailure] = {}
        for f, acc in zip(funds, asyncio.run(fetch_all()), strict=True):
            limit = self.registry.offexchange[f].max_age_s
            if isinstance(acc, OffExchangeAccount) and not 0 <= now - acc.observed_at <= limit:
                age = now - acc.observed_at
                when = f"{age} s old (limit {limit} s)" if age > 0 else f"dated {-age} s in the future"
                acc = SourceFailure("*", acc.source, f"statement is {when}")
            accounts[f] = acc
        return accounts

    def price_assets(
        self, results: Mapping[str, Sequence[SourceResult]], now: int
    ) -> tuple[dict[str, Aggregate], dict[str, AssetPrice], dict[str, PriceUnavailable]]:
        rules = price_rules(self.settings)
        cached = self.store.cached_prices(results)
        aggs, prices, unpriced = {}, {}, {}
        for symbol, res in results.items():
            aggs[symbol] = agg = aggregate(symbol, res, now, rules)
            try:
                prices[symbol] = resolve(agg, cached.get(symbol), now, rules)
            except PriceUnavailable as exc:
                unpriced[symbol] = exc
        return aggs, prices, unpriced

    def price(self, symbol: str) -> tuple[Aggregate, AssetPrice | PriceUnavailable]:
        """One asset's (or "FX:ZAR"'s) sources, aggregate and usable price, read now."""
        block = self.w3.eth.get_block("latest")
        now = self.now_at(int(block["timestamp"]))
        currency = symbol.removeprefix("FX:") if symbol.startswith("FX:") else None
        if currency is not None:
            if currency not in self.registry.fx:
                known = ", ".join(f"FX:{c}" for c in sorted(self.registry.fx)) or "none configured"
                raise ConfigError("asset", f"no FX source for {symbol!r} ({known})")
            _, fx = self.gather([], int(block["number"]), int(block["timestamp"]), now)
            results = {symbol: fx[currency]}
        else:
            self.registry.get(symbol)
            results, _ = self.gather([symbol], int(block["number"]), int(block["timestamp"]), now)
        aggs, prices, unpriced = self.price_assets(results, now)
        return aggs[symbol], prices.get(symbol) or unpriced[symbol]

    # -- the cycle -----------------------------------------------------------------------

    def run(
        self,
        fund_ids: Sequence[int] | None = None,
        trigger: Trigger = "scheduled",
        *,
        persist: bool = True,
        extra_symbols: Sequence[str] = (),
        emergency: Collection[int] = (),
    ) -> CycleResult:
        """One cycle for `fund_ids` (default: every fund). With persist=False nothing is
        written (the `navpub nav` preview). `extra_symbols` are priced too (the native coin,
        to put gas in USD)."""
        t0 = time.perf_counter()
        snap = read_snapshot(self.w3, self.vault, fund_ids)
        now = self.now_at(snap.block_timestamp)
        t1 = time.perf_counter()
        symbols_by_address = self.registry.symbols_by_address()
        accounts = self.offexchange_accounts([f.fund_id for f in snap.funds], now)
        wanted = {symbols_by_address[h.asset.lower()] for f in snap.funds for h in f.holdings
                  if h.amount > 0 and h.asset.lower() in symbols_by_address}  # fmt: skip
        wanted |= {b.asset for acc in accounts.values() if isinstance(acc, OffExchangeAccount)
                   for b in acc.balances if b.asset in self.registry.assets}  # fmt: skip
        wanted |= {x for x in extra_symbols if x in self.registry.assets}
        results, fx_results = self.gather(sorted(wanted), snap.block_number, snap.block_timestamp, now)
        aggs, prices, unpriced = self.price_assets(results, now)
        fx: dict[str, AssetPrice | PriceUnavailable] = {}
        if fx_results:
            fx_aggs, fx_prices, fx_unpriced = self.price_assets(
                {f"FX:{c}": r for c, r in fx_results.items()}, now
            )
            fx = {k.removeprefix("FX:"): v for k, v in {**fx_prices, **fx_unpriced}.items()}
            aggs.update(fx_aggs)
            prices_for_cache = list(fx_prices.values())
        else:
            prices_for_cache = []
        if persist:
            self.store.save_prices([c for p in [*prices.values(), *prices_for_cache] if (c := to_cache(p))])
        t2 = time.perf_counter()
        funds = [
            self._fund(
                f,
                snap,
                symbols_by_address,
                prices,
                unpriced,
                accounts.get(f.fund_id),
                now,
                "emergency" if f.fund_id in emergency else trigger,
                persist,
            )
            for f in snap.funds
        ]
        timings = {"snapshot": t1 - t0, "price": t2 - t1, "value": time.perf_counter() - t2}
        return CycleResult(
            snap.block_number, now, trigger, aggs, prices, unpriced, fx, funds, accounts, timings
        )

    def _fund(
        self,
        fund: FundSnapshot,
        snap: ChainSnapshot,
        symbols: Mapping[str, str],
        prices: Mapping[str, AssetPrice],
        unpriced: Mapping[str, PriceUnavailable],
        account: OffExchangeAccount | SourceFailure | None,
        now: int,
        trigger: Trigger,
        persist: bool,
    ) -> FundResult:
        valuation: Valuation | None = None
        failure: Alert | None = None
        try:
            if isinstance(account, SourceFailure):
                raise PriceUnavailable("off-exchange", None, f"account unavailable: {account.reason}")
            balances = account.balances if account else ()
            valuation = value_fund(fund, symbols, prices, self.registry.haircuts(), balances)
        except PriceUnavailable as exc:
            # The aggregation's own error names every source's state; prefer it.
            failure = Alert("oracle_failure", f"fund {fund.fund_id}: {unpriced.get(exc.asset, exc)}")
        except UnknownAsset as exc:
            failure = Alert("valuation_failed", str(exc))
        record = self.store.fund_record(fund.fund_id)
        decision = decide(
            valuation,
            failure,
            fund.nav,
            record.published_activity,
            record.guard,
            now,
            trigger,
            guard_rules(self.settings),
        )
        report_id = None
        if persist:
            report_id = self._record(fund, snap, valuation, decision, prices, unpriced, now, trigger)
        for alert in decision.alerts:
            log.warning("%s: fund %s: %s", alert.kind, fund.fund_id, alert.message)
        return FundResult(fund.fund_id, fund, valuation, failure, decision, report_id)

    def _record(
        self,
        fund: FundSnapshot,
        snap: ChainSnapshot,
        v: Valuation | None,
        d: Decision,
        prices: Mapping[str, AssetPrice],
        unpriced: Mapping[str, PriceUnavailable],
        now: int,
        trigger: Trigger,
    ) -> int:
        status = {"publish": "pending", "hold": "held"}.get(d.action, "none")
        report_id = self.store.add_report(
            NewReport(
                fund_id=fund.fund_id,
                created_at=now,
                trigger=trigger,
                block_number=snap.block_number,
                decision=d.action,
                reason=d.reason,
                status=status,
                nav=v.nav if v else None,
                gross=v.gross if v else None,
                liabilities=v.liabilities.total if v else None,
                nav_per_share=v.nav_per_share if v else None,
                estimated=d.estimated,
                activity=fund.activity,
                share_version=fund.share_version,
                previous_nav=fund.nav.nav if fund.nav.published else None,
                previous_as_of=fund.nav.as_of if fund.nav.published else None,
                previous_round=fund.nav.round,
                inputs=report_inputs(v, prices, unpriced, fund.nav),
                # A NAV is as of the block its holdings were read at: never in the future for
                # the chain, and newer with every block.
                as_of=snap.block_timestamp,
                flags=FLAG_ESTIMATED if d.estimated else 0,
            )
        )
        if d.action in ("publish", "skip"):
            # The NAV is back within the guard (or about to be published): a held jump is moot,
            # and approving it later would put a gone flash on chain.
            self.store.supersede_held(fund.fund_id, report_id)
        if d.action in ("publish", "skip", "hold"):
            # A fresh decision makes older NAVs still waiting to be sent obsolete.
            self.store.supersede_older(fund.fund_id, report_id)
        self.store.save_guard_state(fund.fund_id, d.state, now)
        return report_id


def verdict_data(v: SourceVerdict) -> dict[str, Any]:
    return {
        "source": v.source,
        "status": v.status,
        "price": None if v.price is None else usd_str(v.price),
        "confidence": v.confidence,
        "observed_at": v.observed_at,
        "deviation_bps": v.deviation_bps,
        "reason": v.reason,
    }


def report_inputs(
    v: Valuation | None,
    prices: Mapping[str, AssetPrice],
    unpriced: Mapping[str, PriceUnavailable],
    last: NavOnChain,
) -> dict[str, Any]:
    """Everything that explains a NAV, as JSON-ready data (money as decimal strings): every
    source's quote and verdict, the cache use, the breakdown, the liabilities, the previous NAV."""
    used = {a.asset for a in v.assets} if v else set(prices)
    return {
        "previous": {"nav": usd_str(last.nav), "as_of": last.as_of, "round": last.round},
        "prices": {
            s: {
                "price": usd_str(p.price),
                "confidence": p.confidence,
                "estimated": p.estimated,
                "as_of": p.as_of,
                "sources": list(p.sources),
                "verdicts": [verdict_data(x) for x in p.aggregate.verdicts],
            }
            for s, p in sorted(prices.items())
            if s in used
        },
        "unpriced": {
            s: {
                "error": str(e),
                "verdicts": [verdict_data(x) for x in e.aggregate.verdicts] if e.aggregate else [],
            }
            for s, e in sorted(unpriced.items())
        },
        "assets": [
            {
                "asset": a.asset,
                "venue": a.venue,
                "amount": str(a.amount),
                "decimals": a.decimals,
                "price": usd_str(a.price),
                "value": usd_str(a.value),
                "haircut": str(a.haircut),
                "collateral": usd_str(a.collateral),
                "estimated": a.estimated,
            }
            for a in (v.assets if v else ())
        ],
        "liabilities": {
            "pending_fees": usd_str(v.liabilities.pending_fees),
            "pending_withdrawals": usd_str(v.liabilities.pending_withdrawals),
            "borrowed": usd_str(v.liabilities.borrowed),
            "offexchange_borrowed": usd_str(v.liabilities.offexchange_borrowed),
        }
        if v
        else None,
    }
