"""Exactly once under faults, on a real anvil behind a fault-injecting RPC proxy: refused sends
retried, an RPC down beyond the retries then back (the newest NAV published once), a stuck
transaction replaced with higher fees, a crash between send and receipt, a fallback RPC URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from publisher.chain import contract_at, send
from publisher.config import Settings, load_settings
from publisher.keys import dev_account, load_account
from publisher.localchain import AnvilNode, free_port, start_anvil
from publisher.navlog import nav_records
from publisher.publish import Publisher
from publisher.sender import Hooks
from publisher.store import Attempt
from tests.chainops import advance
from tests.faultkit import FakeTime, SimulatedCrash, chain_settings, crash
from tests.rpcproxy import RpcProxy

pytestmark = pytest.mark.anvil
E18 = 10**18


@pytest.fixture
def settings(proxy: RpcProxy, demo_chain: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A pristine demo chain; the publisher talks to anvil through the proxy."""
    return chain_settings(
        monkeypatch, proxy.url, demo_chain, NAVPUB_RECEIPT_TIMEOUT_S="5", NAVPUB_RECEIPT_POLL_S="1"
    )


@pytest.fixture
def rpc(anvil: AnvilNode) -> Iterator[Web3]:
    """Direct access to anvil for the test's own chain controls; automine restored after."""
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    yield w3
    w3.provider.make_request("evm_setAutomine", [True])


def nav_updates(pub: Publisher, fund_id: int) -> list[int]:
    """Every NAV the vault ever accepted for the fund (the hub's records of them)."""
    hub = contract_at(pub.engine.w3, "AnalyticsHub", pub.engine.deployment.hub)
    return [r.nav for r in nav_records(hub, fund_id)]


def move_eth(pub: Publisher, w3: Web3, usd: int) -> None:
    # Another account than the engine's: its nonces must stay the publisher's alone.
    oracle = dev_account(pub.settings, 3)
    for f in pub.engine.deployment.feeds["ETH"]:
        feed = contract_at(w3, "MockV3Aggregator", f.address)
        send(w3, oracle, feed.functions.updateAnswer(usd * 10**f.decimals), "feed")


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_send_refused_twice_then_answered(settings: Settings, proxy: RpcProxy, fault: str) -> None:
    if fault == "503":
        proxy.fail_next(2, status=503, methods="eth_sendRawTransaction")
    else:
        proxy.reset_next(2, methods="eth_sendRawTransaction")
    pub = Publisher.from_settings(settings)
    (o,) = pub.cycle([1])
    assert o.decision == "published"
    assert proxy.count("eth_sendRawTransaction") == 1  # the third try reached the node
    assert len(nav_updates(pub, 1)) == 1


def test_rpc_down_beyond_retries_then_back_publishes_the_newest_once(
    settings: Settings, proxy: RpcProxy, rpc: Web3
) -> None:
    pub = Publisher.from_settings(settings)
    proxy.fail_next(3, status=502, methods="eth_sendRawTransaction")
    (o,) = pub.cycle([1])
    assert o.decision == "pending" and "outbox" in o.reason
    (stuck,) = pub.store.unfinished_publications()
    assert stuck.status == "signed" and nav_updates(pub, 1) == []
    assert "publish_failed" in [a["kind"] for a in pub.store.alerts(1)]

    # The network is back; meanwhile ETH moved 5 %: a newer NAV supersedes the stuck one.
    move_eth(pub, rpc, 2_310)
    advance(rpc, 600)
    (o2,) = Publisher.from_settings(settings).cycle([1])
    assert o2.decision == "published" and o2.nav != o.nav
    assert nav_updates(pub, 1) == [o2.nav]  # published once, the newest
    old = pub.store.publication(stuck.id)
    assert old.status == "replaced" and old.replaced_by is not None
    new = pub.store.publication(old.replaced_by)
    assert new.status == "confirmed" and new.nonce == stuck.nonce  # same nonce: only one could land
    assert pub.store.report(o.report_id).status == "superseded"


def test_fee_too_low_transaction_sits_then_is_replaced_with_higher_fees(
    settings: Settings, rpc: Web3
) -> None:
    clock = FakeTime()

    def miner(attempt: Attempt) -> None:
        tries = publisher.store.publication(attempt.publication_id).attempts
        if len(tries) == 1:
            # The base fee jumps past our fee cap: the next block leaves the transaction out.
            rpc.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(50 * 10**9)])
        rpc.provider.make_request("evm_mine", [])

    rpc.provider.make_request("evm_setAutomine", [False])
    rpc.provider.make_request("evm_mine", [])  # a block for the snapshot to read
    publisher = Publisher.from_settings(settings, hooks=Hooks(after_broadcast=miner),
                                        sleep=clock.sleep, monotonic=clock.monotonic)  # fmt: skip
    (o,) = publisher.cycle([1])
    assert o.decision == "published"
    (p,) = publisher.store.publications()
    first, second = p.attempts
    assert first.max_fee < 50 * 10**9  # too low for the block after it
    assert second.max_fee * 8 >= first.max_fee * 9 and second.priority_fee * 8 >= first.priority_fee * 9
    assert second.max_fee >= 2 * 50 * 10**9 * 7 // 8  # repriced from the new base fee
    assert p.tx_hash == second.tx_hash  # the replacement, at the same nonce, was mined
    assert len(nav_updates(publisher, 1)) == 1
    assert clock.now >= settings.receipt_timeout_s  # it waited out the timeout (fake time)


def test_resending_a_transaction_already_mined_is_harmless(settings: Settings, rpc: Web3) -> None:
    dying = Publisher.from_settings(settings, hooks=Hooks(after_broadcast=crash))
    with pytest.raises(SimulatedCrash):
        dying.cycle([3])  # automine: mined before the crash
    (p,) = dying.store.publications()
    dying.store.update_publication(p.id, status="signed")  # as if the broadcast's answer was lost
    restarted = Publisher.from_settings(settings)
    restarted.sender.rebroadcast(restarted.store.publication(p.id))  # "nonce too low": fine
    assert restarted.settle_outbox()[0].status == "confirmed"
    assert len(nav_updates(restarted, 3)) == 1


def crash_after_send(settings: Settings, rpc: Web3, fund_ids: list[int] | None) -> tuple[Publisher, int, str]:
    """Sends with automine off and dies before the receipt; the transaction waits in the
    node's mempool. Returns the dead publisher, the publication id and the hash."""
    rpc.provider.make_request("evm_setAutomine", [False])
    rpc.provider.make_request("evm_mine", [])
    dying = Publisher.from_settings(settings, hooks=Hooks(after_broadcast=crash))
    with pytest.raises(SimulatedCrash):
        dying.cycle(fund_ids)
    (p,) = dying.store.publications()
    assert p.status == "sent" and len(p.attempts) == 1
    return dying, p.id, p.attempts[0].tx_hash


def test_crash_between_send_and_receipt_then_restart(settings: Settings, rpc: Web3) -> None:
    _, pid, _ = crash_after_send(settings, rpc, None)
    rpc.provider.make_request("evm_mine", [])  # mined while the process was down
    rpc.provider.make_request("evm_setAutomine", [True])

    restarted = Publisher.from_settings(settings)
    outcomes = restarted.cycle()
    assert [o.decision for o in outcomes] == ["skipped"] * 3  # the chain has these NAVs already
    assert restarted.store.publication(pid).status == "confirmed"
    for fund_id in (1, 2, 3):
        assert len(nav_updates(restarted, fund_id)) == 1  # no second publish
    assert {r.status for r in restarted.store.reports_of(pid)} == {"confirmed"}


def crashed_publication(settings: Settings, rpc: Web3, fund_ids: list[int]) -> tuple[Publisher, int, str]:
    """Sends, crashes before the receipt, and has the node forget the transaction."""
    dying, pid, tx_hash = crash_after_send(settings, rpc, fund_ids)
    rpc.provider.make_request("anvil_dropTransaction", [tx_hash])
    rpc.provider.make_request("evm_setAutomine", [True])
    return dying, pid, tx_hash


def test_lost_transaction_is_sent_again_when_nothing_newer_exists(settings: Settings, rpc: Web3) -> None:
    _, pid, tx_hash = crashed_publication(settings, rpc, [2])
    restarted = Publisher.from_settings(settings)
    assert restarted.settle_outbox() == []  # no receipt, nonce still free: unknown outcome
    (done,) = restarted.resume_outbox(None)
    assert done.id == pid and done.status == "confirmed" and done.tx_hash == tx_hash  # the same signed tx
    assert len(nav_updates(restarted, 2)) == 1


def test_lost_transaction_is_replaced_by_the_newest_nav_at_its_nonce(settings: Settings, rpc: Web3) -> None:
    dying, pid, _ = crashed_publication(settings, rpc, [2])
    advance(rpc, 60)
    (o,) = Publisher.from_settings(settings).cycle([2])
    assert o.decision == "published"
    old = dying.store.publication(pid)
    assert old.status == "replaced" and dying.store.publication(old.replaced_by).nonce == old.nonce
    assert nav_updates(dying, 2) == [o.nav]


def test_fallback_rpc_takes_over_and_a_wrong_chain_is_refused(
    settings: Settings, proxy: RpcProxy, anvil: AnvilNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = start_anvil(anvil.config.model_copy(update={"port": free_port(), "chain_id": 999}))
    try:
        monkeypatch.setenv("NAVPUB_RPC_FALLBACK_URLS", f"{other.rpc_url},{anvil.rpc_url}")
        pub = Publisher.from_settings(load_settings())
        proxy.down()
        (o,) = pub.cycle([3])
        assert o.decision == "published"
        assert pub.engine.pool.url == anvil.rpc_url  # past the dead proxy and the wrong chain
        assert len(nav_updates(pub, 3)) == 1
    finally:
        proxy.up()
        other.stop()


def test_nonce_taken_by_another_transaction_is_recorded_as_dropped(
    settings: Settings, proxy: RpcProxy, rpc: Web3
) -> None:
    pub = Publisher.from_settings(settings)
    proxy.fail_next(3, status=502, methods="eth_sendRawTransaction")
    (o,) = pub.cycle([1])
    (stuck,) = pub.store.unfinished_publications()
    # Someone signs with the engine's key elsewhere and takes the nonce.
    engine_key = load_account(settings)
    send(rpc, engine_key, contract_at(rpc, "MockERC20", pub.engine.deployment.tokens["DAI"].address)
         .functions.mint(engine_key.address, 1), "elsewhere")  # fmt: skip
    advance(rpc, 60)
    (o2,) = Publisher.from_settings(settings).cycle([1])
    assert pub.store.publication(stuck.id).status == "dropped"
    assert "publication_dropped" in [a["kind"] for a in pub.store.alerts()]
    assert o2.decision == "published" and nav_updates(pub, 1) == [o2.nav]
    assert pub.store.report(o.report_id).status == "superseded"


def test_a_receipt_counts_only_after_the_configured_confirmations(
    settings: Settings, rpc: Web3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAVPUB_CONFIRMATIONS", "2")
    monkeypatch.setenv("NAVPUB_MAX_REPLACEMENTS", "0")
    clock = FakeTime()
    pub = Publisher.from_settings(load_settings(), sleep=clock.sleep, monotonic=clock.monotonic)
    (o,) = pub.cycle([2])  # mined in one block, nothing mined after it
    assert o.decision == "pending" and "not confirmed yet" in o.reason
    assert pub.store.publications()[0].status == "sent"
    rpc.provider.make_request("evm_mine", [])  # the second confirmation
    (settled,) = pub.settle_outbox()
    assert settled.status == "confirmed" and len(nav_updates(pub, 2)) == 1


def test_a_mined_transaction_whose_receipt_is_not_answered_yet_is_not_dropped(
    settings: Settings, proxy: RpcProxy
) -> None:
    """Under load anvil had mined a publication (its nonce used) before it answered the receipt,
    and the sender called it dropped and published the NAV again. A transaction the node has in
    a block is waited for, however long its receipt takes."""
    proxy.drop_method("eth_getTransactionReceipt")  # null receipts, as while the index lags
    clock = FakeTime()
    pub = Publisher.from_settings(settings, sleep=clock.sleep, monotonic=clock.monotonic)
    (o,) = pub.cycle([1])
    (p,) = pub.store.publications()
    assert p.status == "sent" and o.decision != "published"  # waited, gave up for now: not dropped
    assert clock.now >= settings.receipt_timeout_s
    proxy.undrop("eth_getTransactionReceipt")
    settled = Publisher.from_settings(settings).settle_outbox()
    assert [s.status for s in settled] == ["confirmed"] and settled[0].id == p.id
    assert len(nav_updates(pub, 1)) == 1


def test_a_mined_transaction_the_node_cannot_find_for_a_moment_is_not_dropped(
    settings: Settings, proxy: RpcProxy
) -> None:
    """Worse than a lagging receipt: for a moment the node finds neither the receipt nor the
    transaction, while the account's nonce already counts it (anvil under heavy load). The
    sender looks again one poll later before calling the publication dropped."""
    lookups = ("eth_getTransactionReceipt", "eth_getTransactionByHash")
    for method in lookups:
        proxy.drop_method(method)  # null answers, as while the node's index lags
    clock = FakeTime()

    def poll_wait(seconds: float) -> None:
        for method in lookups:
            proxy.undrop(method)  # the index catches up during the first poll interval
        clock.sleep(seconds)

    pub = Publisher.from_settings(settings, sleep=poll_wait, monotonic=clock.monotonic)
    (o,) = pub.cycle([1])
    assert o.decision == "published"
    (p,) = pub.store.publications()
    assert p.status == "confirmed" and "publication_dropped" not in [a["kind"] for a in pub.store.alerts()]
    assert len(nav_updates(pub, 1)) == 1
