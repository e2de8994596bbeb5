"""FundNavFeed on eth-tester: one fund's NAV per share through Chainlink's AggregatorV2V3Interface."""

from __future__ import annotations

import pytest
from web3.contract import Contract

from publisher.artifacts import load_artifact
from tests.conftest import Local, reverts
from tests.contracts.test_fund_vault import USD, make_fund, nav_state, publish, token

SHARES = 3 * USD  # 3 shares: a NAV of 10 gives a NAV per share that must round down
NO_ROUND = (0, 0, 0, 0, 0)


def funded(c: Local) -> int:
    fid = make_fund(c)
    usdc = token(c, "USDC", 6)
    c.vault.functions.deposit(fid, usdc.address, 3 * 10**6, SHARES, c.investor).transact({"from": c.manager})
    return fid


def feed_of(c: Local, fund_id: int, decimals: int = 8) -> Contract:
    feed = c.deploy("FundNavFeed", c.vault.address, fund_id, decimals)
    # Read it the way any Chainlink consumer does: through the AggregatorV3 ABI alone.
    return c.w3.eth.contract(address=feed.address, abi=load_artifact("AggregatorV3Interface").abi)


def legacy(c: Local, feed: Contract) -> Contract:
    """The same feed through Chainlink's full AggregatorV2V3Interface (latestAnswer & co.)."""
    return c.w3.eth.contract(address=feed.address, abi=load_artifact("AggregatorV2V3Interface").abi)


def own(c: Local, feed: Contract) -> Contract:
    return c.w3.eth.contract(address=feed.address, abi=load_artifact("FundNavFeed").abi)


def round_data(feed: Contract, round_id: int | None = None) -> tuple[int, ...]:
    if round_id is None:
        return tuple(feed.functions.latestRoundData().call())
    return tuple(feed.functions.getRoundData(round_id).call())


def test_metadata(local: Local) -> None:
    make_fund(local)
    fid = funded(local)
    feed = feed_of(local, fid)
    assert feed.functions.decimals().call() == 8
    assert feed.functions.description().call() == "Fund 2 NAV per share / USD"
    assert feed.functions.version().call() == 2
    full = own(local, feed)
    assert full.functions.vault().call() == local.vault.address
    assert full.functions.fundId().call() == fid
    assert full.functions.SOURCE_DECIMALS().call() == 18


@pytest.mark.parametrize("decimals", [8, 18, 0])
def test_the_answer_has_the_chosen_decimals_rounded_down(local: Local, decimals: int) -> None:
    fid = funded(local)
    feed = feed_of(local, fid, decimals)
    assert feed.functions.decimals().call() == decimals
    t = local.now()
    publish(local, fid, 10 * USD, t)
    per_share = nav_state(local, fid)[7]
    assert per_share == 3_333_333_333_333_333_333
    answer = {8: 333_333_333, 18: 3_333_333_333_333_333_333, 0: 3}[decimals]
    assert answer == per_share // 10 ** (18 - decimals)
    assert round_data(feed) == (1, answer, t, t, 1)
    assert legacy(local, feed).functions.latestAnswer().call() == answer


def test_more_decimals_than_the_vault_has_are_refused(local: Local) -> None:
    fid = funded(local)
    with reverts("UnsupportedDecimals", 19):
        local.deploy("FundNavFeed", local.vault.address, fid, 19)
    with reverts("UnsupportedDecimals", 255):
        local.deploy("FundNavFeed", local.vault.address, fid, 255)
    assert feed_of(local, fid, 18).functions.decimals().call() == 18


def test_no_data_before_the_first_nav_answers_zeros(local: Local) -> None:
    """Chainlink's OCR aggregators answer zeros, not a revert, for data they do not have."""
    fid = funded(local)
    feed = feed_of(local, fid)
    assert round_data(feed) == NO_ROUND
    assert round_data(feed, 0) == NO_ROUND
    for round_id in (1, 2, 2**80 - 1):
        assert round_data(feed, round_id) == (round_id, 0, 0, 0, round_id)
    full = legacy(local, feed)
    assert full.functions.latestAnswer().call() == 0
    assert full.functions.latestTimestamp().call() == 0
    assert full.functions.latestRound().call() == 0
    for round_id in (0, 1):
        assert full.functions.getAnswer(round_id).call() == 0
        assert full.functions.getTimestamp(round_id).call() == 0


def test_latest_round_after_two_updates(local: Local) -> None:
    fid = funded(local)
    feed = feed_of(local, fid)
    t1 = local.now()
    publish(local, fid, 9 * USD, t1)
    assert round_data(feed) == (1, 3 * 10**8, t1, t1, 1)
    t2 = local.travel(60)
    publish(local, fid, 10 * USD, t2)

    nav_per_share = nav_state(local, fid)[7]
    assert nav_per_share == 10 * USD * USD // SHARES == 3_333_333_333_333_333_333  # rounded down
    answer = nav_per_share // 10**10  # 8 decimals, rounded down
    latest = (2, answer, t2, t2, 2)
    assert round_data(feed) == latest
    assert round_data(feed, 2) == latest

    # Only the latest round is held; any other answers like a round the feed does not hold
    # (the history is in the hub's NAVRecorded events).
    for old_or_future in (1, 3, 2**80 - 1):
        assert round_data(feed, old_or_future) == (old_or_future, 0, 0, 0, old_or_future)
    assert round_data(feed, 0) == NO_ROUND

    full = legacy(local, feed)
    assert full.functions.latestAnswer().call() == answer
    assert full.functions.latestTimestamp().call() == t2
    assert full.functions.latestRound().call() == 2
    assert full.functions.getAnswer(2).call() == answer
    assert full.functions.getTimestamp(2).call() == t2
    for other in (0, 1, 3):
        assert full.functions.getAnswer(other).call() == 0
        assert full.functions.getTimestamp(other).call() == 0


def test_the_answer_is_fixed_per_round_whatever_the_flows(local: Local) -> None:
    fid = funded(local)
    feed = feed_of(local, fid, 18)
    t = local.now()
    publish(local, fid, 12 * USD, t)
    assert round_data(feed) == (1, 4 * USD, t, t, 1)
    # Three more shares at the same NAV: the round's answer is the NAV over the supply it was
    # published at, so it does not halve until a NAV over the new supply is published.
    usdc = token(local, "USDC", 6)
    local.vault.functions.deposit(fid, usdc.address, 3 * 10**6, 3 * USD, local.investor).transact(
        {"from": local.manager}
    )
    assert round_data(feed) == (1, 4 * USD, t, t, 1)
    t2 = local.travel(60)
    publish(local, fid, 24 * USD, t2)
    assert round_data(feed) == (2, 4 * USD, t2, t2, 2)
    t3 = local.travel(60)
    publish(local, fid, 12 * USD, t3)
    assert round_data(feed) == (3, 2 * USD, t3, t3, 3)


def test_a_fund_without_shares_answers_zero(local: Local) -> None:
    fid = make_fund(local)
    feed = feed_of(local, fid)
    t = local.now()
    publish(local, fid, 10 * USD, t)
    assert round_data(feed) == (1, 0, t, t, 1)
    assert round_data(feed, 1) == (1, 0, t, t, 1)
    assert legacy(local, feed).functions.latestAnswer().call() == 0
    assert legacy(local, feed).functions.latestRound().call() == 1


def test_a_paused_fund_answers_its_last_round_before_the_pause(local: Local) -> None:
    fid = funded(local)
    feed = own(local, feed_of(local, fid))
    t = local.now()
    publish(local, fid, 6 * USD, t)
    assert feed.functions.paused().call() is False
    local.vault.functions.setFundPaused(fid, True, "custodian offline").transact({"from": local.engine})
    assert feed.functions.paused().call() is True
    frozen = (1, 2 * 10**8, t, t, 1)
    assert round_data(feed) == frozen
    # The engine goes on publishing; the feed stays frozen and goes stale, updatedAt and all.
    t2 = local.travel(60)
    publish(local, fid, 9 * USD, t2)
    assert nav_state(local, fid)[:3] == (9 * USD, t2, 2)
    assert round_data(feed) == frozen
    assert round_data(feed, 1) == frozen
    assert round_data(feed, 2) == (2, 0, 0, 0, 2)  # not a round the paused feed holds
    full = legacy(local, feed)
    assert (full.functions.latestAnswer().call(), full.functions.latestTimestamp().call()) == (2 * 10**8, t)
    assert full.functions.latestRound().call() == 1
    assert (full.functions.getAnswer(1).call(), full.functions.getAnswer(2).call()) == (2 * 10**8, 0)

    local.vault.functions.setFundPaused(fid, False, "").transact({"from": local.engine})
    assert feed.functions.paused().call() is False
    assert round_data(feed) == (2, 3 * 10**8, t2, t2, 2)
    assert round_data(feed, 1) == (1, 0, 0, 0, 1)


def test_feeds_are_per_fund(local: Local) -> None:
    a, b = funded(local), funded(local)
    fa, fb = feed_of(local, a), feed_of(local, b)
    publish(local, b, 30 * USD)
    assert round_data(fa) == NO_ROUND
    assert fb.functions.latestRoundData().call()[1] == 10 * 10**8


def test_constructor_refuses_an_unknown_fund_or_a_vault_without_code(local: Local) -> None:
    with reverts("UnknownFund", 5):
        local.deploy("FundNavFeed", local.vault.address, 5, 8)
    with reverts("NotAContract", local.outsider):
        local.deploy("FundNavFeed", local.outsider, 1, 8)


def test_an_existing_chainlink_consumer_reads_it_unchanged(local: Local) -> None:
    """Our own PriceOracleRouter, written for Chainlink feeds, prices the fund's share."""
    fid = funded(local)
    feed = feed_of(local, fid)
    share = local.w3.eth.accounts[6]  # any address can name the priced "asset"
    local.router.functions.setSources(share, [feed.address], [3600]).transact({"from": local.admin})
    # Zeros before the first NAV: no fresh price (updatedAt 0), not a broken source.
    with reverts("NoFreshPrice", share, 1):
        local.router.functions.getPrice(share).call()
    publish(local, fid, 10 * USD)
    price, confidence = local.router.functions.getPrice(share).call()
    # The router scales the 8-decimal answer back to 18 decimals: the digits past 8 are gone.
    assert (price, confidence) == (nav_state(local, fid)[7] // 10**10 * 10**10, 100)
    assert price == 3_333_333_330_000_000_000
