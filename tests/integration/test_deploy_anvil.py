"""The real deploy path against a real anvil: deploy --demo, deployment.json, status, chain checks."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from publisher import cli
from publisher._exceptions import DeploymentError, NoCode, TransactionFailed, WrongChain
from publisher.chain import connect, contract_at, send
from publisher.cli import main
from publisher.config import load_settings
from publisher.deploy import NAV_ENGINE_ROLE, deploy_fund_feed
from publisher.deployment import load_deployment
from publisher.keys import load_account
from publisher.localchain import AnvilNode

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def demo_state(anvil: AnvilNode, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo deployment on the session's anvil, through the CLI as a user runs it."""
    state = tmp_path_factory.mktemp("state")
    env = {"NAVPUB_RPC_URL": anvil.rpc_url, "NAVPUB_STATE_DIR": str(state)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert main(["deploy", "--demo"]) == 0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return state


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, anvil: AnvilNode, demo_state: Path, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("NAVPUB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAVPUB_RPC_URL", anvil.rpc_url)
    monkeypatch.setenv("NAVPUB_STATE_DIR", str(demo_state))
    return demo_state


def test_deployment_file_names_everything(env: Path) -> None:
    data = json.loads((env / "deployment.json").read_text())
    assert set(data["contracts"]) == {"FundVault", "AnalyticsHub", "PriceOracleRouter"}
    assert data["chain_id"] == 31337 and data["deploy_block"] >= 1
    assert {"BTC", "ETH", "USDC", "XAUT"} <= set(data["tokens"])
    assert all(len(feeds) == 3 for feeds in data["feeds"].values())
    assert set(data["feeds"]) == set(data["tokens"])
    assert [f["fund_id"] for f in data["funds"]] == [1, 2, 3]
    assert data["funds"][0]["assets"] == ["BTC", "ETH", "USDC"]
    assert data["funds"][1]["assets"] == ["XAUT", "USDC"]
    assert len(data["funds"][2]["assets"]) >= 20
    assert sorted(data["fund_feeds"]) == ["1", "2", "3"]  # JSON keys; one feed per demo fund


def test_fund_feeds_read_through_the_chainlink_abi_before_any_nav(env: Path) -> None:
    settings = load_settings()
    w3 = connect(settings)
    d = load_deployment(settings, w3)
    assert sorted(d.fund_feeds) == [f.fund_id for f in d.funds] == [1, 2, 3]
    for fund_id, address in d.fund_feeds.items():
        feed = contract_at(w3, "AggregatorV2V3Interface", address)
        assert feed.functions.decimals().call() == settings.feed_decimals == 8  # Chainlink's USD
        assert feed.functions.description().call() == f"Fund {fund_id} NAV per share / USD"
        assert feed.functions.version().call() == 2
        # No data yet: zeros, as Chainlink's aggregators answer, never a revert.
        assert tuple(feed.functions.latestRoundData().call()) == (0, 0, 0, 0, 0)
        assert feed.functions.latestAnswer().call() == 0
        full = contract_at(w3, "FundNavFeed", address)
        assert full.functions.vault().call() == d.vault and full.functions.fundId().call() == fund_id
        assert full.functions.paused().call() is False


def test_a_feed_for_a_fund_created_later(env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NAVPUB_STATE_DIR", str(tmp_path))  # a fresh core deployment, not the demo's
    assert main(["deploy"]) == 0
    settings = load_settings()
    w3 = connect(settings)
    d = load_deployment(settings, w3)
    assert d.fund_feeds == {}
    account = load_account(settings)
    vault = contract_at(w3, "FundVault", d.vault)
    with pytest.raises(TransactionFailed, match=r"UnknownFund\(1\)"):
        deploy_fund_feed(w3, account, d.vault.lower(), 1)
    send(w3, account, vault.functions.createFund(account.address), "createFund")
    address = deploy_fund_feed(w3, account, d.vault.lower(), 1)
    assert address == w3.to_checksum_address(address)
    assert contract_at(w3, "FundNavFeed", address).functions.fundId().call() == 1


def test_a_deployment_file_from_before_fund_feeds_still_loads(
    env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = json.loads((env / "deployment.json").read_text())
    del data["fund_feeds"]
    (tmp_path / "deployment.json").write_text(json.dumps(data))
    monkeypatch.setenv("NAVPUB_STATE_DIR", str(tmp_path))
    d = load_deployment(load_settings())
    assert d.fund_feeds == {} and len(d.funds) == 3


def test_engine_role_and_contract_wiring_on_chain(env: Path) -> None:
    settings = load_settings()
    w3 = connect(settings)
    d = load_deployment(settings, w3)
    vault = contract_at(w3, "FundVault", d.vault)
    hub = contract_at(w3, "AnalyticsHub", d.hub)
    assert vault.functions.hasRole(NAV_ENGINE_ROLE, d.nav_engine).call()
    # The hub has no roles: only its vault records.
    assert vault.functions.hub().call() == d.hub and hub.functions.vault().call() == d.vault
    router = contract_at(w3, "PriceOracleRouter", d.router)
    price, confidence = router.functions.getPrice(d.tokens["BTC"].address).call()
    # Feeds at -5 bps, 0 and +7 bps around $42,000: median is the middle one.
    assert price == 42_000 * 10**18 and confidence > 90


def test_status_json_shows_demo_funds(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    f1, f2, f3 = out["funds"]
    holdings = {h["symbol"]: h["amount"]["value"] for h in f1["holdings"]}
    # The seed's fund plus 20,000 USDC borrowed: 10 BTC, 100 ETH, 70,000 USDC.
    assert holdings == {"BTC": "10", "ETH": "100", "USDC": "70000"}
    assert f1["pending_fees_usd"]["value"] == "1250"
    assert f1["borrowed_usd"] == {"value": "20000", "raw": str(20_000 * 10**18), "decimals": 18}
    assert Decimal(f1["queued_withdrawal_shares"]["value"]) == Decimal("690000") * Decimal("0.02")
    assert f1["nav"]["published"] is False and f1["nav"]["round"] == 0
    assert {h["symbol"] for h in f2["holdings"]} == {"XAUT", "USDC"}
    assert len(f3["holdings"]) >= 20


def test_status_for_people(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.out, "width", 160)  # a captured stream has no terminal width
    assert main(["status", "--fund", "1"]) == 0
    text = capsys.readouterr().out
    assert "Digital Assets Core" in text and "BTC" in text and "not published yet" in text
    assert main(["status", "--fund", "9"]) == 2
    assert "--fund 9: no such fund" in capsys.readouterr().err


def test_wrong_chain_id_is_refused(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAVPUB_CHAIN_ID", "1")
    with pytest.raises(WrongChain, match="reports chain id 31337, the settings expect 1"):
        connect(load_settings())


def test_no_code_at_a_deployment_address(env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = json.loads((env / "deployment.json").read_text())
    data["contracts"]["FundVault"] = "0x000000000000000000000000000000000000dEaD"
    (tmp_path / "deployment.json").write_text(json.dumps(data))
    monkeypatch.setenv("NAVPUB_STATE_DIR", str(tmp_path))
    settings = load_settings()
    with pytest.raises(NoCode, match="no contract code at 0x000000000000000000000000000000000000dEaD"):
        load_deployment(settings, connect(settings))


def test_missing_or_malformed_deployment(env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NAVPUB_STATE_DIR", str(tmp_path))
    with pytest.raises(DeploymentError, match="run `navpub deploy`"):
        load_deployment(load_settings())
    (tmp_path / "deployment.json").write_text('{"chain_id": 31337}')
    with pytest.raises(DeploymentError, match="not a valid deployment file"):
        load_deployment(load_settings())


def test_deploy_grants_the_engine_role_to_another_address(
    env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = load_settings()
    engine = settings.anvil().dev_addresses()[5]
    monkeypatch.setenv("NAVPUB_STATE_DIR", str(tmp_path))
    assert main(["deploy", "--engine", engine]) == 0
    settings = load_settings()
    w3 = connect(settings)
    d = load_deployment(settings, w3)
    assert d.nav_engine == engine and d.tokens == {} and d.funds == [] and d.fund_feeds == {}
    vault = contract_at(w3, "FundVault", d.vault)
    assert vault.functions.hasRole(NAV_ENGINE_ROLE, engine).call()
    assert not vault.functions.hasRole(NAV_ENGINE_ROLE, d.deployer).call()
    assert vault.functions.hasRole(b"\x00" * 32, d.deployer).call()  # the deployer stays admin


def test_deploy_refuses_a_malformed_engine_address(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "--engine", "0x1234"]) == 2
    assert "--engine: '0x1234' is not an address" in capsys.readouterr().err
