"""HTTP price sources against a real local HTTP server: exact prices, exact requests, every failure named."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from decimal import Decimal
from fractions import Fraction

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from publisher.quotes import MAX_PRICE_E18, Quote, SourceFailure
from publisher.sources.http import (
    PARSERS,
    HttpPriceRef,
    HttpSourceConfig,
    PayloadError,
    decode_json,
    fetch_quotes,
    fetch_quotes_blocking,
    parse_binance,
    parse_coinbase,
    parse_coingecko,
    parse_generic,
    parse_kraken,
    to_e18,
)
from tests import httpserver
from tests.httpserver import LocalHTTPServer, refused_url

# The fixture, bound here so this module runs before tests/conftest.py imports it too.
http_server = httpserver.http_server

NOW = 1_711_111_200
E18 = 10**18


def now() -> int:
    return NOW


# Where each adapter's price sits: request path, the ref, and a body with the price slot left open.
ADAPTERS: dict[str, tuple[str, dict[str, str], str]] = {
    "coinbase": (
        "/v2/prices/BTC-USD/spot",
        {"instrument": "BTC-USD"},
        '{"data": {"amount": %s, "base": "BTC", "currency": "USD"}}',
    ),
    "kraken": (
        "/0/public/Ticker",
        {"instrument": "XBTUSD"},
        '{"error": [], "result": {"XXBTZUSD": {"a": ["42000.20000", "1", "1.000"], '
        '"b": ["42000.00000", "2", "2.000"], "c": [%s, "0.00100000"], "v": ["1234.5", "2345.6"], '
        '"t": [12345, 23456], "o": "41500.00000"}}}',
    ),
    "binance": ("/api/v3/ticker/price", {"instrument": "BTCUSDT"}, '{"symbol": "BTCUSDT", "price": %s}'),
    "coingecko": (
        "/api/v3/simple/price",
        {"instrument": "bitcoin"},
        '{"bitcoin": {"usd": %s, "last_updated_at": 1711111111}}',
    ),
    "generic": (
        "/v1/rates/USD",
        {"instrument": "USD", "path": "/v1/rates/{instrument}", "price_field": "data.rates.BTC"},
        '{"data": {"base": "USD", "rates": {"BTC": %s}}}',
    ),
}


def cfg(server: LocalHTTPServer | str, adapter: str, **kw) -> HttpSourceConfig:
    base = server if isinstance(server, str) else server.url
    return HttpSourceConfig(id=kw.pop("id", adapter), adapter=adapter, base_url=base, **kw)


def ref(source: str, asset: str = "BTC", **kw) -> HttpPriceRef:
    return HttpPriceRef(source=source, asset=asset, **kw)


def fetch_one(server: LocalHTTPServer | str, adapter: str, ref_kw: dict[str, str] | None = None, **cfg_kw):
    """One quote from `adapter` (default ref for that adapter) through the real HTTP stack."""
    source = cfg(server, adapter, **cfg_kw)
    r = ref(source.id, **(ref_kw if ref_kw is not None else ADAPTERS[adapter][1]))
    [result] = fetch_quotes_blocking({source.id: source}, [r], now=now)
    return result


def serve_price(server: LocalHTTPServer, adapter: str, value_json: str, **route_kw) -> None:
    path, _, template = ADAPTERS[adapter]
    server.route("GET", path, body=template % value_json, **route_kw)


def failure(result) -> str:
    assert isinstance(result, SourceFailure), f"expected a failure, got {result}"
    return result.reason


# -- happy paths: exact 18-decimal integers and the exact request -----------------------------


def test_coinbase_spot_price(http_server):
    http_server.route(
        "GET",
        "/v2/prices/BTC-USD/spot",
        body='{"data": {"amount": "42000.12", "base": "BTC", "currency": "USD"}}',
    )
    result = fetch_one(http_server, "coinbase", confidence=90, max_age_s=120)
    assert result == Quote("BTC", 42_000_120_000_000_000_000_000, 90, NOW, "http:coinbase", 120)
    [req] = http_server.requests
    assert (req.method, req.target) == ("GET", "/v2/prices/BTC-USD/spot")


def test_kraken_ticker_last_trade_price(http_server):
    serve_price(http_server, "kraken", '"42000.10000"')
    result = fetch_one(http_server, "kraken")
    assert result == Quote("BTC", 42_000_100_000_000_000_000_000, 100, NOW, "http:kraken", 300)
    [req] = http_server.requests
    assert req.target == "/0/public/Ticker?pair=XBTUSD"


def test_binance_ticker_price(http_server):
    serve_price(http_server, "binance", '"42000.00000000"')
    result = fetch_one(http_server, "binance")
    assert isinstance(result, Quote) and result.price == 42_000 * E18 and result.source == "http:binance"
    [req] = http_server.requests
    assert req.target == "/api/v3/ticker/price?symbol=BTCUSDT"


def test_coingecko_simple_price_with_its_timestamp(http_server):
    serve_price(http_server, "coingecko", "42000.5")
    result = fetch_one(http_server, "coingecko")
    assert result == Quote("BTC", 42_000_500_000_000_000_000_000, 100, 1_711_111_111, "http:coingecko", 300)
    [req] = http_server.requests
    assert req.path == "/api/v3/simple/price"
    assert req.query == {"ids": ["bitcoin"], "vs_currencies": ["usd"], "include_last_updated_at": ["true"]}


def test_generic_dot_path_with_list_index_and_millisecond_timestamp(http_server):
    http_server.route(
        "GET",
        "/api/v1/ticker/SOL_USD",
        body='{"result": [{"instrument": "SOL_USD", "price": "187.654321", "ts": 1711111111999}]}',
    )
    result = fetch_one(
        http_server,
        "generic",
        {
            "instrument": "SOL_USD",
            "path": "/api/v1/ticker/{instrument}",
            "price_field": "result.0.price",
            "time_field": "result.0.ts",
        },
    )
    assert result == Quote("BTC", 187_654_321_000_000_000_000, 100, 1_711_111_111, "http:generic", 300)


def test_base_url_path_prefix_and_trailing_slash(http_server):
    http_server.route("GET", "/proxy/v2/prices/ETH-USD/spot", body='{"data": {"amount": "3100.5"}}')
    source = HttpSourceConfig(id="cb", adapter="coinbase", base_url=http_server.url + "/proxy/")
    [result] = fetch_quotes_blocking({"cb": source}, [ref("cb", "ETH", instrument="ETH-USD")], now=now)
    assert isinstance(result, Quote) and result.price == 3_100_500_000_000_000_000_000


def test_instrument_is_percent_encoded_in_the_path(http_server):
    http_server.route("GET", "/v2/prices/BTC%2FUSD/spot", body='{"data": {"amount": "1"}}')
    result = fetch_one(http_server, "coinbase", {"instrument": "BTC/USD"})
    assert isinstance(result, Quote), result
    assert http_server.requests[0].target == "/v2/prices/BTC%2FUSD/spot"


def test_configured_headers_are_sent_and_never_shown(http_server):
    http_server.route("GET", "/v2/prices/BTC-USD/spot", status=401, body='{"message": "bad key"}')
    result = fetch_one(http_server, "coinbase", headers={"X-Api-Key": "s3cret-key"})
    assert http_server.requests[0].headers["x-api-key"] == "s3cret-key"
    assert "s3cret" not in failure(result) and "HTTP 401" in failure(result) and "bad key" in failure(result)
    assert "s3cret" not in repr(cfg(http_server, "coinbase", headers={"X-Api-Key": "s3cret-key"}))


@pytest.mark.parametrize("adapter", list(ADAPTERS))
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"42000.5"', 42_000_500_000_000_000_000_000),  # numbers as strings, as exchanges send them
        ("42000.5", 42_000_500_000_000_000_000_000),
        ("42000", 42_000 * E18),
        ('"4.2e4"', 42_000 * E18),
        ('"0.000000000000000001"', 1),
        ('"0.0000000000000000019"', 1),  # truncated toward zero beyond 18 decimals
        ('"1000000000000000"', MAX_PRICE_E18),  # exactly the ceiling is still a price
        # 29 significant digits once scaled: a 28-digit context would round this up to 10^29.
        ('"99999999999.9999999999999999999"', 99_999_999_999_999_999_999_999_999_999),
    ],
)
def test_accepted_price_forms(http_server, adapter, value, expected):
    serve_price(http_server, adapter, value)
    result = fetch_one(http_server, adapter)
    assert isinstance(result, Quote), result
    assert result.price == expected


# -- malformed values, per adapter ------------------------------------------------------------


@pytest.mark.parametrize("adapter", list(ADAPTERS))
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('"NaN"', "not a finite number"),
        ("NaN", "not a finite number"),
        ("Infinity", "not a finite number"),
        ('"-Infinity"', "not a finite number"),
        ('"-42000.5"', "is not positive"),
        ("-1", "is not positive"),
        ('"0"', "is not positive"),
        ("0.0", "is not positive"),
        ('"-0"', "is not positive"),
        ('"1e20"', "beyond any plausible price"),
        ("1000000000000000.000000000000000001", "beyond any plausible price"),
        ('"0.0000000000000000009"', "below 1e-18"),
        ("true", "got a boolean (true)"),
        ("false", "got a boolean (false)"),
        ('""', "empty string"),
        ('"abc"', "'abc' is not a decimal number"),
        ('"1,000.5"', "is not a decimal number"),
        ('"0x10"', "is not a decimal number"),
        ("null", "null, expected a number"),
        ('{"value": "1"}', "got an object"),
        ('["1"]', "got a list"),
        ('"1' + "0" * 120 + '"', "out of any plausible range"),
    ],
)
def test_refused_price_values(http_server, adapter, value, reason):
    serve_price(http_server, adapter, value)
    result = fetch_one(http_server, adapter)
    assert reason in failure(result)
    assert result.source == f"http:{adapter}" and result.asset == "BTC"


@pytest.mark.parametrize(
    ("adapter", "body", "reason"),
    [
        ("coinbase", "{}", "missing field 'data'"),
        ("coinbase", '{"data": {}}', "missing field 'data.amount'"),
        ("coinbase", '{"data": "42000"}', "data: expected an object or list, got a string"),
        ("coinbase", '[{"amount": "1"}]', "expected an object, got a list"),
        ("coinbase", '{"errors": [{"id": "not_found", "message": "Invalid currency"}]}', "Invalid currency"),
        ("kraken", '{"error": []}', "missing field 'result'"),
        ("kraken", '{"error": [], "result": {}}', "expected exactly one pair for 'XBTUSD', got 0"),
        ("kraken", '{"error": [], "result": {"A": {"c": ["1"]}, "B": {"c": ["2"]}}}', "got 2 (A, B)"),
        (
            "kraken",
            '{"error": [], "result": {"XXBTZUSD": {"a": ["1"]}}}',
            "missing field 'result.XXBTZUSD.c'",
        ),
        ("kraken", '{"error": [], "result": {"XXBTZUSD": {"c": []}}}', "missing field 'result.XXBTZUSD.c.0'"),
        ("kraken", '{"error": "oops", "result": {}}', "error: expected a list, got a string"),
        ("binance", '{"symbol": "BTCUSDT"}', "missing field 'price'"),
        ("binance", '{"symbol": "ETHUSDT", "price": "3000"}', "answer is for 'ETHUSDT', asked for 'BTCUSDT'"),
        ("coingecko", "{}", "no entry for coin id 'bitcoin'"),
        ("coingecko", '{"bitcoin": {}}', "missing field 'bitcoin.usd'"),
        ("coingecko", '{"bitcoin": 42000}', "bitcoin: expected an object, got a number"),
        (
            "coingecko",
            '{"bitcoin": {"usd": 1, "last_updated_at": "yesterday"}}',
            "'yesterday' is not a decimal",
        ),
        (
            "coingecko",
            '{"bitcoin": {"usd": 1, "last_updated_at": true}}',
            "last_updated_at: expected a number",
        ),
        ("coingecko", '{"bitcoin": {"usd": 1, "last_updated_at": -5}}', "is not a unix timestamp"),
        (
            "coingecko",
            '{"bitcoin": {"usd": 1, "last_updated_at": 1711111111000000}}',
            "is not a unix timestamp",
        ),
        (
            "coingecko",
            '{"status": {"error_code": 10002, "error_message": "API key missing"}}',
            "API key missing",
        ),
        ("generic", '{"data": {"rates": {"EUR": "0.92"}}}', "missing field 'data.rates.BTC'"),
        ("generic", '{"data": []}', "data: is a list, 'rates' is not an index"),
        ("generic", '"42000"', "the answer: expected an object or list, got a string"),
    ],
)
def test_malformed_answers(http_server, adapter, body, reason):
    http_server.route("GET", ADAPTERS[adapter][0], body=body)
    assert reason in failure(fetch_one(http_server, adapter))


def test_kraken_error_list_is_a_failure_with_krakens_message(http_server):
    http_server.route(
        "GET", "/0/public/Ticker", body='{"error": ["EQuery:Unknown asset pair"], "result": {}}'
    )
    assert failure(fetch_one(http_server, "kraken")) == "Kraken error: EQuery:Unknown asset pair"


@pytest.mark.parametrize("status", [200, 400])
def test_binance_error_body_is_a_failure_with_its_msg(http_server, status):
    http_server.route(
        "GET", "/api/v3/ticker/price", status=status, body='{"code": -1121, "msg": "Invalid symbol."}'
    )
    reason = failure(fetch_one(http_server, "binance"))
    assert "Invalid symbol. (code -1121)" in reason
    assert ("HTTP 400 Bad Request" in reason) == (status == 400)


def test_coingecko_without_timestamp_uses_the_fetch_time(http_server):
    http_server.route("GET", "/api/v3/simple/price", body='{"bitcoin": {"usd": 42000}}')
    result = fetch_one(http_server, "coingecko")
    assert isinstance(result, Quote) and result.observed_at == NOW


def test_generic_time_field_that_is_missing_is_a_failure(http_server):
    http_server.route("GET", "/p", body='{"price": "1.5"}')
    result = fetch_one(
        http_server, "generic", {"instrument": "X", "path": "/p", "price_field": "price", "time_field": "ts"}
    )
    assert failure(result) == "missing field 'ts'"


# -- transport and HTTP failures, for every adapter ------------------------------------------------

HTML = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@pytest.mark.parametrize("adapter", list(ADAPTERS))
@pytest.mark.parametrize(
    ("route_kw", "reason"),
    [
        (
            {"body": HTML, "content_type": "text/html"},
            "not JSON but looks like an HTML page: '<!DOCTYPE html>",
        ),
        ({"status": 502, "body": HTML, "content_type": "text/html"}, "HTTP 502 Bad Gateway from 127.0.0.1:"),
        ({"status": 500, "body": '{"message": "boom"}'}, "HTTP 500 Internal Server Error from 127.0.0.1:"),
        ({"status": 503, "body": ""}, "HTTP 503 Service Unavailable"),
        (
            {"status": 429, "body": "{}", "headers": {"Retry-After": "30"}},
            "rate-limited (HTTP 429 Too Many Requests",
        ),
        ({"status": 404, "body": "Not Found", "content_type": "text/plain"}, "HTTP 404 Not Found"),
        ({"body": '{"data": {"amount": "420'}, "truncated JSON"),
        ({"body": '{"price": "42000.5", "data": 1}', "truncate_at": 12}, "broke off before a full answer"),
        ({"body": ""}, "answer is empty, expected JSON"),
        ({"body": b"\xff\xfe\x00garbage"}, "answer is not UTF-8 text"),
        ({"body": "{'price': 1}"}, "answer is not JSON (Expecting property name"),
        ({"status": 302, "body": "", "headers": {"Location": "https://elsewhere.example/"}}, "redirect from"),
        ({"status": 204, "body": ""}, "answer is empty, expected JSON"),
    ],
)
def test_http_failures(http_server, adapter, route_kw, reason):
    http_server.route("GET", ADAPTERS[adapter][0], **route_kw)
    assert reason in failure(fetch_one(http_server, adapter))


def test_429_says_rate_limited_with_retry_after(http_server):
    http_server.route("GET", "/v2/prices/BTC-USD/spot", status=429, body="{}", headers={"Retry-After": "30"})
    reason = failure(fetch_one(http_server, "coinbase"))
    assert reason.startswith("rate-limited (HTTP 429 Too Many Requests, retry after 30 s) from 127.0.0.1:")


def test_oversized_answer_is_refused(http_server):
    http_server.route("GET", "/v2/prices/BTC-USD/spot", body=b" " * (1 << 20) + b'{"data": {"amount": "1"}}')
    assert "larger than 1048576 bytes" in failure(fetch_one(http_server, "coinbase"))


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_hanging_server_times_out(http_server, adapter):
    http_server.route("GET", ADAPTERS[adapter][0], hang=True)
    reason = failure(fetch_one(http_server, adapter, timeout_s=0.3))
    assert reason.startswith("timed out after 0.3 s (127.0.0.1:")
    assert len(http_server.requests) == 1  # the request did reach the server: it just never answered


def test_connection_refused():
    with refused_url() as url:
        reason = failure(fetch_one(url, "coinbase"))
    assert reason.startswith(f"could not connect to {url.removeprefix('http://')}/v2/prices/BTC-USD/spot")
    assert "refused" in reason.lower()


def test_unknown_source_id():
    source = HttpSourceConfig(id="coinbase", adapter="coinbase", base_url="http://127.0.0.1:9")
    [result] = fetch_quotes_blocking({"coinbase": source}, [ref("kraken", instrument="XBTUSD")], now=now)
    assert result == SourceFailure(
        "BTC", "http:kraken", "unknown HTTP source 'kraken' (configured: coinbase)"
    )


def test_generic_ref_without_path_and_non_generic_ref_with_path_are_failures(http_server):
    generic = cfg(http_server, "generic")
    coinbase = cfg(http_server, "coinbase")
    results = fetch_quotes_blocking(
        {"generic": generic, "coinbase": coinbase},
        [ref("generic", instrument="X"), ref("coinbase", instrument="BTC-USD", price_field="data.amount")],
        now=now,
    )
    assert "needs path and price_field" in failure(results[0])
    assert "apply only to generic sources, not coinbase" in failure(results[1])
    assert http_server.requests == []


# -- concurrency ---------------------------------------------------------------------------------------


def test_results_follow_the_refs_order_and_requests_are_concurrent(http_server):
    # The first ref's answer is held until the last ref's request arrives: sequential requests
    # would time out on the first ref, so a quote for it proves all requests were in flight at once.
    last_arrived = threading.Event()
    http_server.route("GET", "/v2/prices/BTC-USD/spot", body='{"data": {"amount": "1"}}', hang=last_arrived)
    http_server.route("GET", "/v2/prices/ETH-USD/spot", body='{"data": {"amount": "2"}}')
    serve_price(http_server, "kraken", '"3"')
    serve_price(http_server, "binance", '"4"')
    http_server.route(
        "GET", "/api/v3/simple/price", body='{"sol": {"usd": 5}}', on_request=lambda _req: last_arrived.set()
    )
    sources = {
        s.id: s
        for s in (cfg(http_server, a, timeout_s=10) for a in ("coinbase", "kraken", "binance", "coingecko"))
    }
    refs = [
        ref("coinbase", "BTC", instrument="BTC-USD"),
        ref("coinbase", "ETH", instrument="ETH-USD"),
        ref("kraken", "XBT", instrument="XBTUSD"),
        ref("binance", "BNB", instrument="BTCUSDT"),
        ref("coingecko", "SOL", instrument="sol"),
    ]
    results = fetch_quotes_blocking(sources, refs, now=now)
    assert [(r.asset, r.price) for r in results] == [
        (a, (i + 1) * E18) for i, a in enumerate(["BTC", "ETH", "XBT", "BNB", "SOL"])
    ]
    assert len(http_server.requests) == 5


def test_one_hanging_source_does_not_stop_the_others(http_server):
    http_server.route("GET", "/v2/prices/BTC-USD/spot", hang=True)
    serve_price(http_server, "binance", '"42000.5"')
    sources = {
        "slow": cfg(http_server, "coinbase", id="slow", timeout_s=0.3),
        "binance": cfg(http_server, "binance"),
    }
    results = fetch_quotes_blocking(
        sources, [ref("slow", instrument="BTC-USD"), ref("binance", instrument="BTCUSDT")], now=now
    )
    assert "timed out after 0.3 s" in failure(results[0])
    assert isinstance(results[1], Quote) and results[1].price == 42_000_500_000_000_000_000_000


def test_a_given_client_is_used_and_left_open(http_server):
    serve_price(http_server, "binance", '"7"')
    source = cfg(http_server, "binance")

    async def run() -> tuple[list, bool]:
        async with httpx.AsyncClient(headers={"X-Caller": "engine"}) as client:
            results = await fetch_quotes(
                {"binance": source}, [ref("binance", instrument="BTCUSDT")], now=now, client=client
            )
            return results, client.is_closed

    results, closed = asyncio.run(run())
    assert results[0].price == 7 * E18 and closed is False
    assert http_server.requests[0].headers["x-caller"] == "engine"


def test_no_refs_no_requests(http_server):
    assert fetch_quotes_blocking({}, [], now=now) == []


# -- FX through the generic adapter ---------------------------------------------------------------------


def test_fx_rate_units_per_usd(http_server):
    http_server.route(
        "GET",
        "/v1/latest/USD",
        body='{"base": "USD", "rates": {"ZAR": "18.2512", "EUR": "0.92"}, "time": 1711111100}',
    )
    source = cfg(http_server, "generic", id="fx", max_age_s=3600)
    fx = ref(
        "fx",
        "FX:ZAR",
        instrument="USD",
        path="/v1/latest/{instrument}",
        price_field="rates.ZAR",
        time_field="time",
    )
    [result] = fetch_quotes_blocking({"fx": source}, [fx], now=now)
    assert result == Quote("FX:ZAR", 18_251_200_000_000_000_000, 100, 1_711_111_100, "http:fx", 3600)


def test_fx_rate_quoted_the_other_way_is_inverted(http_server):
    http_server.route("GET", "/v1/pair/ZARUSD", body='{"pair": "ZARUSD", "rate": "0.0548"}')
    source = cfg(http_server, "generic", id="fx")
    fx = ref(
        "fx", "FX:ZAR", instrument="ZARUSD", path="/v1/pair/{instrument}", price_field="rate", invert=True
    )
    [result] = fetch_quotes_blocking({"fx": source}, [fx], now=now)
    # 1 / 0.0548 = 18.248175182481751824|817... truncated at 18 decimals.
    assert isinstance(result, Quote) and result.price == 10**22 // 548 == 18_248_175_182_481_751_824


def test_inversion_truncates_and_never_rounds_up(http_server):
    # 1 / (1 + 1e-41) = 0.99999999999999999999999999999999999999999|00…: rounding to 40 digits would
    # give 1 and a price of exactly $1; truncation keeps it just below.
    http_server.route("GET", "/r", body='{"rate": "1.00000000000000000000000000000000000000001"}')
    result = fetch_one(
        http_server, "generic", {"instrument": "x", "path": "/r", "price_field": "rate", "invert": True}
    )
    assert isinstance(result, Quote) and result.price == E18 - 1


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('"0"', "is not positive"),
        ('"1e-30"', "rate: 1/'1e-30' = 1E+30 is beyond any plausible price"),
    ],
)
def test_inverted_rate_refusals(http_server, value, reason):
    http_server.route("GET", "/r", body=f'{{"rate": {value}}}')
    result = fetch_one(
        http_server, "generic", {"instrument": "x", "path": "/r", "price_field": "rate", "invert": True}
    )
    assert reason in failure(result)


# -- configuration boundary -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"base_url": "ftp://127.0.0.1"},
        {"base_url": "127.0.0.1:8080"},
        {"base_url": "http://127.0.0.1/?key=1"},
        {"timeout_s": 0},
        {"max_age_s": 0},
        {"confidence": 101},
        {"confidence": -1},
        {"id": "coin base"},
        {"adapter": "ftx"},
        {"unknown": 1},
    ],
)
def test_bad_source_config(kw):
    with pytest.raises(ValidationError):
        HttpSourceConfig(**{"id": "x", "adapter": "coinbase", "base_url": "https://api.coinbase.com", **kw})


@pytest.mark.parametrize(
    "kw", [{"path": "v1/x"}, {"price_field": "a..b"}, {"time_field": ""}, {"asset": " "}, {"instrument": ""}]
)
def test_bad_price_ref(kw):
    with pytest.raises(ValidationError):
        HttpPriceRef(**{"source": "x", "asset": "BTC", "instrument": "BTC-USD", **kw})


def test_configs_are_frozen():
    source = HttpSourceConfig(id="x", adapter="coinbase", base_url="https://api.coinbase.com/")
    assert source.base_url == "https://api.coinbase.com"
    with pytest.raises(ValidationError):
        source.timeout_s = 1  # type: ignore[misc]


# -- property tests on the pure parsers -----------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals()  # includes NaN, sNaN and infinities
    | st.text(max_size=12)
    | st.sampled_from(["42000.5", "NaN", "-1", "0", "1e999999999", "--", "", "1e-999999999", "Infinity"])
)
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

REFS = {
    "coinbase": HttpPriceRef(source="s", asset="BTC", instrument="BTC-USD"),
    "kraken": HttpPriceRef(source="s", asset="BTC", instrument="XBTUSD"),
    "binance": HttpPriceRef(source="s", asset="BTC", instrument="BTCUSDT"),
    "coingecko": HttpPriceRef(source="s", asset="BTC", instrument="bitcoin"),
    "generic": HttpPriceRef(
        source="s",
        asset="BTC",
        instrument="x",
        path="/x",
        price_field="result.0.price",
        time_field="result.0.ts",
    ),
}


def shaped(adapter: str, value, stamp=None):
    """A payload of the adapter's shape with `value` (and `stamp`) in the slots it reads."""
    return {
        "coinbase": {"data": {"amount": value}},
        "kraken": {"error": [], "result": {"XXBTZUSD": {"c": [value, "1"]}}},
        "binance": {"symbol": "BTCUSDT", "price": value},
        "coingecko": {
            "bitcoin": {"usd": value, "last_updated_at": stamp if stamp is not None else 1_711_111_111}
        },
        "generic": {"result": [{"price": value, "ts": stamp if stamp is not None else 1_711_111_111}]},
    }[adapter]


def payloads(adapter: str):
    return json_like | st.builds(shaped, st.just(adapter), json_like, json_like)


def check_parse(adapter: str, payload, invert: bool = False):
    """Parse; a result must be a usable price, and the only error allowed is PayloadError."""
    ref = REFS[adapter].model_copy(update={"invert": invert})
    try:
        price, observed_at = PARSERS[adapter](payload, ref)
    except PayloadError as exc:
        assert str(exc)  # a reason, never an empty message
        return None
    assert isinstance(price, Decimal) and price > 0
    assert 0 < to_e18(price) <= MAX_PRICE_E18
    assert observed_at is None or (isinstance(observed_at, int) and 0 < observed_at <= 10**11)
    return price


@pytest.mark.parametrize("adapter", list(ADAPTERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), invert=st.booleans())
def test_parsers_return_a_price_or_their_own_error(adapter, data, invert):
    check_parse(adapter, data.draw(payloads(adapter)), invert)


decimal_texts = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.from_regex(r"\A[+-]?[0-9]{1,20}(\.[0-9]{0,30})?([eE][+-]?[0-9]{1,2})?\Z"),
)


def exact_e18(text: str) -> int:
    """The truncated 18-decimal integer of a decimal string, by exact rational arithmetic."""
    return int(Fraction(text) * E18)  # int() of a Fraction truncates toward zero


@pytest.mark.parametrize("adapter", list(ADAPTERS))
@settings(max_examples=200, deadline=None)
@given(text=decimal_texts)
def test_decimal_strings_parse_to_their_exact_e18(adapter, text):
    expected = exact_e18(text)
    if 0 < expected <= MAX_PRICE_E18:
        price, _ = PARSERS[adapter](shaped(adapter, text), REFS[adapter])
        assert to_e18(price) == expected
        # The same digits as a JSON number (a Decimal after decoding) read the same.
        price, _ = PARSERS[adapter](shaped(adapter, Decimal(text)), REFS[adapter])
        assert to_e18(price) == expected
    else:
        with pytest.raises(PayloadError):
            PARSERS[adapter](shaped(adapter, text), REFS[adapter])


@settings(max_examples=200, deadline=None)
@given(text=decimal_texts)
def test_inverted_price_is_the_truncated_exact_reciprocal(text):
    value = Fraction(text)
    expected = int(E18 / value) if value > 0 else 0
    if 0 < expected <= MAX_PRICE_E18:
        price, _ = parse_generic(
            {"result": [{"price": text, "ts": 1}]}, REFS["generic"].model_copy(update={"invert": True})
        )
        assert to_e18(price) == expected
    else:
        with pytest.raises(PayloadError):
            parse_generic(
                {"result": [{"price": text, "ts": 1}]}, REFS["generic"].model_copy(update={"invert": True})
            )


@given(body=st.binary(max_size=64) | json_like.map(lambda v: repr(v).encode()))
@settings(deadline=None)
def test_decode_json_never_fails_otherwise(body):
    with contextlib.suppress(PayloadError):
        decode_json(body)


def test_parsers_are_the_named_functions():
    assert {
        "coinbase": parse_coinbase,
        "kraken": parse_kraken,
        "binance": parse_binance,
        "coingecko": parse_coingecko,
        "generic": parse_generic,
    } == PARSERS
