"""AnalyticsHub on eth-tester: only its vault records, one NAVRecorded per accepted NAV, latest
NAV read from the vault."""

from __future__ import annotations

import warnings

from web3.logs import DISCARD

from publisher.publish import pack_nav_update
from tests.conftest import Local, reverts
from tests.contracts.test_fund_vault import (
    SEED_UPDATE_NAV,
    USD,
    deposit,
    make_fund,
    nav_state,
    publish,
    publish_batch,
    token,
)

# A NavRecord as recordNAVs takes it: (fundId, round, nav, navPerShare, asOf, flags).
FAKE_RECORD = (1, 1, USD, USD, 1, 0)


def give_ether(c: Local, address: str) -> None:
    """Sends 1 ETH to `address` even if it cannot receive any: a contract created with the
    value that self-destructs to it (PUSH20 address, SELFDESTRUCT) in its constructor. Lets an
    eth_call come "from" a contract, which must pay for its gas like any sender."""
    code = b"\x73" + bytes.fromhex(address[2:]) + b"\xff"
    with warnings.catch_warnings():  # py-evm warns that SELFDESTRUCT is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        tx = c.w3.eth.send_transaction({"from": c.admin, "data": "0x" + code.hex(), "value": 10**18})
        assert c.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    assert c.w3.eth.get_balance(address) >= 10**18


def test_the_hub_belongs_to_its_vault(local: Local) -> None:
    assert local.hub.functions.vault().call() == local.vault.address
    assert local.vault.functions.hub().call() == local.hub.address


def test_only_the_vault_may_record(local: Local) -> None:
    fid = make_fund(local)
    publish(local, fid, USD)
    t = local.now()
    # Not an outsider, not the admin, not even the NAV engine: it publishes through the vault.
    for account in (local.outsider, local.admin, local.engine, local.manager):
        with reverts("NotVault", account, local.vault.address):
            local.hub.functions.recordNAV(fid, 2 * USD, t).transact({"from": account})
        with reverts("NotVault", account, local.vault.address):
            local.hub.functions.recordNAVs([FAKE_RECORD]).transact({"from": account})
    # Not even a record that agrees with the vault.
    nav, as_of, _ = local.vault.functions.latestNAV(fid).call()
    with reverts("NotVault", local.engine, local.vault.address):
        local.hub.functions.recordNAV(fid, nav, as_of).transact({"from": local.engine})
    assert local.hub.events.NAVRecorded().get_logs(from_block=0)[-1]["args"]["nav"] == USD


def test_the_seed_record_call_must_name_the_vaults_latest_nav(local: Local) -> None:
    """recordNAV reads round, NAV per share and flags back from the vault: a record that is not
    the vault's latest NAV is refused even from the vault (an eth_call "from" its address)."""
    fid = make_fund(local)
    deposit(local, fid, token(local, "USDC", 6), 2 * USD)
    t = local.now()
    publish(local, fid, 10 * USD, t, 1)
    give_ether(local, local.vault.address)
    as_vault = {"from": local.vault.address}
    hub = local.hub.functions
    hub.recordNAV(fid, 10 * USD, t).call(as_vault)  # the vault's latest: goes through
    with reverts("NotVaultState", fid, 11 * USD, t, 10 * USD, t):
        hub.recordNAV(fid, 11 * USD, t).call(as_vault)
    with reverts("NotVaultState", fid, 10 * USD, t - 1, 10 * USD, t):
        hub.recordNAV(fid, 10 * USD, t - 1).call(as_vault)
    # The vault's seed updateNAV records through this call: its own state, read back.
    tx = local.vault.get_function_by_signature(SEED_UPDATE_NAV)(fid, 12 * USD).transact(
        {"from": local.engine}
    )
    receipt = local.w3.eth.wait_for_transaction_receipt(tx)
    (ev,) = local.hub.events.NAVRecorded().process_receipt(receipt, errors=DISCARD)
    block_time = local.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert dict(ev["args"]) == {
        "fundId": fid, "round": 2, "nav": 12 * USD, "navPerShare": 6 * USD, "asOf": block_time, "flags": 0,
    }  # fmt: skip


def test_latest_nav_of_a_vault_fund_comes_from_the_vault(local: Local) -> None:
    fid = make_fund(local)
    with reverts("NoNav", fid):
        local.hub.functions.latestNAV(fid).call()
    with reverts("UnknownFund", 9):  # the vault's own error, for a fund it lacks
        local.hub.functions.latestNAV(9).call()
    t = local.now()
    publish(local, fid, 7 * USD, t)
    assert local.hub.functions.latestNAV(fid).call() == [7 * USD, t]
    t2 = local.travel(10)
    publish_batch(local, [pack_nav_update(fid, 8 * USD, t2, 0)])
    assert local.hub.functions.latestNAV(fid).call() == [8 * USD, t2]


def test_a_batch_yields_one_record_per_fund(local: Local) -> None:
    a, b = make_fund(local), make_fund(local)
    usdc = token(local, "USDC", 6)
    deposit(local, a, usdc, 2 * USD)
    deposit(local, b, usdc, 4 * USD)
    t = local.now()
    receipt = publish_batch(
        local, [pack_nav_update(a, 10 * USD, t, 1, 1), pack_nav_update(b, 10 * USD, t, 0, 1)]
    )
    records = local.hub.events.NAVRecorded().process_receipt(receipt, errors=DISCARD)
    assert [dict(e["args"]) for e in records] == [
        {"fundId": a, "round": 1, "nav": 10 * USD, "navPerShare": 5 * USD, "asOf": t, "flags": 1},
        {"fundId": b, "round": 1, "nav": 10 * USD, "navPerShare": 10 * USD // 4, "asOf": t, "flags": 0},
    ]
    updates = local.vault.events.NAVUpdated().process_receipt(receipt, errors=DISCARD)
    assert [dict(e["args"]) for e in updates] == [
        {"fundId": a, "oldNAV": 0, "newNAV": 10 * USD, "timestamp": t},
        {"fundId": b, "oldNAV": 0, "newNAV": 10 * USD, "timestamp": t},
    ]
    assert {e["address"] for e in records} == {local.hub.address}


def test_history_is_the_event_series(local: Local) -> None:
    """Single, seed and batch updates of two funds: each fund's NAVRecorded series (by topic) is
    every NAV the vault accepted for it, round by round, logged in the same transaction as the
    vault's NAVUpdated of it, whose oldNAV is the NAV before."""
    a, b = make_fund(local), make_fund(local)
    deposit(local, a, token(local, "USDC", 6), 10 * USD)  # b has no shares: NAV per share 0
    seed = local.vault.get_function_by_signature(SEED_UPDATE_NAV)
    paths = ["single", "batch", "seed", "single", "batch"]
    expected: dict[int, list[tuple[int, int, int, int]]] = {a: [], b: []}  # (round, nav, per share, asOf)
    for i, path in enumerate(paths):
        t = local.travel(3600)
        navs = {a: (100 + i) * USD, b: (50 - i) * USD}
        as_of = dict.fromkeys(navs, t)
        if path == "single":
            for fid in (a, b):
                publish(local, fid, navs[fid], t)
        elif path == "batch":
            publish_batch(local, [pack_nav_update(a, navs[a], t, 0, 1), pack_nav_update(b, navs[b], t, 0, 0)])
        else:  # as of each transaction's block
            for fid in (a, b):
                receipt = local.w3.eth.wait_for_transaction_receipt(
                    seed(fid, navs[fid]).transact({"from": local.engine})
                )
                as_of[fid] = local.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
        expected[a].append((i + 1, navs[a], navs[a] // 10, as_of[a]))
        expected[b].append((i + 1, navs[b], 0, as_of[b]))
    for fid in (a, b):
        logs = local.hub.events.NAVRecorded().get_logs(from_block=0, argument_filters={"fundId": fid})
        args = [e["args"] for e in logs]
        assert [(r["round"], r["nav"], r["navPerShare"], r["asOf"]) for r in args] == expected[fid]
        assert nav_state(local, fid)[:3] == (expected[fid][-1][1], expected[fid][-1][3], len(paths))
        updates = local.vault.events.NAVUpdated().get_logs(from_block=0, argument_filters={"fundId": fid})
        navs_in_order = [nav for _, nav, _, _ in expected[fid]]
        assert [(e["args"]["oldNAV"], e["args"]["newNAV"], e["args"]["timestamp"]) for e in updates] == [
            (old, nav, as_of)
            for old, (_, nav, _, as_of) in zip([0, *navs_in_order[:-1]], expected[fid], strict=True)
        ]
        assert [e["transactionHash"] for e in logs] == [e["transactionHash"] for e in updates]
