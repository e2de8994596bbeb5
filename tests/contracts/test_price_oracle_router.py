"""PriceOracleRouter on eth-tester: median, deviation, confidence, staleness, raw views."""

from __future__ import annotations

import pytest

from tests.conftest import Local, reverts

E18 = 10**18
MAX_AGE = 3600


def confidence(kept: int, configured: int, spread_bps: int, limit_bps: int = 1000) -> int:
    """The documented formula, written out independently of the contract."""
    spread = min(spread_bps, 2 * limit_bps)
    return (100 * kept * (2 * limit_bps - spread)) // (configured * 2 * limit_bps)


def feeds(c: Local, *answers: tuple[int, int]) -> list:
    """Mock feeds from (decimals, answer) pairs."""
    return [c.deploy("MockV3Aggregator", dec, ans) for dec, ans in answers]


def configure(c: Local, asset: str, fs: list, max_age: int = MAX_AGE) -> None:
    c.router.functions.setSources(asset, [f.address for f in fs], [max_age] * len(fs)).transact(
        {"from": c.admin}
    )


ASSET = "0x00000000000000000000000000000000000000A1"


def price(c: Local, asset: str = ASSET) -> tuple[int, int]:
    return tuple(c.router.functions.getPrice(asset).call())


def test_three_agreeing_feeds_with_different_decimals(local: Local) -> None:
    configure(local, ASSET, feeds(local, (8, 42_000 * 10**8), (18, 42_000 * E18), (6, 42_000 * 10**6)))
    assert price(local) == (42_000 * E18, 100)


def test_one_of_three_moved_50_percent_is_dropped(local: Local) -> None:
    fs = feeds(local, (8, 2_000 * 10**8), (8, 2_010 * 10**8), (8, 3_000 * 10**8))
    configure(local, ASSET, fs)
    p, conf = price(local)
    # Kept: 2,000 and 2,010; even count → floor of their mean.
    assert p == 2_005 * E18
    # Largest deviation of a kept source from 2,005: 5/2,005 = 24.9 bps → 25 (rounded up).
    assert conf == confidence(kept=2, configured=3, spread_bps=25) == 65
    assert conf >= 50


def test_one_live_source_of_three_scores_below_50(local: Local) -> None:
    fs = feeds(local, (8, 100 * 10**8), (8, 100 * 10**8), (8, 100 * 10**8))
    configure(local, ASSET, fs)
    now = local.now()
    for f in fs[:2]:
        f.functions.updateRoundData(2, 100 * 10**8, now - MAX_AGE - 1, now - MAX_AGE - 1).transact(
            {"from": local.admin}
        )
    p, conf = price(local)
    assert p == 100 * E18
    assert conf == 33 < 50
    with reverts("LowConfidence", ASSET, 33, 50):
        local.router.functions.getPriceChecked(ASSET).call()


@pytest.mark.parametrize(
    ("third", "kept"),
    [
        (110 * 10**8, 3),  # exactly 10 % from the median of 100 → kept
        (110 * 10**8 + 1, 2),  # a hair beyond → dropped
        (90 * 10**8, 3),  # exactly 10 % below → kept
        (90 * 10**8 - 1, 2),
    ],
)
def test_deviation_limit_is_inclusive_at_exactly_10_percent(local: Local, third: int, kept: int) -> None:
    configure(local, ASSET, feeds(local, (8, 100 * 10**8), (8, 100 * 10**8), (8, third)))
    p, conf = price(local)
    assert p == 100 * E18
    if kept == 3:
        assert conf == confidence(kept=3, configured=3, spread_bps=1000) == 50
    else:
        assert conf == confidence(kept=2, configured=3, spread_bps=0) == 66


def test_even_count_takes_floor_of_the_two_middle_values(local: Local) -> None:
    configure(
        local, ASSET, feeds(local, (18, 100 * E18), (18, 101 * E18 + 1), (18, 102 * E18), (18, 99 * E18))
    )
    p, _ = price(local)
    assert p == (100 * E18 + 101 * E18 + 1) // 2


def test_stale_future_zero_and_negative_answers_are_invalid(local: Local) -> None:
    fs = feeds(local, *[(8, 100 * 10**8)] * 5)
    configure(local, ASSET, fs)
    now = local.now()
    fs[0].functions.updateRoundData(2, 100 * 10**8, now + 600, now).transact({"from": local.admin})  # future
    fs[1].functions.updateAnswer(0).transact({"from": local.admin})
    fs[2].functions.updateAnswer(-5).transact({"from": local.admin})
    fs[3].functions.updateRoundData(2, 100 * 10**8, 0, 0).transact({"from": local.admin})  # incomplete round
    p, conf = price(local)
    assert p == 100 * E18
    assert conf == confidence(kept=1, configured=5, spread_bps=0) == 20
    fs[4].functions.updateRoundData(2, 100 * 10**8, now - MAX_AGE - 1, now).transact({"from": local.admin})
    with reverts("NoFreshPrice", ASSET, 5):
        local.router.functions.getPrice(ASSET).call()


def test_max_age_boundary_is_inclusive(local: Local) -> None:
    (f,) = feeds(local, (8, 100 * 10**8))
    configure(local, ASSET, [f])
    t = local.now()
    f.functions.updateRoundData(2, 100 * 10**8, t, t).transact({"from": local.admin})
    local.set_time(t + MAX_AGE)
    assert price(local) == (100 * E18, 100)
    local.set_time(t + MAX_AGE + 1)
    with reverts("NoFreshPrice"):
        local.router.functions.getPrice(ASSET).call()


def test_unknown_asset_and_bad_configuration(local: Local) -> None:
    with reverts("UnknownAsset", ASSET):
        local.router.functions.getPrice(ASSET).call()
    (f,) = feeds(local, (8, 1))
    with reverts("BadSource", local.outsider, MAX_AGE, 0):
        local.router.functions.setSources(ASSET, [local.outsider], [MAX_AGE]).transact({"from": local.admin})
    with reverts("BadSource", f.address, 0, 0):
        local.router.functions.setSources(ASSET, [f.address], [0]).transact({"from": local.admin})
    with reverts("BadSourceList", 1, 2):
        local.router.functions.setSources(ASSET, [f.address], [1, 2]).transact({"from": local.admin})
    with reverts("AccessControlUnauthorizedAccount", local.outsider, b"\x00" * 32):
        local.router.functions.setSources(ASSET, [f.address], [MAX_AGE]).transact({"from": local.outsider})
    with reverts("BadThresholds", 0, 50):
        local.router.functions.setThresholds(0, 50).transact({"from": local.admin})


def test_raw_source_views_for_one_and_many_assets(local: Local) -> None:
    a = feeds(local, (8, 42_000 * 10**8), (6, 41_990 * 10**6))
    b = feeds(local, (18, 2_200 * E18))
    other = "0x00000000000000000000000000000000000000b2"
    configure(local, ASSET, a)
    configure(local, other, b, max_age=900)
    data = local.router.functions.getSourceData(ASSET).call()
    assert [(d[0], d[1], d[2], d[3], d[5]) for d in data] == [
        (a[0].address, True, 8, MAX_AGE, 42_000 * 10**8),
        (a[1].address, True, 6, MAX_AGE, 41_990 * 10**6),
    ]
    batch = local.router.functions.getSourceDataBatch([ASSET, other]).call()
    assert len(batch) == 2 and batch[0] == data
    assert batch[1][0][3] == 900 and batch[1][0][5] == 2_200 * E18
    assert local.router.functions.getAssets().call() == [ASSET, other]


def test_reconfiguring_replaces_sources(local: Local) -> None:
    configure(local, ASSET, feeds(local, (8, 1 * 10**8), (8, 1 * 10**8)))
    configure(local, ASSET, feeds(local, (8, 5 * 10**8)))
    assert local.router.functions.sourceCount(ASSET).call() == 1
    assert price(local) == (5 * E18, 100)
    assert local.router.functions.getAssets().call() == [ASSET]


def test_batch_prices_never_revert(local: Local) -> None:
    configure(local, ASSET, feeds(local, (8, 100 * 10**8), (8, 100 * 10**8)))
    other = "0x00000000000000000000000000000000000000b2"
    stale = "0x00000000000000000000000000000000000000C3"
    (f,) = feeds(local, (8, 5 * 10**8))
    configure(local, stale, [f])
    now = local.now()
    f.functions.updateRoundData(2, 5 * 10**8, now - MAX_AGE - 1, now).transact({"from": local.admin})
    prices, confidences, status = local.router.functions.getPrices([ASSET, other, stale]).call()
    assert (prices, confidences, status) == ([100 * E18, 0, 0], [100, 0, 0], [0, 1, 2])
