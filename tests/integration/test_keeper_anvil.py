"""The keeper on anvil: schedule on a fake clock, a trade published through the emergency path,
restart from the block cursor, a reorg, `navpub trigger`, and SIGTERM during a publish."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from web3 import Web3

from publisher.chain import contract_at, send
from publisher.cli import main
from publisher.config import Settings, load_settings
from publisher.keeper import HEARTBEAT, Keeper
from publisher.keys import dev_account
from publisher.localchain import AnvilNode
from publisher.publish import Publisher
from publisher.schedule import FundSchedule
from publisher.sender import Hooks
from publisher.store import Attempt
from tests.chainops import advance
from tests.faultkit import chain_settings

pytestmark = pytest.mark.anvil
E18 = 10**18


@dataclass
class FakeClock:
    now: int = 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def settings(anvil: AnvilNode, demo_chain: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return chain_settings(monkeypatch, anvil.rpc_url, demo_chain, NAVPUB_RECEIPT_TIMEOUT_S="10")


def rounds(pub: Publisher) -> dict[int, int]:
    return {f: pub.engine.vault.functions.navState(f).call()[2] for f in (1, 2, 3)}


def trade(settings: Settings, pub: Publisher, fund_id: int, usdc: int = 2_200) -> None:
    """The manager swaps `usdc` USDC for ETH at $2,200 in the fund."""
    w3 = pub.engine.w3
    d = pub.engine.deployment
    manager = dev_account(settings, 1)
    weth = contract_at(w3, "MockERC20", d.tokens["ETH"].address)
    eth_out = usdc * E18 // 2_200
    send(w3, manager, weth.functions.mint(manager.address, eth_out), "mint")
    call = pub.engine.vault.functions.trade(
        fund_id, d.tokens["USDC"].address, usdc * 10**6, d.tokens["ETH"].address, eth_out
    )
    send(w3, manager, call, "trade")


def test_schedule_and_the_emergency_path(settings: Settings) -> None:
    clock = FakeClock()
    pub = Publisher.from_settings(settings)
    keeper = Keeper(pub, clock=clock)
    first = keeper.tick()
    assert first.scheduled == {1, 2, 3} and [o.decision for o in first.outcomes] == ["published"] * 3
    assert len({o.tx_hash for o in first.outcomes}) == 1  # all due funds in one transaction

    clock.now += 60
    idle = keeper.tick()
    assert idle.scheduled == set() and idle.emergency == set() and idle.outcomes == []

    trade(settings, pub, 2)
    clock.now += 15
    advance(pub.engine.w3, 15)  # anvil can mine several blocks in one second; a NAV needs a newer asOf
    hot = keeper.tick()
    assert hot.emergency == {2} and [(o.fund_id, o.decision) for o in hot.outcomes] == [(2, "published")]
    assert rounds(pub) == {1: 1, 2: 2, 3: 1}  # on chain: only fund 2 was published again

    clock.now += 3_600
    hourly = keeper.tick()
    assert hourly.scheduled == {1, 2, 3}  # the cadence is due for every fund again


def test_restart_resumes_from_the_cursor_and_survives_a_reorg(settings: Settings, anvil: AnvilNode) -> None:
    clock = FakeClock()
    pub = Publisher.from_settings(settings)
    Keeper(pub, clock=clock).tick()
    trade(settings, pub, 1)
    assert Keeper(pub, clock=clock).tick().emergency == {1}

    restarted = Keeper(Publisher.from_settings(settings), clock=clock)  # a new process, same store
    assert restarted.tick().emergency == set()  # the trade is not repeated
    trade(settings, pub, 3)
    assert restarted.tick().emergency == {3}  # nor missed

    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    trade(settings, pub, 2, usdc=1_100)
    assert restarted.tick().emergency == {2}
    w3.provider.make_request("evm_revert", [snapshot])  # a reorg: that trade and its publish are gone
    trade(settings, pub, 2, usdc=3_300)  # another trade lands instead
    # A new process: the old one's nonce counter, which never moves back, is past the chain now.
    after = Keeper(Publisher.from_settings(settings), clock=clock).tick()
    assert after.error is None and after.emergency == {2}


def test_trigger_runs_directly_or_is_handed_to_the_keeper(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trigger", "--fund", "1"]) == 0
    assert "published" in capsys.readouterr().out
    pub = Publisher.from_settings(settings)
    clock = FakeClock(now=pub.engine.clock())
    pub.store.set_state(HEARTBEAT, json.dumps({"pid": os.getpid(), "at": clock.now}))  # a live keeper
    assert main(["trigger", "--fund", "2"]) == 0
    assert "handed to the running keeper" in capsys.readouterr().out
    keeper = Keeper(pub, clock=clock)
    keeper.schedules = {f: FundSchedule(f, clock.now) for f in (1, 2, 3)}  # none due by the clock
    keeper.follower.poll()  # the demo's own deposits are old news
    tick = keeper.tick()
    assert tick.emergency == {2} and [o.fund_id for o in tick.outcomes] == [2]


def test_stop_during_a_publish_finishes_it_then_exits_zero(settings: Settings) -> None:
    keeper: Keeper

    def stop_mid_publish(_: Attempt) -> None:
        keeper.stop()  # what SIGTERM does, while the transaction is in flight

    pub = Publisher.from_settings(settings, hooks=Hooks(after_broadcast=stop_mid_publish))
    keeper = Keeper(pub, clock=FakeClock())
    assert keeper.run(wait=lambda _: None) == 0
    (p,) = pub.store.publications()
    assert p.status == "confirmed" and rounds(pub) == {1: 1, 2: 1, 3: 1}


def test_sigterm_stops_the_keeper_process_cleanly(settings: Settings) -> None:
    env = {**os.environ, "NAVPUB_STATE_DIR": str(settings.state_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "publisher.cli", "keeper", "--tick", "0.2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the first tick has published
        if "published" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "keeper stopped" in out


def test_metrics_and_health_after_a_cycle(settings: Settings) -> None:
    import httpx

    from publisher.keeper import serve_http
    from publisher.localchain import free_port

    clock = FakeClock()
    pub = Publisher.from_settings(settings)
    keeper = Keeper(pub, clock=clock)
    assert keeper.health()["alive"] is False
    tick = keeper.tick()
    port = free_port()
    server = serve_http(keeper, "127.0.0.1", port)
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health["alive"] and health["healthy"] and health["funds_overdue"] == []
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        server.shutdown()
    navs = {o.fund_id: o.nav for o in tick.outcomes}
    assert f'navpub_nav_usd{{fund="1"}} {navs[1] // E18}.0' in text  # 688750.0
    assert 'navpub_outcomes_total{decision="published"} 3.0' in text
    assert 'navpub_breaker_open{fund="2"} 0.0' in text
    assert 'navpub_price_confidence{asset="BTC"}' in text
    gas = sum(p.gas_used for p in pub.store.publications())
    assert f"navpub_gas_used_total {gas}.0" in text
    assert "navpub_engine_balance_native" in text
    clock.now += 3 * 3600  # no tick for three hours: every fund is overdue
    report = keeper.health()
    assert report["funds_overdue"] == [1, 2, 3] and report["alive"] is False and not report["healthy"]


def test_alerts_reach_a_webhook_once_and_resolve(
    settings: Settings, http_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_server.route("POST", "/hook/secret-token", json={"ok": True})
    monkeypatch.setenv("NAVPUB_ALERT_WEBHOOKS", f"{http_server.url}/hook/secret-token")
    monkeypatch.setenv("NAVPUB_LOW_BALANCE_WEI", str(10**40))  # any balance is too low
    clock = FakeClock()
    keeper = Keeper(Publisher.from_settings(load_settings()), clock=clock)
    keeper.tick()
    clock.now += 60
    keeper.tick()  # still low: deduplicated, not posted again
    posts = [json.loads(r.body) for r in http_server.requests_to("/hook/secret-token")]
    low = [p for p in posts if p["kind"] == "low_balance"]
    assert (
        len(low) == 1 and low[0]["status"] == "firing" and low[0]["text"].startswith("[navpub] low_balance")
    )

    monkeypatch.setenv("NAVPUB_LOW_BALANCE_WEI", "0")
    keeper = Keeper(Publisher.from_settings(load_settings()), clock=clock)  # a restart keeps the state
    clock.now += 3_600
    keeper.tick()
    posts = [json.loads(r.body) for r in http_server.requests_to("/hook/secret-token")]
    assert [p["status"] for p in posts if p["kind"] == "low_balance"] == ["firing", "resolved"]


def test_status_says_whether_the_keeper_is_alive(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["keeper"]["last_tick_at"] is None
    keeper = Keeper(Publisher.from_settings(settings))  # the chain's clock: a live keeper
    keeper.tick()
    assert main(["status", "--json"]) == 0
    k = json.loads(capsys.readouterr().out)["keeper"]
    assert (
        k["alive"] is True
        and k["pid"] == os.getpid()
        and k["breakers_open"] == []
        and k["funds_overdue"] == []
    )
