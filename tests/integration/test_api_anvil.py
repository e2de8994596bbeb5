"""The HTTP API on a real anvil: every endpoint, an unknown fund, a never-published fund,
FX display (fresh, stale, unknown), history with the HWM, gas, health, metrics, OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from publisher.api import create_app
from publisher.config import Settings
from publisher.localchain import AnvilNode
from publisher.money import usd_str
from publisher.publish import Publisher
from tests.chainops import advance
from tests.demo_env import ZAR, fx_settings, market
from tests.httpserver import LocalHTTPServer
from tests.rpcproxy import RpcProxy

pytestmark = pytest.mark.anvil
E18 = 10**18


@pytest.fixture
def settings(
    anvil: AnvilNode, demo_chain: Path, http_server: LocalHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    yield fx_settings(anvil.rpc_url, demo_chain, http_server, monkeypatch)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def zar(usd_raw: int, rate: Decimal = ZAR) -> str:
    return str((Decimal(usd_raw).scaleb(-18) * rate).quantize(Decimal("0.01"), rounding=ROUND_DOWN))


def test_never_published_funds(client: TestClient) -> None:
    body = client.get("/api/funds").json()
    assert [f["fund_id"] for f in body["funds"]] == [1, 2, 3]
    for f in body["funds"]:
        assert f["nav"]["published"] is False and f["nav"]["nav"] is None and f["nav"]["stale"] is True
        assert f["valuation"] is None and f["last_tx"] is None and f["peak"]["drawdown"] is None
    assert client.get("/api/funds/2/history").json()["points"] == []
    assert client.get("/api/gas").json()["updates"] == 0


def test_unknown_fund_and_bad_parameters(client: TestClient) -> None:
    for path in ("/api/funds/9", "/api/funds/9/history", "/api/funds/0/verify"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "no such fund" in r.json()["detail"] and "1 to 3" in r.json()["detail"]
    r = client.get("/api/funds/1", params={"currency": "EUR"})
    assert (
        r.status_code == 400 and r.json()["detail"] == "currency 'EUR' has no FX source (available: USD, ZAR)"
    )
    assert client.get("/api/funds/abc").status_code == 422
    assert client.get("/api/funds/1/history", params={"limit": 0}).status_code == 422


def test_published_fund_view_matches_chain_and_store(client: TestClient, settings: Settings) -> None:
    pub = Publisher.from_settings(settings)
    (o1, *_) = pub.cycle()
    nav, as_of, rnd, *_ = pub.engine.vault.functions.navState(1).call()
    now = int(pub.engine.w3.eth.get_block("latest")["timestamp"])
    f = client.get("/api/funds/1").json()
    # In USD the display value is the exact amount to the cent.
    assert f["nav"]["nav"] == {"usd": usd_str(nav), "raw": str(nav), "display": zar(nav, Decimal(1))}
    assert (f["nav"]["as_of"], f["nav"]["round"], f["nav"]["published"]) == (as_of, rnd, True)
    assert 0 <= f["nav"]["age_s"] <= now - as_of + 1 and f["nav"]["stale"] is False
    per_share = pub.engine.vault.functions.navState(1).call()[7]
    assert f["peak"]["high_water_mark"]["raw"] == str(per_share) and f["peak"]["drawdown_pct"] == "0.00"
    v = f["valuation"]
    assert v["report_id"] == o1.report_id and v["nav"]["raw"] == str(nav)
    assets = {a["asset"]: a for a in v["assets"]}
    assert sorted(assets) == ["BTC", "ETH", "USDC"]
    assert sum(Decimal(a["share_pct"]) for a in assets.values()) == pytest.approx(
        Decimal(100), abs=Decimal("0.03")
    )
    # Haircuts of the demo sources file: BTC 6.25 %, stablecoins 0.
    btc = assets["BTC"]
    assert btc["haircut"] == "0.0625"
    assert Decimal(btc["collateral"]["usd"]) == Decimal(btc["value"]["usd"]) * Decimal("0.9375")
    assert assets["USDC"]["collateral"] == assets["USDC"]["value"]
    li = v["liabilities"]
    assert Decimal(li["total"]["usd"]) == sum(
        Decimal(li[k]["usd"])
        for k in ("pending_fees", "pending_withdrawals", "borrowed", "offexchange_borrowed")
    )
    assert Decimal(v["net_collateral"]["usd"]) == Decimal(v["collateral"]["usd"]) - Decimal(
        li["borrowed"]["usd"]
    )
    oracles = {o["asset"]: o for o in f["oracles"]}
    assert pub.last_cycle is not None
    assert oracles["BTC"]["confidence"] == pub.last_cycle.aggregates["BTC"].confidence >= 99
    assert oracles["BTC"]["used"] == 3 == oracles["BTC"]["configured"]
    tx = f["last_tx"]
    assert tx["tx_hash"] == o1.tx_hash and tx["funds_in_tx"] == 3 and tx["fund_gas_used"] == o1.gas_used
    # Fund 2 and 3 went in the same transaction; the gas shares add up to the receipt's.
    shares = [client.get(f"/api/funds/{i}").json()["last_tx"]["fund_gas_used"] for i in (1, 2, 3)]
    assert sum(shares) == tx["gas_used"]


def test_display_currency_exact_then_unavailable_when_stale(client: TestClient, settings: Settings) -> None:
    pub = Publisher.from_settings(settings)
    pub.cycle()
    f = client.get("/api/funds/1", params={"currency": "zar"}).json()
    assert f["currency"] == "ZAR"
    nav_raw = int(f["nav"]["nav"]["raw"])
    assert f["nav"]["nav"]["display"] == zar(nav_raw)
    assert all(a["value"]["display"] == zar(int(a["value"]["raw"])) for a in f["valuation"]["assets"])
    fx = client.get("/api/fx", params={"currency": "ZAR"}).json()
    assert fx["available"] is True and Decimal(fx["rate"]) == ZAR and fx["sources"] == ["http:rates"]
    assert client.get("/api/currencies").json() == {"default": "USD", "currencies": ["USD", "ZAR"]}
    # No cycle for more than the cache limit: the rate is too old to show, and none is made up.
    advance(pub.engine.w3, settings.cache_max_age_s + 60)
    body = client.get("/api/funds", params={"currency": "ZAR"}).json()
    assert body["fx"]["available"] is False and "FX unavailable" in body["fx"]["reason"]
    assert "s old (limit 3,600 s)" in body["fx"]["reason"]
    assert body["funds"][0]["nav"]["nav"]["display"] is None
    assert body["funds"][0]["nav"]["nav"]["usd"] == f["nav"]["nav"]["usd"]  # USD still shown


def test_history_has_the_hwm_and_drawdown_follows(client: TestClient, settings: Settings) -> None:
    pub = Publisher.from_settings(settings)
    pub.cycle()
    for factor in (Decimal("1.05"), Decimal("0.90")):
        advance(pub.engine.w3, 3600)
        market(pub, settings, {"BTC": factor, "ETH": factor})
        assert [o.decision for o in pub.cycle([1], force=True)] == ["published"]
    points = client.get("/api/funds/1/history").json()["points"]
    navs = [int(p["nav"]["raw"]) for p in points]
    assert len(points) == 3 and navs[1] > navs[0] > navs[2]
    # Marks are per share: the mark is the running maximum of the NAV per share published.
    shares = pub.engine.vault.functions.navState(1).call()[9]
    per_share = [int(p["nav_per_share"]["raw"]) for p in points]
    assert per_share == [n * 10**18 // shares for n in navs]
    assert [int(p["high_water_mark"]["raw"]) for p in points] == [per_share[0], per_share[1], per_share[1]]
    assert [p["round"] for p in points] == [1, 2, 3]
    assert all(p["tx_hash"] for p in points) and points == sorted(points, key=lambda p: p["as_of"])
    f = client.get("/api/funds/1").json()
    assert int(f["peak"]["high_water_mark"]["raw"]) == per_share[1]
    assert int(f["peak"]["drawdown"]["raw"]) == per_share[1] - per_share[2]
    gap, peak = per_share[1] - per_share[2], per_share[1]
    expected_pct = (Decimal(gap * 10_000 // peak) / 100).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    assert Decimal(f["peak"]["drawdown_pct"]) == expected_pct
    assert len(client.get("/api/funds/1/history", params={"limit": 2}).json()["points"]) == 2


def test_gas_health_metrics_and_pages(client: TestClient, settings: Settings) -> None:
    pub = Publisher.from_settings(settings)
    (o1, o2, o3) = pub.cycle()
    gas = client.get("/api/gas").json()
    assert gas["updates"] == 3 and gas["transactions"] == 1
    assert gas["gas"] == o1.gas_used + o2.gas_used + o3.gas_used
    assert gas["projection"]["seed_gas_per_update"] == 30_000
    health = client.get("/api/health")
    assert health.status_code == 503  # no keeper runs with this state directory
    assert health.json()["chain"]["ok"] is True and health.json()["keeper"]["alive"] is False
    metrics = client.get("/metrics").text
    nav = Decimal(o1.nav or 0).scaleb(-18)
    line = next(x for x in metrics.splitlines() if x.startswith('navpub_published_nav_usd{fund="1"}'))
    assert Decimal(line.split()[-1]) == pytest.approx(nav)
    assert pub.last_cycle is not None
    btc = pub.last_cycle.aggregates["BTC"].confidence
    assert f'navpub_price_confidence{{asset="BTC"}} {float(btc)}' in metrics
    assert f"navpub_gas_used_total {float(gas['gas'])}" in metrics
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_openapi_money_is_strings(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in (
        "/api/funds",
        "/api/funds/{fund_id}",
        "/api/funds/{fund_id}/history",
        "/api/funds/{fund_id}/verify",
        "/api/gas",
        "/api/health",
        "/api/fx",
        "/api/currencies",
    ):
        assert path in schema["paths"], path
    money = schema["components"]["schemas"]["Money"]["properties"]
    assert money["usd"]["type"] == "string" and money["raw"]["type"] == "string"
    amount = schema["components"]["schemas"]["Amount"]["properties"]
    assert amount["value"]["type"] == "string"


def test_chain_down_is_503_with_the_reason(settings: Settings, anvil: AnvilNode) -> None:
    with RpcProxy(anvil.rpc_url) as proxy:
        app = create_app(settings.model_copy(update={"rpc_url": proxy.url}))
        with TestClient(app) as c:
            assert c.get("/api/funds/1").status_code == 200
            proxy.down()
            r = c.get("/api/funds/1")
            assert r.status_code == 503 and proxy.url in r.json()["detail"]
            health = c.get("/api/health")
            assert health.status_code == 503 and health.json()["chain"]["ok"] is False
            proxy.up()
            assert c.get("/api/funds/1").status_code == 200


def test_held_banner_until_the_approved_nav_is_published(client: TestClient, settings: Settings) -> None:
    pub = Publisher.from_settings(settings)
    pub.cycle()
    advance(pub.engine.w3, 600)
    market(pub, settings, {"XAUT": Decimal("1.6")})  # +37 % on fund 2, no activity
    (_, o2, _) = pub.cycle()
    assert o2.decision == "held"
    held = client.get("/api/funds/2").json()["held"]
    assert held["report_id"] == o2.report_id and held["nav"]["raw"] == str(o2.nav)
    pub.store.approve(2, "test", pub.engine.clock())
    advance(pub.engine.w3, 600)
    market(pub, settings, {})
    (_, o2, _) = pub.cycle()
    # The same cycle measured the jump again from the old NAV (held again) and published the
    # approved one; once that is on chain the new hold is moot, and the banner goes.
    assert o2.decision == "published"
    f = client.get("/api/funds/2").json()
    assert f["held"] is None and f["nav"]["nav"]["raw"] == str(o2.nav)
