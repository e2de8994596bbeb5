"""`navpub status`: every fund's on-chain state, for people (tables) and tools (JSON).

JSON money values are decimal strings with the raw integer beside them, never floats.
"""

from __future__ import annotations

import json
import os
import time

from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.table import Table

from publisher.config import Settings
from publisher.deployment import Deployment
from publisher.guard import pct
from publisher.keeper import HEARTBEAT
from publisher.money import fmt_usd, units_to_decimal, usd_str
from publisher.output import Amount
from publisher.snapshot import ChainSnapshot, FundSnapshot
from publisher.store import Store
from publisher.value import drawdown


class HoldingOut(BaseModel):
    asset: str
    symbol: str | None
    amount: Amount


class NavOut(BaseModel):
    published: bool
    nav_usd: Amount
    as_of: int
    round: int
    estimated: bool
    paused: bool
    high_water_mark_usd: Amount
    drawdown_usd: Amount
    drawdown_pct: str
    nav_per_share_usd: Amount | None


class FundOut(BaseModel):
    fund_id: int
    name: str | None
    manager: str
    holdings: list[HoldingOut]
    pending_fees_usd: Amount
    pending_withdrawals_usd: Amount
    borrowed_usd: Amount
    liabilities_usd: Amount
    total_shares: Amount
    queued_withdrawal_shares: Amount
    activity: int
    nav: NavOut


class KeeperOut(BaseModel):
    """What the store says of the keeper: its last heartbeat, and the funds needing a person."""

    alive: bool
    pid: int | None
    last_tick_at: int | None
    last_tick_age_s: int | None
    breakers_open: list[int]
    funds_overdue: list[int]


class StatusOut(BaseModel):
    chain_id: int
    block_number: int
    block_timestamp: int
    vault: str
    funds: list[FundOut]
    keeper: KeeperOut | None = None


def nav_per_share(f: FundSnapshot) -> int | None:
    """NAV per share as the vault published it: over the share supply of that NAV, 18
    decimals, rounded down (flows since do not move it)."""
    return f.nav.per_share


def status_model(deployment: Deployment, snap: ChainSnapshot) -> StatusOut:
    names = {f.fund_id: f.name for f in deployment.funds}
    funds = []
    for f in snap.funds:
        nps = nav_per_share(f)
        funds.append(
            FundOut(
                fund_id=f.fund_id,
                name=names.get(f.fund_id),
                manager=f.manager,
                holdings=[
                    HoldingOut(
                        asset=h.asset,
                        symbol=deployment.symbol_of(h.asset),
                        amount=Amount.of(h.amount, h.decimals),
                    )
                    for h in f.holdings
                ],
                pending_fees_usd=Amount.of(f.pending_fees),
                pending_withdrawals_usd=Amount.of(f.pending_withdrawals),
                borrowed_usd=Amount.of(f.borrowed),
                liabilities_usd=Amount.of(f.liabilities),
                total_shares=Amount.of(f.total_shares),
                queued_withdrawal_shares=Amount.of(f.queued_shares),
                activity=f.activity,
                nav=NavOut(
                    published=f.nav.published,
                    nav_usd=Amount.of(f.nav.nav),
                    as_of=f.nav.as_of,
                    round=f.nav.round,
                    estimated=f.nav.estimated,
                    paused=f.nav.paused,
                    high_water_mark_usd=Amount.of(f.nav.high_water_mark),
                    drawdown_usd=Amount.of(drawdown(nps or 0, f.nav.high_water_mark)[0]),
                    drawdown_pct=pct(drawdown(nps or 0, f.nav.high_water_mark)[1]).removesuffix(" %"),
                    nav_per_share_usd=None if nps is None else Amount.of(nps),
                ),
            )
        )
    return StatusOut(
        chain_id=deployment.chain_id,
        block_number=snap.block_number,
        block_timestamp=snap.block_timestamp,
        vault=deployment.vault,
        funds=funds,
    )


def render_status(console: Console, deployment: Deployment, snap: ChainSnapshot) -> None:
    """Prints one panel per fund: holdings, liabilities and the last published NAV."""
    console.print(
        f"[bold]chain {deployment.chain_id}[/] block {snap.block_number}  vault {deployment.vault}  "
        f"{len(snap.funds)} fund(s)"
    )
    names = {f.fund_id: f.name for f in deployment.funds}
    for f in snap.funds:
        console.print(f"[bold]Fund {f.fund_id}[/] {names.get(f.fund_id, '')}".rstrip())
        table = Table(box=box.SIMPLE, pad_edge=False)
        table.add_column("asset")
        table.add_column("amount", justify="right")
        for h in f.holdings:
            table.add_row(
                deployment.symbol_of(h.asset) or h.asset, f"{units_to_decimal(h.amount, h.decimals):,}"
            )
        console.print(table)
        console.print(
            f"  liabilities {fmt_usd(f.liabilities)} = fees {fmt_usd(f.pending_fees)} + withdrawals "
            f"{fmt_usd(f.pending_withdrawals)} + borrowed {fmt_usd(f.borrowed)}"
        )
        console.print(
            f"  shares {units_to_decimal(f.total_shares, 18):,} (queued for withdrawal "
            f"{units_to_decimal(f.queued_shares, 18):,})  activity #{f.activity}"
        )
        if f.nav.published:
            flag = " [yellow](estimated)[/]" if f.nav.estimated else ""
            flag += " [red](paused)[/]" if f.nav.paused else ""
            nps = nav_per_share(f)
            per_share = "" if nps is None else f"  per share ${usd_str(nps)}"
            dd_abs, dd_bps = drawdown(nps or 0, f.nav.high_water_mark)
            console.print(
                f"  NAV {fmt_usd(f.nav.nav)}{flag} as of {f.nav.as_of} (round {f.nav.round}){per_share}  "
                f"HWM per share ${usd_str(f.nav.high_water_mark)}  drawdown {pct(dd_bps)} "
                f"(${usd_str(dd_abs)} a share)",
                soft_wrap=True,
            )
        else:
            console.print("  NAV [dim]not published yet[/]")
        console.print()


def render_keeper(console: Console, k: KeeperOut) -> None:
    if k.last_tick_at is None:
        console.print("keeper: [dim]never ran with this state directory[/]")
    else:
        state = "[green]alive[/]" if k.alive else "[red]not running[/]"
        console.print(f"keeper: {state} (pid {k.pid}, last tick {k.last_tick_age_s} s ago)")
    if k.breakers_open:
        console.print(f"  [red]circuit breaker open[/] for fund(s) {k.breakers_open}")
    if k.funds_overdue:
        console.print(f"  [yellow]overdue[/] (NAV older than twice the cadence): fund(s) {k.funds_overdue}")


# The keeper writes its heartbeat every tick (15 s by default); two minutes without one means
# it is gone or stuck.
KEEPER_ALIVE_S = 120


def keeper_status(settings: Settings, store: Store, snap: ChainSnapshot) -> KeeperOut:
    """The keeper's heartbeat and the funds that need attention, from the store and the chain."""
    raw = store.get_state(HEARTBEAT)
    beat = json.loads(raw) if raw else None
    now = int(time.time())
    age = None if beat is None else max(0, max(now, snap.block_timestamp) - int(beat["at"]))
    alive = beat is not None and age is not None and age <= KEEPER_ALIVE_S and pid_alive(int(beat["pid"]))
    breakers = [f.fund_id for f in snap.funds if store.fund_record(f.fund_id).guard.breaker_open]
    limit = 2 * settings.cadence_s
    overdue = [
        f.fund_id for f in snap.funds if f.nav.published and snap.block_timestamp - f.nav.as_of > limit
    ]
    return KeeperOut(
        alive=alive,
        pid=beat["pid"] if beat else None,
        last_tick_at=beat["at"] if beat else None,
        last_tick_age_s=age,
        breakers_open=breakers,
        funds_overdue=overdue,
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
