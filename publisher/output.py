"""`navpub price` and `navpub nav` output: JSON models (money as decimal strings with the raw
integer beside them, never floats) and the tables people read."""

from __future__ import annotations

from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.table import Table

from publisher.engine import CycleResult, FundResult
from publisher.guard import pct
from publisher.money import USD_DECIMALS, fmt_price, fmt_usd, units_to_decimal
from publisher.price import Aggregate, AssetPrice, PriceUnavailable


class Amount(BaseModel):
    """An exact amount: decimal string plus the raw integer and its decimals."""

    value: str
    raw: str
    decimals: int

    @classmethod
    def of(cls, raw: int, decimals: int = USD_DECIMALS) -> Amount:
        return cls(value=str(units_to_decimal(raw, decimals)), raw=str(raw), decimals=decimals)


def _opt(raw: int | None) -> Amount | None:
    return None if raw is None else Amount.of(raw)


class SourceOut(BaseModel):
    source: str
    status: str
    price: Amount | None
    confidence: int | None
    observed_at: int | None
    deviation_bps: int | None
    reason: str


class PriceOut(BaseModel):
    asset: str
    median: Amount | None
    confidence: int
    configured_sources: int
    used_sources: list[str]
    sources: list[SourceOut]
    price: Amount | None  # the price a valuation would use (live, or cached when estimated)
    estimated: bool | None
    price_as_of: int | None
    error: str | None


def price_model(agg: Aggregate, resolved: AssetPrice | PriceUnavailable) -> PriceOut:
    ok = isinstance(resolved, AssetPrice)
    return PriceOut(
        asset=agg.asset,
        median=_opt(agg.price),
        confidence=agg.confidence,
        configured_sources=agg.configured,
        used_sources=list(agg.used),
        sources=[
            SourceOut(
                source=v.source,
                status=v.status,
                price=_opt(v.price),
                confidence=v.confidence,
                observed_at=v.observed_at,
                deviation_bps=v.deviation_bps,
                reason=v.reason,
            )
            for v in agg.verdicts
        ],
        price=Amount.of(resolved.price) if ok else None,
        estimated=resolved.estimated if ok else None,
        price_as_of=resolved.as_of if ok else None,
        error=None if ok else str(resolved),
    )


def render_price(console: Console, agg: Aggregate, resolved: AssetPrice | PriceUnavailable) -> None:
    table = Table(box=box.SIMPLE, pad_edge=False)
    for col in ("source", "status", "price", "conf", "dev", "why"):
        table.add_column(col, justify="right" if col in {"price", "conf", "dev"} else "left")
    for v in agg.verdicts:
        table.add_row(
            v.source, v.status, fmt_price(v.price) if v.price is not None else "",
            "" if v.confidence is None else str(v.confidence),
            "" if v.deviation_bps is None else f"{v.deviation_bps} bps", v.reason,
        )  # fmt: skip
    console.print(f"[bold]{agg.asset}[/]  {len(agg.used)} of {agg.configured} sources used")
    console.print(table)
    median = fmt_price(agg.price) if agg.price is not None else "none"
    console.print(f"  median {median}  confidence {agg.confidence}")
    if isinstance(resolved, AssetPrice):
        note = f" [yellow](cached price from {resolved.as_of}: estimated)[/]" if resolved.estimated else ""
        console.print(f"  price used {fmt_price(resolved.price)}{note}")
    else:
        console.print(f"  [red]{resolved}[/]", soft_wrap=True)


class AssetValueOut(BaseModel):
    asset: str
    venue: str
    amount: Amount
    price: Amount
    value: Amount
    haircut: str
    collateral: Amount
    confidence: int | None
    sources: list[str]
    estimated: bool


class NavOut(BaseModel):
    fund_id: int
    block_number: int
    as_of: int
    decision: str
    reason: str
    estimated: bool
    alerts: list[str]
    nav: Amount | None
    nav_per_share: Amount | None
    gross: Amount | None
    liabilities: dict[str, Amount] | None
    collateral: Amount | None
    net_collateral: Amount | None
    activity: int
    queued_withdrawal_shares: Amount
    previous_nav: Amount | None
    previous_as_of: int | None
    change_bps: int | None
    assets: list[AssetValueOut]
    error: str | None
    report_id: int | None


def nav_model(cycle: CycleResult, f: FundResult) -> NavOut:
    v = f.valuation
    prev = f.snapshot.nav
    return NavOut(
        fund_id=f.fund_id,
        block_number=cycle.block_number,
        as_of=cycle.now,
        decision=f.decision.action,
        reason=f.decision.reason,
        estimated=f.decision.estimated,
        alerts=[f"{a.kind}: {a.message}" for a in f.decision.alerts],
        nav=_opt(v.nav if v else None),
        nav_per_share=_opt(v.nav_per_share if v else None),
        gross=_opt(v.gross if v else None),
        liabilities={
            "pending_fees": Amount.of(v.liabilities.pending_fees),
            "pending_withdrawals": Amount.of(v.liabilities.pending_withdrawals),
            "borrowed": Amount.of(v.liabilities.borrowed),
            "offexchange_borrowed": Amount.of(v.liabilities.offexchange_borrowed),
            "total": Amount.of(v.liabilities.total),
        }
        if v
        else None,
        collateral=_opt(v.collateral if v else None),
        net_collateral=_opt(v.net_collateral if v else None),
        activity=f.snapshot.activity,
        queued_withdrawal_shares=Amount.of(f.snapshot.queued_shares),
        previous_nav=Amount.of(prev.nav) if prev.published else None,
        previous_as_of=prev.as_of if prev.published else None,
        change_bps=f.decision.change_bps,
        assets=[
            AssetValueOut(
                asset=a.asset,
                venue=a.venue,
                amount=Amount.of(a.amount, a.decimals),
                price=Amount.of(a.price),
                value=Amount.of(a.value),
                haircut=str(a.haircut),
                collateral=Amount.of(a.collateral),
                confidence=a.confidence,
                sources=list(a.sources),
                estimated=a.estimated,
            )
            for a in (v.assets if v else ())
        ],
        error=f.failure.message if f.failure else None,
        report_id=f.report_id,
    )


def render_nav(console: Console, cycle: CycleResult, f: FundResult) -> None:
    v = f.valuation
    console.print(f"[bold]Fund {f.fund_id}[/]  block {cycle.block_number}  as of {cycle.now}")
    if v is not None:
        table = Table(box=box.SIMPLE, pad_edge=False)
        for col in ("asset", "amount", "price", "value", "haircut", "collateral", "conf", "sources"):
            table.add_column(col, justify="left" if col in {"asset", "sources"} else "right")
        for a in v.assets:
            flag = " (cached)" if a.estimated else ""
            table.add_row(
                a.asset + ("" if a.venue == "on-chain" else " (off-exchange)"),
                f"{units_to_decimal(a.amount, a.decimals):,}", fmt_price(a.price), fmt_usd(a.value),
                str(a.haircut), fmt_usd(a.collateral), "" if a.confidence is None else str(a.confidence),
                f"{len(a.sources)}{flag}",
            )  # fmt: skip
        console.print(table)
        li = v.liabilities
        console.print(f"  gross       {fmt_usd(v.gross)}")
        console.print(
            f"  liabilities {fmt_usd(li.total)} (fees {fmt_usd(li.pending_fees)}, withdrawals "
            f"{fmt_usd(li.pending_withdrawals)}, borrowed {fmt_usd(li.borrowed + li.offexchange_borrowed)})"
        )
        est = " [yellow](estimated)[/]" if v.estimated else ""
        per_share = "" if v.nav_per_share is None else f"  per share {fmt_usd(v.nav_per_share, 6)}"
        console.print(f"  [bold]NAV         {fmt_usd(v.nav)}[/]{est}{per_share}")
        console.print(f"  collateral after haircuts {fmt_usd(v.collateral)}, net {fmt_usd(v.net_collateral)}")
    prev = f.snapshot.nav
    if prev.published:
        change = "" if f.decision.change_bps is None else f" (change {pct(f.decision.change_bps)})"
        console.print(f"  last published {fmt_usd(prev.nav)} as of {prev.as_of}, round {prev.round}{change}")
    colour = {"publish": "green", "skip": "cyan", "hold": "yellow", "fail": "red"}[f.decision.action]
    console.print(f"  decision [{colour}]{f.decision.action}[/]: {f.decision.reason}", soft_wrap=True)
    for a in f.decision.alerts:
        console.print(f"  [red]alert[/] {a.kind}: {a.message}", soft_wrap=True)
