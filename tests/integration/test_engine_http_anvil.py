"""The engine with every kind of source: on-chain feeds, the router's aggregate, HTTP price APIs on
a local server, an FX rate, and an off-exchange account with haircuts, configured by a sources file."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from publisher.chain import connect
from publisher.config import load_settings
from publisher.deploy import deploy_demo
from publisher.engine import NavEngine
from publisher.keys import load_account
from publisher.localchain import AnvilNode
from tests.httpserver import LocalHTTPServer

pytestmark = pytest.mark.anvil
E18 = 10**18


def sources_toml(url: str) -> str:
    return f"""
[http_sources.coinbase]
adapter = "coinbase"
base_url = "{url}"
timeout_s = 2

[http_sources.binance]
adapter = "binance"
base_url = "{url}"
timeout_s = 2

[http_sources.rates]
adapter = "generic"
base_url = "{url}"

[assets.BTC]
haircut = "0.0625"
router = true
http = [
  {{ source = "coinbase", instrument = "BTC-USD" }},
  {{ source = "binance", instrument = "BTCUSDT" }},
]

[assets.XAUT]
haircut = "0.1"

[assets.USDC]
haircut = "0.5"   # ignored: stablecoins carry no haircut

[fx.ZAR]
http = [
  {{ source = "rates", instrument = "USD", path = "/v1/rates/{{instrument}}", price_field = "rates.ZAR" }},
]

[offexchange.2]
url = "{url}/custody/balances"
"""


@pytest.fixture(scope="module")
def http_server() -> Iterator[LocalHTTPServer]:
    """One price server for the module; each test sets the routes it needs."""
    with LocalHTTPServer() as server:
        yield server


@pytest.fixture(scope="module")
def engine(
    anvil: AnvilNode, tmp_path_factory: pytest.TempPathFactory, http_server: LocalHTTPServer
) -> NavEngine:
    """A demo deployment of its own, read through the sources file."""
    tmp = tmp_path_factory.mktemp("http-engine")
    (tmp / "sources.toml").write_text(sources_toml(http_server.url))
    settings = load_settings(
        rpc_url=anvil.rpc_url, state_dir=tmp / "state", sources_file=tmp / "sources.toml", anvil_env=None
    )
    account = load_account(settings)
    deploy_demo(connect(settings), settings, account, account.address)
    return NavEngine.from_settings(settings)


def serve_prices(server: LocalHTTPServer, engine: NavEngine, btc: str = "42003.5") -> None:
    now = engine.w3.eth.get_block("latest")["timestamp"]
    server.route(
        "GET", "/v2/prices/BTC-USD/spot", json={"data": {"amount": btc, "base": "BTC", "currency": "USD"}}
    )
    server.route("GET", "/api/v3/ticker/price", json={"symbol": "BTCUSDT", "price": "42001.00000000"})
    server.route("GET", "/v1/rates/USD", json={"base": "USD", "rates": {"ZAR": "18.2375"}})
    server.route(
        "GET",
        "/custody/balances",
        json={
            "as_of": now,
            "balances": [
                {"asset": "BTC", "quantity": "0.5", "market_value": "21000", "haircut": "0.0625"},
                {"asset": "usdc", "quantity": "1000", "haircut": "--"},
                {
                    "asset": "PAXG",
                    "quantity": "2",
                    "market_value": "5300.50",
                    "discount": "0.2",
                    "borrowed": "100",
                },
            ],
        },
    )


def test_every_kind_of_source_in_one_cycle(engine: NavEngine, http_server: LocalHTTPServer) -> None:
    serve_prices(http_server, engine)
    cycle = engine.run([1, 2])
    btc = cycle.aggregates["BTC"]
    kinds = sorted(v.source.split(":")[0] for v in btc.verdicts)
    assert kinds == ["feed", "feed", "feed", "http", "http", "router"]
    assert btc.configured == 6 and len(btc.used) == 6
    assert btc.confidence == (500 + 99) * (2000 - 7) // 12000 == 99  # the router scores itself 99
    # Feeds $41,979 / $42,000 / $42,029.4, router $42,000, HTTP $42,003.5 / $42,001 → median of six.
    assert btc.price == (42_000 * E18 + 42_001 * E18) // 2

    fx = cycle.fx["ZAR"]
    assert fx.price == 18_237_500_000_000_000_000

    f1, f2 = cycle.funds
    assert f1.valuation is not None
    btc1 = next(a for a in f1.valuation.assets if a.asset == "BTC")
    assert btc1.haircut == Decimal("0.0625") and btc1.collateral == btc1.value * 15 // 16
    assert next(a for a in f1.valuation.assets if a.asset == "USDC").haircut == 0

    v2 = f2.valuation
    assert v2 is not None, f2.failure
    off = {a.asset: a for a in v2.assets if a.venue == "off-exchange"}
    assert set(off) == {"BTC", "USDC", "PAXG"}
    assert off["BTC"].value == btc.price // 2 and off["BTC"].sources == cycle.prices["BTC"].sources
    assert off["PAXG"].sources == ("custodian",) and off["PAXG"].value == 5_300_500_000_000_000_000_000
    assert off["PAXG"].collateral == off["PAXG"].value * 8 // 10
    assert v2.liabilities.offexchange_borrowed == 100 * E18
    assert v2.nav == v2.gross - v2.liabilities.total

    stored = engine.store.report(f2.report_id)
    assert {a["asset"] for a in stored.inputs["assets"]} >= {"XAUT", "PAXG"}
    assert "BTC" in stored.inputs["prices"]


def test_http_source_down_lowers_confidence_but_not_the_price(
    engine: NavEngine, http_server: LocalHTTPServer
) -> None:
    serve_prices(http_server, engine)
    http_server.route("GET", "/v2/prices/BTC-USD/spot", status=502, body="<html>Bad Gateway</html>",
                      content_type="text/html")  # fmt: skip
    cycle = engine.run([1])
    btc = cycle.aggregates["BTC"]
    failed = [v for v in btc.verdicts if v.status == "failed"]
    assert [v.source for v in failed] == ["http:coinbase"] and "502" in failed[0].reason
    # Five of six sources (the router's own confidence is 99), the farthest 7 bps from $42,000.
    assert btc.price == 42_000 * E18 and btc.confidence == (400 + 99) * (2000 - 7) // (6 * 2000) == 82
    assert cycle.funds[0].decision.action == "publish"


def test_offexchange_account_down_fails_only_that_fund(
    engine: NavEngine, http_server: LocalHTTPServer
) -> None:
    serve_prices(http_server, engine)
    http_server.route("GET", "/custody/balances", status=500, json={"error": "maintenance"})
    f1, f2 = engine.run([1, 2]).funds
    assert f1.decision.action == "publish"
    assert f2.decision.action == "fail" and "off-exchange" in f2.decision.reason


def test_stale_offexchange_statement_is_refused(engine: NavEngine, http_server: LocalHTTPServer) -> None:
    serve_prices(http_server, engine)
    http_server.route("GET", "/custody/balances", json={"as_of": 1_700_000_000, "balances": []})
    (f2,) = engine.run([2]).funds
    assert f2.decision.action == "fail" and "old" in f2.decision.reason
