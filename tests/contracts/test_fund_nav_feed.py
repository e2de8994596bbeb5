"""FundNavFeed on eth-tester: one fund's NAV per share through Chainlink's AggregatorV3Interface."""

from __future__ import annotations

from web3.contract import Contract

from publisher.artifacts import load_artifact
from tests.conftest import Local, reverts
from tests.contracts.test_fund_vault import USD, make_fund, nav_state, publish, token

SHARES = 3 * USD  # 3 shares: a NAV of 10 gives a NAV per share that must round down


def funded(c: Local) -> int:
    fid = make_fund(c)
    usdc = token(c, "USDC", 6)
    c.vault.functions.deposit(fid, usdc.address, 3 * 10**6, SHARES, c.investor).transact({"from": c.manager})
    return fid


def feed_of(c: Local, fund_id: int) -> Contract:
    feed = c.deploy("FundNavFeed", c.vault.address, fund_id)
    # Read it the way any Chainlink consumer does: through the AggregatorV3 ABI alone.
    return c.w3.eth.contract(address=feed.address, abi=load_artifact("AggregatorV3Interface").abi)


def legacy(c: Local, feed: Contract) -> Contract:
    return c.w3.eth.contract(address=feed.address, abi=load_artifact("FundNavFeed").abi)


def test_metadata(local: Local) -> None:
    make_fund(local)
    fid = funded(local)
    feed = feed_of(local, fid)
    assert feed.functions.decimals().call() == 18
    assert feed.functions.description().call() == "Fund 2 NAV per share / USD"
    assert feed.functions.version().call() == 1
    full = legacy(local, feed)
    assert full.functions.vault().call() == local.vault.address
    assert full.functions.fundId().call() == fid


def test_no_data_before_the_first_nav(local: Local) -> None:
    fid = funded(local)
    feed = feed_of(local, fid)
    with reverts("NoDataPresent", fid, 0):
        feed.functions.latestRoundData().call()
    for round_id in (0, 1):
        with reverts("NoDataPresent", fid, round_id):
            feed.functions.getRoundData(round_id).call()
    full = legacy(local, feed)
    with reverts("NoDataPresent", fid, 0):
        full.functions.latestAnswer().call()
    with reverts("NoDataPresent", fid, 0):
        full.functions.latestTimestamp().call()
    assert full.functions.latestRound().call() == 0


def test_latest_round_after_two_updates(local: Local) -> None:
    fid = funded(local)
    feed = feed_of(local, fid)
    t1 = local.now()
    publish(local, fid, 9 * USD, t1)
    t2 = local.travel(60)
    publish(local, fid, 10 * USD, t2)

    nav_per_share = nav_state(local, fid)[7]
    assert nav_per_share == 10 * USD * USD // SHARES == 3_333_333_333_333_333_333  # rounded down
    latest = (2, nav_per_share, t2, t2, 2)
    assert tuple(feed.functions.latestRoundData().call()) == latest
    assert tuple(feed.functions.getRoundData(2).call()) == latest

    # Only the latest round is stored; the history is in the hub's NAVRecorded events.
    for old_or_future in (1, 0, 3, 2**80 - 1):
        with reverts("NoDataPresent", fid, old_or_future):
            feed.functions.getRoundData(old_or_future).call()

    full = legacy(local, feed)
    assert full.functions.latestAnswer().call() == nav_per_share
    assert full.functions.latestTimestamp().call() == t2
    assert full.functions.latestRound().call() == 2


def test_answer_follows_the_share_supply(local: Local) -> None:
    fid = funded(local)
    feed = feed_of(local, fid)
    t = local.now()
    publish(local, fid, 12 * USD, t)
    assert feed.functions.latestRoundData().call()[1] == 4 * USD
    usdc_shares = 3 * USD  # three more shares at the same NAV halve the NAV per share
    usdc = token(local, "USDC", 6)
    local.vault.functions.deposit(fid, usdc.address, 3 * 10**6, usdc_shares, local.investor).transact(
        {"from": local.manager}
    )
    assert tuple(feed.functions.latestRoundData().call()) == (1, 2 * USD, t, t, 1)


def test_a_fund_without_shares_has_no_nav_per_share(local: Local) -> None:
    fid = make_fund(local)
    feed = feed_of(local, fid)
    publish(local, fid, 10 * USD)
    with reverts("NoSharesOutstanding", fid, 1):
        feed.functions.latestRoundData().call()
    with reverts("NoSharesOutstanding", fid, 1):
        feed.functions.getRoundData(1).call()
    with reverts("NoSharesOutstanding", fid, 1):
        legacy(local, feed).functions.latestAnswer().call()


def test_paused_follows_the_vault_and_the_answer_stays(local: Local) -> None:
    fid = funded(local)
    feed = legacy(local, feed_of(local, fid))
    t = local.now()
    publish(local, fid, 6 * USD, t)
    assert feed.functions.paused().call() is False
    local.vault.functions.setFundPaused(fid, True, "custodian offline").transact({"from": local.engine})
    assert feed.functions.paused().call() is True
    # The ripcord is a signal: the feed keeps answering, the consumer decides.
    assert tuple(feed.functions.latestRoundData().call()) == (1, 2 * USD, t, t, 1)
    local.vault.functions.setFundPaused(fid, False, "").transact({"from": local.engine})
    assert feed.functions.paused().call() is False


def test_feeds_are_per_fund(local: Local) -> None:
    a, b = funded(local), funded(local)
    fa, fb = feed_of(local, a), feed_of(local, b)
    publish(local, b, 30 * USD)
    with reverts("NoDataPresent", a, 0):
        fa.functions.latestRoundData().call()
    assert fb.functions.latestRoundData().call()[1] == 10 * USD


def test_constructor_refuses_an_unknown_fund_or_a_vault_without_code(local: Local) -> None:
    with reverts("UnknownFund", 5):
        local.deploy("FundNavFeed", local.vault.address, 5)
    with reverts("NotAContract", local.outsider):
        local.deploy("FundNavFeed", local.outsider, 1)


def test_an_existing_chainlink_consumer_reads_it_unchanged(local: Local) -> None:
    """Our own PriceOracleRouter, written for Chainlink feeds, prices the fund's share."""
    fid = funded(local)
    feed = feed_of(local, fid)
    share = local.w3.eth.accounts[6]  # any address can name the priced "asset"
    local.router.functions.setSources(share, [feed.address], [3600]).transact({"from": local.admin})
    with reverts("NoFreshPrice", share, 1):
        local.router.functions.getPrice(share).call()
    publish(local, fid, 10 * USD)
    price, confidence = local.router.functions.getPrice(share).call()
    assert (price, confidence) == (nav_state(local, fid)[7], 100)
