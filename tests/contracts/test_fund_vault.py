"""FundVault on eth-tester: roles, NAV publication rules, per-share HWM, batch, liabilities,
withdrawal queue."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD

from publisher.deploy import NAV_ENGINE_ROLE, create_address
from publisher.publish import pack_nav_update, unpack_nav_update
from publisher.snapshot import FLAG_ESTIMATED
from tests.conftest import Local, reverts

USD = 10**18
UPDATE_NAV = "updateNAV(uint256,uint256,uint48,uint16)"
SEED_UPDATE_NAV = "updateNAV(uint256,uint256)"
# Fields of a getFundSnapshots row.
SNAP_FLAGS, SNAP_HWM, SNAP_NAV_SHARES, SNAP_NAV_PER_SHARE, SNAP_SHARE_VERSION = 14, 15, 16, 17, 18


def make_fund(c: Local) -> int:
    c.vault.functions.createFund(c.manager).transact({"from": c.admin})
    return c.vault.functions.fundCount().call()


def token(c: Local, symbol: str, decimals: int) -> Contract:
    t = c.deploy("MockERC20", symbol, symbol, decimals)
    t.functions.mint(c.manager, 10**40).transact({"from": c.manager})
    t.functions.approve(c.vault.address, 2**256 - 1).transact({"from": c.manager})
    return t


def update_nav(c: Local, fund_id: int, nav: int, as_of: int, flags: int = 0) -> ContractFunction:
    """The four-argument updateNAV (the two-argument seed form is its overload)."""
    return c.vault.get_function_by_signature(UPDATE_NAV)(fund_id, nav, as_of, flags)


def publish(c: Local, fund_id: int, nav: int, as_of: int | None = None, flags: int = 0) -> dict:
    as_of = c.now() if as_of is None else as_of
    tx = update_nav(c, fund_id, nav, as_of, flags).transact({"from": c.engine})
    return c.w3.eth.wait_for_transaction_receipt(tx)


def publish_batch(c: Local, words: list[int]) -> dict:
    tx = c.vault.functions.updateNAVBatch(words).transact({"from": c.engine})
    return c.w3.eth.wait_for_transaction_receipt(tx)


def deposit(c: Local, fund_id: int, asset: Contract, shares: int, amount: int = 1) -> dict:
    tx = c.vault.functions.deposit(fund_id, asset.address, amount, shares, c.investor).transact(
        {"from": c.manager}
    )
    return c.w3.eth.wait_for_transaction_receipt(tx)


def nav_state(c: Local, fund_id: int) -> tuple:
    """(nav, asOf, round, flags, estimated, highWaterMark, totalShares, navPerShare, paused,
    navShares)."""
    return tuple(c.vault.functions.navState(fund_id).call())


def snapshot(c: Local, fund_id: int) -> tuple:
    (snap,) = c.vault.functions.getFundSnapshots([fund_id]).call()
    return tuple(snap)


def share_version(c: Local, fund_id: int) -> int:
    return snapshot(c, fund_id)[SNAP_SHARE_VERSION]


def events(contract: Contract, name: str, receipt: dict) -> list[dict]:
    return [
        dict(e["args"]) for e in getattr(contract.events, name)().process_receipt(receipt, errors=DISCARD)
    ]


# -- deployment pairing ------------------------------------------------------------------


def test_vault_refuses_a_hub_deployed_for_another_vault(local: Local) -> None:
    wrong = local.deploy("AnalyticsHub", local.outsider)
    predicted = create_address(local.admin, local.w3.eth.get_transaction_count(local.admin))
    with reverts("HubVaultMismatch", wrong.address, local.outsider, predicted):
        local.deploy("FundVault", local.admin, wrong.address, 3600)


# -- roles ------------------------------------------------------------------------------


def test_only_the_nav_engine_can_update_nav(local: Local) -> None:
    fid = make_fund(local)
    with reverts("AccessControlUnauthorizedAccount", local.outsider, NAV_ENGINE_ROLE):
        update_nav(local, fid, USD, local.now()).transact({"from": local.outsider})
    with reverts("AccessControlUnauthorizedAccount", local.admin, NAV_ENGINE_ROLE):
        local.vault.get_function_by_signature(SEED_UPDATE_NAV)(fid, USD).transact({"from": local.admin})
    with reverts("AccessControlUnauthorizedAccount", local.manager, NAV_ENGINE_ROLE):
        local.vault.functions.updateNAVBatch([pack_nav_update(fid, USD, local.now(), 0)]).transact(
            {"from": local.manager}
        )
    assert nav_state(local, fid)[2] == 0


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
        update_nav(local, 7, USD, local.now()).transact({"from": local.engine})
    with reverts("UnknownFund", 7):
        local.vault.get_function_by_signature(SEED_UPDATE_NAV)(7, USD).transact({"from": local.engine})
    # In a batch, whatever share version the word carries.
    for version in (0, 5):
        with reverts("UnknownFund", 7):
            publish_batch(local, [pack_nav_update(7, USD, local.now(), 0, version)])
    with reverts("UnknownFund", 0):
        local.vault.functions.navState(0).call()


# -- NAV publication ----------------------------------------------------------------------


def test_update_nav_records_in_hub_in_the_same_transaction(local: Local) -> None:
    fid = make_fund(local)
    deposit(local, fid, token(local, "USDC", 6), 1_000 * USD)
    t = local.now()
    receipt = publish(local, fid, 690_000 * USD, t)
    # The vault logs the new peak and the seed's NAVUpdated; the hub logs the full record.
    assert [log["address"] for log in receipt["logs"]] == [local.vault.address] * 2 + [local.hub.address]
    assert events(local.vault, "HighWaterMarkUpdated", receipt) == [{"fundId": fid, "newNAV": 690 * USD}]
    assert events(local.vault, "NAVUpdated", receipt) == [
        {"fundId": fid, "oldNAV": 0, "newNAV": 690_000 * USD, "timestamp": t}
    ]
    assert events(local.hub, "NAVRecorded", receipt) == [
        {"fundId": fid, "round": 1, "nav": 690_000 * USD, "navPerShare": 690 * USD, "asOf": t, "flags": 0}
    ]
    nav, as_of, rnd, flags, estimated, hwm, shares, nps, paused, nav_shares = nav_state(local, fid)
    assert (nav, as_of, rnd, flags, estimated) == (690_000 * USD, t, 1, 0, False)
    assert (hwm, shares, nps, paused, nav_shares) == (690 * USD, 1_000 * USD, 690 * USD, False, 1_000 * USD)
    assert local.hub.functions.latestNAV(fid).call() == [690_000 * USD, t]

    t2 = local.travel(60)
    receipt = publish(local, fid, 680_000 * USD, t2, FLAG_ESTIMATED)
    # No new peak: NAVUpdated (the previous NAV as oldNAV) and the hub's record.
    assert [log["address"] for log in receipt["logs"]] == [local.vault.address, local.hub.address]
    assert events(local.vault, "NAVUpdated", receipt) == [
        {"fundId": fid, "oldNAV": 690_000 * USD, "newNAV": 680_000 * USD, "timestamp": t2}
    ]
    assert events(local.hub, "NAVRecorded", receipt) == [
        {"fundId": fid, "round": 2, "nav": 680_000 * USD, "navPerShare": 680 * USD, "asOf": t2, "flags": 1}
    ]
    assert nav_state(local, fid)[2] == 2
    assert nav_state(local, fid)[5] == 690 * USD  # the mark stays


def test_the_seed_update_nav_publishes_as_of_the_block_time(local: Local) -> None:
    fid = make_fund(local)
    deposit(local, fid, token(local, "USDC", 6), 4 * USD)
    publish(local, fid, 10 * USD, flags=FLAG_ESTIMATED)
    local.travel(30)
    tx = local.vault.get_function_by_signature(SEED_UPDATE_NAV)(fid, 12 * USD).transact(
        {"from": local.engine}
    )
    receipt = local.w3.eth.wait_for_transaction_receipt(tx)
    block_time = local.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert events(local.vault, "NAVUpdated", receipt) == [
        {"fundId": fid, "oldNAV": 10 * USD, "newNAV": 12 * USD, "timestamp": block_time}
    ]
    # Recorded through the seed's hub.recordNAV; the hub reads round, per share and flags back
    # from the vault: not estimated (the seed form publishes flags 0).
    assert events(local.hub, "NAVRecorded", receipt) == [
        {"fundId": fid, "round": 2, "nav": 12 * USD, "navPerShare": 3 * USD, "asOf": block_time, "flags": 0}
    ]
    assert events(local.vault, "HighWaterMarkUpdated", receipt) == [{"fundId": fid, "newNAV": 3 * USD}]
    assert nav_state(local, fid)[:5] == (12 * USD, block_time, 2, 0, False)
    assert local.hub.functions.latestNAV(fid).call() == [12 * USD, block_time]
    # Its asOf is the block's: a second one in a later block is newer, never stale.
    local.travel(1)
    local.vault.get_function_by_signature(SEED_UPDATE_NAV)(fid, 11 * USD).transact({"from": local.engine})
    assert nav_state(local, fid)[2] == 3


def test_high_water_mark_is_per_share_rises_and_never_falls(local: Local) -> None:
    fid = make_fund(local)
    usdc = token(local, "USDC", 6)
    deposit(local, fid, usdc, 4 * USD)  # 4 shares: the mark is the NAV / 4
    navs = [100, 120, 90, 110, 120, 130]
    expected_hwm = [25 * USD, 30 * USD, 30 * USD, 30 * USD, 30 * USD, 65 * USD // 2]
    rises = []
    for nav, hwm in zip(navs, expected_hwm, strict=True):
        local.travel(10)
        receipt = publish(local, fid, nav * USD)
        rises.append([e["newNAV"] for e in events(local.vault, "HighWaterMarkUpdated", receipt)])
        assert nav_state(local, fid)[5] == hwm
        assert nav_state(local, fid)[7] == nav * USD // 4
    # Equal to the mark (120 again) is not a new mark: only strict rises emit.
    assert rises == [[25 * USD], [30 * USD], [], [], [], [65 * USD // 2]]

    # Four more shares and a NAV twice as large: the same NAV per share, no new mark, though
    # the NAV itself is far above every NAV before.
    deposit(local, fid, usdc, 4 * USD)
    assert nav_state(local, fid)[5:8] == (65 * USD // 2, 8 * USD, 65 * USD // 2)
    local.travel(10)
    receipt = publish(local, fid, 260 * USD)
    assert events(local.vault, "HighWaterMarkUpdated", receipt) == []
    assert nav_state(local, fid)[5] == 65 * USD // 2
    local.travel(10)
    receipt = publish(local, fid, 264 * USD)  # 33 a share over the 8: a real new mark
    assert events(local.vault, "HighWaterMarkUpdated", receipt) == [{"fundId": fid, "newNAV": 33 * USD}]


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
    the per-share mark every view answers is the maximum NAV per share published so far, and the
    event fires exactly on strict new maxima (the mark is kept in the NAV slot while at the
    peak)."""
    fid = make_fund(local)
    shares = 8 * USD
    deposit(local, fid, token(local, "USDC", 6), shares)
    peak = 0
    for units, batch in steps:
        nav = units * 100 * USD
        per_share = nav * USD // shares
        t = local.travel(10)
        if batch:
            receipt = publish_batch(local, [pack_nav_update(fid, nav, t, 0, share_version(local, fid))])
        else:
            receipt = publish(local, fid, nav, t)
        rises = events(local.vault, "HighWaterMarkUpdated", receipt)
        assert [e["newNAV"] for e in rises] == ([per_share] if per_share > peak else [])
        peak = max(peak, per_share)
        assert nav_state(local, fid)[5] == peak
        snap = snapshot(local, fid)
        assert snap[SNAP_HWM] == peak
        assert snap[SNAP_FLAGS] == 0  # no internal bit leaks into the flags
        assert (snap[SNAP_NAV_SHARES], snap[SNAP_NAV_PER_SHARE], snap[SNAP_SHARE_VERSION]) == (
            shares,
            per_share,
            1,
        )


def test_without_shares_there_is_no_nav_per_share_and_no_mark(local: Local) -> None:
    fid = make_fund(local)
    receipt = publish(local, fid, 10 * USD)
    assert events(local.vault, "HighWaterMarkUpdated", receipt) == []
    (rec,) = events(local.hub, "NAVRecorded", receipt)
    assert rec["navPerShare"] == 0
    assert nav_state(local, fid)[5:] == (0, 0, 0, False, 0)
    # The first shares: the next NAV sets the first mark.
    deposit(local, fid, token(local, "USDC", 6), 2 * USD)
    local.travel(10)
    receipt = publish(local, fid, 10 * USD)
    assert events(local.vault, "HighWaterMarkUpdated", receipt) == [{"fundId": fid, "newNAV": 5 * USD}]


def test_a_nav_over_no_shares_keeps_the_mark(local: Local) -> None:
    """No shares, no NAV per share, and no mark moves: a fund at its peak (the mark implied by
    the NAV slot) redeemed to zero shares and published once keeps its mark of 10, and a later
    NAV per share of 5 is not a new mark."""
    fid = make_fund(local)
    usdc = token(local, "USDC", 6)
    local.vault.functions.setWithdrawalDelay(0).transact({"from": local.admin})
    deposit(local, fid, usdc, 10 * USD)
    publish(local, fid, 100 * USD)  # 10 a share, the mark
    local.vault.functions.requestWithdrawal(fid, 10 * USD).transact({"from": local.investor})
    local.travel(10)
    publish(local, fid, 100 * USD)
    local.vault.functions.priceWithdrawal(fid, 0).transact({"from": local.outsider})
    assert nav_state(local, fid)[5:] == (10 * USD, 0, 10 * USD, False, 10 * USD)
    local.travel(10)
    receipt = publish(local, fid, 0)  # no shares left
    assert events(local.vault, "HighWaterMarkUpdated", receipt) == []
    assert nav_state(local, fid)[5:] == (10 * USD, 0, 0, False, 0)
    deposit(local, fid, usdc, 10 * USD)
    local.travel(10)
    receipt = publish(local, fid, 50 * USD)  # 5 a share, half the mark
    assert events(local.vault, "HighWaterMarkUpdated", receipt) == []
    assert nav_state(local, fid)[5] == 10 * USD
    local.travel(10)
    receipt = publish(local, fid, 110 * USD)  # 11 a share: above the kept mark
    assert events(local.vault, "HighWaterMarkUpdated", receipt) == [{"fundId": fid, "newNAV": 11 * USD}]


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
    # A NAV that fits but over less than one whole share: its NAV per share does not.
    deposit(local, fid, token(local, "USDC", 6), 1)
    local.travel(10)
    with reverts("NavPerShareOutOfRange", fid, (2**128 - 1) * USD):
        publish(local, fid, 2**128 - 1)
    assert nav_state(local, fid)[0] == 5 * USD


def test_batch_updates_many_funds_in_one_transaction(local: Local) -> None:
    ids = [make_fund(local) for _ in range(3)]
    usdc = token(local, "USDC", 6)
    shares = {fid: (i + 1) * USD for i, fid in enumerate(ids)}  # 1, 2 and 3 shares
    for fid in ids:
        deposit(local, fid, usdc, shares[fid])
    versions = {fid: share_version(local, fid) for fid in ids}
    assert set(versions.values()) == {1}
    t = local.now()
    navs = {fid: (i + 1) * 1000 * USD for i, fid in enumerate(ids)}
    flags = {fid: FLAG_ESTIMATED * (i % 2) for i, fid in enumerate(ids)}
    words = [pack_nav_update(fid, navs[fid], t, flags[fid], versions[fid]) for fid in ids]
    assert [unpack_nav_update(w) for w in words] == [(fid, navs[fid], t, flags[fid], 1) for fid in ids]
    assert words == [local.vault.functions.packNavUpdate(*unpack_nav_update(w)).call() for w in words]
    receipt = publish_batch(local, words)
    # One NAVRecorded per fund in the hub and one seed NAVUpdated per fund in the vault.
    assert events(local.hub, "NAVRecorded", receipt) == [
        {
            "fundId": fid,
            "round": 1,
            "nav": navs[fid],
            "navPerShare": 1000 * USD,
            "asOf": t,
            "flags": flags[fid],
        }
        for fid in ids
    ]
    assert events(local.vault, "NAVUpdated", receipt) == [
        {"fundId": fid, "oldNAV": 0, "newNAV": navs[fid], "timestamp": t} for fid in ids
    ]
    assert events(local.vault, "NAVSkipped", receipt) == []
    assert [nav_state(local, f)[:3] for f in ids] == [
        (1000 * USD, t, 1),
        (2000 * USD, t, 1),
        (3000 * USD, t, 1),
    ]
    # The fund id is a topic of both: one fund's history is a log filter.
    (only,) = local.hub.events.NAVRecorded().get_logs(from_block=0, argument_filters={"fundId": ids[1]})
    assert only["args"]["nav"] == 2000 * USD
    (only,) = local.vault.events.NAVUpdated().get_logs(from_block=0, argument_filters={"fundId": ids[2]})
    assert only["args"]["newNAV"] == 3000 * USD

    # A second batch: oldNAV is each fund's previous NAV.
    t2 = local.travel(10)
    receipt = publish_batch(local, [pack_nav_update(fid, navs[fid] + USD, t2, 0, 1) for fid in ids])
    assert events(local.vault, "NAVUpdated", receipt) == [
        {"fundId": fid, "oldNAV": navs[fid], "newNAV": navs[fid] + USD, "timestamp": t2} for fid in ids
    ]
    assert [e["round"] for e in events(local.hub, "NAVRecorded", receipt)] == [2, 2, 2]

    # All or nothing: a stale entry reverts the whole batch, naming the entry.
    local.travel(10)
    t3 = local.now()
    with reverts("StaleAsOf", ids[2], t, t2):
        publish_batch(local, [pack_nav_update(ids[0], 1, t3, 0, 1), pack_nav_update(ids[2], 1, t, 0, 1)])
    assert nav_state(local, ids[0])[0] == 1000 * USD + USD


def test_a_batch_skips_a_fund_whose_shares_moved_and_applies_the_rest(local: Local) -> None:
    ids = [make_fund(local) for _ in range(3)]
    usdc = token(local, "USDC", 6)
    for fid in ids:
        deposit(local, fid, usdc, 10 * USD)
    t0 = local.now()
    publish_batch(local, [pack_nav_update(fid, 100 * USD, t0, 0, 1) for fid in ids])

    # The engine reads the funds (share version 1 each) and computes NAVs over 10 shares ...
    read = {fid: share_version(local, fid) for fid in ids}
    t = local.travel(10)
    words = [pack_nav_update(fid, 110 * USD, t, 0, read[fid]) for fid in ids]
    # ... and a deposit into the middle fund lands before the batch: 10 more shares.
    deposit(local, ids[1], usdc, 10 * USD)
    assert share_version(local, ids[1]) == 2
    assert nav_state(local, ids[1])[7] == 10 * USD  # NAV per share still the last NAV's

    receipt = publish_batch(local, words)
    assert events(local.vault, "NAVSkipped", receipt) == [
        {"fundId": ids[1], "shareVersion": 1, "currentShareVersion": 2}
    ]
    applied = [ids[0], ids[2]]
    assert [e["fundId"] for e in events(local.hub, "NAVRecorded", receipt)] == applied
    assert events(local.vault, "NAVUpdated", receipt) == [
        {"fundId": fid, "oldNAV": 100 * USD, "newNAV": 110 * USD, "timestamp": t} for fid in applied
    ]
    assert [nav_state(local, fid)[:3] for fid in ids] == [
        (110 * USD, t, 2),
        (100 * USD, t0, 1),
        (110 * USD, t, 2),
    ]
    # The skipped fund keeps its NAV per share over the supply that NAV was published at.
    assert nav_state(local, ids[1])[6:] == (20 * USD, 10 * USD, False, 10 * USD)

    # A fresh NAV at the current version goes through.
    receipt = publish_batch(local, [pack_nav_update(ids[1], 220 * USD, t, 0, 2)])
    assert events(local.vault, "NAVSkipped", receipt) == []
    assert nav_state(local, ids[1])[:3] == (220 * USD, t, 2)
    assert nav_state(local, ids[1])[7] == 11 * USD

    # A batch whose every entry is skipped changes nothing and records nothing in the hub.
    local.travel(10)
    receipt = publish_batch(local, [pack_nav_update(ids[0], USD, local.now(), 0, 7)])
    assert [log["address"] for log in receipt["logs"]] == [local.vault.address]
    assert events(local.vault, "NAVSkipped", receipt) == [
        {"fundId": ids[0], "shareVersion": 7, "currentShareVersion": 1}
    ]
    assert nav_state(local, ids[0])[0] == 110 * USD


def test_a_batch_word_is_packed_the_same_on_both_sides_or_refused(local: Local) -> None:
    top = (2**32 - 1, 2**128 - 1, 2**48 - 1, 2**16 - 1, 2**32 - 1)
    assert pack_nav_update(*top) == 2**256 - 1 == local.vault.functions.packNavUpdate(*top).call()
    assert unpack_nav_update(2**256 - 1) == top
    # Each field in its place: NAV 0-127, flags 128-143, asOf 144-191, version 192-223, fund 224-255.
    fields = [((0, 1, 0, 0, 0), 1), ((0, 0, 0, 1, 0), 1 << 128), ((0, 0, 1, 0, 0), 1 << 144),
              ((0, 0, 0, 0, 1), 1 << 192), ((1, 0, 0, 0, 0), 1 << 224)]  # fmt: skip
    for args, word in fields:
        assert pack_nav_update(*args) == word == local.vault.functions.packNavUpdate(*args).call()
        assert unpack_nav_update(word) == args
    # The word carries the share version's low 32 bits, on both sides.
    assert (
        pack_nav_update(3, 5, 7, 1, 2**32 + 9)
        == pack_nav_update(3, 5, 7, 1, 9)
        == local.vault.functions.packNavUpdate(3, 5, 7, 1, 2**32 + 9).call()
    )
    with reverts("FundIdOutOfRange", 2**32):
        local.vault.functions.packNavUpdate(2**32, 1, 1, 0, 0).call()
    with reverts("NavOutOfRange", 1, 2**128):
        local.vault.functions.packNavUpdate(1, 2**128, 1, 0, 0).call()
    for bad in ((2**32, 1, 1, 0), (1, 2**128, 1, 0), (1, 1, 2**48, 0), (1, 1, 1, 2**16), (1, -1, 1, 0)):
        with pytest.raises(ValueError, match="does not fit"):
            pack_nav_update(*bad)
    with pytest.raises(ValueError, match="negative"):
        pack_nav_update(1, 1, 1, 0, -1)


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

    snap = snapshot(local, fid)
    assert list(snap[3]) == [8, 18, 6]  # decimals, read once from each token
    assert snap[10] == len(steps)  # activity
    assert snap[8] == 690_000 * USD  # total shares
    # Only the three deposits changed the share supply; trades, fees and loans do not.
    assert snap[SNAP_SHARE_VERSION] == 3


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
    assert share_version(local, fid) == 1  # a request escrows shares, it does not change the supply

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
    state = nav_state(local, fid)
    assert state[6] == 900 * USD  # shares burnt
    # The NAV per share stays the published one, over the 1,000 shares it was computed for.
    assert (state[7], state[9]) == (11 * USD // 10, 1_000 * USD)
    assert share_version(local, fid) == 2
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


def test_two_withdrawals_priced_at_one_nav_get_the_same_price_per_share(local: Local) -> None:
    fid = make_fund(local)
    usdc = token(local, "USDC", 6)
    v = local.vault.functions
    deposit(local, fid, usdc, 3 * USD)
    v.requestWithdrawal(fid, USD).transact({"from": local.investor})
    v.requestWithdrawal(fid, USD).transact({"from": local.investor})
    local.travel(3600)
    publish(local, fid, 10 * USD)  # 3.333... a share
    priced = []
    for request_id in (0, 1):
        receipt = local.w3.eth.wait_for_transaction_receipt(
            v.priceWithdrawal(fid, request_id).transact({"from": local.outsider})
        )
        (ev,) = events(local.vault, "WithdrawalPriced", receipt)
        priced.append(ev["usd"])
    # Both over the 3 shares the NAV was published at (rounded down), though the second is
    # priced after the first burnt its share: over 2 shares it would get 5.
    assert priced == [10 * USD // 3] * 2 == [3_333_333_333_333_333_333] * 2
    assert v.getPendingWithdrawals(fid).call() == 2 * (10 * USD // 3)
    state = nav_state(local, fid)
    assert (state[6], state[7], state[9]) == (USD, 10 * USD // 3, 3 * USD)
    # A deposit between the two pricings does not move the price either.
    v.requestWithdrawal(fid, USD).transact({"from": local.investor})
    local.travel(3600)
    publish(local, fid, 4 * USD)  # 4 a share, over the 1 share left
    deposit(local, fid, usdc, 9 * USD)
    receipt = local.w3.eth.wait_for_transaction_receipt(
        v.priceWithdrawal(fid, 2).transact({"from": local.outsider})
    )
    assert events(local.vault, "WithdrawalPriced", receipt)[0]["usd"] == 4 * USD


def test_a_nav_over_no_shares_prices_no_withdrawal(local: Local) -> None:
    """NoSharesAtNav: with no delay, a NAV published at zero shares, a deposit and a request in
    the same block (same timestamp): the request is claimable at that NAV, which has no NAV per
    share."""
    fid = make_fund(local)
    usdc = token(local, "USDC", 6)
    local.vault.functions.setWithdrawalDelay(0).transact({"from": local.admin})
    block_time = local.now() + 1  # the pending block's
    gas = {"gas": 1_000_000}
    local.tester.disable_auto_mine_transactions()
    try:
        txs = [
            update_nav(local, fid, 100 * USD, block_time).transact({"from": local.engine, **gas}),
            local.vault.functions.deposit(fid, usdc.address, 1, 10 * USD, local.investor).transact(
                {"from": local.manager, **gas}
            ),
            local.vault.functions.requestWithdrawal(fid, 10 * USD).transact({"from": local.investor, **gas}),
        ]
        local.tester.mine_blocks(1)
    finally:
        local.tester.enable_auto_mine_transactions()
    assert [local.w3.eth.get_transaction_receipt(tx)["status"] for tx in txs] == [1, 1, 1]
    assert nav_state(local, fid)[1:3] == (block_time, 1)
    assert nav_state(local, fid)[6:] == (10 * USD, 0, False, 0)
    with reverts("NoSharesAtNav", fid, 1):
        local.vault.functions.priceWithdrawal(fid, 0).transact({"from": local.outsider})


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
    assert nav_state(local, fid)[5] == 10 * USD // 3  # and so is the mark


def test_role_constant_matches_the_python_side(local: Local) -> None:
    assert local.vault.functions.NAV_ENGINE_ROLE().call() == keccak(text="NAV_ENGINE_ROLE") == NAV_ENGINE_ROLE
