"""The NAV engine end to end on anvil with the demo funds: manipulated feed, stale feeds and the
cache, an unexplained jump held then explained by a trade, approval, and the price/nav commands."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from publisher import cli
from publisher.chain import connect, contract_at, send
from publisher.cli import main
from publisher.config import load_settings
from publisher.deploy import deploy_demo
from publisher.engine import NavEngine
from publisher.keys import dev_account, load_account
from publisher.localchain import AnvilNode
from tests.chainops import advance

pytestmark = pytest.mark.anvil

E18 = 10**18
# Fund 1: 10 BTC, 100 ETH, 70,000 USDC at the middle feeds' $42,000, $2,200 and $1, less
# $1,250 of fees and $20,000 borrowed.
FUND1_NAV = (420_000 + 220_000 + 70_000 - 1_250 - 20_000) * E18


@pytest.fixture(scope="module")
def engine(anvil: AnvilNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NavEngine]:
    """A fresh demo deployment (own state dir) and an engine on the chain's clock."""
    state = tmp_path_factory.mktemp("engine-state")
    env = {"NAVPUB_RPC_URL": anvil.rpc_url, "NAVPUB_STATE_DIR": str(state), "NAVPUB_CLOCK": "chain"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = load_settings()
        deploy_demo(connect(settings), settings, load_account(settings), load_account(settings).address)
        yield NavEngine.from_settings(settings)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def feeds(engine: NavEngine, symbol: str) -> list:
    return [contract_at(engine.w3, "MockV3Aggregator", f.address) for f in engine.deployment.feeds[symbol]]


def set_answer(engine: NavEngine, symbol: str, index: int, usd: int, *, age: int = 0) -> None:
    feed = feeds(engine, symbol)[index]
    decimals = engine.deployment.feeds[symbol][index].decimals
    admin = load_account(engine.settings)
    if age == 0:
        send(engine.w3, admin, feed.functions.updateAnswer(usd * 10**decimals), "updateAnswer")
    else:
        now = engine.w3.eth.get_block("latest")["timestamp"]
        rnd = feed.functions.latestRound().call() + 1
        call = feed.functions.updateRoundData(rnd, usd * 10**decimals, now - age, now - age)
        send(engine.w3, admin, call, "updateRoundData")


def publish_directly(engine: NavEngine, fund_id: int, nav: int, activity: int) -> None:
    """What the publisher does on confirmation: NAV on chain, its activity remembered."""
    now = engine.w3.eth.get_block("latest")["timestamp"]
    send(
        engine.w3,
        load_account(engine.settings),
        engine.vault.functions.updateNAV(fund_id, nav, now, 0),
        "updateNAV",
    )
    engine.store.set_published_activity(fund_id, activity, now)


def test_engine_story(engine: NavEngine) -> None:
    # 1. Healthy first cycle: exact NAV, every source used, published-to-be.
    first = engine.run([1])
    (f,) = first.funds
    assert f.valuation is not None and f.valuation.nav == FUND1_NAV
    assert f.decision.action == "publish" and f.decision.reason == "first NAV"
    assert first.prices["BTC"].confidence > 90 and len(first.prices["BTC"].sources) == 3
    assert engine.store.report(f.report_id).status == "pending"
    publish_directly(engine, 1, f.valuation.nav, f.snapshot.activity)
    advance(engine.w3, 60)

    # 2. One of three BTC feeds moved +50 %: dropped; NAV within a few bps; skipped.
    set_answer(engine, "BTC", 2, 63_000)
    second = engine.run([1])
    (f,) = second.funds
    btc = second.aggregates["BTC"]
    assert [v.status for v in btc.verdicts] == ["used", "used", "deviating"]
    # The median of the two kept feeds (−5 bps and 0) is $41,989.50: 10 BTC × −$10.50.
    assert f.valuation.nav == FUND1_NAV - 105 * E18
    assert f.decision.action == "skip" and "heartbeat not due" in f.decision.reason
    set_answer(engine, "BTC", 2, 42_029)  # back to its usual +7 bps

    # 3. Two of three ETH feeds stale: cached ETH price (from cycle 1), NAV estimated.
    set_answer(engine, "ETH", 0, 2_199, age=4_000)
    set_answer(engine, "ETH", 1, 2_200, age=4_000)
    third = engine.run([1])
    (f,) = third.funds
    eth = third.prices["ETH"]
    assert eth.estimated and eth.price == 2_200 * E18 and eth.confidence == 33
    assert f.valuation.estimated and f.decision.estimated and f.decision.action == "publish"
    set_answer(engine, "ETH", 0, 2_199)
    set_answer(engine, "ETH", 1, 2_200)

    # 4. Holdings value +40 % with no activity since the last NAV: held, alerted once.
    for i in range(3):
        set_answer(engine, "BTC", i, 70_000)
    fourth = engine.run([1])
    (f,) = fourth.funds
    assert f.decision.action == "hold" and [a.kind for a in f.decision.alerts] == ["held"]
    assert engine.store.report(f.report_id).status == "held"
    again = engine.run([1])
    assert again.funds[0].decision.action == "hold" and again.funds[0].decision.alerts == ()

    # 5. A trade explains it: no longer held, and the older held reports are superseded.
    manager = dev_account(engine.settings, 1)
    usdc, eth_token = engine.deployment.tokens["USDC"].address, engine.deployment.tokens["ETH"].address
    weth = contract_at(engine.w3, "MockERC20", eth_token)
    send(engine.w3, manager, weth.functions.mint(manager.address, E18), "mint")
    send(engine.w3, manager, engine.vault.functions.trade(1, usdc, 2_200 * 10**6, eth_token, E18), "trade")
    fifth = engine.run([1])
    (f,) = fifth.funds
    assert f.decision.action == "publish"
    assert engine.store.report(again.funds[0].report_id).status == "superseded"


def test_hold_then_approve(
    engine: NavEngine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Baseline published at the current NAV, then a jump with no activity.
    base = engine.run([2])
    f = base.funds[0]
    publish_directly(engine, 2, f.valuation.nav, f.snapshot.activity)
    for i in range(3):
        set_answer(engine, "XAUT", i, 5_300)  # gold doubles: +57 % on fund 2
    held = engine.run([2]).funds[0]
    assert held.decision.action == "hold"
    monkeypatch.setenv("NAVPUB_STATE_DIR", str(engine.settings.state_dir))
    assert main(["approve", "--fund", "2", "--by", "alice"]) == 0
    assert "approved report" in capsys.readouterr().out
    report = engine.store.report(held.report_id)
    assert (report.status, report.approved_by) == ("approved", "alice")
    assert main(["approve", "--fund", "2"]) == 2
    assert "has no held NAV" in capsys.readouterr().err


def test_price_and_nav_commands(
    engine: NavEngine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAVPUB_STATE_DIR", str(engine.settings.state_dir))
    monkeypatch.setattr(cli.out, "width", 200)
    set_answer(engine, "USDC", 0, 2)  # one USDC feed at $2: dropped as deviating
    assert main(["price", "USDC", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["configured_sources"] == 3 and len(out["used_sources"]) == 2
    dropped = [s for s in out["sources"] if s["status"] == "deviating"]
    assert len(dropped) == 1 and "from the median" in dropped[0]["reason"]
    assert out["price"]["value"].startswith("1") and out["estimated"] is False

    assert main(["nav", "--fund", "3", "--json"]) == 0
    (nav,) = json.loads(capsys.readouterr().out)
    assert nav["fund_id"] == 3 and len(nav["assets"]) == 21 and nav["report_id"] is None
    assert nav["nav"]["raw"] == str(int(nav["gross"]["raw"]) - int(nav["liabilities"]["total"]["raw"]))
    assert nav["decision"] == "publish"

    assert main(["nav", "--fund", "1"]) == 0
    text = capsys.readouterr().out
    assert "NAV" in text and "decision" in text and "BTC" in text
    assert main(["price", "NOPE"]) == 2
    assert "unknown asset 'NOPE'" in capsys.readouterr().err
    reports_before = len(engine.store.reports(limit=1000))
    assert main(["nav", "--fund", "1", "--json"]) == 0
    assert len(engine.store.reports(limit=1000)) == reports_before  # a preview records nothing
