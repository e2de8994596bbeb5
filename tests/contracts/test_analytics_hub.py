"""AnalyticsHub on eth-tester: who may record, history events, latest NAV per fund."""

from __future__ import annotations

from web3.logs import DISCARD

from publisher.publish import pack_nav_update
from tests.conftest import Local, reverts

USD = 10**18


def test_only_the_vault_or_a_nav_engine_may_record(local: Local) -> None:
    with reverts("NotRecorder", local.outsider):
        local.hub.functions.recordNAV(1, USD, local.now()).transact({"from": local.outsider})
    with reverts("NotRecorder", local.admin):
        local.hub.functions.recordNAVBatch([pack_nav_update(1, USD, local.now(), 0)]).transact(
            {"from": local.admin}
        )


def test_direct_records_by_the_engine_are_kept_and_checked(local: Local) -> None:
    t = local.now()
    tx = local.hub.functions.recordNAV(42, 5 * USD, t).transact({"from": local.engine})
    (ev,) = local.hub.events.NAVRecorded().process_receipt(
        local.w3.eth.wait_for_transaction_receipt(tx), errors=DISCARD
    )
    assert dict(ev["args"]) == {"fundId": 42, "nav": 5 * USD, "timestamp": t}
    assert local.hub.functions.latestNAV(42).call() == [5 * USD, t]
    with reverts("BadTimestamp", 42, t, t):
        local.hub.functions.recordNAV(42, 6 * USD, t).transact({"from": local.engine})
    with reverts("BadTimestamp"):
        local.hub.functions.recordNAV(42, 6 * USD, local.now() + 100).transact({"from": local.engine})


def test_latest_nav_of_a_vault_fund_comes_from_the_vault(local: Local) -> None:
    local.vault.functions.createFund(local.manager).transact({"from": local.admin})
    with reverts("NoNav", 1):
        local.hub.functions.latestNAV(1).call()
    t = local.now()
    local.vault.functions.updateNAV(1, 7 * USD, t, 0).transact({"from": local.engine})
    assert local.hub.functions.latestNAV(1).call() == [7 * USD, t]


def test_history_is_the_event_series(local: Local) -> None:
    local.vault.functions.createFund(local.manager).transact({"from": local.admin})
    series = []
    for nav in (100, 105, 98):
        local.travel(3600)
        t = local.now()
        local.vault.functions.updateNAV(1, nav * USD, t, 0).transact({"from": local.engine})
        series.append((nav * USD, t))
    logs = local.hub.events.NAVRecorded().get_logs(from_block=0, argument_filters={"fundId": 1})
    assert [(e["args"]["nav"], e["args"]["timestamp"]) for e in logs] == series
