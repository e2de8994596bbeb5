"""FundVault's per-fund pause flag (the ripcord): who may set it, where it shows, what keeps it."""

from __future__ import annotations

from eth_utils import keccak
from web3.logs import DISCARD

from publisher.deploy import GUARDIAN_ROLE
from publisher.publish import pack_nav_update
from tests.conftest import Local, reverts
from tests.contracts.test_fund_vault import USD, make_fund, nav_state, publish, token

FLAG_ESTIMATED = 1
FLAG_PAUSED = 2
FLAG_ENGINE_PAUSE = 4  # with FLAG_PAUSED: the pause is the engine's own ripcord
ENGINE_PAUSED = FLAG_PAUSED | FLAG_ENGINE_PAUSE
SNAPSHOT_FLAGS = 14  # index of `flags` in a FundSnapshot tuple


def guardian(c: Local) -> str:
    account = c.w3.eth.accounts[5]
    c.vault.functions.grantRole(GUARDIAN_ROLE, account).transact({"from": c.admin})
    return account


def set_paused(c: Local, fund_id: int, paused: bool, sender: str, reason: str = "") -> dict:
    tx = c.vault.functions.setFundPaused(fund_id, paused, reason).transact({"from": sender})
    return c.w3.eth.wait_for_transaction_receipt(tx)


def flags_everywhere(c: Local, fund_id: int) -> tuple[int, bool, bool, int, bool]:
    """(navState flags, navState paused, isPaused, snapshot flags, navPerShareState paused)."""
    state = nav_state(c, fund_id)
    (snap,) = c.vault.functions.getFundSnapshots([fund_id]).call()
    *_, paused = c.vault.functions.navPerShareState(fund_id).call()
    return state[3], state[8], c.vault.functions.isPaused(fund_id).call(), snap[SNAPSHOT_FLAGS], paused


def test_constants_match_the_python_side(local: Local) -> None:
    assert local.vault.functions.GUARDIAN_ROLE().call() == keccak(text="GUARDIAN_ROLE") == GUARDIAN_ROLE
    assert local.vault.functions.FLAG_PAUSED().call() == FLAG_PAUSED
    assert local.vault.functions.FLAG_ESTIMATED().call() == FLAG_ESTIMATED


def test_guardian_pauses_and_unpauses_and_every_view_shows_it(local: Local) -> None:
    fid = make_fund(local)
    g = guardian(local)
    assert flags_everywhere(local, fid) == (0, False, False, 0, False)

    receipt = set_paused(local, fid, True, g, "custodian statement overdue")
    (ev,) = local.vault.events.FundPaused().process_receipt(receipt, errors=DISCARD)
    assert dict(ev["args"]) == {"fundId": fid, "paused": True, "reason": "custodian statement overdue"}
    assert flags_everywhere(local, fid) == (FLAG_PAUSED, True, True, FLAG_PAUSED, True)

    receipt = set_paused(local, fid, False, g, "statement received")
    (ev,) = local.vault.events.FundPaused().process_receipt(receipt, errors=DISCARD)
    assert dict(ev["args"]) == {"fundId": fid, "paused": False, "reason": "statement received"}
    assert flags_everywhere(local, fid) == (0, False, False, 0, False)


def test_the_nav_engine_may_pull_the_ripcord_too(local: Local) -> None:
    fid = make_fund(local)
    set_paused(local, fid, True, local.engine, "three sources disagree")
    assert local.vault.functions.isPaused(fid).call() is True
    set_paused(local, fid, False, local.engine)
    assert local.vault.functions.isPaused(fid).call() is False


def test_pause_is_per_fund(local: Local) -> None:
    a, b = make_fund(local), make_fund(local)
    set_paused(local, b, True, local.engine)
    assert [local.vault.functions.isPaused(f).call() for f in (a, b)] == [False, True]


def test_pausing_twice_is_harmless_and_logged_twice(local: Local) -> None:
    fid = make_fund(local)
    g = guardian(local)
    set_paused(local, fid, True, g, "first")
    receipt = set_paused(local, fid, True, local.engine, "second")
    (ev,) = local.vault.events.FundPaused().process_receipt(receipt, errors=DISCARD)
    assert ev["args"]["reason"] == "second"
    assert flags_everywhere(local, fid) == (FLAG_PAUSED, True, True, FLAG_PAUSED, True)
    set_paused(local, fid, False, g)
    set_paused(local, fid, False, g)
    assert flags_everywhere(local, fid) == (0, False, False, 0, False)


def test_others_may_not_pause_not_even_the_admin_or_the_manager(local: Local) -> None:
    fid = make_fund(local)
    for account in (local.outsider, local.manager, local.admin, local.investor):
        with reverts("NotGuardianOrEngine", account):
            set_paused(local, fid, True, account)
    # A revoked guardian is an outsider again.
    g = guardian(local)
    local.vault.functions.revokeRole(GUARDIAN_ROLE, g).transact({"from": local.admin})
    with reverts("NotGuardianOrEngine", g):
        set_paused(local, fid, True, g)
    assert local.vault.functions.isPaused(fid).call() is False


def test_only_the_admin_grants_the_guardian_role(local: Local) -> None:
    with reverts("AccessControlUnauthorizedAccount", local.outsider, b"\x00" * 32):
        local.vault.functions.grantRole(GUARDIAN_ROLE, local.outsider).transact({"from": local.outsider})
    with reverts("AccessControlUnauthorizedAccount", local.engine, b"\x00" * 32):
        local.vault.functions.grantRole(GUARDIAN_ROLE, local.engine).transact({"from": local.engine})


def test_unknown_fund_cannot_be_paused_or_read(local: Local) -> None:
    with reverts("UnknownFund", 9):
        set_paused(local, 9, True, local.engine)
    with reverts("UnknownFund", 9):
        local.vault.functions.isPaused(9).call()
    with reverts("UnknownFund", 0):
        local.vault.functions.navPerShareState(0).call()


def test_nav_updates_keep_the_pause_and_replace_only_the_estimated_flag(local: Local) -> None:
    fid = make_fund(local)
    publish(local, fid, 100 * USD, flags=FLAG_ESTIMATED)
    set_paused(local, fid, True, local.engine)
    # Pausing keeps the estimated flag of the NAV already published.
    assert flags_everywhere(local, fid) == (
        ENGINE_PAUSED | FLAG_ESTIMATED,
        True,
        True,
        ENGINE_PAUSED | FLAG_ESTIMATED,
        True,
    )

    t = local.travel(10)
    publish(local, fid, 101 * USD, t)  # the engine keeps publishing while paused
    assert flags_everywhere(local, fid) == (ENGINE_PAUSED, True, True, ENGINE_PAUSED, True)
    assert nav_state(local, fid)[:3] == (101 * USD, t, 2)

    local.travel(10)
    publish(local, fid, 102 * USD, flags=FLAG_ESTIMATED)
    assert flags_everywhere(local, fid) == (
        ENGINE_PAUSED | FLAG_ESTIMATED,
        True,
        True,
        ENGINE_PAUSED | FLAG_ESTIMATED,
        True,
    )
    assert nav_state(local, fid)[4] is True  # estimated

    local.travel(10)
    local.vault.functions.updateNAVBatch([pack_nav_update(fid, 103 * USD, local.now(), 0)]).transact(
        {"from": local.engine}
    )
    assert flags_everywhere(local, fid) == (ENGINE_PAUSED, True, True, ENGINE_PAUSED, True)

    local.travel(1)
    local.vault.get_function_by_signature("updateNAV(uint256,uint256)")(fid, 103 * USD + 1).transact(
        {"from": local.engine}
    )  # the seed form too
    assert flags_everywhere(local, fid) == (ENGINE_PAUSED, True, True, ENGINE_PAUSED, True)

    set_paused(local, fid, False, local.engine)
    t = local.travel(10)
    publish(local, fid, 104 * USD, t)
    assert flags_everywhere(local, fid) == (0, False, False, 0, False)
    assert nav_state(local, fid)[:3] == (104 * USD, t, 6)
    # The hub recorded each NAV with the flags it was accepted under, pause included.
    logs = local.hub.events.NAVRecorded().get_logs(from_block=0, argument_filters={"fundId": fid})
    assert [(e["args"]["round"], e["args"]["flags"]) for e in logs] == [
        (1, FLAG_ESTIMATED),
        (2, ENGINE_PAUSED),
        (3, ENGINE_PAUSED | FLAG_ESTIMATED),
        (4, ENGINE_PAUSED),
        (5, ENGINE_PAUSED),
        (6, 0),
    ]


def test_the_engine_cannot_set_or_clear_the_pause_through_update_nav(local: Local) -> None:
    fid = make_fund(local)
    with reverts("UnknownFlags", fid, FLAG_PAUSED):
        publish(local, fid, USD, flags=FLAG_PAUSED)
    with reverts("UnknownFlags", fid, FLAG_PAUSED | FLAG_ESTIMATED):
        publish(local, fid, USD, flags=FLAG_PAUSED | FLAG_ESTIMATED)
    with reverts("UnknownFlags", fid, FLAG_PAUSED):
        local.vault.functions.updateNAVBatch([pack_nav_update(fid, USD, local.now(), FLAG_PAUSED)]).transact(
            {"from": local.engine}
        )
    with reverts("UnknownFlags", fid, 1 << 15):  # nor the internal existence bit
        publish(local, fid, USD, flags=1 << 15)
    set_paused(local, fid, True, local.engine)
    with reverts("UnknownFlags", fid, FLAG_PAUSED):
        publish(local, fid, USD, flags=FLAG_PAUSED)
    assert local.vault.functions.isPaused(fid).call() is True


def test_a_paused_fund_prices_no_withdrawal_but_keeps_its_other_flows(local: Local) -> None:
    fid = make_fund(local)
    usdc = token(local, "USDC", 6)
    v = local.vault.functions
    v.deposit(fid, usdc.address, 1_000 * 10**6, 1_000 * USD, local.investor).transact({"from": local.manager})
    v.requestWithdrawal(fid, 100 * USD).transact({"from": local.investor})
    set_paused(local, fid, True, local.engine, "NAV under review")
    local.travel(3600)
    publish(local, fid, 1_000 * USD)
    with reverts("FundIsPaused", fid):
        v.priceWithdrawal(fid, 0).transact({"from": local.outsider})
    # Deposits and withdrawal requests are the vault-wide pause()'s business, not the ripcord's.
    v.deposit(fid, usdc.address, 10 * 10**6, 10 * USD, local.investor).transact({"from": local.manager})
    v.requestWithdrawal(fid, USD).transact({"from": local.investor})

    set_paused(local, fid, False, local.engine, "review done")
    v.priceWithdrawal(fid, 0).transact({"from": local.outsider})
    # 100 shares at the $1,000 NAV over the 1,000 shares it was published at: the 10 issued
    # since do not dilute the price.
    assert v.getPendingWithdrawals(fid).call() == 100 * USD


def test_the_vault_wide_pause_does_not_stop_the_ripcord(local: Local) -> None:
    fid = make_fund(local)
    local.vault.functions.pause().transact({"from": local.admin})
    set_paused(local, fid, True, local.engine)
    assert local.vault.functions.isPaused(fid).call() is True
    assert local.vault.functions.paused().call() is True  # the vault-wide one, unrelated


def test_nav_per_share_state_is_what_nav_state_says(local: Local) -> None:
    fid = make_fund(local)
    assert local.vault.functions.navPerShareState(fid).call() == [0, 0, 0, 0, False]
    usdc = token(local, "USDC", 6)
    local.vault.functions.deposit(fid, usdc.address, 3, 3 * USD, local.investor).transact(
        {"from": local.manager}
    )
    t = local.now()
    publish(local, fid, 10 * USD, t, FLAG_ESTIMATED)
    set_paused(local, fid, True, local.engine)
    state = nav_state(local, fid)
    assert local.vault.functions.navPerShareState(fid).call() == [
        state[7],
        t,
        1,
        ENGINE_PAUSED | FLAG_ESTIMATED,
        True,
    ]
    assert state[7] == 10 * USD // 3


def feed_data(c: Local, fund_id: int) -> tuple[int, int, int, bool]:
    return tuple(c.vault.functions.feedData(fund_id).call())  # type: ignore[return-value]


def test_a_pause_freezes_the_feed_at_the_last_nav_before_it(local: Local) -> None:
    fid = make_fund(local)
    usdc = token(local, "USDC", 6)
    v = local.vault.functions
    v.deposit(fid, usdc.address, 1, 4 * USD, local.investor).transact({"from": local.manager})
    t1 = local.now()
    publish(local, fid, 10 * USD, t1)
    assert feed_data(local, fid) == (10 * USD // 4, t1, 1, False)  # live

    set_paused(local, fid, True, local.engine, "NAV under review")
    frozen = (10 * USD // 4, t1, 1, True)
    assert feed_data(local, fid) == frozen
    # The engine keeps publishing and flows go on; the vault's state moves, the feed does not.
    t2 = local.travel(10)
    publish(local, fid, 20 * USD, t2)
    v.deposit(fid, usdc.address, 1, 4 * USD, local.investor).transact({"from": local.manager})
    t3 = local.travel(10)
    local.vault.functions.updateNAVBatch([pack_nav_update(fid, 24 * USD, t3, 0, 2)]).transact(
        {"from": local.engine}
    )
    assert nav_state(local, fid)[:3] == (24 * USD, t3, 3)
    assert local.vault.functions.navPerShareState(fid).call() == [3 * USD, t3, 3, ENGINE_PAUSED, True]
    assert feed_data(local, fid) == frozen
    set_paused(local, fid, True, local.engine, "pulled again")  # no second freeze at the later NAV
    assert feed_data(local, fid) == frozen

    set_paused(local, fid, False, local.engine, "review done")
    assert feed_data(local, fid) == (3 * USD, t3, 3, False)  # live again, at the latest NAV
    # A new pause freezes at the NAV then latest, per share over the supply it was published at.
    v.deposit(fid, usdc.address, 1, 8 * USD, local.investor).transact({"from": local.manager})
    set_paused(local, fid, True, local.engine)
    assert feed_data(local, fid) == (3 * USD, t3, 3, True)


def test_a_pause_before_the_first_nav_freezes_no_data(local: Local) -> None:
    fid = make_fund(local)
    set_paused(local, fid, True, local.engine)
    publish(local, fid, 10 * USD)
    assert feed_data(local, fid) == (0, 0, 0, True)
    with reverts("UnknownFund", 0):
        local.vault.functions.feedData(0).call()


def test_the_engine_pause_is_marked_the_engines_and_only_that_one_it_lifts(local: Local) -> None:
    fid = make_fund(local)
    assert local.vault.functions.FLAG_ENGINE_PAUSE().call() == FLAG_ENGINE_PAUSE
    set_paused(local, fid, True, local.engine, "breaker open")
    assert flags_everywhere(local, fid) == (ENGINE_PAUSED, True, True, ENGINE_PAUSED, True)
    set_paused(local, fid, False, local.engine, "breaker closed")
    assert flags_everywhere(local, fid) == (0, False, False, 0, False)


def test_the_engine_key_cannot_lift_a_guardians_pause(local: Local) -> None:
    """Attack with the engine's key alone, a raw transaction straight to the vault: the
    guardian's pause stays, and the refusal names the fund and the caller."""
    fid = make_fund(local)
    g = guardian(local)
    set_paused(local, fid, True, g, "custodian audit")
    with reverts("PauseHeldByGuardian", fid, local.engine):
        local.vault.functions.setFundPaused(fid, False, "breaker closed").transact({"from": local.engine})
    # Pulling it again changes nothing either: the pause stays the guardian's.
    set_paused(local, fid, True, local.engine, "breaker open")
    assert flags_everywhere(local, fid) == (FLAG_PAUSED, True, True, FLAG_PAUSED, True)
    with reverts("PauseHeldByGuardian", fid, local.engine):
        local.vault.functions.setFundPaused(fid, False, "").transact({"from": local.engine})
    set_paused(local, fid, False, g, "audit done")
    assert flags_everywhere(local, fid) == (0, False, False, 0, False)


def test_a_guardians_pause_over_the_engines_ripcord_becomes_the_guardians(local: Local) -> None:
    fid = make_fund(local)
    g = guardian(local)
    set_paused(local, fid, True, local.engine, "breaker open")
    set_paused(local, fid, True, g, "keep it paused: investigating")
    assert flags_everywhere(local, fid) == (FLAG_PAUSED, True, True, FLAG_PAUSED, True)
    with reverts("PauseHeldByGuardian", fid, local.engine):
        local.vault.functions.setFundPaused(fid, False, "breaker closed").transact({"from": local.engine})
    # The guardian may lift the engine's ripcord as well as its own.
    set_paused(local, fid, False, g, "done")
    set_paused(local, fid, True, local.engine, "breaker open")
    set_paused(local, fid, False, g, "overruled")
    assert flags_everywhere(local, fid) == (0, False, False, 0, False)


def test_a_key_with_both_roles_pauses_as_a_guardian(local: Local) -> None:
    fid = make_fund(local)
    local.vault.functions.grantRole(GUARDIAN_ROLE, local.engine).transact({"from": local.admin})
    set_paused(local, fid, True, local.engine, "both roles")
    assert flags_everywhere(local, fid)[0] == FLAG_PAUSED  # no FLAG_ENGINE_PAUSE: a guardian's


def test_updates_keep_who_holds_the_pause(local: Local) -> None:
    fid = make_fund(local)
    set_paused(local, fid, True, local.engine, "breaker open")
    publish(local, fid, 10 * USD, local.now())
    assert nav_state(local, fid)[3] == ENGINE_PAUSED
    (rec,) = local.hub.events.NAVRecorded().get_logs(from_block=0, argument_filters={"fundId": fid})
    assert rec["args"]["flags"] == ENGINE_PAUSED
