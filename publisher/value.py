"""Exact valuation of one fund: gross, liabilities, NAV, NAV per share, haircut collateral view,
and the per-asset breakdown (the AUM slices). Pure: snapshot, prices and haircuts in, numbers out.

Money rules (all integers, USD with 18 decimals):
- value of a holding = amount × price / 10^decimals, rounded down (toward zero) per holding;
- liabilities = pending fees + pending withdrawals + borrowed (+ off-exchange borrowed);
- NAV = gross − liabilities; NAV per share = NAV × 10^18 / total shares, rounded down,
  exactly as FundVault.navState computes it;
- collateral of a holding = value × (1 − haircut), rounded down; net collateral =
  Σ collateral − borrowed (the haircut seed's "Wallet Balance"), reported beside NAV.

Pending flows are explicit. FundVault issues shares in the same transaction as a deposit,
so no deposit is ever waiting for shares. A withdrawal request only escrows shares: until a
NAV prices it, its shares stay in the supply (the request shares the fund's gains and
losses) and it is no liability; once priced, the USD owed is a pending withdrawal and its
shares are burnt. Both counts are reported (queued shares, pending withdrawals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from publisher._exceptions import NavPubError
from publisher.money import ONE_USD
from publisher.price import AssetPrice, PriceUnavailable
from publisher.snapshot import FundSnapshot

if TYPE_CHECKING:
    from publisher.sources.offexchange import OffExchangeBalance

Venue = Literal["on-chain", "off-exchange"]


class UnknownAsset(NavPubError):
    """A fund holds a token the configuration has no symbol or sources for."""


@dataclass(frozen=True)
class AssetValue:
    """One AUM slice: a holding, its price and where the price came from."""

    asset: str
    venue: Venue
    address: str | None
    amount: int  # token units (on-chain) or the quantity scaled to `decimals` (off-exchange)
    decimals: int
    price: int
    value: int
    haircut: Decimal
    collateral: int
    confidence: int | None
    sources: tuple[str, ...]
    estimated: bool


@dataclass(frozen=True)
class Liabilities:
    pending_fees: int
    pending_withdrawals: int
    borrowed: int
    offexchange_borrowed: int

    @property
    def total(self) -> int:
        return self.pending_fees + self.pending_withdrawals + self.borrowed + self.offexchange_borrowed


@dataclass(frozen=True)
class Valuation:
    """A fund's NAV and everything it was computed from."""

    fund_id: int
    gross: int
    liabilities: Liabilities
    nav: int  # may be negative: the guard refuses it, valuation only reports it
    total_shares: int
    queued_shares: int
    nav_per_share: int | None
    collateral: int
    net_collateral: int
    estimated: bool
    activity: int
    assets: tuple[AssetValue, ...]


def holding_value(amount: int, decimals: int, price: int) -> int:
    """amount token units × 18-decimal price → 18-decimal USD, rounded down."""
    return amount * price // 10**decimals


def after_haircut(value: int, haircut: Decimal) -> int:
    """value × (1 − haircut), rounded down, exact for any decimal haircut in [0, 1]."""
    if not Decimal(0) <= haircut <= Decimal(1):
        raise ValueError(f"haircut {haircut} is outside [0, 1]")
    num, den = haircut.as_integer_ratio()
    return value * (den - num) // den


def nav_per_share(nav: int, total_shares: int) -> int | None:
    return None if total_shares == 0 or nav < 0 else nav * ONE_USD // total_shares


def value_fund(
    fund: FundSnapshot,
    symbols: Mapping[str, str],
    prices: Mapping[str, AssetPrice],
    haircuts: Mapping[str, Decimal] | None = None,
    offexchange: Sequence[OffExchangeBalance] = (),
) -> Valuation:
    """Values `fund` at `prices`. `symbols` maps lower-cased token addresses to symbols.

    Raises UnknownAsset for a held token without a symbol, PriceUnavailable for a held asset
    without a price. Assets held at zero are listed but need no price.
    """
    haircuts = haircuts or {}
    slices: list[AssetValue] = []
    for h in fund.holdings:
        symbol = symbols.get(h.asset.lower())
        if symbol is None:
            if h.amount == 0:
                continue
            raise UnknownAsset(
                f"fund {fund.fund_id} holds {h.asset}, which no asset in the configuration names"
            )
        slices.append(
            _slice(symbol, "on-chain", h.asset, h.amount, h.decimals, prices, haircuts, zero_ok=True)
        )
    for b in offexchange:
        decimals = max(0, -int(b.quantity.as_tuple().exponent))
        units = int(b.quantity.scaleb(decimals))
        if b.asset in prices or b.market_value_e18 is None:
            slices.append(
                _slice(b.asset, "off-exchange", None, units, decimals, prices, {b.asset: b.haircut})
            )
        else:
            # Not priced by our oracles: the custodian's own valuation, said so in `sources`.
            value = b.market_value_e18
            price = value * 10**decimals // units if units else 0
            slices.append(
                AssetValue(b.asset, "off-exchange", None, units, decimals, price, value, b.haircut,
                           after_haircut(value, b.haircut), None, ("custodian",), False)
            )  # fmt: skip

    liabilities = Liabilities(
        fund.pending_fees, fund.pending_withdrawals, fund.borrowed, sum(b.borrowed_e18 for b in offexchange)
    )
    gross = sum(s.value for s in slices)
    nav = gross - liabilities.total
    collateral = sum(s.collateral for s in slices)
    return Valuation(
        fund_id=fund.fund_id,
        gross=gross,
        liabilities=liabilities,
        nav=nav,
        total_shares=fund.total_shares,
        queued_shares=fund.queued_shares,
        nav_per_share=nav_per_share(nav, fund.total_shares),
        collateral=collateral,
        net_collateral=collateral - fund.borrowed - liabilities.offexchange_borrowed,
        estimated=any(s.estimated for s in slices),
        activity=fund.activity,
        assets=tuple(slices),
    )


def _slice(
    symbol: str,
    venue: Venue,
    address: str | None,
    amount: int,
    decimals: int,
    prices: Mapping[str, AssetPrice],
    haircuts: Mapping[str, Decimal],
    *,
    zero_ok: bool = False,
) -> AssetValue:
    haircut = haircuts.get(symbol, Decimal(0))
    p = prices.get(symbol)
    if p is None:
        if amount == 0 and zero_ok:
            return AssetValue(symbol, venue, address, 0, decimals, 0, 0, haircut, 0, None, (), False)
        raise PriceUnavailable(symbol, None, "no price was gathered for it")
    value = holding_value(amount, decimals, p.price)
    return AssetValue(
        symbol, venue, address, amount, decimals, p.price, value, haircut, after_haircut(value, haircut),
        p.confidence, p.sources, p.estimated,
    )  # fmt: skip


def drawdown(nav: int, high_water_mark: int) -> tuple[int, int]:
    """Drawdown from the peak: (absolute, 18-decimal USD; basis points of the peak, rounded down).
    Zero at or above the mark, and without one."""
    if high_water_mark <= 0 or nav >= high_water_mark:
        return 0, 0
    gap = high_water_mark - nav
    return gap, gap * 10_000 // high_water_mark
