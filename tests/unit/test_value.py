"""Valuation with plain data: the seed's $690k example, decimals, liabilities, haircuts, breakdown."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher.price import Aggregate, AssetPrice, PriceUnavailable
from publisher.snapshot import FundSnapshot, Holding, NavOnChain
from publisher.value import UnknownAsset, after_haircut, holding_value, nav_per_share, value_fund

E18 = 10**18
BTC, ETH, USDC = "0x" + "b" * 40, "0x" + "e" * 40, "0x" + "c" * 40
SYMBOLS = {BTC: "BTC", ETH: "ETH", USDC: "USDC"}


def price(symbol: str, usd: int | str, *, estimated: bool = False) -> AssetPrice:
    p = int(Decimal(usd) * E18)
    return AssetPrice(symbol, p, 100, 0, ("a", "b", "c"), estimated, Aggregate(symbol, p, 100, 3, ()))


PRICES = {"BTC": price("BTC", 42_000), "ETH": price("ETH", 2_200), "USDC": price("USDC", 1)}


def fund(holdings: list[Holding], *, fees: int = 0, withdrawals: int = 0, borrowed: int = 0,
         shares: int = 690_000 * E18) -> FundSnapshot:  # fmt: skip
    return FundSnapshot(1, "0x" + "1" * 40, tuple(holdings), fees, withdrawals, borrowed, shares, 0, 3,
                        NavOnChain(0, 0, 0, 0, 0))  # fmt: skip


SEED = [Holding(BTC, 8, 10 * 10**8), Holding(ETH, 18, 100 * E18), Holding(USDC, 6, 50_000 * 10**6)]


def test_the_seed_example_is_690k() -> None:
    v = value_fund(fund(SEED), SYMBOLS, PRICES)
    assert v.gross == v.nav == 690_000 * E18
    assert [(a.asset, a.value) for a in v.assets] == [("BTC", 420_000 * E18), ("ETH", 220_000 * E18),
                                                      ("USDC", 50_000 * E18)]  # fmt: skip
    assert v.nav_per_share == E18


def test_liabilities_are_subtracted() -> None:
    v = value_fund(
        fund(SEED, fees=1_250 * E18, withdrawals=10_000 * E18, borrowed=20_000 * E18), SYMBOLS, PRICES
    )
    assert v.liabilities.total == 31_250 * E18
    assert v.nav == 658_750 * E18


def test_haircut_collateral_view_beside_nav() -> None:
    haircuts = {"BTC": Decimal("0.0625"), "ETH": Decimal("0.1")}
    v = value_fund(fund(SEED, borrowed=20_000 * E18), SYMBOLS, PRICES, haircuts)
    assert v.collateral == (420_000 * 15 // 16 + 220_000 * 9 // 10 + 50_000) * E18
    assert v.net_collateral == v.collateral - 20_000 * E18
    assert v.nav == 670_000 * E18  # NAV itself ignores haircuts


def test_values_round_down_per_holding() -> None:
    # 1e-8 of a token at $1.9999999999e-8 is worth 199.99999999e-18 USD → 199e-18.
    assert holding_value(1, 8, 19_999_999_999) == 199
    assert holding_value(1, 18, E18 - 1) == 0
    assert holding_value(3, 0, E18 // 3) == E18 - 1
    assert after_haircut(100, Decimal("0.3333")) == 66
    with pytest.raises(ValueError):
        after_haircut(100, Decimal("1.5"))


def test_missing_price_and_unknown_asset_are_named() -> None:
    with pytest.raises(PriceUnavailable, match="ETH"):
        value_fund(fund(SEED), SYMBOLS, {"BTC": PRICES["BTC"], "USDC": PRICES["USDC"]})
    stranger = "0x" + "9" * 40
    with pytest.raises(UnknownAsset, match=stranger):
        value_fund(fund([*SEED, Holding(stranger, 18, 1)]), SYMBOLS, PRICES)
    # Held at zero: listed nowhere, needs no price.
    v = value_fund(fund([*SEED, Holding(stranger, 18, 0)]), SYMBOLS, PRICES)
    assert v.nav == 690_000 * E18


def test_estimated_price_makes_the_nav_estimated() -> None:
    v = value_fund(fund(SEED), SYMBOLS, {**PRICES, "ETH": price("ETH", 2_200, estimated=True)})
    assert v.estimated


def test_negative_nav_is_reported_not_hidden() -> None:
    v = value_fund(fund(SEED, borrowed=700_000 * E18), SYMBOLS, PRICES)
    assert v.nav == -10_000 * E18 and v.nav_per_share is None


@given(
    st.lists(
        st.tuples(st.integers(0, 10**30), st.sampled_from([0, 6, 8, 18]), st.integers(1, 10**24)), max_size=20
    ),
    st.integers(0, 10**30),
)
def test_valuation_is_exact_and_additive(rows: list[tuple[int, int, int]], liabilities: int) -> None:
    holdings, symbols, prices = [], {}, {}
    for i, (amount, decimals, p) in enumerate(rows):
        address = f"0x{i:040x}"
        holdings.append(Holding(address, decimals, amount))
        symbols[address] = f"T{i}"
        prices[f"T{i}"] = AssetPrice(f"T{i}", p, 100, 0, (), False, Aggregate(f"T{i}", p, 100, 1, ()))
    v = value_fund(fund(holdings, fees=liabilities, shares=E18), symbols, prices)
    assert v.gross == sum(a * p // 10**d for a, d, p in rows)
    assert v.nav == v.gross - liabilities
    assert v.nav_per_share == nav_per_share(v.nav, E18)
    assert v.collateral == v.gross  # no haircuts


def test_offexchange_balances_join_the_aum() -> None:
    from publisher.sources.offexchange import OffExchangeBalance

    balances = [
        OffExchangeBalance("BTC", Decimal("0.5"), None, Decimal("0.0625"), 0),
        OffExchangeBalance("PAXG", Decimal("2"), 5_300 * E18, Decimal("0.2"), 100 * E18),
    ]
    v = value_fund(fund(SEED), SYMBOLS, PRICES, {}, balances)
    off = {a.asset: a for a in v.assets if a.venue == "off-exchange"}
    assert off["BTC"].value == 21_000 * E18 and off["BTC"].collateral == 21_000 * E18 * 15 // 16
    assert off["PAXG"].value == 5_300 * E18 and off["PAXG"].sources == ("custodian",)
    assert v.gross == (690_000 + 21_000 + 5_300) * E18
    assert v.liabilities.offexchange_borrowed == 100 * E18 and v.nav == v.gross - 100 * E18
    # An off-exchange asset with neither an oracle price nor a market value cannot be valued.
    with pytest.raises(PriceUnavailable, match="DOGE"):
        value_fund(
            fund(SEED), SYMBOLS, PRICES, {}, [OffExchangeBalance("DOGE", Decimal(1), None, Decimal(0), 0)]
        )
