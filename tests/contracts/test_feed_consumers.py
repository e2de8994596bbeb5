"""A fund's FundNavFeed read by the three consumers written after real integrations: Aave v3's
AaveOracle (raw `latestAnswer`, base unit 1e8), Morpho's MorphoChainlinkOracleV2 (`latestRoundData`
scaled by the feed's decimals) and Chainlink's documented staleness check (`updatedAt` vs heartbeat)."""

from __future__ import annotations

from web3.contract import Contract

from tests.conftest import Local, reverts
from tests.contracts.test_fund_vault import make_fund, token

USD = 10**18
USDC = 10**6
HEARTBEAT = 3600
FLAG_PAUSED = 2
FLAG_ENGINE_PAUSE = 4  # the engine's own ripcord
# An arbitrary address standing for the fund share in the Aave-style oracle's source map.
SHARE_ASSET = "0x000000000000000000000000000000000000F00D"


def deposit(c: Local, fund_id: int, asset: Contract, amount: int, shares: int) -> None:
    c.vault.functions.deposit(fund_id, asset.address, amount, shares, c.investor).transact(
        {"from": c.manager}
    )


def publish(c: Local, fund_id: int, nav: int, as_of: int | None = None, flags: int = 0) -> int:
    """Publishes with the four-argument updateNAV; returns the asOf used."""
    as_of = c.now() if as_of is None else as_of
    fn = c.vault.get_function_by_signature("updateNAV(uint256,uint256,uint48,uint16)")
    c.w3.eth.wait_for_transaction_receipt(fn(fund_id, nav, as_of, flags).transact({"from": c.engine}))
    return as_of


def nav_state(c: Local, fund_id: int) -> tuple:
    return tuple(c.vault.functions.navState(fund_id).call())


def set_paused(c: Local, fund_id: int, paused: bool) -> None:
    tx = c.vault.functions.setFundPaused(fund_id, paused, "test").transact({"from": c.engine})
    c.w3.eth.wait_for_transaction_receipt(tx)


def feed_of(c: Local, fund_id: int, decimals: int = 8) -> Contract:
    return c.deploy("FundNavFeed", c.vault.address, fund_id, decimals)


def aave_on(c: Local, feed: Contract) -> Contract:
    aave = c.deploy("AaveStyleOracle", 10**8)  # a USD market: base currency unit 1e8
    aave.functions.setSource(SHARE_ASSET, feed.address).transact({"from": c.admin})
    return aave


def morpho_on(c: Local, feed: Contract) -> Contract:
    return c.deploy("MorphoStyleOracle", feed.address, 18, 6)  # fund share (18) / USDC (6)


def staleness_on(c: Local, feed: Contract) -> Contract:
    return c.deploy("StalenessCheckedConsumer", feed.address, HEARTBEAT)


def answer_at(nav: int, shares: int, decimals: int) -> int:
    """The feed's answer from first principles: NAV per share at 18 decimals, rounded down,
    then rounded down again to `decimals`."""
    return (nav * 10**18 // shares) // 10 ** (18 - decimals)


# NAV per share $0.998... over a supply that is not a round number, so both divisions round.
SHARES = 3 * USD + 7
NAV = 2_994_123_456_789_012_345  # $2.994... over ~3 shares: $0.99804... per share


def fund_with_nav(c: Local, nav: int = NAV, shares: int = SHARES) -> tuple[int, int]:
    """A fund with `shares` outstanding and `nav` published now; returns (fund id, asOf)."""
    fid = make_fund(c)
    deposit(c, fid, token(c, "USDC", 6), 3 * USDC, shares)
    c.travel(10)
    return fid, publish(c, fid, nav)


# -- prices at 8 decimals ----------------------------------------------------------------------


def test_aave_and_morpho_read_the_nav_per_share_of_an_8_decimal_feed(local: Local) -> None:
    fid, as_of = fund_with_nav(local)
    feed = feed_of(local, fid)
    per_share = NAV * 10**18 // SHARES
    assert nav_state(local, fid)[7] == per_share
    expected = per_share // 10**10
    assert expected == answer_at(NAV, SHARES, 8)
    assert 99_800_000 <= expected < 99_900_000  # $0.998...
    assert feed.functions.decimals().call() == 8
    assert feed.functions.latestRoundData().call() == [1, expected, as_of, as_of, 1]

    assert aave_on(local, feed).functions.getAssetPrice(SHARE_ASSET).call() == [expected, False]

    morpho = morpho_on(local, feed)
    assert morpho.functions.SCALE_FACTOR().call() == 10 ** (36 + 6 - 18 - 8)
    price = morpho.functions.price().call()
    assert price == 10**16 * expected
    # Price of one raw share unit in raw USDC units × 1e36, exactly: NAV × 1e6 × 1e36 / (shares × 1e18).
    exact_floor = NAV * 10**24 // SHARES
    assert price <= exact_floor < price + 10**16  # the 8-decimal answer only ever rounds down

    answer, updated_at = staleness_on(local, feed).functions.read().call()
    assert (answer, updated_at) == (expected, as_of)


def test_answers_round_down_never_up(local: Local) -> None:
    # 1 share, NAV $0.99899999999999999999...: the 8-decimal answer is 99_899_999, not 99_900_000.
    nav = 999 * 10**15 - 1
    fid, _ = fund_with_nav(local, nav=nav, shares=USD)
    feed = feed_of(local, fid)
    assert feed.functions.latestAnswer().call() == 99_899_999
    assert morpho_on(local, feed).functions.price().call() == 99_899_999 * 10**16
    assert aave_on(local, feed).functions.getAssetPrice(SHARE_ASSET).call() == [99_899_999, False]
    # And the 18-decimal NAV per share itself rounds down: $10 over 3 shares.
    fid3, _ = fund_with_nav(local, nav=10 * USD, shares=3 * USD)
    assert feed_of(local, fid3, 18).functions.latestAnswer().call() == 3_333_333_333_333_333_333
    assert feed_of(local, fid3).functions.latestAnswer().call() == 333_333_333


def test_an_18_decimal_feed_is_misread_by_aave_but_not_by_morpho(local: Local) -> None:
    fid, _ = fund_with_nav(local)
    per_share = NAV * 10**18 // SHARES
    feed8, feed18 = feed_of(local, fid, 8), feed_of(local, fid, 18)
    assert feed18.functions.latestAnswer().call() == per_share

    price8, _ = aave_on(local, feed8).functions.getAssetPrice(SHARE_ASSET).call()
    price18, _ = aave_on(local, feed18).functions.getAssetPrice(SHARE_ASSET).call()
    # Aave takes the answer raw in units of 1e8 USD: the 8-decimal feed is the right $0.998...,
    assert price8 == per_share // 10**10
    assert 99_800_000 <= price8 < 99_900_000
    # the 18-decimal one a share worth $9,98x,xxx,xxx — ten billion times too much.
    assert price18 == per_share
    assert 9_980_000_000 <= price18 // 10**8 < 9_990_000_000

    # Morpho scales by decimals(): both feeds give the same price, the 18-decimal one more exactly.
    m8 = morpho_on(local, feed8).functions.price().call()
    m18 = morpho_on(local, feed18).functions.price().call()
    assert m18 == per_share * 10**6
    assert m18 <= NAV * 10**24 // SHARES < m18 + 10**6
    assert m8 == per_share // 10**10 * 10**16
    assert m8 <= m18 < m8 + 10**16


# -- a paused fund goes stale ------------------------------------------------------------------


def test_a_paused_fund_goes_stale_and_keeps_its_pre_pause_answer(local: Local) -> None:
    fid, t1 = fund_with_nav(local)
    feed = feed_of(local, fid)
    aave, morpho, checked = aave_on(local, feed), morpho_on(local, feed), staleness_on(local, feed)
    before = answer_at(NAV, SHARES, 8)
    assert checked.functions.read().call() == [before, t1]

    set_paused(local, fid, True)
    assert feed.functions.paused().call() is True
    # The engine keeps publishing newer NAVs to the vault, with later asOf.
    newer = [NAV * 2, NAV * 3]
    local.travel(600)
    t2 = publish(local, fid, newer[0])
    local.travel(HEARTBEAT)
    t3 = publish(local, fid, newer[1])
    state = nav_state(local, fid)
    assert (state[0], state[1], state[2], state[3]) == (newer[1], t3, 3, FLAG_PAUSED | FLAG_ENGINE_PAUSE)
    assert state[7] == newer[1] * 10**18 // SHARES

    # The feed still answers round 1, as of t1.
    assert feed.functions.latestRoundData().call() == [1, before, t1, t1, 1]
    assert feed.functions.latestTimestamp().call() == t1
    # More than a heartbeat after t1: the staleness check refuses it...
    now = local.now()
    assert now - t1 > HEARTBEAT
    assert now - t3 <= HEARTBEAT  # (while the vault's own NAV is fresh)
    with reverts("StaleAnswer") as caught:
        checked.functions.read().call()
    updated_at, block_time, heartbeat = caught.error.args
    assert (updated_at, heartbeat) == (t1, HEARTBEAT)
    assert block_time == now, (block_time, now)
    # ... while Aave and Morpho, which check no age, keep the pre-pause answer, not the newer NAV.
    assert aave.functions.getAssetPrice(SHARE_ASSET).call() == [before, False]
    assert morpho.functions.price().call() == 10**16 * before
    assert before != answer_at(newer[1], SHARES, 8)

    set_paused(local, fid, False)
    after = answer_at(newer[1], SHARES, 8)
    assert feed.functions.paused().call() is False
    assert feed.functions.latestRoundData().call() == [3, after, t3, t3, 3]
    assert checked.functions.read().call() == [after, t3]
    assert aave.functions.getAssetPrice(SHARE_ASSET).call() == [after, False]
    assert morpho.functions.price().call() == 10**16 * after
    assert t2 < t3


def test_a_fund_paused_before_any_nav_has_no_answer_while_paused(local: Local) -> None:
    fid = make_fund(local)
    deposit(local, fid, token(local, "USDC", 6), 3 * USDC, SHARES)
    feed = feed_of(local, fid)
    set_paused(local, fid, True)
    local.travel(10)
    t1 = publish(local, fid, NAV)
    assert nav_state(local, fid)[2] == 1
    assert feed.functions.latestRoundData().call() == [0, 0, 0, 0, 0]
    with reverts("InvalidAnswer", 0):
        staleness_on(local, feed).functions.read().call()
    set_paused(local, fid, False)
    assert feed.functions.latestRoundData().call() == [1, answer_at(NAV, SHARES, 8), t1, t1, 1]


# -- no data ---------------------------------------------------------------------------------


def assert_no_price(c: Local, feed: Contract) -> None:
    aave = aave_on(c, feed)
    with reverts("NoPrice", SHARE_ASSET):
        aave.functions.getAssetPrice(SHARE_ASSET).call()
    aave.functions.setFallbackPrice(123_456_789).transact({"from": c.admin})
    assert aave.functions.getAssetPrice(SHARE_ASSET).call() == [123_456_789, True]
    assert morpho_on(c, feed).functions.price().call() == 0
    with reverts("InvalidAnswer", 0):
        staleness_on(c, feed).functions.read().call()


def test_before_the_first_nav_every_consumer_sees_no_price(local: Local) -> None:
    fid = make_fund(local)
    deposit(local, fid, token(local, "USDC", 6), 3 * USDC, SHARES)
    feed = feed_of(local, fid)
    assert feed.functions.latestRoundData().call() == [0, 0, 0, 0, 0]
    assert feed.functions.latestAnswer().call() == 0
    assert feed.functions.latestRound().call() == 0
    assert_no_price(local, feed)


def test_a_nav_with_no_shares_outstanding_is_no_price_either(local: Local) -> None:
    fid = make_fund(local)
    feed = feed_of(local, fid)
    local.travel(10)
    as_of = publish(local, fid, 1_000 * USD)
    state = nav_state(local, fid)
    assert (state[0], state[2], state[6], state[7]) == (1_000 * USD, 1, 0, 0)
    assert feed.functions.latestRoundData().call() == [1, 0, as_of, as_of, 1]
    assert_no_price(local, feed)


def test_a_fully_redeemed_fund_answers_zero_at_its_next_nav(local: Local) -> None:
    fid, _ = fund_with_nav(local, nav=1_000 * USD, shares=1_000 * USD)
    v = local.vault.functions
    v.requestWithdrawal(fid, 1_000 * USD).transact({"from": local.investor})
    local.travel(HEARTBEAT)
    publish(local, fid, 1_000 * USD)
    v.priceWithdrawal(fid, 0).transact({"from": local.outsider})
    feed = feed_of(local, fid)
    # Priced at the NAV before it, whose supply is saved: the answer is still $1.
    assert feed.functions.latestAnswer().call() == 10**8
    local.travel(10)
    as_of = publish(local, fid, 5 * USD)  # residual cash, no shares
    assert feed.functions.latestRoundData().call() == [3, 0, as_of, as_of, 3]
    assert_no_price(local, feed)


# -- round getters -----------------------------------------------------------------------------


def test_round_getters_hold_only_the_latest_round(local: Local) -> None:
    fid = make_fund(local)
    deposit(local, fid, token(local, "USDC", 6), 3 * USDC, SHARES)
    feed = feed_of(local, fid)
    navs = [NAV, NAV + 10**17, NAV - 10**17]
    times = []
    for nav in navs:
        local.travel(60)
        times.append(publish(local, fid, nav))
    answer, t3 = answer_at(navs[2], SHARES, 8), times[2]
    assert answer != answer_at(navs[1], SHARES, 8)

    f = feed.functions
    assert f.getRoundData(3).call() == [3, answer, t3, t3, 3]
    assert f.getAnswer(3).call() == answer
    assert f.getTimestamp(3).call() == t3
    for other in (0, 1, 2, 4, 2**64, 2**80 - 1):
        assert f.getRoundData(other).call() == [other, 0, 0, 0, other]
    for other in (0, 1, 2, 4, 2**256 - 1):
        assert f.getAnswer(other).call() == 0
        assert f.getTimestamp(other).call() == 0
    assert f.latestRound().call() == 3
    assert f.latestTimestamp().call() == t3
    assert f.latestAnswer().call() == answer
    assert f.latestRoundData().call() == [3, answer, t3, t3, 3]

    # While paused the held round is the frozen one: a newer vault round is not held.
    set_paused(local, fid, True)
    local.travel(60)
    publish(local, fid, NAV * 2)
    assert nav_state(local, fid)[2] == 4
    assert f.latestRound().call() == 3
    assert f.getRoundData(3).call() == [3, answer, t3, t3, 3]
    assert f.getRoundData(4).call() == [4, 0, 0, 0, 4]
    assert f.getAnswer(4).call() == 0
    assert f.getTimestamp(4).call() == 0
