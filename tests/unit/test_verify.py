"""The reconciliation's pure parts: tolerance and statement parsing, the amount / price split of a
difference, the largest difference named, and the verdict from plain data."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from publisher._exceptions import NavPubError
from publisher.engine import report_inputs
from publisher.snapshot import NavOnChain
from publisher.store import Report
from publisher.value import AssetValue, Liabilities, Valuation, after_haircut, holding_value
from publisher.verify import (
    AssetDiff,
    LiabilityDiff,
    Position,
    Recomputed,
    Tolerance,
    VerifyInputError,
    describe,
    diff_asset,
    diff_assets,
    diff_liabilities,
    largest,
    parse_basis,
    parse_reported,
    parse_tolerance,
    published_breakdown,
    reconcile,
    render_verify,
    signed_usd,
)

E18 = 10**18
HAIRCUTS = {"BTC": Decimal("0.0625"), "ETH": Decimal("0.1"), "USDC": Decimal(0)}
DECIMALS = {"BTC": 8, "ETH": 18, "USDC": 6}


# -- tolerance, statement, basis ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "absolute"),
    [
        ("5", 5 * E18),
        ("$5", 5 * E18),
        (" 5.00 ", 5 * E18),
        ("0", 0),
        ("0.01", E18 // 100),
        ("1,000", 1_000 * E18),
        ("1e-18", 1),
    ],
)
def test_absolute_tolerance(text: str, absolute: int) -> None:
    tol = parse_tolerance(text)
    assert tol.absolute == absolute and tol.percent is None
    assert tol.usd(690_000 * E18) == tol.usd(-5) == absolute  # independent of the NAV


def test_relative_tolerance_is_a_share_of_the_nav_rounded_down() -> None:
    tol = parse_tolerance("0.1%")
    assert tol.percent == Decimal("0.1") and tol.absolute is None
    assert tol.usd(690_000 * E18) == 690 * E18
    assert tol.usd(-690_000 * E18) == 690 * E18  # of |NAV|
    assert parse_tolerance("0.1%").usd(1_234_567) == 1_234  # 1,234.567 wei, rounded down (stricter)
    assert parse_tolerance("0%").usd(690_000 * E18) == 0
    assert parse_tolerance("100%").usd(7 * E18) == 7 * E18
    assert parse_tolerance(" 0.5 % ").usd(200 * E18) == E18


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("abc", "is not an amount"),
        ("5%%", "is not a percentage"),
        ("-1", "is negative"),
        ("-0.1%", "between 0% and 100%"),
        ("101%", "between 0% and 100%"),
        ("", "is not an amount"),
        ("NaN", "is not an amount"),
        ("inf", "is not an amount"),
        ("%", "is not a percentage"),
        ("$5%", "is not a percentage"),
        ("1e-19", "more than 18 decimals"),
        ("1,5", "is not an amount"),
    ],
)
def test_bad_tolerance_is_one_line_naming_the_option(text: str, why: str) -> None:
    with pytest.raises(VerifyInputError) as exc:
        parse_tolerance(text)
    message = str(exc.value)
    assert isinstance(exc.value, NavPubError) and message.startswith("--tolerance: ")
    assert why in message and "\n" not in message


def test_reported_figures() -> None:
    assert parse_reported("690000") == 690_000 * E18
    assert parse_reported("$690,000.25") == 690_000 * E18 + E18 // 4
    assert parse_reported("-12.5") == -12 * E18 - E18 // 2  # a net balance can be negative
    assert parse_reported("0.000000000000000001") == 1
    for bad, why in (
        ("lots", "not a USD amount"),
        ("1,5", "not a USD amount"),
        ("", "not a USD amount"),
        ("0.0000000000000000001", "more than 18 decimals"),
        ("1.2.3", "not a USD amount"),
    ):
        with pytest.raises(VerifyInputError, match=f"^--reported: .*{why}"):
            parse_reported(bad)


def test_basis() -> None:
    assert parse_basis("nav") == "nav" and parse_basis(" NET ") == "net"
    with pytest.raises(VerifyInputError, match=r"^--basis: 'gross' is not one of nav .* or net"):
        parse_basis("gross")


# -- the split of a difference ----------------------------------------------------------------------


def pos(
    asset: str, amount: int, price: int, *, decimals: int | None = None, venue: str = "on-chain"
) -> Position:
    d = DECIMALS.get(asset, 18) if decimals is None else decimals
    return Position(asset, venue, amount, d, price, holding_value(amount, d, price))


def test_price_only_is_all_price_effect() -> None:
    row = diff_asset(pos("ETH", 100 * E18, 2_200 * E18), pos("ETH", 100 * E18, 2_202_70 * E18 // 100))
    assert (row.difference, row.amount_effect, row.price_effect) == (270 * E18, 0, 270 * E18)
    assert describe(row) == "ETH +$270.00 (price $2,200.00 → $2,202.70)"


def test_amount_only_is_all_amount_effect() -> None:
    row = diff_asset(pos("BTC", 10 * 10**8, 42_000 * E18), pos("BTC", 9 * 10**8, 42_000 * E18))
    assert (row.difference, row.amount_effect, row.price_effect) == (-42_000 * E18, -42_000 * E18, 0)
    assert describe(row) == "BTC −$42,000.00 (amount 10 → 9)"


def test_amount_and_price_split() -> None:
    # 100 → 101 ETH and $2,200 → $2,300: the extra ETH at the old price is $2,200, the rest
    # (101 ETH × $100) is the price's.
    row = diff_asset(pos("ETH", 100 * E18, 2_200 * E18), pos("ETH", 101 * E18, 2_300 * E18))
    assert row.amount_effect == 2_200 * E18 and row.price_effect == 10_100 * E18
    assert row.difference == row.amount_effect + row.price_effect == 232_300 * E18 - 220_000 * E18
    assert describe(row) == "ETH +$12,300.00 (amount 100 → 101, price $2,200.00 → $2,300.00)"


def test_new_and_closed_holdings() -> None:
    new = diff_asset(None, pos("BTC", 10**8, 42_000 * E18))
    assert (new.difference, new.amount_effect, new.price_effect) == (42_000 * E18, 42_000 * E18, 0)
    assert describe(new) == "BTC +$42,000.00 (not in the published NAV; 1 BTC held now)"
    gone = diff_asset(pos("USDC", 5 * 10**6, E18), None)
    assert (gone.difference, gone.amount_effect, gone.price_effect) == (-5 * E18, -5 * E18, 0)
    assert describe(gone) == "USDC −$5.00 (5 USDC published, not held now)"


def test_off_exchange_quantities_on_different_scales() -> None:
    # 1.5 BTC (1 decimal) then 1.55 BTC (2 decimals): the 0.05 BTC at the old price is amount.
    then = pos("BTC", 15, 40_000 * E18, decimals=1, venue="off-exchange")
    now = pos("BTC", 155, 40_000 * E18, decimals=2, venue="off-exchange")
    row = diff_asset(then, now)
    assert (row.amount_effect, row.price_effect) == (2_000 * E18, 0)
    assert describe(row) == "BTC +$2,000.00 (amount 1.5 → 1.55)"


@given(
    a0=st.integers(0, 10**30),
    a1=st.integers(0, 10**30),
    p0=st.integers(1, 10**33),
    p1=st.integers(1, 10**33),
    decimals=st.sampled_from([0, 6, 8, 18]),
)
def test_effects_add_up_and_vanish_when_unchanged(a0: int, a1: int, p0: int, p1: int, decimals: int) -> None:
    then, now = pos("X", a0, p0, decimals=decimals), pos("X", a1, p1, decimals=decimals)
    row = diff_asset(then, now)
    assert row.amount_effect + row.price_effect == row.difference == now.value - then.value
    assert diff_asset(then, pos("X", a1, p0, decimals=decimals)).price_effect == 0
    assert diff_asset(then, pos("X", a0, p1, decimals=decimals)).amount_effect == 0


def test_matching_by_asset_and_venue() -> None:
    then = [pos("BTC", 10**8, 1), pos("ETH", E18, 1), pos("ETH", E18, 1, venue="off-exchange")]
    now = [pos("ETH", E18, 1), pos("USDC", 10**6, E18), pos("BTC", 10**8, 1)]
    rows = diff_assets(then, now)
    assert [(r.asset, r.venue, r.then is not None, r.now is not None) for r in rows] == [
        ("ETH", "on-chain", True, True),
        ("USDC", "on-chain", False, True),
        ("BTC", "on-chain", True, True),
        ("ETH", "off-exchange", True, False),
    ]


# -- the largest difference -----------------------------------------------------------------------


def test_largest_is_by_absolute_nav_effect_across_assets_and_liabilities() -> None:
    assets = [
        diff_asset(pos("BTC", 10**8, 42_000 * E18), pos("BTC", 10**8, 41_990 * E18)),  # −$10
        diff_asset(pos("ETH", E18, 2_200 * E18), pos("ETH", E18, 2_207 * E18)),  # +$7
    ]
    fees = diff_liabilities({"pending_fees": 100 * E18}, {"pending_fees": 112 * E18})
    assert largest(assets, []) is assets[0]
    top = largest(assets, fees)
    assert isinstance(top, LiabilityDiff) and top.nav_effect == -12 * E18  # a rise lowers the NAV
    assert describe(top) == "pending fees −$12.00 (liability $100.00 → $112.00)"
    # All zero: nothing to name.
    flat = [diff_asset(pos("ETH", E18, E18), pos("ETH", E18, E18))]
    assert largest(flat, diff_liabilities({}, {})) is None
    # A tie goes to the first row (assets in today's order, then the liabilities).
    tie = [AssetDiff("A", "on-chain", None, None, 5, 5, 0), AssetDiff("B", "on-chain", None, None, -5, -5, 0)]
    assert largest(tie, []) is tie[0]


def test_signed_amounts_keep_sub_cent_digits() -> None:
    assert signed_usd(100 * E18) == "+$100.00" and signed_usd(-E18 // 2) == "−$0.50"
    assert signed_usd(0) == "$0.00" and signed_usd(1) == "+$0.000000000000000001"
    assert signed_usd(-(10**15)) == "−$0.001"


# -- the verdict ----------------------------------------------------------------------------------


def valuation(
    *, eth: int = 2_200, eth_amount: int = 100, fees: int = 1_250, estimated: bool = False
) -> Valuation:
    """The seed's fund 1: 10 BTC, ETH, 70,000 USDC; $20,000 borrowed."""
    slices = []
    for asset, amount, price in (
        ("BTC", 10 * 10**8, 42_000 * E18),
        ("ETH", eth_amount * E18, eth * E18),
        ("USDC", 70_000 * 10**6, E18),
    ):
        value = holding_value(amount, DECIMALS[asset], price)
        slices.append(
            AssetValue(
                asset,
                "on-chain",
                None,
                amount,
                DECIMALS[asset],
                price,
                value,
                HAIRCUTS[asset],
                after_haircut(value, HAIRCUTS[asset]),
                100,
                ("feed:a", "feed:b"),
                estimated and asset == "ETH",
            )
        )
    li = Liabilities(fees * E18, 0, 20_000 * E18, 0)
    gross = sum(s.value for s in slices)
    collateral = sum(s.collateral for s in slices)
    return Valuation(
        1,
        gross,
        li,
        gross - li.total,
        10**24,
        0,
        None,
        collateral,
        collateral - li.borrowed,
        estimated,
        6,
        tuple(slices),
    )


def stored(v: Valuation, as_of: int = 1_000) -> Report:
    """The report the published NAV came from, its inputs as the engine records them."""
    return Report(
        fund_id=1,
        created_at=as_of,
        trigger="scheduled",
        block_number=7,
        decision="publish",
        reason="",
        status="confirmed",
        nav=v.nav,
        inputs=report_inputs(v, {}, {}, chain(0, 0)),
        as_of=as_of,
        id=42,
    )


def chain(nav: int, rnd: int = 1, flags: int = 0, as_of: int = 1_000) -> NavOnChain:
    return NavOnChain(nav=nav, as_of=as_of, round=rnd, flags=flags, high_water_mark=nav)


def now(v: Valuation | None, failure: str | None = None) -> Recomputed:
    return Recomputed(v, failure, block_number=9, at=1_060)


SEED_NAV = (420_000 + 220_000 + 70_000 - 1_250 - 20_000) * E18


def test_published_breakdown_round_trips_the_report_inputs() -> None:
    v = valuation()
    positions, liabilities = published_breakdown(stored(v).inputs)
    assert [(p.asset, p.amount, p.decimals, p.price, p.value) for p in positions] == [
        (a.asset, a.amount, a.decimals, a.price, a.value) for a in v.assets
    ]
    assert liabilities == {
        "pending_fees": 1_250 * E18,
        "pending_withdrawals": 0,
        "borrowed": 20_000 * E18,
        "offexchange_borrowed": 0,
    }


def test_unchanged_passes_with_a_zero_breakdown() -> None:
    v = valuation()
    r = reconcile(1, chain(SEED_NAV), now(v), stored(v), tolerance=parse_tolerance("5"), stale_after_s=3600)
    assert r.passed and r.verdict == "PASS" and r.difference is not None and r.difference.raw == "0"
    assert r.reason == (
        "PASS: recomputed NAV $688,750.00 matches the published $688,750.00 within $5.00 (difference $0.00)"
    )
    assert r.breakdown_available and r.largest is None and r.warnings == []
    assert r.published is not None and (r.published.report_id, r.published.age_s) == (42, 60)
    assert [a.difference.raw for a in r.assets if a.difference] == ["0", "0", "0"]


def test_a_difference_exactly_at_the_tolerance_passes_one_wei_more_fails() -> None:
    v = valuation(eth=2_201)  # +$100 on 100 ETH
    for tol, passed in (("100", True), ("99.999999999999999999", False), ("0.1%", True), ("0.01%", False)):
        r = reconcile(1, chain(SEED_NAV), now(v), stored(valuation()), tolerance=parse_tolerance(tol))
        assert r.passed is passed, tol
    # Relative: 0.1 % of the published $688,750 is $688.75; exactly that passes, a wei more fails.
    at = valuation(eth=2_200)
    published = at.nav - 688_750 * E18 // 1000
    r = reconcile(1, chain(published), now(at), None, tolerance=Tolerance("x", percent=Decimal("0.1")))
    assert r.tolerance.usd.raw == str(published // 1000) and not r.passed  # of the published NAV
    exact = Tolerance("x", absolute=abs(at.nav - published))
    assert reconcile(1, chain(published), now(at), None, tolerance=exact).passed
    over = Tolerance("x", absolute=abs(at.nav - published) - 1)
    assert not reconcile(1, chain(published), now(at), None, tolerance=over).passed


def test_fail_names_the_largest_asset_and_the_others_are_zero() -> None:
    v = valuation(eth=2_202)
    r = reconcile(1, chain(SEED_NAV), now(v), stored(valuation()), tolerance=parse_tolerance("5"))
    assert not r.passed and r.verdict == "FAIL" and r.within is False
    assert r.reason == (
        "FAIL: recomputed NAV $688,950.00 differs from the published $688,750.00 by +$200.00 "
        "(tolerance $5.00); largest difference ETH +$200.00 (price $2,200.00 → $2,202.00)"
    )
    by_asset = {a.asset: a for a in r.assets}
    assert by_asset["ETH"].price_effect is not None and by_asset["ETH"].price_effect.raw == str(200 * E18)
    assert {k: a.difference.raw for k, a in by_asset.items() if a.difference} == {
        "BTC": "0",
        "ETH": str(200 * E18),
        "USDC": "0",
    }


def test_fail_names_a_liability() -> None:
    r = reconcile(
        1, chain(SEED_NAV), now(valuation(fees=1_300)), stored(valuation()), tolerance=parse_tolerance("5")
    )
    assert r.largest == "pending fees −$50.00 (liability $1,250.00 → $1,300.00)"
    fees = next(li for li in r.liabilities if li.kind == "pending_fees")
    assert fees.difference is not None and fees.nav_effect is not None
    assert (fees.difference.raw, fees.nav_effect.raw) == (str(50 * E18), str(-50 * E18))


def test_without_the_report_totals_only() -> None:
    r = reconcile(1, chain(SEED_NAV), now(valuation(eth=2_202)), None, tolerance=parse_tolerance("5"))
    assert not r.passed and not r.breakdown_available and r.largest is None
    assert r.reason.endswith("by +$200.00 (tolerance $5.00)")
    assert any(w.startswith("published breakdown unavailable") for w in r.warnings)
    assert all(a.published is None and a.difference is None for a in r.assets)
    assert [a.asset for a in r.assets] == ["BTC", "ETH", "USDC"]


def test_never_published_and_unvaluable() -> None:
    r = reconcile(3, chain(0, rnd=0, as_of=0), now(valuation()), None, tolerance=parse_tolerance("5"))
    assert r.reason == "FAIL: fund 3 has no published NAV yet" and r.published is None
    assert r.recomputed is not None and r.recomputed.nav.raw == str(SEED_NAV)
    failure = "fund 1: ETH: no price (1 of 3 sources; no cached price)"
    r = reconcile(1, chain(SEED_NAV), now(None, failure), None, tolerance=parse_tolerance("5"))
    assert not r.passed and r.recomputed is None and r.difference is None
    assert r.reason == f"FAIL: the NAV cannot be recomputed now: {failure}"


def test_statement_against_nav_and_net_collateral() -> None:
    v = valuation()
    net = v.net_collateral  # 393,750 + 198,000 + 70,000 − 20,000
    assert net == 641_750 * E18
    tol = parse_tolerance("5")

    def check(reported: int, basis: str = "nav") -> tuple[bool, bool | None, str]:
        r = reconcile(1, chain(SEED_NAV), now(v), stored(v), tolerance=tol, reported=reported, basis=basis)  # type: ignore[arg-type]
        assert r.reported is not None
        return r.passed, r.reported.within, r.reason

    assert check(SEED_NAV)[:2] == (True, True)
    assert check(SEED_NAV + 5 * E18)[:2] == (True, True)  # at the tolerance
    passed, within, reason = check(SEED_NAV - 100 * E18)
    assert (passed, within) == (False, False)
    assert reason == (
        "FAIL: the statement's $688,650.00 differs from the recomputed NAV $688,750.00 by −$100.00 "
        "(tolerance $5.00)"
    )
    assert check(net, "net")[:2] == (True, True)
    assert check(net, "nav")[:2] == (False, False)
    assert "recomputed net collateral" in check(SEED_NAV, "net")[2]


def test_estimated_recomputation_and_publication_are_warnings() -> None:
    v = valuation(estimated=True)
    r = reconcile(
        1,
        chain(SEED_NAV, flags=1),
        now(v),
        stored(valuation()),
        tolerance=parse_tolerance("5"),
        stale_after_s=30,
    )
    assert r.passed and r.recomputed is not None and r.recomputed.estimated
    assert r.published is not None and r.published.estimated
    assert len(r.warnings) == 3
    assert "cached prices (ETH)" in r.warnings[0] and "weaker" in r.warnings[0]
    assert "published NAV is flagged estimated" in r.warnings[1]
    assert "60 s old (cadence 30 s)" in r.warnings[2]


def test_render_pass_and_fail() -> None:
    for v, word in ((valuation(), "PASS"), (valuation(eth=2_300), "FAIL")):
        console = Console(record=True, width=200)
        render_verify(
            console,
            reconcile(
                1,
                chain(SEED_NAV),
                now(v),
                stored(valuation()),
                tolerance=parse_tolerance("5"),
                reported=SEED_NAV,
            ),
        )
        text = console.export_text()
        assert text.splitlines()[-1].startswith(f"{word}: ")
        assert "ETH" in text and "statement vs nav" in text and "pending fees" in text


def test_an_unreadable_report_falls_back_to_totals() -> None:
    v = valuation()
    bad = stored(v)
    bad.inputs["assets"][0]["price"] = "not a number"
    r = reconcile(1, chain(SEED_NAV), now(v), bad, tolerance=parse_tolerance("5"))
    assert r.passed and not r.breakdown_available
    assert r.warnings[0].startswith("the stored report 42's breakdown cannot be read")
