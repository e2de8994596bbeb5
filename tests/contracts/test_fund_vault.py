"""FundVault on eth-tester: roles, NAV publication rules, HWM, batch, liabilities, withdrawal queue."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.logs import DISCARD

from publisher.deploy import NAV_ENGINE_ROLE, create_address
from publisher.navlog import unpack_nav_update
from publisher.publish import pack_nav_update
from publisher.snapshot import FLAG_ESTIMATED
from tests.conftest import Local, reverts

USD = 10**18


def make_fund(c: Local) -> int:
    c.vault.functions.createFund(c.manager).transact({"from": c.admin})
    return c.vault.functions.fundCount().call()


def token(c: Local, symbol: str, decimals: int):
    t = c.deploy("MockERC20", symbol, symbol, decimals)
    t.functions.mint(c.manager, 10**40).transact({"from": c.manager})
    t.functions.approve(c.vault.address, 2**256 - 1).transact({"from": c.manager})
    return t


def publish(c: Local, fund_id: int, nav: int, as_of: int | None = None, flags: int = 0) -> dict:
    as_of = c.now() if as_of is None else as_of
    tx = c.vault.functions.updateNAV(fund_id, nav, as_of, flags).transact({"from": c.engine})
    return c.w3.eth.wait_for_transaction_receipt(tx)


def nav_state(c: Local, fund_id: int) -> tuple:
    return tuple(c.vault.functions.navState(fund_id).call())


# -- deployment pairing ------------------------------------------------------------------


def test_vault_refuses_a_hub_deployed_for_another_vault(local: Local) -> None:
    wrong = local.deploy("AnalyticsHub", local.admin, local.outsider)
    predicted = create_address(local.admin, local.w3.eth.get_transaction_count(local.admin))
    with reverts("HubVaultMismatch", wrong.address, local.outsider, predicted):
        local.deploy("FundVault", local.admin, wrong.address, 3600)


# -- roles ------------------------------------------------------------------------------


def test_only_the_nav_engine_can_update_nav(local: Local) -> None:
    fid = make_fund(local)
    with reverts("AccessControlUnauthorizedAccount", local.outsider, NAV_ENGINE_ROLE):
        local.vault.functions.updateNAV(fid, USD, local.now(), 0).transact({"from": local.outsider})
    with reverts("AccessControlUnauthorizedAccount", local.manager, NAV_ENGINE_ROLE):
        local.vault.functions.updateNAVBatch([pack_nav_update(fid, USD, local.now(), 0)]).transact(
            {"from": local.manager}
        )


def test_admin_functions_refuse_other_accounts(local: Local) -> None:
    fid = make_fund(local)
    admin_role = b"\x00" * 32
    calls = [
        local.vault.functions.createFund(local.outsider),
        local.vault.functions.setManager(fid, local.outsider),
        local.vault.functions.setWithdrawalDelay(0),
        local.vault.functions.pause(),
        local.vault.functions.grantRole(NAV_ENGINE_ROLE, local.outsider),
    ]
    for call in calls:
        with reverts("AccessControlUnauthorizedAccount", local.outsider, admin_role):
            call.transact({"from": local.outsider})


def test_manager_functions_refuse_other_accounts(local: Local) -> None:
    fid = make_fund(local)
    usdc = token(local, "USDC", 6)
    with reverts("NotFundManager", fid, local.outsider, local.manager):
        local.vault.functions.deposit(fid, usdc.address, 1, 1, local.investor).transact(
            {"from": local.outsider}
        )
    with reverts("NotFundManager", fid, local.engine, local.manager):
        local.vault.functions.accrueFee(fid, USD).transact({"from": local.engine})


def test_unknown_fund_is_named(local: Local) -> None:
    with reverts("UnknownFund", 7):
        local.vault.functions.updateNAV(7, USD, local.now(), 0).transact({"from": local.engine})
    with reverts("UnknownFund", 0):
        local.vault.functions.navState(0).call()


# -- NAV publication ----------------------------------------------------------------------


def test_update_nav_records_in_hub_in_the_same_transaction(local: Local) -> None:
    fid = make_fund(local)
    t = local.now()
    receipt = publish(local, fid, 690_000 * USD, t)
    # The vault logs only the new peak; the hub's record is the update's log.
    assert [log["address"] for log in receipt["logs"]] == [local.vault.address, local.hub.address]
    (rec,) = local.hub.events.NAVRecorded().process_receipt(receipt, errors=DISCARD)
    assert dict(rec["args"]) == {"fundId": fid, "nav": 690_000 * USD, "timestamp": t}
    nav, as_of, rnd, flags, estimated, hwm, _shares, _nps, paused = nav_state(local, fid)
    assert (nav, as_of, rnd, flags, estimated, hwm) == (690_000 * USD, t, 1, 0, False, 690_000 * USD)
    assert paused is False
    assert local.hub.functions.latestNAV(fid).call() == [690_000 * USD, t]

    local.travel(60)
    receipt = publish(local, fid, 680_000 * USD)
    assert [log["address"] for log in receipt["logs"]] == [local.hub.address]  # no new peak
    assert nav_state(local, fid)[2] == 2


def test_high_water_mark_rises_and_never_falls(local: Local) -> None:
    fid = make_fund(local)
    navs = [100, 120, 90, 110, 120, 130]
    expected_hwm = [100, 120, 120, 120, 120, 130]
    rises = []
    for nav, hwm in zip(navs, expected_hwm, strict=True):
        local.travel(10)
        receipt = publish(local, fid, nav * USD)
        rises.append(
            [
                e["args"]["newNAV"]
                for e in local.vault.events.HighWaterMarkUpdated().process_receipt(receipt, errors=DISCARD)
            ]
        )
        assert nav_state(local, fid)[5] == hwm * USD
    # Equal to the mark (120 again) is not a new mark: only strict rises emit.
    assert rises == [[100 * USD], [120 * USD], [], [], [], [130 * USD]]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 6), st.booleans()),  # NAV in units of 100 USD (repeats likely), batch path
        min_size=1,
        max_size=12,
    )
)
def test_high_water_mark_is_the_running_maximum_whatever_the_path(
    local: Local, steps: list[tuple[int, bool]]
) -> None:
    """Peaks in a row, falls, equal NAVs and recoveries, through updateNAV and updateNAVBatch:
    the mark every view answers is the maximum published so far, and the event fires exactly
    on strict new maxima (the mark is kept in the NAV slot while at the peak)."""
    fid = make_fund(local)
    peak = 0
    for units, batch in steps:
        nav = units * 100 * USD
        t = local.travel(10)
        if batch:
            tx = local.vault.functions.updateNAVBatch([pack_nav_update(fid, nav, t, 0)]).transact(
                {"from": local.engine}
            )
            receipt = local.w3.eth.wait_for_transaction_receipt(tx)
        else:
            receipt = publish(local, fid, nav, t)
        events = local.vault.events.HighWaterMarkUpdated().process_receipt(receipt, errors=DISCARD)
        assert [e["args"]["newNAV"] for e in events] == ([nav] if nav > peak else [])
        peak = max(peak, nav)
        assert nav_state(local, fid)[5] == peak
        (snap,) = local.vault.functions.getFundSnapshots([fid]).call()
        assert snap[-1] == peak and snap[-2] == 0  # no internal bit leaks into the flags


def test_as_of_must_increase_and_not_lie_in_the_future(local: Local) -> None:
    fid = make_fund(local)
    t = local.now()
    publish(local, fid, USD, t)
    with reverts("StaleAsOf", fid, t, t):
        publish(local, fid, 2 * USD, t)
    with reverts("StaleAsOf", fid, t - 5, t):
        publish(local, fid, 2 * USD, t - 5)


def test_future_as_of_is_refused_with_its_numbers(local: Local) -> None:
    fid = make_fund(local)
    future = local.now() + 3600
    with reverts("FutureAsOf") as caught:
        publish(local, fid, USD, future)
    assert caught.error is not None
    fund_id, as_of, block_time = caught.error.args
    assert (fund_id, as_of) == (fid, future) and block_time < future


def test_flags_and_nav_range_are_checked(local: Local) -> None:
    fid = make_fund(local)
    with reverts("UnknownFlags", fid, 2):
        publish(local, fid, USD, flags=2)
    with reverts("NavOutOfRange", fid, 2**128):
        publish(local, fid, 2**128)
    publish(local, fid, 5 * USD, flags=1)
    state = nav_state(local, fid)
    assert state[3] == 1 and state[4] is True


def test_batch_updates_many_funds_in_one_transaction(local: Local) -> None:
    ids = [make_fund(local) for _ in range(3)]
    t = local.now()
    words = [
        pack_nav_update(fid, (i + 1) * 1000 * USD, t, FLAG_ESTIMATED * (i % 2)) for i, fid in enumerate(ids)
    ]
    assert words == [local.vault.functions.packNavUpdate(*unpack_nav_update(w)).call() for w in words]
    tx = local.vault.functions.updateNAVBatch(words).transact({"from": local.engine})
    receipt = local.w3.eth.wait_for_transaction_receipt(tx)
    # One hub event for the whole batch, carrying every word as sent.
    (batch,) = local.hub.events.NAVBatchRecorded().process_receipt(receipt, errors=DISCARD)
    assert batch["args"]["records"] == words
    assert [unpack_nav_update(w) for w in batch["args"]["records"]] == [
        (fid, (i + 1) * 1000 * USD, t, FLAG_ESTIMATED * (i % 2)) for i, fid in enumerate(ids)
    ]
    assert local.hub.events.NAVRecorded().process_receipt(receipt, errors=DISCARD) == ()
    assert [nav_state(local, f)[:3] for f in ids] == [
        (1000 * USD, t, 1),
        (2000 * USD, t, 1),
        (3000 * USD, t, 1),
    ]

    # All or nothing: a stale entry reverts the whole batch, naming the entry.
    local.travel(10)
    t2 = local.now()
    with reverts("StaleAsOf", ids[2], t, t):
        local.vault.functions.updateNAVBatch(
            [pack_nav_update(ids[0], 1, t2, 0), pack_nav_update(ids[2], 1, t, 0)]
        ).transact({"from": local.engine})
    assert nav_state(local, ids[0])[0] == 1000 * USD


def test_a_batch_word_is_packed_the_same_on_both_sides_or_refused(local: Local) -> None:
    top = (2**64 - 1, 2**128 - 1, 2**48 - 1, 2**16 - 1)
    assert pack_nav_update(*top) == 2**256 - 1 == local.vault.functions.packNavUpdate(*top).call()
    assert unpack_nav_update(2**256 - 1) == top
    with reverts("FundIdOutOfRange", 2**64):
        local.vault.functions.packNavUpdate(2**64, 1, 1, 0).call()
    with reverts("NavOutOfRange", 1, 2**128):
        local.vault.functions.packNavUpdate(1, 2**128, 1, 0).call()
    for bad in ((2**64, 1, 1, 0), (1, 2**128, 1, 0), (1, 1, 2**48, 0), (1, 1, 1, 2**16), (1, -1, 1, 0)):
        with pytest.raises(ValueError, match="does not fit"):
            pack_nav_update(*bad)


# -- holdings, liabilities, activity ----------------------------------------------------------


def test_holdings_respect_decimals_and_every_activity_counts(local: Local) -> None:
    fid = make_fund(local)
    btc, eth, usdc = token(local, "BTC", 8), token(local, "ETH", 18), token(local, "USDC", 6)
    v = local.vault.functions
    steps = [
        ("Deposited", v.deposit(fid, btc.address, 10 * 10**8, 420_000 * USD, local.investor)),
        ("Deposited", v.deposit(fid, eth.address, 100 * 10**18, 220_000 * USD, local.investor)),
        ("Deposited", v.deposit(fid, usdc.address, 50_000 * 10**6, 50_000 * USD, local.investor)),
        ("Traded", v.trade(fid, usdc.address, 2_200 * 10**6, eth.address, 10**18)),
        ("FeeAccrued", v.accrueFee(fid, 1_250 * USD)),
        ("Borrowed", v.borrow(fid, usdc.address, 20_000 * 10**6, 20_000 * USD)),
        ("Repaid", v.repay(fid, usdc.address, 5_000 * 10**6, 5_000 * USD)),
        ("FeeCollected", v.collectFee(fid, usdc.address, 250 * 10**6, 250 * USD)),
    ]
    for i, (event, call) in enumerate(steps, start=1):
        receipt = local.w3.eth.wait_for_transaction_receipt(call.transact({"from": local.manager}))
        (ev,) = getattr(local.vault.events, event)().process_receipt(receipt, errors=DISCARD)
        assert ev["args"]["activity"] == i
    assert v.activityOf(fid).call() == len(steps)

    assets, amounts = v.getAllHoldings(fid).call()
    assert assets == [btc.address, eth.address, usdc.address]
    assert amounts == [10 * 10**8, 101 * 10**18, (50_000 - 2_200 + 20_000 - 5_000 - 250) * 10**6]
    assert v.getPendingFees(fid).call() == 1_000 * USD
    assert v.getBorrowed(fid).call() == 15_000 * USD
    assert v.getPendingWithdrawals(fid).call() == 0

    (snap,) = v.getFundSnapshots([fid]).call()
    assert list(snap[3]) == [8, 18, 6]  # decimals, read once from each token
    assert snap[10] == len(steps)  # activity


def test_debits_beyond_holdings_and_liabilities_are_refused(local: Local) -> None:
    fid = make_fund(local)
    usdc = token(local, "USDC", 6)
    v = local.vault.functions
    v.deposit(fid, usdc.address, 100, 100, local.investor).transact({"from": local.manager})
    with reverts("InsufficientHoldings", fid, usdc.address, 100, 101):
        v.trade(fid, usdc.address, 101, usdc.address, 1).transact({"from": local.manager})
    with reverts("LiabilityUnderflow", fid, 0, 1):
        v.collectFee(fid, usdc.address, 1, 1).transact({"from": local.manager})
    with reverts("ZeroAmount"):
        v.deposit(fid, usdc.address, 0, 0, local.investor).transact({"from": local.manager})


def test_pause_stops_flows_but_not_nav_publication(local: Local) -> None:
    fid = make_fund(local)
    usdc = token(local, "USDC", 6)
    local.vault.functions.pause().transact({"from": local.admin})
    with reverts("EnforcedPause"):
        local.vault.functions.deposit(fid, usdc.address, 1, 1, local.investor).transact(
            {"from": local.manager}
        )
    publish(local, fid, USD)
    assert nav_state(local, fid)[2] == 1


# -- withdrawal queue ------------------------------------------------------------------------


def test_withdrawal_is_priced_only_at_a_nav_published_after_the_delay(local: Local) -> None:
    fid = make_fund(local)
    usdc = token(local, "USDC", 6)
    v = local.vault.functions
    v.deposit(fid, usdc.address, 1_000 * 10**6, 1_000 * USD, local.investor).transact({"from": local.manager})
    publish(local, fid, 1_000 * USD)

    receipt = local.w3.eth.wait_for_transaction_receipt(
        v.requestWithdrawal(fid, 100 * USD).transact({"from": local.investor})
    )
    (ev,) = local.vault.events.WithdrawalRequested().process_receipt(receipt, errors=DISCARD)
    claimable = ev["args"]["claimableAt"]
    assert claimable == local.now() + 3600
    assert v.sharesOf(fid, local.investor).call() == 900 * USD

    # An inflated NAV published before the delay ends cannot price the request.
    local.travel(10)
    publish(local, fid, 5_000 * USD)
    with reverts("WithdrawalNotClaimable", fid, 0, claimable):
        v.priceWithdrawal(fid, 0).transact({"from": local.outsider})
    local.travel(3600)
    with reverts("WithdrawalAwaitsNav"):
        v.priceWithdrawal(fid, 0).transact({"from": local.outsider})

    publish(local, fid, 1_100 * USD)  # the first NAV as of the claimable time or later
    v.priceWithdrawal(fid, 0).transact({"from": local.outsider})
    assert v.getPendingWithdrawals(fid).call() == 110 * USD  # 100 of 1,000 shares at $1,100
    assert v.navState(fid).call()[6] == 900 * USD  # shares burnt
    with reverts("WrongWithdrawalStatus", fid, 0, 2):
        v.priceWithdrawal(fid, 0).transact({"from": local.outsider})

    before = usdc.functions.balanceOf(local.investor).call()
    v.settleWithdrawal(fid, 0, usdc.address, 110 * 10**6).transact({"from": local.manager})
    assert usdc.functions.balanceOf(local.investor).call() - before == 110 * 10**6
    assert v.getPendingWithdrawals(fid).call() == 0
    (req,) = v.getWithdrawalRequests(fid).call()
    assert req[1] == 3  # Settled
    # Deposit, priced, settled: the request itself changes no NAV, so it does not count.
    assert v.activityOf(fid).call() == 3


def test_withdrawal_of_more_shares_than_owned_is_refused(local: Local) -> None:
    fid = make_fund(local)
    with reverts("InsufficientShares", fid, local.investor, 0, 1):
        local.vault.functions.requestWithdrawal(fid, 1).transact({"from": local.investor})
    with reverts("UnknownWithdrawal", fid, 0):
        local.vault.functions.priceWithdrawal(fid, 0).transact({"from": local.investor})


def test_nav_per_share_rounds_down(local: Local) -> None:
    fid = make_fund(local)
    usdc = token(local, "USDC", 6)
    local.vault.functions.deposit(fid, usdc.address, 3, 3 * USD, local.investor).transact(
        {"from": local.manager}
    )
    publish(local, fid, 10 * USD)
    assert nav_state(local, fid)[7] == 10 * USD // 3  # 3.333... rounded down


def test_role_constant_matches_the_python_side(local: Local) -> None:
    assert local.vault.functions.NAV_ENGINE_ROLE().call() == keccak(text="NAV_ENGINE_ROLE") == NAV_ENGINE_ROLE
