"""The guardian's key on anvil: `navpub correct` repairs a high-water mark that the engine's key
pushed up, with its reason on chain; the engine's key cannot correct; bad input is one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3.logs import DISCARD

from publisher.chain import TransactionFailed, contract_at, send
from publisher.cli import main
from publisher.config import Settings, load_settings
from publisher.deployment import load_deployment
from publisher.keys import DEMO_GUARDIAN_INDEX, dev_account, load_account
from publisher.localchain import AnvilNode
from publisher.money import usd_str
from publisher.publish import Publisher, pack_nav_update
from publisher.store import Store
from tests.chainops import advance

pytestmark = pytest.mark.anvil
E18 = 10**18


@pytest.fixture
def settings(anvil: AnvilNode, demo_chain: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for k, v in {"NAVPUB_RPC_URL": anvil.rpc_url, "NAVPUB_STATE_DIR": str(demo_chain),
                 "NAVPUB_CLOCK": "chain", "NAVPUB_RETRY_BACKOFF_S": "0"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    yield load_settings()


def test_a_mark_pushed_up_by_the_engine_key_is_repaired_by_the_guardian(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    pub = Publisher.from_settings(settings)
    pub.cycle()
    w3, vault = pub.engine.w3, pub.engine.vault
    honest, _, rnd, *_, honest_per_share, _, shares = vault.functions.navState(1).call()
    version = vault.functions.getFundSnapshots([1]).call()[0][-1]

    # The attack, as raw transactions with the engine's key alone: NAV ×1000, then restored.
    engine = load_account(settings)
    for nav in (honest * 1000, honest):
        advance(w3, 60)
        t = int(w3.eth.get_block("latest")["timestamp"])
        send(w3, engine, vault.functions.updateNAVBatch([pack_nav_update(1, nav, t, 0, version)]), "attack")
    state = vault.functions.navState(1).call()
    assert state[0] == honest and state[5] == honest * 1000 * E18 // shares  # the mark stayed up

    # The engine's key cannot correct, even to repair its own damage.
    with pytest.raises(TransactionFailed, match="AccessControlUnauthorizedAccount"):
        send(w3, engine, vault.functions.correctNAV(1, honest, t, 0, True, "mine"), "correct")

    advance(w3, 60)
    assert (
        main(
            ["correct", "--fund", "1", "--nav", usd_str(honest), "--reason", "bad NAV ×1000", "--reset-mark"]
        )
        == 0
    )
    out = capsys.readouterr().out
    guardian = dev_account(settings, DEMO_GUARDIAN_INDEX).address
    assert f"by guardian {guardian}" in out and "high-water mark reset" in out
    state = vault.functions.navState(1).call()
    assert state[0] == honest and state[5] == state[7] == honest_per_share and state[2] == rnd + 3
    (ev,) = vault.events.NAVCorrected().get_logs(from_block=0, argument_filters={"fundId": 1})
    assert (ev["args"]["guardian"], ev["args"]["reason"], ev["args"]["newNAV"]) == (
        guardian,
        "bad NAV ×1000",
        honest,
    )
    assert Store.for_settings(settings).high_water_marks()[1] == honest_per_share

    # The engine goes on from the corrected NAV: an ordinary cycle, the mark rises only on a rise.
    advance(w3, 3600)
    (o,) = pub.cycle([1])
    assert o.decision in ("published", "skipped")
    assert vault.functions.navState(1).call()[5] == honest_per_share


def test_correct_refuses_bad_input_in_one_line(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for args, message in [
        (["--nav", "abc", "--reason", "x"], "--nav: 'abc' is not a number"),
        (["--nav", "1.0000000000000000001", "--reason", "x"], "more than 18 decimals"),
        (["--nav", "-1", "--reason", "x"], "not a non-negative amount"),
        (["--nav", "1", "--reason", "  "], "needs a reason"),
        (["--nav", "1", "--reason", "x", "--fund", "99"], "--fund 99: no such fund"),
    ]:
        argv = ["correct", *(["--fund", "1"] if "--fund" not in args else []), *args]
        assert main(argv) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    # The engine's own key configured as the guardian's is refused before anything is sent.
    monkeypatch.setenv("NAVPUB_PRIVATE_KEY", load_account(settings).key.hex())
    monkeypatch.setenv("NAVPUB_GUARDIAN_PRIVATE_KEY", load_account(settings).key.hex())
    assert main(["correct", "--fund", "1", "--nav", "1", "--reason", "x"]) == 2
    assert "is the NAV engine's key" in capsys.readouterr().err


def test_only_a_guardian_corrects_and_the_hub_records_it(settings: Settings) -> None:
    pub = Publisher.from_settings(settings)
    pub.cycle()
    w3, vault = pub.engine.w3, pub.engine.vault
    hub = contract_at(w3, "AnalyticsHub", pub.engine.deployment.hub)
    nav = vault.functions.navState(2).call()[0]
    guardian = dev_account(settings, DEMO_GUARDIAN_INDEX)
    advance(w3, 60)
    t = int(w3.eth.get_block("latest")["timestamp"])
    receipt = send(
        w3, guardian, vault.functions.correctNAV(2, nav + E18, t, 0, False, "custodian"), "correct"
    )
    (rec,) = hub.events.NAVRecorded().process_receipt(receipt, errors=DISCARD)
    assert (rec["args"]["fundId"], rec["args"]["nav"], rec["args"]["round"]) == (2, nav + E18, 2)
    (upd,) = vault.events.NAVUpdated().process_receipt(receipt, errors=DISCARD)
    assert (upd["args"]["oldNAV"], upd["args"]["newNAV"]) == (nav, nav + E18)
    assert vault.events.HighWaterMarkReset().process_receipt(receipt, errors=DISCARD) == ()


def test_rotating_the_engine_key_loses_no_nav(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grant the new key, revoke the old, in one admin command: the old key can no longer
    publish (a raw transaction straight to the vault is refused), and a NAV computed before the
    rotation but not sent is published by the new key."""
    pub = Publisher.from_settings(settings)
    pub.cycle()
    w3, vault = pub.engine.w3, pub.engine.vault
    old = load_account(settings)
    new = dev_account(settings, 6)
    # A NAV computed and left in the outbox: its transaction refused by the node for now.
    advance(w3, 3600)
    pub.engine.run([1])  # the heartbeat is due: a pending report, not sent yet
    waiting = pub.store.pending_reports([1])
    assert len(waiting) == 1

    assert main(["rotate-engine", "--new", new.address]) == 0
    out = capsys.readouterr().out
    assert f"granted {new.address}" in out and f"revoked {old.address}" in out and "1 NAV(s) waiting" in out
    role = vault.functions.NAV_ENGINE_ROLE().call()
    assert (
        vault.functions.hasRole(role, new.address).call()
        and not vault.functions.hasRole(role, old.address).call()
    )
    assert load_deployment(settings).nav_engine == new.address

    t = int(w3.eth.get_block("latest")["timestamp"])
    version = vault.functions.getFundSnapshots([1]).call()[0][-1]
    with pytest.raises(TransactionFailed, match="AccessControlUnauthorizedAccount"):
        send(w3, old, vault.functions.updateNAVBatch([pack_nav_update(1, E18, t, 0, version)]), "old key")

    # The keeper restarts with the new key: the waiting NAV goes out under it.
    monkeypatch.setenv("NAVPUB_PRIVATE_KEY", new.key.hex())
    fresh = Publisher.from_settings(load_settings())
    rnd = vault.functions.navState(1).call()[2]
    outcomes = {o.fund_id: o for o in fresh.cycle([1])}
    assert outcomes[1].decision == "published"
    assert vault.functions.navState(1).call()[2] == rnd + 1
    (p,) = [p for p in fresh.store.publications() if outcomes[1].tx_hash == p.tx_hash]
    assert p.sender == new.address


def test_rotation_refuses_while_the_old_key_has_a_transaction_in_flight(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in {
        "NAVPUB_RECEIPT_TIMEOUT_S": "1",
        "NAVPUB_RECEIPT_POLL_S": "0.2",
        "NAVPUB_MAX_REPLACEMENTS": "0",
    }.items():
        monkeypatch.setenv(k, v)
    pub = Publisher.from_settings(load_settings())
    w3 = pub.engine.w3
    w3.provider.make_request("evm_setAutomine", [False])  # the NAV transaction stays in the mempool
    try:
        outcomes = pub.cycle([1])
        assert outcomes[0].decision == "pending"
        assert main(["rotate-engine", "--new", dev_account(settings, 6).address]) == 2
        err = capsys.readouterr().err
        assert "still has publication(s)" in err and len(err.strip().splitlines()) == 1
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    assert main(["rotate-engine", "--new", load_account(settings).address]) == 2
    assert "is already the NAV engine" in capsys.readouterr().err
