"""What the API, the dashboard and the state files show of a fund: one view from the chain
(the published NAV) and the store (the last computed valuation, prices, publications).

Money fields are `Money`: the exact USD decimal string, its raw 18-decimal integer, and the
value in the display currency (two places, rounded down) — `null` when no fresh FX rate
exists. A rate is never made up: an FX rate older than the price cache's limit is
"unavailable", with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal
from typing import Any

from pydantic import BaseModel

from publisher._exceptions import UnknownCurrency
from publisher.config import Settings
from publisher.deployment import Deployment
from publisher.money import usd_str
from publisher.publish import FundOutcome, fund_shares
from publisher.snapshot import FLAG_PAUSED, ChainSnapshot, FundSnapshot, NavOnChain
from publisher.store import Report, Store
from publisher.value import drawdown

USD = "USD"
CENT = Decimal("0.01")


# -- response models ---------------------------------------------------------------------------


class Money(BaseModel):
    """An exact USD amount and its value in the display currency."""

    usd: str
    raw: str
    display: str | None


class FxOut(BaseModel):
    """The display currency's rate (units per 1 USD), or why there is none."""

    currency: str
    available: bool
    rate: str | None
    as_of: int | None
    age_s: int | None
    sources: list[str]
    reason: str | None


class NavView(BaseModel):
    published: bool
    nav: Money | None
    nav_per_share: Money | None
    as_of: int | None
    age_s: int | None
    stale: bool  # older than the fund's cadence (the heartbeat)
    stale_after_s: int
    round: int
    estimated: bool
    paused: bool


class PeakView(BaseModel):
    """The high-water mark and the drawdown, per share: the figure fees crystallise on, which
    a deposit or a redemption does not move."""

    high_water_mark: Money | None  # highest NAV per share published
    drawdown: Money | None  # per share, below the mark
    drawdown_pct: str | None


class SliceView(BaseModel):
    asset: str
    venue: str
    amount: str
    price: Money
    value: Money
    share_pct: str  # of the gross assets
    haircut: str
    collateral: Money
    confidence: int | None
    sources: list[str]
    estimated: bool


class LiabilitiesView(BaseModel):
    pending_fees: Money
    pending_withdrawals: Money
    borrowed: Money
    offexchange_borrowed: Money
    total: Money


class ValuationView(BaseModel):
    """The fund's last computed NAV (published or not) and what it was computed from."""

    report_id: int
    computed_at: int
    block_number: int | None
    decision: str
    status: str
    reason: str
    nav: Money
    gross: Money
    collateral: Money
    net_collateral: Money
    liabilities: LiabilitiesView
    assets: list[SliceView]


class SourceView(BaseModel):
    source: str
    status: str
    price: str | None
    reason: str


class OracleView(BaseModel):
    asset: str
    ok: bool
    confidence: int | None
    estimated: bool
    price: str | None
    price_as_of: int | None
    used: int
    configured: int
    sources: list[SourceView]
    error: str | None


class HeldView(BaseModel):
    report_id: int
    nav: Money
    reason: str
    since: int


class TxView(BaseModel):
    tx_hash: str
    block_number: int | None
    confirmed_at: int | None
    funds_in_tx: int
    gas_used: int  # the whole transaction
    fund_gas_used: int  # this fund's share
    cost_usd: Money | None  # this fund's share


class DecisionView(BaseModel):
    report_id: int
    at: int
    decision: str
    reason: str


class FundView(BaseModel):
    fund_id: int
    name: str | None
    currency: str
    nav: NavView
    peak: PeakView
    breaker_open: bool
    held: HeldView | None
    last_decision: DecisionView | None
    valuation: ValuationView | None
    oracles: list[OracleView]
    last_tx: TxView | None


class HistoryPoint(BaseModel):
    as_of: int
    round: int | None
    nav: Money
    nav_per_share: Money | None
    high_water_mark: Money | None  # per share, as it stood then
    estimated: bool
    tx_hash: str | None


class HistoryView(BaseModel):
    fund_id: int
    currency: str
    fx: FxOut
    points: list[HistoryPoint]


class FundsView(BaseModel):
    chain_id: int
    block_number: int
    block_timestamp: int
    now: int
    currency: str
    currencies: list[str]
    fx: FxOut
    funds: list[FundView]


# -- building them -----------------------------------------------------------------------------


class Display:
    """Converts exact USD to the display currency with a rate that is known to be fresh."""

    def __init__(self, fx: FxOut) -> None:
        self.fx = fx
        self._rate = Decimal(fx.rate) if fx.available and fx.rate is not None else None

    def money(self, raw: int) -> Money:
        shown = None
        if self._rate is not None:
            shown = str((Decimal(raw).scaleb(-18) * self._rate).quantize(CENT, rounding=ROUND_DOWN))
        return Money(usd=usd_str(raw), raw=str(raw), display=shown)

    def money_str(self, text: str) -> Money:
        """A decimal USD string (as reports store them) → Money."""
        return self.money(int(Decimal(text).scaleb(18)))


def currencies(fx_codes: Sequence[str]) -> list[str]:
    return [USD, *sorted(c for c in fx_codes if c != USD)]


def fx_view(store: Store, settings: Settings, currency: str, fx_codes: Sequence[str], now: int) -> FxOut:
    """The display currency's rate from the last cycle's FX prices, if fresh enough."""
    code = currency.upper()
    if code == USD:
        return FxOut(currency=USD, available=True, rate="1", as_of=None, age_s=None, sources=[], reason=None)
    if code not in fx_codes:
        known = ", ".join(currencies(fx_codes))
        raise UnknownCurrency(f"currency {currency!r} has no FX source (available: {known})")
    cached = store.cached_prices([f"FX:{code}"]).get(f"FX:{code}")
    if cached is None:
        return FxOut(
            currency=code,
            available=False,
            rate=None,
            as_of=None,
            age_s=None,
            sources=[],
            reason=f"FX unavailable: no {code} rate from any source yet",
        )
    age = max(0, now - cached.as_of)
    if age > settings.cache_max_age_s:
        return FxOut(
            currency=code,
            available=False,
            rate=None,
            as_of=cached.as_of,
            age_s=age,
            sources=list(cached.sources),
            reason=f"FX unavailable: the last {code} rate is {age:,} s old "
            f"(limit {settings.cache_max_age_s:,} s)",
        )
    return FxOut(
        currency=code,
        available=True,
        rate=usd_str(cached.price),
        as_of=cached.as_of,
        age_s=age,
        sources=list(cached.sources),
        reason=None,
    )


def fund_view(
    fund: FundSnapshot,
    name: str | None,
    store: Store,
    settings: Settings,
    display: Display,
    now: int,
) -> FundView:
    m = display.money
    nav = fund.nav
    record = store.fund_record(fund.fund_id)
    age = max(0, now - nav.as_of) if nav.published else None
    nps = nav.per_share
    dd_abs, dd_bps = drawdown(nps, nav.high_water_mark) if nps is not None else (0, 0)
    held = store.held_report(fund.fund_id)
    latest = store.latest_report(fund.fund_id)
    valued = (
        latest
        if latest is not None and latest.nav is not None
        else store.latest_report(fund.fund_id, valued=True)
    )
    return FundView(
        fund_id=fund.fund_id,
        name=name,
        currency=display.fx.currency,
        nav=NavView(
            published=nav.published,
            nav=m(nav.nav) if nav.published else None,
            nav_per_share=None if nps is None else m(nps),
            as_of=nav.as_of if nav.published else None,
            age_s=age,
            stale=age is None or age > settings.cadence_s,
            stale_after_s=settings.cadence_s,
            round=nav.round,
            estimated=nav.estimated,
            paused=nav.paused,
        ),
        peak=PeakView(
            high_water_mark=m(nav.high_water_mark) if nps is not None else None,
            drawdown=m(dd_abs) if nps is not None else None,
            drawdown_pct=f"{Decimal(dd_bps).scaleb(-2):.2f}" if nps is not None else None,
        ),
        breaker_open=record.guard.breaker_open,
        held=None
        if held is None or held.nav is None
        else HeldView(report_id=held.id, nav=m(held.nav), reason=held.reason, since=held.created_at),
        last_decision=None
        if latest is None
        else DecisionView(
            report_id=latest.id, at=latest.created_at, decision=latest.decision, reason=latest.reason
        ),
        valuation=None if valued is None else valuation_view(valued, display),
        oracles=oracle_views(latest.inputs if latest else {}),
        last_tx=last_tx(store, fund.fund_id, display),
    )


def valuation_view(r: Report, display: Display) -> ValuationView:
    inputs = r.inputs
    ms = display.money_str
    assets = inputs.get("assets") or []
    prices: Mapping[str, Any] = inputs.get("prices") or {}
    gross_assets = sum(Decimal(a["value"]) for a in assets)
    li = inputs.get("liabilities") or {}
    kinds = ("pending_fees", "pending_withdrawals", "borrowed", "offexchange_borrowed")
    li_total = sum(Decimal(li.get(k, "0")) for k in kinds)
    collateral = sum(Decimal(a["collateral"]) for a in assets)
    borrowed = Decimal(li.get("borrowed", "0")) + Decimal(li.get("offexchange_borrowed", "0"))
    slices = []
    for a in assets:
        p = prices.get(a["asset"], {})
        share = Decimal(a["value"]) * 100 / gross_assets if gross_assets else Decimal(0)
        slices.append(
            SliceView(
                asset=a["asset"],
                venue=a["venue"],
                amount=f"{Decimal(int(a['amount'])).scaleb(-int(a['decimals'])).normalize():f}",
                price=ms(a["price"]),
                value=ms(a["value"]),
                share_pct=f"{share.quantize(CENT)}",
                haircut=a["haircut"],
                collateral=ms(a["collateral"]),
                confidence=p.get("confidence"),
                sources=list(p.get("sources") or []),
                estimated=bool(a.get("estimated")),
            )
        )
    return ValuationView(
        report_id=r.id,
        computed_at=r.created_at,
        block_number=r.block_number,
        decision=r.decision,
        status=r.status,
        reason=r.reason,
        nav=display.money(r.nav or 0),
        gross=display.money(r.gross or 0),
        collateral=ms(str(collateral)),
        net_collateral=ms(str(collateral - borrowed)),
        liabilities=LiabilitiesView(**{k: ms(li.get(k, "0")) for k in kinds}, total=ms(str(li_total))),
        assets=slices,
    )


def oracle_views(inputs: Mapping[str, Any]) -> list[OracleView]:
    """Every asset's price health in the fund's last cycle, the failed ones included."""
    out = []
    for asset, p in sorted((inputs.get("prices") or {}).items()):
        verdicts = p.get("verdicts") or []
        out.append(
            OracleView(
                asset=asset,
                ok=True,
                confidence=p.get("confidence"),
                estimated=bool(p.get("estimated")),
                price=p.get("price"),
                price_as_of=p.get("as_of"),
                used=sum(1 for v in verdicts if v["status"] == "used"),
                configured=len(verdicts),
                sources=[_source(v) for v in verdicts],
                error=None,
            )
        )
    for asset, u in sorted((inputs.get("unpriced") or {}).items()):
        verdicts = u.get("verdicts") or []
        out.append(
            OracleView(
                asset=asset,
                ok=False,
                confidence=None,
                estimated=False,
                price=None,
                price_as_of=None,
                used=sum(1 for v in verdicts if v["status"] == "used"),
                configured=len(verdicts),
                sources=[_source(v) for v in verdicts],
                error=u.get("error"),
            )
        )
    return out


def _source(v: Mapping[str, Any]) -> SourceView:
    return SourceView(
        source=v["source"], status=v["status"], price=v.get("price"), reason=v.get("reason") or ""
    )


def last_tx(store: Store, fund_id: int, display: Display) -> TxView | None:
    """The transaction that carried the fund's newest on-chain NAV, and its share of the gas."""
    published = store.published_reports(fund_id, limit=1)
    if not published or published[0].publication_id is None:
        return None
    pub = store.publication(published[0].publication_id)
    if pub is None or pub.tx_hash is None or pub.gas_used is None:
        return None
    ids = sorted(pub.fund_ids)
    idx = ids.index(fund_id) if fund_id in ids else 0
    gas_share = fund_shares(pub.gas_used, len(ids))[idx]
    cost = None if pub.cost_usd is None else display.money(fund_shares(pub.cost_usd, len(ids))[idx])
    return TxView(
        tx_hash=pub.tx_hash,
        block_number=pub.block_number,
        confirmed_at=pub.confirmed_at,
        funds_in_tx=len(ids),
        gas_used=pub.gas_used,
        fund_gas_used=gas_share,
        cost_usd=cost,
    )


def history_view(store: Store, fund_id: int, display: Display, limit: int = 500) -> HistoryView:
    """The fund's published NAVs, oldest first, with the per-share high-water mark as it stood
    then."""
    points = []
    peak: int | None = None
    for r in store.published_reports(fund_id, limit=limit):
        if r.nav is None or r.as_of is None:
            continue
        if r.nav_per_share is not None:
            peak = max(peak or 0, r.nav_per_share)
        pub = store.publication(r.publication_id) if r.publication_id is not None else None
        points.append(
            HistoryPoint(
                as_of=r.as_of,
                # The round it got on chain: one past the round it was computed against.
                round=None if r.previous_round is None else r.previous_round + 1,
                nav=display.money(r.nav),
                nav_per_share=None if r.nav_per_share is None else display.money(r.nav_per_share),
                high_water_mark=None if peak is None else display.money(peak),
                estimated=r.estimated,
                tx_hash=pub.tx_hash if pub else None,
            )
        )
    return HistoryView(fund_id=fund_id, currency=display.fx.currency, fx=display.fx, points=points)


def funds_view(
    deployment: Deployment,
    snap: ChainSnapshot,
    store: Store,
    settings: Settings,
    fx_codes: Sequence[str],
    currency: str,
    now: int,
) -> FundsView:
    fx = fx_view(store, settings, currency, fx_codes, now)
    display = Display(fx)
    names = {f.fund_id: f.name for f in deployment.funds}
    return FundsView(
        chain_id=deployment.chain_id,
        block_number=snap.block_number,
        block_timestamp=snap.block_timestamp,
        now=now,
        currency=fx.currency,
        currencies=currencies(fx_codes),
        fx=fx,
        funds=[fund_view(f, names.get(f.fund_id), store, settings, display, now) for f in snap.funds],
    )


def after_publish(snap: ChainSnapshot, outcomes: Sequence[FundOutcome], store: Store) -> ChainSnapshot:
    """The snapshot as the chain stands after this cycle's publications, without reading it
    again: a published report's NAV, NAV per share, asOf and flags, the round one higher, the
    per-share HWM raised."""
    done = {o.fund_id: o for o in outcomes if o.decision == "published" and o.report_id is not None}
    funds = []
    for f in snap.funds:
        o = done.get(f.fund_id)
        report = store.report(o.report_id) if o and o.report_id is not None else None
        if report is None or report.nav is None or report.as_of is None or report.as_of <= f.nav.as_of:
            funds.append(f)
            continue
        nav = NavOnChain(
            nav=report.nav,
            as_of=report.as_of,
            round=f.nav.round + 1,
            flags=report.flags | (f.nav.flags & FLAG_PAUSED),
            high_water_mark=max(f.nav.high_water_mark, report.nav_per_share or 0),
            nav_shares=f.total_shares,
            nav_per_share=report.nav_per_share or 0,
        )
        funds.append(replace(f, nav=nav))
    return replace(snap, funds=tuple(funds))
