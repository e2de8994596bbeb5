"""Boundaries of the per-share high-water mark and of the saved share supply: flows never read as a
gain or a loss, a 1-wei rise per share is a new peak, a return to the mark is not, and a NAV word
computed before a share change is skipped."""

from __future__ import annotations

from web3.contract import Contract
from web3.logs import DISCARD

from tests.conftest import Local
from tests.contracts.test_fund_vault import make_fund, token

USD = 10**18
USDC = 10**6
DELAY = 3600  # the fixture vault's withdrawal delay

# navState fields
NAV, AS_OF, ROUND, FLAGS, HWM, TOTAL_SHARES, NAV_PER_SHARE, NAV_SHARES = 0, 1, 2, 3, 5, 6, 7, 9


def deposit(c: Local, fund_id: int, asset: Contract, amount: int, shares: int) -> dict:
    tx = c.vault.functions.deposit(fund_id, asset.address, amount, shares, c.investor).transact(
        {"from": c.manager}
    )
    return c.w3.eth.wait_for_transaction_receipt(tx)


def publish(c: Local, fund_id: int, nav: int, flags: int = 0) -> dict:
    """A NAV as of a second after the last block (so consecutive NAVs never share an asOf)."""
    as_of = c.travel(1)
    fn = c.vault.get_function_by_signature("updateNAV(uint256,uint256,uint48,uint16)")
    return c.w3.eth.wait_for_transaction_receipt(fn(fund_id, nav, as_of, flags).transact({"from": c.engine}))


def marks(c: Local, receipt: dict) -> list[tuple[int, int]]:
    """(fund id, new mark) of every HighWaterMarkUpdated in the receipt."""
    return [
        (ev["args"]["fundId"], ev["args"]["newNAV"])
        for ev in c.vault.events.HighWaterMarkUpdated().process_receipt(receipt, errors=DISCARD)
    ]


def state(c: Local, fund_id: int) -> tuple:
    return tuple(c.vault.functions.navState(fund_id).call())


def drawdown(s: tuple) -> int:
    """How far the NAV per share is below its mark, 18-decimal USD per share."""
    return s[HWM] - s[NAV_PER_SHARE]


def share_version(c: Local, fund_id: int) -> int:
    (snap,) = c.vault.functions.getFundSnapshots([fund_id]).call()
    return snap[-1]


def word(fund_id: int, nav: int, as_of: int, flags: int, version: int) -> int:
    return fund_id << 224 | (version & 0xFFFFFFFF) << 192 | as_of << 144 | flags << 128 | nav


def per_share(nav: int, shares: int) -> int:
    return nav * 10**18 // shares


def funded(c: Local, shares: int = 1_000 * USD, nav: int = 1_000 * USD) -> tuple[int, Contract]:
    """A fund with `shares` outstanding and a first NAV `nav`; returns (fund id, its USDC)."""
    fid = make_fund(c)
    usdc = token(c, "USDC", 6)
    deposit(c, fid, usdc, shares // 10**12, shares)
    receipt = publish(c, fid, nav)
    assert marks(c, receipt) == [(fid, per_share(nav, shares))]  # the first NAV is the first mark
    return fid, usdc


# -- flows -----------------------------------------------------------------------------------


def test_a_deposit_at_the_nav_per_share_moves_no_mark(local: Local) -> None:
    # $1.234567890123456789 per share over 1,000 shares.
    nav = 1_234_567_890_123_456_789_000
    fid, usdc = funded(local, nav=nav)
    mark = per_share(nav, 1_000 * USD)
    assert state(local, fid)[HWM] == mark == 1_234_567_890_123_456_789

    # 500 more shares paid at that price; the next NAV includes the deposit's value.
    deposit(local, fid, usdc, 617_283_945, 500 * USD)
    receipt = publish(local, fid, nav + nav // 2)
    s = state(local, fid)
    assert s[TOTAL_SHARES] == s[NAV_SHARES] == 1_500 * USD
    assert s[NAV_PER_SHARE] == per_share(nav + nav // 2, 1_500 * USD) == mark
    assert (s[HWM], drawdown(s), marks(local, receipt)) == (mark, 0, [])


def test_a_deposit_below_the_mark_neither_raises_nor_deepens_it(local: Local) -> None:
    fid, usdc = funded(local)
    publish(local, fid, 1_100 * USD)  # $1.10: the mark
    publish(local, fid, 1_000 * USD)  # back to $1.00
    deposit(local, fid, usdc, 1_000 * USDC, 1_000 * USD)  # at $1.00
    receipt = publish(local, fid, 2_000 * USD)  # the NAV doubled, the NAV per share did not
    s = state(local, fid)
    assert (s[NAV_PER_SHARE], s[HWM], drawdown(s)) == (USD, 11 * 10**17, 10**17)
    assert marks(local, receipt) == []


def test_a_49_percent_redemption_is_neither_a_drawdown_nor_a_peak(local: Local) -> None:
    fid, _ = funded(local, nav=1_250 * USD)  # $1.25 per share
    v = local.vault.functions
    v.requestWithdrawal(fid, 490 * USD).transact({"from": local.investor})
    local.travel(DELAY)
    assert marks(local, publish(local, fid, 1_250 * USD)) == []  # flat: the mark stays
    receipt = local.w3.eth.wait_for_transaction_receipt(
        v.priceWithdrawal(fid, 0).transact({"from": local.outsider})
    )
    (priced,) = local.vault.events.WithdrawalPriced().process_receipt(receipt, errors=DISCARD)
    usd = 1_250 * USD * 490 * USD // (1_000 * USD)
    assert priced["args"]["usd"] == usd == 612_500 * 10**15

    # Between the pricing and the next NAV: the NAV per share is still over the old supply.
    s = state(local, fid)
    assert (s[TOTAL_SHARES], s[NAV_SHARES], s[NAV_PER_SHARE]) == (510 * USD, 1_000 * USD, 125 * 10**16)

    receipt = publish(local, fid, 1_250 * USD - usd)  # what is left: 637.5 over 510 shares
    s = state(local, fid)
    assert s[NAV] == 637_500 * 10**15
    assert s[NAV_PER_SHARE] == per_share(637_500 * 10**15, 510 * USD) == 125 * 10**16
    assert (s[HWM], drawdown(s), s[NAV_SHARES]) == (125 * 10**16, 0, 510 * USD)
    assert marks(local, receipt) == []


# -- the mark itself --------------------------------------------------------------------------


def test_the_mark_moves_only_above_itself_to_the_wei(local: Local) -> None:
    fid, _ = funded(local)  # $1 per share over 1,000 shares, the mark
    shares = 1_000 * USD

    # 999 wei more NAV is less than 1 wei per share (1,000 shares): no new peak.
    receipt = publish(local, fid, 1_000 * USD + 999)
    assert state(local, fid)[NAV_PER_SHARE] == USD
    assert marks(local, receipt) == []

    # 1 wei per share more: a new peak, with the exact mark.
    receipt = publish(local, fid, (USD + 1) * shares // USD)
    peak = USD + 1
    assert marks(local, receipt) == [(fid, peak)]
    s = state(local, fid)
    assert (s[NAV_PER_SHARE], s[HWM], drawdown(s)) == (peak, peak, 0)

    # A fall keeps the mark; the drawdown is the difference.
    receipt = publish(local, fid, 900 * USD)
    s = state(local, fid)
    assert (s[NAV_PER_SHARE], s[HWM], drawdown(s)) == (9 * 10**17, peak, peak - 9 * 10**17)
    assert marks(local, receipt) == []

    # A rise that stays below the mark: still no event, smaller drawdown.
    receipt = publish(local, fid, 1_000 * USD)
    s = state(local, fid)
    assert (s[HWM], drawdown(s), marks(local, receipt)) == (peak, 1, [])

    # Back to exactly the mark: no event, no drawdown; flat at the mark: no event either.
    for _ in range(2):
        receipt = publish(local, fid, peak * shares // USD)
        s = state(local, fid)
        assert (s[NAV_PER_SHARE], s[HWM], drawdown(s), marks(local, receipt)) == (peak, peak, 0, [])

    # Above it by 1 wei per share: the event, with the new mark.
    receipt = publish(local, fid, (peak + 1) * shares // USD)
    assert marks(local, receipt) == [(fid, peak + 1)]
    assert state(local, fid)[HWM] == peak + 1

    # From below the stored mark straight past it (not through it): one event, the new figure.
    publish(local, fid, 500 * USD)
    receipt = publish(local, fid, 1_234 * USD)
    assert marks(local, receipt) == [(fid, per_share(1_234 * USD, shares))]
    assert state(local, fid)[HWM] == 1_234 * 10**15


def test_a_batch_moves_the_mark_as_a_single_does(local: Local) -> None:
    fid, _ = funded(local)
    as_of = local.travel(1)
    words = [word(fid, 1_000 * USD + 1_000, as_of, 0, share_version(local, fid))]
    receipt = local.w3.eth.wait_for_transaction_receipt(
        local.vault.functions.updateNAVBatch(words).transact({"from": local.engine})
    )
    assert marks(local, receipt) == [(fid, USD + 1)]
    as_of = local.travel(1)
    words = [word(fid, 1_000 * USD + 1_000, as_of, 0, share_version(local, fid))]
    receipt = local.w3.eth.wait_for_transaction_receipt(
        local.vault.functions.updateNAVBatch(words).transact({"from": local.engine})
    )
    assert marks(local, receipt) == []


def test_a_nav_with_no_shares_keeps_the_mark(local: Local) -> None:
    fid, usdc = funded(local)  # $1 per share: the mark, implied by the NAV slot (at peak)
    v = local.vault.functions
    v.requestWithdrawal(fid, 1_000 * USD).transact({"from": local.investor})
    local.travel(DELAY)
    publish(local, fid, 1_000 * USD)
    v.priceWithdrawal(fid, 0).transact({"from": local.outsider})
    assert state(local, fid)[HWM] == USD
    publish(local, fid, 0)  # every share redeemed: "no NAV per share, and no mark moves"
    assert state(local, fid)[TOTAL_SHARES] == 0
    mark_after_empty = state(local, fid)[HWM]
    deposit(local, fid, usdc, 500 * USDC, 1_000 * USD)
    receipt = publish(local, fid, 500 * USD)  # $0.50 per share, half the mark
    assert (mark_after_empty, state(local, fid)[HWM], marks(local, receipt)) == (USD, USD, [])


# -- the saved supply -----------------------------------------------------------------------


def test_a_deposit_after_a_nav_changes_no_nav_per_share_until_the_next_nav(local: Local) -> None:
    fid, usdc = funded(local)  # $1 per share over 1,000 shares
    feed = local.deploy("FundNavFeed", local.vault.address, fid, 8)
    assert feed.functions.latestAnswer().call() == 10**8

    # Two deposits after the NAV, the second at a diluting price: nothing the NAV says moves.
    deposit(local, fid, usdc, 1_000 * USDC, 1_000 * USD)
    deposit(local, fid, usdc, 1 * USDC, 1_000 * USD)
    s = state(local, fid)
    assert (s[TOTAL_SHARES], s[NAV_SHARES]) == (3_000 * USD, 1_000 * USD)
    assert (s[NAV_PER_SHARE], s[HWM], s[ROUND]) == (USD, USD, 1)
    assert feed.functions.latestAnswer().call() == 10**8
    snap = local.vault.functions.navPerShareState(fid).call()
    assert snap[0] == USD

    # The next NAV is over the 3,000 shares: $2,001 / 3,000 = $0.667.
    receipt = publish(local, fid, 2_001 * USD)
    s = state(local, fid)
    assert (s[NAV_SHARES], s[NAV_PER_SHARE]) == (3_000 * USD, per_share(2_001 * USD, 3_000 * USD))
    assert s[NAV_PER_SHARE] == 667 * 10**15
    assert (s[HWM], drawdown(s), marks(local, receipt)) == (USD, USD - 667 * 10**15, [])
    assert feed.functions.latestAnswer().call() == 66_700_000


# -- the race: a NAV computed before a share change ----------------------------------------


def batch(c: Local, words: list[int]) -> dict:
    tx = c.vault.functions.updateNAVBatch(words).transact({"from": c.engine})
    return c.w3.eth.wait_for_transaction_receipt(tx)


def test_a_word_read_before_a_deposit_is_skipped_and_a_fresh_one_applies(local: Local) -> None:
    fid, usdc = funded(local)
    other, _ = funded(local)
    old_version = share_version(local, fid)
    other_version = share_version(local, other)
    as_of = local.travel(1)
    stale = word(fid, 1_100 * USD, as_of, 0, old_version)  # computed before the deposit below

    deposit(local, fid, usdc, 1_000 * USDC, 1_000 * USD)
    assert share_version(local, fid) == old_version + 1
    before = state(local, fid)
    receipt = batch(local, [stale, word(other, 1_050 * USD, as_of, 0, other_version)])
    (skipped,) = local.vault.events.NAVSkipped().process_receipt(receipt, errors=DISCARD)
    assert dict(skipped["args"]) == {
        "fundId": fid,
        "shareVersion": old_version,
        "currentShareVersion": old_version + 1,
    }
    assert state(local, fid) == before  # nothing of the fund changed
    (updated,) = local.vault.events.NAVUpdated().process_receipt(receipt, errors=DISCARD)
    assert updated["args"]["fundId"] == other  # the rest of the batch applied
    (rec,) = local.hub.events.NAVRecorded().process_receipt(receipt, errors=DISCARD)
    assert (rec["args"]["fundId"], rec["args"]["round"]) == (other, 2)
    assert marks(local, receipt) == [(other, per_share(1_050 * USD, 1_000 * USD))]

    # A fresh word over the new supply applies: $2,100 over 2,000 shares.
    as_of = local.travel(1)
    receipt = batch(local, [word(fid, 2_100 * USD, as_of, 0, share_version(local, fid))])
    assert local.vault.events.NAVSkipped().process_receipt(receipt, errors=DISCARD) == ()
    s = state(local, fid)
    assert (s[NAV], s[AS_OF], s[ROUND], s[NAV_SHARES]) == (2_100 * USD, as_of, 2, 2_000 * USD)
    assert s[NAV_PER_SHARE] == per_share(2_100 * USD, 2_000 * USD) == 105 * 10**16
    assert marks(local, receipt) == [(fid, 105 * 10**16)]


def test_a_word_read_before_a_priced_withdrawal_is_skipped_too(local: Local) -> None:
    fid, _ = funded(local)
    v = local.vault.functions
    v.requestWithdrawal(fid, 100 * USD).transact({"from": local.investor})
    version = share_version(local, fid)  # a request alone does not change the supply
    local.travel(DELAY)
    publish(local, fid, 1_000 * USD)
    as_of = local.travel(1)
    stale = word(fid, 900 * USD, as_of, 0, version)
    assert share_version(local, fid) == version
    v.priceWithdrawal(fid, 0).transact({"from": local.outsider})
    before = state(local, fid)
    receipt = batch(local, [stale])
    (skipped,) = local.vault.events.NAVSkipped().process_receipt(receipt, errors=DISCARD)
    assert (skipped["args"]["shareVersion"], skipped["args"]["currentShareVersion"]) == (version, version + 1)
    assert state(local, fid) == before
    assert local.hub.events.NAVRecorded().process_receipt(receipt, errors=DISCARD) == ()
