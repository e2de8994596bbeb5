"""Prometheus metrics of the keeper and the publisher (prometheus-client).

Prometheus stores floats: these gauges are for dashboards and alert rules, never for money
decisions — the exact values are in the store and on chain.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from publisher.engine import CycleResult
from publisher.money import usd
from publisher.publish import FundOutcome
from publisher.store import Publication
from publisher.value import drawdown

if TYPE_CHECKING:
    from publisher.views import FundsView


class Metrics:
    """One registry per keeper, so tests read exactly what one keeper exported."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.nav = Gauge("navpub_nav_usd", "Last computed NAV of the fund (USD)", ["fund"], registry=r)
        self.nav_age = Gauge("navpub_nav_age_seconds", "Age of the fund's on-chain NAV", ["fund"], registry=r)
        self.hwm = Gauge(
            "navpub_high_water_mark_per_share_usd",
            "High-water mark of the fund's NAV per share (USD)",
            ["fund"],
            registry=r,
        )
        self.drawdown = Gauge(
            "navpub_drawdown_ratio",
            "Drawdown of the NAV per share from its high-water mark (0-1); flows do not move it",
            ["fund"],
            registry=r,
        )
        self.estimated = Gauge(
            "navpub_nav_estimated", "1 when the fund's NAV used cached prices", ["fund"], registry=r
        )
        self.breaker = Gauge(
            "navpub_breaker_open", "1 while the fund's circuit breaker is open", ["fund"], registry=r
        )
        self.confidence = Gauge(
            "navpub_price_confidence", "Confidence of the asset's price (0-100)", ["asset"], registry=r
        )
        self.cycle_seconds = Histogram("navpub_cycle_seconds", "Duration of a publish cycle", registry=r)
        self.publish_seconds = Histogram("navpub_publish_seconds", "Time from send to receipt", registry=r)
        self.outcomes = Counter("navpub_outcomes", "Per-fund outcomes of cycles", ["decision"], registry=r)
        self.failures = Counter("navpub_failures", "Failures by kind", ["kind"], registry=r)
        self.gas = Counter("navpub_gas_used", "Gas used by confirmed transactions", registry=r)
        self.balance = Gauge(
            "navpub_engine_balance_native", "Native balance of the NAV engine's key", registry=r
        )
        self.last_tick = Gauge("navpub_last_tick_timestamp", "Time of the keeper's last tick", registry=r)
        self._seen_publications: set[int] = set()

    def record_cycle(
        self, cycle: CycleResult, outcomes: Iterable[FundOutcome], breakers: dict[int, bool]
    ) -> None:
        for f in cycle.funds:
            fund = str(f.fund_id)
            if f.valuation is not None:
                self.nav.labels(fund).set(usd(f.valuation.nav))
                self.estimated.labels(fund).set(int(f.valuation.estimated))
            if f.snapshot.nav.published:
                self.nav_age.labels(fund).set(max(0, cycle.now - f.snapshot.nav.as_of))
                self.hwm.labels(fund).set(usd(f.snapshot.nav.high_water_mark))
                nps = f.snapshot.nav.per_share
                if nps is not None:
                    self.drawdown.labels(fund).set(
                        Decimal(drawdown(nps, f.snapshot.nav.high_water_mark)[1]) / 10_000
                    )
            self.breaker.labels(fund).set(int(breakers.get(f.fund_id, False)))
        for symbol, agg in cycle.aggregates.items():
            self.confidence.labels(symbol).set(agg.confidence)
        for o in outcomes:
            self.outcomes.labels(o.decision).inc()
            if o.decision == "failed":
                self.failures.labels("publish" if o.report_id else "valuation").inc()

    def record_publications(self, publications: Iterable[Publication]) -> None:
        for p in publications:
            if p.status == "confirmed" and p.id not in self._seen_publications and p.gas_used is not None:
                self._seen_publications.add(p.id)
                self.gas.inc(p.gas_used)
                if p.confirmed_at is not None:
                    self.publish_seconds.observe(max(0, p.confirmed_at - p.created_at))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def views_exposition(view: FundsView, publications: Iterable[Publication]) -> tuple[bytes, str]:
    """The API's /metrics: the funds as the chain and the store show them now, in a registry
    of its own built per request (the API process runs no cycles of its own)."""
    r = CollectorRegistry()
    nav = Gauge("navpub_published_nav_usd", "The fund's NAV on chain (USD)", ["fund"], registry=r)
    age = Gauge("navpub_nav_age_seconds", "Age of the fund's on-chain NAV", ["fund"], registry=r)
    hwm = Gauge(
        "navpub_high_water_mark_per_share_usd", "High-water mark of the fund's NAV per share (USD)",
        ["fund"], registry=r,
    )  # fmt: skip
    dd = Gauge(
        "navpub_drawdown_ratio", "Drawdown of the NAV per share from its high-water mark (0-1)",
        ["fund"], registry=r,
    )  # fmt: skip
    est = Gauge("navpub_nav_estimated", "1 when the fund's NAV used cached prices", ["fund"], registry=r)
    breaker = Gauge("navpub_breaker_open", "1 while the fund's circuit breaker is open", ["fund"], registry=r)
    held = Gauge("navpub_nav_held", "1 while a NAV of the fund waits for approval", ["fund"], registry=r)
    conf = Gauge("navpub_price_confidence", "Confidence of the asset's price (0-100)", ["asset"], registry=r)
    gas = Gauge("navpub_gas_used_total", "Gas used by confirmed transactions", registry=r)
    for f in view.funds:
        fund = str(f.fund_id)
        if f.nav.published and f.nav.nav is not None and f.peak.high_water_mark is not None:
            nav.labels(fund).set(Decimal(f.nav.nav.usd))
            age.labels(fund).set(f.nav.age_s or 0)
            hwm.labels(fund).set(Decimal(f.peak.high_water_mark.usd))
            dd.labels(fund).set(Decimal(f.peak.drawdown_pct or 0) / 100)
        est.labels(fund).set(int(f.nav.estimated))
        breaker.labels(fund).set(int(f.breaker_open))
        held.labels(fund).set(int(f.held is not None))
        for o in f.oracles:
            conf.labels(o.asset).set(o.confidence or 0)
    gas.set(sum(p.gas_used or 0 for p in publications if p.status == "confirmed"))
    return generate_latest(r), CONTENT_TYPE_LATEST
