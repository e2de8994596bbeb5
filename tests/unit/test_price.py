"""Aggregation rules with plain data: validity, median, deviation, confidence, cache fallback."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher.price import (
    CachedPrice,
    PriceRules,
    PriceUnavailable,
    aggregate,
    deviation_bps,
    median,
    resolve,
    to_cache,
)
from publisher.quotes import MAX_PRICE_E18, Quote, SourceFailure, decimal_to_e18, scale_to_e18

E18 = 10**18
NOW = 1_800_000_000
RULES = PriceRules()


def q(price: int, source: str = "s", *, age: int = 0, conf: int = 100, max_age: int = 3600) -> Quote:
    return Quote("BTC", price, conf, NOW - age, source, max_age)


def test_three_agreeing_sources_score_100() -> None:
    agg = aggregate("BTC", [q(100 * E18, "a"), q(100 * E18, "b"), q(100 * E18, "c")], NOW, RULES)
    assert (agg.price, agg.confidence, agg.used) == (100 * E18, 100, ("a", "b", "c"))


def test_one_live_source_of_three_scores_below_50() -> None:
    results = [q(100 * E18, "a"), q(100 * E18, "b", age=3601), SourceFailure("BTC", "c", "timed out")]
    agg = aggregate("BTC", results, NOW, RULES)
    assert agg.price == 100 * E18 and agg.confidence == 33 < RULES.min_confidence
    assert [v.status for v in agg.verdicts] == ["used", "invalid", "failed"]
    assert "stale: 3601 s old, limit 3600 s" in agg.verdicts[1].reason


def test_source_moved_50_percent_is_dropped_and_the_median_holds() -> None:
    agg = aggregate("BTC", [q(42_000 * E18, "a"), q(42_010 * E18, "b"), q(63_000 * E18, "c")], NOW, RULES)
    assert agg.price == 42_005 * E18
    assert [v.status for v in agg.verdicts] == ["used", "used", "deviating"]
    assert agg.verdicts[2].deviation_bps == 4997  # 20,990 / 42,010 from the first median, rounded up
    assert agg.confidence == 100 * 2 * (2000 - 2) // (3 * 2000) == 66


@pytest.mark.parametrize(
    ("third", "kept"), [(110 * E18, 3), (110 * E18 + 1, 2), (90 * E18, 3), (90 * E18 - 1, 2)]
)
def test_deviation_of_exactly_10_percent_is_kept(third: int, kept: int) -> None:
    agg = aggregate("BTC", [q(100 * E18, "a"), q(100 * E18, "b"), q(third, "c")], NOW, RULES)
    assert len(agg.used) == kept and agg.price == 100 * E18


def test_odd_and_even_medians() -> None:
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2  # floor of (2 + 3) / 2
    assert median([5]) == 5
    with pytest.raises(ValueError):
        median([])


def test_even_count_far_apart_keeps_nothing_and_scores_zero() -> None:
    agg = aggregate("BTC", [q(100 * E18, "a"), q(200 * E18, "b")], NOW, RULES)
    assert agg.price == 150 * E18 and agg.confidence == 0
    assert {v.status for v in agg.verdicts} == {"deviating"}


def test_source_confidence_weighs_in() -> None:
    agg = aggregate(
        "BTC",
        [q(100 * E18, "a", conf=100), q(100 * E18, "b", conf=40), q(100 * E18, "c", conf=10)],
        NOW,
        RULES,
    )
    assert agg.confidence == (100 + 40 + 10) // 3 == 50


def test_freshness_boundaries() -> None:
    at_limit = aggregate("BTC", [q(E18, age=3600)], NOW, RULES)
    assert at_limit.confidence == 100
    future = aggregate("BTC", [Quote("BTC", E18, 100, NOW + 1, "f", 60)], NOW, RULES)
    assert future.price is None and "future" in future.verdicts[0].reason


@pytest.mark.parametrize("price", [0, -1, MAX_PRICE_E18 + 1])
def test_impossible_prices_are_invalid(price: int) -> None:
    agg = aggregate("BTC", [q(price)], NOW, RULES)
    assert agg.price is None and agg.verdicts[0].status == "invalid"


def test_live_confident_price_is_used_and_cached() -> None:
    agg = aggregate("BTC", [q(7 * E18, "a")], NOW, RULES)
    p = resolve(agg, None, NOW, RULES)
    assert (p.price, p.estimated, p.as_of) == (7 * E18, False, NOW)
    assert to_cache(p) == CachedPrice("BTC", 7 * E18, 100, NOW, ("a",))


@pytest.mark.parametrize(("age", "usable"), [(3600, True), (3601, False)])
def test_cache_is_usable_for_exactly_3600_seconds(age: int, usable: bool) -> None:
    agg = aggregate(
        "BTC", [q(E18, "a"), SourceFailure("BTC", "b", "down"), SourceFailure("BTC", "c", "down")], NOW, RULES
    )
    cached = CachedPrice("BTC", 9 * E18, 100, NOW - age, ("a", "b", "c"))
    if usable:
        p = resolve(agg, cached, NOW, RULES)
        assert (p.price, p.estimated, p.confidence) == (9 * E18, True, 33)
        assert to_cache(p) is None  # a cached price never refreshes the cache
    else:
        with pytest.raises(PriceUnavailable, match="cached price is 3601 s old"):
            resolve(agg, cached, NOW, RULES)


def test_unavailable_names_the_asset_and_every_source_state() -> None:
    agg = aggregate(
        "ETH", [SourceFailure("ETH", "http:kraken", "timed out after 5 s"), q(0, "feed:0x1")], NOW, RULES
    )
    with pytest.raises(PriceUnavailable) as exc:
        resolve(agg, None, NOW, RULES)
    text = str(exc.value)
    assert text.startswith("ETH: cannot be priced: no valid source, and no cached price")
    assert "http:kraken: failed: timed out after 5 s" in text and "feed:0x1: invalid" in text


@pytest.mark.parametrize(("answer", "decimals", "expected"), [
    (4_200_000_000_000, 8, 42_000 * E18),
    (42_000_000_000, 6, 42_000 * E18),
    (42_000 * E18, 18, 42_000 * E18),
    (42_000 * 10**20 + 99, 20, 42_000 * E18),  # rounds toward zero beyond 18 decimals
])  # fmt: skip
def test_feed_decimals_6_8_18(answer: int, decimals: int, expected: int) -> None:
    assert scale_to_e18(answer, decimals) == expected


def test_decimal_prices_are_exact() -> None:
    assert decimal_to_e18("42000.123456789012345678") == 42000123456789012345678
    assert decimal_to_e18("0.0000000000000000019") == 1


# -- properties ------------------------------------------------------------------------------

prices = st.integers(min_value=1, max_value=MAX_PRICE_E18)


@given(st.lists(prices, min_size=1, max_size=15))
def test_median_lies_between_min_and_max_and_ignores_order(values: list[int]) -> None:
    m = median(values)
    assert min(values) <= m <= max(values)
    assert m == median(list(reversed(values)))
    # At least half the values are ≤ m and at least half are ≥ m.
    assert 2 * sum(v <= m for v in values) >= len(values)
    assert 2 * sum(v >= m for v in values) >= len(values)


@given(st.lists(prices, min_size=1, max_size=12), st.integers(min_value=0, max_value=5))
def test_aggregate_invariants(values: list[int], dead: int) -> None:
    results = [q(v, f"s{i}") for i, v in enumerate(values)] + [
        SourceFailure("BTC", f"d{i}", "down") for i in range(dead)
    ]
    agg = aggregate("BTC", results, NOW, RULES)
    assert 0 <= agg.confidence <= 100
    used = [v.price for v in agg.verdicts if v.status == "used"]
    if used:
        assert agg.price is not None and min(used) <= agg.price <= max(used)
        assert all(deviation_bps(p, agg.price) <= 2 * RULES.max_deviation_bps for p in used)
    # More dead sources never raise the confidence.
    more_dead = aggregate("BTC", [*results, SourceFailure("BTC", "x", "down")], NOW, RULES)
    assert more_dead.confidence <= agg.confidence


def test_large_prices_with_many_decimals_truncate_exactly() -> None:
    assert decimal_to_e18("99999999999.9999999999999999999") == 99999999999999999999999999999
