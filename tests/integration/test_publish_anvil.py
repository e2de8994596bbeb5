"""Publishing on a real anvil: batch, skip, force, HWM and ledger, wrong role, reverts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from publisher import cli, failpoints
from publisher.chain import connect, contract_at, send
from publisher.cli import main
from publisher.config import Settings, load_settings
from publisher.deploy import deploy_demo
from publisher.gas import ledger
from publisher.keys import dev_account, load_account
from publisher.localchain import AnvilNode
from publisher.publish import Publisher
from tests.chainops import advance

pytestmark = pytest.mark.anvil
E18 = 10**18


def nav_state(pub: Publisher, fund_id: int) -> tuple:
    return tuple(pub.engine.vault.functions.navState(fund_id).call())


def per_share(pub: Publisher, fund_id: int, nav: int) -> int:
    """NAV per share as the vault fixes it: over the share supply the NAV is published at."""
    return nav * E18 // nav_state(pub, fund_id)[9]


@pytest.fixture
def settings(anvil: AnvilNode, demo_chain: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A pristine demo chain and a state directory of its own, on the chain's clock."""
    for k, v in {"NAVPUB_RPC_URL": anvil.rpc_url, "NAVPUB_STATE_DIR": str(demo_chain),
                 "NAVPUB_CLOCK": "chain", "NAVPUB_RETRY_BACKOFF_S": "0"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    yield load_settings()


def test_all_due_funds_in_one_transaction_then_skip_then_force(settings: Settings) -> None:
    pub = Publisher.from_settings(settings)
    outcomes = pub.cycle()
    assert [o.decision for o in outcomes] == ["published"] * 3
    assert len({o.tx_hash for o in outcomes}) == 1  # one batched transaction
    for o in outcomes:
        nav, as_of, rnd, *_ = nav_state(pub, o.fund_id)
        assert (nav, rnd) == (o.nav, 1) and as_of > 0
    (p,) = pub.store.publications()
    assert p.status == "confirmed" and p.gas_used == sum(o.gas_used for o in outcomes)
    assert p.cost_wei == p.gas_used * p.effective_gas_price
    # Cost in USD at the cycle's ETH price ($2,200 on the middle feed).
    assert p.native_usd == 2_200 * E18 and p.cost_usd == p.cost_wei * 2_200
    assert sum(o.cost_usd for o in outcomes) == p.cost_usd
    # The per-share HWM from the receipt's events, and the activity baseline for the jump guard.
    hwm = pub.store.high_water_marks()
    assert hwm == {o.fund_id: per_share(pub, o.fund_id, o.nav) for o in outcomes}
    assert pub.store.fund_record(1).published_activity == 5  # 3 deposits, a fee, a loan

    advance(pub.engine.w3, 60)
    again = pub.cycle()
    assert [o.decision for o in again] == ["skipped"] * 3
    assert len(pub.store.publications()) == 1

    forced = pub.cycle([2], force=True)
    assert [(o.fund_id, o.decision) for o in forced] == [(2, "published")]
    assert nav_state(pub, 2)[2] == 2 and nav_state(pub, 1)[2] == 1
    report = ledger(pub.store.publications())
    assert report.transactions == 2 and report.funds[2].updates == 2 and report.funds[1].updates == 1


def test_hwm_follows_rises_only(settings: Settings) -> None:
    pub = Publisher.from_settings(settings)
    (o,) = pub.cycle([1])
    assert o.decision == "published"
    first = {1: per_share(pub, 1, o.nav)}
    eth_feeds = [
        contract_at(pub.engine.w3, "MockV3Aggregator", f.address) for f in pub.engine.deployment.feeds["ETH"]
    ]
    admin = dev_account(settings, 3)  # not the engine's key: its nonces are the publisher's
    for down in (True, False):
        for feed, dec in zip(eth_feeds, (8, 18, 6), strict=True):
            send(
                pub.engine.w3,
                admin,
                feed.functions.updateAnswer((2_000 if down else 2_400) * 10**dec),
                "feed",
            )
        advance(pub.engine.w3, 60)
        (o,) = pub.cycle([1])
        assert o.decision == "published"
        if down:
            assert per_share(pub, 1, o.nav) < first[1] and pub.store.high_water_marks()[1] == first[1]
        else:
            assert per_share(pub, 1, o.nav) > first[1]
            assert pub.store.high_water_marks()[1] == per_share(pub, 1, o.nav)
            assert nav_state(pub, 1)[5] == per_share(pub, 1, o.nav)  # on-chain HWM agrees


def test_wrong_role_is_named_and_never_retried(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deploy again with the engine role given to somebody else: our key cannot publish.
    monkeypatch.setenv("NAVPUB_STATE_DIR", str(tmp_path / "other"))
    s = load_settings()
    account = load_account(s)
    deploy_demo(connect(s), s, account, dev_account(s, 5).address)
    pub = Publisher.from_settings(s)
    sent: list[str] = []
    w3 = pub.engine.w3
    original = w3.eth.send_raw_transaction
    w3.eth.send_raw_transaction = lambda raw: sent.append(raw) or original(raw)  # type: ignore[method-assign]
    outcomes = pub.cycle([1])
    assert [o.decision for o in outcomes] == ["failed"]
    assert "AccessControlUnauthorizedAccount" in outcomes[0].reason and sent == []
    report = pub.store.report(outcomes[0].report_id)
    assert report.status == "failed" and "AccessControlUnauthorizedAccount" in report.error
    assert pub.store.publications() == []
    assert [a["kind"] for a in pub.store.alerts(1)] == ["publish_failed"]


def test_publish_and_gas_commands(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.out, "width", 200)
    assert main(["publish", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["decision"] for r in rows] == ["published"] * 3
    r = rows[0]
    assert set(r) >= {
        "fund_id",
        "nav",
        "nav_raw",
        "estimated",
        "decision",
        "reason",
        "tx_hash",
        "gas_used",
        "cost_usd",
    }
    assert r["nav"] == "688750" and r["nav_raw"] == str(688_750 * E18)
    assert main(["gas", "--json"]) == 0
    g = json.loads(capsys.readouterr().out)
    assert g["transactions"] == 1 and g["updates"] == 3 and len(g["funds"]) == 3
    assert g["projection"]["updates_per_month"] == 720 and g["projection"]["seed_gas_per_update"] == 30_000
    assert g["projection"]["seed_monthly_cost_per_fund_usd"]["value"] == "10.8"
    assert main(["gas"]) == 0
    assert "Seed budget" in capsys.readouterr().out
    assert main(["publish", "--fund", "9"]) == 2


def test_breaker_pauses_the_fund_on_chain_and_unpauses_it(settings: Settings) -> None:
    pub = Publisher.from_settings(settings)
    assert [o.decision for o in pub.cycle([1])] == ["published"]
    w3 = pub.engine.w3
    oracle = dev_account(settings, 3)
    feeds = [
        (contract_at(w3, "MockV3Aggregator", f.address), f.decimals)
        for f in pub.engine.deployment.feeds["ETH"]
    ]
    advance(pub.engine.w3, 3_700)  # the cached ETH price is now too old to stand in
    now = w3.eth.get_block("latest")["timestamp"]
    for feed, dec in feeds:
        send(
            w3, oracle, feed.functions.updateRoundData(9, 2_200 * 10**dec, now - 4_000, now - 4_000), "stale"
        )
    for _ in range(3):
        (o,) = pub.cycle([1])
        assert o.decision == "failed" and "ETH" in o.reason
    assert pub.engine.vault.functions.isPaused(1).call()
    feed_address = pub.engine.deployment.fund_feeds[1]
    assert contract_at(w3, "FundNavFeed", feed_address).functions.paused().call()
    assert "ripcord" in [a["kind"] for a in pub.store.alerts(1)]

    for feed, dec in feeds:
        send(w3, oracle, feed.functions.updateAnswer(2_200 * 10**dec), "fresh")
    (o,) = pub.cycle([1])
    assert o.decision in ("published", "skipped")
    assert not pub.engine.vault.functions.isPaused(1).call()
    report = ledger(pub.store.publications())
    assert report.funds[1].updates == 1 + (o.decision == "published")  # ripcord txs are not updates


def test_status_shows_hwm_and_drawdown(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    pub = Publisher.from_settings(settings)
    pub.cycle([1])
    w3 = pub.engine.w3
    oracle = dev_account(settings, 3)
    for f in pub.engine.deployment.feeds["BTC"]:
        feed = contract_at(w3, "MockV3Aggregator", f.address)
        send(w3, oracle, feed.functions.updateAnswer(37_800 * 10**f.decimals), "BTC -10 %")
    advance(pub.engine.w3, 60)
    (o,) = pub.cycle([1])
    assert o.decision == "published"
    assert main(["status", "--json", "--fund", "1"]) == 0
    nav = json.loads(capsys.readouterr().out)["funds"][0]["nav"]
    # Per share: the mark is the first NAV per share, the drawdown 10 BTC × $4,200 a share's worth.
    hwm = int(nav["high_water_mark_usd"]["raw"])
    assert hwm == per_share(pub, 1, 688_750 * E18)
    assert int(nav["drawdown_usd"]["raw"]) == hwm - per_share(pub, 1, o.nav)
    assert nav["drawdown_pct"] == str(Decimal((hwm - per_share(pub, 1, o.nav)) * 10_000 // hwm) / 100)
    assert nav["drawdown_pct"] == str(Decimal(42_000 * 10_000 // 688_750) / 100)  # as on the NAV: no flow
    assert nav["paused"] is False


def test_a_deposit_between_read_and_inclusion_skips_that_nav_then_a_fresh_one_publishes(
    settings: Settings,
) -> None:
    """The engine read fund 1 (share version v), then a deposit landed before its transaction:
    the vault skips the NAV (NAVSkipped) rather than publish it over the wrong supply — the
    other fund of the batch is applied — the report is superseded, and the next cycle publishes
    a NAV over the new supply, the NAV per share unmoved by the deposit."""
    pub = Publisher.from_settings(settings)
    pub.cycle()
    w3 = pub.engine.w3
    manager = dev_account(settings, 1)
    usdc = contract_at(w3, "MockERC20", pub.engine.deployment.tokens["USDC"].address)
    before = nav_state(pub, 1)
    per_share_before = before[7]
    # 10,000 USDC at the published NAV per share: what a fair subscription mints.
    shares = 10_000 * E18 * E18 // per_share_before

    def deposit_once() -> None:
        failpoints.disarm(failpoints.BEFORE_OUTBOX)
        send(w3, manager, usdc.functions.mint(manager.address, 10_000 * 10**6), "mint")
        deposit = pub.engine.vault.functions.deposit(1, usdc.address, 10_000 * 10**6, shares, manager.address)
        send(w3, manager, deposit, "deposit")

    advance(w3, 60)
    failpoints.arm(failpoints.BEFORE_OUTBOX, deposit_once)
    try:
        outcomes = {o.fund_id: o for o in pub.cycle([1, 2], force=True)}
    finally:
        failpoints.disarm(failpoints.BEFORE_OUTBOX)
    assert outcomes[1].decision == "skipped" and "shares changed" in outcomes[1].reason
    assert outcomes[2].decision == "published" and nav_state(pub, 2)[2] == 2
    report = pub.store.report(outcomes[1].report_id)  # type: ignore[arg-type]
    assert report is not None and report.status == "superseded"
    after = nav_state(pub, 1)
    assert after[:3] == before[:3] and after[7] == per_share_before  # nothing applied, per share fixed
    assert after[6] == before[6] + shares and after[9] == before[9]  # the saved supply is the NAV's

    advance(w3, 60)
    (fresh,) = pub.cycle([1], force=True)
    assert fresh.decision == "published"
    state = nav_state(pub, 1)
    assert state[2] == 2 and state[9] == state[6] == before[6] + shares
    # The deposit's value came in with its shares: NAV per share within a wei a share of before.
    assert abs(state[7] - per_share_before) <= 1 + E18 // state[6]
    assert pub.store.high_water_marks()[1] == state[5]
