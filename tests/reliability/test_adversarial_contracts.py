"""Adversarial contract checks on eth-tester: every state-changing function of FundVault,
AnalyticsHub and PriceOracleRouter refuses each account not entitled to it, with the custom error
that names the caller — the list is read from abi/, so a function added later is checked the day
it is compiled — while the entitled account's identical call goes through (so the refusal is
about who calls, not what is passed); replayed and re-dated signed publications; NAVs outside the
vault's range; a hub that records only what its vault accepted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import ValidationError, keccak
from web3.contract import Contract

from publisher.artifacts import load_artifact
from publisher.deploy import NAV_ENGINE_ROLE
from publisher.publish import pack_nav_update
from tests.conftest import Local, reverts
from tests.contracts.test_analytics_hub import give_ether

USD = 10**18
ADMIN_ROLE = b"\x00" * 32
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")

# Who may call each state-changing function. Every function of the ABI not named here is taken
# to be an admin function: a new one is checked as such the day it appears in abi/, and one
# meant for somebody else fails this test until it is classified here.
ENGINE_ONLY = {
    ("FundVault", "updateNAV"),  # both overloads
    ("FundVault", "updateNAVBatch"),
}
# The hub records only for its vault, which calls it in the transaction that accepts a NAV.
VAULT_ONLY = {
    ("AnalyticsHub", "recordNAV"),
    ("AnalyticsHub", "recordNAVs"),
}
MANAGER_ONLY = {
    ("FundVault", f)
    for f in ("deposit", "trade", "accrueFee", "collectFee", "borrow", "repay", "settleWithdrawal")
}
GUARDIAN_OR_ENGINE = {("FundVault", "setFundPaused")}
# A guardian's hand-computed NAV: never the engine's key, nor the admin's.
GUARDIAN_ONLY = {("FundVault", "correctNAV")}
# Open by design, each checked below for what it lets an outsider do.
OPEN = {
    ("FundVault", "requestWithdrawal"),  # any holder, of their own shares
    ("FundVault", "priceWithdrawal"),  # anyone, once claimable and a later NAV exists
    *((c, "renounceRole") for c in ("FundVault", "PriceOracleRouter")),  # one's own roles
}
CONTRACTS = ("FundVault", "AnalyticsHub", "PriceOracleRouter")


@dataclass
class World:
    """The local chain with a fund in every state the functions need: holdings, fees, debt, a
    priced withdrawal (to settle), a queued one, a published NAV, a guardian and a price feed."""

    c: Local
    guardian: str
    fund: int
    usdc: Contract
    gold: Contract
    feed: Contract
    queued: int  # request id of a withdrawal queued, not yet claimable

    def contract(self, name: str) -> Contract:
        return {"FundVault": self.c.vault, "AnalyticsHub": self.c.hub, "PriceOracleRouter": self.c.router}[
            name
        ]

    @property
    def accounts(self) -> dict[str, str]:
        c = self.c
        return {"admin": c.admin, "engine": c.engine, "manager": c.manager, "investor": c.investor,
                "outsider": c.outsider, "guardian": self.guardian}  # fmt: skip


@pytest.fixture
def world(local: Local) -> World:
    c, v = local, local.vault.functions
    guardian = c.w3.eth.accounts[5]
    v.grantRole(GUARDIAN_ROLE, guardian).transact({"from": c.admin})
    v.createFund(c.manager).transact({"from": c.admin})
    fund = v.fundCount().call()
    tokens = []
    for symbol, decimals in (("USDC", 6), ("XAUT", 6)):
        t = c.deploy("MockERC20", symbol, symbol, decimals)
        t.functions.mint(c.manager, 10**30).transact({"from": c.manager})
        t.functions.approve(c.vault.address, 2**256 - 1).transact({"from": c.manager})
        tokens.append(t)
    usdc, gold = tokens
    m = {"from": c.manager}
    v.deposit(fund, usdc.address, 1_000 * 10**6, 1_000 * USD, c.investor).transact(m)
    v.deposit(fund, gold.address, 10**6, 1 * USD, c.investor).transact(m)
    v.accrueFee(fund, 10 * USD).transact(m)
    v.borrow(fund, usdc.address, 100 * 10**6, 100 * USD).transact(m)
    v.requestWithdrawal(fund, 10 * USD).transact({"from": c.investor})
    c.travel(3_601)
    update_nav(c, fund, 1_000 * USD, c.now()).transact({"from": c.engine})
    v.priceWithdrawal(fund, 0).transact({"from": c.outsider})
    v.requestWithdrawal(fund, 10 * USD).transact({"from": c.investor})
    feed = c.deploy("MockV3Aggregator", 8, 10**8)
    give_ether(c, c.vault.address)  # so that an eth_call may come from the vault (the hub's caller)
    c.travel(60)
    return World(c, guardian, fund, usdc, gold, feed, queued=1)


def update_nav(c: Local, fund_id: int, nav: int, as_of: int, flags: int = 0) -> Any:
    """The four-argument updateNAV (the two-argument seed form is its overload)."""
    return c.vault.get_function_by_signature("updateNAV(uint256,uint256,uint48,uint16)")(
        fund_id, nav, as_of, flags
    )


def share_version(c: Local, fund_id: int) -> int:
    (snap,) = c.vault.functions.getFundSnapshots([fund_id]).call()
    return snap[-1]


def abi_type(i: dict[str, Any]) -> str:
    """The canonical type of an ABI input (a struct as its tuple of component types)."""
    if i["type"].startswith("tuple"):
        return "(" + ",".join(abi_type(c) for c in i["components"]) + ")" + i["type"][len("tuple") :]
    return i["type"]


def signature(fn: dict[str, Any]) -> str:
    return f"{fn['name']}({','.join(abi_type(i) for i in fn['inputs'])})"


def args_for(w: World, fn: dict[str, Any]) -> list[Any]:
    """Arguments an entitled caller's call would succeed with, by parameter name (type as fallback)."""
    now = w.c.now()
    v = w.c.vault.functions
    latest_nav, latest_as_of, latest_round = v.latestNAV(w.fund).call()
    per_share = v.navState(w.fund).call()[7]
    by_name: dict[str, Any] = {
        "fundId": w.fund, "requestId": 0, "asset": w.usdc.address, "assetSold": w.usdc.address,
        "assetBought": w.gold.address, "amount": 1, "amountSold": 1, "amountBought": 1, "usd": 1,
        "debtUsd": 1, "shares": 1, "receiver": w.c.investor, "manager": w.c.outsider,
        "account": w.c.outsider, "role": NAV_ENGINE_ROLE, "callerConfirmation": w.c.outsider,
        "nav": 2 * USD, "asOf": now, "timestamp": now, "flags": 0,
        "updates": [pack_nav_update(w.fund, 2 * USD, now, 0, share_version(w.c, w.fund))],
        "records": [(w.fund, latest_round, latest_nav, per_share, latest_as_of, 0)],
        "delay": 60, "paused": True, "resetMark": True, "reason": "adversarial test",
        "feeds": [w.feed.address],
        "maxAges": [3_600], "maxDeviationBps_": 1_000, "minConfidence_": 50,
    }  # fmt: skip
    if fn["name"] == "recordNAV":  # the hub's seed call names the vault's latest NAV
        by_name.update(nav=latest_nav, timestamp=latest_as_of)
    return [by_name[i["name"]] if i["name"] in by_name else by_type(w, i["type"]) for i in fn["inputs"]]


def by_type(w: World, solidity_type: str) -> Any:
    if solidity_type.endswith("[]"):
        return [by_type(w, solidity_type[:-2])]
    if solidity_type.startswith(("uint", "int")):
        return 1
    return {"address": w.c.outsider, "bool": True, "string": "x", "bytes32": NAV_ENGINE_ROLE}.get(
        solidity_type, b""
    )


def state_changing(name: str) -> list[dict[str, Any]]:
    abi = load_artifact(name).abi
    return [e for e in abi if e["type"] == "function" and e["stateMutability"] not in ("view", "pure")]


def who_may(contract: str, fn: str) -> tuple[list[str], Callable[[World, str], tuple[Any, ...]]]:
    """The entitled accounts and the error (name, args...) anyone else must get."""
    if (contract, fn) in VAULT_ONLY:
        return ["vault"], lambda w, caller: ("NotVault", caller, w.c.vault.address)
    if (contract, fn) in ENGINE_ONLY:
        return ["engine"], lambda w, caller: ("AccessControlUnauthorizedAccount", caller, NAV_ENGINE_ROLE)
    if (contract, fn) in MANAGER_ONLY:
        return ["manager"], lambda w, caller: ("NotFundManager", w.fund, caller, w.c.manager)
    if (contract, fn) in GUARDIAN_OR_ENGINE:
        return ["guardian", "engine"], lambda w, caller: ("NotGuardianOrEngine", caller)
    if (contract, fn) in GUARDIAN_ONLY:
        return ["guardian"], lambda w, caller: ("AccessControlUnauthorizedAccount", caller, GUARDIAN_ROLE)
    return ["admin"], lambda w, caller: ("AccessControlUnauthorizedAccount", caller, ADMIN_ROLE)


# A precondition some functions need to be callable at all by the entitled account.
PREPARE: dict[tuple[str, str], Callable[[World], None]] = {
    ("FundVault", "unpause"): lambda w: w.c.vault.functions.pause().transact({"from": w.c.admin}),
}


@pytest.fixture
def snapshot(world: World) -> Iterator[Callable[[], None]]:
    """Restores the chain to the world's state (eth-tester snapshot) when called."""
    tester = world.c.tester
    snap = tester.take_snapshot()
    yield lambda: tester.revert_to_snapshot(snap)


def fingerprint(w: World) -> tuple[Any, ...]:
    """Enough state to see an effect of a refused call: no block mined (a refused call sends no
    transaction at all), the NAV slot, holdings, liabilities, the fund count and the pause."""
    v = w.c.vault.functions
    return (
        w.c.w3.eth.block_number, tuple(v.navState(w.fund).call()), v.getAllHoldings(w.fund).call(),
        v.getPendingFees(w.fund).call(), v.getBorrowed(w.fund).call(), v.activityOf(w.fund).call(),
        v.fundCount().call(), v.paused().call(), v.withdrawalDelay().call(), v.managerOf(w.fund).call(),
    )  # fmt: skip


def test_every_state_changing_function_refuses_whoever_is_not_entitled(
    world: World, snapshot: Callable[[], None]
) -> None:
    functions = [(name, fn) for name in CONTRACTS for fn in state_changing(name)]
    assert len(functions) >= 29  # 22 + 2 + 5 today; fewer means the ABI was not read
    refused = checked = 0
    for contract_name, fn in functions:
        key = (contract_name, fn["name"])
        if key in OPEN:
            continue
        entitled, error = who_may(*key)
        prepare = PREPARE.get(key)
        if prepare is not None:
            prepare(world)
        contract = world.contract(contract_name)
        call = contract.get_function_by_signature(signature(fn))(*args_for(world, fn))
        before = fingerprint(world)
        for role, account in world.accounts.items():
            if role in entitled:
                continue
            name, *expected = error(world, account)
            with reverts(name, *expected):
                call.transact({"from": account})
            refused += 1
        assert fingerprint(world) == before, key
        assert not world.c.vault.functions.hasRole(NAV_ENGINE_ROLE, world.c.outsider).call()
        for role in entitled:
            sender = world.c.vault.address if role == "vault" else world.accounts[role]
            call.call({"from": sender})  # the same call, entitled: goes through
        checked += 1
        snapshot()
    assert checked == len(functions) - len(OPEN)
    assert refused >= 5 * checked - 2  # five or four refused accounts per function


def test_open_functions_give_an_outsider_nothing(world: World) -> None:
    c, v = world.c, world.c.vault.functions
    out = {"from": c.outsider}
    # Shares one does not hold cannot be queued.
    with reverts("InsufficientShares", world.fund, c.outsider, 0, 1):
        v.requestWithdrawal(world.fund, 1).transact(out)
    # Another's queued request: not before its time, not before a NAV as of then.
    (_, request) = v.getWithdrawalRequests(world.fund).call()
    owner, _, _, claimable, shares, _ = request
    with reverts("WithdrawalNotClaimable", world.fund, world.queued, claimable):
        v.priceWithdrawal(world.fund, world.queued).transact(out)
    c.set_time(claimable)
    last_as_of = v.navState(world.fund).call()[1]
    with reverts("WithdrawalAwaitsNav", world.fund, world.queued, claimable, last_as_of):
        v.priceWithdrawal(world.fund, world.queued).transact(out)
    update_nav(c, world.fund, 990 * USD, claimable).transact({"from": c.engine})
    total = v.navState(world.fund).call()[6]
    v.priceWithdrawal(world.fund, world.queued).transact(out)
    (_, priced) = v.getWithdrawalRequests(world.fund).call()
    # Priced for its owner, at the engine's NAV; the outsider holds nothing and owes nothing.
    assert (priced[0], priced[1], priced[5]) == (owner, 2, 990 * USD * shares // total)
    assert v.sharesOf(world.fund, c.outsider).call() == 0
    # Nobody renounces a role for somebody else.
    for contract in (c.vault, c.router):
        with reverts("AccessControlBadConfirmation"):
            contract.functions.renounceRole(NAV_ENGINE_ROLE, c.engine).transact(out)
    assert c.vault.functions.hasRole(NAV_ENGINE_ROLE, c.engine).call()


# -- replayed, re-dated and out-of-range publications ----------------------------------------


def engine_key(c: Local) -> LocalAccount:
    keys = {k.public_key.to_checksum_address(): k for k in c.tester.backend.account_keys}
    return Account.from_key(keys[c.engine].to_bytes())


def signed(c: Local, key: LocalAccount, call: Any) -> bytes:
    tx = call.build_transaction(
        {"from": key.address, "nonce": c.w3.eth.get_transaction_count(key.address), "gas": 300_000}
    )
    return key.sign_transaction(tx).raw_transaction


def test_replayed_and_redated_publications_are_refused(world: World) -> None:
    c, v = world.c, world.c.vault.functions
    key = engine_key(c)
    t1 = c.now()
    single = signed(c, key, update_nav(c, world.fund, 1_010 * USD, t1))
    assert c.w3.eth.wait_for_transaction_receipt(c.w3.eth.send_raw_transaction(single))["status"] == 1
    c.travel(60)
    t2 = c.now()
    version = share_version(c, world.fund)
    assert version == 3  # two deposits and a priced withdrawal
    batch = signed(c, key, v.updateNAVBatch([pack_nav_update(world.fund, 1_020 * USD, t2, 0, version)]))
    assert c.w3.eth.wait_for_transaction_receipt(c.w3.eth.send_raw_transaction(batch))["status"] == 1
    after = (tuple(v.navState(world.fund).call()), c.w3.eth.get_transaction_count(c.engine))
    assert after[0][:3] == (1_020 * USD, t2, 3)

    # The raw bytes of either, sent again by whoever saw them: refused for their nonce.
    c.travel(60)
    for raw in (single, batch):
        with pytest.raises(ValidationError, match="nonce"):
            c.w3.eth.send_raw_transaction(raw)
    assert (tuple(v.navState(world.fund).call()), c.w3.eth.get_transaction_count(c.engine)) == after

    # A fresh transaction (new nonce) carrying an old asOf, one from the future, a NAV over 2^128:
    # mined and reverted, nothing written; each refused with its own error.
    redated = [
        (update_nav(c, world.fund, 5_000 * USD, t1), ("StaleAsOf", world.fund, t1, t2)),
        (update_nav(c, world.fund, 5_000 * USD, t2), ("StaleAsOf", world.fund, t2, t2)),
        (v.updateNAVBatch([pack_nav_update(world.fund, USD, t1, 0, version)]),
         ("StaleAsOf", world.fund, t1, t2)),
        (update_nav(c, world.fund, 5_000 * USD, t2 + 3_600), ("FutureAsOf", world.fund, t2 + 3_600)),
        (update_nav(c, world.fund, 2**128, c.now()), ("NavOutOfRange", world.fund, 2**128)),
        (update_nav(c, world.fund, 2**256 - 1, c.now()), ("NavOutOfRange", world.fund, 2**256 - 1)),
        (seed_update(c, world.fund, 2**128), ("NavOutOfRange", world.fund, 2**128)),
    ]  # fmt: skip
    for call, (name, *expected) in redated:
        receipt = c.w3.eth.wait_for_transaction_receipt(c.w3.eth.send_raw_transaction(signed(c, key, call)))
        assert receipt["status"] == 0, name
        with reverts(name) as caught:
            call.call({"from": c.engine})
        assert caught.error is not None and caught.error.args[: len(expected)] == tuple(expected)
    assert tuple(v.navState(world.fund).call()) == after[0]
    # The largest NAV that fits is accepted: the bound is the storage, not a plausibility rule
    # (plausibility is the engine's jump guard, exercised on anvil).
    update_nav(c, world.fund, 2**128 - 1, c.now()).transact({"from": c.engine})
    assert v.navState(world.fund).call()[0] == 2**128 - 1


def seed_update(c: Local, fund_id: int, nav: int) -> Any:
    return c.vault.get_function_by_signature("updateNAV(uint256,uint256)")(fund_id, nav)


def test_the_hub_records_only_what_the_vault_accepted(world: World) -> None:
    """Direct records — out of range, re-dated, for funds the vault lacks — are refused whoever
    sends them, the NAV engine included; the vault's own call is checked against the vault's
    state; and the hub's whole history is the vault's NAVUpdated series, one to one."""
    c, hub = world.c, world.c.hub.functions
    t = c.now()
    nav, as_of, rnd = c.vault.functions.latestNAV(world.fund).call()
    direct = [
        hub.recordNAV(77, USD, t),
        hub.recordNAV(world.fund, 2**192, t),
        hub.recordNAV(world.fund, nav, as_of),  # even the truth, from anyone but the vault
        hub.recordNAVs([(77, 1, USD, USD, t, 0)]),
        hub.recordNAVs([(world.fund, rnd + 1, 2**200, 0, t + 3_600, 0xFFFF)]),
    ]
    for call in direct:
        for account in world.accounts.values():
            with reverts("NotVault", account, c.vault.address):
                call.transact({"from": account})
    as_vault = {"from": c.vault.address}
    with reverts("NotVaultState", world.fund, 2**192, t, nav, as_of):
        hub.recordNAV(world.fund, 2**192, t).call(as_vault)
    with reverts("UnknownFund", 77):
        hub.recordNAV(77, USD, t).call(as_vault)
    with reverts("UnknownFund", 77):
        hub.latestNAV(77).call()
    assert hub.latestNAV(world.fund).call() == [nav, as_of]

    # Publish through every path, then compare the hub's log with the vault's.
    c.travel(60)
    update_nav(c, world.fund, 1_001 * USD, c.now()).transact({"from": c.engine})
    c.travel(60)
    seed_update(c, world.fund, 1_002 * USD).transact({"from": c.engine})
    c.travel(60)
    c.vault.functions.updateNAVBatch(
        [pack_nav_update(world.fund, 1_003 * USD, c.now(), 1, share_version(c, world.fund))]
    ).transact({"from": c.engine})
    recorded = c.hub.events.NAVRecorded().get_logs(from_block=0)
    updated = c.vault.events.NAVUpdated().get_logs(from_block=0)
    assert len(recorded) == len(updated) == 4
    assert [
        (e["transactionHash"], e["args"]["fundId"], e["args"]["nav"], e["args"]["asOf"]) for e in recorded
    ] == [
        (e["transactionHash"], e["args"]["fundId"], e["args"]["newNAV"], e["args"]["timestamp"])
        for e in updated
    ]
    assert [e["args"]["round"] for e in recorded] == [1, 2, 3, 4]
    assert [e["args"]["flags"] for e in recorded] == [0, 0, 0, 1]
