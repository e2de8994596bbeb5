"""`navpub price` and `navpub nav` output: JSON models (money as decimal strings with the raw
integer beside them, never floats) and the tables people read."""

from __future__ import annotations

from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.table import Table

from publisher.engine import CycleResult, FundResult
from publisher.gas import GasReport, Projection
from publisher.guard import pct
from publisher.money import USD_DECIMALS, fmt_price, fmt_usd, units_to_decimal
from publisher.price import Aggregate, AssetPrice, PriceUnavailable
from publisher.publish import FundOutcome


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


# -- publish and gas -------------------------------------------------------------------------


class PublishOut(BaseModel):
    """One fund's line of `navpub publish --json`."""

    fund_id: int
    nav: str | None
    nav_raw: str | None
    estimated: bool
    decision: str
    reason: str
    tx_hash: str | None
    gas_used: int | None
    cost_usd: str | None
    report_id: int | None


def publish_model(o: FundOutcome) -> PublishOut:
    return PublishOut(
        fund_id=o.fund_id,
        nav=None if o.nav is None else str(units_to_decimal(o.nav, USD_DECIMALS)),
        nav_raw=None if o.nav is None else str(o.nav),
        estimated=o.estimated,
        decision=o.decision,
        reason=o.reason,
        tx_hash=o.tx_hash,
        gas_used=o.gas_used,
        cost_usd=None if o.cost_usd is None else str(units_to_decimal(o.cost_usd, USD_DECIMALS)),
        report_id=o.report_id,
    )


def render_publish(console: Console, outcomes: list[FundOutcome]) -> None:
    table = Table(box=box.SIMPLE, pad_edge=False)
    for col in ("fund", "NAV", "decision", "reason", "tx", "gas", "cost"):
        table.add_column(col, justify="right" if col in {"fund", "NAV", "gas", "cost"} else "left")
    colours = {
        "published": "green",
        "skipped": "cyan",
        "held": "yellow",
        "failed": "red",
        "pending": "magenta",
    }
    for o in outcomes:
        table.add_row(
            str(o.fund_id), "" if o.nav is None else fmt_usd(o.nav) + (" (est.)" if o.estimated else ""),
            f"[{colours[o.decision]}]{o.decision}[/]", o.reason, (o.tx_hash or "")[:12],
            "" if o.gas_used is None else f"{o.gas_used:,}",
            "" if o.cost_usd is None else fmt_usd(o.cost_usd, 6),
        )  # fmt: skip
    console.print(table)


class FundGasOut(BaseModel):
    fund_id: int
    updates: int
    gas: int
    avg_gas_per_update: int | None
    cost_wei: str
    cost_usd: Amount


class ProjectionOut(BaseModel):
    cadence_s: int
    updates_per_month: int
    gas_per_update: int
    gas_price_wei: str
    native_usd: Amount | None
    monthly_gas_per_fund: int
    monthly_cost_per_fund_wei: str
    monthly_cost_per_fund_usd: Amount | None
    seed_gas_per_update: int
    seed_monthly_cost_per_fund_usd: Amount


class GasOut(BaseModel):
    transactions: int
    updates: int
    gas: int
    avg_gas_per_update: int | None
    cost_wei: str
    cost_usd: Amount
    funds: list[FundGasOut]
    projection: ProjectionOut


def gas_model(report: GasReport, projection: Projection, cadence_s: int) -> GasOut:
    return GasOut(
        transactions=report.transactions,
        updates=report.updates,
        gas=report.gas,
        avg_gas_per_update=report.avg_gas_per_update,
        cost_wei=str(report.cost_wei),
        cost_usd=Amount.of(report.cost_usd),
        funds=[
            FundGasOut(
                fund_id=f.fund_id,
                updates=f.updates,
                gas=f.gas,
                avg_gas_per_update=f.avg_gas,
                cost_wei=str(f.cost_wei),
                cost_usd=Amount.of(f.cost_usd),
            )
            for f in sorted(report.funds.values(), key=lambda f: f.fund_id)
        ],
        projection=ProjectionOut(
            cadence_s=cadence_s,
            updates_per_month=projection.updates_per_month,
            gas_per_update=projection.gas_per_update,
            gas_price_wei=str(projection.gas_price_wei),
            native_usd=None if projection.native_usd is None else Amount.of(projection.native_usd),
            monthly_gas_per_fund=projection.monthly_gas,
            monthly_cost_per_fund_wei=str(projection.monthly_wei),
            monthly_cost_per_fund_usd=None
            if projection.monthly_usd is None
            else Amount.of(projection.monthly_usd),
            seed_gas_per_update=projection.seed_gas_per_update,
            seed_monthly_cost_per_fund_usd=Amount.of(projection.seed_monthly_usd),
        ),
    )


def render_gas(console: Console, report: GasReport, projection: Projection, cadence_s: int) -> None:
    table = Table(box=box.SIMPLE, pad_edge=False)
    for col in ("fund", "updates", "gas", "avg gas/update", "cost (native)", "cost (USD)"):
        table.add_column(col, justify="right")
    for f in sorted(report.funds.values(), key=lambda f: f.fund_id):
        table.add_row(str(f.fund_id), str(f.updates), f"{f.gas:,}", f"{f.avg_gas or 0:,}",
                      f"{units_to_decimal(f.cost_wei, 18)}", fmt_usd(f.cost_usd, 6))  # fmt: skip
    table.add_row("total", str(report.updates), f"{report.gas:,}", f"{report.avg_gas_per_update or 0:,}",
                  f"{units_to_decimal(report.cost_wei, 18)}", fmt_usd(report.cost_usd, 6))  # fmt: skip
    console.print(f"[bold]Gas ledger[/]: {report.transactions} transaction(s)")
    console.print(table)
    p = projection
    usd = "unknown (no native price)" if p.monthly_usd is None else fmt_usd(p.monthly_usd, 4)
    console.print(
        f"Projection per fund: {p.updates_per_month} updates/month (cadence {cadence_s} s) "
        f"× {p.gas_per_update:,} gas at {units_to_decimal(p.gas_price_wei, 9)} gwei = {usd}/month",
        soft_wrap=True,
    )
    console.print(
        f"Seed budget: {p.seed_gas_per_update:,} gas/update, {fmt_usd(p.seed_monthly_usd)}/fund/month",
        soft_wrap=True,
    )
